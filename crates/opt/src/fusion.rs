//! Fusion grouping: classify every live node (memory leaf, uniform constant,
//! alias through reshapes, or part of a kernel), fuse elementwise ops, views
//! and reductions into clusters without creating cycles between kernels, and
//! order the kernels. Backend-independent: a backend only says which matrix
//! products it runs as expressions of a cluster.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use graphc_ir::{Graph, IrError, NodeId, Op, UnaryOp};

/// How a node's value exists at run time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Class {
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

impl Class {
    /// The group computing a node of this class, if any.
    pub fn group(self) -> Option<usize> {
        match self {
            Class::Value(g) | Class::Sink(g) | Class::Single(g) => Some(g),
            _ => None,
        }
    }
}

/// What a group runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Fused elementwise ops, views, small products and reductions: one loop nest.
    Cluster,
    /// One matrix product.
    MatMul,
    /// One one-hot encoding.
    OneHot,
}

/// One kernel: a cluster or a single-op group.
#[derive(Debug)]
pub struct Group {
    /// What the group runs as.
    pub kind: Kind,
    /// The iteration domain (the shape of the first member, or of a reduction's input).
    pub domain: Vec<usize>,
    /// The nodes it computes, in topological order (empty once merged away).
    pub members: Vec<NodeId>,
}

/// Whether a cluster member reads its operands from memory at positions of
/// its own (a view, or a matrix product fused into the cluster) rather than
/// element by element.
pub fn is_view(op: &Op) -> bool {
    matches!(op, Op::Broadcast(_) | Op::Transpose(_) | Op::MatMul { .. })
}

/// A column product `aᵀ·b` taken as reductions of `a`'s cluster has at most
/// this many result columns (one running sum each).
pub const COLUMN_PRODUCT_MAX_COLS: usize = 4;

/// Whether operand `i` of a cluster member with this op is read from memory:
/// views read every operand from memory; a matrix product taken as reductions
/// (`as_sink`) reads its left column in a register and its right operand from memory.
fn reads_memory(op: &Op, as_sink: bool, i: usize) -> bool {
    match op {
        Op::MatMul { .. } if as_sink => i == 1,
        op => is_view(op),
    }
}

/// The kernels of a graph, their execution order, and who reads which memory.
#[derive(Debug)]
pub struct Fusion {
    topo: Vec<NodeId>,
    ops: Vec<Vec<NodeId>>,
    class: Vec<Class>,
    groups: Vec<Group>,
    order: Vec<usize>,
    at: Vec<usize>,
    readers: Vec<Vec<(usize, NodeId)>>,
    end_read: Vec<bool>,
}

impl Fusion {
    /// Groups the live nodes of `graph` (verified) into kernels and orders
    /// them; `fuse_matmul(k)` says whether a matrix product with inner
    /// dimension `k` becomes an expression of the cluster that consumes it.
    pub fn new(graph: &Graph, fuse_matmul: impl Fn(usize) -> bool) -> Result<Fusion, IrError> {
        let mut b = Builder::new(graph)?;
        b.classify(&fuse_matmul);
        b.finish()
    }

    /// The nodes some output or assign needs, in topological order.
    pub fn live(&self) -> &[NodeId] {
        &self.topo
    }

    /// The operands of `v`.
    pub fn operands(&self, v: NodeId) -> &[NodeId] {
        &self.ops[v.index()]
    }

    /// How `v`'s value exists at run time.
    pub fn class(&self, v: NodeId) -> Class {
        self.class[v.index()]
    }

    /// The group computing `v`, if any.
    pub fn group_of(&self, v: NodeId) -> Option<usize> {
        self.class[v.index()].group()
    }

    /// The node whose memory holds `v`'s value (through reshapes).
    pub fn resolve(&self, v: NodeId) -> NodeId {
        match self.class[v.index()] {
            Class::Alias(b) => b,
            _ => v,
        }
    }

    /// All groups by index, including merged-away (empty) ones.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The non-empty groups in execution order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The position of non-empty group `g` in [`Fusion::order`].
    pub fn position(&self, g: usize) -> usize {
        self.at[g]
    }

    /// The (group, member) pairs that read the memory of resolved node `v`.
    pub fn readers(&self, v: NodeId) -> &[(usize, NodeId)] {
        &self.readers[v.index()]
    }

    /// Whether an output or assign reads the memory of resolved node `v` after the step.
    pub fn read_at_end(&self, v: NodeId) -> bool {
        self.end_read[v.index()]
    }

    /// Whether `v`'s memory is read at all: by a kernel or after the step.
    pub fn is_read(&self, v: NodeId) -> bool {
        self.end_read[v.index()] || !self.readers[v.index()].is_empty()
    }
}

fn internal(message: impl Into<String>) -> IrError {
    IrError::Compile(message.into())
}

/// The grouping in progress, with the scratch marks of the cycle check.
struct Builder<'g> {
    g: &'g Graph,
    f: Fusion,
    pos: Vec<usize>,
    stamp: u32,
    in_w: Vec<u32>,
    visited: Vec<u32>,
    expanded: Vec<u32>,
}

impl<'g> Builder<'g> {
    fn new(g: &'g Graph) -> Result<Builder<'g>, IrError> {
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
        Ok(Builder {
            g,
            f: Fusion {
                topo,
                ops,
                class: vec![Class::Dead; n],
                groups: Vec::new(),
                order: Vec::new(),
                at: Vec::new(),
                readers: Vec::new(),
                end_read: Vec::new(),
            },
            pos,
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

    fn new_group(&mut self, kind: Kind, domain: &[usize], first: NodeId) -> usize {
        self.f.groups.push(Group {
            kind,
            domain: domain.to_vec(),
            members: vec![first],
        });
        self.in_w.push(0);
        self.expanded.push(0);
        self.f.groups.len() - 1
    }

    fn classify(&mut self, fuse_matmul: &dyn Fn(usize) -> bool) {
        for t in 0..self.f.topo.len() {
            let v = self.f.topo[t];
            let operand = |b: &Self, i: usize| b.f.ops[v.index()][i];
            let class = match self.op(v) {
                Op::Input(_) | Op::Param(_) | Op::State(_) | Op::Hyper(_) | Op::Constant(_) => {
                    Class::Leaf
                }
                Op::Fill(c) => Class::Uniform(*c),
                Op::Reshape(_) => {
                    let o = operand(self, 0);
                    match self.f.class[o.index()] {
                        Class::Uniform(c) => Class::Uniform(c),
                        Class::Alias(b) => Class::Alias(b),
                        _ => Class::Alias(o),
                    }
                }
                Op::Broadcast(_) | Op::Transpose(_) => {
                    match self.f.class[operand(self, 0).index()] {
                        Class::Uniform(c) => Class::Uniform(c),
                        _ => Class::Value(self.new_group(Kind::Cluster, self.shape(v), v)),
                    }
                }
                Op::Unary(UnaryOp::StopGradient) => {
                    // The identity: share the operand's memory unless it lives in a register.
                    let o = operand(self, 0);
                    match self.f.class[o.index()] {
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
                    match self.f.class[x.index()] {
                        Class::Value(g) => {
                            self.f.groups[g].members.push(v);
                            Class::Sink(g)
                        }
                        _ => Class::Sink(self.new_group(Kind::Cluster, self.shape(x), v)),
                    }
                }
                Op::MatMul { transpose_lhs, .. } => {
                    if let Some(g) = self.column_product_cluster(v) {
                        self.f.groups[g].members.push(v);
                        self.f.class[v.index()] = Class::Sink(g);
                        continue;
                    }
                    let a = operand(self, 0);
                    let k = self.shape(a)[usize::from(!transpose_lhs)];
                    // Clusters take uniform operands as literals, not from memory.
                    let uniform = self.f.ops[v.index()]
                        .iter()
                        .any(|o| matches!(self.f.class[o.index()], Class::Uniform(_)));
                    let kind = if !uniform && fuse_matmul(k) {
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
            self.f.class[v.index()] = class;
        }
    }

    /// Puts elementwise `v` into the cluster of its operands, merging their
    /// clusters where that keeps the kernel graph acyclic.
    fn join_elementwise(&mut self, v: NodeId) -> Class {
        let mut candidates: Vec<usize> = Vec::new();
        for &o in &self.f.ops[v.index()] {
            if let Class::Value(g) = self.f.class[o.index()] {
                if !candidates.contains(&g) {
                    candidates.push(g);
                }
            }
        }
        candidates.sort_by_key(|&g| Reverse(self.f.groups[g].members.len()));
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
            let members = std::mem::take(&mut self.f.groups[other].members);
            for &m in &members {
                self.f.class[m.index()] = match self.f.class[m.index()] {
                    Class::Sink(_) => Class::Sink(target),
                    _ => Class::Value(target),
                };
            }
            self.f.groups[target].members.extend(members);
        }
        self.f.groups[target].members.push(v);
        Class::Value(target)
    }

    /// The cluster that takes matrix product `v` as reductions, if any: `aᵀ·b` where
    /// `a` is one column `[k, 1]` computed element by element by a cluster over that
    /// same domain and the result has at most [`COLUMN_PRODUCT_MAX_COLS`] columns.
    /// Result column `j` is then a sum over the cluster's rows of `a[i]·b[i, j]`
    /// (a single-output model's weight gradient, next to its bias gradient), and the
    /// product needs no call of its own.
    fn column_product_cluster(&mut self, v: NodeId) -> Option<usize> {
        let Op::MatMul {
            transpose_lhs: true,
            ..
        } = self.op(v)
        else {
            return None;
        };
        let (a, b) = (self.f.ops[v.index()][0], self.f.ops[v.index()][1]);
        let Class::Value(g) = self.f.class[a.index()] else {
            return None;
        };
        let fits = self.shape(a).len() == 2
            && self.shape(a)[1] == 1
            && self.shape(v)[1] <= COLUMN_PRODUCT_MAX_COLS
            && self.f.groups[g].domain == self.shape(a)
            && !matches!(self.f.class[b.index()], Class::Uniform(_));
        (fits && !self.cycle_with(&[g], v, true)).then_some(g)
    }

    /// Whether running groups `w` plus node `v` as one kernel would need a
    /// value that itself waits for that kernel.
    fn creates_cycle(&mut self, w: &[usize], v: NodeId) -> bool {
        self.cycle_with(w, v, false)
    }

    /// [`Self::creates_cycle`], with `v` joining as a reduction (`sink`) or as a value.
    fn cycle_with(&mut self, w: &[usize], v: NodeId, sink: bool) -> bool {
        self.stamp += 1;
        let stamp = self.stamp;
        for &g in w {
            self.in_w[g] = stamp;
        }
        let inside =
            |b: &Self, n: NodeId| n == v || b.f.group_of(n).is_some_and(|g| b.in_w[g] == stamp);
        let mut stack: Vec<NodeId> = Vec::new();
        let members = w
            .iter()
            .flat_map(|&g| self.f.groups[g].members.iter().copied())
            .chain([v]);
        for u in members {
            let as_sink = (u == v && sink) || matches!(self.f.class[u.index()], Class::Sink(_));
            for (i, &o) in self.f.ops[u.index()].iter().enumerate() {
                let in_register = !reads_memory(self.op(u), as_sink, i)
                    && matches!(self.f.class[o.index()], Class::Value(_))
                    && inside(self, o);
                if !matches!(self.f.class[o.index()], Class::Uniform(_)) && !in_register {
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
            stack.extend(self.f.ops[n.index()].iter().copied());
            if let Some(g) = self.f.group_of(n) {
                if std::mem::replace(&mut self.expanded[g], stamp) != stamp {
                    stack.extend(self.f.groups[g].members.iter().copied());
                }
            }
        }
        false
    }

    /// The operands member `u` of group `g` reads from memory (resolved to
    /// the node owning the memory); uniform values in clusters are literals.
    fn memory_reads(&self, g: usize, u: NodeId) -> Vec<(NodeId, NodeId)> {
        let cluster = self.f.groups[g].kind == Kind::Cluster;
        let as_sink = matches!(self.f.class[u.index()], Class::Sink(_));
        self.f.ops[u.index()]
            .iter()
            .enumerate()
            .filter(|&(i, &o)| {
                let c = self.f.class[o.index()];
                let memory = reads_memory(self.op(u), as_sink, i);
                !cluster || (!matches!(c, Class::Uniform(_)) && (memory || c != Class::Value(g)))
            })
            .map(|(_, &o)| (o, self.f.resolve(o)))
            .collect()
    }

    /// Records who reads which memory and orders the kernels.
    fn finish(mut self) -> Result<Fusion, IrError> {
        let g = self.g;
        let n = g.id_bound();
        let alive: Vec<usize> = (0..self.f.groups.len())
            .filter(|&i| !self.f.groups[i].members.is_empty())
            .collect();
        for &i in &alive {
            let pos = &self.pos;
            self.f.groups[i].members.sort_by_key(|m| pos[m.index()]);
        }

        // Who reads which memory.
        let mut readers: Vec<Vec<(usize, NodeId)>> = vec![Vec::new(); n];
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); self.f.groups.len()];
        for &gi in &alive {
            for &u in &self.f.groups[gi].members {
                for (_, b) in self.memory_reads(gi, u) {
                    readers[b.index()].push((gi, u));
                    if let Some(p) = self.f.group_of(b) {
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
            end_read[self.f.resolve(o.node).index()] = true;
        }
        let mut late = vec![false; self.f.groups.len()];
        for a in g.assigns() {
            let b = self.f.resolve(a.value);
            end_read[b.index()] = true;
            if let Some(p) = self.f.group_of(b) {
                late[p] = true;
            }
        }

        // Kernel order: dependencies first; updates of persistent buffers as
        // late as possible so their old values are read before being overwritten.
        let order = self.schedule(&alive, &deps, &late)?;
        let mut at = vec![usize::MAX; self.f.groups.len()];
        for (t, &gi) in order.iter().enumerate() {
            at[gi] = t;
        }
        self.f.order = order;
        self.f.at = at;
        self.f.readers = readers;
        self.f.end_read = end_read;
        Ok(self.f)
    }

    fn schedule(
        &self,
        alive: &[usize],
        deps: &[Vec<usize>],
        late: &[bool],
    ) -> Result<Vec<usize>, IrError> {
        let groups = &self.f.groups;
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
        let mut waiting = vec![0usize; groups.len()];
        for &gi in alive {
            waiting[gi] = deps[gi].len();
            for &p in &deps[gi] {
                users[p].push(gi);
            }
        }
        let key = |gi: usize| Reverse((late[gi], self.pos[groups[gi].members[0].index()], gi));
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
}

#[cfg(test)]
mod tests {
    use graphc_ir::{BinaryOp, TensorType};

    use super::*;

    /// `x [2, 8]`, `y = exp(x)`, and a weight `w [8, 8]`.
    fn base() -> (Graph, NodeId, NodeId) {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[2, 8]));
        let w = g.param("w", &[8, 8]);
        let y = g.unary(UnaryOp::Exp, x).unwrap();
        (g, y, w)
    }

    #[test]
    fn elementwise_ops_on_one_operand_join_its_cluster() {
        let (mut g, y, _) = base();
        let s = g.unary(UnaryOp::Neg, y).unwrap();
        let t = g.unary(UnaryOp::Sqrt, y).unwrap();
        let u = g.binary(BinaryOp::Mul, s, t).unwrap();
        g.add_output("u", u);
        let f = Fusion::new(&g, |_| false).unwrap();
        let Class::Value(c) = f.class(y) else {
            panic!("exp is not in a cluster: {:?}", f.class(y));
        };
        for v in [s, t, u] {
            assert_eq!(f.class(v), Class::Value(c));
        }
        assert_eq!(f.order(), [c]);
        let computed: Vec<NodeId> = f
            .live()
            .iter()
            .copied()
            .filter(|&v| f.class(v) != Class::Leaf)
            .collect();
        assert_eq!(
            f.groups()[c].members,
            computed,
            "members in topological order"
        );
        assert_eq!(computed.len(), 4);
        assert!(!f.is_read(y), "values inside one cluster stay in registers");
        assert!(f.read_at_end(u));
    }

    #[test]
    fn a_join_through_a_product_is_refused() {
        let (mut g, y, w) = base();
        let m = g.matmul(y, w, false, false).unwrap();
        let z = g.binary(BinaryOp::Add, y, m).unwrap();
        g.add_output("z", z);
        let f = Fusion::new(&g, |_| false).unwrap();
        let (Some(a), Class::Single(p), Some(c)) = (f.group_of(y), f.class(m), f.group_of(z))
        else {
            panic!("unexpected classes");
        };
        assert_ne!(
            a, c,
            "z in y's cluster would wait for the product that waits for it"
        );
        assert_eq!(f.groups()[p].kind, Kind::MatMul);
        assert_eq!(f.order(), [a, p, c]);
        assert_eq!(f.readers(y), [(p, m), (c, z)]);
    }

    #[test]
    fn a_computed_column_times_a_thin_matrix_becomes_sums_of_its_cluster() {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[16, 1]));
        let b = g.input("b", TensorType::f32(&[16, 3]));
        let a = g.unary(UnaryOp::Exp, x).unwrap();
        let c = g.matmul(a, b, true, false).unwrap();
        g.add_output("c", c);
        let f = Fusion::new(&g, |_| false).unwrap();
        let Class::Value(k) = f.class(a) else {
            panic!("exp is not in a cluster: {:?}", f.class(a));
        };
        assert_eq!(f.class(c), Class::Sink(k));
        assert_eq!(f.order(), [k]);
        assert!(!f.is_read(a), "the column stays in registers");
        assert_eq!(f.readers(b), [(k, c)]);
    }

    #[test]
    fn the_backend_chooses_which_products_become_expressions() {
        let (mut g, y, w) = base();
        let m = g.matmul(y, w, false, false).unwrap();
        let z = g.binary(BinaryOp::Add, y, m).unwrap();
        g.add_output("z", z);
        let f = Fusion::new(&g, |k| k <= 8).unwrap();
        let (Class::Value(a), Class::Value(b)) = (f.class(y), f.class(m)) else {
            panic!("the product is not a cluster expression: {:?}", f.class(m));
        };
        assert_eq!(f.class(z), Class::Value(b));
        assert_eq!(f.groups()[b].kind, Kind::Cluster);
        assert_eq!(f.order(), [a, b]);
    }

    #[test]
    fn unused_nodes_are_dead_and_reshapes_alias() {
        let (mut g, y, _) = base();
        let unused = g.unary(UnaryOp::Neg, y).unwrap();
        let r = g.reshape(y, &[16]).unwrap();
        g.add_output("r", r);
        let f = Fusion::new(&g, |_| false).unwrap();
        assert_eq!(f.class(unused), Class::Dead);
        assert_eq!(f.class(r), Class::Alias(y));
        assert_eq!(f.resolve(r), y);
        assert!(f.read_at_end(y));
        assert!(!f.live().contains(&unused));
    }
}
