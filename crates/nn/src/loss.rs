//! Losses as graph builders, with `torch.nn`'s exact definitions: one
//! function per loss family.

use graphc_ir::{BinaryOp, Graph, NodeId, ReduceOp, UnaryOp};
use graphc_spec::{LossSpec, Reduction};

use crate::layers::log_softmax;
use crate::NnError;

/// How the data presents its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetLayout {
    /// One i64 class index per sample: targets are `[batch]`.
    Classes,
    /// `width` floats per sample: targets are `[batch, width]`.
    Floats {
        /// Values per sample.
        width: usize,
    },
}

/// What a loss expects of its targets and how predictions are scored; the
/// one place the trainer learns what kind of problem a loss solves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// One class per sample: class indices (or one probability column per
    /// class); scored by argmax accuracy. `ignore_index` samples count nowhere.
    MultiClass {
        /// The class index that marks a sample to ignore, if the loss has one.
        ignore_index: Option<i64>,
    },
    /// An independent yes/no per output; scored by thresholding (logits at 0,
    /// probabilities at 0.5) against targets at 0.5.
    Binary {
        /// Whether the model output is a logit rather than a probability.
        from_logits: bool,
    },
    /// Real-valued targets; scored by root mean squared error.
    Regression,
}

/// The task a loss solves.
pub fn task_of(loss: &LossSpec) -> Task {
    match loss {
        LossSpec::CrossEntropy { ignore_index, .. } => Task::MultiClass {
            ignore_index: Some(*ignore_index),
        },
        LossSpec::BceWithLogits { .. } => Task::Binary { from_logits: true },
        LossSpec::Mse { .. } => Task::Regression,
    }
}

/// The spec's name of a loss, for messages.
pub(crate) fn loss_name(loss: &LossSpec) -> &'static str {
    match loss {
        LossSpec::Mse { .. } => "mse",
        LossSpec::CrossEntropy { .. } => "cross_entropy",
        LossSpec::BceWithLogits { .. } => "bce_with_logits",
    }
}

/// The loss's reduction.
pub(crate) fn reduction_of(loss: &LossSpec) -> Reduction {
    match loss {
        LossSpec::Mse { reduction }
        | LossSpec::CrossEntropy { reduction, .. }
        | LossSpec::BceWithLogits { reduction, .. } => *reduction,
    }
}

/// Adds `loss(output, target)` to the graph: a scalar for `sum`/`mean`, the
/// per-sample (or per-element) losses for `none`. `target` must be laid out
/// as `layout` says; mismatches with the model output are errors naming both.
pub fn build_loss(
    graph: &mut Graph,
    loss: &LossSpec,
    output: NodeId,
    target: NodeId,
    layout: TargetLayout,
) -> Result<NodeId, NnError> {
    let name = loss_name(loss);
    let err = |message: String| NnError::Loss {
        loss: name,
        message,
    };
    let out_shape = graph.shape(output).to_vec();
    if out_shape.len() != 2 {
        return Err(err(format!(
            "expects a model output of shape [batch, values], got {out_shape:?}"
        )));
    }
    let (n, width) = (out_shape[0], out_shape[1]);
    match (loss, layout) {
        (LossSpec::CrossEntropy { .. }, TargetLayout::Classes) => {}
        (LossSpec::CrossEntropy { .. }, TargetLayout::Floats { width: w }) if w == width => {}
        (_, TargetLayout::Floats { width: w }) if w == width => {}
        (LossSpec::CrossEntropy { .. }, TargetLayout::Floats { width: w }) => {
            return Err(err(format!(
                "class probabilities need one target column per class: the model outputs {width} classes, the data has {w} target columns"
            )))
        }
        (_, TargetLayout::Floats { width: w }) => {
            return Err(err(format!(
                "targets must have the model output's shape: the model outputs {width} values per sample, the data has {w} target columns"
            )))
        }
        (_, TargetLayout::Classes) => {
            return Err(err(
                "needs float targets with the model output's shape, not class indices".into(),
            ))
        }
    }
    let check_len = |what: &str, values: &Option<Vec<f32>>, allowed: &[usize]| match values {
        Some(v) if !allowed.contains(&v.len()) => Err(err(format!(
            "{what} has {} values, expected {}",
            v.len(),
            allowed
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
        _ => Ok(()),
    };
    match loss {
        LossSpec::Mse { reduction } => {
            let diff = graph.binary(BinaryOp::Sub, output, target)?;
            let sq = graph.binary(BinaryOp::Mul, diff, diff)?;
            Ok(reduce(graph, sq, *reduction, None)?)
        }
        LossSpec::CrossEntropy {
            weight,
            ignore_index,
            reduction,
            label_smoothing,
        } => {
            check_len("weight", weight, &[width])?;
            let log_p = log_softmax(graph, output, 1)?;
            let w = weight
                .as_ref()
                .map(|w| row_constant(graph, w, n))
                .transpose()?;
            let settings = (*reduction, *label_smoothing);
            match layout {
                TargetLayout::Classes => {
                    cross_entropy_indices(graph, log_p, target, w, *ignore_index, settings)
                }
                TargetLayout::Floats { .. } => {
                    cross_entropy_probabilities(graph, log_p, target, w, settings)
                }
            }
        }
        LossSpec::BceWithLogits {
            weight,
            pos_weight,
            reduction,
        } => {
            check_len("weight", weight, &[1, width])?;
            check_len("pos_weight", pos_weight, &[1, width])?;
            let shape = [n, width];
            // log σ(x) = min(x, 0) - log1p(exp(-|x|)), finite for any logit
            let zero = graph.fill(0.0, &shape);
            let min0 = graph.binary(BinaryOp::Min, output, zero)?;
            let abs = graph.unary(UnaryOp::Abs, output)?;
            let neg_abs = graph.unary(UnaryOp::Neg, abs)?;
            let exp = graph.unary(UnaryOp::Exp, neg_abs)?;
            let softplus = graph.unary(UnaryOp::Log1p, exp)?;
            let mut log_sigmoid = graph.binary(BinaryOp::Sub, min0, softplus)?;
            if let Some(pw) = pos_weight {
                // log weight = (pos_weight - 1) · y + 1 scales the positive term
                let pw = broadcast_row(graph, pw, n, width)?;
                let one = graph.fill(1.0, &shape);
                let pw_minus = graph.binary(BinaryOp::Sub, pw, one)?;
                let scaled = graph.binary(BinaryOp::Mul, pw_minus, target)?;
                let log_weight = graph.binary(BinaryOp::Add, scaled, one)?;
                log_sigmoid = graph.binary(BinaryOp::Mul, log_sigmoid, log_weight)?;
            }
            // loss = (1 - y) · x - log σ(x)·logw
            let one = graph.fill(1.0, &shape);
            let one_minus_y = graph.binary(BinaryOp::Sub, one, target)?;
            let linear = graph.binary(BinaryOp::Mul, one_minus_y, output)?;
            let mut elementwise = graph.binary(BinaryOp::Sub, linear, log_sigmoid)?;
            if let Some(w) = weight {
                let w = broadcast_row(graph, w, n, width)?;
                elementwise = graph.binary(BinaryOp::Mul, elementwise, w)?;
            }
            Ok(reduce(graph, elementwise, *reduction, None)?)
        }
    }
}

/// `values` (one per column, or a single one) as a constant `[rows, width]` tensor.
fn broadcast_row(
    graph: &mut Graph,
    values: &[f32],
    rows: usize,
    width: usize,
) -> Result<NodeId, NnError> {
    let row: Vec<f32> = if values.len() == 1 {
        vec![values[0]; width]
    } else {
        values.to_vec()
    };
    row_constant(graph, &row, rows)
}

/// A `[1, len]` constant broadcast to `[rows, len]`.
fn row_constant(graph: &mut Graph, row: &[f32], rows: usize) -> Result<NodeId, NnError> {
    let c = graph.constant(row.to_vec(), &[1, row.len()])?;
    Ok(graph.broadcast(c, &[rows, row.len()])?)
}

/// Sums each row of `[n, c]` into `[n, 1]`.
fn row_sum(graph: &mut Graph, x: NodeId) -> Result<NodeId, NnError> {
    Ok(graph.reduce(ReduceOp::Sum, x, &[1])?)
}

/// Applies `reduction` to per-element losses; `mean` divides by `denominator`
/// when given, else by the number of elements.
fn reduce(
    graph: &mut Graph,
    losses: NodeId,
    reduction: Reduction,
    denominator: Option<NodeId>,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(losses).to_vec();
    match reduction {
        Reduction::None => {
            // Per-sample losses: `[n, 1]` becomes `[n]`, as PyTorch returns them.
            if shape.len() == 2 && shape[1] == 1 {
                Ok(graph.reshape(losses, &shape[..1])?)
            } else {
                Ok(losses)
            }
        }
        Reduction::Sum => Ok(graph.sum_all(losses)?),
        Reduction::Mean => {
            let sum = graph.sum_all(losses)?;
            let count = match denominator {
                Some(d) => d,
                None => graph.fill(shape.iter().product::<usize>() as f32, &[]),
            };
            Ok(graph.binary(BinaryOp::Div, sum, count)?)
        }
    }
}

/// Cross entropy with class-index targets, as `nn.CrossEntropyLoss` computes it:
/// `nll_i = -w[y_i] · log p[i, y_i]`; ignored samples count nowhere; the
/// weighted mean divides by `Σ w[y_i]`; label smoothing ε mixes in
/// `smooth_i = -Σ_c w_c log p[i, c]` as `(1-ε)·nll + ε/C·smooth`, whose mean is
/// over `Σ w[y_i]` with weights and over all samples without.
fn cross_entropy_indices(
    graph: &mut Graph,
    log_p: NodeId,
    target: NodeId,
    weight: Option<NodeId>,
    ignore_index: i64,
    (reduction, smoothing): (Reduction, f32),
) -> Result<NodeId, NnError> {
    let shape = graph.shape(log_p).to_vec();
    let (n, classes) = (shape[0], shape[1]);
    let mut hot = graph.one_hot(target, classes)?;
    // one_hot already zeroes indices outside [0, C); an ignore_index inside
    // that range zeroes its column, which is exactly the ignored samples' ones.
    if let Ok(ignored) = usize::try_from(ignore_index) {
        if ignored < classes {
            let mut keep = vec![1.0; classes];
            keep[ignored] = 0.0;
            let keep = row_constant(graph, &keep, n)?;
            hot = graph.binary(BinaryOp::Mul, hot, keep)?;
        }
    }
    let picked_weight = match weight {
        Some(w) => graph.binary(BinaryOp::Mul, hot, w)?,
        None => hot,
    };
    let picked = graph.binary(BinaryOp::Mul, picked_weight, log_p)?;
    let picked = row_sum(graph, picked)?;
    let nll = graph.unary(UnaryOp::Neg, picked)?;
    let weight_of_target = row_sum(graph, picked_weight)?;
    let total_weight = graph.sum_all(weight_of_target)?;
    let nll_reduced = reduce(graph, nll, reduction, Some(total_weight))?;
    if smoothing == 0.0 {
        return Ok(nll_reduced);
    }
    let weighted_log_p = match weight {
        Some(w) => graph.binary(BinaryOp::Mul, log_p, w)?,
        None => log_p,
    };
    let all = row_sum(graph, weighted_log_p)?;
    let counted = row_sum(graph, hot)?;
    let all = graph.binary(BinaryOp::Mul, all, counted)?;
    let smooth = graph.unary(UnaryOp::Neg, all)?;
    let smooth_denominator = weight.map(|_| total_weight);
    let smooth_reduced = reduce(graph, smooth, reduction, smooth_denominator)?;
    mix_smoothing(graph, nll_reduced, smooth_reduced, smoothing, classes)
}

/// `(1 - ε) · nll + ε / C · smooth`.
fn mix_smoothing(
    graph: &mut Graph,
    nll: NodeId,
    smooth: NodeId,
    smoothing: f32,
    classes: usize,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(nll).to_vec();
    let a = graph.fill(1.0 - smoothing, &shape);
    let b = graph.fill(smoothing / classes as f32, &shape);
    let nll = graph.binary(BinaryOp::Mul, nll, a)?;
    let smooth = graph.binary(BinaryOp::Mul, smooth, b)?;
    Ok(graph.binary(BinaryOp::Add, nll, smooth)?)
}

/// Cross entropy with class-probability targets: `l_i = -Σ_c w_c · t_ic · log p_ic`
/// with `t = (1-ε)·t + ε/C`; the mean is over samples (weights do not normalise).
fn cross_entropy_probabilities(
    graph: &mut Graph,
    log_p: NodeId,
    target: NodeId,
    weight: Option<NodeId>,
    (reduction, smoothing): (Reduction, f32),
) -> Result<NodeId, NnError> {
    let shape = graph.shape(log_p).to_vec();
    let classes = shape[1];
    let mut t = target;
    if smoothing != 0.0 {
        let keep = graph.fill(1.0 - smoothing, &shape);
        let spread = graph.fill(smoothing / classes as f32, &shape);
        let kept = graph.binary(BinaryOp::Mul, t, keep)?;
        t = graph.binary(BinaryOp::Add, kept, spread)?;
    }
    let mut terms = graph.binary(BinaryOp::Mul, t, log_p)?;
    if let Some(w) = weight {
        terms = graph.binary(BinaryOp::Mul, terms, w)?;
    }
    let summed = row_sum(graph, terms)?;
    let losses = graph.unary(UnaryOp::Neg, summed)?;
    let count = graph.fill(shape[0] as f32, &[]);
    reduce(graph, losses, reduction, Some(count))
}
