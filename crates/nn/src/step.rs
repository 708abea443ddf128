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
    /// run's first; every training batch's forward counts), from which dropout draws.
    pub forward: bool,
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
    let (mut step, grads) = build_backward(spec, batch, layout)?;
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
    let (mut step, grads) = build_backward(spec, batch, layout)?;
    let (sums, buffers) = clip::add_to_accumulators(&mut step.graph, &step.params, &grads)?;
    clip::keep_sums(&mut step.graph, &buffers, &sums)?;
    Ok(step)
}

/// What both training steps start with: forward, loss and the trainable parameters'
/// gradients (in parameter order), with the accumulation buffers the spec's steps keep. The loss must be
/// a scalar.
fn build_backward(
    spec: &Spec,
    batch: usize,
    layout: TargetLayout,
) -> Result<(StepGraph, Vec<NodeId>), NnError> {
    if spec.loss.reduction() == Reduction::None {
        return Err(NnError::Loss {
            loss: loss_name(&spec.loss),
            message: "reduction: none gives per-sample losses; training needs a scalar loss, use mean or sum".into(),
        });
    }
    let mut step = build_forward(spec, batch, layout, true)?;
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
    build_forward(spec, batch, layout, false)
}

fn build_forward(
    spec: &Spec,
    batch: usize,
    layout: TargetLayout,
    training: bool,
) -> Result<StepGraph, NnError> {
    let mut graph = Graph::new();
    let mut x_shape = vec![batch];
    x_shape.extend_from_slice(&spec.model.input);
    let x = graph.input("x", TensorType::f32(&x_shape));
    let y = match layout {
        TargetLayout::Classes => graph.input("y", TensorType::i64(&[batch])),
        TargetLayout::Floats { width } => graph.input("y", TensorType::f32(&[batch, width])),
    };
    // The forward index is the argument after `y`, so it is made before the model.
    let mode = if training {
        Mode::Train {
            forward: draws_random(&spec.model)
                .then(|| graph.input("forward", TensorType::i64(&[1]))),
            seed: spec.seed,
        }
    } else {
        Mode::Eval
    };
    let model = build_model(&mut graph, &spec.model, x, mode, spec.train.precision)?;
    let loss = build_loss(&mut graph, &spec.loss, model.output, y, layout)?;
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
