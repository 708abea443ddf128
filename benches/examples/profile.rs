//! Per-kernel profile of one JIT training step of a spec:
//! `cargo run --release -p graphc-benches --example profile -- specs/bench/mlp_m.yaml [REPS]`.
//! Prints each plan step's mean time, their sum, the whole step, the
//! step's GEMMs alone called back to back, and the spread of single steps
//! (a mean well above the median is a thread stalled by another process).

use std::path::PathBuf;

use graphc::stages::ir::Executable;
use graphc_benches::{arguments, compile_seconds, load, JitStep, Result};

fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    let path = PathBuf::from(argv.next().ok_or("usage: profile SPEC [REPS]")?);
    let reps: usize = argv.next().map(|r| r.parse()).transpose()?.unwrap_or(100);
    let w = load(&path)?;
    let compile = compile_seconds(&w)?;
    let JitStep {
        mut exe,
        forward,
        hypers,
    } = JitStep::new(&w, reps.min(100) as u64)?;
    let stats = exe.stats();
    println!(
        "{}: compile {:.2} ms ({} functions, {} gemms, {} floats, lower {} µs, codegen {} µs)",
        path.display(),
        compile * 1e3,
        stats.functions,
        stats.gemms,
        stats.arena_floats,
        stats.lower_us,
        stats.codegen_us
    );
    let args = arguments(&w, &forward, &hypers);
    let profile = exe.profile(&args, reps)?;
    let total: f64 = profile.iter().map(|p| p.1).sum();
    for (label, t) in &profile {
        println!("  {:10.2} µs  {label}", t * 1e6);
    }
    println!("  {:10.2} µs  sum of plan steps", total * 1e6);
    let t = exe.time_parts(&args, reps)?;
    println!("  {:10.2} µs  whole step (median)", t.step * 1e6);
    println!(
        "  {:10.2} µs  its GEMMs alone, back to back (median; step ÷ GEMMs = {:.2})",
        t.gemms * 1e6,
        t.step / t.gemms
    );
    println!(
        "  {:10.2} µs  its kernels and fills alone (median)",
        t.kernels * 1e6
    );
    println!(
        "  {:10.2} µs  the rest: arguments in, end-of-step copies, dispatch",
        (t.step - t.gemms - t.kernels) * 1e6
    );
    let mut steps = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = std::time::Instant::now();
        exe.run(&args)?;
        steps.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let mean = steps.iter().sum::<f64>() / steps.len() as f64;
    steps.sort_by(f64::total_cmp);
    let at = |q: f64| steps[((steps.len() - 1) as f64 * q).round() as usize];
    println!(
        "  single steps: mean {mean:.2} µs, p10 {:.2}, p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
        at(0.1),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    Ok(())
}
