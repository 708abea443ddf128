//! A layer's `init: {weight: INIT, bias: INIT}`: each INIT a `type:`-tagged mapping naming one
//! of `torch.nn.init`'s schemes with its keyword arguments and PyTorch's defaults and checks.

use serde::de::{IgnoredAny, MapAccess};

use crate::ctx::{shown, Ctx, Path};
use crate::keys::{KeyTable, Keys, TypeTable};
use crate::node::{ctx_and_path, scalar, to_f64, to_nonneg_f64, Node, Problem, Raw, Seed};
use crate::suggest::did_you_mean;
use crate::types::{FanMode, InitScheme, Kaiming, LayerInit, Nonlinearity};
use crate::vocab::{InitType, KeyTables};

static INIT_TYPES: TypeTable<InitType> = TypeTable {
    what: "init",
    example: "an init mapping such as {type: kaiming_normal, nonlinearity: relu}",
    say_where: true,
    types: std::marker::PhantomData,
};

static UNIFORM_KEYS: KeyTable = KeyTable::plain(&["type", "a", "b"]);
static NORMAL_KEYS: KeyTable = KeyTable::plain(&["type", "mean", "std"]);
static TRUNC_NORMAL_KEYS: KeyTable = KeyTable::plain(&["type", "mean", "std", "a", "b"]);
static CONSTANT_KEYS: KeyTable = KeyTable::plain(&["type", "val"]);
static NO_ARGS_KEYS: KeyTable = KeyTable::plain(&["type"]);
static GAIN_KEYS: KeyTable = KeyTable::plain(&["type", "gain"]);
static KAIMING_KEYS: KeyTable = KeyTable::plain(&["type", "a", "mode", "nonlinearity"]);

/// Every scheme's keys, for the keys read before `type:`.
static UNION_KEYS: KeyTable = KeyTable::plain(&KeyTable::union::<9>(&[
    &UNIFORM_KEYS,
    &TRUNC_NORMAL_KEYS,
    &CONSTANT_KEYS,
    &GAIN_KEYS,
    &KAIMING_KEYS,
]));

/// The keys of `init:` itself.
static LAYER_INIT_KEYS: KeyTable = KeyTable::plain(&["weight", "bias"]);

impl KeyTables for InitType {
    fn key_table(self) -> &'static KeyTable {
        match self {
            InitType::Uniform => &UNIFORM_KEYS,
            InitType::Normal => &NORMAL_KEYS,
            InitType::TruncNormal => &TRUNC_NORMAL_KEYS,
            InitType::Constant => &CONSTANT_KEYS,
            InitType::Zeros | InitType::Ones | InitType::Eye => &NO_ARGS_KEYS,
            InitType::XavierUniform | InitType::XavierNormal | InitType::Orthogonal => &GAIN_KEYS,
            InitType::KaimingUniform | InitType::KaimingNormal => &KAIMING_KEYS,
        }
    }
}

impl InitScheme {
    /// This scheme's entry in the vocabulary.
    pub fn init_type(&self) -> InitType {
        match self {
            InitScheme::Uniform { .. } => InitType::Uniform,
            InitScheme::Normal { .. } => InitType::Normal,
            InitScheme::TruncNormal { .. } => InitType::TruncNormal,
            InitScheme::Constant { .. } => InitType::Constant,
            InitScheme::Zeros => InitType::Zeros,
            InitScheme::Ones => InitType::Ones,
            InitScheme::Eye => InitType::Eye,
            InitScheme::XavierUniform { .. } => InitType::XavierUniform,
            InitScheme::XavierNormal { .. } => InitType::XavierNormal,
            InitScheme::KaimingUniform(_) => InitType::KaimingUniform,
            InitScheme::KaimingNormal(_) => InitType::KaimingNormal,
            InitScheme::Orthogonal { .. } => InitType::Orthogonal,
        }
    }
}

/// The value of a layer's `init:` key: the schemes of its tensors, or a number, which only
/// `prelu` takes (`nn.PReLU`'s own `init`, every slope's initial value).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InitValue {
    /// `init: 0.25`.
    Number(f64),
    /// `init: {weight: INIT, bias: INIT}`.
    Schemes(LayerInit),
}

/// A layer's `init:` key.
pub(crate) struct InitKeyNode<'a> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// `model.layers[INDEX].init`.
    pub(crate) path: Path,
}

impl<'de> Node<'de> for InitKeyNode<'_> {
    type Out = InitValue;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a mapping {weight: INIT, bias: INIT}, each INIT a mapping such as \
         {type: kaiming_normal, nonlinearity: relu} (prelu's init may also be a number)"
            .to_owned()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<InitValue, Problem> {
        match raw {
            Raw::Int(_) | Raw::Float(_) | Raw::BigInt(_) => to_f64(raw).map(InitValue::Number),
            _ => Err(Problem::Type),
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<InitValue, A::Error> {
        let mut keys = Keys::new(self.ctx, &self.path, &LAYER_INIT_KEYS);
        let mut init = LayerInit::default();
        while let Some(k) = keys.next(&mut map)? {
            let scheme = map.next_value_seed(Seed(SchemeNode {
                ctx: self.ctx,
                path: self.path.key(&k.written),
            }))?;
            match k.name() {
                "weight" => init.weight = Some(scheme),
                _ => init.bias = Some(scheme),
            }
        }
        Ok(InitValue::Schemes(init))
    }
}

/// One INIT mapping, `{type: SCHEME, ARG: VALUE...}`.
struct SchemeNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

/// The arguments of a scheme as read, PyTorch's defaults until given.
struct SchemeArgs {
    a: Option<f64>,
    b: Option<f64>,
    mean: f64,
    std: f64,
    val: Option<f64>,
    gain: f64,
    mode: FanMode,
    nonlinearity: Nonlinearity,
}

impl<'de> Node<'de> for SchemeNode<'_> {
    type Out = InitScheme;
    ctx_and_path!();
    fn expected(&self) -> String {
        INIT_TYPES.expected()
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<InitScheme, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::tagged(ctx, &self.path, &UNION_KEYS);
        let mut kind = None;
        let mut args = SchemeArgs {
            a: None,
            b: None,
            mean: 0.0,
            std: 1.0,
            val: None,
            gain: 1.0,
            mode: FanMode::FanIn,
            nonlinearity: Nonlinearity::LeakyRelu,
        };
        let number = "a finite number";
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "type" => {
                    let t = keys.read_type(&mut map, &INIT_TYPES, &k.written)?;
                    keys.set_type(t.key_table(), t.name())?;
                    kind = Some(t);
                }
                "a" => args.a = Some(map.next_value_seed(scalar(ctx, path, number, to_f64))?),
                "b" => args.b = Some(map.next_value_seed(scalar(ctx, path, number, to_f64))?),
                "mean" => args.mean = map.next_value_seed(scalar(ctx, path, number, to_f64))?,
                "std" => {
                    let expected = "a finite number >= 0";
                    args.std = map.next_value_seed(scalar(ctx, path, expected, to_nonneg_f64))?;
                }
                "val" => args.val = Some(map.next_value_seed(scalar(ctx, path, number, to_f64))?),
                "gain" => args.gain = map.next_value_seed(scalar(ctx, path, number, to_f64))?,
                "mode" => {
                    let expected = "`fan_in` or `fan_out`";
                    let conv = |raw: &Raw| word(raw, "mode", FanMode::ALL, |m| m.name());
                    args.mode = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "nonlinearity" => {
                    let expected = "a nonlinearity name such as relu";
                    let conv =
                        |raw: &Raw| word(raw, "nonlinearity", Nonlinearity::ALL, |n| n.name());
                    args.nonlinearity = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(t) = kind else {
            return Err(INIT_TYPES.missing(&keys));
        };
        let at_key = |key: &str, message: String| {
            keys.fail_at_key(key, format!("{}.{key}: {message}", keys.path()))
        };
        let kaiming = Kaiming {
            a: args.a.unwrap_or(0.0),
            mode: args.mode,
            nonlinearity: args.nonlinearity,
        };
        Ok(match t {
            InitType::Uniform => {
                let (a, b) = (args.a.unwrap_or(0.0), args.b.unwrap_or(1.0));
                if a > b {
                    // PyTorch's uniform_: "expects to return a [from, to) range".
                    return Err(at_key("b", format!("b {b} must be at least a {a}")));
                }
                InitScheme::Uniform { a, b }
            }
            InitType::Normal => InitScheme::Normal {
                mean: args.mean,
                std: args.std,
            },
            InitType::TruncNormal => {
                let (a, b) = (args.a.unwrap_or(-2.0), args.b.unwrap_or(2.0));
                if args.std == 0.0 {
                    let message = "must be > 0 (trunc_normal divides by it)".to_owned();
                    return Err(at_key("std", message));
                }
                if a >= b {
                    return Err(at_key("b", format!("b {b} must be greater than a {a}")));
                }
                InitScheme::TruncNormal {
                    mean: args.mean,
                    std: args.std,
                    a,
                    b,
                }
            }
            InitType::Constant => InitScheme::Constant {
                val: args.val.ok_or_else(|| keys.missing("val"))?,
            },
            InitType::Zeros => InitScheme::Zeros,
            InitType::Ones => InitScheme::Ones,
            InitType::Eye => InitScheme::Eye,
            InitType::XavierUniform => InitScheme::XavierUniform { gain: args.gain },
            InitType::XavierNormal => InitScheme::XavierNormal { gain: args.gain },
            InitType::KaimingUniform => InitScheme::KaimingUniform(kaiming),
            InitType::KaimingNormal => InitScheme::KaimingNormal(kaiming),
            InitType::Orthogonal => InitScheme::Orthogonal { gain: args.gain },
        })
    }
}

/// One of the words `all` names (a `mode`, a `nonlinearity`), or an error listing them.
fn word<T: Copy>(
    raw: &Raw,
    what: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, Problem> {
    let Raw::Str(s) = raw else {
        return Err(Problem::Type);
    };
    if let Some(&w) = all.iter().find(|&&w| name(w) == s) {
        return Ok(w);
    }
    let names: Vec<&str> = all.iter().map(|&w| name(w)).collect();
    let dym = did_you_mean(s, &names);
    Err(Problem::Msg(format!(
        "unknown {what} `{}`{dym}; valid: {}",
        shown(s),
        names.join(", ")
    )))
}
