//! The whole training step as one graph — forward, loss, backward (by
//! `graphc-autodiff`), optimizer update — and the evaluation graph.

use graphc_ir::{Graph, TensorType};
use graphc_spec::{OptimizerKind, Reduction, Spec};

use crate::loss::{loss_name, reduction_of};
use crate::optim::{group_of, group_settings, state_names};
use crate::{build_loss, build_model, build_update, NnError, ParamInfo, TargetLayout};

/// A runtime scalar the step takes after its inputs `x` and `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hyper {
    /// The learning rate of a parameter group (numbered as [`crate::group_of`] does).
    Lr {
        /// The group.
        group: usize,
    },
    /// The 1-based count of this update, for first-step and bias-correction terms.
    Step,
}

/// A compiled-to-IR training or evaluation step and what its caller needs to drive it.
#[derive(Debug, Clone)]
pub struct StepGraph {
    /// The graph. Arguments: `x`, `y`, then one per entry of `hypers`.
    pub graph: Graph,
    /// The hypers in argument order.
    pub hypers: Vec<Hyper>,
    /// Parameters in `state_dict` order.
    pub params: Vec<ParamInfo>,
    /// Parameter group of each parameter.
    pub groups: Vec<usize>,
    /// Optimizer state buffers: name and shape.
    pub state: Vec<(String, Vec<usize>)>,
    /// Index of the `loss` output.
    pub loss_output: usize,
    /// Index of the `output` output (the model's output).
    pub model_output: usize,
}

/// The training step for batches of `batch` samples: outputs `loss` (before
/// the update) and `output`; assigns updated parameters and state.
pub fn build_step(spec: &Spec, batch: usize, layout: TargetLayout) -> Result<StepGraph, NnError> {
    if reduction_of(&spec.loss) == Reduction::None {
        return Err(NnError::Loss {
            loss: loss_name(&spec.loss),
            message: "reduction: none gives per-sample losses; training needs a scalar loss, use mean or sum".into(),
        });
    }
    let mut step = build_forward(spec, batch, layout)?;
    let graph = &mut step.graph;
    let loss = graph.outputs()[step.loss_output].node;
    let nodes: Vec<_> = step.params.iter().map(|p| p.node).collect();
    let grads = graphc_autodiff::grad(graph, loss, &nodes)?;

    let groups = group_of(&spec.optimizer, &step.params)?;
    let mut used: Vec<usize> = groups.clone();
    used.sort_unstable();
    used.dedup();
    let mut lrs = vec![None; spec.optimizer.param_groups.len() + 1];
    for &g in &used {
        lrs[g] = Some(graph.hyper(&format!("lr.{g}")));
        step.hypers.push(Hyper::Lr { group: g });
    }
    let step_count = graph.hyper("step");
    step.hypers.push(Hyper::Step);
    let lrs: Vec<_> = lrs.into_iter().map(|l| l.unwrap_or(step_count)).collect();
    build_update(
        graph,
        &spec.optimizer,
        &step.params,
        &grads,
        &groups,
        &lrs,
        step_count,
    )?;
    step.state = step
        .params
        .iter()
        .zip(&groups)
        .flat_map(|(p, &g)| state_names(group_settings(&spec.optimizer, g), p))
        .collect();
    step.groups = groups;
    Ok(step)
}

/// The evaluation step: forward and loss only, outputs `loss` and `output`,
/// no update. `reduction: none` is allowed here.
pub fn build_eval(spec: &Spec, batch: usize, layout: TargetLayout) -> Result<StepGraph, NnError> {
    build_forward(spec, batch, layout)
}

fn build_forward(spec: &Spec, batch: usize, layout: TargetLayout) -> Result<StepGraph, NnError> {
    let mut graph = Graph::new();
    let mut x_shape = vec![batch];
    x_shape.extend_from_slice(&spec.model.input);
    let x = graph.input("x", TensorType::f32(&x_shape));
    let y = match layout {
        TargetLayout::Classes => graph.input("y", TensorType::i64(&[batch])),
        TargetLayout::Floats { width } => graph.input("y", TensorType::f32(&[batch, width])),
    };
    let model = build_model(&mut graph, &spec.model, x)?;
    let loss = build_loss(&mut graph, &spec.loss, model.output, y, layout)?;
    graph.add_output("loss", loss);
    graph.add_output("output", model.output);
    Ok(StepGraph {
        graph,
        hypers: Vec::new(),
        params: model.params,
        groups: Vec::new(),
        state: Vec::new(),
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
    let mut graph = Graph::new();
    let mut shape = vec![1];
    shape.extend_from_slice(&spec.model.input);
    let x = graph.input("x", TensorType::f32(&shape));
    let model = build_model(&mut graph, &spec.model, x)?;
    let width = graph.shape(model.output).last().copied().unwrap_or(1);
    Ok(TargetLayout::Floats { width })
}

/// The learning rate a group starts with.
pub fn initial_lr(spec: &Spec, group: usize) -> f32 {
    match group_settings(&spec.optimizer, group) {
        OptimizerKind::Sgd(s) => s.lr,
    }
}
