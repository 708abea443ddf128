//! `graphc predict SPEC --weights W --data CSV [--proba] [--out FILE]`: the trained model's
//! predictions for the samples of a CSV file, as CSV — class names (from the run's
//! `labels.json`, else the training data) or indices for classifiers, values for regressors,
//! or with `--proba` one probability column per class — written atomically.

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
    /// The trained weights: a run directory DIR, or a .safetensors file (DIR/model.safetensors,
    /// or a PyTorch state_dict) (default: the spec's model.init.from).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The samples: a CSV file with the spec's feature columns (target columns may be absent).
    #[arg(long)]
    pub data: PathBuf,
    /// Write class probabilities, one column per class headed by its name, instead of classes.
    #[arg(long)]
    pub proba: bool,
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
    if args.proba {
        model.probability()?;
    }
    crate::print_notes(&model)?;
    let data = model.unlabelled(&args.data)?;
    let mut trainer = model.compile(&data, kind.backend())?;
    let text = if args.proba {
        model.probabilities_csv(&mut trainer, &data)?
    } else {
        model.predictions_csv(&mut trainer, &data)?
    };
    match &args.out {
        Some(path) => {
            write_text(path, &text)?;
            let line = format!("wrote {} predictions to {}", data.len(), path.display());
            Ok(console::println(Stream::Stderr, &line)?)
        }
        None => crate::out(&text),
    }
}
