//! Lowering a verified graph to a step plan: classify every node (memory leaf,
//! uniform constant, alias, or part of a kernel), fuse elementwise ops, views
//! and reductions into clusters without creating cycles between kernels,
//! order the kernels, lay out the arena by liveness (updating persistent
//! buffers in place where that is safe), and describe each kernel as data.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use graphc_ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, ReduceOp, UnaryOp};

use crate::arena::LINE;
use crate::exec::ArgSlot;
use crate::gemm::GemmCall;
use crate::kernel::{
    broadcast_strides, coalesce, row_major, Access, Cluster, Expr, Reduction, SplitLoop,
};

/// Kernels with at least this many elements are split across threads (mlp_m
/// ran 551–600 µs a step with this, 620–760 µs splitting its 32 K-element
/// kernels too: their inputs come from GEMM blocks of both cores).
const SPLIT_MIN_ELEMENTS: usize = 1 << 16;
/// A kernel split by columns needs at least this many per piece.
const SPLIT_MIN_COLUMNS: usize = 64;

/// How a node's value exists at run time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    /// Not needed by any output or assign.
    Dead,
    /// A leaf with its own slot: input, hyper, parameter, state, constant.
    Leaf,
    /// Every element equal: a fill, or a view or reshape of one.
    Uniform(f32),
    /// A reshape: the memory of this (resolved, non-alias) node.
    Alias(NodeId),
    /// Computed element by element inside cluster `g`.
    Value(usize),
    /// A reduction accumulated by cluster `g`.
    Sink(usize),
    /// The result of the single-op group `g` (matmul, one-hot).
    Single(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cluster,
    MatMul,
    OneHot,
}

#[derive(Debug)]
struct Group {
    kind: Kind,
    domain: Vec<usize>,
    members: Vec<NodeId>,
}

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
        /// The loop split into pieces.
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

fn round(len: usize) -> usize {
    len.div_ceil(LINE).max(1) * LINE
}

/// Whether a cluster member reads its operands from memory at positions of
/// its own (a view, or a matrix product fused into the cluster) rather than
/// element by element.
fn is_view(op: &Op) -> bool {
    matches!(op, Op::Broadcast(_) | Op::Transpose(_) | Op::MatMul { .. })
}

/// Matrix products with an inner dimension of at most this many become
/// expressions of the cluster that consumes them (linreg's and logreg's
/// forward products: a `gemm` dispatch cost more than the whole sum).
const FUSE_MAX_K: usize = 4;

fn internal(message: impl Into<String>) -> IrError {
    IrError::Compile(message.into())
}

/// Best-fit allocation of line-rounded ranges, for liveness-planned slots.
#[derive(Default)]
struct Allocator {
    free: Vec<(usize, usize)>,
    top: usize,
}

impl Allocator {
    fn alloc(&mut self, len: usize) -> usize {
        let len = round(len);
        let best = (0..self.free.len())
            .filter(|&i| self.free[i].1 >= len)
            .min_by_key(|&i| self.free[i].1);
        match best {
            Some(i) => {
                let (start, size) = self.free[i];
                if size == len {
                    self.free.remove(i);
                } else {
                    self.free[i] = (start + len, size - len);
                }
                start
            }
            None => {
                let start = self.top;
                self.top += len;
                start
            }
        }
    }

    fn release(&mut self, start: usize, len: usize) {
        let len = round(len);
        let i = self.free.partition_point(|&(s, _)| s < start);
        self.free.insert(i, (start, len));
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
}

/// Lowers `graph` (verified) to a plan.
pub(crate) fn lower(graph: &Graph) -> Result<Plan, IrError> {
    let mut l = Lowerer::new(graph)?;
    l.classify();
    l.plan()
}

struct Lowerer<'g> {
    g: &'g Graph,
    topo: Vec<NodeId>,
    pos: Vec<usize>,
    ops: Vec<Vec<NodeId>>,
    class: Vec<Class>,
    groups: Vec<Group>,
    stamp: u32,
    in_w: Vec<u32>,
    visited: Vec<u32>,
    expanded: Vec<u32>,
}

impl<'g> Lowerer<'g> {
    fn new(g: &'g Graph) -> Result<Lowerer<'g>, IrError> {
        let n = g.id_bound();
        let topo = g.topo_order()?;
        let mut pos = vec![usize::MAX; n];
        let mut ops = vec![Vec::new(); n];
        for (i, &id) in topo.iter().enumerate() {
            pos[id.index()] = i;
            ops[id.index()] = g.operands(id);
        }
        let mut live = vec![false; n];
        let mut stack: Vec<NodeId> = g.outputs().iter().map(|o| o.node).collect();
        stack.extend(g.assigns().iter().map(|a| a.value));
        while let Some(v) = stack.pop() {
            if !std::mem::replace(&mut live[v.index()], true) {
                stack.extend(ops[v.index()].iter().copied());
            }
        }
        let topo: Vec<NodeId> = topo.into_iter().filter(|v| live[v.index()]).collect();
        Ok(Lowerer {
            g,
            topo,
            pos,
            ops,
            class: vec![Class::Dead; n],
            groups: Vec::new(),
            stamp: 0,
            in_w: Vec::new(),
            visited: vec![0; n],
            expanded: Vec::new(),
        })
    }

    fn shape(&self, v: NodeId) -> &'g [usize] {
        self.g.shape(v)
    }

    fn op(&self, v: NodeId) -> &'g Op {
        &self.g.node(v).op
    }

    fn group_of(&self, v: NodeId) -> Option<usize> {
        match self.class[v.index()] {
            Class::Value(g) | Class::Sink(g) | Class::Single(g) => Some(g),
            _ => None,
        }
    }

    /// The node whose memory holds `v`'s value (through reshapes).
    fn resolve(&self, v: NodeId) -> NodeId {
        match self.class[v.index()] {
            Class::Alias(b) => b,
            _ => v,
        }
    }

    fn new_group(&mut self, kind: Kind, domain: &[usize], first: NodeId) -> usize {
        self.groups.push(Group {
            kind,
            domain: domain.to_vec(),
            members: vec![first],
        });
        self.in_w.push(0);
        self.expanded.push(0);
        self.groups.len() - 1
    }

    fn classify(&mut self) {
        for t in 0..self.topo.len() {
            let v = self.topo[t];
            let operand = |l: &Self, i: usize| l.ops[v.index()][i];
            let class = match self.op(v) {
                Op::Input(_) | Op::Param(_) | Op::State(_) | Op::Hyper(_) | Op::Constant(_) => {
                    Class::Leaf
                }
                Op::Fill(c) => Class::Uniform(*c),
                Op::Reshape(_) => {
                    let o = operand(self, 0);
                    match self.class[o.index()] {
                        Class::Uniform(c) => Class::Uniform(c),
                        Class::Alias(b) => Class::Alias(b),
                        _ => Class::Alias(o),
                    }
                }
                Op::Broadcast(_) | Op::Transpose(_) => match self.class[operand(self, 0).index()] {
                    Class::Uniform(c) => Class::Uniform(c),
                    _ => Class::Value(self.new_group(Kind::Cluster, self.shape(v), v)),
                },
                Op::Unary(UnaryOp::StopGradient) => {
                    // The identity: share the operand's memory unless it lives in a register.
                    let o = operand(self, 0);
                    match self.class[o.index()] {
                        Class::Uniform(c) => Class::Uniform(c),
                        Class::Alias(b) => Class::Alias(b),
                        Class::Value(_) => self.join_elementwise(v),
                        _ => Class::Alias(o),
                    }
                }
                Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select => {
                    self.join_elementwise(v)
                }
                Op::Reduce { .. } => {
                    let x = operand(self, 0);
                    match self.class[x.index()] {
                        Class::Value(g) => {
                            self.groups[g].members.push(v);
                            Class::Sink(g)
                        }
                        _ => Class::Sink(self.new_group(Kind::Cluster, self.shape(x), v)),
                    }
                }
                Op::MatMul { transpose_lhs, .. } => {
                    let a = operand(self, 0);
                    let k = self.shape(a)[usize::from(!transpose_lhs)];
                    let uniform = self.ops[v.index()]
                        .iter()
                        .any(|o| matches!(self.class[o.index()], Class::Uniform(_)));
                    let kind = if k <= FUSE_MAX_K && k > 0 && !uniform {
                        Kind::Cluster
                    } else {
                        Kind::MatMul
                    };
                    let g = self.new_group(kind, self.shape(v), v);
                    match kind {
                        Kind::Cluster => Class::Value(g),
                        _ => Class::Single(g),
                    }
                }
                Op::OneHot(_) => Class::Single(self.new_group(Kind::OneHot, self.shape(v), v)),
            };
            self.class[v.index()] = class;
        }
    }

    /// Puts elementwise `v` into the cluster of its operands, merging their
    /// clusters where that keeps the kernel graph acyclic.
    fn join_elementwise(&mut self, v: NodeId) -> Class {
        let mut candidates: Vec<usize> = Vec::new();
        for &o in &self.ops[v.index()] {
            if let Class::Value(g) = self.class[o.index()] {
                if !candidates.contains(&g) {
                    candidates.push(g);
                }
            }
        }
        candidates.sort_by_key(|&g| Reverse(self.groups[g].members.len()));
        let mut joined: Vec<usize> = Vec::new();
        for c in candidates {
            joined.push(c);
            if self.creates_cycle(&joined, v) {
                joined.pop();
            }
        }
        let Some(&target) = joined.first() else {
            return Class::Value(self.new_group(Kind::Cluster, self.shape(v), v));
        };
        for &other in &joined[1..] {
            let members = std::mem::take(&mut self.groups[other].members);
            for &m in &members {
                self.class[m.index()] = match self.class[m.index()] {
                    Class::Sink(_) => Class::Sink(target),
                    _ => Class::Value(target),
                };
            }
            self.groups[target].members.extend(members);
        }
        self.groups[target].members.push(v);
        Class::Value(target)
    }

    /// Whether running groups `w` plus node `v` as one kernel would need a
    /// value that itself waits for that kernel.
    fn creates_cycle(&mut self, w: &[usize], v: NodeId) -> bool {
        self.stamp += 1;
        let stamp = self.stamp;
        for &g in w {
            self.in_w[g] = stamp;
        }
        let inside =
            |l: &Self, n: NodeId| n == v || l.group_of(n).is_some_and(|g| l.in_w[g] == stamp);
        let mut stack: Vec<NodeId> = Vec::new();
        let members = w
            .iter()
            .flat_map(|&g| self.groups[g].members.iter().copied())
            .chain([v]);
        for u in members {
            let view = is_view(self.op(u));
            for &o in &self.ops[u.index()] {
                let in_register =
                    !view && matches!(self.class[o.index()], Class::Value(_)) && inside(self, o);
                if !matches!(self.class[o.index()], Class::Uniform(_)) && !in_register {
                    stack.push(o);
                }
            }
        }
        while let Some(n) = stack.pop() {
            if inside(self, n) {
                return true;
            }
            if std::mem::replace(&mut self.visited[n.index()], stamp) == stamp {
                continue;
            }
            stack.extend(self.ops[n.index()].iter().copied());
            if let Some(g) = self.group_of(n) {
                if std::mem::replace(&mut self.expanded[g], stamp) != stamp {
                    stack.extend(self.groups[g].members.iter().copied());
                }
            }
        }
        false
    }

    /// The operands member `u` of group `g` reads from memory (resolved to
    /// the node owning the memory); uniform values in clusters are literals.
    fn memory_reads(&self, g: usize, u: NodeId) -> Vec<(NodeId, NodeId)> {
        let cluster = self.groups[g].kind == Kind::Cluster;
        let view = is_view(self.op(u));
        self.ops[u.index()]
            .iter()
            .filter(|&&o| {
                let c = self.class[o.index()];
                !cluster || (!matches!(c, Class::Uniform(_)) && (view || c != Class::Value(g)))
            })
            .map(|&o| (o, self.resolve(o)))
            .collect()
    }

    fn plan(mut self) -> Result<Plan, IrError> {
        let g = self.g;
        let n = g.id_bound();
        let alive: Vec<usize> = (0..self.groups.len())
            .filter(|&i| !self.groups[i].members.is_empty())
            .collect();
        for &i in &alive {
            let pos = &self.pos;
            self.groups[i].members.sort_by_key(|m| pos[m.index()]);
        }

        // Who reads which memory.
        let mut readers: Vec<Vec<(usize, NodeId)>> = vec![Vec::new(); n];
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); self.groups.len()];
        for &gi in &alive {
            for &u in &self.groups[gi].members {
                for (_, b) in self.memory_reads(gi, u) {
                    readers[b.index()].push((gi, u));
                    if let Some(p) = self.group_of(b) {
                        if p == gi {
                            return Err(internal(format!("kernel reads its own result at {u}")));
                        }
                        if !deps[gi].contains(&p) {
                            deps[gi].push(p);
                        }
                    }
                }
            }
        }
        let mut end_read = vec![false; n];
        for o in g.outputs() {
            end_read[self.resolve(o.node).index()] = true;
        }
        let mut late = vec![false; self.groups.len()];
        for a in g.assigns() {
            let b = self.resolve(a.value);
            end_read[b.index()] = true;
            if let Some(p) = self.group_of(b) {
                late[p] = true;
            }
        }

        // Kernel order: dependencies first; updates of persistent buffers as
        // late as possible so their old values are read before being overwritten.
        let schedule = self.schedule(&alive, &deps, &late)?;
        let mut at = vec![usize::MAX; self.groups.len()];
        for (t, &gi) in schedule.iter().enumerate() {
            at[gi] = t;
        }

        // In-place assigns.
        let mut in_place: Vec<Option<NodeId>> = vec![None; n];
        let mut assign_in_place = vec![false; g.assigns().len()];
        for (ai, a) in g.assigns().iter().enumerate() {
            let b = self.resolve(a.value);
            let Class::Value(gb) = self.class[b.index()] else {
                continue;
            };
            let p = a.target;
            if in_place[b.index()].is_some() || end_read[p.index()] {
                continue;
            }
            let safe = readers[p.index()]
                .iter()
                .all(|&(r, u)| at[r] < at[gb] || (r == gb && !is_view(self.op(u))));
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
            top += round(len);
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
        for &v in &self.topo {
            let needs_memory = match (self.op(v), self.class[v.index()]) {
                (Op::Constant(_), _) => true,
                (_, Class::Uniform(_)) => end_read[v.index()] || !readers[v.index()].is_empty(),
                _ => false,
            };
            if needs_memory {
                slot[v.index()] = fixed(g.node(v).ty.numel());
                let data = match (self.op(v), self.class[v.index()]) {
                    (Op::Constant(d), _) => d.clone(),
                    (_, Class::Uniform(c)) => vec![c; g.node(v).ty.numel()],
                    _ => unreachable!("only constants and uniform values are initialised"),
                };
                init.push((slot[v.index()], data));
            }
        }
        let dynamic_base = top;

        // Liveness-planned slots for kernel results.
        let mut last_use = vec![0usize; n];
        for (b, rs) in readers.iter().enumerate() {
            for &(r, _) in rs {
                last_use[b] = last_use[b].max(at[r]);
            }
        }
        let mut alloc = Allocator::default();
        let mut release_at: Vec<Vec<NodeId>> = vec![Vec::new(); schedule.len()];
        for (t, &gi) in schedule.iter().enumerate() {
            for &m in &self.groups[gi].members {
                let stored = match self.class[m.index()] {
                    Class::Value(_) => end_read[m.index()] || !readers[m.index()].is_empty(),
                    _ => true,
                };
                if !stored {
                    continue;
                }
                if let Some(p) = in_place[m.index()] {
                    slot[m.index()] = slot[p.index()];
                    continue;
                }
                let len = g.node(m).ty.numel();
                slot[m.index()] = dynamic_base + alloc.alloc(len);
                if !end_read[m.index()] {
                    if last_use[m.index()] <= t {
                        return Err(internal(format!("{m} is stored but never read")));
                    }
                    release_at[last_use[m.index()]].push(m);
                }
            }
            for &m in &release_at[t] {
                alloc.release(slot[m.index()] - dynamic_base, g.node(m).ty.numel());
            }
        }
        let slot_of = |v: NodeId| slot[self.resolve(v).index()];

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
        let mut snapshot = |src: usize, len: usize, alloc: &mut Allocator| {
            let tmp = dynamic_base + alloc.alloc(len);
            snapshots.push((src, tmp, len));
            tmp
        };
        let mut outputs = Vec::new();
        for o in g.outputs() {
            let b = self.resolve(o.node);
            let len = g.node(o.node).ty.numel();
            let offset = if fallback_targets.contains(&b) {
                snapshot(slot[b.index()], len, &mut alloc)
            } else {
                slot[b.index()]
            };
            outputs.push((offset, len));
        }
        for (a, &done) in g.assigns().iter().zip(&assign_in_place) {
            if done {
                continue;
            }
            let b = self.resolve(a.value);
            let len = g.node(a.target).ty.numel();
            let src = if fallback_targets.contains(&b) {
                snapshot(slot[b.index()], len, &mut alloc)
            } else {
                slot[b.index()]
            };
            copies.push((src, slot[a.target.index()], len));
        }
        snapshots.extend(copies);

        // Kernels as data.
        let mut tasks = Vec::new();
        for &gi in &schedule {
            self.task(gi, &slot_of, &end_read, &readers, &mut tasks)?;
        }
        let in_place = assign_in_place.iter().filter(|&&d| d).count();
        Ok(Plan {
            arena_len: dynamic_base + alloc.top,
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

    fn schedule(
        &self,
        alive: &[usize],
        deps: &[Vec<usize>],
        late: &[bool],
    ) -> Result<Vec<usize>, IrError> {
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); self.groups.len()];
        let mut waiting = vec![0usize; self.groups.len()];
        for &gi in alive {
            waiting[gi] = deps[gi].len();
            for &p in &deps[gi] {
                users[p].push(gi);
            }
        }
        let key = |gi: usize| Reverse((late[gi], self.pos[self.groups[gi].members[0].index()], gi));
        let mut ready: BinaryHeap<_> = alive
            .iter()
            .filter(|&&gi| waiting[gi] == 0)
            .map(|&gi| key(gi))
            .collect();
        let mut order = Vec::with_capacity(alive.len());
        while let Some(Reverse((_, _, gi))) = ready.pop() {
            order.push(gi);
            for &u in &users[gi] {
                waiting[u] -= 1;
                if waiting[u] == 0 {
                    ready.push(key(u));
                }
            }
        }
        if order.len() != alive.len() {
            return Err(internal("kernel dependencies form a cycle"));
        }
        Ok(order)
    }

    fn task(
        &self,
        gi: usize,
        slot_of: &dyn Fn(NodeId) -> usize,
        end_read: &[bool],
        readers: &[Vec<(usize, NodeId)>],
        tasks: &mut Vec<Task>,
    ) -> Result<(), IrError> {
        let group = &self.groups[gi];
        let v = group.members[0];
        match group.kind {
            Kind::MatMul => {
                let (
                    &Op::MatMul {
                        transpose_lhs,
                        transpose_rhs,
                    },
                    [a, b],
                ) = (self.op(v), self.ops[v.index()].as_slice())
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
                let indices = self.ops[v.index()][0];
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
            Kind::Cluster => self.cluster_task(gi, slot_of, end_read, readers, tasks),
        }
        Ok(())
    }

    fn cluster_task(
        &self,
        gi: usize,
        slot_of: &dyn Fn(NodeId) -> usize,
        end_read: &[bool],
        readers: &[Vec<(usize, NodeId)>],
        tasks: &mut Vec<Task>,
    ) {
        let group = &self.groups[gi];
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
        for &u in &group.members {
            let mut operand =
                |o: NodeId,
                 exprs: &mut Vec<Expr>,
                 access: &mut dyn FnMut(usize, Vec<usize>) -> usize| {
                    match self.class[o.index()] {
                        Class::Uniform(c) => *consts.entry(c.to_bits()).or_insert_with(|| {
                            exprs.push(Expr::Const(c));
                            exprs.len() - 1
                        }),
                        Class::Value(g) if g == gi => expr_of[&o],
                        _ => {
                            exprs.push(Expr::Load(access(slot_of(o), row_major(self.shape(o)))));
                            exprs.len() - 1
                        }
                    }
                };
            let ops = &self.ops[u.index()];
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
                    let mut acc = *consts.entry(0.0f32.to_bits()).or_insert_with(|| {
                        exprs.push(Expr::Const(0.0));
                        exprs.len() - 1
                    });
                    for p in 0..k {
                        let x = access(slot_of(a) + p * a_cs, vec![a_rs, 0]);
                        let y = access(slot_of(b) + p * b_rs, vec![0, b_cs]);
                        exprs.push(Expr::Load(x));
                        exprs.push(Expr::Load(y));
                        let n = exprs.len();
                        exprs.push(Expr::Binary(BinaryOp::Mul, n - 2, n - 1));
                        exprs.push(Expr::Binary(BinaryOp::Add, acc, n));
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
            if end_read[u.index()] || !readers[u.index()].is_empty() {
                stores.push((e, access(slot_of(u), row_major(domain))));
            }
        }
        let identity = |op: ReduceOp| match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
        };
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
