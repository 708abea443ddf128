//! `graphc predict SPEC --weights FILE --data CSV [--out FILE]`: the trained model's
//! predictions for the samples of a CSV file, as CSV — class names (from the run's
//! `labels.json`) or indices for classifiers, values for regressors — written atomically.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use graphc::stages::train::console::{self, Stream};
use graphc::stages::train::{write_text, Model};

/// The arguments of `graphc predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The spec file the weights were trained from.
    pub spec: PathBuf,
    /// The trained weights: DIR/model.safetensors, or the run directory DIR (default: the
    /// spec's model.init.from).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The samples: a CSV file with the spec's feature columns (target columns may be absent).
    #[arg(long)]
    pub data: PathBuf,
    /// Write the predictions to this file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Executor: jit (default) or interp.
    #[arg(long, default_value = "jit")]
    pub backend: String,
}

/// Runs `graphc predict`.
pub fn run(args: &PredictArgs) -> Result<()> {
    let kind = crate::backend_kind(&args.backend)?;
    let model = Model::load(&args.spec, args.weights.as_deref())?;
    let data = model.unlabelled(&args.data)?;
    let mut trainer = model.compile(&data, kind.backend())?;
    let text = model.predictions_csv(&mut trainer, &data)?;
    match &args.out {
        Some(path) => {
            write_text(path, &text)?;
            let line = format!("wrote {} predictions to {}", data.len(), path.display());
            Ok(console::println(Stream::Stderr, &line)?)
        }
        None => crate::out(&text),
    }
}
