//! Likelihood-style losses on distributions and counts: `kl_div`
//! (`log_target`, `batchmean`) and `poisson_nll` (`log_input`, `full`, `eps`).

use super::Reducing;
use graphc_ir::{BinaryOp, CompareOp, Graph, NodeId, UnaryOp};

use super::{fill_like, reduce_elements, scale};
use crate::NnError;

/// `nn.KLDivLoss` on log-probabilities `x`: `xlogy(t, t) - t · x`, or with
/// `log_target`, `exp(t) · (t - x)`. `xlogy(0, 0)` is 0, as in PyTorch.
pub(super) fn kl_div(
    graph: &mut Graph,
    x: NodeId,
    t: NodeId,
    log_target: bool,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let losses = if log_target {
        let p = graph.unary(UnaryOp::Exp, t)?;
        let diff = graph.binary(BinaryOp::Sub, t, x)?;
        graph.binary(BinaryOp::Mul, p, diff)?
    } else {
        let entropy = xlogy_self(graph, t)?;
        let cross = graph.binary(BinaryOp::Mul, t, x)?;
        graph.binary(BinaryOp::Sub, entropy, cross)?
    };
    reduce_elements(graph, losses, reduction)
}

/// `xlogy(t, t)`: `t · log t`, and 0 where `t == 0` (NaN stays NaN).
fn xlogy_self(graph: &mut Graph, t: NodeId) -> Result<NodeId, NnError> {
    let zero = fill_like(graph, 0.0, t);
    let is_zero = graph.compare(CompareOp::Eq, t, zero)?;
    let log = graph.unary(UnaryOp::Log, t)?;
    let product = graph.binary(BinaryOp::Mul, t, log)?;
    Ok(graph.select(is_zero, zero, product)?)
}

/// `nn.PoissonNLLLoss`: `exp(x) - t · x` for a log rate (`log_input`), else
/// `x - t · log(x + eps)`; `full` adds Stirling's `t·log t - t + ½·log(2πt)`
/// where `t > 1` (PyTorch masks it to 0 where `t <= 1`).
pub(super) fn poisson_nll(
    graph: &mut Graph,
    x: NodeId,
    t: NodeId,
    (log_input, full, eps): (bool, bool, f32),
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let mut losses = if log_input {
        let rate = graph.unary(UnaryOp::Exp, x)?;
        let tx = graph.binary(BinaryOp::Mul, t, x)?;
        graph.binary(BinaryOp::Sub, rate, tx)?
    } else {
        let eps = fill_like(graph, eps, x);
        let shifted = graph.binary(BinaryOp::Add, x, eps)?;
        let log = graph.unary(UnaryOp::Log, shifted)?;
        let t_log = graph.binary(BinaryOp::Mul, t, log)?;
        graph.binary(BinaryOp::Sub, x, t_log)?
    };
    if full {
        let log_t = graph.unary(UnaryOp::Log, t)?;
        let t_log_t = graph.binary(BinaryOp::Mul, t, log_t)?;
        let minus_t = graph.binary(BinaryOp::Sub, t_log_t, t)?;
        let two_pi_t = scale(graph, t, std::f64::consts::TAU as f32)?;
        let log_two_pi_t = graph.unary(UnaryOp::Log, two_pi_t)?;
        let half = scale(graph, log_two_pi_t, 0.5)?;
        let stirling = graph.binary(BinaryOp::Add, minus_t, half)?;
        let one = fill_like(graph, 1.0, t);
        let small = graph.compare(CompareOp::Le, t, one)?;
        let zero = fill_like(graph, 0.0, t);
        let stirling = graph.select(small, zero, stirling)?;
        losses = graph.binary(BinaryOp::Add, losses, stirling)?;
    }
    reduce_elements(graph, losses, reduction)
}
