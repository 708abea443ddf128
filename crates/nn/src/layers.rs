//! Layers as graph builders: `nn.Sequential` of the spec's `model.layers`.

use graphc_ir::{BinaryOp, CompareOp, Graph, NodeId, ReduceOp, UnaryOp};
use graphc_spec::{LayerKind, LayerSpec, ModelSpec};

use crate::NnError;

/// A trainable parameter as the model declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// `state_dict` name: `0.weight`, `fc1.bias`.
    pub name: String,
    /// PyTorch layout: `linear` weight is `[out, in]`.
    pub shape: Vec<usize>,
    /// Fan-in used by the default init.
    pub fan_in: usize,
    /// The `Param` node.
    pub node: NodeId,
}

/// The forward pass inside a graph.
#[derive(Debug, Clone)]
pub struct ModelGraph {
    /// Model output (logits for classifiers), `[batch, ..]`.
    pub output: NodeId,
    /// Parameters in `state_dict` order.
    pub params: Vec<ParamInfo>,
    /// The output of each layer, in `model.layers` order.
    pub layer_outputs: Vec<NodeId>,
}

/// The spec name of a layer's type.
pub fn layer_type(layer: &LayerSpec) -> &'static str {
    match layer.kind {
        LayerKind::Linear { .. } => "linear",
        LayerKind::Relu => "relu",
        LayerKind::Sigmoid => "sigmoid",
        LayerKind::Tanh => "tanh",
        LayerKind::Softmax { .. } => "softmax",
        LayerKind::LogSoftmax { .. } => "log_softmax",
    }
}

fn layer_label(index: usize, layer: &LayerSpec) -> String {
    let kind = layer_type(layer);
    match &layer.name {
        Some(name) => format!("{kind} {name:?}"),
        None => format!("{kind} at {index}"),
    }
}

/// Adds the model's forward pass on `x` (`[batch, ..input]`) to `graph`.
pub fn build_model(graph: &mut Graph, model: &ModelSpec, x: NodeId) -> Result<ModelGraph, NnError> {
    if model.input.is_empty() || model.input.contains(&0) {
        return Err(NnError::Model(format!(
            "input shape {:?} must list positive sizes",
            model.input
        )));
    }
    let mut h = x;
    let mut params = Vec::new();
    let mut layer_outputs = Vec::new();
    for (index, layer) in model.layers.iter().enumerate() {
        let err = |message: String| NnError::Layer {
            index,
            layer: layer_label(index, layer),
            message,
        };
        let prefix = layer.name.clone().unwrap_or_else(|| index.to_string());
        let shape = graph.shape(h).to_vec();
        h = match &layer.kind {
            LayerKind::Linear { out, bias } => {
                let (out, input) = (*out, *shape.last().unwrap_or(&0));
                if shape.len() < 2 || input == 0 {
                    return Err(err(format!(
                        "expects features on the last axis, got {shape:?}"
                    )));
                }
                input
                    .checked_mul(out)
                    .filter(|&n| n <= MAX_PARAM_ELEMENTS)
                    .ok_or_else(|| err(format!("a {out}×{input} weight is too large to build")))?;
                let weight = graph.param(&format!("{prefix}.weight"), &[out, input]);
                params.push(ParamInfo {
                    name: format!("{prefix}.weight"),
                    shape: vec![out, input],
                    fan_in: input,
                    node: weight,
                });
                let rows = shape[..shape.len() - 1].iter().product::<usize>();
                let flat = graph.reshape(h, &[rows, input])?;
                // y = x Wᵀ (+ b): PyTorch's layout, the transpose is a flag, not a copy.
                let mut y = graph.matmul(flat, weight, false, true)?;
                if *bias {
                    let b = graph.param(&format!("{prefix}.bias"), &[out]);
                    params.push(ParamInfo {
                        name: format!("{prefix}.bias"),
                        shape: vec![out],
                        fan_in: input,
                        node: b,
                    });
                    let b = graph.broadcast_to(b, &[rows, out])?;
                    y = graph.binary(BinaryOp::Add, y, b)?;
                }
                let mut out_shape = shape.clone();
                *out_shape.last_mut().expect("rank >= 2") = out;
                graph.reshape(y, &out_shape)?
            }
            LayerKind::Relu => relu(graph, h)?,
            LayerKind::Sigmoid => graph.unary(UnaryOp::Sigmoid, h)?,
            LayerKind::Tanh => graph.unary(UnaryOp::Tanh, h)?,
            LayerKind::Softmax { dim } | LayerKind::LogSoftmax { dim } => {
                let axis = resolve_dim(*dim, shape.len()).ok_or_else(|| {
                    err(format!(
                        "dim {dim} is out of range for a tensor of shape {shape:?}"
                    ))
                })?;
                let log_p = log_softmax(graph, h, axis)?;
                match layer.kind {
                    LayerKind::Softmax { .. } => graph.unary(UnaryOp::Exp, log_p)?,
                    _ => log_p,
                }
            }
        };
        layer_outputs.push(h);
    }
    Ok(ModelGraph {
        output: h,
        params,
        layer_outputs,
    })
}

/// Refuses layers whose parameter would not fit in memory before allocating it.
const MAX_PARAM_ELEMENTS: usize = 1 << 31;

/// PyTorch's `dim` (negative counts from the end) as an axis of a tensor of `rank`.
fn resolve_dim(dim: i64, rank: usize) -> Option<usize> {
    let rank = rank as i64;
    let axis = if dim < 0 { dim + rank } else { dim };
    (0..rank).contains(&axis).then_some(axis as usize)
}

/// `relu(x) = x if x > 0 else 0`; the gradient at 0 is 0, as in PyTorch.
pub(crate) fn relu(graph: &mut Graph, x: NodeId) -> Result<NodeId, graphc_ir::IrError> {
    let shape = graph.shape(x).to_vec();
    let zero = graph.fill(0.0, &shape);
    let positive = graph.compare(CompareOp::Gt, x, zero)?;
    graph.select(positive, x, zero)
}

/// `log_softmax(x, axis) = (x - max) - log(sum(exp(x - max)))`, stable for any logits.
/// The shift by `max` does not change the value, so its gradient is exactly zero
/// (the softmax sums to one): it is a stopped constant, and the backward pass is
/// PyTorch's `g - softmax · sum(g)` with no work spent on the max's rounding residue.
pub(crate) fn log_softmax(
    graph: &mut Graph,
    x: NodeId,
    axis: usize,
) -> Result<NodeId, graphc_ir::IrError> {
    let shape = graph.shape(x).to_vec();
    let max = graph.reduce(ReduceOp::Max, x, &[axis])?;
    let max = graph.unary(UnaryOp::StopGradient, max)?;
    let max = graph.broadcast_to(max, &shape)?;
    let shifted = graph.binary(BinaryOp::Sub, x, max)?;
    let exp = graph.unary(UnaryOp::Exp, shifted)?;
    let sum = graph.reduce(ReduceOp::Sum, exp, &[axis])?;
    let log_sum = graph.unary(UnaryOp::Log, sum)?;
    let log_sum = graph.broadcast_to(log_sum, &shape)?;
    graph.binary(BinaryOp::Sub, shifted, log_sum)
}
