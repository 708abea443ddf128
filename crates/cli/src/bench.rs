//! `graphc bench SPEC`: compile the spec's training step, run N steps on its
//! first batch, and print one JSON line with steps/s, compile time and the
//! latency of the first step.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use graphc::stages::train::{load_data, prepare, BatchTargets, Session};
use graphc::BackendKind;

/// One benchmark's result, printed as a JSON line.
#[derive(serde::Serialize)]
struct BenchLine {
    backend: &'static str,
    spec: String,
    /// `train.precision`: `fp32` or `bf16` (products and convolutions of bf16 operands).
    precision: &'static str,
    batch: usize,
    steps: u64,
    steps_per_s: f64,
    step_us: f64,
    /// Building, optimizing and compiling the step graph (cold: the first compile in
    /// the process), without parameter initialization.
    compile_ms: f64,
    /// Setting up the trainer: its own compile of the step plus parameter init.
    setup_ms: f64,
    /// The first training step after setup (first touch of the step's memory).
    first_step_ms: f64,
    /// `compile_ms + first_step_ms`: the latency from a spec to one step done,
    /// comparable to a traced framework's first call (parameters already made).
    first_step_latency_ms: f64,
}

/// Runs the benchmark and prints its line.
pub fn bench(
    spec_path: &Path,
    overrides: &[graphc::Override],
    kind: BackendKind,
    steps: u64,
) -> Result<()> {
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let spec = graphc::parse_spec_with(spec_path, overrides)?;
    let base = spec_path.parent().unwrap_or(Path::new("."));
    let data = load_data(&spec, base)?;
    let batch = spec.data.batch_size.min(data.train.len());
    let rows: Vec<usize> = (0..batch).collect();
    let (mut x, mut y) = (Vec::new(), BatchTargets::Floats(Vec::new()));
    data.train.gather(&rows, &mut x, &mut y)?;

    let started = Instant::now();
    Session::new(spec.clone(), kind.backend(), data.layout)?.compile_step(spec.data.batch_size)?;
    let compile = started.elapsed();

    let started = Instant::now();
    let mut trainer = prepare(&spec, base, &data, kind.backend())?;
    let setup = started.elapsed();
    let first = Instant::now();
    trainer.step(&x, &y)?;
    let first_step = first.elapsed();

    let timed = Instant::now();
    for _ in 0..steps {
        trainer.step(&x, &y)?;
    }
    let seconds = timed.elapsed().as_secs_f64();
    let line = BenchLine {
        backend: kind.name(),
        spec: spec_path.display().to_string(),
        precision: spec.train.precision.name(),
        batch,
        steps,
        steps_per_s: steps as f64 / seconds,
        step_us: seconds * 1e6 / steps as f64,
        compile_ms: compile.as_secs_f64() * 1e3,
        setup_ms: setup.as_secs_f64() * 1e3,
        first_step_ms: first_step.as_secs_f64() * 1e3,
        first_step_latency_ms: (compile + first_step).as_secs_f64() * 1e3,
    };
    crate::outln(&serde_json::to_string(&line)?)
}
