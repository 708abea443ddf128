//! Margin losses: `soft_margin` (targets ±1), `multilabel_soft_margin`
//! (0/1 targets per class, `weight`) and `multi_margin` (class indices,
//! `p`, `margin`, `weight`).

use super::Reducing;
use graphc_ir::{BinaryOp, CompareOp, Graph, NodeId, ReduceOp, UnaryOp};

use super::binary::log_sigmoid;
use super::{fill_like, last_axis_constant, reduce_elements, reduce_samples, weighted};
use crate::NnError;

/// `nn.SoftMarginLoss`: `log1p(exp(-x · y))`, computed as PyTorch computes it
/// (so it overflows to infinity where PyTorch's does).
pub(super) fn soft_margin(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let neg = graph.unary(UnaryOp::Neg, x)?;
    let margin = graph.binary(BinaryOp::Mul, neg, y)?;
    let exp = graph.unary(UnaryOp::Exp, margin)?;
    let losses = graph.unary(UnaryOp::Log1p, exp)?;
    reduce_elements(graph, losses, reduction)
}

/// `nn.MultiLabelSoftMarginLoss`: per sample, the mean over the `C` classes of
/// `-w_c · (y · log σ(x) + (1 - y) · log σ(-x))`.
pub(super) fn multilabel_soft_margin(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    weight: Option<&[f32]>,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(x).to_vec();
    let positive = log_sigmoid(graph, x)?;
    let neg_x = graph.unary(UnaryOp::Neg, x)?;
    let negative = log_sigmoid(graph, neg_x)?;
    let one = graph.fill(1.0, &shape);
    let one_minus_y = graph.binary(BinaryOp::Sub, one, y)?;
    let positive = graph.binary(BinaryOp::Mul, y, positive)?;
    let negative = graph.binary(BinaryOp::Mul, one_minus_y, negative)?;
    let both = graph.binary(BinaryOp::Add, positive, negative)?;
    let losses = graph.unary(UnaryOp::Neg, both)?;
    let losses = weighted(graph, losses, weight)?;
    let per_sample = graph.reduce(ReduceOp::Sum, losses, &[1])?;
    let per_sample = scale_by_inverse(graph, per_sample, shape[1])?;
    reduce_samples(graph, per_sample, reduction, None)
}

/// `nn.MultiMarginLoss`: per sample, `Σ_{j ≠ y} w_y · max(0, margin - x_y + x_j)^p / C`
/// with `p` 1 or 2; the hinge's gradient at 0 is 0, as in PyTorch's kernel.
pub(super) fn multi_margin(
    graph: &mut Graph,
    x: NodeId,
    target: NodeId,
    (p, margin): (u32, f32),
    weight: Option<&[f32]>,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(x).to_vec();
    let classes = shape[1];
    let hot = graph.one_hot(target, classes)?;
    let zeros = graph.fill(0.0, &shape);
    let picked = graph.select(hot, x, zeros)?;
    let x_target = graph.reduce(ReduceOp::Sum, picked, &[1])?;
    let x_target = graph.broadcast(x_target, &shape)?;
    // z = margin - x_y + x_j, in PyTorch's order
    let margin = graph.fill(margin, &shape);
    let gap = graph.binary(BinaryOp::Sub, margin, x_target)?;
    let z = graph.binary(BinaryOp::Add, gap, x)?;
    let active = graph.compare(CompareOp::Gt, z, zeros)?;
    let hinge = if p == 2 {
        graph.binary(BinaryOp::Mul, z, z)?
    } else {
        z
    };
    let mut hinge = graph.select(active, hinge, zeros)?;
    if let Some(w) = weight {
        let w = last_axis_constant(graph, w, &shape)?;
        let hot_w = graph.binary(BinaryOp::Mul, hot, w)?;
        let w_target = graph.reduce(ReduceOp::Sum, hot_w, &[1])?;
        let w_target = graph.broadcast(w_target, &shape)?;
        hinge = graph.binary(BinaryOp::Mul, hinge, w_target)?;
    }
    let others = graph.select(hot, zeros, hinge)?;
    let per_sample = graph.reduce(ReduceOp::Sum, others, &[1])?;
    let per_sample = scale_by_inverse(graph, per_sample, classes)?;
    reduce_samples(graph, per_sample, reduction, None)
}

/// `x / n`.
fn scale_by_inverse(graph: &mut Graph, x: NodeId, n: usize) -> Result<NodeId, NnError> {
    let n = fill_like(graph, n as f32, x);
    Ok(graph.binary(BinaryOp::Div, x, n)?)
}
