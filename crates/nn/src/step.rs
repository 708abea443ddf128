//! The whole training step as one graph — forward, loss, backward (by
//! `graphc-autodiff`), optimizer update — and the evaluation graph.

use graphc_ir::{Graph, NodeId, TensorType};
use graphc_spec::{Reduction, Spec};

use crate::loss::loss_name;
use crate::optim::group_settings;
use crate::{build_loss, build_model, build_update, draws_random, Hyper, Mode, NnError};
use crate::{clip, sched};
use crate::{ParamInfo, TargetLayout};

/// A compiled-to-IR training or evaluation step and what its caller needs to drive it.
#[derive(Debug, Clone)]
pub struct StepGraph {
    /// The graph. Arguments: `x`, `y`, the training forward's index when `forward`, then one
    /// per entry of `hypers`.
    pub graph: Graph,
    /// Whether the third argument is the i64 `[1]` index of this training forward (0 for the
    /// run's first; every training batch's forward counts), from which dropout draws. A
    /// [`build_shard_step`]'s is `[2]`: the index and the share's first row in the whole
    /// batch, so its masks are the whole batch's rows there.
    pub forward: bool,
    /// Whether the argument after those is the f32 `[1]` denominator of the loss's mean over
    /// the whole batch ([`crate::mean_denominator`]): a [`build_shard_step`] of a `mean` loss.
    pub denominator: bool,
    /// The hypers in argument order: the model's, then the optimizer's.
    pub hypers: Vec<Hyper>,
    /// Parameters in `state_dict` order.
    pub params: Vec<ParamInfo>,
    /// The model's buffers (running statistics) in `state_dict` order, which a training step
    /// assigns and an evaluation reads.
    pub buffers: Vec<ParamInfo>,
    /// The model's `num_batches_tracked` counters in `state_dict` order: i64 values outside the
    /// graph, each one more after every training forward.
    pub counters: Vec<String>,
    /// Parameter group of each parameter.
    pub groups: Vec<usize>,
    /// Optimizer state buffers: name and shape.
    pub state: Vec<(String, Vec<usize>)>,
    /// The value every element of each `state` buffer (same order) holds before the first
    /// step, which the runner must write: PyTorch's state init (Adagrad's
    /// `initial_accumulator_value`, NAdam's `mu_product` = 1; 0 for the others).
    pub state_init: Vec<f32>,
    /// Gradient accumulation buffers (`NAME.grad`, zero between updates) with their shapes:
    /// empty unless `train.accumulate > 1`.
    pub accumulators: Vec<(String, Vec<usize>)>,
    /// Index of the `loss` output.
    pub loss_output: usize,
    /// Index of the `output` output (the model's output).
    pub model_output: usize,
}

/// The training step for batches of `batch` samples: outputs `loss` (before
/// the update) and `output`; assigns updated parameters and state.
pub fn build_step(spec: &Spec, batch: usize, layout: TargetLayout) -> Result<StepGraph, NnError> {
    let (mut step, grads) = build_backward(spec, batch, layout, Pass::Train)?;
    let graph = &mut step.graph;
    let grads = if spec.train.accumulate > 1 {
        let (sums, buffers) = clip::add_to_accumulators(graph, &step.params, &grads)?;
        clip::zero_accumulators(graph, &buffers)?;
        sums
    } else {
        grads
    };
    let grads = clip::clip(graph, &spec.train, grads)?;

    let optimizer = sched::graph_optimizer(spec);
    let update = build_update(graph, &optimizer, &step.params, &grads)?;
    step.hypers.extend(update.hypers);
    step.state = update
        .state
        .iter()
        .map(|b| (b.name.clone(), b.shape.clone()))
        .collect();
    step.state_init = update.state.iter().map(|b| b.init).collect();
    step.groups = update.groups;
    Ok(step)
}

/// The accumulating step of `train.accumulate > 1`: forward, loss, backward, and the batch's
/// gradients added to the accumulation buffers; no update, no hypers. Outputs `loss` and
/// `output`, like [`build_step`].
pub fn build_accumulate_step(
    spec: &Spec,
    batch: usize,
    layout: TargetLayout,
) -> Result<StepGraph, NnError> {
    let (mut step, grads) = build_backward(spec, batch, layout, Pass::Train)?;
    let (sums, buffers) = clip::add_to_accumulators(&mut step.graph, &step.params, &grads)?;
    clip::keep_sums(&mut step.graph, &buffers, &sums)?;
    Ok(step)
}

/// One rank's part of a step of data-parallel training: forward, loss and backward on the
/// rank's share of a batch, the gradients added to the accumulation buffers (which it keeps
/// for every `train.accumulate`). A `mean` loss divides by the whole batch's denominator,
/// the argument after `forward`, so the shares' losses and gradients sum to the batch's.
/// The buffers' sums over the ranks then go to [`build_apply_step`].
pub fn build_shard_step(
    spec: &Spec,
    batch: usize,
    layout: TargetLayout,
) -> Result<StepGraph, NnError> {
    let (mut step, grads) = build_backward(spec, batch, layout, Pass::Shard)?;
    step.accumulators = clip::accumulators_always(&step.params);
    let (sums, buffers) = clip::add_to_accumulators(&mut step.graph, &step.params, &grads)?;
    clip::keep_sums(&mut step.graph, &buffers, &sums)?;
    Ok(step)
}

/// The update of data-parallel training: the accumulation buffers (holding the gradients
/// summed over ranks and batches) clipped, the optimizer's update, the buffers zeroed — the
/// tail of [`build_step`] on its own. `params` are a [`build_shard_step`]'s. No arguments
/// but the optimizer's hypers; no outputs.
pub fn build_apply_step(spec: &Spec, params: &[ParamInfo]) -> Result<StepGraph, NnError> {
    let mut graph = Graph::new();
    let params: Vec<ParamInfo> = params
        .iter()
        .map(|p| ParamInfo {
            node: graph.param(&p.name, &p.shape),
            ..p.clone()
        })
        .collect();
    let accumulators = clip::accumulators_always(&params);
    let buffers: Vec<NodeId> = accumulators
        .iter()
        .map(|(name, shape)| graph.state(name, shape))
        .collect();
    let grads = clip::clip(&mut graph, &spec.train, buffers.clone())?;
    let optimizer = sched::graph_optimizer(spec);
    let update = build_update(&mut graph, &optimizer, &params, &grads)?;
    clip::zero_accumulators(&mut graph, &buffers)?;
    Ok(StepGraph {
        graph,
        forward: false,
        denominator: false,
        hypers: update.hypers,
        params,
        buffers: Vec::new(),
        counters: Vec::new(),
        groups: update.groups,
        state: update
            .state
            .iter()
            .map(|b| (b.name.clone(), b.shape.clone()))
            .collect(),
        state_init: update.state.iter().map(|b| b.init).collect(),
        accumulators,
        loss_output: 0,
        model_output: 0,
    })
}

/// Which forward a step graph runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Evaluation mode, on a whole batch.
    Eval,
    /// Training mode, on a whole batch.
    Train,
    /// Training mode, on one rank's share of a batch: dropout's counter also takes the
    /// share's first row, and a mean divides by the whole batch's denominator.
    Shard,
}

/// What both training steps start with: forward, loss and the trainable parameters'
/// gradients (in parameter order), with the accumulation buffers the spec's steps keep. The loss must be
/// a scalar. `pass` is [`Pass::Train`] or [`Pass::Shard`].
fn build_backward(
    spec: &Spec,
    batch: usize,
    layout: TargetLayout,
    pass: Pass,
) -> Result<(StepGraph, Vec<NodeId>), NnError> {
    if spec.loss.reduction() == Reduction::None {
        return Err(NnError::Loss {
            loss: loss_name(&spec.loss),
            message: "reduction: none gives per-sample losses; training needs a scalar loss, use mean or sum".into(),
        });
    }
    let mut step = build_forward(spec, batch, layout, pass)?;
    let loss = step.graph.outputs()[step.loss_output].node;
    // Frozen parameters (`requires_grad: false`) are not asked for: the backward pass stops
    // where only they would need it.
    let nodes: Vec<_> = step
        .params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.node)
        .collect();
    let grads = graphc_autodiff::grad(&mut step.graph, loss, &nodes)?;
    step.accumulators = clip::accumulators(&spec.train, &step.params);
    Ok((step, grads))
}

/// The evaluation step: forward in evaluation mode and loss only, outputs `loss` and
/// `output`, no update. `reduction: none` is allowed here.
pub fn build_eval(spec: &Spec, batch: usize, layout: TargetLayout) -> Result<StepGraph, NnError> {
    build_forward(spec, batch, layout, Pass::Eval)
}

fn build_forward(
    spec: &Spec,
    batch: usize,
    layout: TargetLayout,
    pass: Pass,
) -> Result<StepGraph, NnError> {
    let mut graph = Graph::new();
    let mut x_shape = vec![batch];
    x_shape.extend_from_slice(&spec.model.input);
    // An objective's parameters own the bare names (`x`, `y`), and its data is read by
    // nothing: its arguments are named apart.
    let (x_name, y_name) = match spec.model.objective() {
        Some(_) => ("data.x", "data.y"),
        None => ("x", "y"),
    };
    let x = graph.input(x_name, TensorType::f32(&x_shape));
    let y = match layout {
        TargetLayout::Classes => graph.input(y_name, TensorType::i64(&[batch])),
        TargetLayout::Floats { width } => graph.input(y_name, TensorType::f32(&[batch, width])),
    };
    // The forward index is the argument after `y`, so it is made before the model; a
    // share's first row follows it.
    let forward_shape: &[usize] = if pass == Pass::Shard { &[2] } else { &[1] };
    let mode = match pass {
        Pass::Train | Pass::Shard => Mode::Train {
            forward: draws_random(&spec.model)
                .then(|| graph.input("forward", TensorType::i64(forward_shape))),
            seed: spec.seed,
            sum_ranks: pass == Pass::Shard && spec.train.sync_batch_norm,
        },
        Pass::Eval => Mode::Eval,
    };
    // The whole batch's denominator comes next, also before the model's hypers.
    let mean = matches!(
        spec.loss.reduction(),
        Reduction::Mean | Reduction::BatchMean
    );
    let denominator =
        (pass == Pass::Shard && mean).then(|| graph.input("denominator", TensorType::f32(&[1])));
    let model = build_model(&mut graph, &spec.model, x, mode, spec.train.precision)?;
    let scalar = denominator.map(|d| graph.reshape(d, &[])).transpose()?;
    let loss = build_loss(&mut graph, &spec.loss, (model.output, y), layout, scalar)?;
    graph.add_output("loss", loss);
    graph.add_output("output", model.output);
    Ok(StepGraph {
        graph,
        forward: matches!(
            mode,
            Mode::Train {
                forward: Some(_),
                ..
            }
        ),
        denominator: denominator.is_some(),
        hypers: model.hypers,
        params: model.params,
        buffers: model.buffers,
        counters: model.counters,
        groups: Vec::new(),
        state: Vec::new(),
        state_init: Vec::new(),
        accumulators: Vec::new(),
        loss_output: 0,
        model_output: 1,
    })
}

/// The target layout a spec implies without looking at data: class indices
/// for cross entropy, otherwise floats shaped like the model output.
pub fn natural_layout(spec: &Spec) -> Result<TargetLayout, NnError> {
    if matches!(crate::task_of(&spec.loss), crate::Task::MultiClass { .. }) {
        return Ok(TargetLayout::Classes);
    }
    // The output's shape is all it takes: describing the layers builds no graph, whose batch of
    // one sample a batch norm without running statistics could not normalise.
    let layers = crate::describe_model(&spec.model, 1)?;
    let output = layers.last().map_or(&spec.model.input, |l| &l.output);
    let width = output.last().copied().unwrap_or(1);
    Ok(TargetLayout::Floats { width })
}

/// The learning rate a group starts with, rounded to the f32 the step takes (the exact
/// `f64` value is `group_settings(&spec.optimizer, group).lr()`).
pub fn initial_lr(spec: &Spec, group: usize) -> f32 {
    group_settings(&spec.optimizer, group).lr() as f32
}
