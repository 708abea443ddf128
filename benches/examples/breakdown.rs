//! Where each workload's JIT training step spends its time, in one run:
//! `cargo run --release -p graphc-benches --example breakdown -- specs/bench`.
//! Prints a Markdown table: the whole step, its GEMMs alone, its generated
//! kernels (and fills) alone, and the rest (argument and end-of-step copies,
//! dispatch), each a median of back-to-back runs.

use std::path::PathBuf;

use graphc_benches::{arguments, load, JitStep, Result};

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("specs/bench".into()));
    println!("| workload | step | GEMMs | kernels + fills | rest | GEMM calls | kernels |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for name in ["linreg", "logreg", "mlp_s", "mlp_m", "mlp_l"] {
        let w = load(&dir.join(format!("{name}.yaml")))?;
        let JitStep {
            mut exe,
            forward,
            hypers,
        } = JitStep::new(&w, 20)?;
        let reps = match name {
            "mlp_l" => 30,
            "mlp_m" => 500,
            _ => 20_000,
        };
        let t = exe.time_parts(&arguments(&w, &forward, &hypers), reps)?;
        let stats = exe.stats();
        let us = |s: f64| {
            if s < 1e-5 {
                format!("{:.3} µs", s * 1e6)
            } else if s < 1e-3 {
                format!("{:.1} µs", s * 1e6)
            } else {
                format!("{:.2} ms", s * 1e3)
            }
        };
        println!(
            "| {name} | {} | {} ({:.0} %) | {} ({:.0} %) | {} | {} | {} |",
            us(t.step),
            us(t.gemms),
            100.0 * t.gemms / t.step,
            us(t.kernels),
            100.0 * t.kernels / t.step,
            us(t.step - t.gemms - t.kernels),
            stats.gemms,
            stats.functions
        );
    }
    Ok(())
}
