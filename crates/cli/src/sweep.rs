//! `graphc sweep SPEC --set KEY=VALUES ... [--out DIR] [--jobs N]`: one training run per
//! combination of the values, `--jobs` at a time, each a `graphc train` process on one
//! thread; then `DIR/sweep.csv`, `DIR/sweep.svg` and the best run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use graphc::stages::train::{read_metrics, write_styled_loss_plot, PlotRun, PlotStyle};
use graphc::{Override, SweepAxis};

/// The arguments of `graphc sweep`.
#[derive(Args)]
pub struct SweepArgs {
    /// The spec file.
    pub spec: PathBuf,
    /// A key and the values to try: a YAML list, linspace(A,B,N) or logspace(A,B,N)
    /// (repeatable; the runs are every combination).
    #[arg(long = "set", value_name = "KEY=VALUES", required = true)]
    pub set: Vec<SweepAxis>,
    /// Output directory (default: runs/<spec file stem>-sweep); must not exist yet or be empty.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs at a time (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Executor: jit (default) or interp.
    #[arg(long, default_value = "jit")]
    pub backend: String,
}

/// Most runs one sweep may start.
const MAX_RUNS: usize = 10_000;

/// One finished run.
struct Outcome {
    /// Its position among the combinations.
    index: usize,
    /// `Ok(())`, or the first line of a failed run's error.
    result: std::result::Result<(), String>,
    /// For a diverged run, the step it diverged at when its run directory holds the same
    /// run trained up to the step before (its curve).
    curve_until: Option<u64>,
    seconds: f64,
}

/// A run's row of `sweep.csv`.
struct Row {
    final_loss: Option<f32>,
    best: Option<(f32, u64)>,
    valid: BTreeMap<String, String>,
    /// The step at which the loss stopped being finite, when it did.
    diverged: Option<String>,
}

/// Runs `graphc sweep`.
pub fn run(args: &SweepArgs) -> Result<()> {
    let combos = combinations(&args.set)?;
    // Every combination must make a valid spec before anything runs or is written.
    for combo in &combos {
        graphc::parse_spec_with(&args.spec, combo)?;
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .spec
            .file_stem()
            .map_or("run".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(format!("{stem}-sweep"))
    });
    if out.exists()
        && std::fs::read_dir(&out)
            .with_context(|| format!("cannot read --out `{}`", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "`{}` already holds files; give a new --out directory for the sweep",
            out.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let width = (combos.len() - 1).to_string().len();
    let run_dir = |i: usize| out.join(format!("run-{i:0width$}"));
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, combos.len());
    let exe = std::env::current_exe().context("cannot find the graphc executable")?;

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Outcome>();
    let mut outcomes: Vec<Option<Outcome>> = (0..combos.len()).map(|_| None).collect();
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, combos, exe, run_dir) = (&next, &combos, &exe, &run_dir);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(combo) = combos.get(i) else { break };
                let started = Instant::now();
                let result = train_one(exe, &args.spec, &run_dir(i), combo, &args.backend);
                // A diverged run writes nothing; the same run (training is deterministic)
                // stopped at the step before its divergence gives its curve.
                let curve_until = result
                    .as_ref()
                    .err()
                    .and_then(|e| diverged_at(e))
                    .filter(|&step| step > 1)
                    .filter(|&step| {
                        let mut until = combo.clone();
                        let stop = format!("train.steps={}", step - 1);
                        until.extend(stop.parse::<Override>());
                        train_one(exe, &args.spec, &run_dir(i), &until, &args.backend).is_ok()
                    });
                let seconds = started.elapsed().as_secs_f64();
                if tx
                    .send(Outcome {
                        index: i,
                        result,
                        curve_until,
                        seconds,
                    })
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(tx);
        for (done, outcome) in rx.iter().enumerate() {
            let values = shown(&combos[outcome.index]);
            let how = match &outcome.result {
                Ok(()) => "done".to_owned(),
                // "training diverged at step 8 (epoch 1)", without the advice.
                Err(e) => e.split(':').next().unwrap_or(e).to_owned(),
            };
            crate::outln(&format!(
                "[{}/{}] {values}: {how} ({:.1} s)",
                done + 1,
                combos.len(),
                outcome.seconds
            ))?;
            let index = outcome.index;
            outcomes[index] = Some(outcome);
        }
        Ok(())
    })?;

    let mut rows = Vec::with_capacity(combos.len());
    let mut plots = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.context("a sweep worker stopped early")?;
        let row = match outcome.result {
            Ok(()) => {
                let metrics = read_metrics(&run_dir(i))?;
                let row = row_of(&metrics, &run_dir(i))?;
                plots.push(PlotRun {
                    label: shown(&combos[i]),
                    ..metrics
                });
                row
            }
            Err(e) if diverged(&e) => {
                if let Some(step) = outcome.curve_until {
                    let metrics = read_metrics(&run_dir(i))?;
                    plots.push(PlotRun {
                        label: format!("{} (diverged at step {step})", shown(&combos[i])),
                        ..metrics
                    });
                }
                Row {
                    final_loss: None,
                    best: None,
                    valid: BTreeMap::new(),
                    diverged: Some(e),
                }
            }
            Err(e) => bail!("run {} ({}) failed: {e}", i, shown(&combos[i])),
        };
        rows.push(row);
    }
    write_csv(&out.join("sweep.csv"), &args.set, &combos, &rows)?;
    let failed: Vec<String> = combos
        .iter()
        .zip(&rows)
        .filter(|(_, r)| r.diverged.is_some())
        .map(|(c, _)| shown(c))
        .collect();
    let style = PlotStyle {
        log_ratio: Some(1000.0),
        note: (!failed.is_empty()).then(|| format!("diverged: {}", failed.join("; "))),
        ..PlotStyle::default()
    };
    if !plots.is_empty() {
        write_styled_loss_plot(&out.join("sweep.svg"), &plots, &style)?;
    }
    let best = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.final_loss.filter(|l| l.is_finite()).map(|l| (i, l)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    crate::outln(&format!(
        "wrote {} and {}",
        out.join("sweep.csv").display(),
        out.join("sweep.svg").display()
    ))?;
    match best {
        Some((i, loss)) => crate::outln(&format!(
            "best: {} ({}): final loss {}",
            run_dir(i).display(),
            shown(&combos[i]),
            shown_loss(loss)
        )),
        None => crate::outln("best: none (every run diverged)"),
    }
}

/// The Cartesian product of the axes' values, the first axis varying slowest.
fn combinations(axes: &[SweepAxis]) -> Result<Vec<Vec<Override>>> {
    let mut combos: Vec<Vec<Override>> = vec![Vec::new()];
    for axis in axes {
        if combos.len().saturating_mul(axis.values.len()) > MAX_RUNS {
            bail!("the sweep would start more than {MAX_RUNS} runs; give fewer values");
        }
        combos = combos
            .into_iter()
            .flat_map(|c| {
                axis.values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push(v.clone());
                    c
                })
            })
            .collect();
    }
    Ok(combos)
}

/// `optimizer.lr=0.01, optimizer.momentum=0.9`.
fn shown(combo: &[Override]) -> String {
    let parts: Vec<String> = combo.iter().map(Override::to_string).collect();
    parts.join(", ")
}

/// Trains one combination with `graphc train` on one thread; the error is its message.
fn train_one(
    exe: &Path,
    spec: &Path,
    dir: &Path,
    combo: &[Override],
    backend: &str,
) -> std::result::Result<(), String> {
    let mut cmd = Command::new(exe);
    cmd.arg("train")
        .arg(spec)
        .arg("--out")
        .arg(dir)
        .arg("--quiet")
        .arg("--backend")
        .arg(backend)
        .env("GRAPHC_THREADS", "1");
    for o in combo {
        cmd.arg("--set").arg(o.to_string());
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot start graphc: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .map_or_else(
            || format!("exited with {}", output.status),
            |l| l[7..].to_owned(),
        );
    Err(line)
}

/// The step a diverged run's message names (`training diverged at step 24 (epoch 24): ...`).
fn diverged_at(message: &str) -> Option<u64> {
    let rest = message.strip_prefix("training diverged at step ")?;
    rest.split(' ').next()?.parse().ok()
}

/// Whether a failed run's message is a loss that stopped being finite.
fn diverged(message: &str) -> bool {
    message.starts_with("training diverged at step") || message.starts_with("the loss is ")
}

/// A finished run's row, from its metrics.
fn row_of(metrics: &PlotRun, dir: &Path) -> Result<Row> {
    let final_loss = metrics.train.last().map(|p| p.1);
    let best = metrics
        .train
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|&(s, l)| (l, s));
    // The last validation record's metrics, as metrics.jsonl holds them.
    let text = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .with_context(|| format!("cannot read `{}`", dir.join("metrics.jsonl").display()))?;
    let mut valid = BTreeMap::new();
    for line in text.lines().rev() {
        let Ok(serde_json::Value::Object(record)) = serde_json::from_str(line) else {
            continue;
        };
        if record.keys().any(|k| k.starts_with("valid_")) {
            for (k, v) in record.iter().filter(|(k, _)| k.starts_with("valid_")) {
                valid.insert(k.clone(), v.to_string());
            }
            break;
        }
    }
    Ok(Row {
        final_loss,
        best,
        valid,
        diverged: None,
    })
}

/// `sweep.csv`: the values by key, final_loss, best_loss, best_step, the last validation
/// metrics, diverged.
fn write_csv(
    path: &Path,
    axes: &[SweepAxis],
    combos: &[Vec<Override>],
    rows: &[Row],
) -> Result<()> {
    let valid_keys: Vec<String> = {
        let mut keys: Vec<String> = rows.iter().flat_map(|r| r.valid.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        keys
    };
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut header: Vec<String> = axes.iter().map(|a| quote(&a.key)).collect();
    header.extend(["final_loss", "best_loss", "best_step"].map(String::from));
    header.extend(valid_keys.iter().cloned());
    header.push("diverged".into());
    let mut text = header.join(",") + "\n";
    for (combo, row) in combos.iter().zip(rows) {
        let mut cells: Vec<String> = combo.iter().map(|o| quote(o.text.trim())).collect();
        cells.push(row.final_loss.map_or(String::new(), shown_loss));
        cells.push(row.best.map_or(String::new(), |b| shown_loss(b.0)));
        cells.push(row.best.map_or(String::new(), |b| b.1.to_string()));
        for k in &valid_keys {
            cells.push(row.valid.get(k).cloned().unwrap_or_default());
        }
        cells.push(row.diverged.is_some().to_string());
        text += &(cells.join(",") + "\n");
    }
    std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))
}

/// A loss for the closing line and sweep.csv: as Rust prints it, in scientific notation when it is tiny or
/// huge (`3.789e-42`, not forty zeros).
fn shown_loss(loss: f32) -> String {
    let magnitude = loss.abs();
    if magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        format!("{loss:e}")
    } else {
        loss.to_string()
    }
}
