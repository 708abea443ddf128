//! Layers as graph builders: `nn.Sequential` of the spec's `model.layers`.

use graphc_ir::{BinaryOp, Graph, NodeId, ReduceOp, UnaryOp};
use graphc_spec::{
    shown_list, BatchNormSpec, Combinator, ConvSpec, InitScheme, LayerKind, LayerNormSpec,
    LayerSpec, LayerType, ModelSpec, Precision, Reduce,
};

use crate::activation::{activation, prelu};
use crate::embedding::embedding;
use crate::init::check_scheme;
use crate::norm::{
    batch_norm, dropout, group_norm, layer_norm, BatchNormLeaves, ChannelView, Mode, Running,
};
use crate::spatial::{
    adaptive_avg_matrices, adaptive_max_window, adaptive_outputs, avg_pool_matrices,
    channels_and_spatial, conv_window, max_pool_window, pool_per_axis,
};
use crate::topology::{entries, Entry, Source};
use crate::{Hyper, NnError};

/// A trainable parameter (a `Param` leaf) or a buffer (a `State` leaf: batch norm's running
/// statistics) as the model declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// `state_dict` name: `0.weight`, `fc1.bias`, `1.running_mean`.
    pub name: String,
    /// PyTorch layout: `linear` weight is `[out, in]`.
    pub shape: Vec<usize>,
    /// Its value before training under PyTorch's default init.
    pub init: DefaultInit,
    /// The layer's `init:` scheme for it, which replaces `init`.
    pub scheme: Option<InitScheme>,
    /// Whether the optimizer trains it (`requires_grad`); false for buffers and for the
    /// parameters of a layer with `requires_grad: false`, which get no gradient, no optimizer
    /// state and no update.
    pub trainable: bool,
    /// The leaf.
    pub node: NodeId,
}

/// How PyTorch's `reset_parameters` (and `reset_running_stats`) start a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultInit {
    /// U(±1/√fan_in): `nn.Linear`'s and `nn.ConvNd`'s weight and bias.
    Uniform {
        /// The fan-in.
        fan_in: usize,
    },
    /// Every element 1: a batch norm's weight and running variance.
    Ones,
    /// Every element 0: a batch norm's bias and running mean.
    Zeros,
    /// Every element this value: `nn.PReLU`'s weight (`init`, 0.25).
    Constant(f32),
    /// These values, in order: an objective's `params` as written.
    Values(Vec<f32>),
    /// N(0, 1), with row `zero_row` (of a 2-d tensor) set to zeros: `nn.Embedding`'s weight,
    /// its `padding_idx` row zeroed.
    StandardNormal {
        /// The row set to zeros after the draw.
        zero_row: Option<usize>,
    },
}

/// The forward pass inside a graph.
#[derive(Debug, Clone)]
pub struct ModelGraph {
    /// Model output (logits for classifiers), `[batch, ..]`.
    pub output: NodeId,
    /// Parameters in `state_dict` order.
    pub params: Vec<ParamInfo>,
    /// Buffers (`State` leaves: running statistics) in `state_dict` order; a training graph
    /// assigns them.
    pub buffers: Vec<ParamInfo>,
    /// The `num_batches_tracked` counters in `state_dict` order: i64 values the trainer keeps
    /// and adds one to at every training forward.
    pub counters: Vec<String>,
    /// The runtime scalars the model's layers take, in argument order (before the optimizer's).
    pub hypers: Vec<Hyper>,
}

/// A parameter or buffer a layer declares: its `state_dict` name, shape and default init.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDecl {
    /// `state_dict` name: `0.weight`, `fc1.bias`.
    pub name: String,
    /// PyTorch layout: `linear` weight is `[out, in]`.
    pub shape: Vec<usize>,
    /// PyTorch's default init.
    pub init: DefaultInit,
    /// The layer's `init:` scheme for it, which replaces `init`.
    pub scheme: Option<InitScheme>,
    /// Whether the optimizer trains it (see [`ParamInfo::trainable`]).
    pub trainable: bool,
}

impl TensorDecl {
    /// A trainable parameter with PyTorch's default init `init`.
    pub fn new(name: String, shape: Vec<usize>, init: DefaultInit) -> Self {
        TensorDecl {
            name,
            shape,
            init,
            scheme: None,
            trainable: true,
        }
    }

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
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// The layer's position in the flattened model (blocks after their layers; see
    /// `topology`): a plain chain's layer `i` is entry `i`. Its dropout stream.
    pub index: usize,
    /// Its key path in the spec: `model.layers[2].layers[0]`, `model.nodes[3]`.
    pub path: String,
    /// `linear at 2.body.0`, `linear "fc1"`: how messages name it.
    pub label: String,
    /// The prefix of its `state_dict` names: its `name`, or its index, under its blocks'.
    pub prefix: String,
    /// What it reads, in order.
    pub inputs: Vec<Source>,
    /// Whether the model's output depends on it (a node of `model.nodes` may not: its
    /// parameters are kept in the `state_dict` and never change).
    pub reaches_output: bool,
    /// Its vocabulary entry.
    pub layer_type: LayerType,
    /// The shape of its output for one sample (without the batch axis).
    pub output: Vec<usize>,
    /// Its trainable parameters, in `state_dict` order.
    pub params: Vec<TensorDecl>,
    /// Its non-trainable f32 buffers, in `state_dict` order.
    pub buffers: Vec<TensorDecl>,
    /// The name of its i64 `num_batches_tracked` counter, after its buffers in `state_dict`
    /// order (a batch norm tracking running statistics).
    pub counter: Option<String>,
}

impl LayerInfo {
    /// A shape error of this layer.
    pub(crate) fn error(&self, message: String) -> NnError {
        NnError::Layer {
            path: self.path.clone(),
            layer: self.label.clone(),
            message,
        }
    }

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

/// Checks `model.input` and resolves every layer of `model` (flattened: blocks after their
/// layers) against the shapes it receives, for batches of `batch` samples (messages show
/// batched shapes, as PyTorch's do). Sizes are not limited here, so the memory estimate can
/// size absurd specs; [`build_model`] refuses what cannot be built.
pub fn describe_model(model: &ModelSpec, batch: usize) -> Result<Vec<LayerInfo>, NnError> {
    if model.input.is_empty() || model.input.contains(&0) {
        return Err(NnError::Model(format!(
            "input shape {} must list positive sizes",
            shown_list(&model.input)
        )));
    }
    let (entries, _) = entries(model);
    let mut infos: Vec<LayerInfo> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let shapes: Vec<&[usize]> = entry
            .inputs
            .iter()
            .map(|source| match source {
                Source::Input => &model.input[..],
                Source::Entry(j) => &infos[*j].output[..],
            })
            .collect();
        let info = describe_layer(index, entry, &shapes, batch)?;
        infos.push(info);
    }
    Ok(infos)
}

/// Entry `index` of the model, given one sample's shape of each of its inputs.
fn describe_layer(
    index: usize,
    entry: &Entry<'_>,
    shapes: &[&[usize]],
    batch: usize,
) -> Result<LayerInfo, NnError> {
    let layer = entry.layer;
    let err = |message: String| NnError::Layer {
        path: entry.path.clone(),
        layer: entry.label(),
        message,
    };
    let prefix = entry.prefix.clone();
    let shape = shapes[0];
    let mut params = Vec::new();
    let mut buffers = Vec::new();
    let mut counter = None;
    let output = match &layer.kind {
        LayerKind::Linear { out, bias } => {
            let (out, input) = (*out, *shape.last().expect("shapes are never empty"));
            check_declared(layer, "in_features", input, "features", shape, batch).map_err(err)?;
            let init = DefaultInit::Uniform { fan_in: input };
            params.push(TensorDecl::new(
                format!("{prefix}.weight"),
                vec![out, input],
                init.clone(),
            ));
            if *bias {
                params.push(TensorDecl::new(format!("{prefix}.bias"), vec![out], init));
            }
            let mut output = shape.to_vec();
            *output.last_mut().expect("shapes are never empty") = out;
            output
        }
        LayerKind::Relu | LayerKind::Sigmoid | LayerKind::Tanh | LayerKind::Activation(_) => {
            shape.to_vec()
        }
        LayerKind::Prelu {
            num_parameters,
            init,
        } => {
            // nn.PReLU: more than one slope needs one per channel (axis 1 of the batch).
            if *num_parameters > 1 && shape[0] != *num_parameters {
                let mut batched = vec![batch];
                batched.extend_from_slice(shape);
                return Err(err(format!(
                    "num_parameters {num_parameters} must equal the input's channels (axis 1 of {}), as PyTorch requires",
                    shown_list(&batched)
                )));
            }
            params.push(TensorDecl::new(
                format!("{prefix}.weight"),
                vec![*num_parameters],
                DefaultInit::Constant(*init as f32),
            ));
            shape.to_vec()
        }
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
        LayerKind::Conv1d(conv) | LayerKind::Conv2d(conv) => {
            let dims = conv.kernel_size.len();
            let (channels, spatial) = channels_and_spatial(shape, dims, batch).map_err(err)?;
            check_declared(layer, "in_channels", channels, "channels", shape, batch)
                .map_err(err)?;
            let window = conv_window(conv, spatial).map_err(err)?;
            params = conv_params(conv, channels, &prefix).map_err(err)?;
            let mut output = vec![conv.out_channels];
            output.extend(window.output_shape());
            output
        }
        LayerKind::MaxPool1d(pool) | LayerKind::MaxPool2d(pool) => {
            let dims = pool.kernel_size.len();
            let (channels, spatial) = channels_and_spatial(shape, dims, batch).map_err(err)?;
            let window = max_pool_window(pool, spatial).map_err(err)?;
            let mut output = vec![channels];
            output.extend(window.output_shape());
            output
        }
        LayerKind::AvgPool1d(pool) | LayerKind::AvgPool2d(pool) => {
            let dims = pool.kernel_size.len();
            let (channels, spatial) = channels_and_spatial(shape, dims, batch).map_err(err)?;
            let matrices = avg_pool_matrices(pool, spatial).map_err(err)?;
            let mut output = vec![channels];
            output.extend(matrices.iter().map(|m| m.output));
            output
        }
        LayerKind::AdaptiveAvgPool1d { output_size }
        | LayerKind::AdaptiveAvgPool2d { output_size } => {
            let dims = output_size.len();
            let (channels, spatial) = channels_and_spatial(shape, dims, batch).map_err(err)?;
            let mut output = vec![channels];
            output.extend(adaptive_outputs(output_size, spatial));
            output
        }
        LayerKind::AdaptiveMaxPool2d { output_size } => {
            let dims = output_size.len();
            let (channels, spatial) = channels_and_spatial(shape, dims, batch).map_err(err)?;
            let window = adaptive_max_window(output_size, spatial).map_err(err)?;
            let mut output = vec![channels];
            output.extend(window.output_shape());
            output
        }
        LayerKind::Flatten { start_dim, end_dim } => {
            let (start, end) = flatten_range(*start_dim, *end_dim, shape, batch).map_err(err)?;
            let mut output = shape[..start].to_vec();
            let merged = shape[start..end]
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .ok_or_else(|| err(format!("{shape:?} has too many values to flatten")))?;
            output.push(merged);
            output.extend_from_slice(&shape[end..]);
            output
        }
        LayerKind::BatchNorm1d(norm) => {
            let channels = channels_of(shape, &[1, 2], batch).map_err(err)?;
            check_declared(layer, "num_features", channels, "channels", shape, batch)
                .map_err(err)?;
            (params, buffers, counter) = batch_norm_decls(norm, channels, &prefix);
            shape.to_vec()
        }
        LayerKind::BatchNorm2d(norm) => {
            let channels = channels_of(shape, &[3], batch).map_err(err)?;
            check_declared(layer, "num_features", channels, "channels", shape, batch)
                .map_err(err)?;
            (params, buffers, counter) = batch_norm_decls(norm, channels, &prefix);
            shape.to_vec()
        }
        LayerKind::LayerNorm(norm) => {
            let normalized = normalized_shape(norm, shape, batch).map_err(err)?;
            if norm.elementwise_affine {
                let decl = |key: &str, init| {
                    TensorDecl::new(format!("{prefix}.{key}"), normalized.clone(), init)
                };
                params.push(decl("weight", DefaultInit::Ones));
                if norm.bias {
                    params.push(decl("bias", DefaultInit::Zeros));
                }
            }
            shape.to_vec()
        }
        LayerKind::GroupNorm(norm) => {
            let channels = shape[0];
            check_declared(layer, "num_channels", channels, "channels", shape, batch)
                .map_err(err)?;
            if !channels.is_multiple_of(norm.num_groups) {
                // PyTorch: "num_channels must be divisible by num_groups".
                let mut batched = vec![batch];
                batched.extend_from_slice(shape);
                return Err(err(format!(
                    "num_groups {} must divide the input's {channels} channels (axis 1 of {})",
                    norm.num_groups,
                    shown_list(&batched)
                )));
            }
            if norm.affine {
                let decl = |key: &str, init| {
                    TensorDecl::new(format!("{prefix}.{key}"), vec![channels], init)
                };
                params.extend([
                    decl("weight", DefaultInit::Ones),
                    decl("bias", DefaultInit::Zeros),
                ]);
            }
            shape.to_vec()
        }
        LayerKind::Embedding(e) => {
            // Its input values are class indices, which only the data holds: the loader and
            // the trainer check the model's input (see `graphc_train`'s `check_features`), so
            // an embedding anywhere else would read values nobody checked.
            if entry.inputs != [Source::Input] {
                return Err(err(
                    "an embedding reads class indices from the model's input, so it must read `input` (be the first layer, or a node with inputs: input)"
                        .to_owned(),
                ));
            }
            params.push(TensorDecl::new(
                format!("{prefix}.weight"),
                vec![e.num_embeddings, e.embedding_dim],
                DefaultInit::StandardNormal {
                    zero_row: e.padding_idx,
                },
            ));
            let mut output = shape.to_vec();
            output.push(e.embedding_dim);
            output
        }
        LayerKind::Dropout { .. } => shape.to_vec(),
        LayerKind::Dropout1d { .. } => {
            channels_of(shape, &[2], batch).map_err(err)?;
            shape.to_vec()
        }
        LayerKind::Dropout2d { .. } => {
            channels_of(shape, &[2, 3], batch).map_err(err)?;
            shape.to_vec()
        }
        LayerKind::Sequential(_) => shape.to_vec(),
        LayerKind::Residual { .. } => broadcast_all(shapes, batch).map_err(err)?,
        LayerKind::Combine(c) => combined_shape(c, shapes, batch).map_err(err)?,
    };
    // A node the output does not use gets no gradient in PyTorch: like a frozen one, no
    // state and no update.
    let trainable = entry.requires_grad && entry.reaches_output;
    apply_layer_init(layer, trainable, &mut params).map_err(err)?;
    Ok(LayerInfo {
        index,
        path: entry.path.clone(),
        label: entry.label(),
        inputs: entry.inputs.clone(),
        reaches_output: entry.reaches_output,
        prefix,
        layer_type: layer.kind.layer_type(),
        output,
        params,
        buffers,
        counter,
    })
}

/// Sets the layer's `init:` schemes and `requires_grad` on its parameters `params`, refusing a
/// scheme for a tensor the layer does not have or that PyTorch would refuse for its shape.
fn apply_layer_init(
    layer: &LayerSpec,
    trainable: bool,
    params: &mut [TensorDecl],
) -> Result<(), String> {
    let schemes = [("weight", &layer.init.weight), ("bias", &layer.init.bias)];
    for (key, scheme) in schemes {
        let Some(scheme) = scheme else {
            continue;
        };
        let suffix = format!(".{key}");
        let Some(decl) = params.iter_mut().find(|d| d.name.ends_with(&suffix)) else {
            return Err(format!(
                "init.{key}: the layer has no {key}{}",
                if key == "bias" { " (bias: false)" } else { "" }
            ));
        };
        check_scheme(scheme, &decl.shape).map_err(|m| {
            format!(
                "init.{key}: {m}; {} is {}",
                decl.name,
                shown_list(&decl.shape)
            )
        })?;
        decl.scheme = Some(*scheme);
    }
    for decl in params.iter_mut() {
        decl.trainable = trainable;
    }
    Ok(())
}

/// `nn.Conv1d/2d`'s weight `[out_channels, in_channels/groups, *kernel]` and bias, with
/// PyTorch's fan-in `in_channels/groups · Πkernel`.
fn conv_params(conv: &ConvSpec, channels: usize, prefix: &str) -> Result<Vec<TensorDecl>, String> {
    if !channels.is_multiple_of(conv.groups) {
        return Err(format!(
            "its input has {channels} channels, which groups {} does not divide",
            conv.groups
        ));
    }
    let per_group = channels / conv.groups;
    let mut shape = vec![conv.out_channels, per_group];
    shape.extend_from_slice(&conv.kernel_size);
    let fan_in = conv
        .kernel_size
        .iter()
        .try_fold(per_group, |n, &k| n.checked_mul(k))
        .ok_or_else(|| format!("a kernel of {:?} is too large to build", conv.kernel_size))?;
    let init = DefaultInit::Uniform { fan_in };
    let mut params = vec![TensorDecl::new(
        format!("{prefix}.weight"),
        shape,
        init.clone(),
    )];
    if conv.bias {
        params.push(TensorDecl::new(
            format!("{prefix}.bias"),
            vec![conv.out_channels],
            init,
        ));
    }
    Ok(params)
}

/// Checks the input size the spec declares with PyTorch's argument `key` (`in_features`,
/// `in_channels`, `num_features`) against the `inferred` one, the number of `what` in one
/// sample of `shape`.
fn check_declared(
    layer: &LayerSpec,
    key: &str,
    inferred: usize,
    what: &str,
    shape: &[usize],
    batch: usize,
) -> Result<(), String> {
    match layer.declared_input {
        Some(declared) if declared != inferred => {
            let mut batched = vec![batch];
            batched.extend_from_slice(shape);
            Err(format!(
                "{key} is {declared}, but its input {} has {inferred} {what}; leave {key} out to infer it",
                shown_list(&batched)
            ))
        }
        Some(_) | None => Ok(()),
    }
}

/// A batch norm's parameters (`weight` ones, `bias` zeros, when `affine`), buffers
/// (`running_mean` zeros, `running_var` ones) and counter (`num_batches_tracked`), when it
/// tracks running statistics, as `nn.BatchNormNd(channels)` declares them.
fn batch_norm_decls(
    norm: &BatchNormSpec,
    channels: usize,
    prefix: &str,
) -> (Vec<TensorDecl>, Vec<TensorDecl>, Option<String>) {
    let decl = |key: &str, init| TensorDecl::new(format!("{prefix}.{key}"), vec![channels], init);
    let params = if norm.affine {
        vec![
            decl("weight", DefaultInit::Ones),
            decl("bias", DefaultInit::Zeros),
        ]
    } else {
        Vec::new()
    };
    if !norm.track_running_stats {
        return (params, Vec::new(), None);
    }
    let buffer = |key: &str, init| TensorDecl {
        trainable: false,
        ..decl(key, init)
    };
    let buffers = vec![
        buffer("running_mean", DefaultInit::Zeros),
        buffer("running_var", DefaultInit::Ones),
    ];
    (
        params,
        buffers,
        Some(format!("{prefix}.num_batches_tracked")),
    )
}

/// A layer norm's `normalized_shape` (by default the last axis of `shape`), which must be
/// trailing axes of one sample's `shape` (PyTorch's check, but never the batch axis).
fn normalized_shape(
    norm: &LayerNormSpec,
    shape: &[usize],
    batch: usize,
) -> Result<Vec<usize>, String> {
    let last = *shape.last().expect("shapes are never empty");
    let normalized = norm.normalized_shape.clone().unwrap_or_else(|| vec![last]);
    if shape.ends_with(&normalized) {
        return Ok(normalized);
    }
    let mut batched = vec![batch];
    batched.extend_from_slice(shape);
    let expected: Vec<String> = normalized.iter().map(usize::to_string).collect();
    // PyTorch would normalise over the batch axis too; graphc keeps samples apart.
    let reach = if batched.ends_with(&normalized) {
        " (it may not reach the batch axis)"
    } else {
        ""
    };
    Err(format!(
        "normalized_shape {} expects an input of shape [*, {}]{reach}, got {}",
        shown_list(&normalized),
        expected.join(", "),
        shown_list(&batched)
    ))
}

/// The channels of one sample's `shape` `[C, *spatial]` for a layer that takes a per-sample
/// rank in `ranks` (batch norm, the channel dropouts), or what it expects, batched as PyTorch
/// shows shapes.
fn channels_of(shape: &[usize], ranks: &[usize], batch: usize) -> Result<usize, String> {
    if ranks.contains(&shape.len()) {
        return Ok(shape[0]);
    }
    let mut batched = vec![batch];
    batched.extend_from_slice(shape);
    let expected: Vec<String> = ranks
        .iter()
        .map(|&r| match r {
            1 => "[N, C]".to_owned(),
            2 => "[N, C, L]".to_owned(),
            _ => "[N, C, H, W]".to_owned(),
        })
        .collect();
    Err(format!(
        "expects a {} input, got {}",
        expected.join(" or "),
        shown_list(&batched)
    ))
}

/// `nn.Flatten`'s `start_dim..=end_dim` on the batched tensor `[batch, *shape]`, as the range
/// `start..end` of one sample's `shape` that merges (the batch axis never does: every layer
/// keeps it).
fn flatten_range(
    start_dim: i64,
    end_dim: i64,
    shape: &[usize],
    batch: usize,
) -> Result<(usize, usize), String> {
    let rank = shape.len() + 1;
    let mut batched = vec![batch];
    batched.extend_from_slice(shape);
    let resolve = |key: &str, dim: i64| {
        resolve_dim(dim, rank)
            .ok_or_else(|| format!("{key} {dim} is out of range for a tensor of shape {batched:?}"))
    };
    let (start, end) = (
        resolve("start_dim", start_dim)?,
        resolve("end_dim", end_dim)?,
    );
    if start == 0 {
        return Err(format!(
            "start_dim {start_dim} would merge the batch axis of {batched:?}; use start_dim 1 or more"
        ));
    }
    if start > end {
        return Err(format!(
            "start_dim {start_dim} comes after end_dim {end_dim} on a tensor of shape {batched:?}"
        ));
    }
    Ok((start - 1, end))
}

/// Adds the model's forward pass on `x` (`[batch, ..input]`) to `graph`, its layers in `mode`,
/// its linear layers' and convolutions' products in `precision`.
pub fn build_model(
    graph: &mut Graph,
    model: &ModelSpec,
    x: NodeId,
    mode: Mode,
    precision: Precision,
) -> Result<ModelGraph, NnError> {
    // torch.autocast's bf16 casts: both operands of a product rounded; the backward products
    // round their adjoint too (graphc-autodiff's rule for products of rounded operands).
    let operand = |graph: &mut Graph, n: NodeId| match precision {
        Precision::Fp32 => Ok(n),
        Precision::Bf16 => graph.unary(UnaryOp::RoundBf16, n),
    };
    let batch = graph.shape(x)[0];
    if let Some(objective) = model.objective() {
        return crate::objective::build_objective(graph, objective, batch);
    }
    let infos = describe_model(model, batch)?;
    let (entries, output) = entries(model);
    let mut params = Vec::new();
    let mut buffers = Vec::new();
    let mut counters = Vec::new();
    let mut hypers = Vec::new();
    let mut layer_outputs = Vec::new();
    let leaf = |decl: &TensorDecl, node| ParamInfo {
        name: decl.name.clone(),
        shape: decl.shape.clone(),
        init: decl.init.clone(),
        scheme: decl.scheme,
        trainable: decl.trainable,
        node,
    };
    let value = |outputs: &[NodeId], source: &Source| match source {
        Source::Input => x,
        Source::Entry(j) => outputs[*j],
    };
    for (entry, info) in entries.iter().zip(&infos) {
        let layer = entry.layer;
        let mut param = |graph: &mut Graph, decl: &TensorDecl| {
            let node = graph.param(&decl.name, &decl.shape);
            params.push(leaf(decl, node));
            node
        };
        if !entry.reaches_output {
            // A node the output does not depend on: its parameters and buffers stay in the
            // state_dict, unchanged; nothing of it is computed (PyTorch never calls it).
            for decl in &info.params {
                param(graph, decl);
            }
            for decl in &info.buffers {
                let node = graph.state(&decl.name, &decl.shape);
                buffers.push(leaf(decl, node));
            }
            // A placeholder: no entry the output depends on reads this one.
            layer_outputs.push(x);
            continue;
        }
        let ins: Vec<NodeId> = entry
            .inputs
            .iter()
            .map(|s| value(&layer_outputs, s))
            .collect();
        let h = ins[0];
        let shape = graph.shape(h).to_vec();
        let out = match &layer.kind {
            LayerKind::Linear { out, bias } => {
                let (out, input) = (*out, *shape.last().expect("rank >= 2"));
                if info.params[0].numel() > MAX_PARAM_ELEMENTS {
                    return Err(info.error(format!("a {out}×{input} weight is too large to build")));
                }
                let weight = param(graph, &info.params[0]);
                let rows = shape[..shape.len() - 1].iter().product::<usize>();
                let flat = graph.reshape(h, &[rows, input])?;
                // y = x Wᵀ (+ b): PyTorch's layout, the transpose is a flag, not a copy.
                let (flat, weight) = (operand(graph, flat)?, operand(graph, weight)?);
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
            LayerKind::Relu => graph.unary(UnaryOp::Relu, h)?,
            LayerKind::Sigmoid => graph.unary(UnaryOp::Sigmoid, h)?,
            LayerKind::Tanh => graph.unary(UnaryOp::Tanh, h)?,
            LayerKind::Activation(a) => activation(graph, h, a)?,
            LayerKind::Prelu { .. } => {
                let weight = param(graph, &info.params[0]);
                prelu(graph, h, weight)?
            }
            LayerKind::Softmax { dim } => {
                let axis = resolve_dim(*dim, shape.len()).expect("checked by describe_model");
                let log_p = log_softmax(graph, h, axis)?;
                graph.unary(UnaryOp::Exp, log_p)?
            }
            LayerKind::LogSoftmax { dim } => {
                let axis = resolve_dim(*dim, shape.len()).expect("checked by describe_model");
                log_softmax(graph, h, axis)?
            }
            LayerKind::Conv1d(conv) | LayerKind::Conv2d(conv) => {
                if info.params[0].numel() > MAX_PARAM_ELEMENTS {
                    let message =
                        format!("a {:?} weight is too large to build", info.params[0].shape);
                    return Err(info.error(message));
                }
                let window = conv_window(conv, &shape[2..]).map_err(|m| info.error(m))?;
                let weight = param(graph, &info.params[0]);
                let (h, weight) = (operand(graph, h)?, operand(graph, weight)?);
                let y = graph.conv(h, weight, &window, conv.groups)?;
                if conv.bias {
                    // The bias [O] repeated over batch and positions through the channel
                    // view, so its gradient is a sum into lanes, not one chain a channel.
                    let b = param(graph, &info.params[1]);
                    let y_shape = graph.shape(y).to_vec();
                    let v = ChannelView::of(&y_shape);
                    let b = v.broadcast(graph, b)?;
                    let y = graph.reshape(y, &v.view)?;
                    let y = graph.binary(BinaryOp::Add, y, b)?;
                    graph.reshape(y, &y_shape)?
                } else {
                    y
                }
            }
            LayerKind::MaxPool1d(pool) | LayerKind::MaxPool2d(pool) => {
                let window = max_pool_window(pool, &shape[2..]).map_err(|m| info.error(m))?;
                graph.max_pool(h, &window)?
            }
            LayerKind::AvgPool1d(pool) | LayerKind::AvgPool2d(pool) => {
                let matrices = avg_pool_matrices(pool, &shape[2..]).map_err(|m| info.error(m))?;
                pool_per_axis(graph, h, &matrices)?
            }
            LayerKind::AdaptiveAvgPool1d { output_size }
            | LayerKind::AdaptiveAvgPool2d { output_size } => {
                let matrices =
                    adaptive_avg_matrices(output_size, &shape[2..]).map_err(|m| info.error(m))?;
                pool_per_axis(graph, h, &matrices)?
            }
            LayerKind::AdaptiveMaxPool2d { output_size } => {
                let window =
                    adaptive_max_window(output_size, &shape[2..]).map_err(|m| info.error(m))?;
                graph.max_pool(h, &window)?
            }
            LayerKind::Flatten { .. } => {
                let mut out_shape = vec![shape[0]];
                out_shape.extend_from_slice(&info.output);
                graph.reshape(h, &out_shape)?
            }
            LayerKind::BatchNorm1d(norm) | LayerKind::BatchNorm2d(norm) => {
                let affine = match info.params.as_slice() {
                    [weight, bias] => Some((param(graph, weight), param(graph, bias))),
                    _ => None,
                };
                // LayerInfo declares the buffers and the counter together (track_running_stats).
                let running = match (info.buffers.as_slice(), &info.counter) {
                    ([mean, var], Some(counter)) => {
                        let nodes = (
                            graph.state(&mean.name, &mean.shape),
                            graph.state(&var.name, &var.shape),
                        );
                        buffers.extend([leaf(mean, nodes.0), leaf(var, nodes.1)]);
                        counters.push(counter.clone());
                        Some(Running {
                            mean: nodes.0,
                            var: nodes.1,
                            counter: counters.len() - 1,
                        })
                    }
                    _ => None,
                };
                let leaves = BatchNormLeaves { affine, running };
                let prefix = &info.prefix;
                batch_norm(graph, h, norm, &leaves, mode, prefix, &mut hypers)?
                    .map_err(|m| info.error(m))?
            }
            LayerKind::LayerNorm(norm) => {
                let affine = affine_leaves(graph, &info.params, &mut param);
                layer_norm(graph, h, norm, affine)?
            }
            LayerKind::GroupNorm(norm) => {
                let affine = affine_leaves(graph, &info.params, &mut param);
                group_norm(graph, h, norm, affine)?
            }
            LayerKind::Embedding(e) => {
                if info.params[0].numel() > MAX_PARAM_ELEMENTS {
                    let message =
                        format!("a {:?} weight is too large to build", info.params[0].shape);
                    return Err(info.error(message));
                }
                let weight = param(graph, &info.params[0]);
                embedding(graph, h, weight, e)?
            }
            LayerKind::Dropout { p } => dropout(graph, h, *p, false, info.index, mode)?,
            LayerKind::Dropout1d { p } | LayerKind::Dropout2d { p } => {
                dropout(graph, h, *p, true, info.index, mode)?
            }
            LayerKind::Sequential(_) => h,
            LayerKind::Residual { .. } => {
                combine_elementwise(graph, BinaryOp::Add, &ins, &info.output)?
            }
            LayerKind::Combine(c) => combine(graph, c, &ins, &info.output)?,
        };
        layer_outputs.push(out);
    }
    Ok(ModelGraph {
        output: value(&layer_outputs, &output),
        params,
        buffers,
        counters,
        hypers,
    })
}

/// A normalization's `weight` and `bias` leaves as declared (either may be absent), made by
/// `param`.
fn affine_leaves(
    graph: &mut Graph,
    decls: &[TensorDecl],
    param: &mut impl FnMut(&mut Graph, &TensorDecl) -> NodeId,
) -> (Option<NodeId>, Option<NodeId>) {
    let mut leaves = decls.iter().map(|d| param(graph, d));
    (leaves.next(), leaves.next())
}

/// Refuses layers whose parameter would not fit in memory before allocating it.
const MAX_PARAM_ELEMENTS: u128 = 1 << 31;

/// PyTorch's `dim` (negative counts from the end) as an axis of a tensor of `rank`.
fn resolve_dim(dim: i64, rank: usize) -> Option<usize> {
    let rank = rank as i64;
    let axis = if dim < 0 { dim + rank } else { dim };
    (0..rank).contains(&axis).then_some(axis as usize)
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

/// `[batch, ..shape]`, as messages show shapes.
fn batched(batch: usize, shape: &[usize]) -> Vec<usize> {
    let mut b = vec![batch];
    b.extend_from_slice(shape);
    b
}

/// PyTorch's broadcasting of samples of `shapes`: each axis equal, or 1 in all but one.
/// Ranks must agree: with different ranks PyTorch would align the batch axis of one with an
/// axis of a sample of the other, which only holds for particular batch sizes.
fn broadcast_all(shapes: &[&[usize]], batch: usize) -> Result<Vec<usize>, String> {
    let shown = || {
        let all: Vec<String> = shapes
            .iter()
            .map(|s| shown_list(&batched(batch, s)))
            .collect();
        all.join(" and ")
    };
    let mut out = shapes[0].to_vec();
    for shape in &shapes[1..] {
        if shape.len() != out.len() {
            return Err(format!(
                "its inputs {} have different ranks; reshape one so that the batch axes line up",
                shown()
            ));
        }
        for (o, &d) in out.iter_mut().zip(shape.iter()) {
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!("its inputs {} do not broadcast", shown()));
            }
        }
    }
    Ok(out)
}

/// The shape of one sample of a combinator's output.
fn combined_shape(c: &Combinator, shapes: &[&[usize]], batch: usize) -> Result<Vec<usize>, String> {
    let rank = shapes[0].len() + 1;
    let resolve = |dim: i64| {
        let axis = resolve_dim(dim, rank).ok_or_else(|| {
            format!(
                "dim {dim} is out of range for a tensor of shape {}",
                shown_list(&batched(batch, shapes[0]))
            )
        })?;
        if axis == 0 {
            return Err(format!(
                "dim {dim} is the batch axis of {}; graphc keeps every sample's values apart",
                shown_list(&batched(batch, shapes[0]))
            ));
        }
        Ok(axis - 1)
    };
    match c {
        Combinator::Add | Combinator::Sub | Combinator::Mul => broadcast_all(shapes, batch),
        Combinator::Concat { dim } => {
            let axis = resolve(*dim)?;
            let mut out = shapes[0].to_vec();
            for shape in &shapes[1..] {
                let fits = shape.len() == out.len()
                    && (0..out.len()).all(|i| i == axis || shape[i] == out[i]);
                if !fits {
                    let all: Vec<String> = shapes
                        .iter()
                        .map(|s| shown_list(&batched(batch, s)))
                        .collect();
                    return Err(format!(
                        "its inputs {} differ on an axis other than dim {dim}",
                        all.join(" and ")
                    ));
                }
                out[axis] = out[axis]
                    .checked_add(shape[axis])
                    .ok_or_else(|| "the joined axis is too large".to_owned())?;
            }
            Ok(out)
        }
        Combinator::Mean(r) | Combinator::Sum(r) => {
            let axes = reduced_axes(r, shapes[0], batch, resolve)?;
            let kept: Vec<usize> = shapes[0]
                .iter()
                .enumerate()
                .filter_map(|(i, &d)| match (axes.contains(&i), r.keepdim) {
                    (false, _) => Some(d),
                    (true, true) => Some(1),
                    (true, false) => None,
                })
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "it reduces every axis of a sample of {}, leaving one value per sample; \
                     set keepdim: true to keep a [N, 1, ..] shape",
                    shown_list(&batched(batch, shapes[0]))
                ));
            }
            Ok(kept)
        }
        Combinator::Reshape { shape } => reshaped(shape, shapes[0], batch),
    }
}

/// The sample axes `r.dim` names (sorted), each once.
fn reduced_axes(
    r: &Reduce,
    shape: &[usize],
    batch: usize,
    resolve: impl Fn(i64) -> Result<usize, String>,
) -> Result<Vec<usize>, String> {
    let mut axes = Vec::with_capacity(r.dim.len());
    for &d in &r.dim {
        let axis = resolve(d)?;
        if axes.contains(&axis) {
            return Err(format!(
                "dim {} appears more than once in {:?} for a tensor of shape {}",
                axis + 1,
                r.dim,
                shown_list(&batched(batch, shape))
            ));
        }
        axes.push(axis);
    }
    axes.sort_unstable();
    Ok(axes)
}

/// `shape` (one sample's, a `-1` inferred) for a sample of `input`'s size.
fn reshaped(shape: &[i64], input: &[usize], batch: usize) -> Result<Vec<usize>, String> {
    let numel = input.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let known = shape
        .iter()
        .filter(|&&d| d > 0)
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
    let mismatch = || {
        format!(
            "shape {shape:?} does not fit a sample of {} ({} values)",
            shown_list(&batched(batch, input)),
            numel.map_or("too many".to_owned(), |n| n.to_string())
        )
    };
    let (Some(numel), Some(known)) = (numel, known) else {
        return Err(mismatch());
    };
    let inferred = if shape.contains(&-1) {
        if known == 0 || numel % known != 0 {
            return Err(mismatch());
        }
        numel / known
    } else if known == numel {
        0
    } else {
        return Err(mismatch());
    };
    Ok(shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(inferred))
        .collect())
}

/// `op` folded over `inputs`, each broadcast to the batched `[batch, ..output]`.
fn combine_elementwise(
    graph: &mut Graph,
    op: BinaryOp,
    inputs: &[NodeId],
    output: &[usize],
) -> Result<NodeId, graphc_ir::IrError> {
    let full = batched(graph.shape(inputs[0])[0], output);
    let mut acc = graph.broadcast(inputs[0], &full)?;
    for &x in &inputs[1..] {
        let x = if graph.shape(x) == full.as_slice() {
            x
        } else {
            graph.broadcast(x, &full)?
        };
        acc = graph.binary(op, acc, x)?;
    }
    Ok(acc)
}

/// A combinator on `inputs` whose sample output is `output`.
fn combine(
    graph: &mut Graph,
    c: &Combinator,
    inputs: &[NodeId],
    output: &[usize],
) -> Result<NodeId, graphc_ir::IrError> {
    let batch = graph.shape(inputs[0])[0];
    let rank = output.len() + 1;
    let axis = |dim: i64| resolve_dim(dim, rank).expect("checked by describe_model");
    match c {
        Combinator::Add => combine_elementwise(graph, BinaryOp::Add, inputs, output),
        Combinator::Sub => combine_elementwise(graph, BinaryOp::Sub, inputs, output),
        Combinator::Mul => combine_elementwise(graph, BinaryOp::Mul, inputs, output),
        Combinator::Concat { dim } => concat(graph, inputs, axis(*dim)),
        Combinator::Sum(r) => {
            let (sum, _) = sum_over(graph, inputs[0], r)?;
            graph.reshape(sum, &batched(batch, output))
        }
        Combinator::Mean(r) => {
            let (sum, count) = sum_over(graph, inputs[0], r)?;
            let shape = graph.shape(sum).to_vec();
            let n = graph.fill(count as f32, &shape);
            let mean = graph.binary(BinaryOp::Div, sum, n)?;
            graph.reshape(mean, &batched(batch, output))
        }
        Combinator::Reshape { .. } => graph.reshape(inputs[0], &batched(batch, output)),
    }
}

/// The sum of `x` over `r.dim` (axes kept with size 1), and how many values each sum adds.
fn sum_over(
    graph: &mut Graph,
    x: NodeId,
    r: &Reduce,
) -> Result<(NodeId, usize), graphc_ir::IrError> {
    let shape = graph.shape(x).to_vec();
    let mut axes: Vec<usize> = r
        .dim
        .iter()
        .map(|&d| resolve_dim(d, shape.len()).expect("checked by describe_model"))
        .collect();
    axes.sort_unstable();
    let count = axes.iter().map(|&a| shape[a]).product();
    Ok((graph.reduce(ReduceOp::Sum, x, &axes)?, count))
}

/// `torch.cat(inputs, axis)` of batched tensors equal but on `axis`. Each input, its `axis`
/// moved last and viewed as `[rows, A_i]`, is multiplied by a constant `[A_i, total]` that
/// places it at its offset (one 1 per row, so every value passes exactly), and the products
/// are summed: no primitive of its own, and the gradient is the transposed product.
fn concat(graph: &mut Graph, inputs: &[NodeId], axis: usize) -> Result<NodeId, graphc_ir::IrError> {
    let sizes: Vec<usize> = inputs.iter().map(|&x| graph.shape(x)[axis]).collect();
    let total: usize = sizes.iter().sum();
    let rank = graph.shape(inputs[0]).len();
    // perm moves `axis` last; inverse puts it back.
    let mut perm: Vec<usize> = (0..rank).filter(|&a| a != axis).collect();
    perm.push(axis);
    let mut inverse = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    let mut moved_shape: Vec<usize> = perm.iter().map(|&a| graph.shape(inputs[0])[a]).collect();
    let rows: usize = moved_shape[..rank - 1].iter().product();
    let mut sum = None;
    let mut offset = 0;
    for (&x, &size) in inputs.iter().zip(&sizes) {
        let moved = graph.transpose(x, &perm)?;
        let flat = graph.reshape(moved, &[rows, size])?;
        let mut place = vec![0.0f32; size * total];
        for i in 0..size {
            place[i * total + offset + i] = 1.0;
        }
        let place = graph.constant(place, &[size, total])?;
        let part = graph.matmul(flat, place, false, false)?;
        sum = Some(match sum {
            None => part,
            Some(acc) => graph.binary(BinaryOp::Add, acc, part)?,
        });
        offset += size;
    }
    *moved_shape.last_mut().expect("rank >= 2") = total;
    let joined = graph.reshape(sum.expect("concat has 2 or more inputs"), &moved_shape)?;
    graph.transpose(joined, &inverse)
}
