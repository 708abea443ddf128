//! The daily-path options: `data.standardize` (a boolean or `{std: population | sample}`),
//! `data.split` (a fraction, `{fraction, seed}` or `{file}`) and `train.early_stopping`
//! (PyTorch Lightning's `EarlyStopping` arguments), and the checks that tie them to the rest
//! of the spec (a validation set to monitor, a classification loss for an accuracy).

use std::path::PathBuf;

use serde::de::{IgnoredAny, MapAccess};

use crate::ctx::{Ctx, Path};
use crate::keys::{KeyTable, Keys};
use crate::node::{
    ctx_and_path, scalar, to_bool, to_f32, to_f64, to_nonempty_string, to_u64, valid_if, Node,
    Problem, Raw,
};
use crate::sched::to_choice;
use crate::types::{EarlyStopping, LossSpec, Monitor, PlateauMode, SplitSpec, StdKind, TrainSpec};
use crate::vocab::LossType;

static STANDARDIZE_KEYS: KeyTable = KeyTable::plain(&["std"]);
static SPLIT_KEYS: KeyTable = KeyTable::plain(&["fraction", "seed", "file"]);
static EARLY_STOPPING_KEYS: KeyTable =
    KeyTable::plain(&["monitor", "mode", "patience", "min_delta"]);

/// The choices of `standardize.std`.
const STD_CHOICES: [(&str, StdKind); 2] = [
    ("population", StdKind::Population),
    ("sample", StdKind::Sample),
];

/// `standardize: true | false` or `standardize: {std: population | sample}`.
pub(crate) struct StandardizeNode<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) path: Path,
}

impl<'de> Node<'de> for StandardizeNode<'_> {
    type Out = Option<StdKind>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a boolean, or a mapping {std: population or sample}".into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        Ok(to_bool(raw)?.then_some(StdKind::Population))
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &STANDARDIZE_KEYS);
        let mut std = StdKind::Population;
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "std" => {
                    let expected = "population or sample";
                    let conv = |raw: &Raw| to_choice(raw, &STD_CHOICES);
                    std = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(std))
    }
}

/// A fraction in `(0, 1)`.
fn to_fraction(raw: &Raw) -> Result<f32, Problem> {
    valid_if(to_f32(raw)?, |x| x > 0.0 && x < 1.0)
}

/// `split: FRACTION`, `split: {fraction: FRACTION, seed: N}` or `split: {file: PATH}`.
pub(crate) struct SplitNode<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) path: Path,
}

impl<'de> Node<'de> for SplitNode<'_> {
    type Out = SplitSpec;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a fraction between 0 and 1 (exclusive), e.g. 0.2, or a mapping {fraction: 0.2, seed: N} \
         or {file: split.json}"
            .into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<SplitSpec, Problem> {
        Ok(SplitSpec::Fraction {
            fraction: to_fraction(raw)?,
            seed: None,
        })
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<SplitSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &SPLIT_KEYS);
        let (mut fraction, mut seed, mut file) = (None, None, None);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            let written = k.written.clone();
            match k.name() {
                "fraction" => {
                    let expected = "a fraction between 0 and 1 (exclusive), e.g. 0.2";
                    let v = map.next_value_seed(scalar(ctx, path, expected, to_fraction))?;
                    fraction = Some((v, written));
                }
                "seed" => {
                    let expected = "a non-negative integer";
                    let v = map.next_value_seed(scalar(ctx, path, expected, to_u64))?;
                    seed = Some((v, written));
                }
                "file" => {
                    let expected = "a path to a split.json file";
                    let v = map.next_value_seed(scalar(ctx, path, expected, to_nonempty_string))?;
                    file = Some((PathBuf::from(v), written));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (fraction, seed, file) {
            (Some((fraction, _)), seed, None) => Ok(SplitSpec::Fraction {
                fraction,
                seed: seed.map(|(s, _)| s),
            }),
            (None, None, Some((file, _))) => Ok(SplitSpec::File(file)),
            (_, _, Some((_, written))) => Err(keys.fail_at_key(
                &written,
                format!(
                    "{}.{written}: a split is either drawn ({{fraction, seed}}) or read from a \
                     file ({{file}}), not both; remove `{written}` or the other keys",
                    self.path
                ),
            )),
            (None, _, None) => Err(keys.fail_here(format!(
                "{} needs `fraction` (with an optional `seed`) or `file`, e.g. \
                 {{fraction: 0.2, seed: 3}} or {{file: split.json}}",
                self.path
            ))),
        }
    }
}

/// The choices of `early_stopping.monitor`.
const MONITOR_CHOICES: [(&str, Monitor); 3] = [
    ("valid_loss", Monitor::ValidLoss),
    ("valid_accuracy", Monitor::ValidAccuracy),
    ("train_loss", Monitor::TrainLoss),
];

/// `train.early_stopping: {monitor, mode, patience, min_delta}` (`null` for none).
pub(crate) struct EarlyStoppingNode<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) path: Path,
}

impl<'de> Node<'de> for EarlyStoppingNode<'_> {
    type Out = Option<EarlyStopping>;
    ctx_and_path!();
    fn expected(&self) -> String {
        format!(
            "a mapping with keys {} (monitor: valid_loss, valid_accuracy or train_loss)",
            EARLY_STOPPING_KEYS.listing()
        )
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        match raw {
            Raw::Null => Ok(None),
            _ => Err(Problem::Type),
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &EARLY_STOPPING_KEYS);
        let mut out = EarlyStopping::default();
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "monitor" => {
                    let expected = "valid_loss, valid_accuracy or train_loss";
                    let conv = |raw: &Raw| to_choice(raw, &MONITOR_CHOICES);
                    out.monitor = map.next_value_seed(scalar(ctx, path, expected, conv))?;
                }
                "mode" => {
                    let choices = [("min", PlateauMode::Min), ("max", PlateauMode::Max)];
                    let conv = |raw: &Raw| to_choice(raw, &choices);
                    out.mode = map.next_value_seed(scalar(ctx, path, "min or max", conv))?;
                }
                "patience" => {
                    let expected = "a non-negative integer (epochs without improvement)";
                    out.patience = map.next_value_seed(scalar(ctx, path, expected, to_u64))?;
                }
                "min_delta" => {
                    let expected = "a number (the smallest change that counts as improvement)";
                    out.min_delta = map.next_value_seed(scalar(ctx, path, expected, to_f64))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(out))
    }
}

/// Whether a loss's evaluation has an accuracy: the classification losses, whose outputs are
/// class scores or per-output probabilities.
pub fn has_accuracy(loss: &LossSpec) -> bool {
    match loss.loss_type() {
        Some(
            LossType::CrossEntropy
            | LossType::Nll
            | LossType::MultiMargin
            | LossType::Bce
            | LossType::BceWithLogits
            | LossType::SoftMargin
            | LossType::MultiLabelSoftMargin,
        ) => true,
        Some(
            LossType::Mse
            | LossType::L1
            | LossType::SmoothL1
            | LossType::Huber
            | LossType::KlDiv
            | LossType::PoissonNll,
        )
        | None => false,
    }
}

/// Checks `train.early_stopping` and `train.keep_best` against the rest of the spec: a
/// `valid_*` monitor needs a validation set (`has_valid`), `valid_accuracy` a classification
/// loss. The message and the key path to point at, when they do not fit.
pub(crate) fn check_monitor(
    train: &TrainSpec,
    has_valid: bool,
    loss: &LossSpec,
) -> Option<(Path, String)> {
    let (key, stopping) = match (train.early_stopping, train.keep_best) {
        (Some(s), _) => ("early_stopping", s),
        (None, true) => ("keep_best", EarlyStopping::default()),
        (None, false) => return None,
    };
    let path = Path::default().key("train").key(key);
    let monitor = stopping.monitor.name();
    if stopping.monitor.needs_valid() && !has_valid {
        let what = if key == "keep_best" {
            "keep_best without early_stopping monitors valid_loss, which".to_owned()
        } else {
            format!("monitor {monitor}")
        };
        return Some((
            path.clone(),
            format!(
                "train.{key}: {what} needs a validation set, and the spec has none; add \
                 data.valid or data.split, or monitor train_loss"
            ),
        ));
    }
    if stopping.monitor == Monitor::ValidAccuracy && !has_accuracy(loss) {
        return Some((
            path,
            format!(
                "train.{key}: monitor valid_accuracy needs a classification loss, and {} \
                 has no accuracy; monitor valid_loss or train_loss",
                loss.name()
            ),
        ));
    }
    None
}
