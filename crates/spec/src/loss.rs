//! `loss:`: a `type:`-tagged mapping (`mse`, `cross_entropy`, `bce_with_logits`).

use serde::de::{IgnoredAny, MapAccess};

use crate::ctx::{Ctx, Path};
use crate::keys::{KeyTable, Keys, TypeNode, TypeTable};
use crate::node::{list, scalar, to_f32, to_i64, Node, Problem, Raw, Seed};
use crate::suggest::did_you_mean;
use crate::types::{LossSpec, Reduction};

static LOSS_TYPES: TypeTable = TypeTable {
    what: "loss",
    names: &[
        ("mse", "MSELoss"),
        ("cross_entropy", "CrossEntropyLoss"),
        ("bce_with_logits", "BCEWithLogitsLoss"),
    ],
};

static UNION_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "weight",
    "pos_weight",
    "ignore_index",
    "reduction",
    "label_smoothing",
]);
static MSE_KEYS: KeyTable = KeyTable::plain(&["type", "reduction"]);
static CROSS_ENTROPY_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "weight",
    "ignore_index",
    "reduction",
    "label_smoothing",
]);
static BCE_KEYS: KeyTable = KeyTable::plain(&["type", "weight", "pos_weight", "reduction"]);

/// The key table of loss type `index` (an index into `LOSS_TYPES.names`).
fn keys_of(index: usize) -> &'static KeyTable {
    match index {
        0 => &MSE_KEYS,
        1 => &CROSS_ENTROPY_KEYS,
        _ => &BCE_KEYS,
    }
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
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        format!(
            "a loss mapping such as {{type: cross_entropy}}; loss types: {}",
            LOSS_TYPES.listing()
        )
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<LossSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::tagged(ctx, &self.path, &UNION_KEYS);
        let mut kind = None;
        let (mut weight, mut pos_weight) = (None, None);
        let (mut ignore_index, mut reduction, mut label_smoothing) = (-100, Reduction::Mean, 0.0);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "type" => {
                    let node = TypeNode {
                        ctx,
                        path,
                        table: &LOSS_TYPES,
                        location: String::new(),
                    };
                    let t = map.next_value_seed(Seed(node))?;
                    keys.set_type(keys_of(t), LOSS_TYPES.names[t].0)?;
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
                    let v = map.next_value_seed(seed.nullable().seed())?;
                    if k.name() == "weight" {
                        weight = v;
                    } else {
                        pos_weight = v;
                    }
                }
                "ignore_index" => {
                    ignore_index = map.next_value_seed(scalar(ctx, path, "an integer", to_i64))?
                }
                "reduction" => {
                    let expected = "one of none, sum, mean";
                    reduction = map.next_value_seed(scalar(ctx, path, expected, to_reduction))?;
                }
                "label_smoothing" => {
                    let expected = "a number in [0, 1]";
                    let conv = |raw: &Raw| match to_f32(raw)? {
                        x if (0.0..=1.0).contains(&x) => Ok(x),
                        _ => Err(Problem::Value),
                    };
                    label_smoothing = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(t) = kind else {
            return Err(LOSS_TYPES.missing(&keys));
        };
        Ok(match t {
            0 => LossSpec::Mse { reduction },
            1 => LossSpec::CrossEntropy {
                weight,
                ignore_index,
                reduction,
                label_smoothing,
            },
            _ => LossSpec::BceWithLogits {
                weight,
                pos_weight,
                reduction,
            },
        })
    }
}

/// `none` / `sum` / `mean`.
fn to_reduction(raw: &Raw) -> Result<Reduction, Problem> {
    let Raw::Str(s) = raw else {
        return Err(Problem::Type);
    };
    match s.as_str() {
        "none" => Ok(Reduction::None),
        "sum" => Ok(Reduction::Sum),
        "mean" => Ok(Reduction::Mean),
        _ => Err(Problem::Msg(format!(
            "invalid value: {}, expected one of none, sum, mean{}",
            raw.describe(),
            did_you_mean(s, &["none", "sum", "mean"])
        ))),
    }
}
