//! `torch.optim.lr_scheduler` as host-side state machines: each computes, in `f64` and in the
//! same order of operations, what PyTorch's `step()` computes — the recursive (chainable)
//! forms, the constructor's initial step, `SequentialLR`'s closed-form restarts — so the
//! learning rates match PyTorch's Python floats bit for bit. The step graph takes the result
//! as a runtime hyper, so a schedule never recompiles anything.

use std::f64::consts::PI;

use graphc_spec::{
    AnnealStrategy, Interval, OptimizerKind, PerGroup, PlateauMode, SchedulerKind, SchedulerSpec,
    ThresholdMode,
};
use serde::{Deserialize, Serialize};

use crate::NnError;

/// The keys a scheduler adds to PyTorch's `param_group` dict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerKeys {
    /// `initial_lr`: the learning rate schedules start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_lr: Option<f64>,
    /// `max_lr` (OneCycleLR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lr: Option<f64>,
    /// `min_lr` (OneCycleLR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    /// `max_momentum` (OneCycleLR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_momentum: Option<f64>,
    /// `base_momentum` (OneCycleLR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_momentum: Option<f64>,
}

/// One param group as schedulers see it: PyTorch's `param_group` dict.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroup {
    /// The group's hyperparameters as they are now (`lr`, `momentum`, `betas`, ...).
    pub hypers: OptimizerKind,
    /// What schedulers added.
    pub keys: SchedulerKeys,
}

impl ParamGroup {
    /// A group with its hyperparameters from the spec and nothing added yet.
    pub fn new(hypers: OptimizerKind) -> ParamGroup {
        ParamGroup {
            hypers,
            keys: SchedulerKeys::default(),
        }
    }

    /// `group["lr"]`.
    pub fn lr(&self) -> f64 {
        self.hypers.lr()
    }

    /// The momentum OneCycleLR cycles: `momentum`, or `betas[0]` for the Adam family.
    pub fn momentum(&self) -> Option<f64> {
        self.hypers
            .momentum()
            .or_else(|| self.hypers.betas().map(|b| b.0))
    }

    fn key(&self, key: Key) -> Option<f64> {
        match key {
            Key::InitialLr => self.keys.initial_lr,
            Key::MaxLr => self.keys.max_lr,
            Key::MinLr => self.keys.min_lr,
            Key::MaxMomentum => self.keys.max_momentum,
            Key::BaseMomentum => self.keys.base_momentum,
        }
    }
}

/// The `param_group` keys OneCycleLR's phases run between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    InitialLr,
    MaxLr,
    MinLr,
    MaxMomentum,
    BaseMomentum,
}

/// One phase of OneCycleLR: ends at `end_step`, anneals between two group keys.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Phase {
    end_step: f64,
    start_lr: Key,
    end_lr: Key,
    start_momentum: Key,
    end_momentum: Key,
}

/// The fields every `LRScheduler` keeps (`ReduceLROnPlateau` uses `last_epoch` and `last_lr`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Core {
    /// `last_epoch`: how many times `step()` has run (-1 before the initial step).
    pub last_epoch: i64,
    /// `_step_count`.
    pub step_count: u64,
    /// `base_lrs`: each group's `initial_lr`.
    pub base_lrs: Vec<f64>,
    /// `_last_lr`: the learning rates the last step set.
    pub last_lr: Vec<f64>,
}

/// The state a scheduler keeps beyond [`Core`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Extra {
    /// Nothing more.
    Plain,
    /// CosineAnnealingWarmRestarts' `T_i` and `T_cur`.
    WarmRestarts {
        /// Length of the current period.
        t_i: u64,
        /// Steps since the last restart.
        t_cur: i64,
    },
    /// ReduceLROnPlateau's counters.
    Plateau {
        /// Best metric so far; `None` before the first (PyTorch's `mode_worse`).
        #[serde(with = "float_text")]
        best: Option<f64>,
        /// Epochs without improvement.
        num_bad_epochs: u64,
        /// Epochs of cooldown left.
        cooldown_counter: u64,
    },
}

/// A scheduler's whole state, as a checkpoint stores it (`children` for SequentialLR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// `type:` of the scheduler, to check a checkpoint against the spec.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The `LRScheduler` fields.
    pub core: Core,
    /// The type's own fields.
    pub extra: Extra,
    /// SequentialLR's schedulers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<SchedulerState>,
}

/// A configured scheduler with its state, driving the learning rates of some param groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduler {
    interval: Interval,
    node: Node,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    kind: SchedulerKind,
    core: Core,
    extra: Extra,
    children: Vec<Node>,
    is_initial: bool,
    phases: Vec<Phase>,
}

/// The snake_case `type:` of a scheduler.
pub fn scheduler_type(kind: &SchedulerKind) -> &'static str {
    kind.scheduler_type().name()
}

/// True when the schedule changes momentum (OneCycleLR with `cycle_momentum`), so the
/// update must take momentum (or `betas[0]`) as a runtime hyper.
pub fn cycles_momentum(spec: &SchedulerSpec) -> bool {
    fn walk(kind: &SchedulerKind) -> bool {
        match kind {
            SchedulerKind::OneCycleLr { cycle_momentum, .. } => *cycle_momentum,
            SchedulerKind::SequentialLr { schedulers, .. } => schedulers.iter().any(walk),
            SchedulerKind::StepLr { .. }
            | SchedulerKind::MultiStepLr { .. }
            | SchedulerKind::ExponentialLr { .. }
            | SchedulerKind::CosineAnnealingLr { .. }
            | SchedulerKind::CosineAnnealingWarmRestarts { .. }
            | SchedulerKind::LinearLr { .. }
            | SchedulerKind::ConstantLr { .. }
            | SchedulerKind::ReduceLrOnPlateau { .. } => false,
        }
    }
    walk(&spec.kind)
}

fn err(message: String) -> NnError {
    NnError::Scheduler(message)
}

/// What the spec parser guarantees, checked again for specs built in code: the periods
/// divided by are positive, `sequential_lr` has one milestone fewer than schedulers.
fn check(kind: &SchedulerKind) -> Result<(), NnError> {
    let zero = |what: &str| Err(err(format!("{} needs {what} > 0", scheduler_type(kind))));
    match kind {
        SchedulerKind::StepLr { step_size: 0, .. } => zero("step_size"),
        SchedulerKind::CosineAnnealingLr { t_max: 0, .. } => zero("T_max"),
        SchedulerKind::CosineAnnealingWarmRestarts { t_0: 0, .. } => zero("T_0"),
        SchedulerKind::CosineAnnealingWarmRestarts { t_mult: 0, .. } => zero("T_mult"),
        SchedulerKind::LinearLr { total_iters: 0, .. } => zero("total_iters"),
        SchedulerKind::OneCycleLr { total_steps: 0, .. } => zero("total_steps"),
        SchedulerKind::SequentialLr {
            schedulers,
            milestones,
        } if schedulers.is_empty() || milestones.len() + 1 != schedulers.len() => Err(err(
            format!(
                "sequential_lr needs one milestone fewer than schedulers; here {} schedulers and {} milestones",
                schedulers.len(),
                milestones.len()
            ),
        )),
        SchedulerKind::SequentialLr { schedulers, .. }
            if schedulers.iter().any(|s| {
                matches!(
                    s,
                    SchedulerKind::SequentialLr { .. } | SchedulerKind::ReduceLrOnPlateau { .. }
                )
            }) =>
        {
            Err(err(
                "sequential_lr cannot hold reduce_lr_on_plateau or sequential_lr".into(),
            ))
        }
        SchedulerKind::StepLr { .. }
        | SchedulerKind::MultiStepLr { .. }
        | SchedulerKind::ExponentialLr { .. }
        | SchedulerKind::CosineAnnealingLr { .. }
        | SchedulerKind::CosineAnnealingWarmRestarts { .. }
        | SchedulerKind::LinearLr { .. }
        | SchedulerKind::ConstantLr { .. }
        | SchedulerKind::OneCycleLr { .. }
        | SchedulerKind::ReduceLrOnPlateau { .. }
        | SchedulerKind::SequentialLr { .. } => Ok(()),
    }
}

/// `len(param)` must match the groups (PyTorch's `_format_param`).
fn per_group(name: &str, v: &PerGroup, groups: usize) -> Result<Vec<f64>, NnError> {
    match v {
        PerGroup::All(x) => Ok(vec![*x; groups]),
        PerGroup::Each(list) if list.len() == groups => Ok(list.clone()),
        PerGroup::Each(list) => Err(err(format!(
            "{name} has {} values but the optimizer has {groups} param groups; give one value \
             per group (in param_groups order, the top-level group last) or a single number",
            list.len()
        ))),
    }
}

/// Python's `bisect.bisect_right`.
fn bisect_right(sorted: &[u64], x: i64) -> usize {
    sorted.iter().take_while(|&&m| (m as i64) <= x).count()
}

impl Scheduler {
    /// Constructs the scheduler as PyTorch's constructor does — which already sets the
    /// groups' learning rates (and momentum, for OneCycleLR) for the first step.
    pub fn new(spec: &SchedulerSpec, groups: &mut [ParamGroup]) -> Result<Scheduler, NnError> {
        Ok(Scheduler {
            interval: spec.interval,
            node: Node::construct(&spec.kind, groups)?,
        })
    }

    /// When the scheduler is stepped.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// True for ReduceLROnPlateau, which steps on a metric.
    pub fn needs_metric(&self) -> bool {
        matches!(self.node.kind, SchedulerKind::ReduceLrOnPlateau { .. })
    }

    /// `scheduler.step()`, or `scheduler.step(metric)` for ReduceLROnPlateau (which needs it).
    pub fn step(&mut self, groups: &mut [ParamGroup], metric: Option<f64>) -> Result<(), NnError> {
        if self.needs_metric() {
            let metric = metric
                .ok_or_else(|| err("reduce_lr_on_plateau needs a metric to step on".to_owned()))?;
            self.node.plateau_step(groups, metric);
            Ok(())
        } else {
            self.node.step(groups)
        }
    }

    /// `get_last_lr()`: the learning rates the last step set, one per group.
    pub fn last_lr(&self) -> &[f64] {
        &self.node.core.last_lr
    }

    /// The state a checkpoint stores.
    pub fn state(&self) -> SchedulerState {
        self.node.state()
    }

    /// Restores a state from [`Scheduler::state`]; a state of another scheduler is an error
    /// naming both.
    pub fn load_state(&mut self, state: &SchedulerState) -> Result<(), NnError> {
        self.node.load_state(state)
    }
}

impl Node {
    fn blank(kind: &SchedulerKind, extra: Extra) -> Node {
        Node {
            kind: kind.clone(),
            core: Core {
                last_epoch: -1,
                step_count: 0,
                base_lrs: Vec::new(),
                last_lr: Vec::new(),
            },
            extra,
            children: Vec::new(),
            is_initial: false,
            phases: Vec::new(),
        }
    }

    /// The constructor of the scheduler `kind` on `groups`.
    fn construct(kind: &SchedulerKind, groups: &mut [ParamGroup]) -> Result<Node, NnError> {
        check(kind)?;
        let n = groups.len();
        match kind {
            SchedulerKind::ReduceLrOnPlateau { min_lr, .. } => {
                per_group("reduce_lr_on_plateau min_lr", min_lr, n)?;
                let mut node = Node::blank(
                    kind,
                    Extra::Plateau {
                        best: None,
                        num_bad_epochs: 0,
                        cooldown_counter: 0,
                    },
                );
                node.core.last_epoch = 0;
                node.core.last_lr = groups.iter().map(ParamGroup::lr).collect();
                Ok(node)
            }
            SchedulerKind::SequentialLr {
                schedulers,
                milestones,
            } => {
                let mut node = Node::blank(kind, Extra::Plain);
                for s in schedulers {
                    node.children.push(Node::construct(s, groups)?);
                }
                node.core.last_epoch = 0;
                for g in groups.iter_mut() {
                    let initial = g.keys.initial_lr.unwrap_or_else(|| g.lr());
                    g.hypers.set_lr(initial);
                }
                for child in &mut node.children {
                    child.core.last_epoch -= 1;
                }
                let idx = bisect_right(milestones, 0);
                node.children[idx].initial_step(groups)?;
                node.core.last_lr = node.children[idx].core.last_lr.clone();
                Ok(node)
            }
            SchedulerKind::CosineAnnealingWarmRestarts { t_0, .. } => {
                let mut node = Node::blank(
                    kind,
                    Extra::WarmRestarts {
                        t_i: *t_0,
                        t_cur: -1,
                    },
                );
                node.base_init(groups)?;
                Ok(node)
            }
            SchedulerKind::OneCycleLr {
                max_lr,
                total_steps,
                pct_start,
                cycle_momentum,
                base_momentum,
                max_momentum,
                div_factor,
                final_div_factor,
                three_phase,
                ..
            } => {
                let mut node = Node::blank(kind, Extra::Plain);
                node.phases = one_cycle_phases(*total_steps, *pct_start, *three_phase);
                let max_lrs = per_group("one_cycle_lr max_lr", max_lr, n)?;
                for (g, max_lr) in groups.iter_mut().zip(max_lrs) {
                    let initial = max_lr / div_factor;
                    g.keys.initial_lr = Some(initial);
                    g.keys.max_lr = Some(max_lr);
                    g.keys.min_lr = Some(initial / final_div_factor);
                }
                if *cycle_momentum {
                    let Some(first) = groups.first() else {
                        return Err(err("one_cycle_lr needs at least one param group".into()));
                    };
                    if first.momentum().is_none() {
                        return Err(err(format!(
                            "one_cycle_lr cycles momentum, but {} has neither momentum nor betas; \
                             set cycle_momentum: false",
                            first.hypers.type_name()
                        )));
                    }
                    let use_beta1 = cycles_beta1(groups);
                    let maxes = per_group("one_cycle_lr max_momentum", max_momentum, n)?;
                    let bases = per_group("one_cycle_lr base_momentum", base_momentum, n)?;
                    for ((g, m), b) in groups.iter_mut().zip(maxes).zip(bases) {
                        set_momentum(g, m, use_beta1);
                        g.keys.max_momentum = Some(m);
                        g.keys.base_momentum = Some(b);
                    }
                }
                node.base_init(groups)?;
                Ok(node)
            }
            SchedulerKind::StepLr { .. }
            | SchedulerKind::MultiStepLr { .. }
            | SchedulerKind::ExponentialLr { .. }
            | SchedulerKind::CosineAnnealingLr { .. }
            | SchedulerKind::LinearLr { .. }
            | SchedulerKind::ConstantLr { .. } => {
                let mut node = Node::blank(kind, Extra::Plain);
                node.base_init(groups)?;
                Ok(node)
            }
        }
    }

    /// `LRScheduler.__init__` with `last_epoch=-1`.
    fn base_init(&mut self, groups: &mut [ParamGroup]) -> Result<(), NnError> {
        for g in groups.iter_mut() {
            if g.keys.initial_lr.is_none() {
                g.keys.initial_lr = Some(g.lr());
            }
        }
        self.core.base_lrs = groups
            .iter()
            .map(|g| g.keys.initial_lr.unwrap_or_else(|| g.lr()))
            .collect();
        self.core.last_epoch = -1;
        self.initial_step(groups)
    }

    /// `_initial_step`: `_step_count = 0`, then one `step()` in initial mode.
    fn initial_step(&mut self, groups: &mut [ParamGroup]) -> Result<(), NnError> {
        self.core.step_count = 0;
        self.is_initial = true;
        let result = self.step(groups);
        self.is_initial = false;
        result
    }

    /// `step()` without an epoch.
    fn step(&mut self, groups: &mut [ParamGroup]) -> Result<(), NnError> {
        match &self.kind {
            SchedulerKind::SequentialLr { milestones, .. } => {
                self.core.last_epoch += 1;
                let idx = bisect_right(milestones, self.core.last_epoch);
                let restart = idx > 0 && milestones[idx - 1] as i64 == self.core.last_epoch;
                let child = &mut self.children[idx];
                if restart {
                    child.update_lr(groups, Some(0))?;
                } else {
                    child.step(groups)?;
                }
                self.core.last_lr = child.core.last_lr.clone();
                Ok(())
            }
            SchedulerKind::CosineAnnealingWarmRestarts { t_0, t_mult, .. } => {
                let Extra::WarmRestarts { t_i, t_cur } = &mut self.extra else {
                    return Err(err("warm restarts without their state".into()));
                };
                let epoch = if self.core.last_epoch < 0 {
                    // `step(epoch=0)`: below T_0, so T_i = T_0 and T_cur = 0.
                    *t_i = *t_0;
                    *t_cur = 0;
                    0
                } else {
                    *t_cur += 1;
                    if *t_cur >= *t_i as i64 {
                        *t_cur = t_cur.rem_euclid(*t_i as i64);
                        *t_i *= t_mult;
                    }
                    self.core.last_epoch + 1
                };
                self.core.last_epoch = epoch;
                let lrs = self.get_lr(groups)?;
                self.set_lrs(groups, lrs);
                Ok(())
            }
            SchedulerKind::ReduceLrOnPlateau { .. } => Err(err(
                "reduce_lr_on_plateau steps on a metric (the validation or training loss)".into(),
            )),
            SchedulerKind::StepLr { .. }
            | SchedulerKind::MultiStepLr { .. }
            | SchedulerKind::ExponentialLr { .. }
            | SchedulerKind::CosineAnnealingLr { .. }
            | SchedulerKind::LinearLr { .. }
            | SchedulerKind::ConstantLr { .. }
            | SchedulerKind::OneCycleLr { .. } => {
                self.core.step_count += 1;
                self.update_lr(groups, None)
            }
        }
    }

    /// `_update_lr(epoch)`: the recursive form without an epoch, else the closed form at it.
    fn update_lr(&mut self, groups: &mut [ParamGroup], epoch: Option<i64>) -> Result<(), NnError> {
        let lrs = match epoch {
            None => {
                self.core.last_epoch += 1;
                self.get_lr(groups)?
            }
            Some(e) => {
                self.core.last_epoch = e;
                match self.closed_form() {
                    Some(lrs) => lrs,
                    None => self.get_lr(groups)?,
                }
            }
        };
        self.set_lrs(groups, lrs);
        Ok(())
    }

    fn set_lrs(&mut self, groups: &mut [ParamGroup], lrs: Vec<f64>) {
        for (g, lr) in groups.iter_mut().zip(&lrs) {
            g.hypers.set_lr(*lr);
        }
        self.core.last_lr = groups.iter().map(ParamGroup::lr).collect();
    }

    /// `get_lr()`: the chainable form, from the groups' current learning rates.
    fn get_lr(&mut self, groups: &mut [ParamGroup]) -> Result<Vec<f64>, NnError> {
        let e = self.core.last_epoch;
        let current = || groups.iter().map(ParamGroup::lr).collect::<Vec<f64>>();
        let scaled = |f: &dyn Fn(f64) -> f64| groups.iter().map(|g| f(g.lr())).collect();
        Ok(match &self.kind {
            SchedulerKind::StepLr { step_size, gamma } => {
                if e == 0 || e.rem_euclid(*step_size as i64) != 0 {
                    current()
                } else {
                    scaled(&|lr| lr * gamma)
                }
            }
            SchedulerKind::MultiStepLr { milestones, gamma } => {
                let count = milestones.iter().filter(|&&m| m as i64 == e).count();
                if count == 0 {
                    current()
                } else {
                    scaled(&|lr| lr * gamma.powf(count as f64))
                }
            }
            SchedulerKind::ConstantLr {
                factor,
                total_iters,
            } => {
                if e == 0 {
                    scaled(&|lr| lr * factor)
                } else if e != *total_iters as i64 {
                    current()
                } else if *factor == 0.0 {
                    return Err(err(
                        "constant_lr with factor 0 cannot restore the learning rate at \
                         total_iters (PyTorch divides by zero here); use a factor > 0"
                            .into(),
                    ));
                } else {
                    scaled(&|lr| lr * (1.0 / factor))
                }
            }
            SchedulerKind::LinearLr {
                start_factor,
                end_factor,
                total_iters,
            } => {
                if e == 0 {
                    scaled(&|lr| lr * start_factor)
                } else if self.is_initial || e > *total_iters as i64 {
                    current()
                } else {
                    let t = *total_iters as f64;
                    let d = end_factor - start_factor;
                    scaled(&|lr| lr * (1.0 + d / (t * start_factor + (e - 1) as f64 * d)))
                }
            }
            SchedulerKind::ExponentialLr { gamma } => {
                if self.is_initial {
                    current()
                } else {
                    scaled(&|lr| lr * gamma)
                }
            }
            SchedulerKind::CosineAnnealingLr { t_max, eta_min } => {
                let t = *t_max as f64;
                if self.is_initial {
                    current()
                } else if self.core.step_count == 1 && e > 0 {
                    self.core
                        .base_lrs
                        .iter()
                        .map(|base| {
                            eta_min + (base - eta_min) * (1.0 + (e as f64 * PI / t).cos()) / 2.0
                        })
                        .collect()
                } else if (e - 1 - *t_max as i64).rem_euclid(2 * *t_max as i64) == 0 {
                    groups
                        .iter()
                        .zip(&self.core.base_lrs)
                        .map(|(g, base)| g.lr() + (base - eta_min) * (1.0 - (PI / t).cos()) / 2.0)
                        .collect()
                } else {
                    let ratio =
                        (1.0 + (PI * e as f64 / t).cos()) / (1.0 + (PI * (e - 1) as f64 / t).cos());
                    scaled(&|lr| ratio * (lr - eta_min) + eta_min)
                }
            }
            SchedulerKind::CosineAnnealingWarmRestarts { eta_min, .. } => {
                let Extra::WarmRestarts { t_i, t_cur } = &self.extra else {
                    return Err(err("warm restarts without their state".into()));
                };
                let (t_i, t_cur) = (*t_i as f64, *t_cur as f64);
                self.core
                    .base_lrs
                    .iter()
                    .map(|base| eta_min + (base - eta_min) * (1.0 + (PI * t_cur / t_i).cos()) / 2.0)
                    .collect()
            }
            SchedulerKind::OneCycleLr {
                total_steps,
                anneal_strategy,
                cycle_momentum,
                ..
            } => {
                if e > *total_steps as i64 {
                    return Err(err(format!(
                        "one_cycle_lr was stepped {e} times but its total_steps is {total_steps}; \
                         raise total_steps (or epochs * steps_per_epoch) to cover the whole run"
                    )));
                }
                let anneal = |start: f64, end: f64, pct: f64| match anneal_strategy {
                    AnnealStrategy::Cos => {
                        let cos_out = (PI * pct).cos() + 1.0;
                        end + (start - end) / 2.0 * cos_out
                    }
                    AnnealStrategy::Linear => (end - start) * pct + start,
                };
                let step = e as f64;
                let use_beta1 = cycles_beta1(groups);
                let mut lrs = Vec::with_capacity(groups.len());
                for g in groups.iter_mut() {
                    let mut start_step = 0.0;
                    let last = self.phases.len() - 1;
                    for (i, phase) in self.phases.iter().enumerate() {
                        if step <= phase.end_step || i == last {
                            let span = phase.end_step - start_step;
                            if span == 0.0 {
                                return Err(err(format!(
                                    "one_cycle_lr phase {} has no length at step {e} (PyTorch \
                                     divides by zero here); change pct_start or total_steps",
                                    i + 1
                                )));
                            }
                            let pct = (step - start_step) / span;
                            let value = |k: Key| g.key(k).unwrap_or(f64::NAN);
                            lrs.push(anneal(value(phase.start_lr), value(phase.end_lr), pct));
                            if *cycle_momentum {
                                let m = anneal(
                                    value(phase.start_momentum),
                                    value(phase.end_momentum),
                                    pct,
                                );
                                set_momentum(g, m, use_beta1);
                            }
                            break;
                        }
                        start_step = phase.end_step;
                    }
                }
                lrs
            }
            SchedulerKind::ReduceLrOnPlateau { .. } | SchedulerKind::SequentialLr { .. } => {
                current()
            }
        })
    }

    /// `_get_closed_form_lr()` where the class has one.
    fn closed_form(&self) -> Option<Vec<f64>> {
        let e = self.core.last_epoch;
        let bases = &self.core.base_lrs;
        let map = |f: &dyn Fn(f64) -> f64| Some(bases.iter().map(|b| f(*b)).collect());
        match &self.kind {
            SchedulerKind::StepLr { step_size, gamma } => {
                map(&|b| b * gamma.powf(e.div_euclid(*step_size as i64) as f64))
            }
            SchedulerKind::MultiStepLr { milestones, gamma } => {
                let mut sorted = milestones.clone();
                sorted.sort_unstable();
                let n = bisect_right(&sorted, e);
                map(&|b| b * gamma.powf(n as f64))
            }
            SchedulerKind::ConstantLr {
                factor,
                total_iters,
            } => {
                let past = if e >= *total_iters as i64 { 1.0 } else { 0.0 };
                map(&|b| b * (factor + past * (1.0 - factor)))
            }
            SchedulerKind::LinearLr {
                start_factor,
                end_factor,
                total_iters,
            } => {
                let t = *total_iters as i64;
                map(&|b| {
                    b * (start_factor
                        + (end_factor - start_factor) * t.min(e) as f64 / *total_iters as f64)
                })
            }
            SchedulerKind::ExponentialLr { gamma } => map(&|b| b * gamma.powf(e as f64)),
            SchedulerKind::CosineAnnealingLr { t_max, eta_min } => map(&|b| {
                eta_min + (b - eta_min) * (1.0 + (PI * e as f64 / *t_max as f64).cos()) / 2.0
            }),
            SchedulerKind::CosineAnnealingWarmRestarts { .. }
            | SchedulerKind::OneCycleLr { .. }
            | SchedulerKind::ReduceLrOnPlateau { .. }
            | SchedulerKind::SequentialLr { .. } => None,
        }
    }

    /// `ReduceLROnPlateau.step(metrics)`.
    fn plateau_step(&mut self, groups: &mut [ParamGroup], current: f64) {
        let SchedulerKind::ReduceLrOnPlateau {
            mode,
            factor,
            patience,
            threshold,
            threshold_mode,
            cooldown,
            min_lr,
            eps,
        } = &self.kind
        else {
            return;
        };
        let Extra::Plateau {
            best,
            num_bad_epochs,
            cooldown_counter,
        } = &mut self.extra
        else {
            return;
        };
        self.core.last_epoch += 1;
        let worse = match mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        let b = best.unwrap_or(worse);
        let better = match (mode, threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => current < b * (1.0 - threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => current < b - threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => current > b * (threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => current > b + threshold,
        };
        if better {
            *best = Some(current);
            *num_bad_epochs = 0;
        } else {
            *num_bad_epochs += 1;
        }
        if *cooldown_counter > 0 {
            *cooldown_counter -= 1;
            *num_bad_epochs = 0;
        }
        if *num_bad_epochs > *patience {
            let min_lrs = per_group("min_lr", min_lr, groups.len()).unwrap_or_default();
            for (g, min) in groups.iter_mut().zip(min_lrs) {
                let old = g.lr();
                let scaled = old * factor;
                // Python's max(a, b) keeps a unless b is larger.
                let new = if scaled < min { min } else { scaled };
                if old - new > *eps {
                    g.hypers.set_lr(new);
                }
            }
            *cooldown_counter = *cooldown;
            *num_bad_epochs = 0;
        }
        self.core.last_lr = groups.iter().map(ParamGroup::lr).collect();
    }

    fn state(&self) -> SchedulerState {
        SchedulerState {
            type_name: scheduler_type(&self.kind).to_owned(),
            core: self.core.clone(),
            extra: self.extra.clone(),
            children: self.children.iter().map(Node::state).collect(),
        }
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<(), NnError> {
        let ours = scheduler_type(&self.kind);
        let same_extra =
            std::mem::discriminant(&self.extra) == std::mem::discriminant(&state.extra);
        if state.type_name != ours || !same_extra || state.children.len() != self.children.len() {
            return Err(err(format!(
                "the checkpoint holds a {} scheduler, the spec has {ours}",
                state.type_name
            )));
        }
        if state.core.base_lrs.len() != self.core.base_lrs.len()
            || state.core.last_lr.len() != self.core.last_lr.len()
        {
            return Err(err(format!(
                "the checkpoint's {ours} scheduler drives {} param groups, the spec has {}",
                state.core.last_lr.len(),
                self.core.last_lr.len()
            )));
        }
        self.core = state.core.clone();
        self.extra = state.extra.clone();
        for (child, s) in self.children.iter_mut().zip(&state.children) {
            child.load_state(s)?;
        }
        Ok(())
    }
}

/// OneCycleLR's phases (`_schedule_phases`): warm up to `max_lr`, then anneal to `min_lr`
/// (with `three_phase`, back to `initial_lr` first).
fn one_cycle_phases(total_steps: u64, pct_start: f64, three_phase: bool) -> Vec<Phase> {
    let total = total_steps as f64;
    let phase = |end_step: f64,
                 (start_lr, end_lr): (Key, Key),
                 (start_momentum, end_momentum): (Key, Key)| Phase {
        end_step,
        start_lr,
        end_lr,
        start_momentum,
        end_momentum,
    };
    let warm_up = phase(
        pct_start * total - 1.0,
        (Key::InitialLr, Key::MaxLr),
        (Key::MaxMomentum, Key::BaseMomentum),
    );
    if three_phase {
        vec![
            warm_up,
            phase(
                2.0 * pct_start * total - 2.0,
                (Key::MaxLr, Key::InitialLr),
                (Key::BaseMomentum, Key::MaxMomentum),
            ),
            phase(
                total - 1.0,
                (Key::InitialLr, Key::MinLr),
                (Key::MaxMomentum, Key::MaxMomentum),
            ),
        ]
    } else {
        vec![
            warm_up,
            phase(
                total - 1.0,
                (Key::MaxLr, Key::MinLr),
                (Key::BaseMomentum, Key::MaxMomentum),
            ),
        ]
    }
}

/// Whether OneCycleLR cycles `betas[0]` (the Adam family) rather than `momentum`: decided by
/// the first group, as PyTorch's constructor does.
fn cycles_beta1(groups: &[ParamGroup]) -> bool {
    groups.first().is_some_and(|g| g.hypers.betas().is_some())
}

/// Sets what OneCycleLR cycles: `momentum`, or `betas[0]`.
fn set_momentum(g: &mut ParamGroup, m: f64, use_beta1: bool) {
    if use_beta1 {
        if let Some(b) = g.hypers.betas() {
            g.hypers.set_betas((m, b.1));
        }
    } else {
        g.hypers.set_momentum(m);
    }
}

/// `Option<f64>` as a JSON number, or as text for the infinities and NaN JSON cannot hold.
mod float_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub(super) fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(x) if x.is_finite() => s.serialize_some(x),
            Some(x) => s.serialize_some(&x.to_string()),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(match Option::<Repr>::deserialize(d)? {
            None => None,
            Some(Repr::Number(x)) => Some(x),
            Some(Repr::Text(t)) => Some(t.parse().map_err(serde::de::Error::custom)?),
        })
    }
}

/// The optimizer settings the step graph is built from: the spec's, except that when the
/// schedule cycles momentum, SGD and RMSprop groups without momentum get momentum buffers
/// (the momentum itself is a runtime hyper), as PyTorch starts using momentum once
/// OneCycleLR sets it.
pub fn graph_optimizer(
    spec: &graphc_spec::Spec,
) -> std::borrow::Cow<'_, graphc_spec::OptimizerSpec> {
    use std::borrow::Cow;
    let Some(scheduler) = &spec.scheduler else {
        return Cow::Borrowed(&spec.optimizer);
    };
    if !cycles_momentum(scheduler) {
        return Cow::Borrowed(&spec.optimizer);
    }
    let mut optimizer = spec.optimizer.clone();
    let kinds = std::iter::once(&mut optimizer.kind)
        .chain(optimizer.param_groups.iter_mut().map(|g| &mut g.kind));
    for kind in kinds {
        if kind.momentum() == Some(0.0) {
            // Any non-zero value: it only makes the update keep a momentum buffer.
            kind.set_momentum(1.0);
        }
    }
    Cow::Owned(optimizer)
}
