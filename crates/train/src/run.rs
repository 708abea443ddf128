//! `train` and `resume`: the whole run of `graphc train SPEC` — size and data checks, [`fit`]
//! with the run's files (`metrics.jsonl`, checkpoints) and progress display as observers, the
//! final model with its class names and standardization statistics, and the loss plot — with
//! the output files SPEC.md fixes.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use graphc_ir::Backend;
use graphc_nn::TargetLayout;
use graphc_nn::Task;
use graphc_nn::{describe_model, input_embedding, saturating_numel, LayerInfo, TensorDecl};
use graphc_spec::{shown_list, InitSpec, LayerKind, OptimizerKind, Spec};

use crate::checkpoint::{self, BatchOrder, Progress, CHECKPOINT_DIR};
use crate::fit::{fit, Best, EpochEvent, Observer, StepEvent, Stop};
use crate::progress::{EpochRow, Mode, Reporter};
use crate::rundir::{RunDir, METRICS_FILE};
use graphc_data::{load_split_sets_in, Residence};

use crate::{
    batch_ranges, write_labels_json, write_state_dict, write_state_dict_with, Dataset, Evaluation,
    SplitRecord, Standardizer, StateDict, TargetKind, Targets, TrainError, Trainer,
};
#[cfg(feature = "plot")]
use crate::{read_metrics, write_loss_plot};

/// One line of `metrics.jsonl` per update, keys in SPEC.md's order. `loss` is the mean of
/// the losses of the batches the update summed (one batch without accumulation); `lr` is
/// the learning rate the update used (the top-level group's, else the first group's), and
/// `lrs` every group's, in PyTorch's `param_groups` order, when there are several.
#[derive(serde::Serialize)]
struct StepLine<'a> {
    step: u64,
    epoch: u64,
    loss: f32,
    lr: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lrs: Option<Vec<f64>>,
    /// An objective's scalar parameters, each its own key, in `params` order.
    #[serde(flatten)]
    values: Values<'a>,
}

/// Named values serialized as map entries in their order.
struct Values<'a>(&'a [(String, f32)]);

impl serde::Serialize for Values<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// One line of `metrics.jsonl` per epoch with a validation set.
#[derive(serde::Serialize)]
struct ValidLine {
    epoch: u64,
    valid_loss: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_accuracy: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_rmse: Option<f32>,
}

/// How a run is carried out, beyond what the spec says.
pub struct RunOptions {
    /// Directory for `metrics.jsonl` and `model.safetensors`.
    pub out_dir: PathBuf,
    /// The backend that executes the steps.
    pub backend: Box<dyn Backend>,
    /// No progress lines on standard error.
    pub quiet: bool,
    /// `--set KEY=VALUE` overrides of the spec's keys, applied in order.
    pub overrides: Vec<graphc_spec::Override>,
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Updates done.
    pub steps: u64,
    /// Epochs started.
    pub epochs: u64,
    /// The mean training loss of the last epoch this process trained (the epoch table's
    /// last row), with its number and whether it ran to its end (`train.steps` may stop a
    /// run inside an epoch); `None` when it trained no epoch.
    pub last_epoch: Option<LastEpoch>,
    /// The loss of the last update's batch alone.
    pub last_batch_loss: f32,
    /// The final model on the whole training set, in evaluation mode.
    pub train: Evaluation,
    /// Why training stopped.
    pub stop: Stop,
    /// Wall-clock seconds of the run, compilation included.
    pub seconds: f64,
    /// The MPI ranks that trained together (1 alone) and the wall-clock seconds this one
    /// spent in their sums (gradients and losses).
    pub ranks: (usize, f64),
}

/// The last epoch of a run, as its row of the epoch table shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastEpoch {
    /// Its number (from 1).
    pub epoch: u64,
    /// Whether it ran through all its batches.
    pub finished: bool,
    /// The mean of its batches' losses.
    pub train_loss: f32,
    /// The validation set's loss and scores after it, when the spec has one.
    pub valid: Option<Evaluation>,
}

impl std::fmt::Display for Summary {
    /// `trained 300 steps (30 epochs) in 0.03 s: epoch 30 mean loss 0.0581, valid loss
    /// 0.0612 (accuracy 96.7%), train accuracy 98.7%`: the last epoch's mean training loss
    /// (what the epoch table's last row shows), its validation, and the final model on the
    /// whole training set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trained {} steps ({} epochs) in {:.2} s",
            self.steps, self.epochs, self.seconds
        )?;
        match &self.last_epoch {
            Some(e) => {
                let part = if e.finished { "" } else { " (partial)" };
                write!(f, ": epoch {}{part} mean loss {:.4}", e.epoch, e.train_loss)?;
                if let Some(v) = &e.valid {
                    write!(f, ", valid loss {:.4}", v.loss)?;
                    if let Some(a) = v.accuracy {
                        write!(f, " (accuracy {:.1}%)", a * 100.0)?;
                    }
                    if let Some(r) = v.rmse {
                        write!(f, " (RMSE {r:.4})")?;
                    }
                }
            }
            None => write!(f, ": last batch loss {:.4}", self.last_batch_loss)?,
        }
        if let Some(a) = self.train.accuracy {
            write!(f, ", train accuracy {:.1}%", a * 100.0)?;
        }
        if let Some(r) = self.train.rmse {
            write!(f, ", train RMSE {r:.4}")?;
        }
        write!(f, "; {}", self.stop)?;
        let (ranks, summing) = self.ranks;
        if ranks > 1 {
            let per_step = summing * 1e3 / self.steps.max(1) as f64;
            write!(f, "; on {ranks} MPI ranks, {per_step:.2} ms a step summing")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Stop {
    /// Why training stopped: `train.epochs done`, `train.steps done`, `early stopping after
    /// epoch 7 (best valid_loss 0.0612 at epoch 4)`, `stopped by the caller`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Epochs => write!(f, "stopped: train.epochs done"),
            Stop::Steps => write!(f, "stopped: train.steps done"),
            Stop::EarlyStopping { epoch, best } => {
                write!(f, "stopped: early stopping after epoch {epoch}")?;
                match best {
                    Some(b) => write!(
                        f,
                        " (best {} {:.4} at epoch {})",
                        b.monitor.name(),
                        b.value,
                        b.epoch
                    ),
                    None => write!(f, " (the monitored metric was never finite)"),
                }
            }
            Stop::Observer => write!(f, "stopped by the caller"),
        }
    }
}

/// The training and validation data of a spec, loaded and preprocessed.
pub struct SpecData {
    /// Training set.
    pub train: Dataset,
    /// Validation set, when the spec has one.
    pub valid: Option<Dataset>,
    /// How targets reach the loss.
    pub layout: TargetLayout,
    /// The statistics the features were standardized with (`standardize: true`).
    pub standardizer: Option<Standardizer>,
    /// The rows `data.split` held out, as `split.json` records them.
    pub split: Option<SplitRecord>,
}

/// Loads the spec's data (paths relative to `base_dir`), standardizes it when
/// asked, and checks that it fits the model's input.
pub fn load_data(spec: &Spec, base_dir: &Path) -> Result<SpecData, TrainError> {
    load_data_on(spec, base_dir, 1)
}

/// [`load_data`] for one of `ranks` data-parallel processes: with more than one, features
/// that can stay in their file (CSV, `.npy`) do, and each rank reads the rows it steps when it
/// gathers them, so its memory does not hold the whole feature matrix. The values are the
/// same either way.
pub fn load_data_on(spec: &Spec, base_dir: &Path, ranks: usize) -> Result<SpecData, TrainError> {
    let residence = if ranks > 1 {
        Residence::File
    } else {
        Residence::Memory
    };
    let (mut train, mut valid, split) = load_split_sets_in(
        &spec.data,
        base_dir,
        target_kind(spec),
        spec.seed,
        residence,
    )?;
    for data in std::iter::once(&train).chain(valid.iter()) {
        check_features(spec, data)?;
    }
    let standardizer = match spec.data.standardize {
        Some(kind) => {
            let scaler = Standardizer::fit(&train, kind)?;
            scaler.apply(&mut train);
            if let Some(v) = valid.as_mut() {
                scaler.apply(v);
            }
            Some(scaler)
        }
        None => None,
    };
    let layout = layout_of(&train.targets);
    Ok(SpecData {
        train,
        valid,
        layout,
        standardizer,
        split,
    })
}

/// How the spec's loss reads a single target column.
pub(crate) fn target_kind(spec: &Spec) -> TargetKind {
    match graphc_nn::task_of(&spec.loss) {
        Task::MultiClass { .. } => TargetKind::ClassIndex,
        _ => TargetKind::Float,
    }
}

/// How targets like `targets` reach the loss.
pub(crate) fn layout_of(targets: &Targets) -> TargetLayout {
    match targets {
        Targets::Classes { .. } => TargetLayout::Classes,
        Targets::Floats { width, .. } => TargetLayout::Floats { width: *width },
    }
}

/// Checks that a data set has as many features per sample as `model.input` holds.
pub fn check_features(spec: &Spec, data: &Dataset) -> Result<(), TrainError> {
    let per_sample = saturating_numel(&spec.model.input);
    if data.num_features() as u128 == per_sample {
        return Ok(());
    }
    let names = &data.feature_names;
    let mut listed: Vec<String> = names.iter().take(8).cloned().collect();
    if names.len() > 8 {
        listed.push(format!("… ({} more)", names.len() - 8));
    }
    Err(TrainError::Data(format!(
        "model.input is {} ({per_sample} values per sample) but {} has {} feature columns ({}); set model.input or data features to match",
        shown_list(&spec.model.input),
        data.origin.features,
        data.num_features(),
        listed.join(", ")
    )))
}

/// The values (activations) one sample makes in a forward pass: its input and every layer's
/// output, counted from the layers' descriptors (no graph is built, so absurd sizes cannot
/// allocate).
pub fn activations_per_sample(spec: &Spec) -> Result<u128, TrainError> {
    let layers = describe_model(&spec.model, spec.data.batch_size)?;
    Ok(layers
        .iter()
        .map(LayerInfo::output_numel)
        .fold(saturating_numel(&spec.model.input), u128::saturating_add))
}

/// Refuses a spec whose training step cannot fit in memory, before anything is allocated:
/// 4-byte values for each parameter, its gradient and up to two optimizer buffers, and for a
/// batch of `data.batch_size` samples each activation and its gradient, and an embedding's 0/1
/// row per input feature. The message names the layer that needs the most.
pub fn check_size(spec: &Spec) -> Result<(), TrainError> {
    check_size_within(spec, u128::from(graphc_data::memory_limit()))
}

/// [`check_size`] against a given limit in bytes.
pub fn check_size_within(spec: &Spec, limit: u128) -> Result<(), TrainError> {
    let batch = spec.data.batch_size as u128;
    let input = saturating_numel(&spec.model.input);
    // An embedding (always the first layer) holds a 0/1 row of num_embeddings per feature.
    let one_hot = input_embedding(&spec.model).map_or(0, |e| {
        batch
            .saturating_mul(input)
            .saturating_mul(e.num_embeddings as u128)
            .saturating_mul(4)
    });
    let layer_bytes = |l: &LayerInfo| {
        let scratch = if l.index == 0 { one_hot } else { 0 };
        let values = l
            .params
            .iter()
            .chain(&l.buffers)
            .map(TensorDecl::numel)
            .fold(0, u128::saturating_add);
        values
            .saturating_mul(16)
            .saturating_add(batch.saturating_mul(l.output_numel()).saturating_mul(8))
            .saturating_add(scratch)
    };
    let sizes = describe_model(&spec.model, spec.data.batch_size)?;
    let total = sizes.iter().map(layer_bytes).fold(
        batch.saturating_mul(input).saturating_mul(4),
        u128::saturating_add,
    );
    if total <= limit {
        return Ok(());
    }
    let what = match sizes.iter().enumerate().max_by_key(|(_, l)| layer_bytes(l)) {
        Some((index, info)) => {
            let layer = graphc_nn::all_layers(&spec.model)[index];
            let kind = match &layer.kind {
                LayerKind::Linear { out, .. } => format!("linear, out {out}"),
                LayerKind::Conv1d(c) | LayerKind::Conv2d(c) => format!(
                    "{}, out_channels {}",
                    layer.kind.layer_type().name(),
                    c.out_channels
                ),
                LayerKind::Embedding(e) => format!(
                    "embedding, num_embeddings {}, embedding_dim {}",
                    e.num_embeddings, e.embedding_dim
                ),
                LayerKind::MaxPool1d(_)
                | LayerKind::MaxPool2d(_)
                | LayerKind::AvgPool1d(_)
                | LayerKind::AvgPool2d(_)
                | LayerKind::AdaptiveAvgPool1d { .. }
                | LayerKind::AdaptiveAvgPool2d { .. }
                | LayerKind::AdaptiveMaxPool2d { .. }
                | LayerKind::Flatten { .. }
                | LayerKind::BatchNorm1d(_)
                | LayerKind::BatchNorm2d(_)
                | LayerKind::LayerNorm(_)
                | LayerKind::GroupNorm(_)
                | LayerKind::Dropout { .. }
                | LayerKind::Dropout1d { .. }
                | LayerKind::Dropout2d { .. }
                | LayerKind::Relu
                | LayerKind::Sigmoid
                | LayerKind::Tanh
                | LayerKind::Activation(_)
                | LayerKind::Prelu { .. }
                | LayerKind::Softmax { .. }
                | LayerKind::LogSoftmax { .. }
                | LayerKind::Sequential(_)
                | LayerKind::Residual { .. }
                | LayerKind::Combine(_) => layer.kind.layer_type().name().to_owned(),
            };
            format!("{} ({kind})", info.path)
        }
        None => "model.input".to_owned(),
    };
    Err(TrainError::TooLarge {
        what,
        bytes: total,
        batch: spec.data.batch_size,
        limit,
    })
}

/// Builds a trainer for the spec with its initial weights (default init, or
/// `init.from` relative to `base_dir`), and checks the data's class indices.
pub fn prepare(
    spec: &Spec,
    base_dir: &Path,
    data: &SpecData,
    backend: Box<dyn Backend>,
) -> Result<Trainer, TrainError> {
    if let Some(names) = data.train.class_names() {
        // labels.json, written from these names, must name every class the model outputs.
        let classes = crate::inference::classes_of(spec)?;
        if names.len() != classes {
            return Err(TrainError::Data(format!(
                "{} has {} class labels ({}) but the model outputs {classes} classes; a run's labels.json must name every class: make the last layer's out {}, or add rows of the missing classes",
                data.train.origin.targets,
                names.len(),
                graphc_data::listing(names),
                names.len()
            )));
        }
    }
    let mut trainer = Trainer::new(spec.clone(), backend, data.layout)?;
    if let InitSpec::From(path) = &spec.model.init {
        trainer.load_init(&base_dir.join(path))?;
    }
    for set in std::iter::once(&data.train).chain(data.valid.iter()) {
        if let Targets::Classes { indices, .. } = &set.targets {
            trainer.check_targets(indices, &|row| set.row_location(row))?;
        }
        trainer.check_data_features(set)?;
    }
    Ok(trainer)
}

/// Runs the spec at `spec_path` to its end and writes `metrics.jsonl`, `model.safetensors`,
/// `checkpoint/`, `loss.svg`, and `labels.json` (text class labels) and `standardize.json`
/// (`standardize: true`) into `options.out_dir`, which must be new or empty (see
/// [`train_or_resume`]).
pub fn train(spec_path: &Path, options: RunOptions) -> Result<Summary, TrainError> {
    train_or_resume(spec_path, options, None, false)
}

/// Continues the run whose checkpoint is `checkpoint` (a `checkpoint/` directory that
/// [`train`] wrote) to the end the spec sets, so that the result is bitwise the result of a
/// run never stopped. `metrics.jsonl` is the checkpoint's run's, cut back to where the
/// checkpoint was taken, and continued. A checkpoint that does not fit the spec is an error
/// naming what differs.
pub fn resume(
    spec_path: &Path,
    options: RunOptions,
    checkpoint: &Path,
) -> Result<Summary, TrainError> {
    train_or_resume(spec_path, options, Some(checkpoint), false)
}

/// [`train`], or with `resume` [`resume`], into `options.out_dir`, which is locked for the
/// run. A new or empty directory is written directly; one that holds the checkpoint being
/// resumed, or anything else when `overwrite` is set, gets the run's files only once the run
/// has succeeded (they are made in a staging directory inside it); any other non-empty one is
/// refused. A failed run leaves the directory as it was, but for the checkpoints a resume of the
/// directory's own checkpoint has promoted into it (see `rundir.rs`).
pub fn train_or_resume(
    spec_path: &Path,
    options: RunOptions,
    resume: Option<&Path>,
    overwrite: bool,
) -> Result<Summary, TrainError> {
    let world = crate::collective::World::start().map_err(TrainError::Parallel)?;
    if world.size() <= 1 {
        return train_across(spec_path, options, (resume, overwrite), world.collective());
    }
    // One of several MPI ranks: every rank trains the same model on its shares of the batches;
    // only rank 0 writes the output directory (the others write into a scratch directory that
    // goes with them). A failing rank prints why and ends every rank.
    let rank = world.rank();
    let scratch;
    let mut options = options;
    if rank != 0 {
        scratch = tempfile::tempdir()
            .map_err(|e| TrainError::Parallel(format!("rank {rank}: no scratch directory: {e}")))?;
        options.out_dir = scratch.path().join("run");
        options.quiet = true;
    }
    match train_across(spec_path, options, (resume, overwrite), world.collective()) {
        Ok(summary) => Ok(summary),
        Err(e) => {
            // Nothing is left to report a failed write to: the abort still ends every rank.
            let _ = crate::console::println(
                crate::console::Stream::Stderr,
                &format!("error: rank {rank} of {}: {e}", world.size()),
            );
            world.abort(1)
        }
    }
}

/// [`train_or_resume`] as one of the processes of `world`.
fn train_across(
    spec_path: &Path,
    options: RunOptions,
    (resume, overwrite): (Option<&Path>, bool),
    world: Box<dyn crate::collective::Collective + Send>,
) -> Result<Summary, TrainError> {
    let started = Instant::now();
    let mut spec = graphc_spec::parse_file_with(spec_path, &options.overrides)?;
    // Printed once the checkpoint has passed its checks.
    let warnings = match resume {
        Some(dir) => checkpoint::adopt_hypers(dir, &mut spec),
        None => Vec::new(),
    };
    // Before the data is read; Session::new checks again for every other entry point.
    check_size(&spec)?;
    let base_dir = spec_path.parent().unwrap_or(Path::new("."));
    let data = load_data_on(&spec, base_dir, world.size())?;
    let mut trainer = prepare(&spec, base_dir, &data, options.backend)?;
    trainer.set_collective(world);
    // Bad input so far has not touched the output directory.
    let mut dir = RunDir::open(&options.out_dir, resume, overwrite)?;
    let files = Files {
        work: dir.work(),
        promoted_to: dir.promoted_to(),
    };
    let resume = resume.map(|dir| (dir, warnings.as_slice()));
    match run(&spec, &data, trainer, options.quiet, resume, files) {
        Ok(mut summary) => {
            dir.commit()?;
            summary.seconds = started.elapsed().as_secs_f64();
            Ok(summary)
        }
        Err(e) => {
            dir.abandon();
            Err(e)
        }
    }
}

/// Where a run writes: `work` (the output directory or its staging directory), and checkpoints
/// into `promoted_to` instead when it is set (a resume of that directory's own checkpoint).
#[derive(Clone, Copy)]
struct Files<'a> {
    work: &'a Path,
    promoted_to: Option<&'a Path>,
}

/// The run itself once its data is loaded and its trainer built, writing into `files`.
fn run(
    spec: &Spec,
    data: &SpecData,
    mut trainer: Trainer,
    quiet: bool,
    resume_from: Option<(&Path, &[String])>,
    files: Files,
) -> Result<Summary, TrainError> {
    let out = files.work;
    let n = data.train.len();
    let order = BatchOrder {
        seed: spec.seed,
        shuffle: spec.data.shuffle,
        samples: n,
        batch_size: spec.data.batch_size,
        drop_last: spec.data.drop_last,
        accumulate: spec.train.accumulate,
    };
    let batch_count = batch_ranges(n, spec.data.batch_size, spec.data.drop_last).len();
    let mut progress = Progress::default();
    let mut metrics_before = None;
    let mut best_before = None;
    if let Some((dir, warnings)) = resume_from {
        let dir = checkpoint::resolve(dir)?;
        let what = format!("checkpoint `{}`", dir.display());
        let groups: Vec<OptimizerKind> = trainer
            .live_groups()
            .iter()
            .map(|&g| graphc_nn::group_settings(&spec.optimizer, g).clone())
            .collect();
        let saved = checkpoint::read(&dir, &spec.optimizer.kind, &groups)?;
        if let Some(message) = saved.order.difference(&order) {
            return Err(TrainError::Checkpoint { what, message });
        }
        saved.check_position(&dir, spec.train.epochs, batch_count as u64)?;
        trainer
            .load_state(&saved.state, &what)
            .map_err(|e| match e {
                TrainError::Checkpoint { what, message } if !message.contains("; ") => {
                    TrainError::Checkpoint {
                        what,
                        message: format!("{message}; resume with the spec that wrote the checkpoint, or train without --resume"),
                    }
                }
                other => other,
            })?;
        for warning in warnings {
            crate::console::println(crate::console::Stream::Stderr, warning)?;
        }
        progress = saved.progress;
        best_before = saved
            .best
            .zip(progress.monitor.and_then(|m| m.best))
            .and_then(|(state, (epoch, value))| {
                let monitor = spec.train.early_stopping.unwrap_or_default().monitor;
                spec.train.keep_best.then_some((
                    state,
                    Best {
                        monitor,
                        epoch,
                        value,
                    },
                ))
            });
        let run_dir = dir.parent().unwrap_or(Path::new("."));
        metrics_before = Some(run_metrics(run_dir, &dir, progress.metrics_bytes)?);
    }

    // Every file is new, in a directory that was empty or made for this run.
    let metrics_path = out.join(METRICS_FILE);
    let metrics = new_metrics(&metrics_path, metrics_before, progress.metrics_bytes)?;
    let kept = progress.metrics_bytes;

    let updates_per_epoch = batch_count.div_ceil(spec.train.accumulate.max(1)) as u64;
    let total_steps = match (spec.train.steps, spec.train.epochs) {
        (Some(s), Some(e)) => Some(s.min(e.saturating_mul(updates_per_epoch))),
        (Some(s), None) => Some(s),
        (None, Some(e)) => Some(e.saturating_mul(updates_per_epoch)),
        (None, None) => None,
    };
    let mut reporter = Reporter::new(
        Mode::detect(quiet),
        total_steps,
        trainer.step_count(),
        spec.train.epochs,
    );
    let mut files = RunFiles {
        metrics,
        metrics_path,
        bytes: kept,
        checkpoint_dir: files.promoted_to.unwrap_or(out).join(CHECKPOINT_DIR),
        promoted_to: files.promoted_to.map(Path::to_path_buf),
        metrics_linked: false,
        order,
        checkpointed: None,
        hooks: TestHooks::from_env(),
        last_epoch: None,
        keep_best: spec.train.keep_best,
        best: best_before,
    };
    let end = fit(
        &mut trainer,
        &data.train,
        data.valid.as_ref(),
        &mut progress,
        &mut [&mut files as &mut dyn Observer, &mut reporter],
    )?;
    files.flush()?;
    write_model_files(out, data)?;
    let model = trainer.model_state();
    write_state_dict(&out.join(MODEL_FILE), &model.tensors, &model.counters)?;
    if files.checkpointed != Some((progress.epoch, progress.batch)) {
        files.on_checkpoint(&trainer, &progress)?;
    }
    if let Some((state, best)) = &files.best {
        write_best(&out.join(BEST_FILE), state, best)?;
    }
    let last_epoch = files.last_epoch;
    drop(files);
    #[cfg(feature = "plot")]
    write_loss_plot(&out.join(PLOT_FILE), &[read_metrics(out)?])?;
    reporter.finish()?;
    let train_eval = trainer.evaluate(&data.train)?;
    Ok(Summary {
        steps: trainer.step_count(),
        epochs: end.epochs,
        last_epoch,
        last_batch_loss: progress.last_loss.unwrap_or(f32::NAN),
        train: train_eval,
        stop: end.stop,
        seconds: 0.0,
        ranks: trainer.summing(),
    })
}

/// What `graphc train` writes as it trains: a line of `metrics.jsonl` per update and per
/// validation, and the checkpoints, which record how long `metrics.jsonl` was.
struct RunFiles {
    metrics: BufWriter<File>,
    metrics_path: PathBuf,
    /// Bytes of `metrics.jsonl` so far.
    bytes: u64,
    checkpoint_dir: PathBuf,
    /// The output directory checkpoints are promoted into (see `rundir.rs`), for a resume of
    /// its own checkpoint.
    promoted_to: Option<PathBuf>,
    /// Its `metrics.jsonl` is a hard link to this run's.
    metrics_linked: bool,
    order: BatchOrder,
    /// The (epoch, batch) position of the last checkpoint written.
    checkpointed: Option<(u64, u64)>,
    hooks: TestHooks,
    /// The last epoch's row, for the run's summary.
    last_epoch: Option<LastEpoch>,
    /// `train.keep_best`.
    keep_best: bool,
    /// The parameters at the best epoch so far, with `keep_best`.
    best: Option<(StateDict, Best)>,
}

/// What the end-to-end tests ask of a run through the environment, read once when it starts.
#[derive(Default)]
struct TestHooks {
    /// `GRAPHC_TEST_ABORT_AFTER_STEP=N`: abort (as abruptly as a kill) once step N's line is on
    /// disk, before anything later is written.
    abort_after: Option<u64>,
    /// `GRAPHC_TEST_RSS_AT_STEPS=N,M,...`: after each of these steps, print the process's
    /// resident memory (`VmRSS` of `/proc/self/status`) on standard error, for the soak test.
    rss_at: Vec<u64>,
}

impl TestHooks {
    fn from_env() -> TestHooks {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        TestHooks {
            abort_after: var("GRAPHC_TEST_ABORT_AFTER_STEP").parse().ok(),
            rss_at: var("GRAPHC_TEST_RSS_AT_STEPS")
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect(),
        }
    }
}

/// The `VmRSS:` line of `/proc/self/status` (`VmRSS:     1234 kB`), or what went wrong.
fn resident_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "VmRSS: unknown".to_owned())
}

impl RunFiles {
    fn write_err(&self, e: std::io::Error) -> TrainError {
        TrainError::io("write", &self.metrics_path, &e, "check free disk space")
    }

    fn write_line(&mut self, line: &impl serde::Serialize) -> Result<(), TrainError> {
        match write_json_line(&mut self.metrics, line) {
            Ok(n) => {
                self.bytes += n;
                Ok(())
            }
            Err(e) => Err(self.write_err(e)),
        }
    }

    fn flush(&mut self) -> Result<(), TrainError> {
        self.metrics.flush().map_err(|e| self.write_err(e))
    }
}

impl Observer for RunFiles {
    fn on_step(&mut self, event: &StepEvent) -> Result<ControlFlow<()>, TrainError> {
        self.write_line(&StepLine {
            step: event.step,
            epoch: event.epoch,
            loss: event.loss,
            lr: event.lr,
            lrs: event.lrs.clone(),
            values: Values(&event.values),
        })?;
        if self.hooks.rss_at.contains(&event.step) {
            let line = format!("step {}: {}", event.step, resident_memory());
            crate::console::println(crate::console::Stream::Stderr, &line)?;
        }
        if self.hooks.abort_after == Some(event.step) {
            self.flush()?;
            std::process::abort();
        }
        Ok(ControlFlow::Continue(()))
    }

    fn on_epoch(&mut self, event: &EpochEvent) -> Result<ControlFlow<()>, TrainError> {
        self.last_epoch = Some(LastEpoch {
            epoch: event.epoch,
            finished: event.finished,
            train_loss: event.train.loss,
            valid: event.valid,
        });
        if let Some(e) = event.valid {
            self.write_line(&ValidLine {
                epoch: event.epoch,
                valid_loss: e.loss,
                valid_accuracy: e.accuracy,
                valid_rmse: e.rmse,
            })?;
        }
        Ok(ControlFlow::Continue(()))
    }

    fn on_checkpoint(&mut self, trainer: &Trainer, progress: &Progress) -> Result<(), TrainError> {
        self.flush()?;
        if let Some(out) = &self.promoted_to {
            if !self.metrics_linked {
                self.metrics_linked = crate::rundir::promote_metrics(&self.metrics_path, out)?;
            }
        }
        let progress = Progress {
            metrics_bytes: self.bytes,
            ..progress.clone()
        };
        let best = self
            .best
            .as_ref()
            .map(|(state, best)| move |path: &Path| write_best(path, state, best));
        checkpoint::write_with_best(
            &self.checkpoint_dir,
            &trainer.state_dict(),
            &progress,
            &self.order,
            best.as_ref().map(|w| w as checkpoint::WriteFile<'_>),
        )?;
        self.checkpointed = Some((progress.epoch, progress.batch));
        Ok(())
    }

    fn on_best(&mut self, trainer: &Trainer, best: &Best) -> Result<(), TrainError> {
        if self.keep_best {
            self.best = Some((trainer.model_state(), *best));
        }
        Ok(())
    }
}

/// Writes `best.safetensors`: the parameters `state` with the epoch, metric and value of
/// `best` in its metadata (`epoch`, `monitor`, `value`).
fn write_best(path: &Path, state: &StateDict, best: &Best) -> Result<(), TrainError> {
    let metadata = [
        ("epoch", best.epoch.to_string()),
        ("monitor", best.monitor.name().to_owned()),
        ("value", best.value.to_string()),
    ];
    write_state_dict_with(path, &state.tensors, &state.counters, &metadata)
}

/// The progress bar or lines and the epoch table, as an observer of the run.
impl Observer for Reporter {
    fn on_step(&mut self, event: &StepEvent) -> Result<ControlFlow<()>, TrainError> {
        self.step(event.step, event.epoch, event.loss);
        Ok(ControlFlow::Continue(()))
    }

    fn on_epoch(&mut self, event: &EpochEvent) -> Result<ControlFlow<()>, TrainError> {
        self.epoch(EpochRow {
            epoch: event.epoch,
            train: event.train,
            valid: event.valid,
        })?;
        Ok(ControlFlow::Continue(()))
    }
}

/// The trained parameters in a run directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// The class names of a run whose training targets were text labels, in index order.
pub const LABELS_FILE: &str = "labels.json";
/// The standardization statistics of a run with `standardize: true`.
pub const STANDARDIZE_FILE: &str = "standardize.json";
/// The loss plot of a run.
pub const PLOT_FILE: &str = "loss.svg";
/// The rows `data.split` held out.
pub const SPLIT_FILE: &str = "split.json";
/// The parameters at the best monitored epoch (`train.keep_best: true`).
pub const BEST_FILE: &str = "best.safetensors";

/// Writes what `eval` and `predict` need besides the weights: `labels.json` when the training
/// targets had class names, `standardize.json` when the features were standardized; and
/// `split.json` when `data.split` held rows out.
fn write_model_files(out: &Path, data: &SpecData) -> Result<(), TrainError> {
    if let Some(names) = data.train.class_names() {
        write_labels_json(&out.join(LABELS_FILE), names)?;
    }
    if let Some(s) = &data.standardizer {
        s.save(&out.join(STANDARDIZE_FILE))?;
    }
    if let Some(split) = &data.split {
        split.save(&out.join(SPLIT_FILE))?;
    }
    Ok(())
}

/// The `metrics.jsonl` of the run whose checkpoint `checkpoint` is (in `run_dir`), checked to
/// hold the `keep` bytes the checkpoint was taken at, ending with a whole line, before anything
/// is written.
fn run_metrics(run_dir: &Path, checkpoint: &Path, keep: u64) -> Result<PathBuf, TrainError> {
    let path = run_dir.join(METRICS_FILE);
    let fail = |message: String| TrainError::Checkpoint {
        what: format!("checkpoint `{}`", checkpoint.display()),
        message,
    };
    let mut file = File::open(&path).map_err(|e| {
        fail(format!(
            "its run's `{}` cannot be read ({e}); a resumed run continues the metrics of the run that wrote the checkpoint",
            path.display()
        ))
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last = [0u8];
    let ends_a_line = keep == 0
        || (keep <= len
            && file.seek(SeekFrom::Start(keep - 1)).is_ok()
            && file.read_exact(&mut last).is_ok()
            && last[0] == b'\n');
    if len < keep || !ends_a_line {
        return Err(fail(format!(
            "it was taken when `{}` held {keep} bytes, but it holds {len}{}; the metrics were changed or cut: resume from an intact run or train anew",
            path.display(),
            if len < keep { "" } else { " and no line ends there" }
        )));
    }
    Ok(path)
}

/// Creates `metrics.jsonl` at `path` (a new file: an existing one or a symbolic link there is
/// an error) and, for a resumed run, copies the first `keep` bytes of `before` into it.
fn new_metrics(
    path: &Path,
    before: Option<PathBuf>,
    keep: u64,
) -> Result<BufWriter<File>, TrainError> {
    let fail =
        |e: std::io::Error| TrainError::io("create", path, &e, "choose a writable --out directory");
    let mut file = File::create_new(path).map_err(fail)?;
    if let Some(before) = before {
        let source = File::open(&before)
            .map_err(|e| TrainError::io("read", &before, &e, "check the run's metrics.jsonl"))?;
        let copied = std::io::copy(&mut source.take(keep), &mut file).map_err(fail)?;
        if copied != keep {
            return Err(TrainError::io(
                "read",
                &before,
                &std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                "the run's metrics.jsonl changed during the resume",
            ));
        }
    }
    Ok(BufWriter::new(file))
}

/// Writes one JSON line; returns the bytes written.
fn write_json_line(out: &mut impl Write, line: &impl serde::Serialize) -> std::io::Result<u64> {
    let mut text = serde_json::to_vec(line)?;
    text.push(b'\n');
    out.write_all(&text)?;
    Ok(text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layers: &str, batch: usize) -> Spec {
        let text = format!(
            "data: {{train: {{csv: d.csv, target: y}}, batch_size: {batch}}}\n\
             model: {{input: [4], layers: [{layers}]}}\n\
             loss: {{type: mse}}\noptimizer: {{type: sgd, lr: 0.1}}\ntrain: {{epochs: 1}}\n"
        );
        graphc_spec::parse_str(&text, Path::new("s.yaml")).unwrap()
    }

    #[test]
    fn activations_count_the_input_and_every_layer_output_per_sample() {
        let s = spec(
            "{type: linear, out: 16}, {type: relu}, {type: linear, out: 3}",
            8,
        );
        assert_eq!(activations_per_sample(&s).unwrap(), 4 + 16 + 16 + 3);
    }

    #[test]
    fn size_check_counts_parameters_and_batch_activations_and_names_the_largest_layer() {
        let s = spec(
            "{type: linear, out: 16}, {type: relu}, {type: linear, out: 3}",
            8,
        );
        // Parameters 4·16+16 + 16·3+3 = 131 → 16 bytes each; activations (16+16+3)·8 → 8
        // bytes each and their gradients; the input batch 4·8 → 4 bytes.
        let bytes = 131 * 16 + 35 * 8 * 8 + 4 * 8 * 4;
        assert!(check_size_within(&s, bytes).is_ok());
        let msg = check_size_within(&s, bytes - 1).unwrap_err().to_string();
        assert!(
            msg.contains("the largest part is model.layers[0] (linear, out 16)")
                && msg.contains("a batch of 8"),
            "{msg}"
        );
        let huge = spec("{type: linear, out: 1000000000000}", 1);
        assert!(
            check_size_within(&huge, u128::MAX >> 1).is_ok(),
            "no overflow"
        );
        let msg = check_size(&huge).unwrap_err().to_string();
        assert!(msg.contains("TiB"), "{msg}");
    }
}
