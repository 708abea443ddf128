//! Kernel descriptions: what one generated function or library call does, as
//! plain data with resolved arena offsets. The lowering fills them in; code
//! generation and the runtime read them, and never look at the graph.

use std::fmt;

use cranelift_entity::{entity_impl, PrimaryMap};
use graphc_ir::{BinaryOp, CompareOp, ReduceOp, UnaryOp};

/// A memory access of one [`Cluster`]: an index into [`Cluster::accesses`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct AccessId(u32);
entity_impl!(AccessId, "a");

/// A value of one [`Cluster`]: an index into [`Cluster::exprs`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ExprId(u32);
entity_impl!(ExprId, "e");

/// A strided view of arena memory over a kernel's loop nest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    /// First element, in floats from the arena base.
    pub offset: usize,
    /// Step in floats per loop dimension (0 repeats the element).
    pub strides: Vec<usize>,
}

/// One value of a fused elementwise computation; operands are earlier entries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Expr {
    /// Reads an [`Access`] of the kernel.
    Load(AccessId),
    /// A literal.
    Const(f32),
    /// A function of earlier values.
    Compute(Compute),
}

/// An elementwise function of earlier values of the same kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Compute {
    /// An elementwise function.
    Unary(UnaryOp, ExprId),
    /// An elementwise function of two values.
    Binary(BinaryOp, ExprId, ExprId),
    /// A comparison giving 1.0 or 0.0.
    Compare(CompareOp, ExprId, ExprId),
    /// `a` where `mask != 0`, else `b`: (mask, a, b).
    Select(ExprId, ExprId, ExprId),
}

impl Compute {
    /// The values it reads.
    pub(crate) fn operands(&self) -> impl Iterator<Item = ExprId> {
        let (a, b, c) = match *self {
            Compute::Unary(_, x) => (x, None, None),
            Compute::Binary(_, x, y) | Compute::Compare(_, x, y) => (x, Some(y), None),
            Compute::Select(c, x, y) => (c, Some(x), Some(y)),
        };
        [Some(a), b, c].into_iter().flatten()
    }
}

/// A reduction output fed by an expression inside the loop nest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reduction {
    /// Sum or max.
    pub op: ReduceOp,
    /// The expression reduced.
    pub value: ExprId,
    /// Where the result accumulates (stride 0 along reduced dimensions).
    pub access: AccessId,
}

/// A fused loop nest: loads, elementwise expressions, stores and reductions
/// over one iteration domain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cluster {
    /// Loop extents, outermost first, after dropping unit dimensions and
    /// merging dimensions every access walks contiguously (never empty).
    pub dims: Vec<usize>,
    /// Every memory access, loads and stores alike.
    pub accesses: PrimaryMap<AccessId, Access>,
    /// The computation, in dependency order.
    pub exprs: PrimaryMap<ExprId, Expr>,
    /// Plain stores: (expression, access).
    pub stores: Vec<(ExprId, AccessId)>,
    /// Reductions; their outputs must hold the identity before the call
    /// when [`Cluster::needs_init`] says so.
    pub reductions: Vec<Reduction>,
}

impl Cluster {
    /// Whether a reduction accumulates in memory across rows (so its output
    /// must be pre-filled with the identity) rather than in a register.
    pub(crate) fn needs_init(&self, r: &Reduction) -> bool {
        let s = &self.accesses[r.access].strides;
        let inner = s.len() - 1;
        s[inner] != 0 || s[..inner].contains(&0)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.offset, self.strides)
    }
}

impl fmt::Display for Cluster {
    /// One line: loop extents, accesses, then stores and reductions by expression.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loops {:?}, {} exprs; accesses",
            self.dims,
            self.exprs.len()
        )?;
        for (a, access) in self.accesses.iter() {
            write!(f, " {a}={access}")?;
        }
        for (e, a) in &self.stores {
            write!(f, "; store {e}->{a}")?;
        }
        for r in &self.reductions {
            write!(f, "; {:?} {}->{}", r.op, r.value, r.access)?;
        }
        Ok(())
    }
}

/// The identity of a reduction: what its output holds before any term.
pub(crate) fn identity(op: ReduceOp) -> f32 {
    match op {
        ReduceOp::Sum => 0.0,
        ReduceOp::Max => f32::NEG_INFINITY,
    }
}

/// Which loop of a kernel its `[lo, hi)` arguments bound, so that pieces of
/// the kernel can run on different threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SplitLoop {
    /// Neither: the kernel runs whole (`lo`, `hi` ignored).
    None,
    /// The outermost loop (pieces are row ranges; no reductions).
    Outer,
    /// The innermost loop (pieces are column ranges; reductions only over
    /// outer dimensions, accumulated in memory column by column).
    Inner,
}

/// Row-major strides of `shape`.
pub(crate) fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Row-major strides of `from` read over the domain `to` (same rank): axes
/// where `from` has size 1 and `to` does not repeat the element (stride 0).
pub(crate) fn broadcast_strides(from: &[usize], to: &[usize]) -> Vec<usize> {
    row_major(from)
        .into_iter()
        .zip(from.iter().zip(to))
        .map(|(s, (&f, &t))| if f == 1 && t != 1 { 0 } else { s })
        .collect()
}

/// `strides`, an access over the axes of `shape`, over the axes of `domain`
/// instead: a cluster's domain refines every member's shape (each domain axis
/// lies inside one axis of the shape, `graphc_opt::fusion::common_refinement`),
/// so a domain axis steps by its shape axis's stride times the extent of the
/// domain axes inside that shape axis after it. `None` if `domain` does not
/// refine `shape`.
pub(crate) fn strides_over(
    domain: &[usize],
    shape: &[usize],
    strides: &[usize],
) -> Option<Vec<usize>> {
    if domain == shape {
        return Some(strides.to_vec());
    }
    // A unit axis never moves: its row-major stride, so a contiguous access over
    // the domain is the same access as the domain's own stores (an in-place update
    // must load and store through one access).
    let mut out = row_major(domain);
    let mut axis = shape.len();
    let (mut left, mut stride) = (1usize, 0usize);
    for (d, &extent) in domain.iter().enumerate().rev() {
        if extent == 1 {
            continue;
        }
        while left == 1 {
            axis = axis.checked_sub(1)?;
            left = shape[axis];
            stride = strides[axis];
        }
        if left % extent != 0 {
            return None;
        }
        out[d] = stride;
        stride = stride.checked_mul(extent)?;
        left /= extent;
    }
    (left == 1 && shape[..axis].iter().all(|&s| s == 1)).then_some(out)
}

/// Drops unit dimensions of `dims` and merges each adjacent pair that every
/// stride list walks as one (outer stride = inner stride × inner extent), so a
/// contiguous tensor becomes a single loop. Returns the new extents and strides.
pub(crate) fn coalesce(dims: &[usize], strides: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let keep: Vec<usize> = (0..dims.len()).filter(|&d| dims[d] != 1).collect();
    let mut out_dims: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for &d in &keep {
        let mergeable = !out_dims.is_empty()
            && strides.iter().zip(&out_strides).all(|(s, o)| {
                let last = *o.last().unwrap_or(&0);
                last == s[d] * dims[d]
            });
        if mergeable {
            let n = out_dims.len() - 1;
            out_dims[n] *= dims[d];
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o[n] = s[d];
            }
        } else {
            out_dims.push(dims[d]);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    if out_dims.is_empty() {
        out_dims.push(1);
        for o in &mut out_strides {
            o.push(0);
        }
    }
    (out_dims, out_strides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_contiguous_and_keeps_broadcast_split() {
        let dims = [4, 1, 3];
        let contiguous = row_major(&dims);
        let row = broadcast_strides(&[1, 1, 3], &dims);
        let (d, s) = coalesce(&dims, std::slice::from_ref(&contiguous));
        assert_eq!((d, s), (vec![12], vec![vec![1]]));
        let (d, s) = coalesce(&dims, &[contiguous, row]);
        assert_eq!(d, vec![4, 3]);
        assert_eq!(s, vec![vec![3, 1], vec![0, 1]]);
    }

    #[test]
    fn strides_over_a_refined_domain_walk_the_same_elements() {
        // [2, 6] over [2, 2, 3]: the 6-axis splits into 2 × 3.
        assert_eq!(
            strides_over(&[2, 2, 3], &[2, 6], &[6, 1]),
            Some(vec![6, 3, 1])
        );
        // A per-row broadcast [2, 1] read over [2, 6], refined as [2, 2, 3].
        assert_eq!(
            strides_over(&[2, 2, 3], &[2, 6], &[1, 0]),
            Some(vec![1, 0, 0])
        );
        // Unit axes of the shape carry nothing.
        assert_eq!(
            strides_over(&[4, 3], &[1, 4, 1, 3], &[0, 3, 0, 1]),
            Some(vec![3, 1])
        );
        // [6, 4] does not refine [4, 6].
        assert_eq!(strides_over(&[6, 4], &[4, 6], &[6, 1]), None);
        for (domain, shape) in [(vec![2, 2, 3], vec![4, 3]), (vec![3, 2, 2], vec![3, 4])] {
            let over = strides_over(&domain, &shape, &row_major(&shape)).unwrap();
            assert_eq!(over, row_major(&domain), "{shape:?} over {domain:?}");
        }
    }

    #[test]
    fn coalesce_of_a_scalar_domain_is_one_iteration() {
        let (d, s) = coalesce(&[1, 1], &[vec![0, 0]]);
        assert_eq!((d, s), (vec![1], vec![vec![0]]));
    }
}
