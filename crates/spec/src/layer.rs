//! One entry of `model.layers`: a `type:`-tagged mapping (`linear`, activations, softmaxes,
//! convolutions, poolings, `flatten`, batch, layer and group norms, embeddings, dropouts), with
//! PyTorch's constructor checks on its arguments.

use serde::de::{IgnoredAny, MapAccess, SeqAccess};

use crate::axes::{axes, Axes};
use crate::ctx::{shown, Ctx, Path};
use crate::init::{InitKeyNode, InitValue};
use crate::keys::{KeyTable, Keys, TypeTable};
use crate::node::{ctx_and_path, list, one_or_list, scalar, to_bool, to_f64, to_i64};
use crate::node::{to_nonneg_f64, to_positive_usize, to_u64, valid_if, Node, Problem, Raw, Seed};
use crate::suggest::did_you_mean;
use crate::types::LayerInit;
use crate::types::MaxPoolSpec;
use crate::types::{Activation, Combinator, GeluApproximate, Reduce};
use crate::types::{AvgPoolSpec, BatchNormSpec, ConvPadding, ConvSpec, LayerKind, LayerSpec};
use crate::types::{EmbeddingSpec, GroupNormSpec, LayerNormSpec};
use crate::types::{NodeGraph, NodeInput, NodeSpec};
use crate::vocab::{KeyTables, LayerType};

static LAYER_TYPES: TypeTable<LayerType> = TypeTable {
    what: "layer",
    example: "a layer mapping such as {type: linear, out: 16}",
    say_where: true,
    types: std::marker::PhantomData,
};

/// `out_features` is PyTorch's spelling of `out`.
const OUT_ALIAS: &[(&str, &str)] = &[("out_features", "out")];

static LINEAR_KEYS: KeyTable = KeyTable {
    valid: &[
        "type",
        "name",
        "in_features",
        "out",
        "bias",
        "init",
        "requires_grad",
    ],
    aliases: OUT_ALIAS,
    unsupported: &[],
};
static ACTIVATION_KEYS: KeyTable = KeyTable::plain(&["type", "name"]);
static SOFTMAX_KEYS: KeyTable = KeyTable::plain(&["type", "name", "dim"]);
static CONV_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "name",
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "padding_mode",
    "init",
    "requires_grad",
]);
static MAX_POOL_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "name",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "ceil_mode",
]);
static AVG_POOL1D_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "name",
    "kernel_size",
    "stride",
    "padding",
    "ceil_mode",
    "count_include_pad",
]);
static AVG_POOL2D_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "name",
    "kernel_size",
    "stride",
    "padding",
    "ceil_mode",
    "count_include_pad",
    "divisor_override",
]);
static ADAPTIVE_KEYS: KeyTable = KeyTable::plain(&["type", "name", "output_size"]);
static FLATTEN_KEYS: KeyTable = KeyTable::plain(&["type", "name", "start_dim", "end_dim"]);
static BATCH_NORM_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "name",
    "num_features",
    "eps",
    "momentum",
    "affine",
    "track_running_stats",
    "init",
    "requires_grad",
]);
static LAYER_NORM_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "name",
    "normalized_shape",
    "eps",
    "elementwise_affine",
    "bias",
    "init",
    "requires_grad",
]);
static GROUP_NORM_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "name",
    "num_groups",
    "num_channels",
    "eps",
    "affine",
    "init",
    "requires_grad",
]);
static EMBEDDING_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "name",
    "num_embeddings",
    "embedding_dim",
    "padding_idx",
    "init",
    "requires_grad",
]);
static DROPOUT_KEYS: KeyTable = KeyTable::plain(&["type", "name", "p"]);
static LEAKY_RELU_KEYS: KeyTable = KeyTable::plain(&["type", "name", "negative_slope"]);
static ELU_KEYS: KeyTable = KeyTable::plain(&["type", "name", "alpha"]);
static GELU_KEYS: KeyTable = KeyTable::plain(&["type", "name", "approximate"]);
static SOFTPLUS_KEYS: KeyTable = KeyTable::plain(&["type", "name", "beta", "threshold"]);
static HARDTANH_KEYS: KeyTable = KeyTable::plain(&["type", "name", "min_val", "max_val"]);
static PRELU_KEYS: KeyTable =
    KeyTable::plain(&["type", "name", "num_parameters", "init", "requires_grad"]);

static SEQUENTIAL_KEYS: KeyTable = KeyTable::plain(&["type", "name", "layers", "requires_grad"]);
static RESIDUAL_KEYS: KeyTable =
    KeyTable::plain(&["type", "name", "layers", "shortcut", "requires_grad"]);
static COMBINE_KEYS: KeyTable = KeyTable::plain(&["type", "name"]);
static CONCAT_KEYS: KeyTable = KeyTable::plain(&["type", "name", "dim"]);
static REDUCE_KEYS: KeyTable = KeyTable::plain(&["type", "name", "dim", "keepdim"]);
static RESHAPE_KEYS: KeyTable = KeyTable::plain(&["type", "name", "shape"]);

/// Every layer type's keys, for the keys read before `type:`.
static UNION_KEYS: KeyTable = KeyTable {
    valid: &KeyTable::union::<47>(&[
        &LINEAR_KEYS,
        &ACTIVATION_KEYS,
        &SOFTMAX_KEYS,
        &CONV_KEYS,
        &MAX_POOL_KEYS,
        &AVG_POOL2D_KEYS,
        &ADAPTIVE_KEYS,
        &FLATTEN_KEYS,
        &BATCH_NORM_KEYS,
        &LAYER_NORM_KEYS,
        &GROUP_NORM_KEYS,
        &EMBEDDING_KEYS,
        &DROPOUT_KEYS,
        &LEAKY_RELU_KEYS,
        &ELU_KEYS,
        &GELU_KEYS,
        &SOFTPLUS_KEYS,
        &HARDTANH_KEYS,
        &PRELU_KEYS,
        &RESIDUAL_KEYS,
        &REDUCE_KEYS,
        &RESHAPE_KEYS,
    ]),
    aliases: OUT_ALIAS,
    unsupported: &[],
};

impl KeyTables for LayerType {
    fn key_table(self) -> &'static KeyTable {
        match self {
            LayerType::Linear => &LINEAR_KEYS,
            LayerType::Softmax | LayerType::LogSoftmax => &SOFTMAX_KEYS,
            LayerType::Relu
            | LayerType::Sigmoid
            | LayerType::Tanh
            | LayerType::Identity
            | LayerType::Selu
            | LayerType::Silu
            | LayerType::Mish
            | LayerType::Relu6
            | LayerType::Hardsigmoid
            | LayerType::Hardswish
            | LayerType::LogSigmoid
            | LayerType::Softsign
            | LayerType::Tanhshrink => &ACTIVATION_KEYS,
            LayerType::LeakyRelu => &LEAKY_RELU_KEYS,
            LayerType::Elu | LayerType::Celu => &ELU_KEYS,
            LayerType::Gelu => &GELU_KEYS,
            LayerType::Softplus => &SOFTPLUS_KEYS,
            LayerType::Hardtanh => &HARDTANH_KEYS,
            LayerType::Prelu => &PRELU_KEYS,
            LayerType::Conv1d | LayerType::Conv2d => &CONV_KEYS,
            LayerType::MaxPool1d | LayerType::MaxPool2d => &MAX_POOL_KEYS,
            LayerType::AvgPool1d => &AVG_POOL1D_KEYS,
            LayerType::AvgPool2d => &AVG_POOL2D_KEYS,
            LayerType::AdaptiveAvgPool1d
            | LayerType::AdaptiveAvgPool2d
            | LayerType::AdaptiveMaxPool2d => &ADAPTIVE_KEYS,
            LayerType::Flatten => &FLATTEN_KEYS,
            LayerType::BatchNorm1d | LayerType::BatchNorm2d => &BATCH_NORM_KEYS,
            LayerType::LayerNorm => &LAYER_NORM_KEYS,
            LayerType::GroupNorm => &GROUP_NORM_KEYS,
            LayerType::Embedding => &EMBEDDING_KEYS,
            LayerType::Dropout | LayerType::Dropout1d | LayerType::Dropout2d => &DROPOUT_KEYS,
            LayerType::Sequential => &SEQUENTIAL_KEYS,
            LayerType::Residual => &RESIDUAL_KEYS,
            LayerType::Add | LayerType::Sub | LayerType::Mul => &COMBINE_KEYS,
            LayerType::Concat => &CONCAT_KEYS,
            LayerType::Mean | LayerType::Sum => &REDUCE_KEYS,
            LayerType::Reshape => &RESHAPE_KEYS,
        }
    }
}

impl LayerKind {
    /// This layer's entry in the vocabulary.
    pub fn layer_type(&self) -> LayerType {
        match self {
            LayerKind::Linear { .. } => LayerType::Linear,
            LayerKind::Relu => LayerType::Relu,
            LayerKind::Sigmoid => LayerType::Sigmoid,
            LayerKind::Tanh => LayerType::Tanh,
            LayerKind::Softmax { .. } => LayerType::Softmax,
            LayerKind::LogSoftmax { .. } => LayerType::LogSoftmax,
            LayerKind::Conv1d(_) => LayerType::Conv1d,
            LayerKind::Conv2d(_) => LayerType::Conv2d,
            LayerKind::MaxPool1d(_) => LayerType::MaxPool1d,
            LayerKind::MaxPool2d(_) => LayerType::MaxPool2d,
            LayerKind::AvgPool1d(_) => LayerType::AvgPool1d,
            LayerKind::AvgPool2d(_) => LayerType::AvgPool2d,
            LayerKind::AdaptiveAvgPool1d { .. } => LayerType::AdaptiveAvgPool1d,
            LayerKind::AdaptiveAvgPool2d { .. } => LayerType::AdaptiveAvgPool2d,
            LayerKind::AdaptiveMaxPool2d { .. } => LayerType::AdaptiveMaxPool2d,
            LayerKind::Flatten { .. } => LayerType::Flatten,
            LayerKind::BatchNorm1d(_) => LayerType::BatchNorm1d,
            LayerKind::BatchNorm2d(_) => LayerType::BatchNorm2d,
            LayerKind::LayerNorm(_) => LayerType::LayerNorm,
            LayerKind::GroupNorm(_) => LayerType::GroupNorm,
            LayerKind::Embedding(_) => LayerType::Embedding,
            LayerKind::Dropout { .. } => LayerType::Dropout,
            LayerKind::Dropout1d { .. } => LayerType::Dropout1d,
            LayerKind::Dropout2d { .. } => LayerType::Dropout2d,
            LayerKind::Activation(a) => a.layer_type(),
            LayerKind::Prelu { .. } => LayerType::Prelu,
            LayerKind::Sequential(_) => LayerType::Sequential,
            LayerKind::Residual { .. } => LayerType::Residual,
            LayerKind::Combine(c) => c.layer_type(),
        }
    }
}

impl Combinator {
    /// This combinator's entry in the vocabulary.
    pub fn layer_type(&self) -> LayerType {
        match self {
            Combinator::Add => LayerType::Add,
            Combinator::Sub => LayerType::Sub,
            Combinator::Mul => LayerType::Mul,
            Combinator::Concat { .. } => LayerType::Concat,
            Combinator::Mean(_) => LayerType::Mean,
            Combinator::Sum(_) => LayerType::Sum,
            Combinator::Reshape { .. } => LayerType::Reshape,
        }
    }

    /// How many inputs it takes: at least `.0`, at most `.1`.
    pub fn arity(&self) -> (usize, Option<usize>) {
        match self {
            Combinator::Add | Combinator::Mul | Combinator::Concat { .. } => (2, None),
            Combinator::Sub => (2, Some(2)),
            Combinator::Mean(_) | Combinator::Sum(_) | Combinator::Reshape { .. } => (1, Some(1)),
        }
    }
}

impl Activation {
    /// This activation's entry in the vocabulary.
    pub fn layer_type(&self) -> LayerType {
        match self {
            Activation::Identity => LayerType::Identity,
            Activation::LeakyRelu { .. } => LayerType::LeakyRelu,
            Activation::Elu { .. } => LayerType::Elu,
            Activation::Selu => LayerType::Selu,
            Activation::Celu { .. } => LayerType::Celu,
            Activation::Gelu { .. } => LayerType::Gelu,
            Activation::Silu => LayerType::Silu,
            Activation::Mish => LayerType::Mish,
            Activation::Softplus { .. } => LayerType::Softplus,
            Activation::Hardtanh { .. } => LayerType::Hardtanh,
            Activation::Relu6 => LayerType::Relu6,
            Activation::Hardsigmoid => LayerType::Hardsigmoid,
            Activation::Hardswish => LayerType::Hardswish,
            Activation::LogSigmoid => LayerType::LogSigmoid,
            Activation::Softsign => LayerType::Softsign,
            Activation::Tanhshrink => LayerType::Tanhshrink,
        }
    }
}

/// The keys of the activations as read; defaults are PyTorch's.
struct ActivationArgs {
    negative_slope: f64,
    alpha: f64,
    approximate: GeluApproximate,
    beta: f64,
    threshold: f64,
    min_val: f64,
    max_val: f64,
    num_parameters: usize,
    init: f64,
    /// `max_val` or `min_val`, whichever was written last: where a bad pair is shown.
    bound_key: &'static str,
}

impl Default for ActivationArgs {
    fn default() -> Self {
        ActivationArgs {
            negative_slope: 0.01,
            alpha: 1.0,
            approximate: GeluApproximate::None,
            beta: 1.0,
            threshold: 20.0,
            min_val: -1.0,
            max_val: 1.0,
            num_parameters: 1,
            init: 0.25,
            bound_key: "max_val",
        }
    }
}

/// Where a layer mapping sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// In a list of layers (`model.layers`, a block's `layers` or `shortcut`), at this index.
    Chain(usize),
    /// In `model.nodes`.
    Graph,
}

/// A list of layers (`model.layers`, a block's `layers` and `shortcut`): non-empty, names
/// unique within it.
pub(crate) struct LayerListNode<'a> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// `model.layers`, `model.layers[2].layers`.
    pub(crate) path: Path,
}

impl<'de> Node<'de> for LayerListNode<'_> {
    type Out = Vec<LayerSpec>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a non-empty list of layers such as {type: linear, out: 16}".into()
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<LayerSpec>, A::Error> {
        let layers = read_layers(self.ctx, &self.path, seq, Place::Chain)?;
        let layers = layers.into_iter().map(|(layer, _)| layer).collect();
        self.non_empty(layers)
    }
}

/// Every mapping of a list of layers or nodes, the one at index `i` in `place(i)`, names
/// checked against those before it.
fn read_layers<'de, A: SeqAccess<'de>>(
    ctx: &Ctx,
    path: &Path,
    mut seq: A,
    place: impl Fn(usize) -> Place,
) -> Result<Vec<WrittenNode>, A::Error> {
    let mut out = Vec::new();
    let mut names = Vec::new();
    loop {
        let node = LayerNode {
            ctx,
            path: path.index(out.len()),
            place: place(out.len()),
            names: &mut names,
        };
        match seq.next_element_seed(Seed(node))? {
            Some(written) => out.push(written),
            None => return Ok(out),
        }
    }
}

/// The keys of `layer_norm`, `group_norm` and `embedding` as read (the ones they share with
/// batch norm and linear, `eps`, `affine` and `bias`, are read there).
struct NormalizationArgs {
    normalized_shape: Option<Vec<usize>>,
    elementwise_affine: bool,
    num_groups: Option<usize>,
    num_embeddings: Option<usize>,
    embedding_dim: Option<usize>,
    padding_idx: Option<i64>,
}

impl Default for NormalizationArgs {
    fn default() -> Self {
        NormalizationArgs {
            normalized_shape: None,
            elementwise_affine: true,
            num_groups: None,
            num_embeddings: None,
            embedding_dim: None,
            padding_idx: None,
        }
    }
}

impl NormalizationArgs {
    /// `nn.Embedding`'s arguments, with `padding_idx` resolved as its constructor does: a
    /// negative index counts from the end, and either must name a row.
    fn embedding<E: serde::de::Error>(&self, keys: &Keys<'_>) -> Result<EmbeddingSpec, E> {
        let num_embeddings = self
            .num_embeddings
            .ok_or_else(|| keys.missing("num_embeddings"))?;
        let embedding_dim = self
            .embedding_dim
            .ok_or_else(|| keys.missing("embedding_dim"))?;
        let padding_idx = match self.padding_idx {
            None => None,
            Some(p) => {
                let rows = i64::try_from(num_embeddings).ok();
                let resolved = rows
                    .and_then(|n| if p < 0 { p.checked_add(n) } else { Some(p) })
                    .filter(|&r| r >= 0 && rows.is_some_and(|n| r < n));
                match resolved {
                    Some(r) => {
                        Some(usize::try_from(r).expect("a row index is below num_embeddings"))
                    }
                    None => {
                        // PyTorch: "Padding_idx must be within num_embeddings".
                        let message = format!(
                            "padding_idx {p} must be within num_embeddings {num_embeddings}: in [-{num_embeddings}, {num_embeddings})"
                        );
                        return Err(at_key(keys, "padding_idx", message));
                    }
                }
            }
        };
        Ok(EmbeddingSpec {
            num_embeddings,
            embedding_dim,
            padding_idx,
        })
    }
}

/// One layer or node mapping; `names` holds the names of those before it in its list.
pub(crate) struct LayerNode<'a, 'n> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// `model.layers[INDEX]`, `model.nodes[INDEX]`.
    pub(crate) path: Path,
    /// Where it sits.
    pub(crate) place: Place,
    /// Names given to earlier layers of its list (for uniqueness).
    pub(crate) names: &'n mut Vec<String>,
}

impl<'de> Node<'de> for LayerNode<'_, '_> {
    /// The layer, and the `inputs` written (only in `model.nodes`).
    type Out = (LayerSpec, Option<Vec<String>>);
    ctx_and_path!();
    fn expected(&self) -> String {
        LAYER_TYPES.expected()
    }
    fn map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<(LayerSpec, Option<Vec<String>>), A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::tagged(ctx, &self.path, &UNION_KEYS);
        // `inputs` is read in any type's mapping: valid in model.nodes, an error of its own in
        // a list of layers.
        keys.also(&["inputs"]);
        let mut kind = None;
        let (mut name, mut out, mut bias, mut dim) = (None, None, true, None);
        let (mut inputs, mut block, mut shortcut) = (None, None, None);
        let (mut keepdim, mut shape) = (false, None);
        let mut args = SpatialArgs::default();
        let mut norm = BatchNormSpec {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        };
        let mut p = 0.5;
        let mut declared_input = None;
        let mut act = ActivationArgs::default();
        let mut normalization = NormalizationArgs::default();
        let (mut init, mut requires_grad) = (None, true);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "type" => {
                    let t = keys.read_type(&mut map, &LAYER_TYPES, &k.written)?;
                    keys.set_type(t.key_table(), t.name())?;
                    let combines = matches!(
                        t,
                        LayerType::Add | LayerType::Sub | LayerType::Mul | LayerType::Concat
                    );
                    if combines && matches!(self.place, Place::Chain(_)) {
                        let message = format!(
                            "{}.{}: `{}` combines the outputs of several nodes, so it is a node of model.nodes, not a layer of a list",
                            self.path, k.written, t.name()
                        );
                        return Err(keys.fail_at_key(&k.written, message));
                    }
                    kind = Some(t);
                }
                "name" => {
                    let taken: &[String] = self.names;
                    let place = self.place;
                    let expected = match place {
                        Place::Chain(_) => "a layer name (a string without dots)",
                        Place::Graph => "a node name (a string)",
                    };
                    let conv = |raw: &Raw| check_name(raw, taken, place);
                    let n = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                    self.names.push(n.clone());
                    name = Some(n);
                }
                "inputs" => {
                    if let Place::Chain(_) = self.place {
                        let message = format!(
                            "{path}: `inputs` is only valid in model.nodes; in a list of layers each layer reads the one before it"
                        );
                        return Err(keys.fail_at_key(&k.written, message));
                    }
                    let elem = "a node name (or `input`, the model's input)";
                    inputs = Some(map.next_value_seed(one_or_list(ctx, path, elem, to_name))?);
                }
                "layers" => {
                    block = Some(map.next_value_seed(Seed(LayerListNode { ctx, path }))?);
                }
                "shortcut" => {
                    shortcut = Some(map.next_value_seed(Seed(LayerListNode { ctx, path }))?);
                }
                "keepdim" => {
                    keepdim = map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?;
                }
                "shape" => {
                    let expected = "a non-empty list of positive integers, at most one -1";
                    let elem = "a positive integer or -1";
                    let conv = |raw: &Raw| valid_if(to_i64(raw)?, |d| d > 0 || d == -1);
                    let seed = list(ctx, path, expected, elem, conv).seed();
                    shape = map.next_value_seed(seed)?;
                }
                "out" => {
                    let expected = "a positive integer (output features)";
                    out = Some(map.next_value_seed(scalar(
                        ctx,
                        path,
                        expected,
                        to_positive_usize,
                    ))?);
                }
                "bias" => bias = map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?,
                "dim" => {
                    dim = Some(map.next_value_seed(one_or_list(ctx, path, "an integer", to_i64))?)
                }
                "kernel_size" => args.kernel_size = Some(map.next_value_seed(sizes(ctx, path))?),
                "stride" => args.stride = Some(map.next_value_seed(sizes(ctx, path))?),
                "dilation" => args.dilation = Some(map.next_value_seed(sizes(ctx, path))?),
                "padding" => {
                    let elem = "a non-negative integer";
                    let words = &["same", "valid"];
                    args.padding =
                        Some(map.next_value_seed(axes(ctx, path, elem, words, to_usize))?);
                }
                "output_size" => {
                    let elem = "a positive integer (or null: the input's size)";
                    let conv = |raw: &Raw| match raw {
                        Raw::Null => Ok(None),
                        _ => to_positive_usize(raw).map(Some),
                    };
                    args.output_size =
                        Some(map.next_value_seed(axes(ctx, path, elem, &[], conv))?);
                }
                "in_features" | "in_channels" | "num_features" | "num_channels" => {
                    let expected = "a positive integer (checked against the inferred size)";
                    let seed = scalar(ctx, path, expected, to_positive_usize);
                    declared_input = Some(map.next_value_seed(seed)?);
                }
                "out_channels" => {
                    let expected = "a positive integer (output channels)";
                    let seed = scalar(ctx, path, expected, to_positive_usize);
                    args.out_channels = Some(map.next_value_seed(seed)?);
                }
                "groups" => {
                    let seed = scalar(ctx, path, "a positive integer", to_positive_usize);
                    args.groups = map.next_value_seed(seed)?;
                }
                "padding_mode" => {
                    let conv = |raw: &Raw| match raw {
                        Raw::Str(s) if s == "zeros" => Ok(()),
                        Raw::Str(s)
                            if ["reflect", "replicate", "circular"].contains(&s.as_str()) =>
                        {
                            Err(Problem::Msg(format!(
                                "padding_mode `{s}` is not supported; only `zeros` (the default) is"
                            )))
                        }
                        Raw::Str(_) => Err(Problem::Value),
                        _ => Err(Problem::Type),
                    };
                    let expected = "`zeros` (the only padding mode supported)";
                    map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "ceil_mode" => {
                    args.ceil_mode =
                        map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?;
                }
                "count_include_pad" => {
                    let seed = scalar(ctx, path, "a boolean", to_bool);
                    args.count_include_pad = map.next_value_seed(seed)?;
                }
                "divisor_override" => {
                    let expected = "a positive integer or null";
                    let conv = |raw: &Raw| match raw {
                        Raw::Null => Ok(None),
                        _ => to_positive_usize(raw).map(Some),
                    };
                    args.divisor_override =
                        map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "start_dim" => {
                    args.start_dim =
                        map.next_value_seed(scalar(ctx, path, "an integer", to_i64))?;
                }
                "end_dim" => {
                    args.end_dim = map.next_value_seed(scalar(ctx, path, "an integer", to_i64))?;
                }
                "eps" => {
                    let expected = "a finite number >= 0";
                    norm.eps = map.next_value_seed(scalar(ctx, path, expected, to_nonneg_f64))?;
                }
                "momentum" => {
                    let expected = "a finite number, or null (the cumulative average)";
                    let conv = |raw: &Raw| match raw {
                        Raw::Null => Ok(None),
                        _ => to_f64(raw).map(Some),
                    };
                    norm.momentum = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "affine" => {
                    norm.affine = map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?;
                }
                "track_running_stats" => {
                    let seed = scalar(ctx, path, "a boolean", to_bool);
                    norm.track_running_stats = map.next_value_seed(seed)?;
                }
                "normalized_shape" => {
                    let expected = "a positive integer or a non-empty list of them (the trailing axes normalised over)";
                    let seed = list(ctx, path, expected, "a positive integer", to_positive_usize);
                    normalization.normalized_shape =
                        map.next_value_seed(seed.or_scalar().seed())?;
                }
                "elementwise_affine" => {
                    let seed = scalar(ctx, path, "a boolean", to_bool);
                    normalization.elementwise_affine = map.next_value_seed(seed)?;
                }
                "num_groups" => {
                    let expected = "a positive integer (dividing the input's channels)";
                    let seed = scalar(ctx, path, expected, to_positive_usize);
                    normalization.num_groups = Some(map.next_value_seed(seed)?);
                }
                "num_embeddings" => {
                    let expected = "a positive integer (the number of rows)";
                    let seed = scalar(ctx, path, expected, to_positive_usize);
                    normalization.num_embeddings = Some(map.next_value_seed(seed)?);
                }
                "embedding_dim" => {
                    let expected = "a positive integer (the size of each row)";
                    let seed = scalar(ctx, path, expected, to_positive_usize);
                    normalization.embedding_dim = Some(map.next_value_seed(seed)?);
                }
                "padding_idx" => {
                    let expected = "an integer (a row index, negative from the end) or null";
                    let conv = |raw: &Raw| match raw {
                        Raw::Null => Ok(None),
                        _ => to_i64(raw).map(Some),
                    };
                    normalization.padding_idx =
                        map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "p" => {
                    // PyTorch's constructor: "dropout probability has to be between 0 and 1".
                    let expected = "a probability between 0 and 1";
                    let conv = |raw: &Raw| valid_if(to_f64(raw)?, |p| (0.0..=1.0).contains(&p));
                    p = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "negative_slope" => {
                    act.negative_slope =
                        map.next_value_seed(scalar(ctx, path, "a finite number", to_f64))?;
                }
                "alpha" => {
                    act.alpha =
                        map.next_value_seed(scalar(ctx, path, "a finite number", to_f64))?;
                }
                "approximate" => {
                    let conv = |raw: &Raw| match raw {
                        Raw::Str(s) if s == "none" => Ok(GeluApproximate::None),
                        Raw::Str(s) if s == "tanh" => Ok(GeluApproximate::Tanh),
                        Raw::Str(_) => Err(Problem::Value),
                        _ => Err(Problem::Type),
                    };
                    let expected = "`none` or `tanh`";
                    act.approximate = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "beta" => {
                    // softplus divides by beta: PyTorch's result would be inf or NaN.
                    let expected = "a finite number other than 0";
                    let conv = |raw: &Raw| valid_if(to_f64(raw)?, |b| b != 0.0);
                    act.beta = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "threshold" => {
                    act.threshold =
                        map.next_value_seed(scalar(ctx, path, "a finite number", to_f64))?;
                }
                "min_val" => {
                    act.bound_key = "min_val";
                    act.min_val =
                        map.next_value_seed(scalar(ctx, path, "a finite number", to_f64))?;
                }
                "max_val" => {
                    act.bound_key = "max_val";
                    act.max_val =
                        map.next_value_seed(scalar(ctx, path, "a finite number", to_f64))?;
                }
                "num_parameters" => {
                    let expected = "a positive integer (1, or the input's channels)";
                    let seed = scalar(ctx, path, expected, to_positive_usize);
                    act.num_parameters = map.next_value_seed(seed)?;
                }
                "init" => {
                    let value = map.next_value_seed(Seed(InitKeyNode { ctx, path }))?;
                    init = Some(value);
                }
                "requires_grad" => {
                    requires_grad = map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(t) = kind else {
            return Err(LAYER_TYPES.missing(&keys));
        };
        if let (Place::Graph, None) = (self.place, &name) {
            return Err(keys.missing("name"));
        }
        // `dim` of softmax, log_softmax and concat: one integer.
        let one_dim = |default: i64| match dim.as_deref() {
            None => Ok(default),
            Some(&[d]) => Ok(d),
            Some(_) => Err(at_key(
                &keys,
                "dim",
                format!("{} takes one dim, an integer", t.name()),
            )),
        };
        let reduce = || match &dim {
            Some(dim) => Ok(Reduce {
                dim: dim.clone(),
                keepdim,
            }),
            None => Err(keys.missing("dim")),
        };
        let init = match init {
            None => LayerInit::default(),
            Some(InitValue::Schemes(schemes)) => schemes,
            // nn.PReLU's own `init`: every slope's initial value.
            Some(InitValue::Number(value)) if t == LayerType::Prelu => {
                act.init = value;
                LayerInit::default()
            }
            Some(InitValue::Number(_)) => {
                let message = "a number is prelu's init; this layer takes a mapping {weight: INIT, bias: INIT} such as {weight: {type: kaiming_normal}}".to_owned();
                return Err(at_key(&keys, "init", message));
            }
        };
        let kind = match t {
            LayerType::Linear => LayerKind::Linear {
                out: out.ok_or_else(|| keys.missing("out"))?,
                bias,
            },
            LayerType::Relu => LayerKind::Relu,
            LayerType::Sigmoid => LayerKind::Sigmoid,
            LayerType::Tanh => LayerKind::Tanh,
            LayerType::Softmax => LayerKind::Softmax { dim: one_dim(-1)? },
            LayerType::LogSoftmax => LayerKind::LogSoftmax { dim: one_dim(-1)? },
            LayerType::Conv1d => LayerKind::Conv1d(args.conv(&keys, t, 1, bias)?),
            LayerType::Conv2d => LayerKind::Conv2d(args.conv(&keys, t, 2, bias)?),
            LayerType::MaxPool1d => LayerKind::MaxPool1d(args.max_pool(&keys, t, 1)?),
            LayerType::MaxPool2d => LayerKind::MaxPool2d(args.max_pool(&keys, t, 2)?),
            LayerType::AvgPool1d => LayerKind::AvgPool1d(args.avg_pool(&keys, t, 1)?),
            LayerType::AvgPool2d => LayerKind::AvgPool2d(args.avg_pool(&keys, t, 2)?),
            LayerType::AdaptiveAvgPool1d => LayerKind::AdaptiveAvgPool1d {
                output_size: args.output_size(&keys, t, 1)?,
            },
            LayerType::AdaptiveAvgPool2d => LayerKind::AdaptiveAvgPool2d {
                output_size: args.output_size(&keys, t, 2)?,
            },
            LayerType::AdaptiveMaxPool2d => LayerKind::AdaptiveMaxPool2d {
                output_size: args.output_size(&keys, t, 2)?,
            },
            LayerType::Flatten => LayerKind::Flatten {
                start_dim: args.start_dim,
                end_dim: args.end_dim,
            },
            LayerType::BatchNorm1d => LayerKind::BatchNorm1d(norm),
            LayerType::BatchNorm2d => LayerKind::BatchNorm2d(norm),
            LayerType::LayerNorm => LayerKind::LayerNorm(LayerNormSpec {
                normalized_shape: normalization.normalized_shape,
                eps: norm.eps,
                elementwise_affine: normalization.elementwise_affine,
                bias,
            }),
            LayerType::GroupNorm => LayerKind::GroupNorm(GroupNormSpec {
                num_groups: normalization
                    .num_groups
                    .ok_or_else(|| keys.missing("num_groups"))?,
                eps: norm.eps,
                affine: norm.affine,
            }),
            LayerType::Embedding => LayerKind::Embedding(normalization.embedding(&keys)?),
            LayerType::Dropout => LayerKind::Dropout { p },
            LayerType::Dropout1d => LayerKind::Dropout1d { p },
            LayerType::Dropout2d => LayerKind::Dropout2d { p },
            LayerType::Identity => LayerKind::Activation(Activation::Identity),
            LayerType::LeakyRelu => LayerKind::Activation(Activation::LeakyRelu {
                negative_slope: act.negative_slope,
            }),
            LayerType::Elu => LayerKind::Activation(Activation::Elu { alpha: act.alpha }),
            LayerType::Selu => LayerKind::Activation(Activation::Selu),
            LayerType::Celu => {
                if act.alpha == 0.0 {
                    // PyTorch: "ZeroDivisionError: alpha cannot be 0 for CELU".
                    let message = "alpha must not be 0 (celu divides by it)".to_owned();
                    return Err(at_key(&keys, "alpha", message));
                }
                LayerKind::Activation(Activation::Celu { alpha: act.alpha })
            }
            LayerType::Gelu => LayerKind::Activation(Activation::Gelu {
                approximate: act.approximate,
            }),
            LayerType::Silu => LayerKind::Activation(Activation::Silu),
            LayerType::Mish => LayerKind::Activation(Activation::Mish),
            LayerType::Softplus => LayerKind::Activation(Activation::Softplus {
                beta: act.beta,
                threshold: act.threshold,
            }),
            LayerType::Hardtanh => {
                if act.max_val <= act.min_val {
                    // nn.Hardtanh asserts max_val > min_val.
                    let message = format!(
                        "max_val {} must be greater than min_val {}",
                        act.max_val, act.min_val
                    );
                    return Err(at_key(&keys, act.bound_key, message));
                }
                LayerKind::Activation(Activation::Hardtanh {
                    min_val: act.min_val,
                    max_val: act.max_val,
                })
            }
            LayerType::Relu6 => LayerKind::Activation(Activation::Relu6),
            LayerType::Hardsigmoid => LayerKind::Activation(Activation::Hardsigmoid),
            LayerType::Hardswish => LayerKind::Activation(Activation::Hardswish),
            LayerType::LogSigmoid => LayerKind::Activation(Activation::LogSigmoid),
            LayerType::Softsign => LayerKind::Activation(Activation::Softsign),
            LayerType::Tanhshrink => LayerKind::Activation(Activation::Tanhshrink),
            LayerType::Prelu => LayerKind::Prelu {
                num_parameters: act.num_parameters,
                init: act.init,
            },
            LayerType::Sequential => {
                LayerKind::Sequential(block.ok_or_else(|| keys.missing("layers"))?)
            }
            LayerType::Residual => LayerKind::Residual {
                body: block.ok_or_else(|| keys.missing("layers"))?,
                shortcut,
            },
            LayerType::Add => LayerKind::Combine(Combinator::Add),
            LayerType::Sub => LayerKind::Combine(Combinator::Sub),
            LayerType::Mul => LayerKind::Combine(Combinator::Mul),
            LayerType::Concat => LayerKind::Combine(Combinator::Concat { dim: one_dim(1)? }),
            LayerType::Mean => LayerKind::Combine(Combinator::Mean(reduce()?)),
            LayerType::Sum => LayerKind::Combine(Combinator::Sum(reduce()?)),
            LayerType::Reshape => {
                let shape = shape.ok_or_else(|| keys.missing("shape"))?;
                if shape.iter().filter(|&&d| d == -1).count() > 1 {
                    let message = "at most one size may be -1 (inferred)".to_owned();
                    return Err(at_key(&keys, "shape", message));
                }
                LayerKind::Combine(Combinator::Reshape { shape })
            }
        };
        let layer = LayerSpec {
            name,
            kind,
            declared_input,
            init,
            requires_grad,
        };
        Ok((layer, inputs))
    }
}

/// A node name or `input`, as written.
fn to_name(raw: &Raw) -> Result<String, Problem> {
    match raw {
        Raw::Str(s) => Ok(s.clone()),
        _ => Err(Problem::Type),
    }
}

/// A layer name: non-empty, unique, and in a list of layers without dots and not a number
/// that is another layer's index; a node name may hold dots between non-empty parts
/// (`layer1.0.conv1`) and is not `input`.
fn check_name(raw: &Raw, taken: &[String], place: Place) -> Result<String, Problem> {
    let Raw::Str(s) = raw else {
        return Err(Problem::Type);
    };
    if s.is_empty() {
        return Err(Problem::Msg("a layer name must not be empty".into()));
    }
    let index = match place {
        Place::Chain(index) => index,
        Place::Graph => {
            if s.split('.').any(str::is_empty) {
                return Err(Problem::Msg(format!(
                    "node name `{}` has an empty part between dots; parameter names are NAME.weight",
                    shown(s)
                )));
            }
            if s == "input" {
                return Err(Problem::Msg(
                    "`input` names the model's input in `inputs`; choose another node name".into(),
                ));
            }
            if taken.iter().any(|t| t == s) {
                return Err(Problem::Msg(format!(
                    "duplicate node name `{}`; names must be unique across nodes",
                    shown(s)
                )));
            }
            return Ok(s.clone());
        }
    };
    if s.contains('.') {
        return Err(Problem::Msg(format!(
            "layer name `{}` contains a dot; parameter names are NAME.weight, so names cannot",
            shown(s)
        )));
    }
    if taken.iter().any(|t| t == s) {
        return Err(Problem::Msg(format!(
            "duplicate layer name `{}`; names must be unique across layers",
            shown(s)
        )));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) && *s != index.to_string() {
        return Err(Problem::Msg(format!(
            "layer name `{}` is a number other than this layer's index ({index}); it could \
             clash with the index-based parameter names of unnamed layers",
            shown(s)
        )));
    }
    Ok(s.clone())
}

/// The reader of a positive size per spatial axis.
type SizesSeed<'a> =
    crate::node::Seed<crate::axes::AxesNode<'a, fn(&Raw) -> Result<usize, Problem>>>;

/// A positive size per spatial axis (`kernel_size`, `stride`, `dilation`).
fn sizes(ctx: &Ctx, path: Path) -> SizesSeed<'_> {
    axes(ctx, path, "a positive integer", &[], to_positive_usize)
}

/// A non-negative integer that fits in `usize`.
fn to_usize(raw: &Raw) -> Result<usize, Problem> {
    usize::try_from(to_u64(raw)?).map_err(|_| Problem::Value)
}

/// The keys of convolutions, poolings and `flatten` as read, resolved once the type (and with
/// it the number of spatial axes) is known. Defaults are PyTorch's.
struct SpatialArgs {
    out_channels: Option<usize>,
    kernel_size: Option<Axes<usize>>,
    stride: Option<Axes<usize>>,
    padding: Option<Axes<usize>>,
    dilation: Option<Axes<usize>>,
    groups: usize,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<usize>,
    output_size: Option<Axes<Option<usize>>>,
    start_dim: i64,
    end_dim: i64,
}

impl Default for SpatialArgs {
    fn default() -> Self {
        SpatialArgs {
            out_channels: None,
            kernel_size: None,
            stride: None,
            padding: None,
            dilation: None,
            groups: 1,
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
            output_size: None,
            start_dim: 1,
            end_dim: -1,
        }
    }
}

/// An error at key `key` of the layer: `model.layers[i].key: message`.
fn at_key<E: serde::de::Error>(keys: &Keys<'_>, key: &str, message: String) -> E {
    keys.fail_at_key(key, format!("{}.{key}: {message}", keys.path()))
}

impl SpatialArgs {
    /// `key`'s value per axis, or `default` when it is absent.
    fn sizes<E: serde::de::Error>(
        keys: &Keys<'_>,
        t: LayerType,
        key: &str,
        value: &Option<Axes<usize>>,
        dims: usize,
        default: Option<&[usize]>,
    ) -> Result<Vec<usize>, E> {
        match (value, default) {
            (None | Some(Axes::Null), Some(d)) => Ok(d.to_vec()),
            (None, None) => Err(keys.missing(key)),
            (Some(v), _) => v.per_axis(dims, t.name()).map_err(|m| at_key(keys, key, m)),
        }
    }

    fn kernel<E: serde::de::Error>(
        &self,
        keys: &Keys<'_>,
        t: LayerType,
        dims: usize,
    ) -> Result<Vec<usize>, E> {
        Self::sizes(keys, t, "kernel_size", &self.kernel_size, dims, None)
    }

    /// `nn.Conv1d`/`nn.Conv2d`: PyTorch's constructor checks (groups divide out_channels,
    /// `padding='same'` only with stride 1).
    fn conv<E: serde::de::Error>(
        &self,
        keys: &Keys<'_>,
        t: LayerType,
        dims: usize,
        bias: bool,
    ) -> Result<ConvSpec, E> {
        let out_channels = self
            .out_channels
            .ok_or_else(|| keys.missing("out_channels"))?;
        let kernel_size = self.kernel(keys, t, dims)?;
        let ones = vec![1; dims];
        if matches!(self.stride, Some(Axes::Null)) {
            return Err(at_key(
                keys,
                "stride",
                "null is not valid for a convolution (its default is 1)".into(),
            ));
        }
        let stride = Self::sizes(keys, t, "stride", &self.stride, dims, Some(&ones))?;
        let dilation = Self::sizes(keys, t, "dilation", &self.dilation, dims, Some(&ones))?;
        let padding = match &self.padding {
            None | Some(Axes::Word("valid")) => ConvPadding::Explicit(vec![0; dims]),
            Some(Axes::Word(_)) => {
                if stride.iter().any(|&s| s != 1) {
                    return Err(at_key(
                        keys,
                        "padding",
                        format!("padding `same` is not supported for strided convolutions (stride {stride:?}); PyTorch allows it only with stride 1"),
                    ));
                }
                ConvPadding::Same
            }
            Some(p) => ConvPadding::Explicit(
                p.per_axis(dims, t.name())
                    .map_err(|m| at_key(keys, "padding", m))?,
            ),
        };
        if !out_channels.is_multiple_of(self.groups) {
            return Err(at_key(
                keys,
                "groups",
                format!(
                    "out_channels {out_channels} must be divisible by groups {}",
                    self.groups
                ),
            ));
        }
        Ok(ConvSpec {
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups: self.groups,
            bias,
        })
    }

    /// The padding of a pooling per axis, at most half the kernel (PyTorch's rule).
    fn pool_padding<E: serde::de::Error>(
        &self,
        keys: &Keys<'_>,
        t: LayerType,
        kernel: &[usize],
    ) -> Result<Vec<usize>, E> {
        let zeros = vec![0; kernel.len()];
        let padding = match &self.padding {
            Some(Axes::Word(w)) => {
                return Err(at_key(keys, "padding", format!("`{w}` is only valid for convolutions; {} takes a non-negative integer or a list of them", t.name())));
            }
            p => Self::sizes(keys, t, "padding", p, kernel.len(), Some(&zeros))?,
        };
        for (&p, &k) in padding.iter().zip(kernel) {
            if p > k / 2 {
                return Err(at_key(
                    keys,
                    "padding",
                    format!(
                        "padding {p} must be at most half the kernel size {k} (PyTorch's rule)"
                    ),
                ));
            }
        }
        Ok(padding)
    }

    fn max_pool<E: serde::de::Error>(
        &self,
        keys: &Keys<'_>,
        t: LayerType,
        dims: usize,
    ) -> Result<MaxPoolSpec, E> {
        let kernel_size = self.kernel(keys, t, dims)?;
        let ones = vec![1; dims];
        Ok(MaxPoolSpec {
            stride: Self::sizes(keys, t, "stride", &self.stride, dims, Some(&kernel_size))?,
            padding: self.pool_padding(keys, t, &kernel_size)?,
            dilation: Self::sizes(keys, t, "dilation", &self.dilation, dims, Some(&ones))?,
            ceil_mode: self.ceil_mode,
            kernel_size,
        })
    }

    fn avg_pool<E: serde::de::Error>(
        &self,
        keys: &Keys<'_>,
        t: LayerType,
        dims: usize,
    ) -> Result<AvgPoolSpec, E> {
        let kernel_size = self.kernel(keys, t, dims)?;
        Ok(AvgPoolSpec {
            stride: Self::sizes(keys, t, "stride", &self.stride, dims, Some(&kernel_size))?,
            padding: self.pool_padding(keys, t, &kernel_size)?,
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
            divisor_override: self.divisor_override,
            kernel_size,
        })
    }

    /// `output_size` per axis; `null` (for all axes or one) keeps the input's size, as PyTorch.
    fn output_size<E: serde::de::Error>(
        &self,
        keys: &Keys<'_>,
        t: LayerType,
        dims: usize,
    ) -> Result<Vec<Option<usize>>, E> {
        match &self.output_size {
            None => Err(keys.missing("output_size")),
            Some(Axes::Null) => Ok(vec![None; dims]),
            Some(v) => v
                .per_axis(dims, t.name())
                .map_err(|m| at_key(keys, "output_size", m)),
        }
    }
}

/// `model.nodes` as written: each node and the `inputs` it names (`None`: the one before).
pub(crate) struct NodeListNode<'a> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// `model.nodes`.
    pub(crate) path: Path,
}

/// A node as written: its layer and the names in its `inputs`.
pub(crate) type WrittenNode = (LayerSpec, Option<Vec<String>>);

impl<'de> Node<'de> for NodeListNode<'_> {
    type Out = Vec<WrittenNode>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a non-empty list of nodes such as {name: fc1, type: linear, out: 16}".into()
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<WrittenNode>, A::Error> {
        let nodes = read_layers(self.ctx, &self.path, seq, |_| Place::Graph)?;
        self.non_empty(nodes)
    }
}

/// Resolves the names in `nodes`' inputs and `output` (`model.nodes` at `path`): every input
/// an earlier node or `input`, as many inputs as the node's type takes. An error is the key
/// path to point at and the message.
pub(crate) fn resolve_nodes(
    path: &Path,
    nodes: Vec<WrittenNode>,
    output: Option<(Path, String)>,
) -> Result<NodeGraph, (Path, String)> {
    let names: Vec<&str> = nodes
        .iter()
        .map(|(layer, _)| layer.name.as_deref().expect("nodes are named when read"))
        .collect();
    let unknown = |name: &str| {
        let mut valid = vec!["input"];
        valid.extend(&names);
        let dym = did_you_mean(name, &valid);
        let sep = if dym.is_empty() { ";" } else { "" };
        format!(
            "unknown node `{}`{dym}{sep} valid: {}",
            shown(name),
            valid.join(", ")
        )
    };
    let mut resolved = Vec::with_capacity(nodes.len());
    for (i, (layer, inputs)) in nodes.iter().enumerate() {
        let at = path.index(i).key("inputs");
        let inputs = match inputs {
            None if i == 0 => vec![NodeInput::Model],
            None => vec![NodeInput::Node(i - 1)],
            Some(written) => written
                .iter()
                .map(|name| match names.iter().position(|n| n == name) {
                    _ if name == "input" => Ok(NodeInput::Model),
                    Some(j) if j < i => Ok(NodeInput::Node(j)),
                    Some(j) => Err((at.clone(), later_message(path, &nodes, i, j))),
                    None => Err((at.clone(), format!("{at}: {}", unknown(name)))),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let t = layer.kind.layer_type();
        let (min, max) = match &layer.kind {
            LayerKind::Combine(c) => c.arity(),
            _ => (1, Some(1)),
        };
        let count = inputs.len();
        if count < min || max.is_some_and(|m| count > m) {
            let takes = match (min, max) {
                (1, Some(1)) => "one input".to_owned(),
                (m, Some(n)) if m == n => format!("{m} inputs"),
                (m, _) => format!("{m} or more inputs"),
            };
            let at = path.index(i).key("inputs");
            let message = format!("{at}: `{}` takes {takes}, got {count}", t.name());
            return Err((at, message));
        }
        resolved.push(NodeSpec {
            layer: layer.clone(),
            inputs,
        });
    }
    let output = match output {
        None => resolved.len() - 1,
        Some((at, name)) => names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| (at.clone(), format!("{at}: {}", unknown(&name))))?,
    };
    Ok(NodeGraph {
        nodes: resolved,
        output,
    })
}

/// Node `i` reads node `j`, listed after it: a cycle when `j` reads `i` back (through any
/// chain of inputs), else a use before definition.
fn later_message(path: &Path, nodes: &[WrittenNode], i: usize, j: usize) -> String {
    let name = |k: usize| nodes[k].0.name.as_deref().unwrap_or_default();
    let reads = |k: usize| -> Vec<usize> {
        match &nodes[k].1 {
            None if k == 0 => Vec::new(),
            None => vec![k - 1],
            Some(written) => written
                .iter()
                .filter_map(|w| nodes.iter().position(|n| n.0.name.as_deref() == Some(w)))
                .collect(),
        }
    };
    // Depth-first from j: does it reach i?
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![j];
    let mut cycle = false;
    while let Some(k) = stack.pop() {
        if k == i {
            cycle = true;
            break;
        }
        if !std::mem::replace(&mut seen[k], true) {
            stack.extend(reads(k));
        }
    }
    let at = path.index(i).key("inputs");
    if i == j {
        format!("{at}: node `{}` reads itself", shown(name(i)))
    } else if cycle {
        format!(
            "{at}: nodes `{}` and `{}` form a cycle (`{}` reads `{}`, which depends on `{}`)",
            shown(name(i)),
            shown(name(j)),
            shown(name(i)),
            shown(name(j)),
            shown(name(i))
        )
    } else {
        format!(
            "{at}: node `{}` reads `{}`, which is defined later ({}); list every node after its inputs",
            shown(name(i)),
            shown(name(j)),
            path.index(j)
        )
    }
}
