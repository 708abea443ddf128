//! Losses as graph builders, with `torch.nn`'s exact definitions: what each
//! loss expects of its targets ([`Task`], [`TargetLayout`]), the shape checks
//! that name the loss, the reductions, and the dispatch to one module per
//! loss family. A loss whose PyTorch backward is an explicit formula rather
//! than the derivative of its forward (`bce`, `bce_with_logits`) attaches that
//! formula with `stop_gradient`: `v(sg x) + (x - sg x) · sg(dv)`.

mod binary;
mod cross_entropy;
mod divergence;
mod margin;
mod regression;

use graphc_ir::{BinaryOp, CompareOp, DType, Graph, NodeId, TensorType, UnaryOp};
use graphc_spec::{shown_list, LossSpec, Reduction};

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
    /// An objective spec: no targets, the output is the loss; scored by nothing else.
    Objective,
}

/// The task a loss solves.
pub fn task_of(loss: &LossSpec) -> Task {
    match loss {
        LossSpec::CrossEntropy { ignore_index, .. } | LossSpec::Nll { ignore_index, .. } => {
            Task::MultiClass {
                ignore_index: Some(*ignore_index),
            }
        }
        LossSpec::MultiMargin { .. } => Task::MultiClass { ignore_index: None },
        LossSpec::Bce { .. } => Task::Binary { from_logits: false },
        // soft_margin's ±1 targets threshold at 0.5 like 0/1 ones.
        LossSpec::BceWithLogits { .. }
        | LossSpec::SoftMargin { .. }
        | LossSpec::MultiLabelSoftMargin { .. } => Task::Binary { from_logits: true },
        LossSpec::Mse { .. }
        | LossSpec::L1 { .. }
        | LossSpec::SmoothL1 { .. }
        | LossSpec::Huber { .. }
        | LossSpec::KlDiv { .. }
        | LossSpec::PoissonNll { .. } => Task::Regression,
        LossSpec::Objective { .. } => Task::Objective,
    }
}

/// The spec's name of a loss, for messages.
pub(crate) fn loss_name(loss: &LossSpec) -> &'static str {
    loss.name()
}

/// What a loss takes as targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wants {
    /// i64 class indices `[batch]` for an input `[batch, classes]`.
    Classes,
    /// Class indices, or class probabilities shaped like the input (`cross_entropy`).
    ClassesOrProbabilities,
    /// Floats shaped like an input `[batch, classes]`.
    RowFloats,
    /// Floats shaped like the input, of any rank >= 1.
    Floats,
}

fn wants(loss: &LossSpec) -> Wants {
    match loss {
        LossSpec::CrossEntropy { .. } => Wants::ClassesOrProbabilities,
        LossSpec::Nll { .. } | LossSpec::MultiMargin { .. } => Wants::Classes,
        LossSpec::MultiLabelSoftMargin { .. } => Wants::RowFloats,
        LossSpec::Bce { .. }
        | LossSpec::BceWithLogits { .. }
        | LossSpec::Mse { .. }
        | LossSpec::L1 { .. }
        | LossSpec::SmoothL1 { .. }
        | LossSpec::Huber { .. }
        | LossSpec::KlDiv { .. }
        | LossSpec::PoissonNll { .. }
        | LossSpec::SoftMargin { .. }
        | LossSpec::Objective { .. } => Wants::Floats,
    }
}

/// Adds `loss(output, target)` to the graph: a scalar for `sum`/`mean`, the
/// per-sample (class losses) or per-element losses for `none`. `target` must
/// be laid out as `layout` says; mismatches with the model output are errors
/// naming the loss and both shapes. With `denominator` (an f32 `[]` node), every mean
/// divides by it instead of the batch's own count: one rank's share of a batch split across
/// ranks divides by the whole batch's [`mean_denominator`], so the ranks' losses and
/// gradients add up to the whole batch's.
pub fn build_loss(
    graph: &mut Graph,
    loss: &LossSpec,
    (output, target): (NodeId, NodeId),
    layout: TargetLayout,
    denominator: Option<NodeId>,
) -> Result<NodeId, NnError> {
    let target_ty = &graph.node(target).ty;
    let fits = match layout {
        TargetLayout::Classes => target_ty.dtype == DType::I64 && target_ty.rank() == 1,
        TargetLayout::Floats { width } => {
            target_ty.dtype == DType::F32 && target_ty.shape.get(1) == Some(&width)
        }
    };
    if !fits {
        return Err(loss_error(
            loss,
            format!("the target node {target_ty} does not have the layout {layout:?}"),
        ));
    }
    loss_on(graph, loss, output, target, denominator)
}

/// `build_loss` for any target node: the target's type decides how it is read.
fn loss_on(
    graph: &mut Graph,
    loss: &LossSpec,
    input: NodeId,
    target: NodeId,
    denominator: Option<NodeId>,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(input).to_vec();
    let target_ty = graph.node(target).ty.clone();
    check_shapes(loss, &shape, &target_ty)?;
    check_options(loss, &shape, &target_ty)?;
    let reduction = Reducing {
        reduction: loss.reduction(),
        denominator,
    };
    match loss {
        LossSpec::CrossEntropy {
            weight,
            ignore_index,
            label_smoothing,
            ..
        } => {
            let options = cross_entropy::ClassOptions {
                weight: weight.as_deref(),
                ignore_index: *ignore_index,
                reduction,
                label_smoothing: *label_smoothing,
            };
            cross_entropy::cross_entropy(graph, input, target, &options)
        }
        LossSpec::Nll {
            weight,
            ignore_index,
            ..
        } => {
            let options = cross_entropy::ClassOptions {
                weight: weight.as_deref(),
                ignore_index: *ignore_index,
                reduction,
                label_smoothing: 0.0,
            };
            cross_entropy::nll(graph, input, target, &options)
        }
        LossSpec::Bce { weight, .. } => {
            binary::bce(graph, input, target, weight.as_deref(), reduction)
        }
        LossSpec::BceWithLogits {
            weight, pos_weight, ..
        } => binary::bce_with_logits(
            graph,
            input,
            target,
            (weight.as_deref(), pos_weight.as_deref()),
            reduction,
        ),
        LossSpec::Mse { .. } => regression::mse(graph, input, target, reduction),
        LossSpec::L1 { .. } => regression::l1(graph, input, target, reduction),
        LossSpec::SmoothL1 { beta, .. } => {
            regression::smooth_l1(graph, input, target, *beta, reduction)
        }
        LossSpec::Huber { delta, .. } => regression::huber(graph, input, target, *delta, reduction),
        LossSpec::KlDiv { log_target, .. } => {
            divergence::kl_div(graph, input, target, *log_target, reduction)
        }
        LossSpec::PoissonNll {
            log_input,
            full,
            eps,
            ..
        } => divergence::poisson_nll(graph, input, target, (*log_input, *full, *eps), reduction),
        LossSpec::SoftMargin { .. } => margin::soft_margin(graph, input, target, reduction),
        LossSpec::MultiLabelSoftMargin { weight, .. } => {
            margin::multilabel_soft_margin(graph, input, target, weight.as_deref(), reduction)
        }
        LossSpec::MultiMargin {
            p, margin, weight, ..
        } => margin::multi_margin(
            graph,
            input,
            target,
            (*p, *margin),
            weight.as_deref(),
            reduction,
        ),
        // The model's output is the objective's value, one per sample; the target is unread.
        LossSpec::Objective { .. } => reduce_samples(graph, input, reduction, None),
    }
}

/// `loss (NAME): message`.
fn loss_error(loss: &LossSpec, message: String) -> NnError {
    NnError::Loss {
        loss: loss_name(loss),
        message,
    }
}

/// `class indices of shape [3]` / `float targets of shape [3, 2]`.
fn describe(ty: &TensorType) -> String {
    match ty.dtype {
        DType::I64 => format!("class indices of shape {}", shown_list(&ty.shape)),
        DType::F32 => format!("float targets of shape {}", shown_list(&ty.shape)),
    }
}

/// Checks the input's rank and that the target fits it as the loss needs.
fn check_shapes(loss: &LossSpec, input: &[usize], target: &TensorType) -> Result<(), NnError> {
    let err = |message: String| Err(loss_error(loss, message));
    let wanted = wants(loss);
    let shown = shown_list(input);
    if wanted == Wants::Floats {
        if input.is_empty() {
            return err("expects an input with at least one axis, got a scalar".into());
        }
    } else if input.len() != 2 {
        return err(format!(
            "expects an input of shape [batch, classes], got {shown}"
        ));
    }
    if input.contains(&0) {
        return err(format!("expects a non-empty input, got shape {shown}"));
    }
    let same_shape = target.shape == input;
    match (wanted, target.dtype) {
        (Wants::Classes | Wants::ClassesOrProbabilities, DType::I64) => {
            if target.shape != input[..1] {
                return err(format!(
                    "needs one class index per sample: the input has shape {shown}, the target has shape {} (expected [{}])",
                    shown_list(&target.shape), input[0]
                ));
            }
        }
        (Wants::ClassesOrProbabilities, DType::F32) => {
            if !same_shape {
                let columns = match target.shape.as_slice() {
                    [n, w] if *n == input[0] => format!(
                        ": the model outputs {} classes, the data has {w} target columns",
                        input[1]
                    ),
                    _ => String::new(),
                };
                return err(format!(
                    "takes class indices of shape [{}] or class probabilities of the input's shape {shown}, got {}{columns}",
                    input[0],
                    describe(target)
                ));
            }
        }
        (Wants::Classes, DType::F32) => {
            return err(format!(
                "needs class indices (one integer per sample, shape [{}]) for an input of shape {shown}, got {}",
                input[0],
                describe(target)
            ));
        }
        (Wants::RowFloats | Wants::Floats, DType::I64) => {
            return err(format!(
                "needs float targets with the model output's shape {shown}, not class indices (got {})",
                describe(target)
            ));
        }
        (Wants::RowFloats | Wants::Floats, DType::F32) => {
            if !same_shape {
                let columns = match (input, target.shape.as_slice()) {
                    ([n, width], [m, w]) if n == m => format!(
                        ": the model outputs {width} values per sample, the data has {w} target columns"
                    ),
                    _ => String::new(),
                };
                return err(format!(
                    "targets must have the model output's shape{columns} (input {shown}, target {})",
                    shown_list(&target.shape)
                ));
            }
        }
    }
    Ok(())
}

/// Checks the options that depend on the input's shape: weight lengths, and
/// options PyTorch refuses for some targets.
fn check_options(loss: &LossSpec, input: &[usize], target: &TensorType) -> Result<(), NnError> {
    let last = input.last().copied().unwrap_or(1);
    let check_len = |what: &str, values: &Option<Vec<f32>>, allowed: &[usize]| match values {
        Some(v) if !allowed.contains(&v.len()) => Err(loss_error(
            loss,
            format!(
                "{what} has {} values, expected {}",
                v.len(),
                allowed
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        )),
        _ => Ok(()),
    };
    if loss.reduction() == Reduction::BatchMean && !matches!(loss, LossSpec::KlDiv { .. }) {
        return Err(loss_error(
            loss,
            "reduction batchmean is only valid for kl_div".into(),
        ));
    }
    match loss {
        LossSpec::CrossEntropy {
            weight,
            ignore_index,
            ..
        } => {
            check_len("weight", weight, &[last])?;
            if target.dtype == DType::F32 && *ignore_index != -100 {
                return Err(loss_error(
                    loss,
                    format!("ignore_index ({ignore_index}) is not supported for class-probability targets, as in PyTorch"),
                ));
            }
        }
        LossSpec::Nll { weight, .. }
        | LossSpec::MultiLabelSoftMargin { weight, .. }
        | LossSpec::MultiMargin { weight, .. } => check_len("weight", weight, &[last])?,
        LossSpec::Bce { weight, .. } => check_len("weight", weight, &[1, last])?,
        LossSpec::BceWithLogits {
            weight, pos_weight, ..
        } => {
            check_len("weight", weight, &[1, last])?;
            check_len("pos_weight", pos_weight, &[1, last])?;
        }
        LossSpec::Mse { .. }
        | LossSpec::L1 { .. }
        | LossSpec::SmoothL1 { .. }
        | LossSpec::Huber { .. }
        | LossSpec::KlDiv { .. }
        | LossSpec::PoissonNll { .. }
        | LossSpec::SoftMargin { .. }
        | LossSpec::Objective { .. } => {}
    }
    Ok(())
}

/// A loss evaluated on its own, as `graphc loss` and the PyTorch goldens run it.
#[derive(Debug, Clone)]
pub struct LossGraph {
    /// The graph: the input is the parameter `input`, the target its one argument `target`.
    pub graph: Graph,
    /// Index of the `loss` output (a scalar, or per-sample/per-element losses for `none`).
    pub loss_output: usize,
    /// Index of the `grad` output, the gradient of the (summed) loss with respect to the input.
    pub grad_output: Option<usize>,
}

/// Builds `loss(input, target)` for an input of `input_shape` and a target of
/// type `target` (i64 class indices or f32 values); with `with_grad`, also its
/// gradient with respect to the input — of the sum of the losses for
/// `reduction: none`, as `loss.sum().backward()` gives in PyTorch.
pub fn build_loss_graph(
    loss: &LossSpec,
    input_shape: &[usize],
    target: &TensorType,
    with_grad: bool,
) -> Result<LossGraph, NnError> {
    let mut graph = Graph::new();
    let input = graph.param("input", input_shape);
    let target = graph.input("target", target.clone());
    let value = loss_on(&mut graph, loss, input, target, None)?;
    graph.add_output("loss", value);
    let mut grad_output = None;
    if with_grad {
        let scalar = graph.sum_all(value)?;
        let grads = graphc_autodiff::grad(&mut graph, scalar, &[input])?;
        graph.add_output("grad", grads[0]);
        grad_output = Some(1);
    }
    Ok(LossGraph {
        graph,
        loss_output: 0,
        grad_output,
    })
}

/// A loss's targets as data, for [`check_loss_data`].
#[derive(Debug, Clone, Copy)]
pub enum LossTargets<'a> {
    /// Class indices, one per sample.
    Classes(&'a [i64]),
    /// Float targets, row-major.
    Floats(&'a [f32]),
}

/// The checks PyTorch makes on the values before computing a loss: class
/// indices in `[0, classes)` unless `ignore_index` (naming the row), and
/// `bce`'s input and target within `[0, 1]`.
pub fn check_loss_data(
    loss: &LossSpec,
    input: &[f32],
    input_shape: &[usize],
    targets: LossTargets<'_>,
) -> Result<(), NnError> {
    let classes = input_shape.last().copied().unwrap_or(0);
    if let LossTargets::Classes(indices) = targets {
        let ignore_index = match task_of(loss) {
            Task::MultiClass { ignore_index } => ignore_index,
            _ => None,
        };
        for (row, &c) in indices.iter().enumerate() {
            if ignore_index != Some(c) && !(0..classes as i64).contains(&c) {
                let note = match ignore_index {
                    Some(i) => format!(" and is not ignore_index ({i})"),
                    None => String::new(),
                };
                return Err(loss_error(
                    loss,
                    format!("target row {row}: class index {c} is outside [0, {classes}){note}"),
                ));
            }
        }
    }
    if let LossSpec::Bce { .. } = loss {
        let outside = |v: &f32| !(0.0..=1.0).contains(v);
        if let Some(i) = input.iter().position(outside) {
            return Err(loss_error(
                loss,
                format!(
                    "all elements of input should be between 0 and 1 (probabilities): element {i} is {}",
                    input[i]
                ),
            ));
        }
        if let LossTargets::Floats(t) = targets {
            if let Some(i) = t.iter().position(outside) {
                return Err(loss_error(
                    loss,
                    format!(
                        "all elements of target should be between 0 and 1: element {i} is {}",
                        t[i]
                    ),
                ));
            }
        }
    }
    Ok(())
}

// ---- helpers shared by the loss families ------------------------------------------------

/// A tensor of `x`'s shape filled with `value`.
fn fill_like(graph: &mut Graph, value: f32, x: NodeId) -> NodeId {
    let shape = graph.shape(x).to_vec();
    graph.fill(value, &shape)
}

/// `x · value`, elementwise.
fn scale(graph: &mut Graph, x: NodeId, value: f32) -> Result<NodeId, NnError> {
    let c = fill_like(graph, value, x);
    Ok(graph.binary(BinaryOp::Mul, x, c)?)
}

/// `stop_gradient(x)`.
fn sg(graph: &mut Graph, x: NodeId) -> Result<NodeId, NnError> {
    Ok(graph.unary(UnaryOp::StopGradient, x)?)
}

/// `value + (x - sg(x)) · derivative`: `value` exactly, with the gradient
/// `derivative` with respect to `x` (both computed from `sg(x)`). Where `x`
/// is infinite the surrogate is left out, so `value` stays exact there too.
fn with_gradient(
    graph: &mut Graph,
    value: NodeId,
    x: NodeId,
    x_stopped: NodeId,
    derivative: NodeId,
) -> Result<NodeId, NnError> {
    let zero = graph.binary(BinaryOp::Sub, x, x_stopped)?;
    let surrogate = graph.binary(BinaryOp::Mul, zero, derivative)?;
    let magnitude = graph.unary(UnaryOp::Abs, x_stopped)?;
    let largest = fill_like(graph, f32::MAX, x);
    let finite = graph.compare(CompareOp::Le, magnitude, largest)?;
    let nothing = fill_like(graph, 0.0, x);
    let surrogate = graph.select(finite, surrogate, nothing)?;
    Ok(graph.binary(BinaryOp::Add, value, surrogate)?)
}

/// `values` (one per element of the last axis, or a single one) broadcast to `shape`.
fn last_axis_constant(
    graph: &mut Graph,
    values: &[f32],
    shape: &[usize],
) -> Result<NodeId, NnError> {
    let width = shape.last().copied().unwrap_or(1);
    let row: Vec<f32> = if values.len() == 1 {
        vec![values[0]; width]
    } else {
        values.to_vec()
    };
    let mut row_shape = vec![1; shape.len().max(1)];
    if let Some(last) = row_shape.last_mut() {
        *last = row.len();
    }
    let c = graph.constant(row, &row_shape)?;
    Ok(graph.broadcast_to(c, shape)?)
}

/// `losses` times the per-class `weight` (one value per element of the last axis, or a
/// single one) when there is one.
fn weighted(graph: &mut Graph, losses: NodeId, weight: Option<&[f32]>) -> Result<NodeId, NnError> {
    let Some(w) = weight else {
        return Ok(losses);
    };
    let shape = graph.shape(losses).to_vec();
    let w = last_axis_constant(graph, w, &shape)?;
    Ok(graph.binary(BinaryOp::Mul, losses, w)?)
}

/// Label smoothing ε's factors `(1 - ε, ε / C)` for `C` classes. PyTorch's scalars are
/// doubles: each is rounded once, to f32.
fn smoothing_factors(smoothing: f32, classes: usize) -> (f32, f32) {
    let smoothing = f64::from(smoothing);
    (
        (1.0 - smoothing) as f32,
        (smoothing / classes as f64) as f32,
    )
}

/// How a loss combines its terms: the spec's reduction, and the denominator node that
/// replaces the batch's own count in a mean (see [`build_loss`]).
#[derive(Debug, Clone, Copy)]
struct Reducing {
    reduction: Reduction,
    denominator: Option<NodeId>,
}

/// `losses` (per element) reduced: `none` keeps them, `sum` adds them,
/// `mean` divides the sum by their count, `batchmean` by the first axis.
fn reduce_elements(
    graph: &mut Graph,
    losses: NodeId,
    reduction: Reducing,
) -> Result<NodeId, NnError> {
    let shape = graph.shape(losses).to_vec();
    let count = match reduction.reduction {
        Reduction::None => return Ok(losses),
        Reduction::Sum => return Ok(graph.sum_all(losses)?),
        Reduction::Mean => shape.iter().product::<usize>(),
        Reduction::BatchMean => shape.first().copied().unwrap_or(1),
    };
    let sum = graph.sum_all(losses)?;
    let count = match reduction.denominator {
        Some(d) => d,
        None => graph.fill(count as f32, &[]),
    };
    Ok(graph.binary(BinaryOp::Div, sum, count)?)
}

/// Per-sample losses `[n, 1]` reduced: `none` gives them as `[n]`, `sum`
/// adds them, `mean` divides the sum by `denominator` (a scalar node), or by
/// `n` when there is none.
fn reduce_samples(
    graph: &mut Graph,
    losses: NodeId,
    reduction: Reducing,
    denominator: Option<NodeId>,
) -> Result<NodeId, NnError> {
    let n = graph.shape(losses)[0];
    match reduction.reduction {
        Reduction::None => Ok(graph.reshape(losses, &[n])?),
        Reduction::Sum => Ok(graph.sum_all(losses)?),
        Reduction::Mean | Reduction::BatchMean => {
            let sum = graph.sum_all(losses)?;
            let count = match reduction.denominator.or(denominator) {
                Some(d) => d,
                None => graph.fill(n as f32, &[]),
            };
            Ok(graph.binary(BinaryOp::Div, sum, count)?)
        }
    }
}

/// The denominator of a loss's mean over a whole batch (`reduction: mean` or `batchmean`):
/// the count of loss terms — elements (`outputs` per sample) or samples — or, for class-index
/// targets of `cross_entropy` and `nll`, `Σ w[y_i]` over the samples not ignored (their count
/// without weights), as the graph forms it; `None` for `sum` and `none`, which divide by
/// nothing. Summed in f64 and rounded once. It restates what `reduce_elements` and
/// `reduce_samples` divide by; `tests/tests/it/data_parallel.rs` trains every loss type with
/// each reduction on 3 ranks against one process, so the two cannot drift apart unnoticed.
pub fn mean_denominator(loss: &LossSpec, outputs: usize, targets: LossTargets<'_>) -> Option<f64> {
    let samples = match targets {
        LossTargets::Classes(y) => y.len(),
        LossTargets::Floats(t) => t.len().checked_div(outputs).unwrap_or(0),
    };
    let per_element = match loss.reduction() {
        Reduction::None | Reduction::Sum => return None,
        Reduction::BatchMean => false,
        Reduction::Mean => true,
    };
    let LossTargets::Classes(y) = targets else {
        // Float targets: element means (`reduce_elements`), or sample means for the losses
        // that sum each row first and for class probabilities.
        let terms = match wants(loss) {
            Wants::Floats if per_element => outputs,
            Wants::Floats | Wants::RowFloats | Wants::Classes | Wants::ClassesOrProbabilities => 1,
        };
        return Some(samples as f64 * terms as f64);
    };
    // Class indices: multi_margin's mean is over samples; cross_entropy's and nll's over
    // the weights of the samples not ignored.
    let Task::MultiClass {
        ignore_index: Some(ignore_index),
    } = task_of(loss)
    else {
        return Some(samples as f64);
    };
    let weight = if let LossSpec::CrossEntropy { weight, .. } | LossSpec::Nll { weight, .. } = loss
    {
        weight.as_deref()
    } else {
        None
    };
    let counted = y
        .iter()
        .filter(|&&c| c != ignore_index && (0..outputs as i64).contains(&c));
    Some(match weight {
        Some(w) => counted
            .map(|&c| w.get(c as usize).map_or(0.0, |&v| f64::from(v)))
            .sum(),
        None => counted.count() as f64,
    })
}
