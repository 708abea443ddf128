//! One entry of `model.layers`: a `type:`-tagged mapping (`linear`, activations, softmaxes,
//! convolutions, poolings, `flatten`, batch norms, dropouts), with PyTorch's constructor checks on its arguments.

use serde::de::{IgnoredAny, MapAccess};

use crate::axes::{axes, Axes};
use crate::ctx::{shown, Ctx, Path};
use crate::init::{InitKeyNode, InitValue};
use crate::keys::{KeyTable, Keys, TypeTable};
use crate::node::{ctx_and_path, scalar, to_bool, to_f64, to_i64, to_nonneg_f64};
use crate::node::{to_positive_usize, to_u64, valid_if, Node, Problem, Raw, Seed};
use crate::types::LayerInit;
use crate::types::MaxPoolSpec;
use crate::types::{Activation, GeluApproximate};
use crate::types::{AvgPoolSpec, BatchNormSpec, ConvPadding, ConvSpec, LayerKind, LayerSpec};
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
static DROPOUT_KEYS: KeyTable = KeyTable::plain(&["type", "name", "p"]);
static LEAKY_RELU_KEYS: KeyTable = KeyTable::plain(&["type", "name", "negative_slope"]);
static ELU_KEYS: KeyTable = KeyTable::plain(&["type", "name", "alpha"]);
static GELU_KEYS: KeyTable = KeyTable::plain(&["type", "name", "approximate"]);
static SOFTPLUS_KEYS: KeyTable = KeyTable::plain(&["type", "name", "beta", "threshold"]);
static HARDTANH_KEYS: KeyTable = KeyTable::plain(&["type", "name", "min_val", "max_val"]);
static PRELU_KEYS: KeyTable =
    KeyTable::plain(&["type", "name", "num_parameters", "init", "requires_grad"]);

/// Every layer type's keys, for the keys read before `type:`.
static UNION_KEYS: KeyTable = KeyTable {
    valid: &KeyTable::union::<36>(&[
        &LINEAR_KEYS,
        &ACTIVATION_KEYS,
        &SOFTMAX_KEYS,
        &CONV_KEYS,
        &MAX_POOL_KEYS,
        &AVG_POOL2D_KEYS,
        &ADAPTIVE_KEYS,
        &FLATTEN_KEYS,
        &BATCH_NORM_KEYS,
        &DROPOUT_KEYS,
        &LEAKY_RELU_KEYS,
        &ELU_KEYS,
        &GELU_KEYS,
        &SOFTPLUS_KEYS,
        &HARDTANH_KEYS,
        &PRELU_KEYS,
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
            LayerType::Dropout | LayerType::Dropout1d | LayerType::Dropout2d => &DROPOUT_KEYS,
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
            LayerKind::Dropout { .. } => LayerType::Dropout,
            LayerKind::Dropout1d { .. } => LayerType::Dropout1d,
            LayerKind::Dropout2d { .. } => LayerType::Dropout2d,
            LayerKind::Activation(a) => a.layer_type(),
            LayerKind::Prelu { .. } => LayerType::Prelu,
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

/// `model.layers[INDEX]`; `names` holds the names of the layers before it.
pub(crate) struct LayerNode<'a, 'n> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// `model.layers[INDEX]`.
    pub(crate) path: Path,
    /// The layer's index in the list.
    pub(crate) index: usize,
    /// Names given to earlier layers (for uniqueness).
    pub(crate) names: &'n mut Vec<String>,
}

impl<'de> Node<'de> for LayerNode<'_, '_> {
    type Out = LayerSpec;
    ctx_and_path!();
    fn expected(&self) -> String {
        LAYER_TYPES.expected()
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<LayerSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::tagged(ctx, &self.path, &UNION_KEYS);
        let mut kind = None;
        let (mut name, mut out, mut bias, mut dim) = (None, None, true, -1);
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
        let (mut init, mut requires_grad) = (None, true);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "type" => {
                    let t = keys.read_type(&mut map, &LAYER_TYPES, &k.written)?;
                    keys.set_type(t.key_table(), t.name())?;
                    kind = Some(t);
                }
                "name" => {
                    let taken: &[String] = self.names;
                    let index = self.index;
                    let expected = "a layer name (a string without dots)";
                    let conv = |raw: &Raw| check_name(raw, taken, index);
                    let n = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                    self.names.push(n.clone());
                    name = Some(n);
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
                "dim" => dim = map.next_value_seed(scalar(ctx, path, "an integer", to_i64))?,
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
                "in_features" | "in_channels" | "num_features" => {
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
            LayerType::Softmax => LayerKind::Softmax { dim },
            LayerType::LogSoftmax => LayerKind::LogSoftmax { dim },
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
        };
        Ok(LayerSpec {
            name,
            kind,
            declared_input,
            init,
            requires_grad,
        })
    }
}

/// A layer name: non-empty, no dots, unique, and not a number that is another layer's index.
fn check_name(raw: &Raw, taken: &[String], index: usize) -> Result<String, Problem> {
    let Raw::Str(s) = raw else {
        return Err(Problem::Type);
    };
    if s.is_empty() {
        return Err(Problem::Msg("a layer name must not be empty".into()));
    }
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
