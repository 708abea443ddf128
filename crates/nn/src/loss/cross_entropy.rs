//! `cross_entropy` and `nll`: class-index targets (weights, `ignore_index`,
//! label smoothing) and, for cross entropy, class-probability targets.

use super::Reducing;
use graphc_ir::{BinaryOp, DType, Graph, NodeId, ReduceOp, UnaryOp};

use super::{fill_like, last_axis_constant, reduce_samples, scale, smoothing_factors, weighted};
use crate::layers::log_softmax;
use crate::NnError;

/// The options of `nn.CrossEntropyLoss` (and `nn.NLLLoss`, without smoothing).
pub(super) struct ClassOptions<'a> {
    /// Per-class weights.
    pub(super) weight: Option<&'a [f32]>,
    /// The class index of samples that count nowhere.
    pub(super) ignore_index: i64,
    /// How per-sample losses are combined.
    pub(super) reduction: Reducing,
    /// Label smoothing ε in `[0, 1]`.
    pub(super) label_smoothing: f32,
}

/// `nn.CrossEntropyLoss`: `log_softmax` over classes, then the negative log
/// likelihood of the target classes (or of the target distribution).
pub(super) fn cross_entropy(
    graph: &mut Graph,
    logits: NodeId,
    target: NodeId,
    options: &ClassOptions<'_>,
) -> Result<NodeId, NnError> {
    let log_p = log_softmax(graph, logits, 1)?;
    if graph.dtype(target) == DType::I64 {
        class_indices(graph, log_p, target, options)
    } else {
        class_probabilities(graph, log_p, target, options)
    }
}

/// `nn.NLLLoss`: the input already holds log-probabilities.
pub(super) fn nll(
    graph: &mut Graph,
    log_p: NodeId,
    target: NodeId,
    options: &ClassOptions<'_>,
) -> Result<NodeId, NnError> {
    class_indices(graph, log_p, target, options)
}

/// Sums each row of `[n, c]` into `[n, 1]`.
fn row_sum(graph: &mut Graph, x: NodeId) -> Result<NodeId, NnError> {
    Ok(graph.reduce(ReduceOp::Sum, x, &[1])?)
}

/// Class-index targets, as PyTorch's `nll_loss` computes them:
/// `l_i = -w[y_i] · log p[i, y_i]`; an ignored sample's loss is 0 and it
/// counts neither in the sum nor in the mean's denominator `Σ w[y_i]` (the
/// count of counted samples without weights), so a batch of ignored samples
/// has a NaN mean and a zero gradient, as in PyTorch. With label smoothing ε,
/// `smooth_i = -Σ_c w_c · log p[i, c]` (0 for ignored samples), reduced over
/// the same denominator, mixes in as `(1 - ε) · nll + ε / C · smooth`.
fn class_indices(
    graph: &mut Graph,
    log_p: NodeId,
    target: NodeId,
    options: &ClassOptions<'_>,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(log_p).to_vec();
    let classes = shape[1];
    // one_hot gives a zero row for an index outside [0, C) (an ignore_index
    // such as -100); an ignore_index inside that range has its column zeroed.
    let mut hot = graph.one_hot(target, classes)?;
    if let Ok(ignored) = usize::try_from(options.ignore_index) {
        if ignored < classes {
            let mut keep = vec![1.0; classes];
            keep[ignored] = 0.0;
            let keep = last_axis_constant(graph, &keep, &shape)?;
            hot = graph.binary(BinaryOp::Mul, hot, keep)?;
        }
    }
    // Selecting (rather than multiplying by the one-hot mask) keeps the
    // gradient of every other element exactly 0, even when the mean's
    // denominator is 0 and the loss's gradient is infinite.
    let zeros = fill_like(graph, 0.0, log_p);
    let picked = graph.select(hot, log_p, zeros)?;
    let picked = row_sum(graph, picked)?;
    let counted = row_sum(graph, hot)?;
    let weight_row = options
        .weight
        .map(|w| last_axis_constant(graph, w, &shape))
        .transpose()?;
    let target_weight = match weight_row {
        Some(w) => {
            let hot_w = graph.binary(BinaryOp::Mul, hot, w)?;
            row_sum(graph, hot_w)?
        }
        None => counted,
    };
    let weighted = graph.binary(BinaryOp::Mul, target_weight, picked)?;
    let nll = graph.unary(UnaryOp::Neg, weighted)?;
    let total_weight = graph.sum_all(target_weight)?;
    let nll = reduce_samples(graph, nll, options.reduction, Some(total_weight))?;
    let smoothing = options.label_smoothing;
    if smoothing <= 0.0 {
        return Ok(nll);
    }
    let weighted_log_p = match weight_row {
        Some(w) => graph.binary(BinaryOp::Mul, log_p, w)?,
        None => log_p,
    };
    let all = row_sum(graph, weighted_log_p)?;
    let all = graph.unary(UnaryOp::Neg, all)?;
    let row_zeros = fill_like(graph, 0.0, all);
    let smooth = graph.select(counted, all, row_zeros)?;
    let smooth = reduce_samples(graph, smooth, options.reduction, Some(total_weight))?;
    let (keep, spread) = smoothing_factors(smoothing, classes);
    let nll = scale(graph, nll, keep)?;
    let smooth = scale(graph, smooth, spread)?;
    Ok(graph.binary(BinaryOp::Add, nll, smooth)?)
}

/// Class-probability targets: `l_i = -Σ_c log p_ic · t_ic · w_c` with
/// `t = (1 - ε) · t + ε / C`; the mean divides by the number of samples
/// (weights do not normalise).
fn class_probabilities(
    graph: &mut Graph,
    log_p: NodeId,
    target: NodeId,
    options: &ClassOptions<'_>,
) -> Result<NodeId, NnError> {
    let classes = graph.shape(log_p)[1];
    let smoothing = options.label_smoothing;
    let mut t = target;
    if smoothing > 0.0 {
        let (keep, spread) = smoothing_factors(smoothing, classes);
        let kept = scale(graph, t, keep)?;
        let spread = fill_like(graph, spread, t);
        t = graph.binary(BinaryOp::Add, kept, spread)?;
    }
    let terms = graph.binary(BinaryOp::Mul, log_p, t)?;
    let terms = weighted(graph, terms, options.weight)?;
    let summed = row_sum(graph, terms)?;
    let losses = graph.unary(UnaryOp::Neg, summed)?;
    reduce_samples(graph, losses, options.reduction, None)
}
