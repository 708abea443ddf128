//! `graphc plot DIR [DIR...] [--out FILE] [--smooth BETA,...]`: the losses of one or more runs (their
//! `metrics.jsonl`) drawn into one SVG, to compare learning rates or momentum settings.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use graphc::stages::train::{read_metrics, write_styled_loss_plot, PlotStyle, PLOT_FILE};

/// The arguments of `graphc plot`.
#[derive(Args)]
pub struct PlotArgs {
    /// Run directories written by `graphc train`.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The SVG file (default: DIR/loss.svg for one run, loss.svg for several).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also draw each training loss's bias-corrected exponentially weighted moving average
    /// for these betas (e.g. --smooth 0.8,0.9,0.98).
    #[arg(long, value_delimiter = ',', value_name = "BETA")]
    pub smooth: Vec<f64>,
}

/// Runs `graphc plot`.
pub fn run(args: &PlotArgs) -> Result<()> {
    let mut runs = args
        .dirs
        .iter()
        .map(|d| read_metrics(d))
        .collect::<Result<Vec<_>, _>>()?;
    // Runs whose directories end in the same name are told apart by their whole paths.
    let labels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
    for (run, dir) in runs.iter_mut().zip(&args.dirs) {
        if labels.iter().filter(|l| **l == run.label).count() > 1 {
            run.label = dir.display().to_string();
        }
    }
    let out = match (&args.out, args.dirs.as_slice()) {
        (Some(out), _) => out.clone(),
        (None, [one]) => one.join(PLOT_FILE),
        (None, _) => Path::new(PLOT_FILE).to_path_buf(),
    };
    let style = PlotStyle {
        betas: args.smooth.clone(),
        ..PlotStyle::default()
    };
    write_styled_loss_plot(&out, &runs, &style)?;
    crate::outln(&format!("wrote {}", out.display()))
}
