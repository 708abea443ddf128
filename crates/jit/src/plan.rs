//! Lowering a verified graph to a step plan: group it into kernels with
//! `graphc_opt::fusion` (matrix products with an inner dimension of at most
//! `FUSE_MAX_K` become cluster expressions), update persistent buffers in place
//! where that is safe, lay out the arena (fixed slots, then kernel results by
//! `graphc_opt::liveness`), and describe each kernel as data.

use std::collections::HashMap;

use graphc_ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, ReduceOp};
use graphc_opt::fusion::{is_view, Class, Fusion, Kind};
use graphc_opt::liveness::{assign_offsets, round_up, Allocator, Lifetime};

use crate::arena::LINE;
use crate::exec::ArgSlot;
use crate::gemm::GemmCall;
use crate::kernel::{
    broadcast_strides, coalesce, identity, row_major, Access, Cluster, Expr, Reduction, SplitLoop,
};

/// Kernels with at least this many elements are split across threads (mlp_m
/// ran 551–600 µs a step with this, 620–760 µs splitting its 32 K-element
/// kernels too: their inputs come from GEMM blocks of both cores).
const SPLIT_MIN_ELEMENTS: usize = 1 << 16;
/// A kernel split by columns needs at least this many per piece.
const SPLIT_MIN_COLUMNS: usize = 64;

/// One unit of work, in execution order, with resolved offsets.
#[derive(Debug)]
pub(crate) enum Task {
    /// Fills these (offset, len, value) ranges, then runs the fused loop nest.
    Cluster {
        /// The loop nest.
        kernel: Cluster,
        /// Reduction outputs to pre-fill with their identity.
        fills: Vec<(usize, usize, f32)>,
        /// Pieces to split the loop `split` into (1 = serial).
        chunks: usize,
        /// The loop split into pieces (`None` exactly when `chunks` is 1).
        split: SplitLoop,
    },
    /// A matrix product.
    MatMul(GemmCall),
    /// Zero `rows × classes` floats at `out`, then set the ones.
    OneHot {
        /// Number of indices.
        rows: usize,
        /// Columns.
        classes: usize,
        /// Offset of the indices in the i64 buffer.
        indices: usize,
        /// Offset of the output.
        out: usize,
    },
    /// Sets (offset, len) to a value.
    Fill(usize, usize, f32),
}

/// Everything the runtime needs, with no reference to the graph.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Floats in the arena.
    pub arena_len: usize,
    /// Entries of the i64 buffer.
    pub ints_len: usize,
    /// Data written into the arena once, at compile time.
    pub init: Vec<(usize, Vec<f32>)>,
    /// Argument slots in `Graph::arguments()` order.
    pub args: Vec<ArgSlot>,
    /// The step.
    pub tasks: Vec<Task>,
    /// (src, dst, len) copies after the step: snapshots first, then assigns.
    pub end: Vec<(usize, usize, usize)>,
    /// (offset, len) of each output.
    pub outputs: Vec<(usize, usize)>,
    /// (name, offset, len) of each parameter and state buffer.
    pub persistent: Vec<(String, usize, usize)>,
    /// Assigns done in place (for tests and reports).
    pub in_place: usize,
}

/// Matrix products with an inner dimension of at most this many become
/// expressions of the cluster that consumes them (linreg's and logreg's
/// forward products: a `gemm` dispatch cost more than the whole sum).
const FUSE_MAX_K: usize = 4;

fn internal(message: impl Into<String>) -> IrError {
    IrError::Compile(message.into())
}

/// Lowers `graph` (verified) to a plan.
pub(crate) fn lower(graph: &Graph) -> Result<Plan, IrError> {
    let f = Fusion::new(graph, |k| k <= FUSE_MAX_K && k > 0)?;
    Lowerer { g: graph, f }.plan()
}

struct Lowerer<'g> {
    g: &'g Graph,
    f: Fusion,
}

impl<'g> Lowerer<'g> {
    fn shape(&self, v: NodeId) -> &'g [usize] {
        self.g.shape(v)
    }

    fn op(&self, v: NodeId) -> &'g Op {
        &self.g.node(v).op
    }

    fn plan(self) -> Result<Plan, IrError> {
        let g = self.g;
        let f = &self.f;
        let n = g.id_bound();
        let schedule = f.order();

        // In-place assigns.
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
            let at = |r: usize| f.position(r);
            let safe = f
                .readers(p)
                .iter()
                .all(|&(r, u)| at(r) < at(gb) || (r == gb && !is_view(self.op(u))));
            if safe {
                in_place[b.index()] = Some(p);
                assign_in_place[ai] = true;
            }
        }

        // Fixed slots: persistent buffers, arguments, constants.
        let mut slot = vec![usize::MAX; n];
        let mut top = 0usize;
        let mut fixed = |len: usize| {
            let s = top;
            top += round_up(len, LINE);
            s
        };
        let mut persistent = Vec::new();
        for id in g.persistent() {
            let len = g.node(id).ty.numel();
            slot[id.index()] = fixed(len);
            let name = self.op(id).leaf_name().unwrap_or_default().to_string();
            persistent.push((name, slot[id.index()], len));
        }
        let mut ints_len = 0usize;
        let mut args = Vec::new();
        for &id in g.arguments() {
            let ty = &g.node(id).ty;
            let offset = match ty.dtype {
                DType::F32 => fixed(ty.numel()),
                DType::I64 => {
                    ints_len += ty.numel();
                    ints_len - ty.numel()
                }
            };
            slot[id.index()] = offset;
            args.push(ArgSlot {
                name: self.op(id).leaf_name().unwrap_or_default().to_string(),
                dtype: ty.dtype,
                len: ty.numel(),
                offset,
            });
        }
        let mut init = Vec::new();
        for &v in f.live() {
            let needs_memory = match (self.op(v), f.class(v)) {
                (Op::Constant(_), _) => true,
                (_, Class::Uniform(_)) => f.is_read(v),
                _ => false,
            };
            if needs_memory {
                slot[v.index()] = fixed(g.node(v).ty.numel());
                let data = match (self.op(v), f.class(v)) {
                    (Op::Constant(d), _) => d.clone(),
                    (_, Class::Uniform(c)) => vec![c; g.node(v).ty.numel()],
                    _ => unreachable!("only constants and uniform values are initialised"),
                };
                init.push((slot[v.index()], data));
            }
        }
        let dynamic_base = top;

        // Liveness-planned slots for kernel results.
        let mut stored = Vec::new();
        let mut buffers = Vec::new();
        for (t, &gi) in schedule.iter().enumerate() {
            for &m in &f.groups()[gi].members {
                let needs_memory = match f.class(m) {
                    Class::Value(_) => f.is_read(m),
                    _ => true,
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
                    let last_use = f.readers(m).iter().map(|&(r, _)| f.position(r)).max();
                    match last_use {
                        Some(last) if last > t => Some(last),
                        _ => return Err(internal(format!("{m} is stored but never read"))),
                    }
                };
                stored.push(m);
                buffers.push(Lifetime {
                    len: g.node(m).ty.numel(),
                    def: t,
                    last,
                });
            }
        }
        let mut alloc = Allocator::new(LINE);
        let offsets = assign_offsets(&mut alloc, schedule.len(), &buffers);
        for (&m, offset) in stored.iter().zip(offsets) {
            slot[m.index()] = dynamic_base + offset;
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
        let mut end_source = |b: NodeId, len: usize| {
            let src = slot[b.index()];
            if !fallback_targets.contains(&b) {
                return src;
            }
            let tmp = dynamic_base + alloc.alloc(len);
            snapshots.push((src, tmp, len));
            tmp
        };
        let mut outputs = Vec::new();
        for o in g.outputs() {
            let len = g.node(o.node).ty.numel();
            outputs.push((end_source(f.resolve(o.node), len), len));
        }
        for (a, &done) in g.assigns().iter().zip(&assign_in_place) {
            if done {
                continue;
            }
            let len = g.node(a.target).ty.numel();
            let src = end_source(f.resolve(a.value), len);
            copies.push((src, slot[a.target.index()], len));
        }
        snapshots.extend(copies);

        // Kernels as data.
        let mut tasks = Vec::new();
        for &gi in schedule {
            self.task(gi, &slot_of, &mut tasks)?;
        }
        let in_place = assign_in_place.iter().filter(|&&d| d).count();
        Ok(Plan {
            arena_len: dynamic_base + alloc.top(),
            ints_len,
            init,
            args,
            tasks,
            end: snapshots,
            outputs,
            persistent,
            in_place,
        })
    }

    fn task(
        &self,
        gi: usize,
        slot_of: &dyn Fn(NodeId) -> usize,
        tasks: &mut Vec<Task>,
    ) -> Result<(), IrError> {
        let group = &self.f.groups()[gi];
        let v = group.members[0];
        match group.kind {
            Kind::MatMul => {
                let (
                    &Op::MatMul {
                        transpose_lhs,
                        transpose_rhs,
                    },
                    [a, b],
                ) = (self.op(v), self.f.operands(v))
                else {
                    return Err(internal("matmul group without a matmul"));
                };
                let shape2 = |x: NodeId| [self.shape(x)[0], self.shape(x)[1]];
                let call = GemmCall::new(
                    (slot_of(*a), shape2(*a), transpose_lhs),
                    (slot_of(*b), shape2(*b), transpose_rhs),
                    slot_of(v),
                );
                if call.m * call.n == 0 {
                } else if call.k == 0 {
                    tasks.push(Task::Fill(call.dst, call.m * call.n, 0.0));
                } else {
                    tasks.push(Task::MatMul(call));
                }
            }
            Kind::OneHot => {
                let &Op::OneHot(classes) = self.op(v) else {
                    return Err(internal("one-hot group without a one-hot"));
                };
                let indices = self.f.operands(v)[0];
                let rows = self.g.node(indices).ty.numel();
                let out = slot_of(v);
                if rows * classes > 0 {
                    tasks.push(Task::Fill(out, rows * classes, 0.0));
                    tasks.push(Task::OneHot {
                        rows,
                        classes,
                        indices: slot_of(indices),
                        out,
                    });
                }
            }
            Kind::Cluster => self.cluster_task(gi, slot_of, tasks),
        }
        Ok(())
    }

    fn cluster_task(&self, gi: usize, slot_of: &dyn Fn(NodeId) -> usize, tasks: &mut Vec<Task>) {
        let group = &self.f.groups()[gi];
        let domain = group.domain.as_slice();
        let mut accesses: Vec<Access> = Vec::new();
        let mut access = |offset: usize, strides: Vec<usize>| {
            let a = Access { offset, strides };
            match accesses.iter().position(|x| *x == a) {
                Some(i) => i,
                None => {
                    accesses.push(a);
                    accesses.len() - 1
                }
            }
        };
        let mut exprs: Vec<Expr> = Vec::new();
        let mut consts: HashMap<u32, usize> = HashMap::new();
        let mut expr_of: HashMap<NodeId, usize> = HashMap::new();
        let mut stores = Vec::new();
        let mut reductions = Vec::new();
        let mut reduction_nodes = Vec::new();
        // One load per access: a cluster never stores where it loads, so equal
        // loads (logreg's features, read by its forward product and its weight
        // gradient) are one value.
        let mut loads: HashMap<usize, usize> = HashMap::new();
        let mut load = |exprs: &mut Vec<Expr>, a: usize| {
            *loads.entry(a).or_insert_with(|| {
                exprs.push(Expr::Load(a));
                exprs.len() - 1
            })
        };
        // One expression per constant value (by its bits).
        let mut constant = |exprs: &mut Vec<Expr>, c: f32| {
            *consts.entry(c.to_bits()).or_insert_with(|| {
                exprs.push(Expr::Const(c));
                exprs.len() - 1
            })
        };
        for &u in &group.members {
            let mut operand =
                |o: NodeId,
                 exprs: &mut Vec<Expr>,
                 access: &mut dyn FnMut(usize, Vec<usize>) -> usize| {
                    match self.f.class(o) {
                        Class::Uniform(c) => constant(exprs, c),
                        Class::Value(g) if g == gi => expr_of[&o],
                        _ => load(exprs, access(slot_of(o), row_major(self.shape(o)))),
                    }
                };
            let ops = self.f.operands(u);
            let expr = match self.op(u) {
                Op::Broadcast(_) => {
                    let o = ops[0];
                    Expr::Load(access(slot_of(o), broadcast_strides(self.shape(o), domain)))
                }
                Op::Transpose(perm) => {
                    let o = ops[0];
                    let rm = row_major(self.shape(o));
                    Expr::Load(access(slot_of(o), perm.iter().map(|&p| rm[p]).collect()))
                }
                &Op::MatMul { transpose_rhs, .. } if self.f.class(u) == Class::Sink(gi) => {
                    // A column product aᵀ·b over this cluster's rows (graphc-opt's
                    // column products): result column j sums a(i)·b(i, j) from 0 in
                    // row order, as the interpreter does, in a running sum of its own.
                    let a = operand(ops[0], &mut exprs, &mut access);
                    let b = ops[1];
                    let b_cols = self.shape(b)[1];
                    for j in 0..self.shape(u)[1] {
                        let (offset, stride) = if transpose_rhs {
                            (j * b_cols, 1)
                        } else {
                            (j, b_cols)
                        };
                        let y = load(&mut exprs, access(slot_of(b) + offset, vec![stride, 0]));
                        exprs.push(Expr::Binary(BinaryOp::Mul, a, y));
                        reductions.push(Reduction {
                            op: ReduceOp::Sum,
                            value: exprs.len() - 1,
                            access: access(slot_of(u) + j, vec![0, 0]),
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
                    let mut acc = constant(&mut exprs, 0.0);
                    for p in 0..k {
                        let x = load(&mut exprs, access(slot_of(a) + p * a_cs, vec![a_rs, 0]));
                        let y = load(&mut exprs, access(slot_of(b) + p * b_rs, vec![0, b_cs]));
                        exprs.push(Expr::Binary(BinaryOp::Mul, x, y));
                        let product = exprs.len() - 1;
                        exprs.push(Expr::Binary(BinaryOp::Add, acc, product));
                        acc = exprs.len() - 1;
                    }
                    exprs.pop().expect("k > 0 terms")
                }
                Op::Unary(op) => Expr::Unary(*op, operand(ops[0], &mut exprs, &mut access)),
                Op::Binary(op) => {
                    let x = operand(ops[0], &mut exprs, &mut access);
                    let y = operand(ops[1], &mut exprs, &mut access);
                    Expr::Binary(*op, x, y)
                }
                Op::Compare(op) => {
                    let x = operand(ops[0], &mut exprs, &mut access);
                    let y = operand(ops[1], &mut exprs, &mut access);
                    Expr::Compare(*op, x, y)
                }
                Op::Select => {
                    let c = operand(ops[0], &mut exprs, &mut access);
                    let x = operand(ops[1], &mut exprs, &mut access);
                    let y = operand(ops[2], &mut exprs, &mut access);
                    Expr::Select(c, x, y)
                }
                Op::Reduce { op, .. } => {
                    let value = operand(ops[0], &mut exprs, &mut access);
                    let out = access(slot_of(u), broadcast_strides(self.shape(u), domain));
                    reductions.push(Reduction {
                        op: *op,
                        value,
                        access: out,
                    });
                    reduction_nodes.push(u);
                    continue;
                }
                other => unreachable!("{} is not part of a cluster", other.mnemonic()),
            };
            exprs.push(expr);
            let e = exprs.len() - 1;
            expr_of.insert(u, e);
            if self.f.is_read(u) {
                stores.push((e, access(slot_of(u), row_major(domain))));
            }
        }
        let numel: usize = domain.iter().product();
        if numel == 0 {
            for (r, &u) in reductions.iter().zip(&reduction_nodes) {
                tasks.push(Task::Fill(
                    slot_of(u),
                    self.g.node(u).ty.numel(),
                    identity(r.op),
                ));
            }
            return;
        }
        let strides: Vec<Vec<usize>> = accesses.iter().map(|a| a.strides.clone()).collect();
        let (dims, strides) = coalesce(domain, &strides);
        for (a, s) in accesses.iter_mut().zip(strides) {
            a.strides = s;
        }
        let kernel = Cluster {
            dims,
            accesses,
            exprs,
            stores,
            reductions,
        };
        let fills = kernel
            .reductions
            .iter()
            .zip(&reduction_nodes)
            .filter(|(r, _)| kernel.needs_init(r))
            .map(|(r, &u)| (slot_of(u), self.g.node(u).ty.numel(), identity(r.op)))
            .collect();
        let threads = crate::team::threads();
        let inner = kernel.dims.len() - 1;
        let column_reductions = kernel
            .reductions
            .iter()
            .all(|r| kernel.accesses[r.access].strides[inner] != 0);
        let (split, chunks) = if threads < 2 || numel < SPLIT_MIN_ELEMENTS {
            (SplitLoop::None, 1)
        } else if kernel.reductions.is_empty() && kernel.dims[0] >= 2 {
            // Row blocks (column blocks to match the GEMM that produced an
            // operand measured slower on mlp_m: 620 µs a step against 527).
            (SplitLoop::Outer, threads.min(kernel.dims[0]))
        } else if inner > 0 && column_reductions && kernel.dims[inner] >= 2 * SPLIT_MIN_COLUMNS {
            // Column sums (bias gradients): column blocks keep each sum on one thread.
            let pieces = threads.min(kernel.dims[inner] / SPLIT_MIN_COLUMNS);
            (SplitLoop::Inner, pieces)
        } else {
            (SplitLoop::None, 1)
        };
        tasks.push(Task::Cluster {
            kernel,
            fills,
            chunks,
            split,
        });
    }
}
