//! `scheduler:` (a `type:`-tagged `torch.optim.lr_scheduler` class, with `interval`) and the
//! keys of `train:` that shape an update: `accumulate`, `clip_grad_norm`, `clip_grad_value`,
//! `checkpoint_every`.

use serde::de::{IgnoredAny, MapAccess, SeqAccess};

use crate::ctx::{Ctx, Path};
use crate::keys::{KeyTable, Keys, TypeTable};
use crate::node::{ctx_and_path, list, read_seq, scalar, to_bool, to_positive_u64};
use crate::node::{to_f64, to_nonneg_f64, to_positive_usize, to_u64, valid_if, Node, Problem};
use crate::node::{Raw, Seed};
use crate::suggest::did_you_mean;
use crate::types::{
    AnnealStrategy, ClipGradNorm, Interval, PerGroup, PlateauMode, SchedulerKind, SchedulerSpec,
    ThresholdMode,
};
use crate::vocab::{KeyTables, SchedulerType};

static SCHEDULER_TYPES: TypeTable<SchedulerType> = TypeTable {
    what: "scheduler",
    example: "a scheduler mapping such as {type: step_lr, step_size: 30}",
    say_where: false,
    types: std::marker::PhantomData,
};

/// PyTorch spells the cosine arguments with capitals; the lowercase spellings are accepted too.
const T_ALIASES: &[(&str, &str)] = &[("t_max", "T_max"), ("t_0", "T_0"), ("t_mult", "T_mult")];

static STEP_KEYS: KeyTable = KeyTable::plain(&["type", "interval", "step_size", "gamma"]);
static MULTI_STEP_KEYS: KeyTable = KeyTable::plain(&["type", "interval", "milestones", "gamma"]);
static EXPONENTIAL_KEYS: KeyTable = KeyTable::plain(&["type", "interval", "gamma"]);
static COSINE_KEYS: KeyTable = KeyTable {
    valid: &["type", "interval", "T_max", "eta_min"],
    aliases: T_ALIASES,
    unsupported: &[],
};
static RESTARTS_KEYS: KeyTable = KeyTable {
    valid: &["type", "interval", "T_0", "T_mult", "eta_min"],
    aliases: T_ALIASES,
    unsupported: &[],
};
static LINEAR_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "interval",
    "start_factor",
    "end_factor",
    "total_iters",
]);
static CONSTANT_KEYS: KeyTable = KeyTable::plain(&["type", "interval", "factor", "total_iters"]);
static ONE_CYCLE_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "interval",
    "max_lr",
    "total_steps",
    "epochs",
    "steps_per_epoch",
    "pct_start",
    "anneal_strategy",
    "cycle_momentum",
    "base_momentum",
    "max_momentum",
    "div_factor",
    "final_div_factor",
    "three_phase",
]);
static PLATEAU_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "interval",
    "mode",
    "factor",
    "patience",
    "threshold",
    "threshold_mode",
    "cooldown",
    "min_lr",
    "eps",
]);
static SEQUENTIAL_KEYS: KeyTable =
    KeyTable::plain(&["type", "interval", "schedulers", "milestones"]);

impl KeyTables for SchedulerType {
    fn key_table(self) -> &'static KeyTable {
        match self {
            SchedulerType::StepLr => &STEP_KEYS,
            SchedulerType::MultiStepLr => &MULTI_STEP_KEYS,
            SchedulerType::ExponentialLr => &EXPONENTIAL_KEYS,
            SchedulerType::CosineAnnealingLr => &COSINE_KEYS,
            SchedulerType::CosineAnnealingWarmRestarts => &RESTARTS_KEYS,
            SchedulerType::LinearLr => &LINEAR_KEYS,
            SchedulerType::ConstantLr => &CONSTANT_KEYS,
            SchedulerType::OneCycleLr => &ONE_CYCLE_KEYS,
            SchedulerType::ReduceLrOnPlateau => &PLATEAU_KEYS,
            SchedulerType::SequentialLr => &SEQUENTIAL_KEYS,
        }
    }
}

/// The key tables in the order their keys first appear in messages (the union below).
static KEYS_OF: [&KeyTable; 10] = [
    &STEP_KEYS,
    &MULTI_STEP_KEYS,
    &EXPONENTIAL_KEYS,
    &COSINE_KEYS,
    &RESTARTS_KEYS,
    &LINEAR_KEYS,
    &CONSTANT_KEYS,
    &ONE_CYCLE_KEYS,
    &PLATEAU_KEYS,
    &SEQUENTIAL_KEYS,
];

/// Every scheduler type's keys, for the keys read before `type:`.
static UNION_KEYS: KeyTable = KeyTable {
    valid: &KeyTable::union::<33>(&KEYS_OF),
    aliases: T_ALIASES,
    unsupported: &[],
};

/// A finite number `> 0`.
fn to_positive_f64(raw: &Raw) -> Result<f64, Problem> {
    valid_if(to_f64(raw)?, |x| x > 0.0)
}

/// A number in `[0, 1]`.
fn to_unit_f64(raw: &Raw) -> Result<f64, Problem> {
    valid_if(to_f64(raw)?, |x| (0.0..=1.0).contains(&x))
}

/// The value of the word `raw` names among `choices` (`(word, value)`), with a suggestion
/// when misspelled.
pub(crate) fn to_choice<T: Copy>(raw: &Raw, choices: &[(&'static str, T)]) -> Result<T, Problem> {
    let Raw::Str(s) = raw else {
        return Err(Problem::Type);
    };
    let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
    match choices.iter().find(|(w, _)| w == s) {
        Some((_, value)) => Ok(*value),
        None => Err(Problem::Msg(format!(
            "invalid value: {}, expected one of {}{}",
            raw.describe(),
            words.join(", "),
            did_you_mean(s, &words)
        ))),
    }
}

/// Every value a scheduler mapping may hold, as given.
#[derive(Default)]
struct Given {
    interval: Option<(Interval, String)>,
    step_size: Option<u64>,
    gamma: Option<f64>,
    milestones: Option<Vec<u64>>,
    t_max: Option<u64>,
    eta_min: Option<f64>,
    t_0: Option<u64>,
    t_mult: Option<u64>,
    start_factor: Option<f64>,
    end_factor: Option<f64>,
    total_iters: Option<u64>,
    factor: Option<f64>,
    max_lr: Option<PerGroup>,
    total_steps: Option<u64>,
    epochs: Option<u64>,
    steps_per_epoch: Option<u64>,
    pct_start: Option<f64>,
    anneal_strategy: Option<AnnealStrategy>,
    cycle_momentum: Option<bool>,
    base_momentum: Option<PerGroup>,
    max_momentum: Option<PerGroup>,
    div_factor: Option<f64>,
    final_div_factor: Option<f64>,
    three_phase: Option<bool>,
    mode: Option<PlateauMode>,
    patience: Option<u64>,
    threshold: Option<f64>,
    threshold_mode: Option<ThresholdMode>,
    cooldown: Option<u64>,
    min_lr: Option<PerGroup>,
    eps: Option<f64>,
    schedulers: Option<Vec<SchedulerKind>>,
}

/// Reads one scalar key's value with `conv`.
fn read<'de, A: MapAccess<'de>, T>(
    map: &mut A,
    ctx: &Ctx,
    path: Path,
    expected: &str,
    conv: impl FnMut(&Raw) -> Result<T, Problem>,
) -> Result<Option<T>, A::Error> {
    Ok(Some(
        map.next_value_seed(scalar(ctx, path, expected, conv))?,
    ))
}

impl Given {
    /// Reads the value of key `name`; `nested` is true inside `sequential_lr.schedulers`.
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
        keys: &Keys<'_>,
        path: Path,
        name: &str,
        written: &str,
        nested: bool,
    ) -> Result<(), A::Error> {
        let ctx = keys.ctx();
        let count = "a non-negative integer";
        let positive = "a positive integer";
        match name {
            "interval" => {
                if nested {
                    return Err(keys.fail_at_key(
                        written,
                        format!(
                            "{path}: `interval` belongs to the top-level scheduler, not to one \
                             of sequential_lr's schedulers"
                        ),
                    ));
                }
                let conv = |raw: &Raw| {
                    to_choice(raw, &[("epoch", Interval::Epoch), ("step", Interval::Step)])
                };
                let v = map.next_value_seed(scalar(ctx, path, "epoch or step", conv))?;
                self.interval = Some((v, written.to_owned()));
            }
            "step_size" => self.step_size = read(map, ctx, path, positive, to_positive_u64)?,
            "gamma" => self.gamma = read(map, ctx, path, "a number", to_f64)?,
            "milestones" => {
                let node = CountsNode { ctx, path };
                self.milestones = Some(map.next_value_seed(Seed(node))?);
            }
            "T_max" => self.t_max = read(map, ctx, path, positive, to_positive_u64)?,
            "eta_min" => self.eta_min = read(map, ctx, path, "a number", to_f64)?,
            "T_0" => self.t_0 = read(map, ctx, path, positive, to_positive_u64)?,
            "T_mult" => self.t_mult = read(map, ctx, path, "an integer >= 1", to_positive_u64)?,
            "start_factor" => {
                let conv = |raw: &Raw| valid_if(to_f64(raw)?, |x| x > 0.0 && x <= 1.0);
                self.start_factor = read(map, ctx, path, "a number in (0, 1]", conv)?;
            }
            "end_factor" => {
                self.end_factor = read(map, ctx, path, "a number in [0, 1]", to_unit_f64)?
            }
            "total_iters" => self.total_iters = read(map, ctx, path, count, to_u64)?,
            "factor" => self.factor = read(map, ctx, path, "a number", to_f64)?,
            "max_lr" | "base_momentum" | "max_momentum" | "min_lr" => {
                let v = map.next_value_seed(Seed(PerGroupNode { ctx, path }))?;
                match name {
                    "max_lr" => self.max_lr = Some(v),
                    "base_momentum" => self.base_momentum = Some(v),
                    "max_momentum" => self.max_momentum = Some(v),
                    _ => self.min_lr = Some(v),
                }
            }
            "total_steps" => self.total_steps = read(map, ctx, path, positive, to_positive_u64)?,
            "epochs" => self.epochs = read(map, ctx, path, positive, to_positive_u64)?,
            "steps_per_epoch" => {
                self.steps_per_epoch = read(map, ctx, path, positive, to_positive_u64)?
            }
            "pct_start" => {
                self.pct_start = read(map, ctx, path, "a number in [0, 1]", to_unit_f64)?
            }
            "anneal_strategy" => {
                let conv = |raw: &Raw| {
                    to_choice(
                        raw,
                        &[
                            ("cos", AnnealStrategy::Cos),
                            ("linear", AnnealStrategy::Linear),
                        ],
                    )
                };
                self.anneal_strategy = read(map, ctx, path, "cos or linear", conv)?;
            }
            "cycle_momentum" => self.cycle_momentum = read(map, ctx, path, "a boolean", to_bool)?,
            "three_phase" => self.three_phase = read(map, ctx, path, "a boolean", to_bool)?,
            "div_factor" => {
                self.div_factor = read(map, ctx, path, "a number > 0", to_positive_f64)?
            }
            "final_div_factor" => {
                self.final_div_factor = read(map, ctx, path, "a number > 0", to_positive_f64)?
            }
            "mode" => {
                let conv = |raw: &Raw| {
                    to_choice(raw, &[("min", PlateauMode::Min), ("max", PlateauMode::Max)])
                };
                self.mode = read(map, ctx, path, "min or max", conv)?;
            }
            "patience" => self.patience = read(map, ctx, path, count, to_u64)?,
            "threshold" => self.threshold = read(map, ctx, path, "a number", to_f64)?,
            "threshold_mode" => {
                let conv = |raw: &Raw| {
                    to_choice(
                        raw,
                        &[("rel", ThresholdMode::Rel), ("abs", ThresholdMode::Abs)],
                    )
                };
                self.threshold_mode = read(map, ctx, path, "rel or abs", conv)?;
            }
            "cooldown" => self.cooldown = read(map, ctx, path, count, to_u64)?,
            "eps" => self.eps = read(map, ctx, path, "a number >= 0", to_nonneg_f64)?,
            "schedulers" => {
                let node = SchedulersNode { ctx, path };
                self.schedulers = Some(map.next_value_seed(Seed(node))?);
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    /// The scheduler of type `t`, with PyTorch's defaults for what is not given.
    fn build<E: serde::de::Error>(
        self,
        t: SchedulerType,
        keys: &Keys<'_>,
    ) -> Result<SchedulerKind, E> {
        let need = |v: Option<u64>, key: &str| v.ok_or_else(|| keys.missing::<E>(key));
        Ok(match t {
            SchedulerType::StepLr => SchedulerKind::StepLr {
                step_size: need(self.step_size, "step_size")?,
                gamma: self.gamma.unwrap_or(0.1),
            },
            SchedulerType::MultiStepLr => SchedulerKind::MultiStepLr {
                milestones: self.milestones.ok_or_else(|| keys.missing("milestones"))?,
                gamma: self.gamma.unwrap_or(0.1),
            },
            SchedulerType::ExponentialLr => SchedulerKind::ExponentialLr {
                gamma: self.gamma.ok_or_else(|| keys.missing("gamma"))?,
            },
            SchedulerType::CosineAnnealingLr => SchedulerKind::CosineAnnealingLr {
                t_max: need(self.t_max, "T_max")?,
                eta_min: self.eta_min.unwrap_or(0.0),
            },
            SchedulerType::CosineAnnealingWarmRestarts => {
                SchedulerKind::CosineAnnealingWarmRestarts {
                    t_0: need(self.t_0, "T_0")?,
                    t_mult: self.t_mult.unwrap_or(1),
                    eta_min: self.eta_min.unwrap_or(0.0),
                }
            }
            SchedulerType::LinearLr => SchedulerKind::LinearLr {
                start_factor: self.start_factor.unwrap_or(1.0 / 3.0),
                end_factor: self.end_factor.unwrap_or(1.0),
                total_iters: match self.total_iters {
                    Some(0) => {
                        let msg = format!(
                            "{}: total_iters must be a positive integer for linear_lr",
                            keys.what()
                        );
                        return Err(keys.fail_at_key("total_iters", msg));
                    }
                    v => v.unwrap_or(5),
                },
            },
            SchedulerType::ConstantLr => SchedulerKind::ConstantLr {
                factor: match self.factor {
                    Some(f) if !(0.0..=1.0).contains(&f) => {
                        let msg = format!(
                            "{}: constant_lr's factor must be in [0, 1] (here {f:?})",
                            keys.what()
                        );
                        return Err(keys.fail_at_key("factor", msg));
                    }
                    f => f.unwrap_or(1.0 / 3.0),
                },
                total_iters: self.total_iters.unwrap_or(5),
            },
            SchedulerType::OneCycleLr => {
                let total_steps = match (self.total_steps, self.epochs, self.steps_per_epoch) {
                    (Some(t), _, _) => t,
                    (None, Some(e), Some(s)) => e.checked_mul(s).ok_or_else(|| {
                        keys.fail_here::<E>(format!(
                            "{}: epochs * steps_per_epoch is too large",
                            keys.what()
                        ))
                    })?,
                    _ => {
                        return Err(keys.fail_here(format!(
                            "{} needs `total_steps`, or both `epochs` and `steps_per_epoch` \
                             (as torch.optim.lr_scheduler.OneCycleLR)",
                            keys.what()
                        )))
                    }
                };
                SchedulerKind::OneCycleLr {
                    max_lr: self.max_lr.ok_or_else(|| keys.missing("max_lr"))?,
                    total_steps,
                    pct_start: self.pct_start.unwrap_or(0.3),
                    anneal_strategy: self.anneal_strategy.unwrap_or(AnnealStrategy::Cos),
                    cycle_momentum: self.cycle_momentum.unwrap_or(true),
                    base_momentum: self.base_momentum.unwrap_or(PerGroup::All(0.85)),
                    max_momentum: self.max_momentum.unwrap_or(PerGroup::All(0.95)),
                    div_factor: self.div_factor.unwrap_or(25.0),
                    final_div_factor: self.final_div_factor.unwrap_or(1e4),
                    three_phase: self.three_phase.unwrap_or(false),
                }
            }
            SchedulerType::ReduceLrOnPlateau => SchedulerKind::ReduceLrOnPlateau {
                mode: self.mode.unwrap_or(PlateauMode::Min),
                factor: match self.factor {
                    Some(f) if f >= 1.0 => {
                        let msg = format!(
                            "{}: reduce_lr_on_plateau's factor must be < 1.0 (here {f:?})",
                            keys.what()
                        );
                        return Err(keys.fail_at_key("factor", msg));
                    }
                    f => f.unwrap_or(0.1),
                },
                patience: self.patience.unwrap_or(10),
                threshold: self.threshold.unwrap_or(1e-4),
                threshold_mode: self.threshold_mode.unwrap_or(ThresholdMode::Rel),
                cooldown: self.cooldown.unwrap_or(0),
                min_lr: self.min_lr.unwrap_or(PerGroup::All(0.0)),
                eps: self.eps.unwrap_or(1e-8),
            },
            SchedulerType::SequentialLr => {
                let schedulers = self.schedulers.ok_or_else(|| keys.missing("schedulers"))?;
                let milestones = self.milestones.ok_or_else(|| keys.missing("milestones"))?;
                if milestones.len() + 1 != schedulers.len() {
                    let msg = format!(
                        "{}: sequential_lr needs one milestone fewer than schedulers; here {} \
                         schedulers and {} milestones",
                        keys.what(),
                        schedulers.len(),
                        milestones.len()
                    );
                    return Err(keys.fail_at_key("milestones", msg));
                }
                if milestones.windows(2).any(|w| w[0] > w[1]) {
                    let msg = format!(
                        "{}: sequential_lr's milestones must be in increasing order, here {}",
                        keys.what(),
                        crate::shown_list(&milestones)
                    );
                    return Err(keys.fail_at_key("milestones", msg));
                }
                SchedulerKind::SequentialLr {
                    schedulers,
                    milestones,
                }
            }
        })
    }
}

/// `scheduler:` at the top level (`nested: false`) or one of `sequential_lr.schedulers`.
pub(crate) struct SchedulerNode<'a> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// `scheduler` or `scheduler.schedulers[i]`.
    pub(crate) path: Path,
    /// Inside `sequential_lr`: no `interval`, no plateau, no nesting.
    pub(crate) nested: bool,
}

impl<'de> Node<'de> for SchedulerNode<'_> {
    type Out = Option<SchedulerSpec>;
    ctx_and_path!();
    fn expected(&self) -> String {
        SCHEDULER_TYPES.expected()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        match raw {
            Raw::Null if !self.nested => Ok(None),
            _ => Err(Problem::Type),
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::tagged(ctx, &self.path, &UNION_KEYS);
        let mut kind = None;
        let mut given = Given::default();
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            if k.name() == "type" {
                let t = keys.read_type(&mut map, &SCHEDULER_TYPES, &k.written)?;
                if self.nested
                    && matches!(
                        t,
                        SchedulerType::ReduceLrOnPlateau | SchedulerType::SequentialLr
                    )
                {
                    let msg = format!(
                        "{}: sequential_lr cannot hold {} (as in PyTorch); give it epoch- or \
                         step-driven schedulers",
                        self.path,
                        t.name()
                    );
                    return Err(keys.fail_at_key(&k.written, msg));
                }
                keys.set_type(t.key_table(), t.name())?;
                kind = Some(t);
            } else {
                given.read(&mut map, &keys, path, k.name(), &k.written, self.nested)?;
            }
        }
        let Some(t) = kind else {
            return Err(SCHEDULER_TYPES.missing(&keys));
        };
        let default_interval = if t == SchedulerType::OneCycleLr {
            Interval::Step
        } else {
            Interval::Epoch
        };
        let interval = given.interval.take();
        if let (SchedulerType::ReduceLrOnPlateau, Some((Interval::Step, written))) = (t, &interval)
        {
            let msg = format!(
                "{}: reduce_lr_on_plateau is stepped once per epoch, on the validation loss (or \
                 the training loss without a valid set); remove `interval: step`",
                self.path.key(written)
            );
            return Err(keys.fail_at_key(written, msg));
        }
        let kind = given.build(t, &keys)?;
        Ok(Some(SchedulerSpec {
            kind,
            interval: interval.map_or(default_interval, |(i, _)| i),
        }))
    }
}

/// `sequential_lr.schedulers`: a non-empty list of schedulers.
struct SchedulersNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for SchedulersNode<'_> {
    type Out = Vec<SchedulerKind>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a non-empty list of schedulers such as [{type: linear_lr}, {type: cosine_annealing_lr, T_max: 10}]"
            .into()
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<SchedulerKind>, A::Error> {
        let read = read_seq(seq, |i| {
            Seed(SchedulerNode {
                ctx: self.ctx,
                path: self.path.index(i),
                nested: true,
            })
        })?;
        // A nested scheduler is never `null` (its node rejects it), so every one is `Some`.
        let out = read.into_iter().flatten().map(|s| s.kind).collect();
        self.non_empty(out)
    }
}

/// A list of non-negative integers (may be empty: `sequential_lr` with one scheduler).
struct CountsNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for CountsNode<'_> {
    type Out = Vec<u64>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a list of non-negative integers (epoch or step indices)".into()
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<u64>, A::Error> {
        read_seq(seq, |i| {
            scalar(
                self.ctx,
                self.path.index(i),
                "a non-negative integer",
                to_u64,
            )
        })
    }
}

/// A number for every param group, or a list with one number per group.
struct PerGroupNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for PerGroupNode<'_> {
    type Out = PerGroup;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a number, or a list of numbers with one per param group".into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<PerGroup, Problem> {
        to_f64(raw).map(PerGroup::All)
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PerGroup, A::Error> {
        let expected = <Self as Node<'de>>::expected(&self);
        let node = list(self.ctx, self.path.clone(), &expected, "a number", to_f64)
            .seed()
            .0;
        Ok(PerGroup::Each(node.seq(seq)?.unwrap_or_default()))
    }
}

/// What `accumulate`, `clip_grad_norm`, `clip_grad_value` and `checkpoint_every` hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrainStepKeys {
    /// `accumulate` (1 when not given).
    pub(crate) accumulate: usize,
    /// `clip_grad_norm`.
    pub(crate) clip_grad_norm: Option<ClipGradNorm>,
    /// `clip_grad_value`.
    pub(crate) clip_grad_value: Option<f64>,
    /// `checkpoint_every`.
    pub(crate) checkpoint_every: Option<u64>,
}

impl Default for TrainStepKeys {
    fn default() -> Self {
        TrainStepKeys {
            accumulate: 1,
            clip_grad_norm: None,
            clip_grad_value: None,
            checkpoint_every: None,
        }
    }
}

impl TrainStepKeys {
    /// Reads the value of `name` if it is one of this struct's keys; returns false otherwise.
    pub(crate) fn read<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
        ctx: &Ctx,
        path: Path,
        name: &str,
    ) -> Result<bool, A::Error> {
        match name {
            "accumulate" => {
                let expected = "a positive integer (batches per update)";
                self.accumulate =
                    map.next_value_seed(scalar(ctx, path, expected, to_positive_usize))?;
            }
            "clip_grad_norm" => {
                self.clip_grad_norm = map.next_value_seed(Seed(ClipNormNode { ctx, path }))?;
            }
            "clip_grad_value" => {
                let expected = "a clip value > 0";
                let node = scalar(ctx, path, expected, |raw: &Raw| match raw {
                    Raw::Null => Ok(None),
                    _ => to_positive_f64(raw).map(Some),
                });
                self.clip_grad_value = map.next_value_seed(node)?;
            }
            "checkpoint_every" => {
                let expected = "a positive integer (epochs between checkpoints)";
                let node = scalar(ctx, path, expected, |raw: &Raw| match raw {
                    Raw::Null => Ok(None),
                    _ => to_positive_u64(raw).map(Some),
                });
                self.checkpoint_every = map.next_value_seed(node)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

static CLIP_NORM_KEYS: KeyTable = KeyTable::plain(&["max_norm", "norm_type"]);

/// `clip_grad_norm: MAX_NORM` or `{max_norm: MAX_NORM, norm_type: P}` (P a number > 0 or `inf`).
struct ClipNormNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

/// `norm_type`: a number `> 0`, or `inf` (the string or YAML's `.inf`).
fn to_norm_type(raw: &Raw) -> Result<f64, Problem> {
    match raw {
        Raw::Float(x) if *x == f64::INFINITY => Ok(f64::INFINITY),
        Raw::Str(s) if s == "inf" => Ok(f64::INFINITY),
        Raw::Str(_) => Err(Problem::Value),
        _ => to_positive_f64(raw),
    }
}

impl<'de> Node<'de> for ClipNormNode<'_> {
    type Out = Option<ClipGradNorm>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a max_norm >= 0, or a mapping {max_norm: NUMBER, norm_type: NUMBER or inf}".into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        match raw {
            Raw::Null => Ok(None),
            _ => to_nonneg_f64(raw).map(|max_norm| {
                Some(ClipGradNorm {
                    max_norm,
                    norm_type: 2.0,
                })
            }),
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &CLIP_NORM_KEYS);
        let (mut max_norm, mut norm_type) = (None, 2.0);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "max_norm" => {
                    max_norm = read(&mut map, ctx, path, "a number >= 0", to_nonneg_f64)?;
                }
                "norm_type" => {
                    let expected = "a number > 0, or inf";
                    norm_type = map.next_value_seed(scalar(ctx, path, expected, to_norm_type))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(ClipGradNorm {
            max_norm: max_norm.ok_or_else(|| keys.missing("max_norm"))?,
            norm_type,
        }))
    }
}

impl SchedulerKind {
    /// This scheduler's entry in the vocabulary.
    pub fn scheduler_type(&self) -> SchedulerType {
        match self {
            SchedulerKind::StepLr { .. } => SchedulerType::StepLr,
            SchedulerKind::MultiStepLr { .. } => SchedulerType::MultiStepLr,
            SchedulerKind::ExponentialLr { .. } => SchedulerType::ExponentialLr,
            SchedulerKind::CosineAnnealingLr { .. } => SchedulerType::CosineAnnealingLr,
            SchedulerKind::CosineAnnealingWarmRestarts { .. } => {
                SchedulerType::CosineAnnealingWarmRestarts
            }
            SchedulerKind::LinearLr { .. } => SchedulerType::LinearLr,
            SchedulerKind::ConstantLr { .. } => SchedulerType::ConstantLr,
            SchedulerKind::OneCycleLr { .. } => SchedulerType::OneCycleLr,
            SchedulerKind::ReduceLrOnPlateau { .. } => SchedulerType::ReduceLrOnPlateau,
            SchedulerKind::SequentialLr { .. } => SchedulerType::SequentialLr,
        }
    }
}
