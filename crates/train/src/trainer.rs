//! `Trainer`: a spec compiled for a backend, stepped one batch at a time.
//!
//! A step graph has static shapes, so each batch size gets its own compiled
//! step (the full batch, and a last partial batch). The newest parameters and
//! optimizer state live in whichever executable ran last; switching batch
//! size copies them over, which happens at most twice per epoch.

use std::path::Path;

use graphc_ir::{Arg, Backend, Executable, IrError};
use graphc_nn::{
    build_eval, build_step, default_init, initial_lr, Hyper, ParamInfo, StepGraph, TargetLayout,
};
use graphc_nn::{task_of, Task};
use graphc_spec::Spec;

use crate::{read_safetensors, BatchTargets, Dataset, NamedTensor, TrainError};

/// One step graph compiled for one batch size.
struct Compiled {
    batch: usize,
    step: StepGraph,
    exe: Box<dyn Executable>,
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

/// A spec compiled for one backend: steps, parameters, learning rates.
pub struct Trainer {
    spec: Spec,
    backend: Box<dyn Backend>,
    layout: TargetLayout,
    steps: Vec<Compiled>,
    evals: Vec<Compiled>,
    /// Index in `steps` of the executable holding the newest parameters and state.
    holder: usize,
    lrs: Vec<f32>,
    step_count: u64,
}

/// Largest batch the evaluator runs at once; larger data sets go in chunks.
const EVAL_CHUNK: usize = 4096;

impl Trainer {
    /// Compiles the training step of `spec` for its batch size on `backend`,
    /// with parameters from PyTorch's default init drawn from `spec.seed`.
    pub fn new(
        spec: Spec,
        backend: Box<dyn Backend>,
        layout: TargetLayout,
    ) -> Result<Trainer, TrainError> {
        let groups = spec.optimizer.param_groups.len() + 1;
        let lrs = (0..groups).map(|g| initial_lr(&spec, g)).collect();
        let mut trainer = Trainer {
            spec,
            backend,
            layout,
            steps: Vec::new(),
            evals: Vec::new(),
            holder: 0,
            lrs,
            step_count: 0,
        };
        let batch = trainer.spec.data.batch_size;
        let compiled = trainer.compile(batch, true)?;
        trainer.steps.push(compiled);
        let params = trainer.steps[0].step.params.clone();
        let values = default_init(&params, trainer.spec.seed);
        for (p, v) in params.iter().zip(&values) {
            trainer.set_param(&p.name, v)?;
        }
        Ok(trainer)
    }

    fn compile(&self, batch: usize, training: bool) -> Result<Compiled, TrainError> {
        let mut step = if training {
            build_step(&self.spec, batch, self.layout)?
        } else {
            build_eval(&self.spec, batch, self.layout)?
        };
        graphc_opt::optimize(&mut step.graph).map_err(|e| self.backend_error(e))?;
        let exe = self
            .backend
            .compile(&step.graph)
            .map_err(|e| self.backend_error(e))?;
        Ok(Compiled { batch, step, exe })
    }

    fn backend_error(&self, source: IrError) -> TrainError {
        TrainError::Backend {
            backend: self.backend.name(),
            source,
        }
    }

    /// The spec this trainer was compiled from.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The model's parameters in `state_dict` order.
    pub fn param_info(&self) -> &[ParamInfo] {
        &self.steps[0].step.params
    }

    /// Number of updates done so far.
    pub fn step_count(&self) -> u64 {
        self.step_count
    }

    /// The learning rate in force for parameter group `group` (`param_groups`
    /// index; `param_groups.len()` is the top-level defaults).
    pub fn lr(&self, group: usize) -> Option<f32> {
        self.lrs.get(group).copied()
    }

    /// Sets the learning rate of a group for the next steps; no recompilation.
    pub fn set_lr(&mut self, group: usize, lr: f32) -> Result<(), TrainError> {
        match self.lrs.get_mut(group) {
            Some(slot) => {
                *slot = lr;
                Ok(())
            }
            None => Err(TrainError::Data(format!("no parameter group {group}"))),
        }
    }

    /// The current value of a parameter or optimizer state buffer.
    pub fn param(&self, name: &str) -> Option<&[f32]> {
        self.steps[self.holder].exe.read(name)
    }

    /// Overwrites a parameter (or state buffer) by name.
    pub fn set_param(&mut self, name: &str, data: &[f32]) -> Result<(), TrainError> {
        let holder = self.holder;
        self.steps[holder]
            .exe
            .write(name, data)
            .map_err(|e| self.backend_error(e))
    }

    /// All parameters with their names and PyTorch shapes.
    pub fn params(&self) -> Vec<NamedTensor> {
        self.param_info()
            .iter()
            .map(|p| NamedTensor {
                name: p.name.clone(),
                shape: p.shape.clone(),
                data: self.param(&p.name).map(<[f32]>::to_vec).unwrap_or_default(),
            })
            .collect()
    }

    /// Loads initial parameters from a safetensors file with `state_dict`
    /// names; a missing, extra or misshapen tensor is an error naming it.
    pub fn load_init(&mut self, path: &Path) -> Result<(), TrainError> {
        let tensors = read_safetensors(path)?;
        let err = |message: String| TrainError::Init {
            path: path.to_path_buf(),
            message,
        };
        let expected = self.param_info().to_vec();
        for t in &tensors {
            if !expected.iter().any(|p| p.name == t.name) {
                let names: Vec<&str> = expected.iter().map(|p| p.name.as_str()).collect();
                return Err(err(format!(
                    "tensor `{}` is not a parameter of this model; its parameters are {}",
                    t.name,
                    names.join(", ")
                )));
            }
        }
        for p in &expected {
            let Some(t) = tensors.iter().find(|t| t.name == p.name) else {
                return Err(err(format!(
                    "missing tensor `{}` of shape {:?}",
                    p.name, p.shape
                )));
            };
            if t.shape != p.shape {
                return Err(err(format!(
                    "tensor `{}` has shape {:?}, the model needs {:?}",
                    p.name, t.shape, p.shape
                )));
            }
            self.set_param(&p.name, &t.data)?;
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
        let Task::MultiClass { ignore_index } = task_of(&self.spec.loss) else {
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
                    "{}: class index {c} is outside [0, {classes}) for a model with {classes} outputs{note}",
                    describe_row(row)
                )));
            }
        }
        Ok(())
    }

    /// Number of model outputs per sample (classes, for a classifier).
    pub fn classes(&self) -> usize {
        let s = &self.steps[0].step;
        let out = s.graph.outputs()[s.model_output].node;
        s.graph.shape(out).last().copied().unwrap_or(1)
    }

    /// Runs one training step (forward, loss, backward, update) on a batch and
    /// returns its loss, computed before the update.
    pub fn step(&mut self, features: &[f32], targets: &BatchTargets) -> Result<f32, TrainError> {
        let batch = self.batch_of(features)?;
        if let BatchTargets::Classes(indices) = targets {
            self.check_targets(indices, &|row| format!("batch row {row}"))?;
        }
        let index = match self.steps.iter().position(|c| c.batch == batch) {
            Some(i) => i,
            None => {
                let compiled = self.compile(batch, true)?;
                self.steps.push(compiled);
                self.steps.len() - 1
            }
        };
        self.move_state_to(index)?;
        let hypers: Vec<f32> = self.steps[index]
            .step
            .hypers
            .iter()
            .map(|h| match h {
                Hyper::Lr { group } => self.lrs[*group],
                Hyper::Step => (self.step_count + 1) as f32,
            })
            .collect();
        let compiled = &mut self.steps[index];
        let mut args = vec![Arg::F32(features), targets_arg(targets)];
        args.extend(hypers.iter().map(std::slice::from_ref).map(Arg::F32));
        let result = compiled.exe.run(&args);
        result.map_err(|e| self.backend_error(e))?;
        self.step_count += 1;
        let compiled = &self.steps[index];
        Ok(compiled.exe.output(compiled.step.loss_output)[0])
    }

    fn batch_of(&self, features: &[f32]) -> Result<usize, TrainError> {
        let per_sample: usize = self.spec.model.input.iter().product();
        if per_sample == 0 || !features.len().is_multiple_of(per_sample) || features.is_empty() {
            return Err(TrainError::Data(format!(
                "a batch of {} feature values is not a whole number of samples of {per_sample}",
                features.len()
            )));
        }
        Ok(features.len() / per_sample)
    }

    /// Names of every persistent buffer: parameters, then optimizer state.
    fn persistent_names(&self) -> Vec<String> {
        let s = &self.steps[0].step;
        s.params
            .iter()
            .map(|p| p.name.clone())
            .chain(s.state.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    fn move_state_to(&mut self, index: usize) -> Result<(), TrainError> {
        if index == self.holder {
            return Ok(());
        }
        for name in self.persistent_names() {
            let data = self.steps[self.holder].exe.read(&name).map(<[f32]>::to_vec);
            if let Some(data) = data {
                self.steps[index]
                    .exe
                    .write(&name, &data)
                    .map_err(|e| self.backend_error(e))?;
            }
        }
        self.holder = index;
        Ok(())
    }

    /// Loss and accuracy (classifiers) or RMSE (regressors) of the current
    /// parameters on a whole data set, without updating anything.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Evaluation, TrainError> {
        let n = data.len();
        let mut loss_sum = 0.0f64;
        let (mut correct, mut counted, mut squared) = (0usize, 0usize, 0.0f64);
        let mut features = Vec::new();
        let mut targets = BatchTargets::Floats(Vec::new());
        let mut start = 0;
        while start < n {
            let rows: Vec<usize> = (start..n.min(start + EVAL_CHUNK)).collect();
            data.gather(&rows, &mut features, &mut targets);
            let index = match self.evals.iter().position(|c| c.batch == rows.len()) {
                Some(i) => i,
                None => {
                    let compiled = self.compile(rows.len(), false)?;
                    self.evals.push(compiled);
                    self.evals.len() - 1
                }
            };
            for p in self.param_info().to_vec() {
                let value = self.param(&p.name).map(<[f32]>::to_vec).unwrap_or_default();
                self.evals[index]
                    .exe
                    .write(&p.name, &value)
                    .map_err(|e| self.backend_error(e))?;
            }
            let compiled = &mut self.evals[index];
            let args = [Arg::F32(&features), targets_arg(&targets)];
            let result = compiled.exe.run(&args);
            result.map_err(|e| self.backend_error(e))?;
            let compiled = &self.evals[index];
            loss_sum +=
                f64::from(compiled.exe.output(compiled.step.loss_output)[0]) * rows.len() as f64;
            let output = compiled.exe.output(compiled.step.model_output);
            let width = output.len() / rows.len();
            let task = task_of(&self.spec.loss);
            match (task, &targets) {
                (Task::MultiClass { ignore_index }, BatchTargets::Classes(y)) => {
                    for (row, &t) in y.iter().enumerate() {
                        if ignore_index != Some(t) {
                            counted += 1;
                            correct += usize::from(
                                argmax(&output[row * width..(row + 1) * width]) as i64 == t,
                            );
                        }
                    }
                }
                (Task::MultiClass { .. }, BatchTargets::Floats(y)) => {
                    for row in 0..rows.len() {
                        let r = row * width..(row + 1) * width;
                        counted += 1;
                        correct += usize::from(argmax(&output[r.clone()]) == argmax(&y[r]));
                    }
                }
                (Task::Binary { from_logits }, BatchTargets::Floats(y)) => {
                    let threshold = if from_logits { 0.0 } else { 0.5 };
                    for (&o, &t) in output.iter().zip(y) {
                        counted += 1;
                        correct += usize::from((o > threshold) == (t >= 0.5));
                    }
                }
                (Task::Regression, BatchTargets::Floats(y)) => {
                    for (&o, &t) in output.iter().zip(y) {
                        counted += 1;
                        squared += f64::from(o - t).powi(2);
                    }
                }
                (_, BatchTargets::Classes(_)) => {}
            }
            start += rows.len();
        }
        let classification = task_of(&self.spec.loss) != Task::Regression;
        let ratio = |a: f64, b: usize| if b == 0 { f64::NAN } else { a / b as f64 };
        Ok(Evaluation {
            loss: ratio(loss_sum, n) as f32,
            accuracy: classification.then(|| ratio(correct as f64, counted) as f32),
            rmse: (!classification).then(|| ratio(squared, counted).sqrt() as f32),
        })
    }
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
