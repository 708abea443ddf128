//! graphc as a library: compile a training spec (YAML text, a file, or a typed
//! `Spec`) for a backend and step it batch by batch, reading the loss and the
//! parameters by name.
//!
//! ```no_run
//! let spec = graphc::parse_spec(std::path::Path::new("specs/iris.yaml"))?;
//! let mut trainer = graphc::compile(&spec, graphc::BackendKind::Interp)?;
//! let loss = trainer.step(&[5.1, 3.5, 1.4, 0.2], &graphc::BatchTargets::Classes(vec![0]))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

pub use graphc_interp::Interp;
pub use graphc_ir::{Backend, Executable, Graph};
pub use graphc_jit::Jit;
pub use graphc_nn::TargetLayout;
pub use graphc_spec::{parse_str, Spec, SpecError};
pub use graphc_spec::{OptimizerKind, OptimizerSpec, SgdSpec};
pub use graphc_train::{
    resume, train, BatchTargets, Dataset, Evaluation, NamedTensor, Optimizer, OptimizerState,
    RunOptions, Summary, TrainError, Trainer, TrainerState,
};

/// The crates behind the facade, for programs that need one stage alone.
pub mod stages {
    pub use graphc_autodiff as autodiff;
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

/// Compiles `spec` for `backend` with PyTorch's default init from `spec.seed`;
/// targets are class indices for cross entropy, else floats shaped like the
/// model output.
pub fn compile(spec: &Spec, backend: BackendKind) -> Result<Trainer, TrainError> {
    let layout = graphc_nn::natural_layout(spec)?;
    Trainer::new(spec.clone(), backend.backend(), layout)
}

/// One layer of a model summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// The layer's `name`, or its index in `model.layers`.
    pub name: String,
    /// Its `type` (`linear`, `relu`).
    pub kind: &'static str,
    /// The shape of its output for one sample (without the batch axis).
    pub output_shape: Vec<usize>,
    /// The number of parameters it holds.
    pub params: usize,
}

/// Checks that `spec` builds a training step and summarizes its model layer by layer.
pub fn summarize(spec: &Spec) -> Result<Vec<LayerSummary>, graphc_nn::NnError> {
    let layers = graphc_nn::describe_model(&spec.model, spec.data.batch_size)?;
    let layout = graphc_nn::natural_layout(spec)?;
    graphc_nn::build_step(spec, spec.data.batch_size, layout)?;
    let summary = layers
        .into_iter()
        .map(|layer| LayerSummary {
            params: usize::try_from(layer.param_count()).unwrap_or(usize::MAX),
            name: layer.prefix,
            kind: layer.layer_type.name(),
            output_shape: layer.output,
        })
        .collect();
    Ok(summary)
}
