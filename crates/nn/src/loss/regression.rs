//! Elementwise regression losses: `mse`, `l1`, `smooth_l1` (`beta`) and
//! `huber` (`delta`), as PyTorch's kernels compute them.

use super::Reducing;
use graphc_ir::{BinaryOp, CompareOp, Graph, NodeId, UnaryOp};

use super::{fill_like, reduce_elements, scale};
use crate::NnError;

/// `nn.MSELoss`: `(x - y)²`.
pub(super) fn mse(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let diff = graph.binary(BinaryOp::Sub, x, y)?;
    let squared = graph.binary(BinaryOp::Mul, diff, diff)?;
    reduce_elements(graph, squared, reduction)
}

/// `nn.L1Loss`: `|x - y|`, whose gradient at 0 is 0 as in PyTorch.
pub(super) fn l1(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let diff = graph.binary(BinaryOp::Sub, x, y)?;
    let abs = graph.unary(UnaryOp::Abs, diff)?;
    reduce_elements(graph, abs, reduction)
}

/// `nn.SmoothL1Loss`: `0.5 · z² / β` where `z = |x - y| < β`, else `z - 0.5 · β`;
/// `β = 0` is `l1` (as in PyTorch, which never divides by it).
pub(super) fn smooth_l1(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    beta: f32,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    if beta == 0.0 {
        return l1(graph, x, y, reduction);
    }
    let losses = piecewise(graph, x, y, beta, |graph, z, half_square, beta_node| {
        // quadratic: 0.5 · z · z / β; linear: z - 0.5 · β
        let quadratic = graph.binary(BinaryOp::Div, half_square, beta_node)?;
        let half_beta = fill_like(graph, 0.5 * beta, z);
        let linear = graph.binary(BinaryOp::Sub, z, half_beta)?;
        Ok((quadratic, linear))
    })?;
    reduce_elements(graph, losses, reduction)
}

/// `nn.HuberLoss`: `0.5 · z²` where `z = |x - y| < δ`, else `δ · (z - 0.5 · δ)`
/// (`δ` times `smooth_l1` with `β = δ`).
pub(super) fn huber(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    delta: f32,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let losses = piecewise(graph, x, y, delta, |graph, z, half_square, delta_node| {
        let half_delta = fill_like(graph, 0.5 * delta, z);
        let excess = graph.binary(BinaryOp::Sub, z, half_delta)?;
        let linear = graph.binary(BinaryOp::Mul, delta_node, excess)?;
        Ok((half_square, linear))
    })?;
    reduce_elements(graph, losses, reduction)
}

/// The quadratic branch where `z = |x - y| < threshold`, the linear one
/// elsewhere; `branches(graph, z, 0.5 · z · z, threshold)` builds both.
fn piecewise(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    threshold: f32,
    branches: impl FnOnce(&mut Graph, NodeId, NodeId, NodeId) -> Result<(NodeId, NodeId), NnError>,
) -> Result<NodeId, NnError> {
    let diff = graph.binary(BinaryOp::Sub, x, y)?;
    let z = graph.unary(UnaryOp::Abs, diff)?;
    let threshold = fill_like(graph, threshold, z);
    let half_z = scale(graph, z, 0.5)?;
    let half_square = graph.binary(BinaryOp::Mul, half_z, z)?;
    let (quadratic, linear) = branches(graph, z, half_square, threshold)?;
    let inside = graph.compare(CompareOp::Lt, z, threshold)?;
    Ok(graph.select(inside, quadratic, linear)?)
}
