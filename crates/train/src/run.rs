//! `train`: the whole run of `graphc train SPEC` — data, loop, metrics,
//! the final model — with the output files SPEC.md fixes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use graphc_ir::Backend;
use graphc_nn::TargetLayout;
use graphc_nn::Task;
use graphc_spec::{InitSpec, SourceSpec, Spec};

use crate::{
    batch_ranges, csv_line, epoch_order, load_csv, write_safetensors, BatchTargets, Dataset,
    Evaluation, Standardizer, TargetKind, Targets, TrainError, Trainer,
};

/// One line of `metrics.jsonl` per step, keys in SPEC.md's order.
#[derive(serde::Serialize)]
struct StepLine {
    step: u64,
    epoch: u64,
    loss: f32,
    lr: f32,
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
    let kind = |source: &SourceSpec| match graphc_nn::task_of(&spec.loss) {
        Task::MultiClass { .. } if source.target.len() == 1 => TargetKind::ClassIndex,
        _ => TargetKind::Float,
    };
    let load = |source: &SourceSpec| {
        load_csv(
            &base_dir.join(&source.csv),
            &source.target,
            source.features.as_deref(),
            kind(source),
        )
    };
    let mut train = load(&spec.data.train)?;
    let mut valid = spec.data.valid.as_ref().map(load).transpose()?;
    if spec.data.standardize {
        let scaler = Standardizer::fit(&train);
        scaler.apply(&mut train);
        if let Some(v) = valid.as_mut() {
            scaler.apply(v);
        }
    }
    let per_sample: usize = spec.model.input.iter().product();
    for (data, source) in
        std::iter::once((&train, &spec.data.train)).chain(valid.iter().zip(spec.data.valid.iter()))
    {
        if data.num_features() != per_sample {
            return Err(TrainError::Data(format!(
                "model.input is {:?} ({per_sample} values per sample) but `{}` has {} feature columns ({}); set model.input or data features to match",
                spec.model.input,
                source.csv.display(),
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
    let sets = std::iter::once((&data.train, &spec.data.train))
        .chain(data.valid.iter().zip(spec.data.valid.iter()));
    for (set, source) in sets {
        if let Targets::Classes { indices, .. } = &set.targets {
            let file = source.csv.display().to_string();
            trainer.check_targets(indices, &|row| format!("`{file}` line {}", csv_line(row)))?;
        }
    }
    Ok(trainer)
}

/// Runs the spec at `spec_path` to its end and writes `metrics.jsonl` and
/// `model.safetensors` into `options.out_dir`.
pub fn train(spec_path: &Path, options: RunOptions) -> Result<Summary, TrainError> {
    let started = Instant::now();
    let spec = graphc_spec::parse_file(spec_path)?;
    let base_dir = spec_path.parent().unwrap_or(Path::new("."));
    let data = load_data(&spec, base_dir)?;
    let mut trainer = prepare(&spec, base_dir, &data, options.backend)?;

    std::fs::create_dir_all(&options.out_dir).map_err(|e| {
        TrainError::io(
            "create output directory",
            &options.out_dir,
            &e,
            "choose a writable --out directory",
        )
    })?;
    let metrics_path = options.out_dir.join("metrics.jsonl");
    let file = File::create(&metrics_path).map_err(|e| {
        TrainError::io(
            "create",
            &metrics_path,
            &e,
            "choose a writable --out directory",
        )
    })?;
    let mut metrics = BufWriter::new(file);
    let write_err =
        |e: std::io::Error| TrainError::io("write", &metrics_path, &e, "check free disk space");

    let defaults_group = spec.optimizer.param_groups.len();
    let n = data.train.len();
    let mut features = Vec::new();
    let mut targets = BatchTargets::Floats(Vec::new());
    let mut final_loss = f32::NAN;
    let mut epoch = 0;
    let max_steps = spec.train.steps.unwrap_or(u64::MAX);
    let max_epochs = spec.train.epochs.unwrap_or(u64::MAX);
    while epoch < max_epochs && trainer.step_count() < max_steps {
        epoch += 1;
        let order = epoch_order(n, spec.data.shuffle, spec.seed, epoch - 1);
        let mut epoch_loss = 0.0f64;
        let mut epoch_steps = 0u64;
        for range in batch_ranges(n, spec.data.batch_size, spec.data.drop_last) {
            if trainer.step_count() >= max_steps {
                break;
            }
            data.train
                .gather(&order[range], &mut features, &mut targets);
            let lr = trainer.lr(defaults_group).unwrap_or(f32::NAN);
            let loss = trainer.step(&features, &targets)?;
            let step = trainer.step_count();
            let line = StepLine {
                step,
                epoch,
                loss,
                lr,
            };
            write_json_line(&mut metrics, &line).map_err(write_err)?;
            if !loss.is_finite() {
                metrics.flush().map_err(write_err)?;
                return Err(TrainError::Diverged {
                    step,
                    epoch,
                    loss,
                    hint: "lower optimizer.lr, or check the data for extreme values (every target of this batch may be ignore_index)",
                });
            }
            final_loss = loss;
            epoch_loss += f64::from(loss);
            epoch_steps += 1;
        }
        if epoch_steps == 0 {
            return Err(TrainError::Data(format!(
                "epoch {epoch} has no batch: {n} samples with batch_size {} and drop_last",
                spec.data.batch_size
            )));
        }
        let mut progress = format!("epoch {epoch}: loss {:.4}", epoch_loss / epoch_steps as f64);
        if let Some(valid) = &data.valid {
            let e = trainer.evaluate(valid)?;
            progress += &format!(", valid loss {:.4}", e.loss);
            if let Some(a) = e.accuracy {
                progress += &format!(", valid accuracy {:.1}%", a * 100.0);
            }
            let line = ValidLine {
                epoch,
                valid_loss: e.loss,
                valid_accuracy: e.accuracy,
                valid_rmse: e.rmse,
            };
            write_json_line(&mut metrics, &line).map_err(write_err)?;
        }
        if !options.quiet {
            eprintln!("{progress}");
        }
    }
    metrics.flush().map_err(write_err)?;
    write_safetensors(
        &options.out_dir.join("model.safetensors"),
        &trainer.params(),
    )?;
    let train_eval = trainer.evaluate(&data.train)?;
    Ok(Summary {
        steps: trainer.step_count(),
        epochs: epoch,
        final_loss,
        train: train_eval,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn write_json_line(out: &mut impl Write, line: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}
