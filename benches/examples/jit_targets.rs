//! The JIT issue's four targets, measured in one run:
//! `cargo run --release -p graphc-benches --example jit_targets -- specs/bench`.
//! Prints one line per target with the figure, the target and whether it is met.

use std::path::PathBuf;

use graphc::BackendKind;
use graphc_benches::{arguments, compile_seconds, load, steps_per_second, JitStep, Result};

fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("specs/bench".into()));
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };

    let mlp_m = load(&dir.join("mlp_m.yaml"))?;
    let compile = (0..5)
        .map(|_| compile_seconds(&mlp_m))
        .collect::<Result<Vec<f64>>>()?;
    let first = compile[0] * 1e3;
    let best = compile.iter().copied().fold(f64::INFINITY, f64::min) * 1e3;
    println!(
        "compile mlp_m step: {first:.1} ms cold, {best:.1} ms warm (target ≤ 20 ms): {}",
        verdict(first <= 20.0)
    );

    let mlp_s = load(&dir.join("mlp_s.yaml"))?;
    let jit = steps_per_second(&mlp_s, BackendKind::Jit, 2.0)?;
    let interp = steps_per_second(&mlp_s, BackendKind::Interp, 2.0)?;
    println!(
        "mlp_s: JIT {jit:.0} steps/s, interpreter {interp:.0} steps/s: {:.1}× (target ≥ 50×): {}",
        jit / interp,
        verdict(jit / interp >= 50.0)
    );

    let linreg = load(&dir.join("linreg.yaml"))?;
    let rate = steps_per_second(&linreg, BackendKind::Jit, 2.0)?;
    println!(
        "linreg: {:.3} µs per step (target ≤ 1 µs): {}",
        1e6 / rate,
        verdict(1e6 / rate <= 1.0)
    );

    let mlp_l = load(&dir.join("mlp_l.yaml"))?;
    let JitStep {
        mut exe,
        forward,
        hypers,
    } = JitStep::new(&mlp_l, 3)?;
    let t = exe.time_parts(&arguments(&mlp_l, &forward, &hypers), 40)?;
    let (whole, gemms) = (t.step, t.gemms);
    println!(
        "mlp_l: step {:.2} ms, its 8 GEMMs alone {:.2} ms: {:.2}× (target ≤ 1.3×): {}",
        whole * 1e3,
        gemms * 1e3,
        whole / gemms,
        verdict(whole / gemms <= 1.3)
    );
    Ok(())
}
