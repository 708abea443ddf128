//! Layers as graph builders: `nn.Sequential` of the spec's `model.layers`.

use graphc_ir::{BinaryOp, CompareOp, Graph, NodeId, ReduceOp, UnaryOp};
use graphc_spec::{shown_list, LayerKind, LayerSpec, LayerType, ModelSpec};

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

/// A parameter or buffer a layer declares: its `state_dict` name, shape and default init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDecl {
    /// `state_dict` name: `0.weight`, `fc1.bias`.
    pub name: String,
    /// PyTorch layout: `linear` weight is `[out, in]`.
    pub shape: Vec<usize>,
    /// The fan-in of PyTorch's default init, U(±1/√fan_in).
    pub fan_in: usize,
}

impl TensorDecl {
    /// The number of values, saturating (a declared shape may be absurd; the builder refuses it).
    pub fn numel(&self) -> u128 {
        saturating_numel(&self.shape)
    }
}

/// The product of `shape` in `u128`, saturating: sizes of absurd specs are estimated, not built.
pub fn saturating_numel(shape: &[usize]) -> u128 {
    shape
        .iter()
        .fold(1u128, |n, &d| n.saturating_mul(d as u128))
}

/// One layer resolved against its input shape, before any graph exists: what the builder
/// builds, the memory estimate counts and `graphc check` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's position in `model.layers`.
    pub index: usize,
    /// The prefix of its `state_dict` names: its `name`, or its index.
    pub prefix: String,
    /// Its vocabulary entry.
    pub layer_type: LayerType,
    /// The shape of its output for one sample (without the batch axis).
    pub output: Vec<usize>,
    /// Its trainable parameters, in `state_dict` order.
    pub params: Vec<TensorDecl>,
    /// Its non-trainable buffers, in `state_dict` order.
    pub buffers: Vec<TensorDecl>,
}

impl LayerInfo {
    /// The number of values in one sample's output (saturating).
    pub fn output_numel(&self) -> u128 {
        saturating_numel(&self.output)
    }

    /// The number of trainable parameters (saturating).
    pub fn param_count(&self) -> u128 {
        self.params
            .iter()
            .map(TensorDecl::numel)
            .fold(0, u128::saturating_add)
    }
}

/// `linear at 2` or `linear "fc"`, as messages name a layer.
fn layer_label(index: usize, layer: &LayerSpec) -> String {
    let kind = layer.kind.layer_type().name();
    match &layer.name {
        Some(name) => format!("{kind} {name:?}"),
        None => format!("{kind} at {index}"),
    }
}

/// Checks `model.input` and resolves every layer of `model` against the shape it receives,
/// for batches of `batch` samples (messages show batched shapes, as PyTorch's do). Sizes are
/// not limited here, so the memory estimate can size absurd specs; [`build_model`] refuses
/// what cannot be built.
pub fn describe_model(model: &ModelSpec, batch: usize) -> Result<Vec<LayerInfo>, NnError> {
    if model.input.is_empty() || model.input.contains(&0) {
        return Err(NnError::Model(format!(
            "input shape {} must list positive sizes",
            shown_list(&model.input)
        )));
    }
    let mut shape = model.input.clone();
    let mut infos = Vec::with_capacity(model.layers.len());
    for (index, layer) in model.layers.iter().enumerate() {
        let info = describe_layer(index, layer, &shape, batch)?;
        shape = info.output.clone();
        infos.push(info);
    }
    Ok(infos)
}

/// Layer `index` of the model, given one sample's input `shape`.
fn describe_layer(
    index: usize,
    layer: &LayerSpec,
    shape: &[usize],
    batch: usize,
) -> Result<LayerInfo, NnError> {
    let err = |message: String| NnError::Layer {
        index,
        layer: layer_label(index, layer),
        message,
    };
    let prefix = layer.name.clone().unwrap_or_else(|| index.to_string());
    let mut params = Vec::new();
    let output = match &layer.kind {
        LayerKind::Linear { out, bias } => {
            let (out, input) = (*out, *shape.last().expect("shapes are never empty"));
            params.push(TensorDecl {
                name: format!("{prefix}.weight"),
                shape: vec![out, input],
                fan_in: input,
            });
            if *bias {
                params.push(TensorDecl {
                    name: format!("{prefix}.bias"),
                    shape: vec![out],
                    fan_in: input,
                });
            }
            let mut output = shape.to_vec();
            *output.last_mut().expect("shapes are never empty") = out;
            output
        }
        LayerKind::Relu | LayerKind::Sigmoid | LayerKind::Tanh => shape.to_vec(),
        LayerKind::Softmax { dim } | LayerKind::LogSoftmax { dim } => {
            if resolve_dim(*dim, shape.len() + 1).is_none() {
                let mut batched = vec![batch];
                batched.extend_from_slice(shape);
                return Err(err(format!(
                    "dim {dim} is out of range for a tensor of shape {}",
                    shown_list(&batched)
                )));
            }
            shape.to_vec()
        }
    };
    Ok(LayerInfo {
        index,
        prefix,
        layer_type: layer.kind.layer_type(),
        output,
        params,
        buffers: Vec::new(),
    })
}

/// Adds the model's forward pass on `x` (`[batch, ..input]`) to `graph`.
pub fn build_model(graph: &mut Graph, model: &ModelSpec, x: NodeId) -> Result<ModelGraph, NnError> {
    let batch = graph.shape(x)[0];
    let infos = describe_model(model, batch)?;
    let mut h = x;
    let mut params = Vec::new();
    let mut layer_outputs = Vec::new();
    for (layer, info) in model.layers.iter().zip(&infos) {
        let shape = graph.shape(h).to_vec();
        let mut param = |graph: &mut Graph, decl: &TensorDecl| {
            let node = graph.param(&decl.name, &decl.shape);
            params.push(ParamInfo {
                name: decl.name.clone(),
                shape: decl.shape.clone(),
                fan_in: decl.fan_in,
                node,
            });
            node
        };
        h = match &layer.kind {
            LayerKind::Linear { out, bias } => {
                let (out, input) = (*out, *shape.last().expect("rank >= 2"));
                if info.params[0].numel() > MAX_PARAM_ELEMENTS {
                    return Err(NnError::Layer {
                        index: info.index,
                        layer: layer_label(info.index, layer),
                        message: format!("a {out}×{input} weight is too large to build"),
                    });
                }
                let weight = param(graph, &info.params[0]);
                let rows = shape[..shape.len() - 1].iter().product::<usize>();
                let flat = graph.reshape(h, &[rows, input])?;
                // y = x Wᵀ (+ b): PyTorch's layout, the transpose is a flag, not a copy.
                let mut y = graph.matmul(flat, weight, false, true)?;
                if *bias {
                    let b = param(graph, &info.params[1]);
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
            LayerKind::Softmax { dim } => {
                let axis = resolve_dim(*dim, shape.len()).expect("checked by describe_model");
                let log_p = log_softmax(graph, h, axis)?;
                graph.unary(UnaryOp::Exp, log_p)?
            }
            LayerKind::LogSoftmax { dim } => {
                let axis = resolve_dim(*dim, shape.len()).expect("checked by describe_model");
                log_softmax(graph, h, axis)?
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
const MAX_PARAM_ELEMENTS: u128 = 1 << 31;

/// PyTorch's `dim` (negative counts from the end) as an axis of a tensor of `rank`.
fn resolve_dim(dim: i64, rank: usize) -> Option<usize> {
    let rank = rank as i64;
    let axis = if dim < 0 { dim + rank } else { dim };
    (0..rank).contains(&axis).then_some(axis as usize)
}

/// `relu(x)` as `torch.relu`, which is `clamp_min(x, 0)`: `+0` where `x < 0`, else `x`
/// itself, so NaN stays NaN and `-0` stays `-0`. The gradient is torch's
/// `threshold_backward(g, relu(x), 0)`: `g` where `!(x <= 0)` (positive or NaN), `0`
/// elsewhere, so it is 0 at ±0. A plain `select(x > 0, x, 0)` would turn NaN into 0 and hide
/// NaN weights; a `select(x < 0, 0, x)` would pass the gradient at 0.
pub(crate) fn relu(graph: &mut Graph, x: NodeId) -> Result<NodeId, graphc_ir::IrError> {
    let shape = graph.shape(x).to_vec();
    let zero = graph.fill(0.0, &shape);
    let at_most_zero = graph.compare(CompareOp::Le, x, zero)?;
    let negative = graph.compare(CompareOp::Lt, x, zero)?;
    // Where x <= 0 the value is +0 or the zero x itself, and no gradient flows.
    let kept = graph.unary(UnaryOp::StopGradient, x)?;
    let clamped = graph.select(negative, zero, kept)?;
    graph.select(at_most_zero, clamped, x)
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
