//! The `graphc` command: `train`, `eval`, `predict`, `plot`, `check`, `graph`, `bench`,
//! `inspect`, `loss`. Each subcommand is a thin shell over the `graphc` library; errors print
//! one line and exit non-zero. Everything printed goes through graphc-train's `console`: a
//! failed write is an error (never a panic), and a closed pipe ends quietly with status 141.

#![forbid(unsafe_code)]

mod bench;
mod eval;
mod inspect;
mod loss_cmd;
mod plot;
mod predict;
mod sweep;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
use graphc::stages::nn;
use graphc::stages::spec::shown_list;
use graphc::stages::train::console::{self, ConsoleError, Stream, BROKEN_PIPE_STATUS};
use graphc::stages::train::TrainError;
use graphc::{BackendKind, RunOptions};

#[derive(Parser)]
#[command(
    name = "graphc",
    version,
    about = "A declarative training compiler: YAML spec in, trained model out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the model a spec describes; writes metrics.jsonl, model.safetensors, loss.svg, checkpoint/.
    Train {
        /// The spec file.
        spec: PathBuf,
        /// Output directory (default: runs/<spec file stem>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Executor: jit (default) or interp.
        #[arg(long, default_value = "jit")]
        backend: String,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
        /// Continue from a checkpoint (DIR/checkpoint) as if never stopped; --out defaults to DIR.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Replace the files of a run already in --out, once the new run has succeeded.
        #[arg(long)]
        overwrite: bool,
        /// Override a spec key by its dotted path, the value read as YAML (repeatable):
        /// --set optimizer.lr=0.05 --set model.layers.0.out=32.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<graphc::Override>,
    },
    /// Print a checkpoint's optimizer state as PyTorch's optimizer.state_dict() shows it.
    Inspect {
        /// The checkpoint directory (DIR/checkpoint).
        checkpoint: PathBuf,
    },
    /// Check a spec and print a model summary: layers, output shapes, parameter counts.
    Check {
        /// The spec file.
        spec: PathBuf,
        /// Override a spec key by its dotted path, the value read as YAML (repeatable):
        /// --set optimizer.lr=0.05 --set model.layers.0.out=32.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<graphc::Override>,
    },
    /// Time training steps on the spec's first batch; prints one JSON line.
    Bench {
        /// The spec file.
        spec: PathBuf,
        /// Executor: jit (default) or interp.
        #[arg(long, default_value = "jit")]
        backend: String,
        /// Steps to time after the first.
        #[arg(long, default_value_t = 100)]
        steps: u64,
        /// Override a spec key by its dotted path, the value read as YAML (repeatable):
        /// --set optimizer.lr=0.05 --set model.layers.0.out=32.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<graphc::Override>,
    },
    /// Print the optimized training-step graph as text (or, with --dot, the model's layers
    /// and then the step as Graphviz DOT).
    Graph {
        /// The spec file.
        spec: PathBuf,
        /// Print Graphviz DOT instead of text.
        #[arg(long)]
        dot: bool,
        /// Override a spec key by its dotted path, the value read as YAML (repeatable):
        /// --set optimizer.lr=0.05 --set model.layers.0.out=32.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<graphc::Override>,
    },
    /// Evaluate a loss on given values (as PyTorch's tutorials do); prints the loss, and with --grad its gradient.
    Loss(Box<loss_cmd::LossArgs>),
    /// Loss and accuracy (or RMSE) of trained weights on the spec's validation set, training set, or a CSV file.
    Eval(eval::EvalArgs),
    /// Predictions of trained weights for the samples of a CSV file, as CSV.
    Predict(predict::PredictArgs),
    /// Draw the losses of one or more runs into one SVG.
    Plot(plot::PlotArgs),
    /// Train one run per combination of --set KEY=VALUES, in parallel; writes sweep.csv and sweep.svg.
    Sweep(sweep::SweepArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The end of a failed command: quietly [`BROKEN_PIPE_STATUS`] when its output's reader went
/// away, else its message on standard error (if that can still be written) and status 1.
fn fail(e: &anyhow::Error) -> ExitCode {
    if broken_pipe(e) {
        return ExitCode::from(BROKEN_PIPE_STATUS);
    }
    // Nothing is left to report a failure of this write to; the status still says it failed.
    let _ = console::println(Stream::Stderr, &format!("error: {e:#}"));
    ExitCode::FAILURE
}

/// `e` (or an error it wraps) is a write to a standard stream whose reader went away.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<ConsoleError>()
            .is_some_and(ConsoleError::is_broken_pipe)
            || cause
                .downcast_ref::<TrainError>()
                .is_some_and(TrainError::is_broken_pipe)
            || cause
                .downcast_ref::<graphc::Error>()
                .is_some_and(graphc::Error::is_broken_pipe)
    })
}

/// Help, version, or a usage error from clap: printed as clap prints it (in colour on a
/// terminal), with a failed write handled as any other.
fn clap_exit(e: &clap::Error) -> ExitCode {
    let stream = if e.use_stderr() {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let printed = e.print().and_then(|()| match stream {
        Stream::Stdout => std::io::stdout().flush(),
        Stream::Stderr => std::io::stderr().flush(),
    });
    match printed {
        Ok(()) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1)),
        Err(error) => fail(&ConsoleError::new(stream, error).into()),
    }
}

/// Writes `text` to standard output.
pub(crate) fn out(text: &str) -> Result<()> {
    Ok(console::print(Stream::Stdout, text)?)
}

/// Writes `text` and a newline to standard output.
pub(crate) fn outln(text: &str) -> Result<()> {
    Ok(console::println(Stream::Stdout, text)?)
}

/// Writes each line of what a model took from elsewhere than the files beside its weights
/// (`Model::notes`) to standard error.
pub(crate) fn print_notes(model: &graphc::stages::train::Model) -> Result<()> {
    for note in model.notes() {
        console::println(Stream::Stderr, note)?;
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Loss(args) => loss_cmd::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Plot(args) => plot::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Train {
            spec,
            out,
            backend,
            quiet,
            resume,
            overwrite,
            set,
        } => {
            let kind = backend_kind(&backend)?;
            let out_dir = out.unwrap_or_else(|| match resume.as_deref().and_then(Path::parent) {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                Some(_) => PathBuf::from("."),
                None => default_out_dir(&spec),
            });
            let options = RunOptions {
                out_dir: out_dir.clone(),
                backend: kind.backend(),
                quiet,
                overrides: set,
            };
            let summary = graphc::train_or_resume(&spec, options, resume.as_deref(), overwrite)?;
            // Under mpirun, rank 0 reports for all.
            if !graphc::stages::train::collective::reports() {
                return Ok(());
            }
            outln(&format!("{summary}; wrote {}", out_dir.display()))
        }
        Command::Inspect { checkpoint } => inspect::inspect(&checkpoint),
        Command::Check { spec, set } => check(&spec, &set),
        Command::Bench {
            spec,
            backend,
            steps,
            set,
        } => bench::bench(&spec, &set, backend_kind(&backend)?, steps),
        Command::Graph { spec, dot, set } => {
            let spec = graphc::parse_spec_with(&spec, &set)?;
            let layout = nn::natural_layout(&spec)?;
            let step = graphc::stages::train::optimized_step(&spec, spec.data.batch_size, layout)?;
            out(&if dot {
                // The model as the user wrote it, then the step it compiles to.
                let layers = graphc::summarize(&spec)?;
                graphc::model_dot(&spec, &layers) + &step.graph.to_dot()
            } else {
                step.graph.to_text()
            })
        }
    }
}

/// The backend named on the command line.
fn backend_kind(name: &str) -> Result<BackendKind> {
    BackendKind::from_name(name).ok_or_else(|| {
        anyhow!(
            "unknown backend {name:?}; valid: {}",
            BackendKind::NAMES.join(", ")
        )
    })
}

/// `runs/<spec file stem>`.
fn default_out_dir(spec: &Path) -> PathBuf {
    let stem = spec.file_stem().map(|s| s.to_string_lossy().into_owned());
    PathBuf::from("runs").join(stem.unwrap_or_else(|| "run".into()))
}

/// `graphc check`'s description of an objective spec: the expression, then each parameter
/// with its shape and initial value.
fn objective_table(objective: &graphc::ObjectiveSpec) -> String {
    let mut rows = vec![["param".to_owned(), "shape".to_owned(), "init".to_owned()]];
    for p in &objective.params {
        let init = if p.vector {
            shown_list(&p.init)
        } else {
            p.init[0].to_string()
        };
        rows.push([p.name.clone(), shown_list(&p.shape()), init]);
    }
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let (w0, w1) = (width(0), width(1));
    let mut text = format!("objective: {}\n", objective.text);
    for r in &rows {
        text += format!("{:<w0$}  {:<w1$}  {}", r[0], r[1], r[2]).trim_end();
        text.push('\n');
    }
    let total: usize = objective.params.iter().map(|p| p.init.len()).sum();
    text += &format!("total parameters: {total}\n");
    text
}

fn check(path: &Path, overrides: &[graphc::Override]) -> Result<()> {
    let spec = graphc::parse_spec_with(path, overrides)?;
    if let Some(objective) = spec.model.objective() {
        return out(&format!(
            "{}spec OK: {}\n",
            objective_table(objective),
            path.display()
        ));
    }
    let layers = graphc::summarize(&spec)?;
    let mut rows = vec![[
        "layer".to_owned(),
        "type".to_owned(),
        "inputs".to_owned(),
        "output shape".to_owned(),
        "params".to_owned(),
    ]];
    rows.push([
        "input".to_owned(),
        String::new(),
        String::new(),
        shown_list(&spec.model.input),
        String::new(),
    ]);
    for layer in &layers {
        rows.push([
            layer.name.clone(),
            layer.kind.to_owned(),
            layer.inputs.join(", "),
            shown_list(&layer.output_shape),
            match layer.frozen {
                0 => layer.params.to_string(),
                _ => format!("{} frozen", layer.params),
            },
        ]);
    }
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..5).map(width).collect();
    let mut text = String::new();
    for r in &rows {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:>w4$}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        );
        text += line.trim_end();
        text.push('\n');
    }
    let total: usize = layers.iter().map(|l| l.params).sum();
    let frozen: usize = layers.iter().map(|l| l.frozen).sum();
    text += &format!("total parameters: {total}");
    if frozen > 0 {
        text += &format!(" ({frozen} frozen)");
    }
    text.push('\n');
    for layer in layers.iter().filter(|l| !l.reaches_output) {
        text += &format!(
            "note: {} ({}) does not reach the model's output: its parameters stay in the state_dict and are never trained\n",
            layer.name, layer.kind
        );
    }
    text += &format!("spec OK: {}\n", path.display());
    out(&text)
}
