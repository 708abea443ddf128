//! Timing of real training steps (forward, loss, backward, SGD with momentum)
//! on the JIT and the interpreter: compile time, steps per second, speed-up.
//! `-- --profile` prints a per-kernel profile of the larger MLPs instead.
//!
//! `cargo run --release -p graphc-jit --example training_step [-- --profile]`

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

#[path = "../tests/it/steps.rs"]
mod steps;

use std::time::Instant;

use graphc_interp::Interp;
use graphc_ir::{Backend, Executable};
use graphc_jit::{compile_with, Options};
use graphc_nn::StepGraph;
use steps::{arguments, batch, hypers, init, iris_spec, mlp_spec, step_graph};

fn main() {
    if std::env::args().any(|a| a == "--profile") {
        profile_report();
    } else {
        timing_report();
    }
}

/// Median of `n` timings of `f`, in seconds.
fn median(n: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

fn report(name: &str, step: &StepGraph, steps: usize) {
    let g = &step.graph;
    let options = Options::default();
    let compile = median(5, || {
        compile_with(g, &options).unwrap();
    });
    let mut jit = compile_with(g, &options).unwrap();
    let mut interp = Interp.compile(g).unwrap();
    init(step, &mut jit);
    init(step, interp.as_mut());
    let b = batch(step, 1);
    let h = hypers(step, 2);
    let args = arguments(&b, &h);
    let per = |exe: &mut dyn Executable, n: usize| {
        exe.run(&args).unwrap();
        median(3, || {
            for _ in 0..n {
                exe.run(&args).unwrap();
            }
        }) / n as f64
    };
    let jit_step = per(&mut jit, steps);
    let interp_step = per(interp.as_mut(), (steps / 20).max(1));
    println!(
        "{name}: {} nodes, {:?}; compile {:.2} ms; step jit {:.2} µs ({:.0} steps/s), interp {:.2} µs ({:.0} steps/s), speed-up {:.1}×",
        g.len(),
        jit.stats(),
        compile * 1e3,
        jit_step * 1e6,
        1.0 / jit_step,
        interp_step * 1e6,
        1.0 / interp_step,
        interp_step / jit_step
    );
}

fn timing_report() {
    report(
        "iris (4-16-3, batch 16)",
        &step_graph(&iris_spec(), 16),
        20_000,
    );
    let deep: Vec<usize> = std::iter::once(8)
        .chain(std::iter::repeat_n(16, 40))
        .chain([4])
        .collect();
    report(
        "deep mlp 8-16x40-4, batch 8",
        &step_graph(&mlp_spec(&deep, 8), 8),
        2_000,
    );
    if !cfg!(debug_assertions) {
        report(
            "mlp 784-256-10, batch 64",
            &step_graph(&mlp_spec(&[784, 256, 10], 64), 64),
            200,
        );
        report(
            "mlp 1024-2048-2048-10, batch 256",
            &step_graph(&mlp_spec(&[1024, 2048, 2048, 10], 256), 256),
            5,
        );
    }
}

fn profile_report() {
    for (name, step) in [
        (
            "mlp 784-256-10 b64",
            step_graph(&mlp_spec(&[784, 256, 10], 64), 64),
        ),
        (
            "mlp 1024-2048-2048-10 b256",
            step_graph(&mlp_spec(&[1024, 2048, 2048, 10], 256), 256),
        ),
    ] {
        let mut jit = compile_with(&step.graph, &Options::default()).unwrap();
        init(&step, &mut jit);
        let b = batch(&step, 1);
        let h = hypers(&step, 2);
        let profile = jit.profile(&arguments(&b, &h), 10).unwrap();
        let total: f64 = profile.iter().map(|p| p.1).sum();
        println!("{name}: total {:.1} µs", total * 1e6);
        for (label, t) in profile {
            println!("  {:9.1} µs  {label}", t * 1e6);
        }
    }
}
