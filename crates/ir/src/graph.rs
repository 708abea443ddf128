//! The graph: nodes with typed outputs on a `petgraph` `StableDiGraph`, the
//! named outputs, and the `Assign`s that write persistent buffers at the end
//! of a step.
//!
//! Edges run from operand to user; an edge's weight is the operand position.
//! Node ids stay valid when other nodes are removed (a stable graph), so
//! passes can delete without renumbering.

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::fmt;

use crate::{BinaryOp, CompareOp, DType, IrError, Op, ReduceOp, TensorType, UnaryOp, Window};

/// Typed index of a node in a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(NodeIndex<u32>);

impl NodeId {
    /// Dense index, stable for the node's lifetime, below [`Graph::id_bound`].
    pub fn index(self) -> usize {
        self.0.index()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0.index())
    }
}

/// One node: a primitive op and the type of its output.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node computes.
    pub op: Op,
    /// Type of the node's output.
    pub ty: TensorType,
}

/// A named result of the step (the loss, a metric, logits).
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Name callers read it by.
    pub name: String,
    /// The node whose value it is.
    pub node: NodeId,
}

/// At the end of a step, `target` (a `Param` or `State`) takes the value of `value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assign {
    /// The persistent leaf written.
    pub target: NodeId,
    /// The node whose value is written.
    pub value: NodeId,
}

/// A training step (or any computation) as a DAG of primitive ops.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    g: StableDiGraph<Node, u32>,
    arguments: Vec<NodeId>,
    outputs: Vec<Output>,
    assigns: Vec<Assign>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    fn leaf(&mut self, op: Op, ty: TensorType) -> NodeId {
        NodeId(self.g.add_node(Node { op, ty }))
    }

    /// A per-step input bound by position at each run.
    pub fn input(&mut self, name: &str, ty: TensorType) -> NodeId {
        let id = self.leaf(Op::Input(name.to_string()), ty);
        self.arguments.push(id);
        id
    }

    /// A runtime f32 scalar bound by position at each run.
    pub fn hyper(&mut self, name: &str) -> NodeId {
        let id = self.leaf(Op::Hyper(name.to_string()), TensorType::scalar());
        self.arguments.push(id);
        id
    }

    /// A trainable parameter of the given shape.
    pub fn param(&mut self, name: &str, shape: &[usize]) -> NodeId {
        self.leaf(Op::Param(name.to_string()), TensorType::f32(shape))
    }

    /// An optimizer buffer of the given shape, zero before the first step.
    pub fn state(&mut self, name: &str, shape: &[usize]) -> NodeId {
        self.leaf(Op::State(name.to_string()), TensorType::f32(shape))
    }

    /// A tensor whose every element is `value`.
    pub fn fill(&mut self, value: f32, shape: &[usize]) -> NodeId {
        self.leaf(Op::Fill(value), TensorType::f32(shape))
    }

    /// A literal tensor; `data` is row-major and must match `shape`.
    pub fn constant(&mut self, data: Vec<f32>, shape: &[usize]) -> Result<NodeId, IrError> {
        let ty = TensorType::f32(shape);
        if data.len() != ty.numel() {
            return Err(IrError::ty(
                "constant",
                format!("{} values do not fill {ty}", data.len()),
            ));
        }
        Ok(self.leaf(Op::Constant(data), ty))
    }

    /// Adds a non-leaf op applied to `operands`, inferring its type.
    pub fn add(&mut self, op: Op, operands: &[NodeId]) -> Result<NodeId, IrError> {
        let types: Vec<&TensorType> = operands.iter().map(|&o| &self.node(o).ty).collect();
        let ty = op.infer(&types)?;
        let id = NodeId(self.g.add_node(Node { op, ty }));
        for (position, operand) in operands.iter().enumerate() {
            self.g.add_edge(operand.0, id.0, position as u32);
        }
        Ok(id)
    }

    /// Elementwise `u(x)`.
    pub fn unary(&mut self, u: UnaryOp, x: NodeId) -> Result<NodeId, IrError> {
        self.add(Op::Unary(u), &[x])
    }

    /// Elementwise `b(x, y)` of equally shaped operands.
    pub fn binary(&mut self, b: BinaryOp, x: NodeId, y: NodeId) -> Result<NodeId, IrError> {
        self.add(Op::Binary(b), &[x, y])
    }

    /// Elementwise comparison as a 0/1 mask.
    pub fn compare(&mut self, c: CompareOp, x: NodeId, y: NodeId) -> Result<NodeId, IrError> {
        self.add(Op::Compare(c), &[x, y])
    }

    /// `a` where `mask != 0`, else `b`.
    pub fn select(&mut self, mask: NodeId, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.add(Op::Select, &[mask, a, b])
    }

    /// Reduction over `axes` (kept with size 1).
    pub fn reduce(&mut self, op: ReduceOp, x: NodeId, axes: &[usize]) -> Result<NodeId, IrError> {
        self.add(
            Op::Reduce {
                op,
                axes: axes.to_vec(),
            },
            &[x],
        )
    }

    /// Sum of all elements as a scalar of shape `[]`.
    pub fn sum_all(&mut self, x: NodeId) -> Result<NodeId, IrError> {
        let rank = self.node(x).ty.rank();
        let axes: Vec<usize> = (0..rank).collect();
        let summed = if rank == 0 {
            x
        } else {
            self.reduce(ReduceOp::Sum, x, &axes)?
        };
        self.reshape(summed, &[])
    }

    /// Repeats size-1 axes of `x` up to `shape` (same rank).
    pub fn broadcast(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, IrError> {
        self.add(Op::Broadcast(shape.to_vec()), &[x])
    }

    /// NumPy-style broadcast of `x` to `shape`: pads the rank on the left with
    /// 1s, then repeats size-1 axes. Returns `x` itself when nothing changes.
    pub fn broadcast_to(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, IrError> {
        let from = self.node(x).ty.shape.clone();
        if from == shape {
            return Ok(x);
        }
        if from.len() > shape.len() {
            return Err(IrError::ty(
                "broadcast",
                format!("cannot broadcast {from:?} to {shape:?}"),
            ));
        }
        let mut padded = vec![1; shape.len() - from.len()];
        padded.extend_from_slice(&from);
        let x = self.reshape(x, &padded)?;
        if padded == shape {
            return Ok(x);
        }
        self.broadcast(x, shape)
    }

    /// Same elements, another shape of equal size; returns `x` when the shape is unchanged.
    pub fn reshape(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, IrError> {
        if self.node(x).ty.shape == shape {
            return Ok(x);
        }
        self.add(Op::Reshape(shape.to_vec()), &[x])
    }

    /// Permutes the axes of `x`.
    pub fn transpose(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId, IrError> {
        self.add(Op::Transpose(perm.to_vec()), &[x])
    }

    /// Matrix product with optional transposes of either side.
    pub fn matmul(
        &mut self,
        a: NodeId,
        b: NodeId,
        transpose_lhs: bool,
        transpose_rhs: bool,
    ) -> Result<NodeId, IrError> {
        self.add(
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            },
            &[a, b],
        )
    }

    /// One-hot rows of `classes` columns for i64 indices.
    pub fn one_hot(&mut self, indices: NodeId, classes: usize) -> Result<NodeId, IrError> {
        self.add(Op::OneHot(classes), &[indices])
    }

    /// Convolution of `x [N, C, *input]` with `w [O, C/groups, *kernel]` (see [`Op::Conv`]).
    pub fn conv(
        &mut self,
        x: NodeId,
        w: NodeId,
        window: &Window,
        groups: usize,
    ) -> Result<NodeId, IrError> {
        let window = window.clone();
        self.add(Op::Conv { window, groups }, &[x, w])
    }

    /// Max pooling of `x` over `window`: `max_pool(x, x)` (see [`Op::MaxPool`]).
    pub fn max_pool(&mut self, x: NodeId, window: &Window) -> Result<NodeId, IrError> {
        self.add(Op::MaxPool(window.clone()), &[x, x])
    }

    /// The gradient of a convolution with respect to its input, from `dy`
    /// and the weight `w` (see [`Op::ConvInputGrad`]).
    pub fn conv_input_grad(
        &mut self,
        dy: NodeId,
        w: NodeId,
        window: &Window,
        groups: usize,
    ) -> Result<NodeId, IrError> {
        let window = window.clone();
        self.add(Op::ConvInputGrad { window, groups }, &[dy, w])
    }

    /// The gradient of a convolution with respect to its weight, from its
    /// input `x` and `dy` (see [`Op::ConvWeightGrad`]).
    pub fn conv_weight_grad(
        &mut self,
        x: NodeId,
        dy: NodeId,
        window: &Window,
        groups: usize,
    ) -> Result<NodeId, IrError> {
        let window = window.clone();
        self.add(Op::ConvWeightGrad { window, groups }, &[x, dy])
    }

    /// `v` at each window's argmax of `x`: `max_pool(x, v)` (see [`Op::MaxPool`]).
    pub fn max_pool_at(
        &mut self,
        x: NodeId,
        v: NodeId,
        window: &Window,
    ) -> Result<NodeId, IrError> {
        self.add(Op::MaxPool(window.clone()), &[x, v])
    }

    /// `dy` scattered to each window's argmax of `x` (see [`Op::MaxPoolGrad`]).
    pub fn max_pool_grad(
        &mut self,
        x: NodeId,
        dy: NodeId,
        window: &Window,
    ) -> Result<NodeId, IrError> {
        self.add(Op::MaxPoolGrad(window.clone()), &[x, dy])
    }

    /// Uniform values in [0, 1) of `shape` from `seed`, `stream` and the i64
    /// step counter `step` (see [`Op::RandomUniform`]).
    pub fn random_uniform(
        &mut self,
        step: NodeId,
        seed: u64,
        stream: u32,
        shape: &[usize],
    ) -> Result<NodeId, IrError> {
        let shape = shape.to_vec();
        self.add(
            Op::RandomUniform {
                seed,
                stream,
                shape,
            },
            &[step],
        )
    }

    /// `x` summed over the ranks of a data-parallel run (see [`Op::SumRanks`]).
    pub fn sum_ranks(&mut self, x: NodeId) -> Result<NodeId, IrError> {
        self.add(Op::SumRanks, &[x])
    }

    /// Names a node as a result of the step.
    pub fn add_output(&mut self, name: &str, node: NodeId) {
        self.outputs.push(Output {
            name: name.to_string(),
            node,
        });
    }

    /// Writes `value` into the persistent leaf `target` at the end of each step.
    pub fn add_assign(&mut self, target: NodeId, value: NodeId) -> Result<(), IrError> {
        let (t, v) = (self.node(target), self.node(value));
        if !t.op.is_persistent() || t.ty != v.ty {
            return Err(IrError::ty(
                "assign",
                format!(
                    "target {target} ({}, {}) cannot take {value} ({})",
                    t.op, t.ty, v.ty
                ),
            ));
        }
        self.assigns.push(Assign { target, value });
        Ok(())
    }

    /// The node behind an id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.0]
    }

    /// Whether `id` names a live node.
    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.0)
    }

    /// Operands of a node in position order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(u32, NodeId)> = self
            .g
            .edges_directed(id.0, Direction::Incoming)
            .map(|e| (*e.weight(), NodeId(e.source())))
            .collect();
        edges.sort_unstable_by_key(|&(position, _)| position);
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// Operand positions of a node as stored, unsorted (for `verify`).
    pub(crate) fn operand_positions(&self, id: NodeId) -> Vec<u32> {
        self.g
            .edges_directed(id.0, Direction::Incoming)
            .map(|e| *e.weight())
            .collect()
    }

    /// Nodes that use `id` as an operand (each once).
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self
            .g
            .neighbors_directed(id.0, Direction::Outgoing)
            .map(NodeId)
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// All live node ids in increasing index order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices().map(NodeId)
    }

    /// Number of live nodes.
    pub fn len(&self) -> usize {
        self.g.node_count()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.g.node_count() == 0
    }

    /// An upper bound of [`NodeId::index`] over live nodes, for dense side tables.
    pub fn id_bound(&self) -> usize {
        use petgraph::visit::NodeIndexable;
        self.g.node_bound()
    }

    /// Nodes in an order where every operand comes before its users.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, IrError> {
        petgraph::algo::toposort(&self.g, None)
            .map(|order| order.into_iter().map(NodeId).collect())
            .map_err(|cycle| IrError::Invalid {
                node: NodeId(cycle.node_id()).to_string(),
                message: "the graph has a cycle".into(),
            })
    }

    /// `Input` and `Hyper` leaves in the order an executor binds them.
    pub fn arguments(&self) -> &[NodeId] {
        &self.arguments
    }

    /// The named results.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Index of the output named `name`.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|o| o.name == name)
    }

    /// The writes applied to persistent leaves at the end of a step.
    pub fn assigns(&self) -> &[Assign] {
        &self.assigns
    }

    /// `Param` and `State` leaves in index order.
    pub fn persistent(&self) -> Vec<NodeId> {
        self.node_ids()
            .filter(|&n| self.node(n).op.is_persistent())
            .collect()
    }

    /// `Param` leaves in index order.
    pub fn params(&self) -> Vec<NodeId> {
        self.node_ids()
            .filter(|&n| matches!(self.node(n).op, Op::Param(_)))
            .collect()
    }

    /// The named leaf (`Input`, `Param`, `State` or `Hyper`) called `name`.
    pub fn find_leaf(&self, name: &str) -> Option<NodeId> {
        self.node_ids()
            .find(|&n| self.node(n).op.leaf_name() == Some(name))
    }

    /// Makes every user, output and assign of `old` use `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        if old == new {
            return;
        }
        let uses: Vec<(petgraph::stable_graph::EdgeIndex<u32>, NodeIndex<u32>, u32)> = self
            .g
            .edges_directed(old.0, Direction::Outgoing)
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        for (edge, user, position) in uses {
            self.g.remove_edge(edge);
            self.g.add_edge(new.0, user, position);
        }
        for o in &mut self.outputs {
            if o.node == old {
                o.node = new;
            }
        }
        for a in &mut self.assigns {
            if a.value == old {
                a.value = new;
            }
        }
    }

    /// Makes `user` read `new` wherever it reads `old` (other users of `old` are unchanged).
    pub fn replace_use(&mut self, user: NodeId, old: NodeId, new: NodeId) {
        let uses: Vec<(petgraph::stable_graph::EdgeIndex<u32>, u32)> = self
            .g
            .edges_connecting(old.0, user.0)
            .map(|e| (e.id(), *e.weight()))
            .collect();
        for (edge, position) in uses {
            self.g.remove_edge(edge);
            self.g.add_edge(new.0, user.0, position);
        }
    }

    /// Removes a node that nothing uses (no users, outputs or assigns, not an argument).
    pub fn remove_unused(&mut self, id: NodeId) -> Result<(), IrError> {
        let used = self
            .g
            .edges_directed(id.0, Direction::Outgoing)
            .next()
            .is_some()
            || self.outputs.iter().any(|o| o.node == id)
            || self.assigns.iter().any(|a| a.value == id || a.target == id)
            || self.arguments.contains(&id);
        if used {
            return Err(IrError::Invalid {
                node: id.to_string(),
                message: "cannot remove a node that is still used".into(),
            });
        }
        self.g.remove_node(id.0);
        Ok(())
    }

    /// The dtype of a node's output.
    pub fn dtype(&self, id: NodeId) -> DType {
        self.node(id).ty.dtype
    }

    /// The shape of a node's output.
    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.node(id).ty.shape
    }
}
