//! `loss:`: a `type:`-tagged mapping, one type per `torch.nn` loss class, with PyTorch's
//! keyword arguments and defaults, and the class name as an alias (`CrossEntropyLoss`).

use std::path::Path as FilePath;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess};

use crate::ctx::{Ctx, Path};
use crate::error::SpecError;
use crate::keys::{KeyTable, Keys, TypeTable};
use crate::node::{ctx_and_path, list, scalar, to_bool, to_f32, to_i64, to_nonneg_f32};
use crate::node::{valid_if, Node, Problem, Raw, Seed};
use crate::suggest::did_you_mean;
use crate::types::{LossSpec, Reduction};
use crate::vocab::{KeyTables, LossType};

static LOSS_TYPES: TypeTable<LossType> = TypeTable {
    what: "loss",
    example: "a loss mapping such as {type: cross_entropy}",
    say_where: false,
    types: std::marker::PhantomData,
};

impl KeyTables for LossType {
    fn key_table(self) -> &'static KeyTable {
        match self {
            LossType::Mse | LossType::L1 | LossType::SoftMargin => &REDUCTION_ONLY_KEYS,
            LossType::CrossEntropy => &CROSS_ENTROPY_KEYS,
            LossType::Nll => &NLL_KEYS,
            LossType::Bce | LossType::MultiLabelSoftMargin => &WEIGHTED_KEYS,
            LossType::BceWithLogits => &BCE_WITH_LOGITS_KEYS,
            LossType::SmoothL1 => &SMOOTH_L1_KEYS,
            LossType::Huber => &HUBER_KEYS,
            LossType::KlDiv => &KL_DIV_KEYS,
            LossType::PoissonNll => &POISSON_NLL_KEYS,
            LossType::MultiMargin => &MULTI_MARGIN_KEYS,
        }
    }
}

/// PyTorch's deprecated keyword arguments, recognised to point at `reduction`.
const DEPRECATED: &[(&str, &str)] = &[
    (
        "size_average",
        "`size_average` is PyTorch's deprecated form of `reduction` and is not supported; use reduction: mean, sum or none",
    ),
    (
        "reduce",
        "`reduce` is PyTorch's deprecated form of `reduction` and is not supported; use reduction: mean, sum or none",
    ),
];

/// A key table with the deprecated keys recognised.
const fn table(valid: &'static [&'static str]) -> KeyTable {
    KeyTable {
        valid,
        aliases: &[],
        unsupported: DEPRECATED,
    }
}

static UNION_KEYS: KeyTable = table(&[
    "type",
    "weight",
    "pos_weight",
    "ignore_index",
    "reduction",
    "label_smoothing",
    "beta",
    "delta",
    "log_target",
    "log_input",
    "full",
    "eps",
    "p",
    "margin",
]);
static REDUCTION_ONLY_KEYS: KeyTable = table(&["type", "reduction"]);
static CROSS_ENTROPY_KEYS: KeyTable = table(&[
    "type",
    "weight",
    "ignore_index",
    "reduction",
    "label_smoothing",
]);
static NLL_KEYS: KeyTable = table(&["type", "weight", "ignore_index", "reduction"]);
static WEIGHTED_KEYS: KeyTable = table(&["type", "weight", "reduction"]);
static BCE_WITH_LOGITS_KEYS: KeyTable = table(&["type", "weight", "pos_weight", "reduction"]);
static SMOOTH_L1_KEYS: KeyTable = table(&["type", "beta", "reduction"]);
static HUBER_KEYS: KeyTable = table(&["type", "delta", "reduction"]);
static KL_DIV_KEYS: KeyTable = table(&["type", "log_target", "reduction"]);
static POISSON_NLL_KEYS: KeyTable = table(&["type", "log_input", "full", "eps", "reduction"]);
static MULTI_MARGIN_KEYS: KeyTable = table(&["type", "p", "margin", "weight", "reduction"]);

/// Every value a loss mapping can hold, at PyTorch's defaults until read.
struct Values {
    weight: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
    ignore_index: i64,
    reduction: Reduction,
    /// How `reduction:` was spelled, to point at it when `batchmean` does not fit the type.
    reduction_key: Option<String>,
    label_smoothing: f32,
    beta: f32,
    delta: f32,
    log_target: bool,
    log_input: bool,
    full: bool,
    eps: f32,
    p: u32,
    margin: f32,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            weight: None,
            pos_weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            reduction_key: None,
            label_smoothing: 0.0,
            beta: 1.0,
            delta: 1.0,
            log_target: false,
            log_input: true,
            full: false,
            eps: 1e-8,
            p: 1,
            margin: 1.0,
        }
    }
}

/// Parses a loss mapping on its own, checked and reported as the `loss:` of a spec would be
/// (`loss.weight[1]: invalid type ...`), positioned in `text`.
pub(crate) fn parse_loss_str(text: &str, origin: &FilePath) -> Result<LossSpec, SpecError> {
    let text = crate::checked_yaml(text, origin)?;
    let ctx = Ctx::default();
    let node = LossNode {
        ctx: &ctx,
        path: Path::default().key("loss"),
    };
    let result = Seed(node).deserialize(serde_yaml::Deserializer::from_str(text));
    // Paths start at `loss`, which the text itself does not contain.
    result.map_err(|e| crate::spec_error(&e, text, origin, &ctx, 1))
}

/// `loss:`.
pub(crate) struct LossNode<'a> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// `loss`.
    pub(crate) path: Path,
}

impl<'de> Node<'de> for LossNode<'_> {
    type Out = LossSpec;
    ctx_and_path!();
    fn expected(&self) -> String {
        LOSS_TYPES.expected()
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<LossSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::tagged(ctx, &self.path, &UNION_KEYS);
        let mut kind = None;
        let mut v = Values::default();
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "type" => {
                    let t = keys.read_type(&mut map, &LOSS_TYPES, &k.written)?;
                    keys.set_type(t.key_table(), t.name())?;
                    kind = Some(t);
                }
                "weight" | "pos_weight" => {
                    let seed = list(
                        ctx,
                        path,
                        "a non-empty list of numbers (one per class)",
                        "a number",
                        to_f32,
                    );
                    let read = map.next_value_seed(seed.nullable().seed())?;
                    if k.name() == "weight" {
                        v.weight = read;
                    } else {
                        v.pos_weight = read;
                    }
                }
                "ignore_index" => {
                    v.ignore_index = map.next_value_seed(scalar(ctx, path, "an integer", to_i64))?
                }
                "reduction" => {
                    let names = reduction_names(kind);
                    let expected = format!("one of {}", names.1.join(", "));
                    let conv = |raw: &Raw| to_reduction(raw, names);
                    v.reduction = map.next_value_seed(scalar(ctx, path, &expected, conv))?;
                    v.reduction_key = Some(k.written.clone());
                }
                "label_smoothing" => {
                    let expected = "a number in [0, 1]";
                    let conv = |raw: &Raw| valid_if(to_f32(raw)?, |x| (0.0..=1.0).contains(&x));
                    v.label_smoothing = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "beta" => {
                    let expected = "a number >= 0 (0 makes smooth_l1 the l1 loss)";
                    v.beta = map.next_value_seed(scalar(ctx, path, expected, to_nonneg_f32))?;
                }
                "delta" => {
                    let conv = |raw: &Raw| valid_if(to_f32(raw)?, |x| x > 0.0);
                    v.delta = map.next_value_seed(scalar(ctx, path, "a number > 0", conv))?;
                }
                "log_target" | "log_input" | "full" => {
                    let b = map.next_value_seed(scalar(ctx, path, "true or false", to_bool))?;
                    match k.name() {
                        "log_target" => v.log_target = b,
                        "log_input" => v.log_input = b,
                        _ => v.full = b,
                    }
                }
                "eps" => {
                    v.eps =
                        map.next_value_seed(scalar(ctx, path, "a number >= 0", to_nonneg_f32))?;
                }
                "p" => {
                    let conv = |raw: &Raw| match to_i64(raw)? {
                        1 => Ok(1),
                        2 => Ok(2),
                        _ => Err(Problem::Value),
                    };
                    let expected = "1 or 2 (PyTorch supports only these)";
                    v.p = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "margin" => {
                    v.margin = map.next_value_seed(scalar(ctx, path, "a number", to_f32))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(t) = kind else {
            return Err(LOSS_TYPES.missing(&keys));
        };
        if v.reduction == Reduction::BatchMean && t != LossType::KlDiv {
            let written = v.reduction_key.as_deref().unwrap_or("reduction");
            let message = format!(
                "{}: batchmean is only valid for kl_div; expected one of none, sum, mean",
                self.path.key(written)
            );
            return Err(keys.fail_at_key(written, message));
        }
        Ok(build(t, v))
    }
}

/// The typed loss from the values read.
fn build(kind: LossType, v: Values) -> LossSpec {
    let reduction = v.reduction;
    match kind {
        LossType::Mse => LossSpec::Mse { reduction },
        LossType::L1 => LossSpec::L1 { reduction },
        LossType::SmoothL1 => LossSpec::SmoothL1 {
            beta: v.beta,
            reduction,
        },
        LossType::Huber => LossSpec::Huber {
            delta: v.delta,
            reduction,
        },
        LossType::CrossEntropy => LossSpec::CrossEntropy {
            weight: v.weight,
            ignore_index: v.ignore_index,
            reduction,
            label_smoothing: v.label_smoothing,
        },
        LossType::Nll => LossSpec::Nll {
            weight: v.weight,
            ignore_index: v.ignore_index,
            reduction,
        },
        LossType::Bce => LossSpec::Bce {
            weight: v.weight,
            reduction,
        },
        LossType::BceWithLogits => LossSpec::BceWithLogits {
            weight: v.weight,
            pos_weight: v.pos_weight,
            reduction,
        },
        LossType::KlDiv => LossSpec::KlDiv {
            log_target: v.log_target,
            reduction,
        },
        LossType::PoissonNll => LossSpec::PoissonNll {
            log_input: v.log_input,
            full: v.full,
            eps: v.eps,
            reduction,
        },
        LossType::SoftMargin => LossSpec::SoftMargin { reduction },
        LossType::MultiLabelSoftMargin => LossSpec::MultiLabelSoftMargin {
            weight: v.weight,
            reduction,
        },
        LossType::MultiMargin => LossSpec::MultiMargin {
            p: v.p,
            margin: v.margin,
            weight: v.weight,
            reduction,
        },
    }
}

/// The reductions a loss type takes, and those its messages list: `batchmean` is for `kl_div`
/// only, and is accepted while the type is still unknown (then checked once it is read).
fn reduction_names(kind: Option<LossType>) -> (&'static [&'static str], &'static [&'static str]) {
    const ALL: &[&str] = &["none", "sum", "mean", "batchmean"];
    match kind {
        Some(LossType::KlDiv) => (ALL, ALL),
        None => (ALL, &ALL[..3]),
        Some(
            LossType::CrossEntropy
            | LossType::Nll
            | LossType::Bce
            | LossType::BceWithLogits
            | LossType::Mse
            | LossType::L1
            | LossType::SmoothL1
            | LossType::Huber
            | LossType::PoissonNll
            | LossType::SoftMargin
            | LossType::MultiLabelSoftMargin
            | LossType::MultiMargin,
        ) => (&ALL[..3], &ALL[..3]),
    }
}

/// `none` / `sum` / `mean` / `batchmean`, if in `accepted`.
fn to_reduction(raw: &Raw, (accepted, listed): (&[&str], &[&str])) -> Result<Reduction, Problem> {
    let Raw::Str(s) = raw else {
        return Err(Problem::Type);
    };
    let reduction = match s.as_str() {
        "none" => Some(Reduction::None),
        "sum" => Some(Reduction::Sum),
        "mean" => Some(Reduction::Mean),
        "batchmean" => Some(Reduction::BatchMean),
        _ => None,
    };
    match reduction {
        Some(r) if accepted.contains(&s.as_str()) => Ok(r),
        Some(_) => Err(Problem::Msg(format!(
            "batchmean is only valid for kl_div; expected one of {}",
            listed.join(", ")
        ))),
        None => Err(Problem::Msg(format!(
            "invalid value: {}, expected one of {}{}",
            raw.describe(),
            listed.join(", "),
            did_you_mean(s, accepted)
        ))),
    }
}

impl LossSpec {
    /// This loss's entry in the vocabulary; `None` for an objective spec's loss, which a spec
    /// cannot name.
    pub fn loss_type(&self) -> Option<LossType> {
        Some(match self {
            LossSpec::CrossEntropy { .. } => LossType::CrossEntropy,
            LossSpec::Nll { .. } => LossType::Nll,
            LossSpec::Bce { .. } => LossType::Bce,
            LossSpec::BceWithLogits { .. } => LossType::BceWithLogits,
            LossSpec::Mse { .. } => LossType::Mse,
            LossSpec::L1 { .. } => LossType::L1,
            LossSpec::SmoothL1 { .. } => LossType::SmoothL1,
            LossSpec::Huber { .. } => LossType::Huber,
            LossSpec::KlDiv { .. } => LossType::KlDiv,
            LossSpec::PoissonNll { .. } => LossType::PoissonNll,
            LossSpec::SoftMargin { .. } => LossType::SoftMargin,
            LossSpec::MultiLabelSoftMargin { .. } => LossType::MultiLabelSoftMargin,
            LossSpec::MultiMargin { .. } => LossType::MultiMargin,
            LossSpec::Objective { .. } => return None,
        })
    }

    /// Its name in messages: the spec's `type`, or `objective`.
    pub fn name(&self) -> &'static str {
        self.loss_type().map_or("objective", LossType::name)
    }
}
