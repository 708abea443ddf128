//! `graphc eval SPEC --weights FILE [--data CSV] [--per-sample]`: the loss and accuracy (or
//! RMSE) of trained weights on the spec's validation set, its training set, or a CSV file;
//! with `--per-sample`, each sample's loss as CSV.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use graphc::stages::train::console::{self, Stream};
use graphc::stages::train::{EvalData, Model};

/// The arguments of `graphc eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The spec file the weights were trained from.
    pub spec: PathBuf,
    /// The trained weights: a run directory DIR, or a .safetensors file (DIR/model.safetensors,
    /// or a PyTorch state_dict) (default: the spec's model.init.from).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// A CSV file to evaluate on (default: the spec's validation set, else its training set).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The target column(s) of --data, when the spec's own data is not CSV.
    #[arg(long, value_delimiter = ',')]
    pub target: Option<Vec<String>>,
    /// Print each sample's loss as CSV (`sample,loss`) on standard output; the summary goes to
    /// standard error.
    #[arg(long)]
    pub per_sample: bool,
    /// Executor: jit (default) or interp.
    #[arg(long, default_value = "jit")]
    pub backend: String,
}

/// Runs `graphc eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    let kind = crate::backend_kind(&args.backend)?;
    let model = Model::load(&args.spec, args.weights.as_deref())?;
    crate::print_notes(&model)?;
    let which = match &args.data {
        Some(path) => EvalData::Csv(path),
        None => EvalData::Spec,
    };
    let set = model.labelled(which, args.target.as_deref())?;
    let mut trainer = model.compile(&set.data, kind.backend())?;
    let e = trainer.evaluate(&set.data)?;
    let mut summary = format!("loss {:.6}", e.loss);
    if let Some(a) = e.accuracy {
        summary += &format!(", accuracy {:.2}%", a * 100.0);
    }
    if let Some(r) = e.rmse {
        summary += &format!(", RMSE {r:.6}");
    }
    summary += &format!(" on {} ({} samples)", set.name, set.data.len());
    if args.per_sample {
        let losses = trainer.per_sample_losses(&set.data)?;
        let mut text = String::from("sample,loss\n");
        for (i, l) in losses.iter().enumerate() {
            text += &format!("{i},{l}\n");
        }
        crate::out(&text)?;
        console::println(Stream::Stderr, &summary)?;
        Ok(())
    } else {
        crate::outln(&summary)
    }
}
