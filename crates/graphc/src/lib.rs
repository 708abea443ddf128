//! graphc as a library: parse a training spec, load its data, build a trainer (PyTorch's
//! default init, or the spec's `model.init.from`) and [`fit`] it — the loop `graphc train`
//! runs, with a closure or an [`Observer`] instead of the run's files — then read the
//! parameters by their `state_dict` names.
//!
//! ```
//! use std::ops::ControlFlow;
//!
//! let spec: graphc::Spec = "
//! data: {train: {synthetic: {kind: blobs, samples: 64, features: 4, classes: 3}}, batch_size: 16}
//! model: {input: [4], layers: [{type: linear, out: 3}]}
//! loss: {type: cross_entropy}
//! optimizer: {type: sgd, lr: 0.1}
//! train: {epochs: 3}
//! ".parse()?;
//! let data = graphc::load_data(&spec, ".")?;
//! let mut trainer = graphc::prepare(&spec, ".", &data, graphc::BackendKind::Jit)?;
//! graphc::fit(&mut trainer, &data, &mut |step: &graphc::StepEvent| {
//!     println!("step {}: loss {:.4}", step.step, step.loss);
//!     ControlFlow::Continue(())
//! })?;
//! let weight = &trainer.param_info()[0];
//! assert_eq!((weight.name.as_str(), &weight.shape[..]), ("0.weight", &[3, 4][..]));
//! println!("{:?}", trainer.param("0.weight"));
//! # Ok::<(), graphc::Error>(())
//! ```

#![forbid(unsafe_code)]

use std::path::Path;

pub use graphc_interp::Interp;
pub use graphc_ir::{Backend, Executable, Graph};
pub use graphc_jit::Jit;
pub use graphc_nn::TargetLayout;
pub use graphc_spec::{parse_str, ObjectiveSpec, Override, Spec, SpecError, SweepAxis};
pub use graphc_spec::{OptimizerKind, OptimizerSpec, SgdSpec};
pub use graphc_train::{
    BatchTargets, Dataset, EpochEvent, Evaluation, FitEnd, LastEpoch, NamedTensor, Observer,
    Optimizer, OptimizerState, RunOptions, SpecData, StepEvent, Summary, TrainError, Trainer,
    TrainerState,
};

/// Every way a call of this crate can fail, with the message to show as its `Display`.
#[derive(Debug)]
pub enum Error {
    /// The spec could not be read or is invalid.
    Spec(SpecError),
    /// The model, data, weights or a run failed.
    Train(TrainError),
    /// The spec does not build a graph.
    Model(graphc_nn::NnError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Spec(e) => e.fmt(f),
            Error::Train(e) => e.fmt(f),
            Error::Model(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spec(e) => e.source(),
            Error::Train(e) => e.source(),
            Error::Model(e) => e.source(),
        }
    }
}

impl Error {
    /// The error is a write to standard output or standard error whose reader went away (a
    /// closed pipe), which a command ends on quietly.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Train(e) => e.is_broken_pipe(),
            Error::Spec(_) | Error::Model(_) => false,
        }
    }
}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Error {
        Error::Spec(e)
    }
}

impl From<TrainError> for Error {
    fn from(e: TrainError) -> Error {
        Error::Train(e)
    }
}

impl From<graphc_nn::NnError> for Error {
    fn from(e: graphc_nn::NnError) -> Error {
        Error::Model(e)
    }
}

/// The crates behind the facade, for the command-line tool and the benchmarks; not part of
/// the embedding API, which is everything else in this crate.
#[doc(hidden)]
pub mod stages {
    pub use graphc_autodiff as autodiff;
    pub use graphc_data as data;
    pub use graphc_interp as interp;
    pub use graphc_ir as ir;
    pub use graphc_jit as jit;
    pub use graphc_nn as nn;
    pub use graphc_opt as opt;
    pub use graphc_spec as spec;
    pub use graphc_train as train;
}

/// The executors a step can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The Cranelift JIT: the whole step as fused native kernels (the default).
    Jit,
    /// The reference interpreter.
    Interp,
}

impl BackendKind {
    /// The backend by its command-line name (`interp`).
    pub fn from_name(name: &str) -> Option<BackendKind> {
        BackendKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The command-line name of the backend.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Jit => "jit",
            BackendKind::Interp => "interp",
        }
    }

    /// Every backend, for benchmarks and cross-backend tests.
    pub const ALL: &'static [BackendKind] = &[BackendKind::Jit, BackendKind::Interp];

    /// Names accepted by [`BackendKind::from_name`].
    pub const NAMES: &'static [&'static str] = &["jit", "interp"];

    /// A fresh backend of this kind.
    pub fn backend(self) -> Box<dyn Backend> {
        match self {
            BackendKind::Jit => Box::new(Jit),
            BackendKind::Interp => Box::new(Interp),
        }
    }
}

/// Reads and validates a spec file.
pub fn parse_spec(path: &Path) -> Result<Spec, SpecError> {
    graphc_spec::parse_file(path)
}

/// Reads the spec at `path` with `--set KEY=VALUE` overrides applied in order.
pub fn parse_spec_with(path: &Path, overrides: &[Override]) -> Result<Spec, SpecError> {
    graphc_spec::parse_file_with(path, overrides)
}

/// Loads the spec's data, paths relative to `base_dir`, standardized as the spec asks and
/// checked against the model's input, as `graphc train` loads it.
pub fn load_data(spec: &Spec, base_dir: impl AsRef<Path>) -> Result<SpecData, Error> {
    Ok(graphc_train::load_data(spec, base_dir.as_ref())?)
}

/// [`load_data`] for one of `ranks` data-parallel processes: with more than one, features in
/// a CSV or `.npy` file stay there and each rank reads the rows it steps (the same values).
pub fn load_data_on(
    spec: &Spec,
    base_dir: impl AsRef<Path>,
    ranks: usize,
) -> Result<SpecData, Error> {
    Ok(graphc_train::load_data_on(spec, base_dir.as_ref(), ranks)?)
}

/// A trainer for `spec` on `backend` with its initial weights as `graphc train` makes them
/// (PyTorch's default init from `spec.seed`, or `model.init.from` relative to `base_dir`),
/// the targets of `data` checked against the model.
pub fn prepare(
    spec: &Spec,
    base_dir: impl AsRef<Path>,
    data: &SpecData,
    backend: BackendKind,
) -> Result<Trainer, Error> {
    Ok(graphc_train::prepare(
        spec,
        base_dir.as_ref(),
        data,
        backend.backend(),
    )?)
}

/// Compiles `spec` for `backend` to be stepped batch by batch with [`Trainer::step`];
/// targets are class indices for cross entropy, else floats shaped like the model output.
/// Initial weights are PyTorch's default init from `spec.seed`, or `model.init.from`
/// (relative to the working directory). Features are used as given: [`load_data`]
/// standardizes a spec's own data.
pub fn compile(spec: &Spec, backend: BackendKind) -> Result<Trainer, Error> {
    let layout = graphc_nn::natural_layout(spec)?;
    let mut trainer = Trainer::new(spec.clone(), backend.backend(), layout)?;
    if let graphc_spec::InitSpec::From(path) = &spec.model.init {
        trainer.load_init(path)?;
    }
    Ok(trainer)
}

/// Trains `trainer` on `data` (validating after each epoch when it has a validation set) to
/// the end its spec sets, or until `observer` stops it: the loop of `graphc train`, so the
/// losses are the ones `graphc train` writes to `metrics.jsonl`.
pub fn fit(
    trainer: &mut Trainer,
    data: &SpecData,
    observer: &mut dyn Observer,
) -> Result<FitEnd, Error> {
    let mut progress = graphc_train::checkpoint::Progress::default();
    Ok(graphc_train::fit(
        trainer,
        &data.train,
        data.valid.as_ref(),
        &mut progress,
        observer,
    )?)
}

/// Runs the spec at `spec_path` as `graphc train` does, writing its run directory.
pub fn train(spec_path: &Path, options: RunOptions) -> Result<Summary, Error> {
    Ok(graphc_train::train(spec_path, options)?)
}

/// Continues a run from its checkpoint as `graphc train --resume` does.
pub fn resume(spec_path: &Path, options: RunOptions, checkpoint: &Path) -> Result<Summary, Error> {
    Ok(graphc_train::resume(spec_path, options, checkpoint)?)
}

/// `graphc train [--resume CHECKPOINT] [--overwrite]`: trains or resumes into
/// `options.out_dir`, replacing the files of a run already there only with `overwrite`, and
/// only once the new run has succeeded.
pub fn train_or_resume(
    spec_path: &Path,
    options: RunOptions,
    resume: Option<&Path>,
    overwrite: bool,
) -> Result<Summary, Error> {
    Ok(graphc_train::train_or_resume(
        spec_path, options, resume, overwrite,
    )?)
}

/// One layer of a model summary (blocks after their layers, as the model is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// The prefix of its `state_dict` names: its `name` or index, under its blocks'
    /// (`features.0`, `2.body.1`, `layer1.0.conv1`).
    pub name: String,
    /// Its `type` (`linear`, `relu`, `residual`, `add`).
    pub kind: &'static str,
    /// What it reads: `input` or other layers' names.
    pub inputs: Vec<String>,
    /// The shape of its output for one sample (without the batch axis).
    pub output_shape: Vec<usize>,
    /// The number of parameters it holds.
    pub params: usize,
    /// How many of them are frozen (`requires_grad: false`, its own or a block's).
    pub frozen: usize,
    /// Whether the model's output depends on it; a node of `model.nodes` that does not keeps
    /// its parameters in the `state_dict`, untrained.
    pub reaches_output: bool,
}

/// Checks that `spec` builds a training step and summarizes its model layer by layer.
pub fn summarize(spec: &Spec) -> Result<Vec<LayerSummary>, Error> {
    let layers = graphc_nn::describe_model(&spec.model, spec.data.batch_size)?;
    let layout = graphc_nn::natural_layout(spec)?;
    graphc_nn::build_step(spec, spec.data.batch_size, layout)?;
    let names: Vec<String> = layers.iter().map(|l| l.prefix.clone()).collect();
    let summary = layers
        .into_iter()
        .map(|layer| LayerSummary {
            params: usize::try_from(layer.param_count()).unwrap_or(usize::MAX),
            frozen: layer
                .params
                .iter()
                .filter(|p| !p.trainable && layer.reaches_output)
                .map(|p| usize::try_from(p.numel()).unwrap_or(usize::MAX))
                .fold(0, usize::saturating_add),
            inputs: layer
                .inputs
                .iter()
                .map(|source| match source {
                    graphc_nn::Source::Input => "input".to_owned(),
                    graphc_nn::Source::Entry(j) => names[*j].clone(),
                })
                .collect(),
            name: layer.prefix,
            kind: layer.layer_type.name(),
            output_shape: layer.output,
            reaches_output: layer.reaches_output,
        })
        .collect();
    Ok(summary)
}

/// The model as Graphviz DOT: one box per layer (name, type, output shape), an edge per
/// input, unused nodes dashed.
pub fn model_dot(spec: &Spec, layers: &[LayerSummary]) -> String {
    // A DOT string: quotes and backslashes escaped; `\n` in labels is added after.
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut dot = String::from("digraph model {\n  rankdir=TB;\n  node [shape=box];\n");
    let input = graphc_spec::shown_list(&spec.model.input);
    dot += &format!("  \"input\" [label=\"input\\n{input}\"];\n");
    for layer in layers {
        let name = esc(&layer.name);
        let shape = graphc_spec::shown_list(&layer.output_shape);
        let style = if layer.reaches_output {
            ""
        } else {
            ", style=dashed"
        };
        dot += &format!(
            "  \"{name}\" [label=\"{name}\\n{} {shape}\"{style}];\n",
            layer.kind
        );
        for input in &layer.inputs {
            dot += &format!("  \"{}\" -> \"{name}\";\n", esc(input));
        }
    }
    dot += "}\n";
    dot
}
