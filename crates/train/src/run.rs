//! `train` and `resume`: the whole run of `graphc train SPEC` — data, loop (gradient
//! accumulation, scheduler steps), metrics, checkpoints, the final model — with the output
//! files SPEC.md fixes.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use graphc_ir::Backend;
use graphc_nn::TargetLayout;
use graphc_nn::Task;
use graphc_spec::{InitSpec, OptimizerKind, Spec};

use crate::checkpoint::{self, BatchOrder, Progress, CHECKPOINT_DIR};
use crate::{
    batch_ranges, epoch_order, load_sets, write_safetensors, BatchTargets, Dataset, Evaluation,
    Standardizer, TargetKind, Targets, TrainError, Trainer,
};

/// One line of `metrics.jsonl` per update, keys in SPEC.md's order. `loss` is the mean of
/// the losses of the batches the update summed (one batch without accumulation); `lr` is
/// the learning rate the update used (the top-level group's, else the first group's), and
/// `lrs` every group's, in PyTorch's `param_groups` order, when there are several.
#[derive(serde::Serialize)]
struct StepLine {
    step: u64,
    epoch: u64,
    loss: f32,
    lr: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lrs: Option<Vec<f64>>,
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
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Updates done.
    pub steps: u64,
    /// Epochs started.
    pub epochs: u64,
    /// The last step's loss.
    pub final_loss: f32,
    /// The final model on the whole training set.
    pub train: Evaluation,
    /// Wall-clock seconds of the run, compilation included.
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trained {} steps ({} epochs) in {:.2} s: final loss {:.4}",
            self.steps, self.epochs, self.seconds, self.final_loss
        )?;
        if let Some(a) = self.train.accuracy {
            write!(f, ", train accuracy {:.1}%", a * 100.0)?;
        }
        if let Some(r) = self.train.rmse {
            write!(f, ", train RMSE {r:.4}")?;
        }
        Ok(())
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
}

/// Loads the spec's data (paths relative to `base_dir`), standardizes it when
/// asked, and checks that it fits the model's input.
pub fn load_data(spec: &Spec, base_dir: &Path) -> Result<SpecData, TrainError> {
    let kind = match graphc_nn::task_of(&spec.loss) {
        Task::MultiClass { .. } => TargetKind::ClassIndex,
        _ => TargetKind::Float,
    };
    let (mut train, mut valid) = load_sets(&spec.data, base_dir, kind, spec.seed)?;
    if spec.data.standardize {
        let scaler = Standardizer::fit(&train);
        scaler.apply(&mut train);
        if let Some(v) = valid.as_mut() {
            scaler.apply(v);
        }
    }
    let per_sample: usize = spec.model.input.iter().product();
    for data in std::iter::once(&train).chain(valid.iter()) {
        if data.num_features() != per_sample {
            return Err(TrainError::Data(format!(
                "model.input is {:?} ({per_sample} values per sample) but {} has {} feature columns ({}); set model.input or data features to match",
                spec.model.input,
                data.origin.features,
                data.num_features(),
                data.feature_names.join(", ")
            )));
        }
    }
    let layout = match &train.targets {
        Targets::Classes { .. } => TargetLayout::Classes,
        Targets::Floats { width, .. } => TargetLayout::Floats { width: *width },
    };
    Ok(SpecData {
        train,
        valid,
        layout,
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
    let mut trainer = Trainer::new(spec.clone(), backend, data.layout)?;
    if let InitSpec::From(path) = &spec.model.init {
        trainer.load_init(&base_dir.join(path))?;
    }
    for set in std::iter::once(&data.train).chain(data.valid.iter()) {
        if let Targets::Classes { indices, .. } = &set.targets {
            trainer.check_targets(indices, &|row| set.row_location(row))?;
        }
    }
    Ok(trainer)
}

/// Runs the spec at `spec_path` to its end and writes `metrics.jsonl`, `model.safetensors`
/// and `checkpoint/` into `options.out_dir`.
pub fn train(spec_path: &Path, options: RunOptions) -> Result<Summary, TrainError> {
    run(spec_path, options, None)
}

/// Continues the run whose checkpoint is `checkpoint` (a `checkpoint/` directory that
/// [`train`] wrote) to the end the spec sets, so that the result is bitwise the result of a
/// run never stopped. `metrics.jsonl` in `options.out_dir` is cut back to where the
/// checkpoint was taken and continued. A checkpoint that does not fit the spec is an error
/// naming what differs.
pub fn resume(
    spec_path: &Path,
    options: RunOptions,
    checkpoint: &Path,
) -> Result<Summary, TrainError> {
    run(spec_path, options, Some(checkpoint))
}

fn run(
    spec_path: &Path,
    options: RunOptions,
    resume_from: Option<&Path>,
) -> Result<Summary, TrainError> {
    let started = Instant::now();
    let spec = graphc_spec::parse_file(spec_path)?;
    let base_dir = spec_path.parent().unwrap_or(Path::new("."));
    let data = load_data(&spec, base_dir)?;
    let mut trainer = prepare(&spec, base_dir, &data, options.backend)?;
    let n = data.train.len();
    let order = BatchOrder {
        seed: spec.seed,
        shuffle: spec.data.shuffle,
        samples: n,
        batch_size: spec.data.batch_size,
        drop_last: spec.data.drop_last,
        accumulate: spec.train.accumulate,
    };
    let mut progress = Progress {
        epoch: 0,
        batch: 0,
        epoch_loss_sum: 0.0,
        pending_loss_sum: 0.0,
        last_loss: None,
        metrics_bytes: 0,
    };
    if let Some(dir) = resume_from {
        let what = format!("checkpoint `{}`", dir.display());
        let groups: Vec<OptimizerKind> = trainer
            .live_groups()
            .iter()
            .map(|&g| graphc_nn::group_settings(&spec.optimizer, g).clone())
            .collect();
        let saved = checkpoint::read(dir, &spec.optimizer.kind, &groups)?;
        if let Some(message) = saved.order.difference(&order) {
            return Err(TrainError::Checkpoint { what, message });
        }
        trainer.load_state(&saved.state, &what)?;
        progress = saved.progress;
    }

    let out = &options.out_dir;
    std::fs::create_dir_all(out).map_err(|e| {
        TrainError::io(
            "create output directory",
            out,
            &e,
            "choose a writable --out directory",
        )
    })?;
    let metrics_path = out.join("metrics.jsonl");
    let (mut metrics, kept) =
        open_metrics(&metrics_path, resume_from.map(|_| progress.metrics_bytes))?;
    progress.metrics_bytes = kept;
    let write_err =
        |e: std::io::Error| TrainError::io("write", &metrics_path, &e, "check free disk space");
    let checkpoint_dir = out.join(CHECKPOINT_DIR);

    let metrics_group = lr_group(&trainer, &spec);
    let many_groups = trainer.live_groups().len() > 1;
    let batches = batch_ranges(n, spec.data.batch_size, spec.data.drop_last);
    let batch_count = batches.len();
    let accumulate = spec.train.accumulate.max(1);
    let mut features = Vec::new();
    let mut targets = BatchTargets::Floats(Vec::new());
    let max_steps = spec.train.steps.unwrap_or(u64::MAX);
    let max_epochs = spec.train.epochs.unwrap_or(u64::MAX);
    let mut epoch = progress.epoch;
    // Batches of the pending accumulation (their losses make the update's loss).
    let mut pending = trainer.pending_batches();
    let mut checkpointed = None;
    while epoch < max_epochs && trainer.step_count() < max_steps {
        epoch += 1;
        if batch_count == 0 {
            return Err(TrainError::Data(format!(
                "epoch {epoch} has no batch: {n} samples with batch_size {} and drop_last",
                spec.data.batch_size
            )));
        }
        let visit = epoch_order(n, spec.data.shuffle, spec.seed, epoch - 1);
        let first = progress.batch as usize;
        for (b, range) in batches.clone().enumerate().skip(first) {
            if trainer.step_count() >= max_steps {
                break;
            }
            data.train
                .gather(&visit[range], &mut features, &mut targets);
            let update = pending + 1 >= accumulate || b + 1 == batch_count;
            let lr = trainer.lrs();
            let loss = trainer.step_batch(&features, &targets, update)?;
            if !loss.is_finite() {
                metrics.flush().map_err(write_err)?;
                return Err(TrainError::Diverged {
                    step: trainer.step_count() + u64::from(!update),
                    epoch,
                    loss,
                    hint: "lower optimizer.lr, or check the data for extreme values (every target of this batch may be ignore_index)",
                });
            }
            progress.batch = b as u64 + 1;
            progress.epoch_loss_sum += f64::from(loss);
            progress.pending_loss_sum += f64::from(loss);
            pending += 1;
            if update {
                let loss = (progress.pending_loss_sum / pending as f64) as f32;
                let line = StepLine {
                    step: trainer.step_count(),
                    epoch,
                    loss,
                    lr: lr.get(metrics_group).copied().unwrap_or(f64::NAN),
                    lrs: many_groups.then_some(lr),
                };
                progress.metrics_bytes +=
                    write_json_line(&mut metrics, &line).map_err(write_err)?;
                progress.last_loss = Some(loss);
                progress.pending_loss_sum = 0.0;
                pending = 0;
            }
        }
        let finished = progress.batch as usize == batch_count;
        let mean_loss = progress.epoch_loss_sum / progress.batch.max(1) as f64;
        let mut line = format!("epoch {epoch}: loss {mean_loss:.4}");
        let mut metric = mean_loss;
        if let Some(valid) = &data.valid {
            let e = trainer.evaluate(valid)?;
            line += &format!(", valid loss {:.4}", e.loss);
            if let Some(a) = e.accuracy {
                line += &format!(", valid accuracy {:.1}%", a * 100.0);
            }
            let valid_line = ValidLine {
                epoch,
                valid_loss: e.loss,
                valid_accuracy: e.accuracy,
                valid_rmse: e.rmse,
            };
            progress.metrics_bytes +=
                write_json_line(&mut metrics, &valid_line).map_err(write_err)?;
            metric = f64::from(e.loss);
        }
        if !options.quiet {
            eprintln!("{line}");
        }
        if !finished {
            // Stopped by train.steps inside the epoch: the position stays inside it.
            progress.epoch = epoch - 1;
            break;
        }
        trainer.end_epoch(metric)?;
        progress.epoch = epoch;
        progress.batch = 0;
        progress.epoch_loss_sum = 0.0;
        if spec
            .train
            .checkpoint_every
            .is_some_and(|every| epoch.is_multiple_of(every))
        {
            metrics.flush().map_err(write_err)?;
            checkpoint::write(&checkpoint_dir, &trainer.state_dict(), &progress, &order)?;
            checkpointed = Some((progress.epoch, progress.batch));
        }
    }
    metrics.flush().map_err(write_err)?;
    write_safetensors(&out.join("model.safetensors"), &trainer.params())?;
    if checkpointed != Some((progress.epoch, progress.batch)) {
        checkpoint::write(&checkpoint_dir, &trainer.state_dict(), &progress, &order)?;
    }
    let train_eval = trainer.evaluate(&data.train)?;
    Ok(Summary {
        steps: trainer.step_count(),
        epochs: epoch,
        final_loss: progress.last_loss.unwrap_or(f32::NAN),
        train: train_eval,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The group whose learning rate `metrics.jsonl`'s `lr` shows, as an index into
/// [`Trainer::lrs`]: the top-level group when it holds parameters, else the first group.
fn lr_group(trainer: &Trainer, spec: &Spec) -> usize {
    let top = spec.optimizer.param_groups.len();
    trainer
        .live_groups()
        .iter()
        .position(|&g| g == top)
        .unwrap_or(0)
}

/// Opens `metrics.jsonl`: a new file, or for a resumed run the existing one cut back to
/// `keep` bytes (a new file when it is shorter, e.g. in another output directory). Returns
/// the writer and the bytes the file starts with.
fn open_metrics(path: &Path, keep: Option<u64>) -> Result<(BufWriter<File>, u64), TrainError> {
    let fail =
        |e: std::io::Error| TrainError::io("create", path, &e, "choose a writable --out directory");
    let (file, kept) = match keep {
        Some(keep) if std::fs::metadata(path).is_ok_and(|m| m.len() >= keep) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(fail)?;
            file.set_len(keep).map_err(fail)?;
            let mut file = file;
            file.seek(SeekFrom::End(0)).map_err(fail)?;
            (file, keep)
        }
        _ => (File::create(path).map_err(fail)?, 0),
    };
    Ok((BufWriter::new(file), kept))
}

/// Writes one JSON line; returns the bytes written.
fn write_json_line(out: &mut impl Write, line: &impl serde::Serialize) -> std::io::Result<u64> {
    let mut text = serde_json::to_vec(line)?;
    text.push(b'\n');
    out.write_all(&text)?;
    Ok(text.len() as u64)
}
