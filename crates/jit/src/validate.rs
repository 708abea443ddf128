//! `Plan::validate`: the checks that make the runtime's `unsafe` sound. Debug
//! builds run it right after lowering (next to `Graph::verify`); a violation
//! is an `IrError::Compile` naming the step and what is wrong.
//!
//! Invariants checked, every extent computed with checked arithmetic from
//! offsets, strides and shapes (an extent that overflows is a violation):
//!
//! 1. Every argument slot lies inside its buffer: f32 arguments in the arena
//!    (`arena_len` floats), i64 arguments in the index buffer (`ints_len`).
//! 2. Every compile-time initialisation, output, persistent buffer and
//!    end-of-step copy (source and destination) lies inside the arena, and a
//!    copy's source and destination are the same range or do not overlap.
//! 3. A fill lies inside the arena.
//! 4. A kernel step names a kernel of the plan, runs in at least one piece,
//!    and its `hi` is the extent of the loop its pieces split (0 for a
//!    kernel run whole, which must be one piece).
//! 5. A cluster kernel has at least one loop, every extent at least 1, one
//!    stride per loop for every access, and expressions that name existing
//!    accesses and earlier expressions; every access's extent over the whole
//!    loop nest (`offset + Σ stride·(extent − 1)`) lies inside the arena.
//! 6. In-place updates are safe: a cluster's store that overlaps one of its
//!    loads is that same access (element `i` is read before it is written,
//!    by the same iteration); stores do not overlap each other; a reduction's
//!    output overlaps no other access of its kernel.
//! 7. Split kernels write disjoint elements per piece: row pieces (the outer
//!    loop) belong to kernels without reductions whose stores all move along
//!    that loop; column pieces (the inner loop) to kernels whose stores and
//!    reductions all move along it.
//! 8. A one-hot kernel reads its `rows` indices inside the index buffer and
//!    writes its `rows × classes` output inside the arena.
//! 9. A GEMM has `m, n, k ≥ 1` and positive strides; its operands' and its
//!    result's extents lie inside the arena; its result overlaps neither
//!    operand; dot products read contiguous rows (`lhs_cs = rhs_rs = 1`); a
//!    copied right operand is a row-major `n × k` matrix; a bf16 product (its
//!    operands rounded while packed) runs only where the CPU has its kernels.
//! 10. A convolution step names a step of the plan whose sizes, strides,
//!     pieces, kernel choice (`simd`: the AVX-512 kernels, set only where the
//!     CPU has them) and weight-gradient sample tile are the ones its shapes,
//!     window and CPU give (its loops index by them, and the scratch holds
//!     `tile` patch matrices per piece); its input, weight and output (`[N, C, *in]`, `[O, C/G, *k]`,
//!     `[N, O, *out]`) and its scratch region (patch matrices and partial
//!     weight gradients of every piece) lie inside the arena; the buffer it
//!     writes overlaps neither the two it reads nor the scratch, and the
//!     scratch overlaps neither operand.
//! 11. A max-pooling step names a step of the plan whose windows hold at
//!     least one position, all inside their axis, and whose sizes are its
//!     shapes' (a step marked `pairs` has two axes of windows `{2·o, 2, 1}`
//!     and runs on a CPU's vector kernels only then); its operands and result lie inside the arena, and the result
//!     overlaps neither operand. Its argmax index buffer, if any (planes small
//!     enough for `u32` indices), lies inside the arena and overlaps the
//!     result, and for a forward step (which writes it) the operands, nowhere;
//!     a gradient step with indices does not read `x` (its scatter checks each
//!     index against the plane).
//! 12. A random-uniform kernel reads its step counter (and its first row, if
//!     any) inside the index buffer and writes its `len` values inside the
//!     arena; its `hi` is its number of
//!     element blocks (`ceil(len / 4)`), which its pieces split.

use std::ops::Range;

use cranelift_entity::EntityRef;
use graphc_ir::{DType, IrError};

use crate::conv::ConvStep;
use crate::gemm::{GemmCall, Split};
use crate::kernel::{Cluster, Expr};
use crate::plan::{Kernel, OneHot, Plan, RandomUniform, Step};
use crate::pool::PoolStep;

/// The floats `offset + Σ stride·i` for `i` in `0..extent` per dimension
/// touch, as a range from the first to one past the last; empty if any extent
/// is 0; `None` when the arithmetic overflows.
fn extent(offset: usize, dims: impl IntoIterator<Item = (usize, usize)>) -> Option<Range<usize>> {
    let mut last = offset;
    for (len, stride) in dims {
        if len == 0 {
            return Some(offset..offset);
        }
        last = last.checked_add(stride.checked_mul(len - 1)?)?;
    }
    Some(offset..last.checked_add(1)?)
}

/// Whether two ranges share an element.
fn overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end
}

/// `len` floats from `offset`, if that does not overflow.
fn span(offset: usize, len: usize) -> Option<Range<usize>> {
    Some(offset..offset.checked_add(len)?)
}

/// Checks that `what` (`len` elements at `offset`) lies inside a buffer of
/// `bound` elements.
fn inside(what: &str, offset: usize, len: usize, bound: usize) -> Result<Range<usize>, String> {
    match span(offset, len) {
        Some(r) if r.end <= bound => Ok(r),
        _ => Err(format!(
            "{what} ({len} at {offset}) lies outside its buffer of {bound}"
        )),
    }
}

impl Plan {
    /// Checks the invariants listed in the module header; the error names the
    /// step (or buffer) and the violation.
    pub(crate) fn validate(&self) -> Result<(), IrError> {
        let fail = |at: String, why: String| IrError::Compile(format!("invalid plan: {at}: {why}"));
        self.check_buffers()
            .map_err(|why| fail("buffers".into(), why))?;
        for (i, step) in self.steps.iter().enumerate() {
            self.check_step(step)
                .map_err(|why| fail(format!("step {i} ({step})"), why))?;
        }
        Ok(())
    }

    /// Invariants 1 and 2.
    fn check_buffers(&self) -> Result<(), String> {
        let arena = self.arena_len;
        for a in &self.args {
            let bound = match a.dtype {
                DType::F32 => arena,
                DType::I64 => self.ints_len,
            };
            inside(&format!("argument {:?}", a.name), a.offset, a.len, bound)?;
        }
        for (offset, data) in &self.init {
            inside("initial data", *offset, data.len(), arena)?;
        }
        for (i, &(offset, len)) in self.outputs.iter().enumerate() {
            inside(&format!("output {i}"), offset, len, arena)?;
        }
        for (name, offset, len) in &self.persistent {
            inside(&format!("buffer {name:?}"), *offset, *len, arena)?;
        }
        for a in &self.assigned {
            inside("an assign's reported value", a.offset, a.len, arena)?;
            if a.slot >= self.persistent.len() || a.after.is_some_and(|n| n > self.steps.len()) {
                return Err(format!("assign report {a:?} names no buffer or step"));
            }
        }
        for &(src, dst, len) in &self.end {
            let from = inside("an end-of-step copy's source", src, len, arena)?;
            let to = inside("an end-of-step copy's destination", dst, len, arena)?;
            if src != dst && overlap(&from, &to) {
                return Err(format!(
                    "end-of-step copy {from:?} -> {to:?} overlaps itself"
                ));
            }
        }
        Ok(())
    }

    /// Invariants 3 to 11 for one step.
    fn check_step(&self, step: &Step) -> Result<(), String> {
        match *step {
            Step::Fill { offset, len, .. } => {
                inside("the fill", offset, len, self.arena_len)?;
            }
            Step::SumRanks { from, to, len } => {
                let operand = inside("a sum over ranks' operand", from, len, self.arena_len)?;
                let result = inside("a sum over ranks' result", to, len, self.arena_len)?;
                if from != to && overlap(&operand, &result) {
                    return Err(format!(
                        "a sum over ranks' result {result:?} overlaps its operand {operand:?}"
                    ));
                }
            }
            Step::Gemm(ref call) => self.check_gemm(call)?,
            Step::Conv(id) => match self.convs.get(id) {
                Some(c) => self.check_conv(c)?,
                None => return Err(format!("no convolution {id}")),
            },
            Step::Pool(id) => match self.pools.get(id) {
                Some(p) => self.check_pool(p)?,
                None => return Err(format!("no max pooling {id}")),
            },
            Step::Kernel {
                kernel,
                hi,
                chunks,
                split,
            } => {
                let Some(k) = self.kernels.get(kernel) else {
                    return Err(format!("no kernel {kernel}"));
                };
                if chunks == 0 {
                    return Err("a kernel in 0 pieces".into());
                }
                match k {
                    Kernel::Cluster {
                        cluster,
                        split: compiled,
                    } => {
                        if *compiled != split {
                            return Err(format!(
                                "the step splits {split:?}, the kernel was compiled for {compiled:?}"
                            ));
                        }
                        self.check_cluster(cluster, split, hi, chunks)?;
                    }
                    Kernel::OneHot(o) => {
                        if chunks != 1 || hi != 0 {
                            return Err("a one-hot kernel runs whole, in one piece".into());
                        }
                        self.check_one_hot(o)?;
                    }
                    Kernel::RandomUniform(r) => {
                        if hi != r.blocks() {
                            return Err(format!(
                                "a random kernel of {} blocks run over 0..{hi}",
                                r.blocks()
                            ));
                        }
                        self.check_random_uniform(r)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Invariants 4 to 7 for one cluster kernel.
    fn check_cluster(
        &self,
        k: &Cluster,
        split: crate::kernel::SplitLoop,
        hi: usize,
        chunks: usize,
    ) -> Result<(), String> {
        use crate::kernel::SplitLoop;
        let Some(inner) = k.dims.len().checked_sub(1) else {
            return Err("a kernel without loops".into());
        };
        if k.dims.contains(&0) {
            return Err(format!("an empty loop in {:?}", k.dims));
        }
        let expected_hi = match split {
            SplitLoop::None if chunks == 1 => k.dims[0],
            SplitLoop::None => return Err(format!("an unsplit kernel in {chunks} pieces")),
            SplitLoop::Outer => k.dims[0],
            SplitLoop::Inner => k.dims[inner],
        };
        if hi != expected_hi {
            return Err(format!(
                "runs its split loop to {hi}, but the loop has {expected_hi} iterations"
            ));
        }
        let mut ranges = Vec::with_capacity(k.accesses.len());
        for (a, access) in k.accesses.iter() {
            if access.strides.len() != k.dims.len() {
                return Err(format!("access {a} has {} strides", access.strides.len()));
            }
            let dims = k.dims.iter().copied().zip(access.strides.iter().copied());
            match extent(access.offset, dims) {
                Some(r) if r.end <= self.arena_len => ranges.push(r),
                Some(r) => {
                    return Err(format!(
                        "access {a} ({access}) reaches float {} of an arena of {}",
                        r.end, self.arena_len
                    ))
                }
                None => return Err(format!("access {a} ({access}) overflows")),
            }
        }
        let mut loads = Vec::new();
        for (e, expr) in k.exprs.iter() {
            let earlier = |x| x < e;
            let fine = match expr {
                Expr::Load(a) => {
                    loads.push(*a);
                    k.accesses.is_valid(*a)
                }
                Expr::Const(_) => true,
                Expr::Compute(c) => c.operands().all(earlier),
            };
            if !fine {
                return Err(format!("expression {e} names a missing value"));
            }
        }
        let stores: Vec<_> = k.stores.iter().map(|&(_, a)| a).collect();
        let outputs: Vec<_> = k.reductions.iter().map(|r| r.access).collect();
        let valid_expr = |e| k.exprs.is_valid(e);
        let valid = k
            .stores
            .iter()
            .all(|&(e, a)| valid_expr(e) && k.accesses.is_valid(a))
            && k.reductions
                .iter()
                .all(|r| valid_expr(r.value) && k.accesses.is_valid(r.access));
        if !valid {
            return Err("a store or reduction names a missing value or access".into());
        }
        let range = |a: crate::kernel::AccessId| &ranges[a.index()];
        for (i, &s) in stores.iter().enumerate() {
            for &l in &loads {
                if l != s && overlap(range(s), range(l)) {
                    return Err(format!(
                        "store {s} overlaps load {l} through another access: not a safe in-place update"
                    ));
                }
            }
            for &t in &stores[i + 1..] {
                if overlap(range(s), range(t)) || s == t {
                    return Err(format!("stores {s} and {t} overlap"));
                }
            }
        }
        for (i, &r) in outputs.iter().enumerate() {
            let others = loads.iter().chain(&stores).chain(&outputs[i + 1..]);
            for &o in others {
                if overlap(range(r), range(o)) || r == o {
                    return Err(format!("reduction output {r} overlaps access {o}"));
                }
            }
        }
        let moves = |a: crate::kernel::AccessId, d: usize| k.accesses[a].strides[d] != 0;
        match split {
            SplitLoop::None => {}
            SplitLoop::Outer => {
                if !outputs.is_empty() || !stores.iter().all(|&s| moves(s, 0)) {
                    return Err("row pieces would write the same elements".into());
                }
            }
            SplitLoop::Inner => {
                if !stores.iter().chain(&outputs).all(|&s| moves(s, inner)) {
                    return Err("column pieces would write the same elements".into());
                }
            }
        }
        Ok(())
    }

    /// Invariant 8.
    fn check_one_hot(&self, o: &OneHot) -> Result<(), String> {
        inside("the indices", o.indices, o.rows, self.ints_len)?;
        let len = o
            .rows
            .checked_mul(o.classes)
            .ok_or_else(|| "the one-hot output's size overflows".to_string())?;
        inside("the one-hot output", o.out, len, self.arena_len)?;
        Ok(())
    }

    /// Invariant 10.
    fn check_conv(&self, c: &ConvStep) -> Result<(), String> {
        if !c.consistent() {
            return Err("sizes or strides that do not fit its shapes".into());
        }
        let arena = self.arena_len;
        let ([a, b], (w_off, w_len)) = c.buffers();
        let a = inside("the first operand", a.0, a.1, arena)?;
        let b = inside("the second operand", b.0, b.1, arena)?;
        let written = inside("the result", w_off, w_len, arena)?;
        let scratch = inside("the scratch", c.scratch, c.sizes.scratch_len, arena)?;
        for (what, r) in [
            ("an operand", &a),
            ("an operand", &b),
            ("the scratch", &scratch),
        ] {
            if overlap(&written, r) {
                return Err(format!("the result {written:?} overlaps {what} {r:?}"));
            }
        }
        if overlap(&scratch, &a) || overlap(&scratch, &b) {
            return Err(format!("the scratch {scratch:?} overlaps an operand"));
        }
        Ok(())
    }

    /// Invariant 11.
    fn check_pool(&self, p: &PoolStep) -> Result<(), String> {
        let Some((x_len, v_len, out_len)) = p.lens().filter(|_| p.consistent()) else {
            return Err("windows or sizes that do not fit its shapes".into());
        };
        let arena = self.arena_len;
        // A gradient with indices does not read `x`.
        let x = match (p.grad, p.index) {
            (true, Some(_)) => 0..0,
            _ => inside("the input", p.x, x_len, arena)?,
        };
        let v = inside("the second operand", p.v, v_len, arena)?;
        let out = inside("the result", p.out, out_len, arena)?;
        if overlap(&out, &x) || overlap(&out, &v) {
            return Err(format!("the result {out:?} overlaps an operand"));
        }
        if let Some(at) = p.index {
            let len = p.index_len().ok_or("an index buffer too large")?;
            let index = inside("the argmax indices", at, len, arena)?;
            if overlap(&index, &out) || (!p.grad && (overlap(&index, &x) || overlap(&index, &v))) {
                return Err(format!(
                    "the argmax indices {index:?} overlap an operand or the result"
                ));
            }
        }
        Ok(())
    }

    /// Invariant 12.
    fn check_random_uniform(&self, r: &RandomUniform) -> Result<(), String> {
        let ints = if r.row.is_some() { 2 } else { 1 };
        inside("the step counter", r.step, ints, self.ints_len)?;
        inside("the random values", r.out, r.len, self.arena_len)?;
        Ok(())
    }

    /// Invariant 9.
    fn check_gemm(&self, c: &GemmCall) -> Result<(), String> {
        if c.m == 0 || c.n == 0 || c.k == 0 {
            return Err("an empty product".into());
        }
        let stride = |s: isize| usize::try_from(s).ok().filter(|&s| s > 0);
        let (Some(lhs_cs), Some(lhs_rs), Some(rhs_cs), Some(rhs_rs)) = (
            stride(c.lhs_cs),
            stride(c.lhs_rs),
            stride(c.rhs_cs),
            stride(c.rhs_rs),
        ) else {
            return Err("a stride is not positive".into());
        };
        let operand = |what: &str, r: Option<Range<usize>>| match r {
            Some(r) if r.end <= self.arena_len => Ok(r),
            _ => Err(format!(
                "the {what} reaches past the arena of {} floats",
                self.arena_len
            )),
        };
        let lhs = operand(
            "left operand",
            extent(c.lhs, [(c.m, lhs_rs), (c.k, lhs_cs)]),
        )?;
        let rhs = operand(
            "right operand",
            extent(c.rhs, [(c.k, rhs_rs), (c.n, rhs_cs)]),
        )?;
        let dst = operand("result", extent(c.dst, [(c.m, c.n), (c.n, 1)]))?;
        if overlap(&dst, &lhs) || overlap(&dst, &rhs) {
            return Err(format!(
                "the result {dst:?} overlaps an operand (lhs {lhs:?}, rhs {rhs:?})"
            ));
        }
        if matches!(c.split, Split::Dots(_)) && (lhs_cs != 1 || rhs_rs != 1) {
            return Err("dot products need contiguous operand rows".into());
        }
        if c.bf16 && !crate::gemm::bf16_kernels() {
            return Err("a bf16 product on a CPU without its kernels".into());
        }
        if c.copy_rhs && (rhs_rs != 1 || rhs_cs != c.k) {
            return Err("a copied right operand must be a row-major n × k matrix".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::lower;

    /// `sum(relu(x · w + b))` for an 8 → 3 layer: one GEMM (k = 8 is too
    /// long to fuse) and one cluster kernel reading its result.
    fn product_then_kernel() -> Plan {
        let plan = lower(&crate::plan::tests::linear_relu_sum(8)).unwrap();
        plan.validate().unwrap();
        plan
    }

    fn violation(plan: &Plan) -> String {
        plan.validate()
            .expect_err("corrupt plan accepted")
            .to_string()
    }

    #[test]
    fn a_gemm_writing_over_its_left_operand_is_rejected() {
        let mut plan = product_then_kernel();
        let Some(Step::Gemm(call)) = plan.steps.iter_mut().find(|s| matches!(s, Step::Gemm(_)))
        else {
            panic!("no GEMM in the plan");
        };
        call.dst = call.lhs;
        let lhs = call.lhs;
        let e = violation(&plan);
        assert!(
            e.starts_with("compile error: invalid plan: step 0 (gemm 2x3x8"),
            "{e}"
        );
        let overlap = format!("the result {lhs}..{} overlaps an operand", lhs + 2 * 3);
        assert!(e.contains(&overlap), "{e}");
    }

    #[test]
    fn a_kernel_access_past_the_arena_is_rejected() {
        let mut plan = product_then_kernel();
        let end = plan.arena_len;
        let Some(Kernel::Cluster { cluster, .. }) = plan.kernels.values_mut().next() else {
            panic!("no cluster kernel in the plan");
        };
        let a = cluster.accesses.keys().next().expect("an access");
        cluster.accesses[a].offset = end - 1;
        let e = violation(&plan);
        assert!(e.contains("(kernel k0, whole)"), "{e}");
        assert!(e.contains(&format!("of an arena of {end}")), "{e}");
    }

    #[test]
    fn a_fill_past_the_arena_is_rejected() {
        let mut plan = product_then_kernel();
        let end = plan.arena_len;
        plan.steps.push(Step::Fill {
            offset: end - 4,
            len: 5,
            value: 0.0,
        });
        let e = violation(&plan);
        assert!(
            e.contains(&format!(
                "the fill (5 at {}) lies outside its buffer of {end}",
                end - 4
            )),
            "{e}"
        );
    }

    #[test]
    fn a_store_over_a_load_through_another_access_is_rejected() {
        let mut plan = product_then_kernel();
        let Some(Kernel::Cluster { cluster, .. }) = plan.kernels.values_mut().next() else {
            panic!("no cluster kernel in the plan");
        };
        // A store of one element over the first element of the first load.
        let load = cluster.accesses.keys().next().unwrap();
        let first = cluster.accesses[load].clone();
        let store = cluster.accesses.push(crate::kernel::Access {
            offset: first.offset,
            strides: vec![0; first.strides.len()],
        });
        let value = cluster.exprs.keys().next_back().unwrap();
        cluster.stores.push((value, store));
        let e = violation(&plan);
        assert!(e.contains("not a safe in-place update"), "{e}");
    }

    /// `conv(x, w)` of a `[2, 3, 6, 6]` input with four 3×3 filters and
    /// padding 1, then a 2×2 max pooling: a convolution step with a scratch
    /// region, and a pooling step.
    fn conv_then_pool() -> Plan {
        use graphc_ir::{AxisWindows, Graph, TensorType, Window, WindowAxis};
        let axis = |kernel, stride, pad_lo, output| WindowAxis {
            input: 6,
            output,
            windows: AxisWindows::Strided {
                kernel,
                stride,
                dilation: 1,
                pad_lo,
            },
        };
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[2, 3, 6, 6]));
        let w = g.param("w", &[4, 3, 3, 3]);
        let conv = Window {
            axes: vec![axis(3, 1, 1, 6), axis(3, 1, 1, 6)],
        };
        let y = g.conv(x, w, &conv, 1).unwrap();
        let pool = Window {
            axes: vec![axis(2, 2, 0, 3), axis(2, 2, 0, 3)],
        };
        let p = g.max_pool(y, &pool).unwrap();
        g.add_output("p", p);
        let plan = lower(&g).unwrap();
        plan.validate().unwrap();
        plan
    }

    #[test]
    fn a_convolution_writing_over_its_scratch_is_rejected() {
        let mut plan = conv_then_pool();
        let (id, conv) = plan.convs.iter_mut().next().expect("a convolution step");
        assert!(conv.sizes.scratch_len > 0, "{conv}");
        conv.y = conv.scratch;
        let e = violation(&plan);
        assert!(e.contains(&format!("({id})")), "{e}");
        assert!(e.contains("overlaps the scratch"), "{e}");
    }

    #[test]
    fn a_convolution_whose_sizes_do_not_fit_its_shapes_is_rejected() {
        let mut plan = conv_then_pool();
        let conv = plan.convs.values_mut().next().expect("a convolution step");
        conv.axes[1].input += 1;
        let e = violation(&plan);
        assert!(
            e.contains("sizes or strides that do not fit its shapes"),
            "{e}"
        );
    }

    #[test]
    fn a_pooling_past_the_arena_or_over_its_input_is_rejected() {
        let mut plan = conv_then_pool();
        let end = plan.arena_len;
        let pool = plan.pools.values_mut().next().expect("a pooling step");
        pool.out = end - 1;
        assert!(violation(&plan).contains("the result"));
        let pool = plan.pools.values_mut().next().unwrap();
        pool.out = pool.x + 1;
        assert!(violation(&plan).contains("overlaps an operand"));
        let pool = plan.pools.values_mut().next().unwrap();
        pool.out = 0;
        pool.spans[0][2].count += 1;
        assert!(violation(&plan).contains("windows or sizes"));
    }

    #[test]
    fn argmax_indices_past_the_arena_or_over_an_operand_are_rejected() {
        let mut plan = conv_then_pool();
        let end = plan.arena_len;
        let pool = plan.pools.values_mut().next().expect("a pooling step");
        let (x, out) = (pool.x, pool.out);
        pool.index = Some(end - 1);
        assert!(violation(&plan).contains("the argmax indices"));
        for at in [x, out] {
            let pool = plan.pools.values_mut().next().unwrap();
            pool.index = Some(at);
            assert!(violation(&plan).contains("overlap an operand"));
        }
    }

    #[test]
    fn extents_that_overflow_are_none() {
        assert_eq!(extent(usize::MAX, [(2, 1)]), None);
        assert_eq!(extent(1, [(usize::MAX, 2)]), None);
        assert_eq!(extent(5, [(0, 7)]), Some(5..5));
        assert_eq!(extent(5, [(2, 3), (4, 1)]), Some(5..12));
    }
}
