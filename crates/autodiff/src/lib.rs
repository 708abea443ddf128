//! Reverse-mode symbolic differentiation over the IR: one vector-Jacobian
//! rule per primitive ([`vjp`]), and [`grad`], which walks the nodes between
//! the parameters and the loss in reverse topological order and appends the
//! backward graph to the same `Graph`.
//!
//! Architecture invariant: rules exist per primitive only; no layer or loss
//! is special-cased here.

#![forbid(unsafe_code)]

mod vjp;

use std::collections::HashMap;

use graphc_ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, UnaryOp};
use thiserror::Error;

pub use vjp::vjp;

/// What can go wrong while differentiating.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AutodiffError {
    /// Only a scalar f32 can be differentiated.
    #[error("cannot differentiate {node}: the loss must be an f32 scalar, it is {ty}")]
    NotScalar {
        /// The node given as loss.
        node: NodeId,
        /// Its type.
        ty: String,
    },
    /// Building the backward graph failed (a bug in a rule).
    #[error(transparent)]
    Ir(#[from] IrError),
}

/// Appends to `graph` the gradient of the scalar `loss` with respect to each
/// of `wrt`, and returns the gradient nodes in the same order. A node the loss
/// does not depend on gets a zero gradient.
pub fn grad(graph: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, AutodiffError> {
    let ty = &graph.node(loss).ty;
    if ty.rank() != 0 || ty.dtype != DType::F32 {
        return Err(AutodiffError::NotScalar {
            node: loss,
            ty: ty.to_string(),
        });
    }
    let order = graph.topo_order()?;
    let relevant = between(graph, &order, wrt, loss);

    let mut adjoint: HashMap<NodeId, NodeId> = HashMap::new();
    let seed = graph.fill(1.0, &[]);
    adjoint.insert(loss, seed);
    for &node in order.iter().rev() {
        if !relevant[node.index()] {
            continue;
        }
        let Some(&g) = adjoint.get(&node) else {
            continue;
        };
        let operands = graph.operands(node);
        let wanted: Vec<bool> = operands.iter().map(|o| relevant[o.index()]).collect();
        if !wanted.contains(&true) {
            continue;
        }
        let contributions = vjp(graph, node, &operands, g, &wanted)?;
        for (operand, contribution) in operands.iter().zip(contributions) {
            let Some(c) = contribution else { continue };
            let sum = match adjoint.get(operand) {
                Some(&previous) => graph.binary(BinaryOp::Add, previous, c)?,
                None => c,
            };
            adjoint.insert(*operand, sum);
        }
    }
    wrt.iter()
        .map(|&w| match adjoint.get(&w) {
            Some(&g) => Ok(g),
            None => {
                let shape = graph.shape(w).to_vec();
                Ok(graph.fill(0.0, &shape))
            }
        })
        .collect()
}

/// Marks the f32 nodes that depend on some `wrt` node and that `loss` depends on.
fn between(graph: &Graph, order: &[NodeId], wrt: &[NodeId], loss: NodeId) -> Vec<bool> {
    let mut from_wrt = vec![false; graph.id_bound()];
    for &w in wrt {
        from_wrt[w.index()] = true;
    }
    for &n in order {
        // nothing past a stop_gradient depends on `wrt` as far as gradients go
        if matches!(graph.node(n).op, Op::Unary(UnaryOp::StopGradient)) {
            continue;
        }
        if graph.operands(n).iter().any(|o| from_wrt[o.index()]) {
            from_wrt[n.index()] = true;
        }
    }
    let mut to_loss = vec![false; graph.id_bound()];
    to_loss[loss.index()] = true;
    for &n in order.iter().rev() {
        if to_loss[n.index()] {
            for o in graph.operands(n) {
                to_loss[o.index()] = true;
            }
        }
    }
    order
        .iter()
        .fold(vec![false; graph.id_bound()], |mut relevant, &n| {
            let i = n.index();
            relevant[i] = from_wrt[i] && to_loss[i] && graph.dtype(n) == DType::F32;
            relevant
        })
}
