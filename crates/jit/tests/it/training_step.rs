//! Real training steps built by `graphc-nn` (forward, loss, backward, SGD with
//! momentum in one graph): the JIT matches the interpreter step after step,
//! and a timing report of compile time and steps per second.

use std::path::Path;
use std::time::Instant;

use crate::support::{buffer_mismatch, noise, output_mismatch, values};
use graphc_interp::Interp;
use graphc_ir::{Arg, Backend, Executable};
use graphc_jit::{compile_with, Options};
use graphc_nn::StepGraph;

fn iris_spec() -> graphc_spec::Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/iris.yaml");
    graphc_spec::parse_file(&path).unwrap()
}

fn mlp_spec(sizes: &[usize], batch: usize) -> graphc_spec::Spec {
    let mut layers = String::new();
    for (i, &s) in sizes[1..].iter().enumerate() {
        if i > 0 {
            layers.push_str("    - {type: relu}\n");
        }
        layers.push_str(&format!("    - {{type: linear, out: {s}}}\n"));
    }
    let text = format!(
        "seed: 0\ndata:\n  train: {{csv: data/iris.csv, target: species}}\n  batch_size: {batch}\n\
         model:\n  input: [{}]\n  layers:\n{layers}loss: {{type: cross_entropy}}\n\
         optimizer: {{type: sgd, lr: 0.1, momentum: 0.9}}\ntrain: {{epochs: 1}}\n",
        sizes[0]
    );
    graphc_spec::parse_str(&text, Path::new("mlp.yaml")).unwrap()
}

fn step_graph(spec: &graphc_spec::Spec, batch: usize) -> StepGraph {
    let layout = graphc_nn::natural_layout(spec).unwrap();
    let mut step = graphc_nn::build_step(spec, batch, layout).unwrap();
    graphc_opt::optimize(&mut step.graph).unwrap();
    step
}

struct Batch {
    x: Vec<f32>,
    y: Vec<i64>,
}

fn batch(step: &StepGraph, seed: u64) -> Batch {
    let g = &step.graph;
    let args = g.arguments();
    let nx = g.node(args[0]).ty.numel();
    let ny = g.node(args[1]).ty.numel();
    let classes = *g.shape(g.outputs()[step.model_output].node).last().unwrap();
    Batch {
        x: values(seed, nx, -2.0, 2.0),
        y: (0..ny)
            .map(|i| (noise(seed + 1, i, 0.0, classes as f32) as i64).min(classes as i64 - 1))
            .collect(),
    }
}

fn arguments<'a>(b: &'a Batch, hypers: &'a [f32]) -> Vec<Arg<'a>> {
    let mut args = vec![Arg::F32(&b.x), Arg::I64(&b.y)];
    args.extend(hypers.iter().map(std::slice::from_ref).map(Arg::F32));
    args
}

/// Values for the hypers after `x` and `y`, by name: the step count, a
/// learning rate of 0.1, and 0.9 for any other optimizer scalar.
fn hypers(step: &StepGraph, count: usize) -> Vec<f32> {
    let g = &step.graph;
    g.arguments()[2..]
        .iter()
        .map(|&id| match g.node(id).op.leaf_name().unwrap_or_default() {
            "step" => count as f32,
            name if name.starts_with("lr.") => 0.1,
            _ => 0.9,
        })
        .collect()
}

fn init(step: &StepGraph, exe: &mut dyn Executable) {
    for (p, v) in step
        .params
        .iter()
        .zip(graphc_nn::default_init(&step.params, 0))
    {
        exe.write(&p.name, &v).unwrap();
    }
}

#[test]
fn iris_training_steps_match_the_interpreter() {
    let step = step_graph(&iris_spec(), 16);
    let mut interp = Interp.compile(&step.graph).unwrap();
    let mut jit = compile_with(&step.graph, &Options { verify: true }).unwrap();
    init(&step, interp.as_mut());
    init(&step, &mut jit);
    for count in 1..=5 {
        let b = batch(&step, count as u64);
        let h = hypers(&step, count);
        interp.run(&arguments(&b, &h)).unwrap();
        jit.run(&arguments(&b, &h)).unwrap();
        let output = |name: &str| format!("step {count} {name}");
        let buffer = |name: &str| format!("step {count}: {name}");
        let g = &step.graph;
        if let Some(m) = output_mismatch(g, &jit, interp.as_ref(), output, 1e-5, 1e-6)
            .or_else(|| buffer_mismatch(g, &jit, interp.as_ref(), buffer, 1e-5, 1e-6))
        {
            panic!("{m}");
        }
    }
    let stats = jit.stats();
    assert_eq!(
        stats.in_place_assigns,
        step.graph.assigns().len(),
        "{stats:?}"
    );
}

#[test]
fn mlp_training_steps_match_the_interpreter() {
    let step = step_graph(&mlp_spec(&[13, 24, 17, 5], 9), 9);
    let mut interp = Interp.compile(&step.graph).unwrap();
    let mut jit = compile_with(&step.graph, &Options { verify: true }).unwrap();
    init(&step, interp.as_mut());
    init(&step, &mut jit);
    for count in 1..=3 {
        let b = batch(&step, 10 + count as u64);
        let h = hypers(&step, count);
        interp.run(&arguments(&b, &h)).unwrap();
        jit.run(&arguments(&b, &h)).unwrap();
        let output = |name: &str| format!("step {count} {name}");
        if let Some(m) = output_mismatch(&step.graph, &jit, interp.as_ref(), output, 1e-5, 1e-6) {
            panic!("{m}");
        }
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

#[test]
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

#[test]
#[ignore = "prints a per-kernel profile; run with --release --ignored --nocapture"]
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
