//! `Trainer`: a spec compiled for a backend, stepped one batch at a time, with PyTorch's
//! training-loop semantics around the step: gradient accumulation over batches, the
//! learning-rate scheduler (constructed as PyTorch constructs it, stepped per update or per
//! epoch), and `state_dict()` / `load_state_dict()` for exact resumption.
//!
//! A step graph has static shapes, so each batch size gets its own compiled step (the full
//! batch, and a last partial batch), and with `train.accumulate > 1` each also has an
//! accumulating variant. The [`Session`] compiles them and keeps every persistent buffer
//! (parameter, optimizer state, gradient sum) in its store, bound to the program that runs.

use std::path::Path;

use graphc_ir::{Arg, Backend, Executable, Ranks};
use graphc_nn::sched::{ParamGroup, Scheduler, SchedulerKeys, SchedulerState};
use graphc_nn::{
    default_init, group_of, hyper_value_by, initial_groups, ParamInfo, StepGraph, TargetLayout,
};
use graphc_nn::{
    evaluates_with_batch_statistics, input_embedding, mean_denominator, saturating_numel, task_of,
    LossTargets, Task,
};
use graphc_spec::{shown_list, HyperValue, Interval, LossSpec, OptimizerKind, Reduction, Spec};
use smallvec::SmallVec;

use crate::collective::{share, Collective, Pending, Solo};
use crate::session::{BufferId, Kind, Session};
use crate::weights::{check_finite, check_finite_values};
use crate::{read_state_dict, BatchTargets, Counter, Dataset, NamedTensor, StateDict, TrainError};

/// Data-parallel training sums a gradient buffer of at least this many values over the ranks
/// in a bucket of its own, and packs smaller ones together into buckets of about this size
/// (benches/README.md, "Data parallelism over MPI": measured).
const BUCKET: usize = 1 << 20;

/// What a data-parallel step sums over the ranks, in buckets of buffers packed end to end.
/// First the gradient sums (an update's), in the order the backward completes them (last
/// parameters first): a buffer of at least [`BUCKET`] values is a bucket alone, smaller ones
/// are packed until a bucket reaches that size. Last, one bucket of batch norm's running
/// statistics and the rank's loss, filled after the step. Every rank makes the same layout,
/// as the buffers are the same.
#[derive(Debug, Default)]
struct BucketLayout {
    /// Each bucket's buffers and where each starts in it.
    buckets: Vec<Vec<(BufferId, usize)>>,
    /// Each bucket's values (the last one's loss included).
    lengths: Vec<usize>,
}

impl BucketLayout {
    /// The layout of gradient sums and running statistics `(id, len)`, each in order.
    fn new(
        gradients: impl Iterator<Item = (BufferId, usize)>,
        statistics: impl Iterator<Item = (BufferId, usize)>,
    ) -> BucketLayout {
        let mut layout = BucketLayout::default();
        let mut open = false;
        for (id, len) in gradients {
            if !open || len >= BUCKET {
                layout.buckets.push(Vec::new());
                layout.lengths.push(0);
            }
            let (Some(bucket), Some(filled)) =
                (layout.buckets.last_mut(), layout.lengths.last_mut())
            else {
                continue;
            };
            bucket.push((id, *filled));
            *filled += len;
            open = *filled < BUCKET;
        }
        let mut last = Vec::new();
        let mut filled = 0;
        for (id, len) in statistics {
            last.push((id, filled));
            filled += len;
        }
        layout.buckets.push(last);
        layout.lengths.push(filled + 1);
        layout
    }

    /// The gradient sums' buckets: all but the last.
    fn gradients(&self) -> &[Vec<(BufferId, usize)>] {
        self.buckets
            .split_last()
            .map_or(&[], |(_, gradients)| gradients)
    }
}

/// The [`Ranks`] of a shard step that sums its gradient sums during the run: each assigned
/// gradient sum is copied into its bucket, and a bucket is started once it and every bucket
/// before it are complete.
struct Overlap<'a> {
    pending: &'a mut dyn Pending,
    /// The bucket and place of each slot of the program, if it is a gradient sum.
    places: &'a [Option<(usize, usize)>],
    /// The buffers each bucket still waits for.
    left: Vec<usize>,
    /// Whether to start buckets during the run: not when the program sums over ranks itself
    /// (`train.sync_batch_norm`), whose sums must come in the same order on every rank.
    eager: bool,
}

impl Ranks for Overlap<'_> {
    fn sum(&mut self, values: &mut [f32]) {
        self.pending.sum(values);
    }
    fn assigned(&mut self, slot: usize, values: &[f32]) {
        let Some(&Some((bucket, at))) = self.places.get(slot) else {
            return;
        };
        if !self.eager {
            return;
        }
        if let Some(to) = self.pending.bucket(bucket).get_mut(at..at + values.len()) {
            to.copy_from_slice(values);
        }
        if let Some(left) = self.left.get_mut(bucket) {
            *left = left.saturating_sub(1);
        }
        let complete = self.left.iter().take_while(|&&n| n == 0).count();
        if let Some(last) = complete.checked_sub(1) {
            self.pending.start(last);
        }
    }
    fn progress(&mut self) {
        self.pending.progress();
    }
}

/// Loss and quality of the model on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// The loss over the whole data set (chunks combined by sample count).
    pub loss: f32,
    /// Fraction of correctly classified samples, for classification losses.
    pub accuracy: Option<f32>,
    /// Root mean squared error, for regression losses.
    pub rmse: Option<f32>,
}

/// One param group of [`OptimizerState`], PyTorch's `optimizer.state_dict()["param_groups"][i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupState {
    /// The names of the group's parameters (PyTorch lists their indices).
    pub params: Vec<String>,
    /// The group's hyperparameters now (the learning rate a scheduler has set, ...).
    pub hypers: OptimizerKind,
    /// What a scheduler added to the group (`initial_lr`, OneCycleLR's bounds).
    pub keys: SchedulerKeys,
}

/// The optimizer part of a [`TrainerState`]: PyTorch's `optimizer.state_dict()`, plus the
/// gradient sums of a pending accumulation.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// The top-level settings (PyTorch's `defaults`).
    pub defaults: OptimizerKind,
    /// The groups that hold parameters, in PyTorch's order (`param_groups`, then the
    /// top-level group when some parameter falls in no pattern).
    pub param_groups: Vec<GroupState>,
    /// The state buffers, named `PARAM.KEY` (`0.weight.momentum_buffer`).
    pub state: Vec<NamedTensor>,
    /// Updates done so far (PyTorch's per-parameter `step`).
    pub step: u64,
    /// Batches whose gradients are summed but not yet applied (below `train.accumulate`).
    pub pending_batches: usize,
    /// Those sums, named `PARAM.grad`; empty when no batch is pending.
    pub accumulated: Vec<NamedTensor>,
}

/// Everything that determines how training continues: the model's parameters and buffers, the
/// optimizer and the scheduler — PyTorch's three `state_dict()`s — and the number of training
/// forwards, from which dropout draws.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerState {
    /// The model: parameters and buffers in `state_dict` order, and `num_batches_tracked`.
    pub model: StateDict,
    /// Training forwards run so far (every batch's, accumulated or not).
    pub forwards: u64,
    /// The optimizer.
    pub optimizer: OptimizerState,
    /// The scheduler, when the spec has one.
    pub scheduler: Option<SchedulerState>,
}

/// A spec compiled for one backend: steps, parameters, optimizer hyperparameters, scheduler.
pub struct Trainer {
    session: Session,
    /// The update program for the spec's batch size, compiled first: its graph lists the
    /// model's parameters, optimizer state and gradient sums.
    main: usize,
    /// Each param group's current hyperparameters, numbered as `group_of` numbers groups
    /// (`param_groups`, then the top-level settings).
    groups: Vec<ParamGroup>,
    /// The groups that hold parameters, in order: PyTorch's `optimizer.param_groups`.
    live: Vec<usize>,
    scheduler: Option<Scheduler>,
    step_count: u64,
    /// Training forwards run so far: the next one's index, from which dropout draws.
    forwards: u64,
    /// The model's `num_batches_tracked` counters, as the main step's `counters` lists them.
    counts: Vec<i64>,
    /// Batches accumulated since the last update.
    pending: usize,
    /// The program that ran the last batch (for its output).
    last_step: Option<usize>,
    /// Scratch for the hyper values of one step, reused so a step allocates nothing for them.
    hyper_values: Vec<f32>,
    /// The processes training together ([`Solo`] unless [`Trainer::set_collective`]).
    collective: Box<dyn Collective + Send>,
    /// With several ranks: the rows of the last batch that were this rank's share.
    last_share: std::ops::Range<usize>,
    /// Wall-clock time from the end of this rank's shard steps until their sums were
    /// complete (the gradient buckets' sums, which start during the step, included).
    summing: std::time::Duration,
}

/// Largest batch the evaluator runs at once; larger data sets go in chunks.
const EVAL_CHUNK: usize = 4096;

impl Trainer {
    /// Compiles the training step of `spec` for its batch size on `backend`, with parameters
    /// from PyTorch's default init drawn from `spec.seed`, the optimizer state at PyTorch's
    /// initial values, and the scheduler constructed (which sets the first learning rates).
    pub fn new(
        spec: Spec,
        backend: Box<dyn Backend>,
        layout: TargetLayout,
    ) -> Result<Trainer, TrainError> {
        let groups = initial_groups(&spec.optimizer)
            .into_iter()
            .map(ParamGroup::new)
            .collect();
        let batch = spec.data.batch_size;
        let mut session = Session::new(spec, backend, layout)?;
        let main = session.program(batch, Kind::Update)?;
        let mut trainer = Trainer {
            session,
            main,
            groups,
            live: Vec::new(),
            scheduler: None,
            step_count: 0,
            forwards: 0,
            counts: Vec::new(),
            pending: 0,
            last_step: None,
            hyper_values: Vec::new(),
            collective: Box::new(Solo::default()),
            last_share: 0..0,
            summing: std::time::Duration::ZERO,
        };
        let params = trainer.main_step().params.clone();
        let mut live: Vec<usize> = group_of(&trainer.spec().optimizer, &params)?;
        live.sort_unstable();
        live.dedup();
        trainer.live = live;

        let values = default_init(&params, trainer.spec().seed);
        for (p, v) in params.iter().zip(&values) {
            trainer.set_param(&p.name, v)?;
        }
        let buffers = trainer.main_step().buffers.clone();
        for (b, v) in buffers
            .iter()
            .zip(default_init(&buffers, trainer.spec().seed))
        {
            trainer.set_param(&b.name, &v)?;
        }
        trainer.counts = vec![0; trainer.main_step().counters.len()];
        // PyTorch's optimizer state init (Adagrad's sum, NAdam's mu_product); buffers start at 0.
        let step = trainer.main_step();
        let fills: Vec<(String, Vec<f32>)> = step
            .state
            .iter()
            .zip(&step.state_init)
            .filter(|(_, &init)| init != 0.0)
            .map(|((name, shape), &init)| (name.clone(), vec![init; shape.iter().product()]))
            .collect();
        for (name, data) in fills {
            trainer.set_param(&name, &data)?;
        }
        if let Some(spec) = trainer.spec().scheduler.clone() {
            let scheduler = trainer.with_live_groups(|g| Scheduler::new(&spec, g))?;
            trainer.scheduler = Some(scheduler);
        }
        Ok(trainer)
    }

    /// The graph of the update program for the spec's batch size.
    fn main_step(&self) -> &StepGraph {
        &self.session.get(self.main).step
    }

    /// Runs `f` on the groups that hold parameters (PyTorch's `param_groups`), in order.
    fn with_live_groups<R>(&mut self, f: impl FnOnce(&mut [ParamGroup]) -> R) -> R {
        let mut live: Vec<ParamGroup> = self.live.iter().map(|&g| self.groups[g].clone()).collect();
        let result = f(&mut live);
        for (&g, group) in self.live.iter().zip(live) {
            self.groups[g] = group;
        }
        result
    }

    /// The spec this trainer was compiled from.
    pub fn spec(&self) -> &Spec {
        self.session.spec()
    }

    /// The model's parameters in `state_dict` order.
    pub fn param_info(&self) -> &[ParamInfo] {
        &self.main_step().params
    }

    /// Number of updates done so far.
    pub fn step_count(&self) -> u64 {
        self.step_count
    }

    /// Batches whose gradients are summed but not yet applied.
    pub fn pending_batches(&self) -> usize {
        self.pending
    }

    /// The learning rate in force for parameter group `group` (`param_groups`
    /// index; `param_groups.len()` is the top-level defaults), as the step takes it.
    pub fn lr(&self, group: usize) -> Option<f32> {
        self.groups.get(group).map(|g| g.lr() as f32)
    }

    /// The learning rates in force, one per group that holds parameters, in PyTorch's
    /// `param_groups` order: Python floats, as `scheduler.get_last_lr()` shows them.
    pub fn lrs(&self) -> Vec<f64> {
        self.live.iter().map(|&g| self.groups[g].lr()).collect()
    }

    /// The groups that hold parameters (PyTorch's `param_groups`), by `param_groups` index
    /// (`param_groups.len()` for the top-level group).
    pub fn live_groups(&self) -> &[usize] {
        &self.live
    }

    /// The current hyperparameters of group `group`, as `param_groups[group]` holds them.
    pub fn group(&self, group: usize) -> Option<&OptimizerKind> {
        self.groups.get(group).map(|g| &g.hypers)
    }

    /// Sets the learning rate of a group for the next steps; no recompilation.
    pub fn set_lr(&mut self, group: usize, lr: f32) -> Result<(), TrainError> {
        match self.groups.get_mut(group) {
            Some(slot) => {
                slot.hypers.set_lr(f64::from(lr));
                Ok(())
            }
            None => Err(TrainError::Data(format!("no parameter group {group}"))),
        }
    }

    /// The scheduler's state, when the spec has a scheduler.
    pub fn scheduler_state(&self) -> Option<SchedulerState> {
        self.scheduler.as_ref().map(Scheduler::state)
    }

    /// The current value of a parameter, optimizer state or gradient sum buffer.
    pub fn param(&self, name: &str) -> Option<&[f32]> {
        let id = self.session.id(name)?;
        Some(self.session.value(id))
    }

    /// Refuses parameters, optimizer state or pending gradient sums holding NaN or an
    /// infinity, naming `origin` and the first such value (training from them could only give
    /// NaN losses, which would be blamed on the learning rate).
    pub fn check_finite(&self, origin: &str) -> Result<(), TrainError> {
        let step = self.main_step();
        let values = |name: &str| self.param(name).unwrap_or_default();
        for p in &step.params {
            check_finite_values(origin, "parameter", &p.name, &p.shape, values(&p.name))?;
        }
        for b in &step.buffers {
            check_finite_values(origin, "buffer", &b.name, &b.shape, values(&b.name))?;
        }
        for (name, shape) in &step.state {
            check_finite_values(origin, "optimizer state", name, shape, values(name))?;
        }
        if self.pending > 0 {
            for (name, shape) in &step.accumulators {
                check_finite_values(origin, "accumulated gradient", name, shape, values(name))?;
            }
        }
        Ok(())
    }

    /// Overwrites a parameter (or state buffer) by name.
    pub fn set_param(&mut self, name: &str, data: &[f32]) -> Result<(), TrainError> {
        let Some(id) = self.session.id(name) else {
            return Err(TrainError::Data(format!(
                "no parameter or state buffer named `{name}`"
            )));
        };
        self.session.set_value(id, data)
    }

    /// All parameters with their names and PyTorch shapes.
    pub fn params(&self) -> Vec<NamedTensor> {
        self.param_info()
            .iter()
            .map(|p| self.tensor(&p.name, &p.shape))
            .collect()
    }

    /// The model's `state_dict()`: parameters, buffers (running statistics) and
    /// `num_batches_tracked` counters, as `model.safetensors` holds them.
    pub fn model_state(&self) -> StateDict {
        let step = self.main_step();
        let leaves = step.params.iter().chain(&step.buffers);
        StateDict {
            tensors: leaves.map(|p| self.tensor(&p.name, &p.shape)).collect(),
            counters: step
                .counters
                .iter()
                .zip(&self.counts)
                .map(|(name, &value)| Counter {
                    name: name.clone(),
                    value,
                })
                .collect(),
        }
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> NamedTensor {
        NamedTensor {
            name: name.to_owned(),
            shape: shape.to_vec(),
            data: self.param(name).map(<[f32]>::to_vec).unwrap_or_default(),
        }
    }

    /// Loads initial parameters (`model.init.from`) from a safetensors file with
    /// `state_dict` names; a missing, extra or misshapen tensor, or one holding NaN or an
    /// infinity, is an error naming it.
    pub fn load_init(&mut self, path: &Path) -> Result<(), TrainError> {
        self.load_params_file(path, "init.from")
    }

    /// Loads trained parameters to evaluate or predict with (`--weights`), checked as
    /// [`Trainer::load_init`] checks them.
    pub fn load_weights(&mut self, path: &Path) -> Result<(), TrainError> {
        self.load_params_file(path, "--weights")
    }

    /// Reads `path` and sets every parameter, buffer and counter from it; `origin` names it in
    /// messages.
    fn load_params_file(&mut self, path: &Path, origin: &str) -> Result<(), TrainError> {
        let state = read_state_dict(path)?;
        let err = |message: String| TrainError::Init {
            path: path.to_path_buf(),
            message,
        };
        self.check_model(&state).map_err(err)?;
        let origin = format!("{origin} {}", path.display());
        check_finite(&origin, "tensor", &state.tensors)?;
        self.set_model(&state)
    }

    /// Sets the model's parameters, buffers and counters from `state`, checked by
    /// [`Trainer::check_model`].
    fn set_model(&mut self, state: &StateDict) -> Result<(), TrainError> {
        for t in &state.tensors {
            self.set_param(&t.name, &t.data)?;
        }
        let names = self.main_step().counters.clone();
        for (count, name) in self.counts.iter_mut().zip(&names) {
            if let Some(c) = state.counters.iter().find(|c| c.name == *name) {
                *count = c.value;
            }
        }
        Ok(())
    }

    /// Checks that `state` is exactly the model's `state_dict`: its parameters and buffers
    /// with their shapes, and its counters, none negative (as `load_state_dict(strict=True)`).
    /// A missing `num_batches_tracked` is allowed and keeps the counter's value, as PyTorch's
    /// batch norm allows it for a state_dict without version metadata (a safetensors file).
    fn check_model(&self, state: &StateDict) -> Result<(), String> {
        let step = self.main_step();
        let expected: Vec<&ParamInfo> = step.params.iter().chain(&step.buffers).collect();
        let all_names = || {
            let names: Vec<&str> = expected
                .iter()
                .map(|p| p.name.as_str())
                .chain(step.counters.iter().map(String::as_str))
                .collect();
            graphc_spec::shown_items(&names)
        };
        for t in &state.tensors {
            if !expected.iter().any(|p| p.name == t.name) {
                let what = if step.counters.contains(&t.name) {
                    "is a 0-d int64 counter in this model, not a float tensor".to_owned()
                } else {
                    format!(
                        "is not a parameter or buffer of this model; its state_dict holds {}",
                        all_names()
                    )
                };
                return Err(format!("tensor `{}` {what}", t.name));
            }
        }
        for c in &state.counters {
            if !step.counters.contains(&c.name) {
                return Err(format!(
                    "tensor `{}` (int64) is not a counter of this model; its state_dict holds {}",
                    c.name,
                    all_names()
                ));
            }
            if c.value < 0 {
                return Err(format!(
                    "counter `{}` is {}; num_batches_tracked counts batches and cannot be negative",
                    c.name, c.value
                ));
            }
        }
        for p in expected {
            let Some(t) = state.tensors.iter().find(|t| t.name == p.name) else {
                return Err(format!(
                    "missing tensor `{}` of shape {}",
                    p.name,
                    shown_list(&p.shape)
                ));
            };
            if t.shape != p.shape {
                return Err(format!(
                    "tensor `{}` has shape {}, the model needs {}",
                    p.name,
                    shown_list(&t.shape),
                    shown_list(&p.shape)
                ));
            }
        }
        Ok(())
    }

    /// Checks that every class index is in `[0, classes)` or is `ignore_index`;
    /// `line_of(row)` names the row in messages.
    pub fn check_targets(
        &self,
        indices: &[i64],
        describe_row: &dyn Fn(usize) -> String,
    ) -> Result<(), TrainError> {
        let Task::MultiClass { ignore_index } = task_of(&self.spec().loss) else {
            return Ok(());
        };
        let ignored = |c: i64| ignore_index == Some(c);
        let classes = self.classes();
        for (row, &c) in indices.iter().enumerate() {
            if !ignored(c) && !(0..classes as i64).contains(&c) {
                let note = match ignore_index {
                    Some(i) => format!(", and is not ignore_index ({i})"),
                    None => String::new(),
                };
                return Err(TrainError::Data(format!(
                    "{}: class index {c} is outside [0, {classes}) for a model with {classes} outputs{note}; fix the label, or give the last layer as many outputs as there are classes",
                    describe_row(row)
                )));
            }
        }
        Ok(())
    }

    /// Checks that every feature an embedding on the model's input reads is a class index, a
    /// whole number in `[0, num_embeddings)`, as PyTorch's `nn.Embedding` requires (the graph
    /// would give such a value a row of zeros); `describe(row, feature)` names where a value is.
    pub fn check_features(
        &self,
        features: &[f32],
        describe: &dyn Fn(usize, usize) -> String,
    ) -> Result<(), TrainError> {
        let Some(embedding) = input_embedding(&self.spec().model) else {
            return Ok(());
        };
        if self.spec().data.standardize.is_some() {
            return Err(TrainError::Data(
                "data.standardize: true would z-score the class indices the embedding (model.layers[0]) reads; set standardize: false".to_owned(),
            ));
        }
        let width: usize = self.spec().model.input.iter().product();
        let rows = embedding.num_embeddings;
        let is_index = |v: f32| v.fract() == 0.0 && v >= 0.0 && f64::from(v) < rows as f64;
        match features.iter().position(|&v| !is_index(v)) {
            None => Ok(()),
            Some(i) => Err(TrainError::Data(format!(
                "{}: {} is not a class index of the embedding (model.layers[0]); its input features must be whole numbers in [0, {rows})",
                describe(i / width.max(1), i % width.max(1)),
                features[i]
            ))),
        }
    }

    /// [`Trainer::check_features`] on every row of `data`, a file's in bounded chunks (not
    /// read at all when the model has no input embedding).
    pub fn check_data_features(&self, data: &Dataset) -> Result<(), TrainError> {
        if input_embedding(&self.spec().model).is_none() {
            return Ok(());
        }
        data.features
            .try_for_each_chunk::<TrainError>(data.num_features(), |first, values| {
                self.check_features(values, &|row, feature| {
                    data.feature_location(first + row, feature)
                })
            })
    }

    /// Number of model outputs per sample (classes, for a classifier).
    pub fn classes(&self) -> usize {
        let s = self.main_step();
        let out = s.graph.outputs()[s.model_output].node;
        s.graph.shape(out).last().copied().unwrap_or(1)
    }

    /// Runs one training step on a batch — forward, loss, backward, then the update once
    /// `train.accumulate` batches' gradients are summed (every batch by default) — and
    /// returns the batch's loss, computed before any update. An update steps a scheduler
    /// with `interval: step`.
    pub fn step(&mut self, features: &[f32], targets: &BatchTargets) -> Result<f32, TrainError> {
        let update = self.pending + 1 >= self.spec().train.accumulate;
        self.step_batch(features, targets, update)
    }

    /// [`Trainer::step`] with the caller deciding whether this batch ends an accumulation:
    /// `update: true` applies the gradients summed so far plus this batch's even before
    /// `train.accumulate` batches (the run loop does so at the end of an epoch);
    /// `update: false` only adds the gradients (ignored with `accumulate: 1`).
    pub fn step_batch(
        &mut self,
        features: &[f32],
        targets: &BatchTargets,
        update: bool,
    ) -> Result<f32, TrainError> {
        let batch = self.batch_of(features)?;
        let rows = self.share_of(batch);
        let per_sample = features.len() / batch;
        let mine = &features[rows.start * per_sample..rows.end * per_sample];
        self.step_share(batch, mine, targets, update)
    }

    /// The rows of a batch of `batch` samples this rank steps (`collective::share`): all of
    /// them on one process.
    pub fn share_of(&self, batch: usize) -> std::ops::Range<usize> {
        share(batch, self.collective.rank(), self.collective.size())
    }

    /// [`Trainer::step_batch`] given only this rank's features: `features` are rows
    /// [`Trainer::share_of`]`(batch)` of a batch of `batch` samples, `targets` the whole
    /// batch's (the loss's denominator counts them all). What a rank that reads only its
    /// shares of the data steps.
    pub fn step_share(
        &mut self,
        batch: usize,
        features: &[f32],
        targets: &BatchTargets,
        update: bool,
    ) -> Result<f32, TrainError> {
        let rows = self.share_of(batch);
        let per_sample = saturating_numel(&self.spec().model.input);
        if batch == 0 || features.len() as u128 != (rows.len() as u128).saturating_mul(per_sample) {
            return Err(TrainError::Data(format!(
                "{} feature values are not rows {}..{} of a batch of {batch} samples of model.input {:?}",
                features.len(),
                rows.start,
                rows.end,
                self.spec().model.input
            )));
        }
        if let BatchTargets::Classes(indices) = targets {
            self.check_targets(indices, &|row| format!("batch row {row}"))?;
        }
        self.check_features(features, &|row, feature| {
            format!("batch row {}, feature {feature}", rows.start + row)
        })?;
        let kind = if update || self.spec().train.accumulate <= 1 {
            Kind::Update
        } else {
            Kind::Accumulate
        };
        let loss = if self.collective.size() > 1 {
            self.step_shard((features, rows), targets, batch, kind == Kind::Update)?
        } else {
            let index = self.session.program(batch, kind)?;
            self.run_step(index, (features, targets_arg(targets)), None, None)?;
            self.last_step = Some(index);
            self.last_share = 0..batch;
            self.session
                .exe(index)
                .output(self.session.get(index).step.loss_output)[0]
        };
        self.forwards += 1;
        for count in &mut self.counts {
            *count += 1;
        }
        if kind == Kind::Update {
            self.step_count += 1;
            self.pending = 0;
            if self.scheduler.as_ref().map(Scheduler::interval) == Some(Interval::Step) {
                self.step_scheduler(None)?;
            }
        } else {
            self.pending += 1;
        }
        Ok(loss)
    }

    /// Runs program `index` once on a batch (`x`, `y`; the whole batch's loss `denominator` for
    /// a shard step), with the forward's index and the hypers as its graph takes them.
    /// `ranks` hears the run's sums and assigns (`Executable::run_summing`); `None`: sums go
    /// to the trainer's collective.
    fn run_step(
        &mut self,
        index: usize,
        (features, targets): (&[f32], Arg<'_>),
        denominator: Option<f32>,
        ranks: Option<&mut dyn Ranks>,
    ) -> Result<(), TrainError> {
        let groups = &self.groups;
        let step_number = self.step_count + 1;
        let counts = &self.counts;
        self.hyper_values.clear();
        self.hyper_values
            .extend(self.session.get(index).step.hypers.iter().map(|h| {
                let group = |g: usize| groups.get(g).map(|p| &p.hypers);
                hyper_value_by(*h, group, step_number, counts)
            }));
        // The forward's index as dropout's i64 step counter (beyond i64::MAX it wraps, as a
        // 64-bit counter must somewhere; no run gets there), and for a shard step the share's
        // first row, so its masks are the whole batch's rows there.
        let forward = [self.forwards as i64, self.last_share.start as i64];
        let forward = match self.session.get(index).kind {
            Kind::Shard => &forward[..],
            Kind::Update | Kind::Accumulate | Kind::Apply | Kind::Eval | Kind::PerSample => {
                &forward[..1]
            }
        };
        let denominator = [denominator.unwrap_or(f32::NAN)];
        let step = &self.session.get(index).step;
        // On the stack for up to 16 arguments: allocating them cost logreg 2-3 % a step.
        let mut args: SmallVec<[Arg<'_>; 16]> = SmallVec::new();
        if self.session.get(index).kind != Kind::Apply {
            args.extend([Arg::F32(features), targets]);
        }
        if step.forward {
            args.push(Arg::I64(forward));
        }
        if step.denominator {
            args.push(Arg::F32(&denominator));
        }
        args.extend(
            self.hyper_values
                .iter()
                .map(std::slice::from_ref)
                .map(Arg::F32),
        );
        // A shard step under `train.sync_batch_norm` sums batch norm's statistics over the
        // ranks while it runs; no other program has such a sum.
        let collective = &mut self.collective;
        match ranks {
            Some(ranks) => self.session.run(index, &args, ranks),
            None => (self.session).run(index, &args, &mut |v: &mut [f32]| collective.sum(v)),
        }
    }

    /// One step of data-parallel training on a batch of `batch` samples (`targets` the whole
    /// batch's, the same on every rank; `x` the features of this rank's share, its `rows`):
    /// the share through the shard step (the loss's mean over the whole batch's denominator);
    /// with `update`, the gradient sums summed over ranks in buckets, each started as soon
    /// as the backward has completed it, then the apply step. Returns the batch's loss,
    /// summed over ranks with batch norm's running statistics.
    fn step_shard(
        &mut self,
        (x, rows): (&[f32], std::ops::Range<usize>),
        targets: &BatchTargets,
        batch: usize,
        update: bool,
    ) -> Result<f32, TrainError> {
        if self.spec().train.sync_batch_norm && batch == 1 {
            // Alone, the step graph of one sample refuses a batch norm of one value per
            // channel; summed over ranks, the shards cannot tell.
            graphc_nn::check_batch_norm_counts(&self.spec().model, batch)?;
        }
        let y = match targets {
            BatchTargets::Classes(y) => Arg::I64(&y[rows.clone()]),
            BatchTargets::Floats(t) => {
                let width = t.len() / batch;
                Arg::F32(&t[rows.start * width..rows.end * width])
            }
        };
        let classes = self.classes();
        let denominator =
            batch_denominator(&self.spec().loss, classes, targets, batch).map(|d| d as f32);
        self.last_share = rows.clone();
        let apply = update
            .then(|| self.session.program(0, Kind::Apply))
            .transpose()?;
        let accumulators = match apply {
            Some(apply) => &self.session.get(apply).step.accumulators[..],
            None => &[],
        };
        let with_len = |id: BufferId| (id, self.session.value(id).len());
        let layout = BucketLayout::new(
            // Last parameters first: the backward completes them first.
            (accumulators.iter().rev())
                .filter_map(|(name, _)| self.session.id(name))
                .map(with_len),
            (self.main_step().buffers.iter())
                .filter_map(|b| self.session.id(&b.name))
                .map(with_len),
        );
        let program = match rows.is_empty() {
            false => Some(self.session.program(rows.len(), Kind::Shard)?),
            true => None,
        };
        // The collective is out of the trainer while the share runs inside its sum.
        let mut collective = std::mem::replace(&mut self.collective, Box::new(Solo::default()));
        let first = collective.rank() == 0;
        let mut ran = Ok(());
        let mut computed = std::time::Instant::now();
        collective.sum_during(&layout.lengths, &mut |pending| {
            ran = self.run_share(program, (x, y), denominator, (&layout, first), pending);
            computed = std::time::Instant::now();
        });
        self.collective = collective;
        ran?;
        for (bucket, members) in layout.buckets.iter().enumerate() {
            let summed = self.collective.summed(bucket);
            for &(id, at) in members {
                let value = self.session.value_mut(id);
                value.copy_from_slice(&summed[at..at + value.len()]);
            }
        }
        let summed_loss = layout.buckets.len().checked_sub(1);
        let total = summed_loss
            .and_then(|last| self.collective.summed(last).last().copied())
            .unwrap_or(f32::NAN);
        self.summing += computed.elapsed();
        if let Some(apply) = apply {
            self.run_step(apply, (&[], Arg::F32(&[])), None, None)?;
        }
        Ok(total)
    }

    /// This rank's share through shard program `program` (none for an empty share) inside a
    /// [`Collective::sum_during`] over `layout`'s buckets: each gradient bucket is filled and
    /// started once the run has assigned all its gradient sums (unless the program sums over
    /// ranks itself: then every rank starts them after, in the same order as its own sums),
    /// and whatever the run did not start is filled from the buffers afterwards. The last
    /// bucket gets batch norm's running statistics (rank 0's on every rank, what PyTorch DDP's
    /// `broadcast_buffers` does before each forward: the `first` rank's values, the others'
    /// zeros) and the share's loss (0 without samples).
    fn run_share(
        &mut self,
        program: Option<usize>,
        inputs: (&[f32], Arg<'_>),
        denominator: Option<f32>,
        (layout, first): (&BucketLayout, bool),
        pending: &mut dyn Pending,
    ) -> Result<(), TrainError> {
        let mut loss = 0.0;
        if let Some(index) = program {
            let mut places = vec![None; self.session.slots(index).len()];
            for (bucket, members) in layout.gradients().iter().enumerate() {
                for &(id, at) in members {
                    if let Some(slot) = self.session.slots(index).iter().position(|&s| s == id) {
                        places[slot] = Some((bucket, at));
                    }
                }
            }
            let mut hook = Overlap {
                pending: &mut *pending,
                places: &places,
                left: layout.gradients().iter().map(Vec::len).collect(),
                eager: self.session.exe(index).sum_ranks_lengths().is_empty(),
            };
            self.run_step(index, inputs, denominator, Some(&mut hook))?;
            self.last_step = Some(index);
            loss = (self.session.exe(index)).output(self.session.get(index).step.loss_output)[0];
        } else {
            if self.spec().train.sync_batch_norm {
                // A rank without samples still takes part in the shard step's sums over
                // ranks (every rank makes the same calls), adding zeros; they do not depend
                // on the share's size, so the one-sample program's list them.
                let index = self.session.program(1, Kind::Shard)?;
                for len in self.session.exe(index).sum_ranks_lengths() {
                    pending.sum(&mut vec![0.0; len]);
                }
            }
            self.last_step = None;
        }
        for (bucket, members) in layout.buckets.iter().enumerate() {
            let statistics = bucket + 1 == layout.buckets.len();
            let bucket = pending.bucket(bucket);
            for &(id, at) in members {
                let value = self.session.value(id);
                if let Some(to) = bucket.get_mut(at..at + value.len()) {
                    match (statistics, first) {
                        (false, _) | (true, true) => to.copy_from_slice(value),
                        (true, false) => to.fill(0.0),
                    }
                }
            }
            if let (true, Some(last)) = (statistics, bucket.last_mut()) {
                *last = loss;
            }
        }
        Ok(())
    }

    /// Makes this trainer one of the processes of `collective`: each step runs this rank's
    /// share of the batch and sums the gradients over ranks (see [`Trainer::step_batch`]).
    /// Every rank must start from the same parameters and step the same batches.
    pub fn set_collective(&mut self, collective: Box<dyn Collective + Send>) {
        self.collective = collective;
    }

    /// The number of ranks training together and the seconds this one has waited for its sums
    /// over them after computing its shares (what overlapping the sums with the backward
    /// did not hide).
    pub fn summing(&self) -> (usize, f64) {
        (self.collective.size(), self.summing.as_secs_f64())
    }

    /// The processes training together.
    pub fn collective(&mut self) -> &mut dyn Collective {
        self.collective.as_mut()
    }

    /// Adds the last batch's outputs (this rank's share of them, with several ranks) to
    /// `tally`; `targets` are the whole batch's.
    pub fn tally_last(&self, tally: &mut Tally, targets: &BatchTargets) {
        let Some(output) = self.last_output() else {
            return;
        };
        let rows = self.last_share.clone();
        if self.collective.size() <= 1 {
            tally.add(self.task(), output, targets, rows.len());
            return;
        }
        let width = output.len() / rows.len().max(1);
        let share = match targets {
            BatchTargets::Classes(y) => BatchTargets::Classes(y[rows.clone()].to_vec()),
            BatchTargets::Floats(t) => {
                BatchTargets::Floats(t[rows.start * width..rows.end * width].to_vec())
            }
        };
        tally.add(self.task(), output, &share, rows.len());
    }

    /// Tells the scheduler an epoch ended: one with `interval: epoch` steps —
    /// ReduceLROnPlateau on `metric` (the validation loss, or the epoch's mean training loss).
    pub fn end_epoch(&mut self, metric: f64) -> Result<(), TrainError> {
        if self.scheduler.as_ref().map(Scheduler::interval) == Some(Interval::Epoch) {
            self.step_scheduler(Some(metric))?;
        }
        Ok(())
    }

    fn step_scheduler(&mut self, metric: Option<f64>) -> Result<(), TrainError> {
        let Some(mut scheduler) = self.scheduler.take() else {
            return Ok(());
        };
        let result = self.with_live_groups(|g| scheduler.step(g, metric));
        self.scheduler = Some(scheduler);
        Ok(result?)
    }

    fn batch_of(&self, features: &[f32]) -> Result<usize, TrainError> {
        let input = &self.spec().model.input;
        let per_sample = input
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(0);
        if per_sample == 0 || !features.len().is_multiple_of(per_sample) || features.is_empty() {
            return Err(TrainError::Data(format!(
                "a batch of {} feature values is not a whole number of samples of model.input {input:?}",
                features.len()
            )));
        }
        Ok(features.len() / per_sample)
    }

    /// The parameters, optimizer and scheduler as they are now (PyTorch's `model.state_dict()`,
    /// `optimizer.state_dict()`, `scheduler.state_dict()`).
    pub fn state_dict(&self) -> TrainerState {
        let step = self.main_step();
        let param_groups = self
            .live
            .iter()
            .map(|&g| GroupState {
                params: step
                    .params
                    .iter()
                    .zip(&step.groups)
                    .filter(|(_, &pg)| pg == g)
                    .map(|(p, _)| p.name.clone())
                    .collect(),
                hypers: self.groups[g].hypers.clone(),
                keys: self.groups[g].keys.clone(),
            })
            .collect();
        let accumulated = if self.pending > 0 {
            step.accumulators
                .iter()
                .map(|(n, s)| self.tensor(n, s))
                .collect()
        } else {
            Vec::new()
        };
        TrainerState {
            model: self.model_state(),
            forwards: self.forwards,
            optimizer: OptimizerState {
                defaults: self.spec().optimizer.kind.clone(),
                param_groups,
                state: step.state.iter().map(|(n, s)| self.tensor(n, s)).collect(),
                step: self.step_count,
                pending_batches: self.pending,
                accumulated,
            },
            scheduler: self.scheduler_state(),
        }
    }

    /// Continues from `state` (from [`Trainer::state_dict`] or a checkpoint): a state that
    /// does not fit this spec — other parameters or shapes, another optimizer or other
    /// groups or settings, another scheduler — is an error naming what differs, and changes
    /// nothing.
    pub fn load_state_dict(&mut self, state: &TrainerState) -> Result<(), TrainError> {
        self.load_state(state, "state_dict")
    }

    /// [`Trainer::load_state_dict`] with `what` naming the state's origin in messages.
    pub(crate) fn load_state(
        &mut self,
        state: &TrainerState,
        what: &str,
    ) -> Result<(), TrainError> {
        let fail = |message: String| TrainError::Checkpoint {
            what: what.to_owned(),
            message,
        };
        self.check_model(&state.model).map_err(&fail)?;
        self.check_optimizer(&state.optimizer).map_err(&fail)?;
        let mut scheduler = self.scheduler.clone();
        match (&mut scheduler, &state.scheduler) {
            (None, None) => {}
            (Some(s), Some(saved)) => s.load_state(saved).map_err(|e| fail(e.to_string()))?,
            (None, Some(saved)) => {
                return Err(fail(format!(
                    "it has a {} scheduler and the spec has none; add the same `scheduler:` to the spec",
                    saved.type_name
                )))
            }
            (Some(s), None) => {
                return Err(fail(format!(
                    "the spec has a {} scheduler and the checkpoint has none; remove `scheduler:` from the spec",
                    s.state().type_name
                )))
            }
        }
        let buffers = &self.main_step().buffers;
        let (buffers, params): (Vec<&NamedTensor>, _) =
            (state.model.tensors.iter()).partition(|t| buffers.iter().any(|b| b.name == t.name));
        check_finite(what, "parameter", params)?;
        check_finite(what, "buffer", buffers)?;
        check_finite(what, "optimizer state", &state.optimizer.state)?;
        check_finite(what, "accumulated gradient", &state.optimizer.accumulated)?;
        self.set_model(&state.model)?;
        for t in &state.optimizer.state {
            self.set_param(&t.name, &t.data)?;
        }
        self.forwards = state.forwards;
        let accumulators = self.main_step().accumulators.clone();
        for (name, shape) in &accumulators {
            let zeros = vec![0.0; shape.iter().product()];
            let sum = state.optimizer.accumulated.iter().find(|t| &t.name == name);
            self.set_param(name, sum.map_or(&zeros[..], |t| &t.data[..]))?;
        }
        for (&g, saved) in self.live.iter().zip(&state.optimizer.param_groups) {
            self.groups[g] = ParamGroup {
                hypers: saved.hypers.clone(),
                keys: saved.keys.clone(),
            };
        }
        self.step_count = state.optimizer.step;
        self.pending = state.optimizer.pending_batches;
        self.scheduler = scheduler;
        Ok(())
    }

    /// Checks that a saved optimizer fits this spec's: type, groups, settings, state buffers.
    fn check_optimizer(&self, saved: &OptimizerState) -> Result<(), String> {
        let ours = self.spec().optimizer.kind.type_name();
        let theirs = saved.defaults.type_name();
        if ours != theirs {
            return Err(format!(
                "it was written by the {theirs} optimizer, the spec's optimizer is {ours}"
            ));
        }
        let current = self.state_dict_groups();
        if current.len() != saved.param_groups.len() {
            return Err(format!(
                "it has {} param groups, the spec makes {}",
                saved.param_groups.len(),
                current.len()
            ));
        }
        let cycled = self
            .spec()
            .scheduler
            .as_ref()
            .is_some_and(graphc_nn::sched::cycles_momentum);
        for (i, ((names, g), saved_group)) in current.iter().zip(&saved.param_groups).enumerate() {
            if *names != saved_group.params {
                return Err(format!(
                    "param group {i} holds {} in the checkpoint, {} with the spec",
                    graphc_spec::shown_items(&saved_group.params),
                    graphc_spec::shown_items(names)
                ));
            }
            let spec_group = graphc_nn::group_settings(&self.spec().optimizer, *g);
            let theirs = saved_group.hypers.hyperparameters();
            for ((key, ours), (_, theirs)) in spec_group.hyperparameters().iter().zip(&theirs) {
                let differs = match (key, ours, theirs) {
                    (&"lr", _, _) => false,
                    (&"momentum", _, _) if cycled => false,
                    (&"betas", HyperValue::Pair(_, a), HyperValue::Pair(_, b)) if cycled => a != b,
                    _ => ours != theirs,
                };
                if differs {
                    return Err(format!(
                        "param group {i}: {key} is {} in the checkpoint, {} in the spec",
                        show(theirs),
                        show(ours)
                    ));
                }
            }
        }
        let step = self.main_step();
        for (name, shape) in &step.state {
            match saved.state.iter().find(|t| &t.name == name) {
                None => {
                    return Err(format!(
                        "optimizer state `{name}` is missing; the spec's {ours} keeps it"
                    ))
                }
                Some(t) if &t.shape != shape => {
                    return Err(format!(
                        "optimizer state `{name}` has shape {}, the spec needs {}",
                        shown_list(&t.shape),
                        shown_list(shape)
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(t) = saved
            .state
            .iter()
            .find(|t| !step.state.iter().any(|(n, _)| *n == t.name))
        {
            return Err(format!(
                "it holds optimizer state `{}` that the spec's {ours} does not keep",
                t.name
            ));
        }
        let accumulate = self.spec().train.accumulate;
        if saved.pending_batches >= accumulate.max(1) {
            return Err(format!(
                "{} batches of gradients are pending, but the spec updates every {accumulate} (train.accumulate)",
                saved.pending_batches
            ));
        }
        for t in &saved.accumulated {
            match step.accumulators.iter().find(|(n, _)| *n == t.name) {
                Some((_, shape)) if *shape == t.shape => {}
                _ => {
                    return Err(format!(
                        "it holds a gradient sum `{}` that does not fit the model",
                        t.name
                    ))
                }
            }
        }
        Ok(())
    }

    /// The parameter names of each group that holds parameters, with its `param_groups` index.
    fn state_dict_groups(&self) -> Vec<(Vec<String>, usize)> {
        let step = self.main_step();
        self.live
            .iter()
            .map(|&g| {
                let names = step
                    .params
                    .iter()
                    .zip(&step.groups)
                    .filter(|(_, &pg)| pg == g)
                    .map(|(p, _)| p.name.clone())
                    .collect();
                (names, g)
            })
            .collect()
    }

    /// Loss and accuracy (classifiers) or RMSE (regressors) of the current
    /// parameters on a whole data set, without updating anything. The loss is the one the
    /// whole set gives in one batch: a mean's chunks are weighted by their denominators
    /// ([`mean_denominator`]: samples, elements, or the class weights of the samples not
    /// ignored), a sum's added up. With several ranks ([`Trainer::set_collective`]), each
    /// evaluates its share of the rows (`collective::share`) and the sums are reduced, so
    /// every rank gets the single-process numbers (all rows on every rank when a batch norm
    /// evaluates with batch statistics); every rank must call it then.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Evaluation, TrainError> {
        let task = task_of(&self.spec().loss);
        let mut tally = Tally::default();
        // The loss's sum over chunks (each chunk's mean times its denominator) and the
        // denominators' sum (0 for a `sum` loss, which divides by nothing).
        let mut sums = [0.0f64; 2];
        // A batch norm that evaluates with batch statistics gives each chunk its own
        // numbers, so shares would change them: then every rank evaluates every row, in one
        // process's chunks, and nothing is summed.
        let sharded = !evaluates_with_batch_statistics(&self.spec().model);
        let rows = if sharded {
            share(data.len(), self.collective.rank(), self.collective.size())
        } else {
            0..data.len()
        };
        let (spec, classes) = (self.spec().loss.clone(), self.classes());
        self.for_each_chunk_in(data, rows, Kind::Eval, |exe, step, rows, targets| {
            let weight = batch_denominator(&spec, classes, targets, rows);
            // A chunk of only ignored samples (0/0, NaN) adds nothing.
            if weight != Some(0.0) {
                sums[0] += f64::from(exe.output(step.loss_output)[0]) * weight.unwrap_or(1.0);
                sums[1] += weight.unwrap_or(0.0);
            }
            tally.add(task, exe.output(step.model_output), targets, rows);
        })?;
        let mean = match spec.reduction() {
            Reduction::Mean | Reduction::BatchMean => true,
            Reduction::Sum | Reduction::None => false,
        };
        // One process: `Solo` sums nothing.
        if sharded {
            self.collective.sum_f64(&mut sums);
            tally.sum_over(self.collective.as_mut());
        }
        let loss = match (data.len(), mean) {
            (0, _) => f64::NAN,
            (_, true) => sums[0] / sums[1],
            (_, false) => sums[0],
        };
        Ok(tally.evaluation(task, loss as f32))
    }

    /// The loss of every sample of `data` (PyTorch's loss with `reduction="none"`), in order;
    /// for a loss with one value per output element (`mse`, `bce`, ...), a sample's loss is
    /// the sum of its elements with `reduction: sum` in the spec, else their mean.
    pub fn per_sample_losses(&mut self, data: &Dataset) -> Result<Vec<f32>, TrainError> {
        let sum = self.spec().loss.reduction() == Reduction::Sum;
        let mut losses = Vec::with_capacity(data.len());
        self.for_each_chunk(data, Kind::PerSample, |exe, step, rows, _| {
            let values = exe.output(step.loss_output);
            let width = values.len() / rows.max(1);
            for sample in values.chunks(width.max(1)).take(rows) {
                let total: f64 = sample.iter().map(|&v| f64::from(v)).sum();
                let value = if sum {
                    total
                } else {
                    total / sample.len() as f64
                };
                losses.push(value as f32);
            }
        })?;
        Ok(losses)
    }

    /// The model's outputs for the samples of `data` (its targets are not used), row-major,
    /// with the number of outputs per sample.
    pub fn predict(&mut self, data: &Dataset) -> Result<(Vec<f32>, usize), TrainError> {
        let mut outputs = Vec::new();
        let mut width = 0;
        self.for_each_chunk(data, Kind::Eval, |exe, step, rows, _| {
            let out = exe.output(step.model_output);
            width = out.len() / rows.max(1);
            outputs.extend_from_slice(out);
        })?;
        Ok((outputs, width))
    }

    /// The model output of the last batch [`Trainer::step_batch`] ran (before its update),
    /// row-major; `None` before the first step.
    pub fn last_output(&self) -> Option<&[f32]> {
        let index = self.last_step?;
        Some(
            self.session
                .exe(index)
                .output(self.session.get(index).step.model_output),
        )
    }

    /// How the model's outputs are scored: accuracy (classifiers) or RMSE (regressors).
    pub fn task(&self) -> Task {
        task_of(&self.spec().loss)
    }

    /// Runs the forward graph of `kind` (an evaluation kind) on `data` in chunks, with the
    /// current parameters, calling `f(executable, graph, rows, targets)` after each chunk.
    fn for_each_chunk(
        &mut self,
        data: &Dataset,
        kind: Kind,
        f: impl FnMut(&dyn Executable, &StepGraph, usize, &BatchTargets),
    ) -> Result<(), TrainError> {
        self.for_each_chunk_in(data, 0..data.len(), kind, f)
    }

    /// [`Trainer::for_each_chunk`] on rows `range` of `data`.
    fn for_each_chunk_in(
        &mut self,
        data: &Dataset,
        range: std::ops::Range<usize>,
        kind: Kind,
        mut f: impl FnMut(&dyn Executable, &StepGraph, usize, &BatchTargets),
    ) -> Result<(), TrainError> {
        let n = range.end.min(data.len());
        let chunk = eval_chunk(self.spec());
        let mut features = Vec::new();
        let mut targets = BatchTargets::Floats(Vec::new());
        let mut rows = Vec::with_capacity(chunk.min(n));
        let mut start = range.start;
        while start < n {
            rows.clear();
            rows.extend(start..n.min(start + chunk));
            data.gather(&rows, &mut features, &mut targets)?;
            self.check_features(&features, &|row, feature| {
                data.feature_location(rows[row], feature)
            })?;
            let index = self.session.program(rows.len(), kind)?;
            let args = [Arg::F32(&features), targets_arg(&targets)];
            self.session.run(index, &args, &mut |_: &mut [f32]| {})?;
            let step = &self.session.get(index).step;
            f(self.session.exe(index), step, rows.len(), &targets);
            start += rows.len();
        }
        Ok(())
    }
}

/// Running accuracy (classifiers) or squared error (regressors) of model outputs against
/// targets, added up batch by batch; as [`Trainer::evaluate`] scores a data set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    correct: usize,
    counted: usize,
    squared: f64,
}

impl Tally {
    /// Adds one batch of `rows` samples: `output` is the model output, row-major.
    /// `ignore_index` samples are not counted; a class is the argmax (the first on ties, as
    /// `torch.argmax`); a binary output is true above 0 (logits) or 0.5 (probabilities).
    pub fn add(&mut self, task: Task, output: &[f32], targets: &BatchTargets, rows: usize) {
        if rows == 0 || output.is_empty() {
            return;
        }
        let width = output.len() / rows;
        match (task, targets) {
            (Task::MultiClass { ignore_index }, BatchTargets::Classes(y)) => {
                for (&t, out) in y.iter().zip(output.chunks_exact(width.max(1))) {
                    if ignore_index != Some(t) {
                        self.counted += 1;
                        self.correct += usize::from(argmax(out) as i64 == t);
                    }
                }
            }
            (Task::MultiClass { .. }, BatchTargets::Floats(y)) => {
                let pairs = output
                    .chunks_exact(width.max(1))
                    .zip(y.chunks_exact(width.max(1)));
                for (out, target) in pairs {
                    self.counted += 1;
                    self.correct += usize::from(argmax(out) == argmax(target));
                }
            }
            (Task::Binary { from_logits }, BatchTargets::Floats(y)) => {
                let threshold = if from_logits { 0.0 } else { 0.5 };
                for (&o, &t) in output.iter().zip(y) {
                    self.counted += 1;
                    self.correct += usize::from((o > threshold) == (t >= 0.5));
                }
            }
            (Task::Regression, BatchTargets::Floats(y)) => {
                for (&o, &t) in output.iter().zip(y) {
                    self.counted += 1;
                    self.squared += f64::from(o - t).powi(2);
                }
            }
            (Task::Objective, BatchTargets::Floats(_)) | (_, BatchTargets::Classes(_)) => {}
        }
    }

    /// Sums the tallies of every rank of `collective` (each tallied its shares of the batches).
    pub fn sum_over(&mut self, collective: &mut dyn Collective) {
        if collective.size() <= 1 {
            return;
        }
        let mut values = [self.correct as f64, self.counted as f64, self.squared];
        collective.sum_f64(&mut values);
        // Counts below 2^53 are exact in f64.
        self.correct = values[0] as usize;
        self.counted = values[1] as usize;
        self.squared = values[2];
    }

    /// The scores so far with `loss`: accuracy for classification tasks, RMSE for
    /// regression (NaN when nothing was counted).
    pub fn evaluation(&self, task: Task, loss: f32) -> Evaluation {
        let ratio = |a: f64, b: usize| if b == 0 { f64::NAN } else { a / b as f64 };
        let accuracy = || Some(ratio(self.correct as f64, self.counted) as f32);
        let (accuracy, rmse) = match task {
            Task::MultiClass { .. } | Task::Binary { .. } => (accuracy(), None),
            Task::Regression => (None, Some(ratio(self.squared, self.counted).sqrt() as f32)),
            Task::Objective => (None, None),
        };
        Evaluation {
            loss,
            accuracy,
            rmse,
        }
    }
}

/// Values of activations (and their gradients) one evaluation chunk may hold at most.
const EVAL_CHUNK_VALUES: u128 = 1 << 26;

/// Samples per evaluation chunk: up to [`EVAL_CHUNK`], fewer for wide models so that a
/// chunk's activations stay within [`EVAL_CHUNK_VALUES`], and never fewer than one.
fn eval_chunk(spec: &Spec) -> usize {
    // A built trainer's spec always describes; an error here cannot happen.
    let per_sample = crate::run::activations_per_sample(spec).map_or(1, |n| n.max(1));
    let fit = (EVAL_CHUNK_VALUES / per_sample).max(1);
    usize::try_from(fit).unwrap_or(EVAL_CHUNK).min(EVAL_CHUNK)
}

/// The denominator of `loss`'s mean over a batch of `batch` samples with `targets`
/// ([`mean_denominator`]; `classes` outputs per sample for class indices); `None` for `sum`
/// and `none`.
fn batch_denominator(
    loss: &LossSpec,
    classes: usize,
    targets: &BatchTargets,
    batch: usize,
) -> Option<f64> {
    let (targets, outputs) = match targets {
        BatchTargets::Classes(y) => (LossTargets::Classes(y), classes),
        BatchTargets::Floats(t) => (LossTargets::Floats(t), t.len() / batch.max(1)),
    };
    mean_denominator(loss, outputs, targets)
}

fn targets_arg(targets: &BatchTargets) -> Arg<'_> {
    match targets {
        BatchTargets::Classes(v) => Arg::I64(v),
        BatchTargets::Floats(v) => Arg::F32(v),
    }
}

/// Index of the largest value (the first on ties, as `torch.argmax`).
fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// A hyperparameter value as Python prints it in a param group.
fn show(v: &HyperValue) -> String {
    match v {
        HyperValue::Float(x) => format!("{x:?}"),
        HyperValue::Bool(b) => {
            if *b {
                "True".into()
            } else {
                "False".into()
            }
        }
        HyperValue::Pair(a, b) => format!("({a:?}, {b:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_argmax_hits_and_skips_ignore_index() {
        let task = Task::MultiClass {
            ignore_index: Some(-100),
        };
        let mut tally = Tally::default();
        // Rows: argmax 1 (target 1: hit), argmax 0 (target 2: miss), ignored, tie → first (0).
        let output = [0.1, 0.9, 0.0, 2.0, 1.0, 0.0, 5.0, 5.0, 5.0, 3.0, 3.0, 1.0];
        tally.add(
            task,
            &output,
            &BatchTargets::Classes(vec![1, 2, -100, 0]),
            4,
        );
        let e = tally.evaluation(task, 0.5);
        assert_eq!(e.accuracy, Some(2.0 / 3.0));
        assert_eq!((e.loss, e.rmse), (0.5, None));
    }

    #[test]
    fn tally_thresholds_binary_outputs_and_takes_rmse_of_regressions() {
        let binary = Task::Binary { from_logits: true };
        let mut tally = Tally::default();
        tally.add(
            binary,
            &[0.3, -0.2, -1.0, 2.0],
            &BatchTargets::Floats(vec![1.0, 0.0, 1.0, 0.0]),
            4,
        );
        assert_eq!(tally.evaluation(binary, 0.0).accuracy, Some(0.5));
        let mut tally = Tally::default();
        tally.add(
            Task::Regression,
            &[1.0, 2.0],
            &BatchTargets::Floats(vec![0.0, 0.0]),
            1,
        );
        tally.add(
            Task::Regression,
            &[3.0, 0.0],
            &BatchTargets::Floats(vec![3.0, 4.0]),
            1,
        );
        // Squared errors 1, 4, 0, 16 over 4 values.
        let e = tally.evaluation(Task::Regression, 1.0);
        assert_eq!(e.rmse, Some(5.25f64.sqrt() as f32));
        assert_eq!(e.accuracy, None);
        let empty = Tally::default().evaluation(Task::Regression, 0.0);
        assert!(empty.rmse.unwrap().is_nan(), "nothing counted");
    }
}
