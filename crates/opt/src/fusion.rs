//! Fusion grouping: classify every live node (memory leaf, uniform constant,
//! alias through reshapes, or part of a kernel), fuse elementwise ops, views
//! and reductions into clusters without creating cycles between kernels, and
//! order the kernels. Backend-independent: a backend only says which matrix
//! products it runs as expressions of a cluster. Every rule here derives from
//! [`Op::access`], how an op reads its operands; fusion has no `match` on
//! [`Op`] of its own.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use cranelift_entity::{entity_impl, PrimaryMap, SecondaryMap};
use graphc_ir::{Access, Graph, IrError, NodeId, Op};

/// A group (kernel) of a [`Fusion`]: an index into [`Fusion::groups`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(u32);
entity_impl!(GroupId, "g");

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
    Value(GroupId),
    /// A reduction accumulated by cluster `g`.
    Sink(GroupId),
    /// The result of the single-op group `g`: an op whose access is a
    /// contraction (matrix product), indexed (one-hot), windowed
    /// (convolution, max pooling and their gradients) or generated (random
    /// values). Its operands are read from memory, a uniform one included (the
    /// backend materializes it).
    Single(GroupId),
}

impl Class {
    /// The group computing a node of this class, if any.
    pub fn group(self) -> Option<GroupId> {
        match self {
            Class::Value(g) | Class::Sink(g) | Class::Single(g) => Some(g),
            Class::Dead | Class::Leaf | Class::Uniform(_) | Class::Alias(_) => None,
        }
    }
}

/// One kernel: a cluster (fused elementwise ops, views, small products and
/// reductions: one loop nest; its members are [`Class::Value`] or
/// [`Class::Sink`]) or a single-op group (one [`Class::Single`] member).
#[derive(Debug)]
pub struct Group {
    /// The iteration domain: the shape of the first member (or of a reduction's
    /// input), or, once a reshape joins, the [`common_refinement`] of its members'
    /// shapes (every member has as many elements, in the same row-major order).
    pub domain: Vec<usize>,
    /// The nodes it computes, in topological order (empty once merged away).
    pub members: Vec<NodeId>,
}

/// A column product `aᵀ·b` taken as reductions of `a`'s cluster has at most
/// this many result columns (one running sum each).
pub const COLUMN_PRODUCT_MAX_COLS: usize = 4;

/// Whether a cluster member with this access reads an operand at positions
/// other than the element it computes (a view, or a matrix product fused into
/// the cluster): such a member reads that operand from memory, and its
/// result may not overwrite the operand in place.
pub fn reads_elsewhere(access: Access) -> bool {
    match access {
        Access::View
        | Access::Contraction { .. }
        | Access::Windowed
        | Access::Generated
        | Access::Collective => true,
        Access::Leaf
        | Access::Uniform(_)
        | Access::Elementwise
        | Access::Identity
        | Access::Reinterpret
        | Access::Reduction
        | Access::Indexed => false,
    }
}

/// Whether operand `i` of a cluster member with this access is read from
/// memory rather than from a register: see [`reads_elsewhere`], except that a
/// matrix product taken as reductions (`as_sink`) reads its left column in a
/// register and only its right operand from memory.
fn reads_memory(access: Access, as_sink: bool, i: usize) -> bool {
    if as_sink && matches!(access, Access::Contraction { .. }) {
        i == 1
    } else {
        reads_elsewhere(access)
    }
}

/// The coarsest shape that refines both row-major shapes `a` and `b` of the same
/// number of elements: a shape whose axes each lie within one axis of `a` and one
/// of `b`, so an element's row-major index is the same in all three and a loop over
/// it walks either tensor in order. `a` itself when the shapes are equal; `None`
/// when the element counts differ or are zero, or when no such shape exists
/// (`[6, 4]` against `[4, 6]`: the axis boundaries 4 and 6 do not nest).
pub fn common_refinement(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a == b {
        return Some(a.to_vec());
    }
    // An axis boundary is the number of elements inside it (a suffix product).
    let boundaries = |s: &[usize]| -> Option<Vec<usize>> {
        let mut out = vec![1usize];
        let mut p = 1usize;
        for &d in s.iter().rev() {
            p = p.checked_mul(d)?;
            out.push(p);
        }
        Some(out)
    };
    let (ba, bb) = (boundaries(a)?, boundaries(b)?);
    let total = *ba.last()?;
    if total == 0 || Some(&total) != bb.last() {
        return None;
    }
    let mut cuts: Vec<usize> = ba.into_iter().chain(bb).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut dims = Vec::with_capacity(cuts.len());
    for w in cuts.windows(2).rev() {
        if w[1] % w[0] != 0 {
            return None;
        }
        dims.push(w[1] / w[0]);
    }
    if dims.is_empty() {
        dims.push(1);
    }
    Some(dims)
}

/// The kernels of a graph, their execution order, and who reads which memory.
#[derive(Debug)]
pub struct Fusion {
    topo: Vec<NodeId>,
    ops: Vec<Vec<NodeId>>,
    class: Vec<Class>,
    groups: PrimaryMap<GroupId, Group>,
    order: Vec<GroupId>,
    at: SecondaryMap<GroupId, usize>,
    readers: Vec<Vec<(GroupId, NodeId)>>,
    end_read: Vec<bool>,
    absorbed: Vec<bool>,
}

impl Fusion {
    /// Groups the live nodes of `graph` (verified) into kernels and orders
    /// them; `fuse_matmul(k)` says whether a matrix product with inner
    /// dimension `k` becomes an expression of the cluster that consumes it.
    pub fn new(graph: &Graph, fuse_matmul: impl Fn(usize) -> bool) -> Result<Fusion, IrError> {
        Fusion::with_absorbed(graph, fuse_matmul, |_, _| false)
    }

    /// [`Fusion::new`], where `absorbs(u, v)` says whether matrix product `u` applies its
    /// one-operand elementwise operand `v` itself while it reads `v`'s operand (a backend
    /// that rounds operands to bf16 while packing them). An elementwise node that every
    /// live reader absorbs, and that no output or assign reads, is computed by no kernel:
    /// it becomes an alias of its operand's memory ([`Fusion::absorbed`]), and the
    /// products reading it are single-op groups.
    pub fn with_absorbed(
        graph: &Graph,
        fuse_matmul: impl Fn(usize) -> bool,
        absorbs: impl Fn(NodeId, NodeId) -> bool,
    ) -> Result<Fusion, IrError> {
        let mut b = Builder::new(graph)?;
        b.classify(&fuse_matmul, &absorbs);
        b.recompute_where_read();
        b.finish()
    }

    /// Whether `v` is applied by the products that read it (see [`Fusion::with_absorbed`]):
    /// its class is then an alias of its operand, whose memory holds `v`'s operand, not `v`.
    pub fn absorbed(&self, v: NodeId) -> bool {
        self.absorbed[v.index()]
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
    pub fn group_of(&self, v: NodeId) -> Option<GroupId> {
        self.class[v.index()].group()
    }

    /// The node whose memory holds `v`'s value (through reshapes).
    pub fn resolve(&self, v: NodeId) -> NodeId {
        match self.class[v.index()] {
            Class::Alias(b) => b,
            Class::Dead
            | Class::Leaf
            | Class::Uniform(_)
            | Class::Value(_)
            | Class::Sink(_)
            | Class::Single(_) => v,
        }
    }

    /// All groups by id, including merged-away (empty) ones.
    pub fn groups(&self) -> &PrimaryMap<GroupId, Group> {
        &self.groups
    }

    /// The non-empty groups in execution order.
    pub fn order(&self) -> &[GroupId] {
        &self.order
    }

    /// The position of non-empty group `g` in [`Fusion::order`].
    pub fn position(&self, g: GroupId) -> usize {
        self.at[g]
    }

    /// The (group, member) pairs that read the memory of resolved node `v`.
    pub fn readers(&self, v: NodeId) -> &[(GroupId, NodeId)] {
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

/// When a kernel runs among those whose operands are ready (the first first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Urgency {
    /// Computes a buffer's new value that no other kernel waits to read the old one of.
    Early,
    /// Any other kernel, in graph order.
    #[default]
    Normal,
    /// Computes a buffer's new value while other kernels read its old one.
    Late,
}

/// The grouping in progress, with the scratch marks of the cycle check.
struct Builder<'g> {
    g: &'g Graph,
    f: Fusion,
    pos: Vec<usize>,
    stamp: u32,
    in_w: SecondaryMap<GroupId, u32>,
    visited: Vec<u32>,
    expanded: SecondaryMap<GroupId, u32>,
    live: Vec<bool>,
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
                groups: PrimaryMap::new(),
                order: Vec::new(),
                at: SecondaryMap::new(),
                readers: Vec::new(),
                end_read: Vec::new(),
                absorbed: vec![false; n],
            },
            pos,
            stamp: 0,
            in_w: SecondaryMap::new(),
            visited: vec![0; n],
            expanded: SecondaryMap::new(),
            live,
        })
    }

    fn shape(&self, v: NodeId) -> &'g [usize] {
        self.g.shape(v)
    }

    fn op(&self, v: NodeId) -> &'g Op {
        &self.g.node(v).op
    }

    fn access(&self, v: NodeId) -> Access {
        self.op(v).access()
    }

    fn new_group(&mut self, domain: &[usize], first: NodeId) -> GroupId {
        self.f.groups.push(Group {
            domain: domain.to_vec(),
            members: vec![first],
        })
    }

    fn classify(
        &mut self,
        fuse_matmul: &dyn Fn(usize) -> bool,
        absorbs: &dyn Fn(NodeId, NodeId) -> bool,
    ) {
        for t in 0..self.f.topo.len() {
            let v = self.f.topo[t];
            let operand = |b: &Self, i: usize| b.f.ops[v.index()][i];
            let class = match self.access(v) {
                Access::Leaf => Class::Leaf,
                Access::Uniform(c) => Class::Uniform(c),
                Access::Reinterpret => {
                    let o = operand(self, 0);
                    match self.f.class[o.index()] {
                        Class::Uniform(c) => Class::Uniform(c),
                        Class::Alias(b) => Class::Alias(b),
                        Class::Dead
                        | Class::Leaf
                        | Class::Value(_)
                        | Class::Sink(_)
                        | Class::Single(_) => Class::Alias(o),
                    }
                }
                Access::View => match self.f.class[operand(self, 0).index()] {
                    Class::Uniform(c) => Class::Uniform(c),
                    Class::Dead
                    | Class::Leaf
                    | Class::Alias(_)
                    | Class::Value(_)
                    | Class::Sink(_)
                    | Class::Single(_) => Class::Value(self.new_group(self.shape(v), v)),
                },
                Access::Identity => {
                    // Share the operand's memory unless it lives in a register.
                    let o = operand(self, 0);
                    match self.f.class[o.index()] {
                        Class::Uniform(c) => Class::Uniform(c),
                        Class::Alias(b) => Class::Alias(b),
                        Class::Value(_) => self.join_elementwise(v),
                        Class::Dead | Class::Leaf | Class::Sink(_) | Class::Single(_) => {
                            Class::Alias(o)
                        }
                    }
                }
                Access::Elementwise => match self.absorbed_alias(v, absorbs) {
                    Some(class) => {
                        self.f.absorbed[v.index()] = true;
                        class
                    }
                    None => self.join_elementwise(v),
                },
                Access::Reduction => {
                    let x = operand(self, 0);
                    let joined = self.register_group(x).and_then(|g| {
                        common_refinement(&self.f.groups[g].domain, self.shape(x)).map(|d| (g, d))
                    });
                    match joined {
                        Some((g, domain)) => {
                            self.f.groups[g].domain = domain;
                            self.f.groups[g].members.push(v);
                            Class::Sink(g)
                        }
                        None => Class::Sink(self.new_group(self.shape(x), v)),
                    }
                }
                Access::Contraction { transpose_lhs, .. } => {
                    let absorbing = self.f.ops[v.index()]
                        .iter()
                        .any(|o| self.f.absorbed[o.index()]);
                    if absorbing {
                        self.f.class[v.index()] = Class::Single(self.new_group(self.shape(v), v));
                        continue;
                    }
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
                    let g = self.new_group(self.shape(v), v);
                    if !uniform && fuse_matmul(k) {
                        Class::Value(g)
                    } else {
                        Class::Single(g)
                    }
                }
                Access::Indexed | Access::Windowed | Access::Collective => {
                    Class::Single(self.new_group(self.shape(v), v))
                }
                // A value of the element index could join a cluster; for now
                // the generator runs as a step of its own.
                Access::Generated => Class::Single(self.new_group(self.shape(v), v)),
            };
            self.f.class[v.index()] = class;
        }
    }

    /// The class of elementwise `v` when the products reading it absorb it: an alias of its
    /// one operand's memory, when every live reader is a matrix product that `absorbs` it,
    /// no output or assign reads it, and the operand is in memory (not uniform).
    fn absorbed_alias(&self, v: NodeId, absorbs: &dyn Fn(NodeId, NodeId) -> bool) -> Option<Class> {
        let g = self.g;
        let &[o] = self.f.ops[v.index()].as_slice() else {
            return None;
        };
        let read_at_end =
            g.outputs().iter().any(|x| x.node == v) || g.assigns().iter().any(|a| a.value == v);
        let users: Vec<NodeId> = g
            .users(v)
            .into_iter()
            .filter(|u| self.live[u.index()])
            .collect();
        let all_absorb = !users.is_empty()
            && users
                .iter()
                .all(|&u| matches!(self.access(u), Access::Contraction { .. }) && absorbs(u, v));
        if read_at_end || !all_absorb {
            return None;
        }
        match self.f.class[o.index()] {
            Class::Alias(b) => Some(Class::Alias(b)),
            Class::Leaf | Class::Value(_) | Class::Sink(_) | Class::Single(_) => {
                Some(Class::Alias(o))
            }
            Class::Dead | Class::Uniform(_) => None,
        }
    }

    /// Moves each elementwise member whose readers are all in one other cluster into
    /// that cluster, when every operand it needs is kept in memory anyway: relu's mask
    /// `y ≤ 0`, read only by the backward, is then computed there from the saved `y`
    /// instead of being a tensor of its own kept across the step (on convnet, 3 M
    /// floats and a write pass over every activation).
    fn recompute_where_read(&mut self) {
        let g = self.g;
        let kept = |b: &Self, v: NodeId| {
            g.outputs().iter().any(|o| b.f.resolve(o.node) == v)
                || g.assigns().iter().any(|a| b.f.resolve(a.value) == v)
        };
        for t in 0..self.f.topo.len() {
            let v = self.f.topo[t];
            let Class::Value(from) = self.f.class[v.index()] else {
                continue;
            };
            if !matches!(self.access(v), Access::Elementwise) || kept(self, v) {
                continue;
            }
            // Every live reader reads `v` itself, element by element, in one cluster.
            let mut to = None;
            let mut movable = true;
            for u in g.users(v) {
                let class = self.f.class[u.index()];
                if class == Class::Dead {
                    continue;
                }
                let elementwise = self.f.ops[u.index()]
                    .iter()
                    .enumerate()
                    .filter(|&(_, &o)| o == v)
                    .all(|(i, _)| {
                        let sink = matches!(class, Class::Sink(_));
                        !reads_memory(self.access(u), sink, i)
                    });
                let group = match class {
                    Class::Value(h) | Class::Sink(h) if h != from && elementwise => h,
                    Class::Value(_)
                    | Class::Sink(_)
                    | Class::Dead
                    | Class::Leaf
                    | Class::Uniform(_)
                    | Class::Alias(_)
                    | Class::Single(_) => {
                        movable = false;
                        break;
                    }
                };
                movable &= *to.get_or_insert(group) == group;
            }
            let Some(to) = to.filter(|_| movable) else {
                continue;
            };
            // Its operands stay in memory for some other reader.
            let in_memory = self.f.ops[v.index()].iter().all(|&o| {
                let b = self.f.resolve(o);
                match self.f.class[b.index()] {
                    Class::Uniform(_) | Class::Leaf | Class::Single(_) => true,
                    Class::Value(_) => g
                        .users(b)
                        .into_iter()
                        .chain(self.alias_users(b))
                        .any(|u| u != v && self.f.group_of(u).is_some_and(|h| h != from)),
                    Class::Dead | Class::Alias(_) | Class::Sink(_) => false,
                }
            });
            let Some(domain) = common_refinement(&self.f.groups[to].domain, self.shape(v)) else {
                continue;
            };
            if !in_memory {
                continue;
            }
            self.f.groups[from].members.retain(|&m| m != v);
            self.f.groups[to].members.push(v);
            self.f.groups[to].domain = domain;
            self.f.class[v.index()] = Class::Value(to);
        }
    }

    /// The readers of reshapes of `b`.
    fn alias_users(&self, b: NodeId) -> Vec<NodeId> {
        self.f
            .topo
            .iter()
            .filter(|&&r| self.f.class[r.index()] == Class::Alias(b))
            .flat_map(|&r| self.g.users(r))
            .collect()
    }

    /// Puts elementwise `v` into the cluster of its operands, merging their
    /// clusters where that keeps the kernel graph acyclic.
    fn join_elementwise(&mut self, v: NodeId) -> Class {
        let mut candidates: Vec<GroupId> = Vec::new();
        for &o in &self.f.ops[v.index()] {
            if let Some(g) = self.register_group(o) {
                if !candidates.contains(&g) {
                    candidates.push(g);
                }
            }
        }
        candidates.sort_by_key(|&g| Reverse(self.f.groups[g].members.len()));
        let mut joined: Vec<GroupId> = Vec::new();
        let mut domain = self.shape(v).to_vec();
        for c in candidates {
            let Some(refined) = common_refinement(&domain, &self.f.groups[c].domain) else {
                continue;
            };
            joined.push(c);
            if self.creates_cycle(&joined, v) {
                joined.pop();
            } else {
                domain = refined;
            }
        }
        let Some(&target) = joined.first() else {
            return Class::Value(self.new_group(self.shape(v), v));
        };
        self.f.groups[target].domain = domain;
        for &other in &joined[1..] {
            let members = std::mem::take(&mut self.f.groups[other].members);
            for &m in &members {
                self.f.class[m.index()] = match self.f.class[m.index()] {
                    Class::Sink(_) => Class::Sink(target),
                    Class::Dead
                    | Class::Leaf
                    | Class::Uniform(_)
                    | Class::Alias(_)
                    | Class::Value(_)
                    | Class::Single(_) => Class::Value(target),
                };
            }
            self.f.groups[target].members.extend(members);
        }
        self.f.groups[target].members.push(v);
        Class::Value(target)
    }

    /// The node whose value a cluster member reading `o` element by element takes
    /// from a register: `o` itself when a cluster computes it, or the computed node
    /// a reshape `o` views (a reshape keeps the row-major order, so over a domain
    /// refining both shapes it is the same value at the same point).
    fn register_base(&self, o: NodeId) -> Option<NodeId> {
        let b = self.f.resolve(o);
        matches!(self.f.class[b.index()], Class::Value(_)).then_some(b)
    }

    /// The cluster computing [`Self::register_base`] of `o`, if any.
    fn register_group(&self, o: NodeId) -> Option<GroupId> {
        self.register_base(o).and_then(|b| self.f.group_of(b))
    }

    /// The cluster that takes matrix product `v` as reductions, if any: `aᵀ·b` where
    /// `a` is one column `[k, 1]` computed element by element by a cluster over that
    /// same domain and the result has at most [`COLUMN_PRODUCT_MAX_COLS`] columns.
    /// Result column `j` is then a sum over the cluster's rows of `a[i]·b[i, j]`
    /// (a single-output model's weight gradient, next to its bias gradient), and the
    /// product needs no call of its own.
    fn column_product_cluster(&mut self, v: NodeId) -> Option<GroupId> {
        let Access::Contraction {
            transpose_lhs: true,
            ..
        } = self.access(v)
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
    fn creates_cycle(&mut self, w: &[GroupId], v: NodeId) -> bool {
        self.cycle_with(w, v, false)
    }

    /// [`Self::creates_cycle`], with `v` joining as a reduction (`sink`) or as a value.
    fn cycle_with(&mut self, w: &[GroupId], v: NodeId, sink: bool) -> bool {
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
                let in_register = !reads_memory(self.access(u), as_sink, i)
                    && self.register_base(o).is_some_and(|b| inside(self, b));
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
    fn memory_reads(&self, g: GroupId, u: NodeId) -> Vec<(NodeId, NodeId)> {
        let cluster = !matches!(self.f.class[u.index()], Class::Single(_));
        let as_sink = matches!(self.f.class[u.index()], Class::Sink(_));
        self.f.ops[u.index()]
            .iter()
            .enumerate()
            .filter(|&(i, &o)| {
                let uniform = matches!(self.f.class[o.index()], Class::Uniform(_));
                let in_register =
                    !reads_memory(self.access(u), as_sink, i) && self.register_group(o) == Some(g);
                !cluster || (!uniform && !in_register)
            })
            .map(|(_, &o)| (o, self.f.resolve(o)))
            .collect()
    }

    /// Records who reads which memory and orders the kernels.
    fn finish(mut self) -> Result<Fusion, IrError> {
        let g = self.g;
        let n = g.id_bound();
        let alive: Vec<GroupId> = self
            .f
            .groups
            .iter()
            .filter(|(_, group)| !group.members.is_empty())
            .map(|(i, _)| i)
            .collect();
        for &i in &alive {
            let pos = &self.pos;
            self.f.groups[i].members.sort_by_key(|m| pos[m.index()]);
        }

        // Who reads which memory.
        let mut readers: Vec<Vec<(GroupId, NodeId)>> = vec![Vec::new(); n];
        let mut deps: SecondaryMap<GroupId, Vec<GroupId>> = SecondaryMap::new();
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
        // A group computing a buffer's new value runs as late as possible when
        // other kernels read the buffer's old value (a parameter the backward
        // still multiplies by), so they do so before it is overwritten; as early
        // as possible when none does (a gradient sum, a momentum), so the value
        // is complete while the rest of the step runs (data-parallel training
        // sums gradients then) and its operands die sooner.
        let mut urgency: SecondaryMap<GroupId, Urgency> = SecondaryMap::new();
        for a in g.assigns() {
            let b = self.f.resolve(a.value);
            end_read[b.index()] = true;
            if let Some(p) = self.f.group_of(b) {
                let target = self.f.resolve(a.target);
                let read_elsewhere = readers[target.index()].iter().any(|&(r, _)| r != p);
                urgency[p] = urgency[p].max(if read_elsewhere {
                    Urgency::Late
                } else {
                    Urgency::Early
                });
            }
        }

        // Kernel order: dependencies first, then urgency.
        let order = self.schedule(&alive, &deps, &urgency)?;
        let mut at = SecondaryMap::with_default(usize::MAX);
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
        alive: &[GroupId],
        deps: &SecondaryMap<GroupId, Vec<GroupId>>,
        urgency: &SecondaryMap<GroupId, Urgency>,
    ) -> Result<Vec<GroupId>, IrError> {
        let groups = &self.f.groups;
        let mut users: SecondaryMap<GroupId, Vec<GroupId>> = SecondaryMap::new();
        let mut waiting: SecondaryMap<GroupId, usize> = SecondaryMap::new();
        for &gi in alive {
            waiting[gi] = deps[gi].len();
            for &p in &deps[gi] {
                users[p].push(gi);
            }
        }
        let key = |gi: GroupId| Reverse((urgency[gi], self.pos[groups[gi].members[0].index()], gi));
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
    use graphc_ir::{BinaryOp, TensorType, UnaryOp};

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
        assert_eq!(f.groups()[p].members, [m]);
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
        assert_eq!(f.groups()[b].members, [m, z]);
        assert_eq!(f.order(), [a, b]);
    }

    /// `relu(conv(exp(x), w))` pooled: each windowed op is a group of its
    /// own between clusters, reading its operands from memory, a uniform
    /// one (the adjoint of a summed output, after simplification) included.
    #[test]
    fn windowed_ops_are_groups_of_their_own_reading_memory() {
        use graphc_ir::{AxisWindows, Window, WindowAxis};
        let axis = |input, output, kernel, stride| WindowAxis {
            input,
            output,
            windows: AxisWindows::Strided {
                kernel,
                stride,
                dilation: 1,
                pad_lo: 0,
            },
        };
        let conv_window = Window {
            axes: vec![axis(6, 4, 3, 1), axis(6, 4, 3, 1)],
        };
        let pool_window = Window {
            axes: vec![axis(4, 2, 2, 2), axis(4, 2, 2, 2)],
        };
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[2, 3, 6, 6]));
        let w = g.param("w", &[4, 3, 3, 3]);
        let e = g.unary(UnaryOp::Exp, x).unwrap();
        let c = g.conv(e, w, &conv_window, 1).unwrap();
        let r = g.unary(UnaryOp::Neg, c).unwrap();
        let p = g.max_pool(r, &pool_window).unwrap();
        let ones = g.fill(1.0, &[2, 4, 4, 4]);
        let dw = g.conv_weight_grad(e, ones, &conv_window, 1).unwrap();
        g.add_output("p", p);
        g.add_output("dw", dw);
        let f = Fusion::new(&g, |_| true).unwrap();
        let (Class::Value(ge), Class::Single(gc), Class::Value(gr), Class::Single(gp)) =
            (f.class(e), f.class(c), f.class(r), f.class(p))
        else {
            panic!("unexpected classes: {:?}", [e, c, r, p].map(|v| f.class(v)));
        };
        let Class::Single(gw) = f.class(dw) else {
            panic!("conv_weight_grad is not a group: {:?}", f.class(dw));
        };
        assert_eq!(f.groups()[gc].members, [c]);
        assert_eq!(f.groups()[gp].members, [p]);
        assert_eq!(f.groups()[gw].members, [dw]);
        assert_ne!(ge, gr, "the conv between them splits the clusters");
        let readers_of_e = f.readers(e);
        assert!(
            readers_of_e.len() == 2
                && readers_of_e.contains(&(gc, c))
                && readers_of_e.contains(&(gw, dw)),
            "exp's result is read from memory by both convolutions: {readers_of_e:?}"
        );
        assert_eq!(
            f.readers(r),
            [(gp, p), (gp, p)],
            "max_pool(r, r) reads r twice"
        );
        assert_eq!(f.class(ones), Class::Uniform(1.0));
        assert_eq!(f.readers(ones), [(gw, dw)]);
        assert!(
            f.is_read(ones),
            "a windowed op reads a uniform operand from memory"
        );
        assert!(f.position(ge) < f.position(gc));
        assert!(f.position(gc) < f.position(gr));
        assert!(f.position(gr) < f.position(gp));
        for v in [c, r] {
            assert!(f.is_read(v));
        }
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

    #[test]
    fn ops_on_a_reshape_of_a_cluster_value_join_it_over_a_refined_domain() {
        let (mut g, y, _) = base();
        // [2, 8] viewed as [4, 4]: the cluster runs over [2, 2, 4], which refines both.
        let r = g.reshape(y, &[4, 4]).unwrap();
        let z = g.unary(UnaryOp::Neg, r).unwrap();
        let s = g.reduce(graphc_ir::ReduceOp::Sum, r, &[1]).unwrap();
        g.add_output("z", z);
        g.add_output("s", s);
        let f = Fusion::new(&g, |_| false).unwrap();
        let Class::Value(c) = f.class(y) else {
            panic!("exp is not in a cluster: {:?}", f.class(y));
        };
        assert_eq!(f.class(r), Class::Alias(y));
        assert_eq!(f.class(z), Class::Value(c));
        assert_eq!(f.class(s), Class::Sink(c));
        assert_eq!(f.groups()[c].domain, vec![2, 2, 4]);
        // Read in a register, so exp's result is not stored for its own kernel.
        assert!(!f.is_read(y));
    }

    #[test]
    fn a_reshape_whose_axes_do_not_nest_starts_a_kernel_of_its_own() {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[6, 4]));
        let y = g.unary(UnaryOp::Exp, x).unwrap();
        let r = g.reshape(y, &[4, 6]).unwrap();
        let z = g.unary(UnaryOp::Neg, r).unwrap();
        g.add_output("z", z);
        let f = Fusion::new(&g, |_| false).unwrap();
        assert_ne!(f.group_of(z), f.group_of(y));
        assert!(f.is_read(y));
        assert_eq!(common_refinement(&[6, 4], &[4, 6]), None);
        assert_eq!(
            common_refinement(&[32, 1024], &[32, 8, 128]),
            Some(vec![32, 8, 128])
        );
        assert_eq!(common_refinement(&[2, 3], &[3, 3]), None);
    }

    #[test]
    fn a_mask_read_only_by_a_later_kernel_is_computed_there() {
        // y = exp(x) is kept for a product; m = -y is read only by z = m·(y·w),
        // which cannot join y's cluster (it waits for the product): m moves to z's.
        let (mut g, y, w) = base();
        let p = g.matmul(y, w, false, false).unwrap();
        let m = g.unary(UnaryOp::Neg, y).unwrap();
        let z = g.binary(BinaryOp::Mul, m, p).unwrap();
        g.add_output("z", z);
        let f = Fusion::new(&g, |_| false).unwrap();
        assert_ne!(f.group_of(z), f.group_of(y));
        assert_eq!(f.group_of(m), f.group_of(z));
        assert!(!f.is_read(m), "the mask is not kept");
        assert!(f.is_read(y));
    }
}
