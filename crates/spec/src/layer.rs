//! One entry of `model.layers`: a `type:`-tagged mapping (`linear`, activations, softmaxes).

use serde::de::{IgnoredAny, MapAccess};

use crate::ctx::{shown, Ctx, Path};
use crate::keys::{KeyTable, Keys, TypeTable};
use crate::node::{ctx_and_path, scalar, to_bool, to_i64, to_positive_usize, Node, Problem, Raw};
use crate::types::{LayerKind, LayerSpec};
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
    valid: &["type", "name", "out", "bias"],
    aliases: OUT_ALIAS,
    unsupported: &[],
};
static ACTIVATION_KEYS: KeyTable = KeyTable::plain(&["type", "name"]);
static SOFTMAX_KEYS: KeyTable = KeyTable::plain(&["type", "name", "dim"]);

/// Every layer type's keys, for the keys read before `type:`.
static UNION_KEYS: KeyTable = KeyTable {
    valid: &KeyTable::union::<5>(&[&LINEAR_KEYS, &ACTIVATION_KEYS, &SOFTMAX_KEYS]),
    aliases: OUT_ALIAS,
    unsupported: &[],
};

impl KeyTables for LayerType {
    fn key_table(self) -> &'static KeyTable {
        match self {
            LayerType::Linear => &LINEAR_KEYS,
            LayerType::Softmax | LayerType::LogSoftmax => &SOFTMAX_KEYS,
            LayerType::Relu | LayerType::Sigmoid | LayerType::Tanh => &ACTIVATION_KEYS,
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
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(t) = kind else {
            return Err(LAYER_TYPES.missing(&keys));
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
        };
        Ok(LayerSpec { name, kind })
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
