//! `bce` (probabilities, logs clamped at -100) and `bce_with_logits`
//! (`pos_weight`, stable for any logit), each with PyTorch's own backward
//! formula attached through `stop_gradient`.

use super::Reducing;
use graphc_ir::{BinaryOp, CompareOp, Graph, NodeId, UnaryOp};

use super::{fill_like, last_axis_constant, reduce_elements, sg, weighted, with_gradient};
use crate::NnError;

/// `nn.BCELoss`: `l = w · ((y - 1) · max(log1p(-x), -100) - y · max(log x, -100))`.
/// PyTorch's backward is `w · (x - y) / max((1 - x) · x, 1e-12)`, finite even
/// at probabilities of exactly 0 and 1 where the clamped log is flat, so that
/// formula is attached as the gradient.
pub(super) fn bce(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    weight: Option<&[f32]>,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(x).to_vec();
    let xs = sg(graph, x)?;
    let floor = graph.fill(-100.0, &shape);
    let one = graph.fill(1.0, &shape);
    let log_x = graph.unary(UnaryOp::Log, xs)?;
    let log_x = graph.binary(BinaryOp::Max, log_x, floor)?;
    let neg_x = graph.unary(UnaryOp::Neg, xs)?;
    let log_1mx = graph.unary(UnaryOp::Log1p, neg_x)?;
    let log_1mx = graph.binary(BinaryOp::Max, log_1mx, floor)?;
    let y_minus_1 = graph.binary(BinaryOp::Sub, y, one)?;
    let negative_term = graph.binary(BinaryOp::Mul, y_minus_1, log_1mx)?;
    let positive_term = graph.binary(BinaryOp::Mul, y, log_x)?;
    let value = graph.binary(BinaryOp::Sub, negative_term, positive_term)?;

    let one_minus_x = graph.binary(BinaryOp::Sub, one, xs)?;
    let variance = graph.binary(BinaryOp::Mul, one_minus_x, xs)?;
    let epsilon = graph.fill(1e-12, &shape);
    let denominator = graph.binary(BinaryOp::Max, variance, epsilon)?;
    let x_minus_y = graph.binary(BinaryOp::Sub, xs, y)?;
    let derivative = graph.binary(BinaryOp::Div, x_minus_y, denominator)?;
    let losses = with_gradient(graph, value, x, xs, derivative)?;
    let losses = weighted(graph, losses, weight)?;
    reduce_elements(graph, losses, reduction)
}

/// `nn.BCEWithLogitsLoss`: `l = w · ((1 - y) · x - log σ(x) · (1 + (p - 1) · y))`
/// with `log σ(x) = min(x, 0) - log1p(exp(-|x|))`, finite for any logit.
/// PyTorch's backward `w · (σ(x) · (p·y + 1 - y) - p·y)` is attached as the
/// gradient, so gradients near a fit target agree element by element.
pub(super) fn bce_with_logits(
    graph: &mut Graph,
    x: NodeId,
    y: NodeId,
    (weight, pos_weight): (Option<&[f32]>, Option<&[f32]>),
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(x).to_vec();
    let xs = sg(graph, x)?;
    let one = graph.fill(1.0, &shape);
    let (mut log_sigmoid, exp_neg_abs) = log_sigmoid_parts(graph, xs)?;
    let pos_weight = pos_weight
        .map(|p| last_axis_constant(graph, p, &shape))
        .transpose()?;
    // σ(x) = 1 / (1 + e) for x ≥ 0 and e / (1 + e) below, with e = exp(-|x|)
    // shared with log σ: one exponential per element instead of two.
    let zero = graph.fill(0.0, &shape);
    let non_negative = graph.compare(CompareOp::Ge, xs, zero)?;
    let numerator = graph.select(non_negative, one, exp_neg_abs)?;
    let one_plus_e = graph.binary(BinaryOp::Add, one, exp_neg_abs)?;
    let sigmoid = graph.binary(BinaryOp::Div, numerator, one_plus_e)?;
    let derivative = match pos_weight {
        Some(p) => {
            let p_minus_1 = graph.binary(BinaryOp::Sub, p, one)?;
            let scaled = graph.binary(BinaryOp::Mul, p_minus_1, y)?;
            let log_weight = graph.binary(BinaryOp::Add, scaled, one)?;
            log_sigmoid = graph.binary(BinaryOp::Mul, log_sigmoid, log_weight)?;
            // (p·y + 1 - y) · σ(x) - p·y
            let py = graph.binary(BinaryOp::Mul, p, y)?;
            let py_plus_1 = graph.binary(BinaryOp::Add, py, one)?;
            let factor = graph.binary(BinaryOp::Sub, py_plus_1, y)?;
            let scaled_sigmoid = graph.binary(BinaryOp::Mul, factor, sigmoid)?;
            graph.binary(BinaryOp::Sub, scaled_sigmoid, py)?
        }
        None => graph.binary(BinaryOp::Sub, sigmoid, y)?,
    };
    let one_minus_y = graph.binary(BinaryOp::Sub, one, y)?;
    let linear = graph.binary(BinaryOp::Mul, one_minus_y, xs)?;
    let value = graph.binary(BinaryOp::Sub, linear, log_sigmoid)?;
    let losses = with_gradient(graph, value, x, xs, derivative)?;
    let losses = weighted(graph, losses, weight)?;
    reduce_elements(graph, losses, reduction)
}

/// `log σ(x) = min(x, 0) - log1p(exp(-|x|))`, PyTorch's stable form.
pub(super) fn log_sigmoid(graph: &mut Graph, x: NodeId) -> Result<NodeId, NnError> {
    Ok(log_sigmoid_parts(graph, x)?.0)
}

/// `log σ(x)` and the `exp(-|x|)` it is made from.
fn log_sigmoid_parts(graph: &mut Graph, x: NodeId) -> Result<(NodeId, NodeId), NnError> {
    let zero = fill_like(graph, 0.0, x);
    let min0 = graph.binary(BinaryOp::Min, x, zero)?;
    let abs = graph.unary(UnaryOp::Abs, x)?;
    let neg_abs = graph.unary(UnaryOp::Neg, abs)?;
    let exp = graph.unary(UnaryOp::Exp, neg_abs)?;
    let softplus = graph.unary(UnaryOp::Log1p, exp)?;
    Ok((graph.binary(BinaryOp::Sub, min0, softplus)?, exp))
}
