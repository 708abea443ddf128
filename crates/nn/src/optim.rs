//! Optimizers as update subgraphs in the step's IR, with `torch.optim`'s
//! exact formulas, and the assignment of parameters to param groups.

use graphc_ir::{BinaryOp, CompareOp, Graph, NodeId, UnaryOp};
use graphc_spec::{OptimizerKind, OptimizerSpec, SgdSpec};

use crate::{NnError, ParamInfo};

/// The group of each parameter: `i` for `param_groups[i]` (the first whose
/// pattern matches), `param_groups.len()` for the top-level defaults. A
/// pattern that matches no parameter is an error.
pub fn group_of(spec: &OptimizerSpec, params: &[ParamInfo]) -> Result<Vec<usize>, NnError> {
    let patterns: Vec<Vec<glob::Pattern>> = spec
        .param_groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            group
                .params
                .iter()
                .map(|p| {
                    glob::Pattern::new(p).map_err(|e| {
                        NnError::Optimizer(format!("param_groups[{g}]: bad pattern {p:?}: {e}"))
                    })
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    for (g, group) in patterns.iter().enumerate() {
        for p in group {
            if !params.iter().any(|param| p.matches(&param.name)) {
                let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                return Err(NnError::Optimizer(format!(
                    "param_groups[{g}]: pattern {:?} matches no parameter; parameters are {}",
                    p.as_str(),
                    names.join(", ")
                )));
            }
        }
    }
    Ok(params
        .iter()
        .map(|param| {
            patterns
                .iter()
                .position(|group| group.iter().any(|p| p.matches(&param.name)))
                .unwrap_or(patterns.len())
        })
        .collect())
}

/// The settings of group `group` as [`group_of`] numbers them.
pub fn group_settings(spec: &OptimizerSpec, group: usize) -> &OptimizerKind {
    spec.param_groups
        .get(group)
        .map(|g| &g.kind)
        .unwrap_or(&spec.kind)
}

/// The names and shapes of the optimizer state the update keeps for a parameter,
/// named like PyTorch's `optimizer.state` keys: `0.weight.momentum_buffer`.
pub fn state_names(kind: &OptimizerKind, param: &ParamInfo) -> Vec<(String, Vec<usize>)> {
    match kind {
        OptimizerKind::Sgd(s) if s.momentum != 0.0 => {
            vec![(
                format!("{}.momentum_buffer", param.name),
                param.shape.clone(),
            )]
        }
        OptimizerKind::Sgd(_) => Vec::new(),
    }
}

/// Adds the update of every parameter: `Assign`s to the parameters and their
/// state. `lrs[g]` is the learning-rate hyper of group `g`; `step` is the
/// 1-based update count.
pub fn build_update(
    graph: &mut Graph,
    spec: &OptimizerSpec,
    params: &[ParamInfo],
    grads: &[NodeId],
    groups: &[usize],
    lrs: &[NodeId],
    step: NodeId,
) -> Result<(), NnError> {
    for ((param, &grad), &group) in params.iter().zip(grads).zip(groups) {
        let kind = group_settings(spec, group);
        match kind {
            OptimizerKind::Sgd(s) => sgd(graph, s, kind, param, grad, lrs[group], step)?,
        }
    }
    Ok(())
}

/// `torch.optim.SGD` for one parameter:
/// g ← ±∇ (maximize) + λ·p; b ← g on step 1, else μ·b + (1-τ)·g;
/// g ← g + μ·b (nesterov) or b; p ← p - lr·g.
fn sgd(
    graph: &mut Graph,
    s: &SgdSpec,
    kind: &OptimizerKind,
    param: &ParamInfo,
    grad: NodeId,
    lr: NodeId,
    step: NodeId,
) -> Result<(), NnError> {
    let shape = param.shape.clone();
    let p = param.node;
    let mut g = grad;
    if s.maximize {
        g = graph.unary(UnaryOp::Neg, g)?;
    }
    if s.weight_decay != 0.0 {
        let decay = scale(graph, p, s.weight_decay)?;
        g = graph.binary(BinaryOp::Add, g, decay)?;
    }
    if s.momentum != 0.0 {
        let (name, _) = state_names(kind, param).remove(0);
        let buf = graph.state(&name, &shape);
        let kept = scale(graph, buf, s.momentum)?;
        let added = scale(graph, g, 1.0 - s.dampening)?;
        let accumulated = graph.binary(BinaryOp::Add, kept, added)?;
        let one = graph.fill(1.0, &[]);
        let first = graph.compare(CompareOp::Eq, step, one)?;
        let first = graph.broadcast_to(first, &shape)?;
        let new_buf = graph.select(first, g, accumulated)?;
        graph.add_assign(buf, new_buf)?;
        g = if s.nesterov {
            let ahead = scale(graph, new_buf, s.momentum)?;
            graph.binary(BinaryOp::Add, g, ahead)?
        } else {
            new_buf
        };
    }
    let lr = graph.broadcast_to(lr, &shape)?;
    let delta = graph.binary(BinaryOp::Mul, lr, g)?;
    let new_p = graph.binary(BinaryOp::Sub, p, delta)?;
    graph.add_assign(p, new_p)?;
    Ok(())
}

/// `x · factor` for a compile-time constant factor.
fn scale(graph: &mut Graph, x: NodeId, factor: f32) -> Result<NodeId, NnError> {
    let shape = graph.shape(x).to_vec();
    let f = graph.fill(factor, &shape);
    Ok(graph.binary(BinaryOp::Mul, x, f)?)
}
