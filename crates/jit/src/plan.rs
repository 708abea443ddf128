//! Lowering a verified graph to a step plan: group it into kernels with
//! `graphc_opt::fusion` (matrix products with an inner dimension of at most
//! `FUSE_MAX_K` become cluster expressions), update persistent buffers in place
//! where that is safe, lay out the arena (fixed slots, then kernel results by
//! `graphc_opt::liveness`), and describe the step as one list of [`Step`]s,
//! which the runtime (`exec`) runs as they are, and the generated kernels they
//! call as data ([`Kernel`]). Every size and offset is computed with checked
//! arithmetic; `validate` checks the finished plan's extents.

use std::collections::HashMap;
use std::fmt;

use cranelift_entity::{entity_impl, PrimaryMap};
use graphc_ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, ReduceOp, UnaryOp};
use graphc_opt::fusion::{reads_elsewhere, Class, Fusion, GroupId};
use graphc_opt::liveness::{assign_offsets, round_up, Allocator, Lifetime};

use crate::arena::LINE;
use crate::conv::{ConvKind, ConvStep};
use crate::exec::ArgSlot;
use crate::gemm::GemmCall;
use crate::kernel::{
    broadcast_strides, coalesce, identity, row_major, strides_over, Access, AccessId, Cluster,
    Compute, Expr, ExprId, Reduction, SplitLoop,
};
use crate::pool::{PoolStep, MAX_AXES};

/// Kernels with at least this many elements are split across threads (mlp_m
/// ran 551–600 µs a step with this, 620–760 µs splitting its 32 K-element
/// kernels too: their inputs come from GEMM blocks of both cores).
const SPLIT_MIN_ELEMENTS: usize = 1 << 16;
/// A kernel split by columns needs at least this many per piece.
const SPLIT_MIN_COLUMNS: usize = 64;

/// A generated kernel of a plan: an index into [`Plan::kernels`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct KernelId(u32);
entity_impl!(KernelId, "k");

/// A convolution step of a plan: an index into [`Plan::convs`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConvId(u32);
entity_impl!(ConvId, "conv");

/// A max-pooling step of a plan: an index into [`Plan::pools`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PoolId(u32);
entity_impl!(PoolId, "pool");

/// What one generated function computes, as data for code generation.
#[derive(Debug)]
pub(crate) enum Kernel {
    /// A fused loop nest whose `[lo, hi)` arguments bound loop `split`.
    Cluster {
        /// The loop nest.
        cluster: Cluster,
        /// The loop its pieces split (`None` for a kernel run whole).
        split: SplitLoop,
    },
    /// Sets the ones of a pre-zeroed one-hot encoding.
    OneHot(OneHot),
    /// Fills an output with uniform values from Philox4x32-10.
    RandomUniform(RandomUniform),
}

/// `len` uniform f32 values in [0, 1) of `graphc_ir::random`'s layout, at
/// `out`, for the step counter at `step` in the i64 buffer. The kernel's
/// `[lo, hi)` are element blocks (four elements each; the last may be partial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RandomUniform {
    /// Number of values (at most `graphc_ir::random::RANDOM_MAX_ELEMENTS`).
    pub len: usize,
    /// The Philox key.
    pub seed: u64,
    /// Counter word 1.
    pub stream: u32,
    /// Offset of the i64 step counter in the i64 buffer.
    pub step: usize,
    /// With a first row (the i64 after the step counter): the elements per row
    /// it offsets the draw by (`graphc_ir::random::first_element`).
    pub row: Option<usize>,
    /// Offset of the output in the arena.
    pub out: usize,
}

impl RandomUniform {
    /// Element blocks: one Philox call each, the last maybe partial.
    pub(crate) fn blocks(&self) -> usize {
        self.len.div_ceil(graphc_ir::random::ELEMENTS_PER_BLOCK)
    }
}

/// A one-hot encoding: for each of `rows` i64 indices, 1.0 at that column of
/// a `rows × classes` output (none for an index outside `[0, classes)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OneHot {
    /// Number of indices.
    pub rows: usize,
    /// Columns of the output.
    pub classes: usize,
    /// Offset of the indices in the i64 buffer.
    pub indices: usize,
    /// Offset of the output in the arena.
    pub out: usize,
}

/// One action of a step, with resolved offsets: the plan is a list of these
/// and the runtime runs them as they are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step {
    /// Calls a generated kernel over `0..hi` of its split loop, in `chunks`
    /// pieces run on the team (1 = called directly, whole).
    Kernel {
        /// The kernel (its entry point once compiled).
        kernel: KernelId,
        /// Extent of the loop the pieces split (0 for a kernel run whole).
        hi: usize,
        /// Pieces (1 = call directly).
        chunks: usize,
        /// Which loop the pieces split.
        split: SplitLoop,
    },
    /// A matrix product.
    Gemm(GemmCall),
    /// A convolution or one of its gradients (im2col and GEMMs, `conv`).
    Conv(ConvId),
    /// Max pooling or its gradient (`pool`).
    Pool(PoolId),
    /// Copies `len` floats from `from` to `to` and hands them to the run's sum over ranks
    /// (`Op::SumRanks`), which replaces them with their sums.
    SumRanks {
        /// The operand's first float.
        from: usize,
        /// The result's first float.
        to: usize,
        /// Count.
        len: usize,
    },
    /// Sets `len` floats at `offset` to `value`.
    Fill {
        /// First float.
        offset: usize,
        /// Count.
        len: usize,
        /// Value written.
        value: f32,
    },
}

/// Everything the runtime needs, with no reference to the graph.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Floats in the arena; every extent of the plan lies below it.
    pub arena_len: usize,
    /// Entries of the i64 buffer.
    pub ints_len: usize,
    /// Data written into the arena once, at compile time.
    pub init: Vec<(usize, Vec<f32>)>,
    /// Argument slots in `Graph::arguments()` order.
    pub args: Vec<ArgSlot>,
    /// The generated kernels the steps call.
    pub kernels: PrimaryMap<KernelId, Kernel>,
    /// The convolution steps' descriptions.
    pub convs: PrimaryMap<ConvId, ConvStep>,
    /// The max-pooling steps' descriptions.
    pub pools: PrimaryMap<PoolId, PoolStep>,
    /// The step, in order.
    pub steps: Vec<Step>,
    /// (src, dst, len) copies after the step: snapshots first, then assigns.
    pub end: Vec<(usize, usize, usize)>,
    /// Where and when each assign's new value is first complete, in the order a run
    /// completes them (`after`, `None` last).
    pub assigned: Vec<Assigned>,
    /// (offset, len) of each output.
    pub outputs: Vec<(usize, usize)>,
    /// (name, offset, len) of each parameter and state buffer.
    pub persistent: Vec<(String, usize, usize)>,
    /// Assigns done in place (for tests and reports).
    pub in_place: usize,
}

/// When and where an assign's new value is complete during a step, for
/// [`graphc_ir::Ranks::assigned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Assigned {
    /// The persistent buffer assigned (its index in `Plan::persistent`).
    pub slot: usize,
    /// How many of the plan's steps have run once the value is complete;
    /// `None`: only after the end-of-step copies (a value no step computes).
    pub after: Option<usize>,
    /// Arena offset of the value at that point (until the step ends).
    pub offset: usize,
    /// Its floats.
    pub len: usize,
}

/// Max poolings paired with their gradients ([`Lowerer::pool_pairs`]).
#[derive(Default)]
struct PoolPairs {
    /// Per paired gradient: (its input's memory, the forward pooling).
    grads: HashMap<NodeId, (NodeId, NodeId)>,
    /// Per paired forward pooling: the schedule position of its last gradient.
    last_grad: HashMap<NodeId, usize>,
}

/// Matrix products with an inner dimension of at most this many become
/// expressions of the cluster that consumes them (linreg's and logreg's
/// forward products: a `gemm` dispatch cost more than the whole sum).
const FUSE_MAX_K: usize = 4;

fn internal(message: impl Into<String>) -> IrError {
    IrError::Compile(message.into())
}

/// The error for a size or offset that does not fit in memory.
pub(crate) fn too_large(what: impl fmt::Display) -> IrError {
    IrError::Compile(format!("too large to lay out in memory: {what}"))
}

/// Lowers `graph` (verified) to a plan.
pub(crate) fn lower(graph: &Graph) -> Result<Plan, IrError> {
    // A bf16 kernel rounds its operands while packing them: their `RoundBf16` kernels go.
    let absorbs = |u: NodeId, v: NodeId| {
        matches!(graph.node(v).op, Op::Unary(UnaryOp::RoundBf16)) && bf16_gemm(graph, u)
    };
    let f = Fusion::with_absorbed(graph, |k| k <= FUSE_MAX_K && k > 0, absorbs)?;
    Lowerer { g: graph, f }.plan()
}

/// Whether node `u` is a matrix product of two bf16-rounded operands (train.precision: bf16)
/// that runs on the bf16 kernels, which round while packing.
fn bf16_gemm(graph: &Graph, u: NodeId) -> bool {
    let &Op::MatMul {
        transpose_lhs,
        transpose_rhs,
    } = &graph.node(u).op
    else {
        return false;
    };
    let operands = graph.operands(u);
    let &[a, b] = operands.as_slice() else {
        return false;
    };
    let rounded = |x: NodeId| matches!(graph.node(x).op, Op::Unary(UnaryOp::RoundBf16));
    let shape2 = |x: NodeId| -> Option<[usize; 2]> {
        match *graph.shape(x) {
            [p, q] => Some([p, q]),
            _ => None,
        }
    };
    match (shape2(a), shape2(b)) {
        (Some(sa), Some(sb)) if rounded(a) && rounded(b) => {
            GemmCall::new((0, sa, transpose_lhs), (0, sb, transpose_rhs), 0, true).bf16
        }
        _ => false,
    }
}

struct Lowerer<'g> {
    g: &'g Graph,
    f: Fusion,
}

/// The kernels and steps of a plan as they are built.
#[derive(Default)]
struct Steps {
    kernels: PrimaryMap<KernelId, Kernel>,
    convs: PrimaryMap<ConvId, ConvStep>,
    pools: PrimaryMap<PoolId, PoolStep>,
    steps: Vec<Step>,
}

impl Steps {
    fn fill(&mut self, offset: usize, len: usize, value: f32) {
        self.steps.push(Step::Fill { offset, len, value });
    }
}

/// A cluster's accesses and expressions as they are built: equal accesses,
/// loads of one access and equal constants are one entry each.
#[derive(Default)]
struct ClusterBuilder {
    accesses: PrimaryMap<AccessId, Access>,
    exprs: PrimaryMap<ExprId, Expr>,
    consts: HashMap<u32, ExprId>,
    // One load per access: a cluster never stores where it loads (except an
    // in-place update through the same access), so equal loads (logreg's
    // features, read by its forward product and its weight gradient) are one value.
    loads: HashMap<AccessId, ExprId>,
    expr_of: HashMap<NodeId, ExprId>,
}

impl ClusterBuilder {
    fn access(&mut self, offset: usize, strides: Vec<usize>) -> AccessId {
        let a = Access { offset, strides };
        match self.accesses.iter().find(|(_, x)| **x == a) {
            Some((id, _)) => id,
            None => self.accesses.push(a),
        }
    }

    fn load(&mut self, a: AccessId) -> ExprId {
        *self
            .loads
            .entry(a)
            .or_insert_with(|| self.exprs.push(Expr::Load(a)))
    }

    /// One expression per constant value (by its bits).
    fn constant(&mut self, c: f32) -> ExprId {
        *self
            .consts
            .entry(c.to_bits())
            .or_insert_with(|| self.exprs.push(Expr::Const(c)))
    }

    fn compute(&mut self, c: Compute) -> ExprId {
        self.exprs.push(Expr::Compute(c))
    }
}

impl<'g> Lowerer<'g> {
    fn shape(&self, v: NodeId) -> &'g [usize] {
        self.g.shape(v)
    }

    fn op(&self, v: NodeId) -> &'g Op {
        &self.g.node(v).op
    }

    /// The element count of `v`, or an error when it overflows `usize`.
    fn numel(&self, v: NodeId) -> Result<usize, IrError> {
        let ty = &self.g.node(v).ty;
        ty.checked_numel()
            .ok_or_else(|| too_large(format!("{v} ({ty})")))
    }

    fn plan(self) -> Result<Plan, IrError> {
        let g = self.g;
        let f = &self.f;
        let n = g.id_bound();
        let schedule = f.order();

        // In-place assigns: the kernel computing an assign's value writes it
        // over the target when every other reader of the target has run before,
        // and a reader in that kernel reads only the element it computes.
        let mut in_place: Vec<Option<NodeId>> = vec![None; n];
        let mut assign_in_place = vec![false; g.assigns().len()];
        for (ai, a) in g.assigns().iter().enumerate() {
            let b = f.resolve(a.value);
            let Class::Value(gb) = f.class(b) else {
                continue;
            };
            let p = a.target;
            if in_place[b.index()].is_some() || f.read_at_end(p) {
                continue;
            }
            let at = |r: GroupId| f.position(r);
            let safe = f.readers(p).iter().all(|&(r, u)| {
                at(r) < at(gb) || (r == gb && !reads_elsewhere(self.op(u).access()))
            });
            if safe {
                in_place[b.index()] = Some(p);
                assign_in_place[ai] = true;
            }
        }

        // Fixed slots: persistent buffers, arguments, constants.
        let mut slot = vec![usize::MAX; n];
        let mut top = 0usize;
        let mut fixed = |len: usize| -> Result<usize, IrError> {
            let s = top;
            top = round_up(len, LINE)
                .and_then(|l| top.checked_add(l))
                .ok_or_else(|| too_large("the step's fixed buffers"))?;
            Ok(s)
        };
        let mut persistent = Vec::new();
        for id in g.persistent() {
            let len = self.numel(id)?;
            slot[id.index()] = fixed(len)?;
            let name = self.op(id).leaf_name().unwrap_or_default().to_string();
            persistent.push((name, slot[id.index()], len));
        }
        let mut ints_len = 0usize;
        let mut args = Vec::new();
        for &id in g.arguments() {
            let ty = &g.node(id).ty;
            let len = self.numel(id)?;
            let offset = match ty.dtype {
                DType::F32 => fixed(len)?,
                DType::I64 => {
                    let offset = ints_len;
                    ints_len = ints_len
                        .checked_add(len)
                        .ok_or_else(|| too_large("the step's index buffer"))?;
                    offset
                }
            };
            slot[id.index()] = offset;
            args.push(ArgSlot {
                name: self.op(id).leaf_name().unwrap_or_default().to_string(),
                dtype: ty.dtype,
                len,
                offset,
            });
        }
        let mut init = Vec::new();
        for &v in f.live() {
            let data = if let Op::Constant(d) = self.op(v) {
                d.clone()
            } else if let (Class::Uniform(c), true) = (f.class(v), f.is_read(v)) {
                vec![c; self.numel(v)?]
            } else {
                continue;
            };
            slot[v.index()] = fixed(data.len())?;
            init.push((slot[v.index()], data));
        }
        let dynamic_base = top;
        let pairs = self.pool_pairs()?;

        // Liveness-planned slots for kernel results, and the scratch regions
        // of convolution steps, live during their own step only (allocated
        // after its results, released with its operands' last reads).
        let mut stored = Vec::new();
        let mut buffers = Vec::new();
        let mut scratch_of = Vec::new();
        // Argmax index buffers: (forward pooling, buffer), live from the
        // forward step to the last gradient that reads them.
        let mut index_of = Vec::new();
        // Each convolution's step, planned once here and lowered as is.
        let mut convs: HashMap<NodeId, ConvStep> = HashMap::new();
        for (t, &gi) in schedule.iter().enumerate() {
            for &m in &f.groups()[gi].members {
                let needs_memory = match f.class(m) {
                    Class::Value(_) => f.is_read(m),
                    Class::Dead
                    | Class::Leaf
                    | Class::Uniform(_)
                    | Class::Alias(_)
                    | Class::Sink(_)
                    | Class::Single(_) => true,
                };
                if !needs_memory {
                    continue;
                }
                if let Some(p) = in_place[m.index()] {
                    slot[m.index()] = slot[p.index()];
                    continue;
                }
                let last = if f.read_at_end(m) {
                    None
                } else {
                    // A gradient reading a pooling's argmaxes back does not read its input.
                    let last_use = f
                        .readers(m)
                        .iter()
                        .filter(|&&(_, u)| pairs.grads.get(&u).is_none_or(|&(input, _)| input != m))
                        .map(|&(r, _)| f.position(r))
                        .max();
                    match last_use {
                        Some(last) if last > t => Some(last),
                        _ => return Err(internal(format!("{m} is stored but never read"))),
                    }
                };
                stored.push(m);
                buffers.push(Lifetime {
                    len: self.numel(m)?,
                    def: t,
                    last,
                });
            }
            let v = f.groups()[gi].members[0];
            if let (Class::Single(_), Some(step)) = (f.class(v), self.conv_step(v)?) {
                if step.sizes.scratch_len > 0 {
                    scratch_of.push((v, buffers.len()));
                    buffers.push(Lifetime {
                        len: step.sizes.scratch_len,
                        def: t,
                        last: Some(t),
                    });
                }
                convs.insert(v, step);
            }
            if let Some(&last) = pairs.last_grad.get(&v) {
                index_of.push((v, buffers.len()));
                buffers.push(Lifetime {
                    len: self.numel(v)?,
                    def: t,
                    last: Some(last),
                });
            }
        }
        let dynamic = || too_large("the step's intermediate buffers");
        let mut alloc = Allocator::new(LINE);
        let offsets = assign_offsets(&mut alloc, schedule.len(), &buffers).ok_or_else(dynamic)?;
        for &(v, b) in &scratch_of {
            if let Some(step) = convs.get_mut(&v) {
                step.scratch = dynamic_base.checked_add(offsets[b]).ok_or_else(dynamic)?;
            }
        }
        let mut index_at = HashMap::new();
        for &(v, b) in &index_of {
            index_at.insert(v, dynamic_base.checked_add(offsets[b]).ok_or_else(dynamic)?);
        }
        for (&grad, &(_, forward)) in &pairs.grads {
            if let Some(&at) = index_at.get(&forward) {
                index_at.insert(grad, at);
            }
        }
        let mut extra: Vec<usize> = scratch_of
            .iter()
            .chain(&index_of)
            .map(|&(_, b)| b)
            .collect();
        extra.sort_unstable();
        let mut extra = extra.into_iter().peekable();
        let mut results = Vec::with_capacity(stored.len());
        for (b, &offset) in offsets.iter().enumerate() {
            if extra.next_if_eq(&b).is_none() {
                results.push(offset);
            }
        }
        for (&m, offset) in stored.iter().zip(results) {
            slot[m.index()] = dynamic_base.checked_add(offset).ok_or_else(dynamic)?;
        }
        let slot_of = |v: NodeId| slot[f.resolve(v).index()];

        // After the step: snapshot what copies would overwrite, then copy.
        let fallback_targets: Vec<NodeId> = g
            .assigns()
            .iter()
            .zip(&assign_in_place)
            .filter(|(_, &done)| !done)
            .map(|(a, _)| a.target)
            .collect();
        let mut snapshots = Vec::new();
        let mut copies = Vec::new();
        // Where the end-of-step value of resolved node `b` is read from: its
        // slot, or a snapshot of it when an assign copy overwrites that slot.
        let mut end_source = |b: NodeId, len: usize| -> Result<usize, IrError> {
            let src = slot[b.index()];
            if !fallback_targets.contains(&b) {
                return Ok(src);
            }
            let tmp = alloc
                .alloc(len)
                .and_then(|offset| dynamic_base.checked_add(offset))
                .ok_or_else(dynamic)?;
            snapshots.push((src, tmp, len));
            Ok(tmp)
        };
        let mut outputs = Vec::new();
        for o in g.outputs() {
            let len = self.numel(o.node)?;
            outputs.push((end_source(f.resolve(o.node), len)?, len));
        }
        for (a, &done) in g.assigns().iter().zip(&assign_in_place) {
            if done {
                continue;
            }
            let len = self.numel(a.target)?;
            let src = end_source(f.resolve(a.value), len)?;
            copies.push((src, slot[a.target.index()], len));
        }
        snapshots.extend(copies);
        let arena_len = dynamic_base
            .checked_add(alloc.top())
            .ok_or_else(|| too_large("the step's memory"))?;
        // Generated code and the GEMM address floats by byte offsets from the
        // arena base: every byte offset must fit in an `isize`.
        if arena_len
            .checked_mul(std::mem::size_of::<f32>())
            .is_none_or(|bytes| bytes > isize::MAX as usize)
        {
            return Err(too_large(format!("the step's memory ({arena_len} floats)")));
        }

        // The steps, with kernels as data; how many there are once each group
        // (by position) is done.
        let mut out = Steps::default();
        let mut done = Vec::with_capacity(schedule.len());
        for &gi in schedule {
            let v = self.f.groups()[gi].members[0];
            match self.f.class(v) {
                Class::Single(_) => self.single_op(v, &slot_of, &convs, &index_at, &mut out)?,
                Class::Value(_) | Class::Sink(_) => self.cluster(gi, &slot_of, &mut out)?,
                Class::Dead | Class::Leaf | Class::Uniform(_) | Class::Alias(_) => {
                    return Err(internal(format!("group {gi} has no kernel member {v}")));
                }
            }
            done.push(out.steps.len());
        }
        let targets = g.persistent();
        let slot_index = |target: NodeId| targets.iter().position(|&p| p == target);
        let mut assigned = Vec::with_capacity(g.assigns().len());
        for (a, &in_place) in g.assigns().iter().zip(&assign_in_place) {
            let slot_of_target = slot_index(a.target)
                .ok_or_else(|| internal(format!("assign target {} is not persistent", a.target)))?;
            let len = self.numel(a.target)?;
            let b = f.resolve(a.value);
            // A value a group computes is complete once the group's steps ran, in the
            // target (in place) or in its own slot, which is live to the end. Any other
            // (a persistent buffer or argument, a constant) is reported from the target.
            assigned.push(match f.group_of(b) {
                Some(group) => Assigned {
                    slot: slot_of_target,
                    after: Some(*done.get(f.position(group)).ok_or_else(|| {
                        internal(format!(
                            "assign value {b} is computed by no scheduled group"
                        ))
                    })?),
                    offset: if in_place {
                        slot[a.target.index()]
                    } else {
                        slot[b.index()]
                    },
                    len,
                },
                None => Assigned {
                    slot: slot_of_target,
                    after: None,
                    offset: slot[a.target.index()],
                    len,
                },
            });
        }
        // In the order a run completes them; those after the end-of-step copies last.
        assigned.sort_by_key(|a| a.after.unwrap_or(usize::MAX));
        let in_place = assign_in_place.iter().filter(|&&d| d).count();
        Ok(Plan {
            arena_len,
            ints_len,
            init,
            args,
            kernels: out.kernels,
            convs: out.convs,
            pools: out.pools,
            steps: out.steps,
            end: snapshots,
            assigned,
            outputs,
            persistent,
            in_place,
        })
    }

    /// The convolution step of `v` at offset 0: `None` for any other op, and
    /// for a convolution with nothing to compute (an empty result) or nothing
    /// to sum (no input channels, output channels or samples: zeros).
    fn conv_step(&self, v: NodeId) -> Result<Option<ConvStep>, IrError> {
        let ops = self.f.operands(v);
        let shape = |i: usize| self.shape(ops[i]);
        let (kind, window, groups, dims) = match self.op(v) {
            Op::Conv { window, groups } => {
                let dims = (shape(0)[0], shape(0)[1], shape(1)[0]);
                (ConvKind::Forward, window, *groups, dims)
            }
            Op::ConvInputGrad { window, groups } => {
                let dims = (shape(0)[0], self.shape(v)[1], shape(0)[1]);
                (ConvKind::InputGrad, window, *groups, dims)
            }
            Op::ConvWeightGrad { window, groups } => {
                let dims = (shape(0)[0], shape(0)[1], shape(1)[1]);
                (ConvKind::WeightGrad, window, *groups, dims)
            }
            Op::Input(_)
            | Op::Param(_)
            | Op::State(_)
            | Op::Hyper(_)
            | Op::Fill(_)
            | Op::Constant(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Compare(_)
            | Op::Select
            | Op::Reduce { .. }
            | Op::Broadcast(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::MatMul { .. }
            | Op::OneHot(_)
            | Op::RandomUniform { .. }
            | Op::SumRanks
            | Op::MaxPool(_)
            | Op::MaxPoolGrad(_) => return Ok(None),
        };
        let (n, c, o) = dims;
        if self.numel(v)? == 0 || n == 0 || c == 0 || o == 0 {
            return Ok(None);
        }
        let step = ConvStep::new(kind, window, (n, c, o, groups), crate::team::threads())
            .ok_or_else(|| too_large(format!("{v} ({})", self.op(v).mnemonic())))?;
        Ok(Some(step))
    }

    /// The max poolings whose argmaxes are kept for their gradients: a
    /// forward `max_pool(x, x)` whose step writes each window's argmax, and
    /// every later `max_pool_grad(x, dy)` of the same window and `x` (`dy`
    /// another tensor), whose step scatters through those argmaxes instead of
    /// searching `x` again. `x` then need not live until the backward pass.
    fn pool_pairs(&self) -> Result<PoolPairs, IrError> {
        let f = &self.f;
        let mut pairs = PoolPairs::default();
        for &v in f.live() {
            let (Op::MaxPool(window), Class::Single(gv)) = (self.op(v), f.class(v)) else {
                continue;
            };
            let &[x, x2] = f.operands(v) else {
                continue;
            };
            let fits = PoolStep::new(false, window, 1, 1)
                .is_some_and(|step| u32::try_from(step.in_sp).is_ok());
            if x != x2 || !fits || self.numel(v)? == 0 {
                continue;
            }
            let input = f.resolve(x);
            for u in self.g.users(x) {
                let later = f
                    .group_of(u)
                    .is_some_and(|gu| f.position(gu) > f.position(gv));
                let same = matches!(self.op(u), Op::MaxPoolGrad(w) if w == window)
                    && f.operands(u).first() == Some(&x)
                    && f.operands(u)
                        .get(1)
                        .is_some_and(|&dy| f.resolve(dy) != input);
                if !(same && later && matches!(f.class(u), Class::Single(_))) {
                    continue;
                }
                pairs.grads.insert(u, (input, v));
                let last = pairs.last_grad.entry(v).or_insert(0);
                *last = (*last).max(f.position(f.group_of(u).unwrap_or(gv)));
            }
        }
        Ok(pairs)
    }

    /// The steps of a single-op group: a GEMM, a fill and a one-hot kernel,
    /// a convolution or a max pooling (with its argmax index buffer, if
    /// `index_at` has one).
    fn single_op(
        &self,
        v: NodeId,
        slot_of: &dyn Fn(NodeId) -> usize,
        convs: &HashMap<NodeId, ConvStep>,
        index_at: &HashMap<NodeId, usize>,
        out: &mut Steps,
    ) -> Result<(), IrError> {
        let operands = self.f.operands(v);
        match (self.op(v), operands) {
            (
                &Op::MatMul {
                    transpose_lhs,
                    transpose_rhs,
                },
                &[a, b],
            ) => {
                let shape2 = |x: NodeId| [self.shape(x)[0], self.shape(x)[1]];
                let call = GemmCall::new(
                    (slot_of(a), shape2(a), transpose_lhs),
                    (slot_of(b), shape2(b), transpose_rhs),
                    slot_of(v),
                    bf16_gemm(self.g, v),
                );
                // An absorbed operand's slot holds its unrounded source: only a bf16 kernel,
                // which rounds while packing, may read it.
                if (self.f.absorbed(a) || self.f.absorbed(b)) && !call.bf16 {
                    return Err(internal(format!("{v} reads an unrounded operand in f32")));
                }
                let len = self.numel(v)?;
                if len == 0 {
                } else if call.k == 0 {
                    out.fill(call.dst, len, 0.0);
                } else {
                    out.steps.push(Step::Gemm(call));
                }
            }
            (&Op::OneHot(classes), &[indices]) => {
                let rows = self.numel(indices)?;
                let len = self.numel(v)?;
                let out_offset = slot_of(v);
                if len > 0 {
                    out.fill(out_offset, len, 0.0);
                    let kernel = out.kernels.push(Kernel::OneHot(OneHot {
                        rows,
                        classes,
                        indices: slot_of(indices),
                        out: out_offset,
                    }));
                    out.steps.push(Step::Kernel {
                        kernel,
                        hi: 0,
                        chunks: 1,
                        split: SplitLoop::None,
                    });
                }
            }
            (Op::Conv { .. } | Op::ConvInputGrad { .. } | Op::ConvWeightGrad { .. }, &[a, b]) => {
                let len = self.numel(v)?;
                match convs.get(&v).cloned() {
                    Some(mut step) => {
                        let (x, w, y) = match step.kind {
                            ConvKind::Forward => (a, b, v),
                            ConvKind::InputGrad => (v, b, a),
                            ConvKind::WeightGrad => (a, v, b),
                        };
                        (step.x, step.w, step.y) = (slot_of(x), slot_of(w), slot_of(y));
                        let id = out.convs.push(step);
                        out.steps.push(Step::Conv(id));
                    }
                    None if len > 0 => out.fill(slot_of(v), len, 0.0),
                    None => {}
                }
            }
            (&Op::MaxPool(ref window) | &Op::MaxPoolGrad(ref window), &[x, y]) => {
                let grad = matches!(self.op(v), Op::MaxPoolGrad(_));
                if self.numel(v)? > 0 {
                    if window.axes.len() > MAX_AXES {
                        return Err(internal(format!(
                            "{v}: max pooling over {} spatial axes (the JIT handles {MAX_AXES})",
                            window.axes.len()
                        )));
                    }
                    let shape = self.shape(x);
                    let planes = shape[0]
                        .checked_mul(shape[1])
                        .ok_or_else(|| too_large(format!("{v} (planes)")))?;
                    let mut step = PoolStep::new(grad, window, planes, crate::team::threads())
                        .ok_or_else(|| too_large(format!("{v} ({})", self.op(v).mnemonic())))?;
                    (step.x, step.v, step.out) = (slot_of(x), slot_of(y), slot_of(v));
                    step.index = index_at.get(&v).copied();
                    let id = out.pools.push(step);
                    out.steps.push(Step::Pool(id));
                }
            }
            (
                Op::Conv { .. }
                | Op::ConvInputGrad { .. }
                | Op::ConvWeightGrad { .. }
                | Op::MaxPool(_)
                | Op::MaxPoolGrad(_),
                _,
            ) => {
                return Err(internal(format!(
                    "{v} ({}) has {} operands",
                    self.op(v).mnemonic(),
                    operands.len()
                )));
            }
            (&Op::RandomUniform { seed, stream, .. }, &[step]) => {
                let row = (self.numel(step)? == 2)
                    .then(|| graphc_ir::random::row_elements(self.shape(v)));
                self.random_uniform(v, (seed, stream, row), slot_of(step), slot_of(v), out)?;
            }
            (Op::SumRanks, &[x]) => {
                let len = self.numel(v)?;
                if len > 0 {
                    let (from, to) = (slot_of(x), slot_of(v));
                    out.steps.push(Step::SumRanks { from, to, len });
                }
            }
            (
                Op::Input(_)
                | Op::Param(_)
                | Op::State(_)
                | Op::Hyper(_)
                | Op::Fill(_)
                | Op::Constant(_)
                | Op::Unary(_)
                | Op::Binary(_)
                | Op::Compare(_)
                | Op::Select
                | Op::Reduce { .. }
                | Op::Broadcast(_)
                | Op::Reshape(_)
                | Op::Transpose(_)
                | Op::MatMul { .. }
                | Op::OneHot(_)
                | Op::RandomUniform { .. }
                | Op::SumRanks,
                _,
            ) => {
                return Err(internal(format!(
                    "{v} ({} with {} operands) is not a single-op kernel",
                    self.op(v).mnemonic(),
                    operands.len()
                )));
            }
        }
        Ok(())
    }

    /// The steps of random draw `v` (its seed, stream and, with a first row,
    /// the elements per row): one Philox kernel over its element blocks, split
    /// in row pieces across the team when large (pieces write disjoint blocks,
    /// and every block depends only on its index).
    fn random_uniform(
        &self,
        v: NodeId,
        (seed, stream, row): (u64, u32, Option<usize>),
        step: usize,
        out_offset: usize,
        out: &mut Steps,
    ) -> Result<(), IrError> {
        let len = self.numel(v)?;
        if len == 0 {
            return Ok(());
        }
        let random = RandomUniform {
            len,
            seed,
            stream,
            step,
            row,
            out: out_offset,
        };
        let hi = random.blocks();
        let threads = crate::team::threads();
        let (split, chunks) = if threads < 2 || len < SPLIT_MIN_ELEMENTS {
            (SplitLoop::None, 1)
        } else {
            (SplitLoop::Outer, threads)
        };
        let kernel = out.kernels.push(Kernel::RandomUniform(random));
        out.steps.push(Step::Kernel {
            kernel,
            hi,
            chunks,
            split,
        });
        Ok(())
    }

    /// The steps of cluster `gi`: fills of the reductions that accumulate in
    /// memory, then one generated loop nest.
    fn cluster(
        &self,
        gi: GroupId,
        slot_of: &dyn Fn(NodeId) -> usize,
        out: &mut Steps,
    ) -> Result<(), IrError> {
        let group = &self.f.groups()[gi];
        let domain = group.domain.as_slice();
        let mut c = ClusterBuilder::default();
        let mut stores = Vec::new();
        let mut reductions = Vec::new();
        let mut reduction_nodes = Vec::new();
        // Every access is first written over the axes of a member's shape, then
        // over the domain, which refines them all (reshapes join clusters).
        let over = |shape: &[usize], strides: Vec<usize>| -> Result<Vec<usize>, IrError> {
            strides_over(domain, shape, &strides).ok_or_else(|| {
                internal(format!(
                    "{gi}: the domain {domain:?} does not refine {shape:?}"
                ))
            })
        };
        for &u in &group.members {
            let operand = |c: &mut ClusterBuilder, o: NodeId| -> Result<ExprId, IrError> {
                // The rule of `graphc_opt::fusion`: a value of this cluster, directly
                // or through reshapes, is in a register.
                let b = self.f.resolve(o);
                Ok(match self.f.class(o) {
                    Class::Uniform(value) => c.constant(value),
                    Class::Value(_) | Class::Alias(_) if self.f.class(b) == Class::Value(gi) => *c
                        .expr_of
                        .get(&b)
                        .ok_or_else(|| internal(format!("{o} is used before it is computed")))?,
                    Class::Value(_)
                    | Class::Dead
                    | Class::Leaf
                    | Class::Alias(_)
                    | Class::Sink(_)
                    | Class::Single(_) => {
                        let shape = self.shape(o);
                        let a = c.access(slot_of(o), over(shape, row_major(shape))?);
                        c.load(a)
                    }
                })
            };
            let ops = self.f.operands(u);
            let expr = match self.op(u) {
                Op::Broadcast(_) => {
                    let o = ops[0];
                    let strides = broadcast_strides(self.shape(o), self.shape(u));
                    Expr::Load(c.access(slot_of(o), over(self.shape(u), strides)?))
                }
                Op::Transpose(perm) => {
                    let o = ops[0];
                    let rm = row_major(self.shape(o));
                    let strides = perm.iter().map(|&p| rm[p]).collect();
                    Expr::Load(c.access(slot_of(o), over(self.shape(u), strides)?))
                }
                &Op::MatMul { transpose_rhs, .. } if self.f.class(u) == Class::Sink(gi) => {
                    // A column product aᵀ·b over this cluster's rows (graphc-opt's
                    // column products): result column j sums a(i)·b(i, j) from 0 in
                    // row order, as the interpreter does, in a running sum of its own.
                    let a = operand(&mut c, ops[0])?;
                    let a_shape = self.shape(ops[0]);
                    let b = ops[1];
                    let b_cols = self.shape(b)[1];
                    for j in 0..self.shape(u)[1] {
                        let (offset, stride) = if transpose_rhs {
                            (j * b_cols, 1)
                        } else {
                            (j, b_cols)
                        };
                        let access = c.access(slot_of(b) + offset, over(a_shape, vec![stride, 0])?);
                        let y = c.load(access);
                        let value = c.compute(Compute::Binary(BinaryOp::Mul, a, y));
                        let sum = c.access(slot_of(u) + j, over(a_shape, vec![0, 0])?);
                        reductions.push(Reduction {
                            op: ReduceOp::Sum,
                            value,
                            access: sum,
                        });
                        reduction_nodes.push(u);
                    }
                    continue;
                }
                &Op::MatMul {
                    transpose_lhs,
                    transpose_rhs,
                } => {
                    // Σ_p a(i, p)·b(p, j) over the domain [m, n], summed from 0 in
                    // p order as the interpreter does.
                    let (a, b) = (ops[0], ops[1]);
                    let ([p0, q0], [_, s0]) = (
                        [self.shape(a)[0], self.shape(a)[1]],
                        [self.shape(b)[0], self.shape(b)[1]],
                    );
                    let (k, a_rs, a_cs) = if transpose_lhs {
                        (p0, 1, q0)
                    } else {
                        (q0, q0, 1)
                    };
                    let (b_rs, b_cs) = if transpose_rhs { (1, s0) } else { (s0, 1) };
                    let mut acc = c.constant(0.0);
                    let mut sum = None;
                    let shape = self.shape(u);
                    for p in 0..k {
                        let x = c.access(slot_of(a) + p * a_cs, over(shape, vec![a_rs, 0])?);
                        let x = c.load(x);
                        let y = c.access(slot_of(b) + p * b_rs, over(shape, vec![0, b_cs])?);
                        let y = c.load(y);
                        let product = c.compute(Compute::Binary(BinaryOp::Mul, x, y));
                        let term = Compute::Binary(BinaryOp::Add, acc, product);
                        if p + 1 < k {
                            acc = c.compute(term);
                        } else {
                            sum = Some(term);
                        }
                    }
                    let sum =
                        sum.ok_or_else(|| internal(format!("{u}: a fused product of no terms")))?;
                    Expr::Compute(sum)
                }
                Op::Unary(op) => Expr::Compute(Compute::Unary(*op, operand(&mut c, ops[0])?)),
                Op::Binary(op) => {
                    let x = operand(&mut c, ops[0])?;
                    let y = operand(&mut c, ops[1])?;
                    Expr::Compute(Compute::Binary(*op, x, y))
                }
                Op::Compare(op) => {
                    let x = operand(&mut c, ops[0])?;
                    let y = operand(&mut c, ops[1])?;
                    Expr::Compute(Compute::Compare(*op, x, y))
                }
                Op::Select => {
                    let m = operand(&mut c, ops[0])?;
                    let x = operand(&mut c, ops[1])?;
                    let y = operand(&mut c, ops[2])?;
                    Expr::Compute(Compute::Select(m, x, y))
                }
                Op::Reduce { op, .. } => {
                    let value = operand(&mut c, ops[0])?;
                    let x = self.shape(ops[0]);
                    let strides = broadcast_strides(self.shape(u), x);
                    let access = c.access(slot_of(u), over(x, strides)?);
                    reductions.push(Reduction {
                        op: *op,
                        value,
                        access,
                    });
                    reduction_nodes.push(u);
                    continue;
                }
                Op::Input(_)
                | Op::Param(_)
                | Op::State(_)
                | Op::Hyper(_)
                | Op::Fill(_)
                | Op::Constant(_)
                | Op::Reshape(_)
                | Op::OneHot(_)
                | Op::Conv { .. }
                | Op::ConvInputGrad { .. }
                | Op::ConvWeightGrad { .. }
                | Op::MaxPool(_)
                | Op::MaxPoolGrad(_)
                | Op::RandomUniform { .. }
                | Op::SumRanks => {
                    let op = self.op(u).mnemonic();
                    return Err(internal(format!("{u} ({op}) is not part of a cluster")));
                }
            };
            let e = c.exprs.push(expr);
            c.expr_of.insert(u, e);
            if self.f.is_read(u) {
                stores.push((e, c.access(slot_of(u), row_major(domain))));
            }
        }
        let numel = domain
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| too_large(format!("the domain {domain:?} of {gi}")))?;
        if numel == 0 {
            for (r, &u) in reductions.iter().zip(&reduction_nodes) {
                out.fill(slot_of(u), self.numel(u)?, identity(r.op));
            }
            return Ok(());
        }
        let mut accesses = c.accesses;
        let strides: Vec<Vec<usize>> = accesses.values().map(|a| a.strides.clone()).collect();
        let (dims, strides) = coalesce(domain, &strides);
        for (a, s) in accesses.values_mut().zip(strides) {
            a.strides = s;
        }
        let cluster = Cluster {
            dims,
            accesses,
            exprs: c.exprs,
            stores,
            reductions,
        };
        for (r, &u) in cluster.reductions.iter().zip(&reduction_nodes) {
            if cluster.needs_init(r) {
                out.fill(slot_of(u), self.numel(u)?, identity(r.op));
            }
        }
        let threads = crate::team::threads();
        let inner = cluster.dims.len() - 1;
        let column_reductions = cluster
            .reductions
            .iter()
            .all(|r| cluster.accesses[r.access].strides[inner] != 0);
        let (split, chunks) = if threads < 2 || numel < SPLIT_MIN_ELEMENTS {
            (SplitLoop::None, 1)
        } else if cluster.reductions.is_empty() && cluster.dims[0] >= 2 {
            // Row blocks (column blocks to match the GEMM that produced an
            // operand measured slower on mlp_m: 620 µs a step against 527).
            (SplitLoop::Outer, threads.min(cluster.dims[0]))
        } else if inner > 0 && column_reductions && cluster.dims[inner] >= 2 * SPLIT_MIN_COLUMNS {
            // Column sums (bias gradients): column blocks keep each sum on one thread.
            let pieces = threads.min(cluster.dims[inner] / SPLIT_MIN_COLUMNS);
            (SplitLoop::Inner, pieces)
        } else {
            (SplitLoop::None, 1)
        };
        let hi = match split {
            SplitLoop::Inner => cluster.dims[inner],
            SplitLoop::None | SplitLoop::Outer => cluster.dims[0],
        };
        let kernel = out.kernels.push(Kernel::Cluster { cluster, split });
        out.steps.push(Step::Kernel {
            kernel,
            hi,
            chunks,
            split,
        });
        Ok(())
    }
}

impl fmt::Display for Step {
    /// One line, without the kernel's description.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Kernel {
                kernel,
                hi,
                chunks,
                split,
            } => match split {
                SplitLoop::None => write!(f, "kernel {kernel}, whole"),
                SplitLoop::Outer => write!(f, "kernel {kernel}, rows 0..{hi} in {chunks} pieces"),
                SplitLoop::Inner => {
                    write!(f, "kernel {kernel}, columns 0..{hi} in {chunks} pieces")
                }
            },
            Step::Gemm(c) => write!(f, "gemm {c}"),
            Step::Conv(id) => write!(f, "{id}"),
            Step::Pool(id) => write!(f, "{id}"),
            Step::Fill { offset, len, value } => write!(f, "fill {len} at {offset} with {value}"),
            Step::SumRanks { from, to, len } => {
                write!(f, "sum over ranks of {len} at {from} into {to}")
            }
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kernel::Cluster { cluster, .. } => write!(f, "{cluster}"),
            Kernel::OneHot(o) => write!(
                f,
                "one-hot of {} indices at {} into {}x{} at {}",
                o.rows, o.indices, o.rows, o.classes, o.out
            ),
            Kernel::RandomUniform(r) => write!(
                f,
                "random uniform of {} values, seed {} stream {} step at {}{}, into {}",
                r.len,
                r.seed,
                r.stream,
                r.step,
                match r.row {
                    Some(row) => format!(" from its row ×{row}"),
                    None => String::new(),
                },
                r.out
            ),
        }
    }
}

impl fmt::Display for Plan {
    /// The plan as text, one line per step (a kernel step with its kernel),
    /// then the end-of-step copies, outputs and persistent buffers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "arena {} floats, {} ints, {} kernels, {} in-place assigns",
            self.arena_len,
            self.ints_len,
            self.kernels.len(),
            self.in_place
        )?;
        for (offset, data) in &self.init {
            writeln!(f, "init {} floats at {offset}", data.len())?;
        }
        for a in &self.args {
            writeln!(f, "arg {:?}: {} {} at {}", a.name, a.len, a.dtype, a.offset)?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            write!(f, "{i:>3}: {step}")?;
            match step {
                Step::Kernel { kernel, .. } => {
                    if let Some(k) = self.kernels.get(*kernel) {
                        write!(f, ": {k}")?;
                    }
                }
                Step::Conv(id) => {
                    if let Some(c) = self.convs.get(*id) {
                        write!(f, ": {c}")?;
                    }
                }
                Step::Pool(id) => {
                    if let Some(p) = self.pools.get(*id) {
                        write!(f, ": {p}")?;
                    }
                }
                Step::Gemm(_) | Step::Fill { .. } | Step::SumRanks { .. } => {}
            }
            writeln!(f)?;
        }
        for (src, dst, len) in &self.end {
            writeln!(f, "end: copy {len} from {src} to {dst}")?;
        }
        for (i, (offset, len)) in self.outputs.iter().enumerate() {
            writeln!(f, "output {i}: {len} at {offset}")?;
        }
        for (name, offset, len) in &self.persistent {
            writeln!(f, "persistent {name:?}: {len} at {offset}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use expect_test::expect;
    use graphc_ir::{BinaryOp, Graph, TensorType};
    use graphc_opt::fusion::Fusion;

    use super::*;

    /// An `inputs` → 3 linear layer on a batch of 2, relu, and the sum of it
    /// all (with more than `FUSE_MAX_K` inputs, the product is a GEMM).
    pub(crate) fn linear_relu_sum(inputs: usize) -> Graph {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[2, inputs]));
        let w = g.param("w", &[inputs, 3]);
        let b = g.param("b", &[3]);
        let xw = g.matmul(x, w, false, false).unwrap();
        let b = g.broadcast_to(b, &[2, 3]).unwrap();
        let y = g.binary(BinaryOp::Add, xw, b).unwrap();
        let zero = g.fill(0.0, &[2, 3]);
        let r = g.binary(BinaryOp::Max, y, zero).unwrap();
        let s = g.sum_all(r).unwrap();
        g.add_output("s", s);
        g
    }

    #[test]
    fn the_plan_of_a_small_linear_layer_reads_as_text() {
        let plan = lower(&linear_relu_sum(4)).unwrap();
        plan.validate().unwrap();
        expect![[r#"
            arena 64 floats, 0 ints, 1 kernels, 0 in-place assigns
            arg "x": 8 f32 at 32
              0: fill 1 at 48 with 0
              1: kernel k0, whole: loops [2, 3], 20 exprs; accesses a0=16[0, 1] a1=32[4, 0] a2=0[0, 1] a3=33[4, 0] a4=3[0, 1] a5=34[4, 0] a6=6[0, 1] a7=35[4, 0] a8=9[0, 1] a9=48[0, 0]; Sum e19->a9
            output 0: 1 at 48
            persistent "w": 12 at 0
            persistent "b": 3 at 16
        "#]].assert_eq(&plan.to_string());
    }

    /// `r(relu(a)) · r(w)ᵀ` with `r` the bf16 rounding, and `r(w)` also an output when `keep`.
    fn rounded_layer(keep: bool) -> (Graph, NodeId) {
        let mut g = Graph::new();
        let a = g.input("a", TensorType::f32(&[256, 1024]));
        let w = g.param("w", &[512, 1024]);
        let zero = g.fill(0.0, &[256, 1024]);
        let h = g.binary(BinaryOp::Max, a, zero).unwrap();
        let h = g.unary(UnaryOp::RoundBf16, h).unwrap();
        let rw = g.unary(UnaryOp::RoundBf16, w).unwrap();
        let y = g.matmul(h, rw, false, true).unwrap();
        g.add_output("y", y);
        if keep {
            g.add_output("rw", rw);
        }
        (g, rw)
    }

    /// A bf16 product reads its operands' unrounded sources and rounds while packing: no
    /// kernel computes a rounding only products read; one also read elsewhere stays.
    #[test]
    fn bf16_products_absorb_their_operands_rounding() {
        if !GemmCall::new((0, [256, 1024], false), (0, [512, 1024], true), 0, true).bf16 {
            return;
        }
        for keep in [false, true] {
            let (g, rw) = rounded_layer(keep);
            let f = Fusion::with_absorbed(&g, |_| false, |u, _| bf16_gemm(&g, u)).unwrap();
            assert_eq!(f.absorbed(rw), !keep);
            let plan = lower(&g).unwrap();
            plan.validate().unwrap();
            let gemms: Vec<&GemmCall> = plan
                .steps
                .iter()
                .filter_map(|s| match s {
                    Step::Gemm(c) => Some(c),
                    Step::Kernel { .. }
                    | Step::Conv(_)
                    | Step::Pool(_)
                    | Step::Fill { .. }
                    | Step::SumRanks { .. } => None,
                })
                .collect();
            assert_eq!(gemms.len(), 1);
            assert!(gemms[0].bf16);
            // relu's kernel computes h (read unrounded by the product); rounding w is a
            // kernel of its own only when w's rounded value is an output.
            assert_eq!(plan.kernels.len(), 1 + usize::from(keep), "{plan}");
            let w_slot = plan.persistent[0].1;
            assert_eq!(gemms[0].rhs == w_slot, !keep);
        }
    }
}
