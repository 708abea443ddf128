//! Training steps built by `graphc-nn` for the JIT: the iris spec and MLPs of
//! any sizes as optimized step graphs, with batches, hypers and initial
//! values. Shared by the tests in `training_step.rs` and the timing example
//! `examples/training_step.rs` (which includes this file by path).

use std::path::Path;

use crate::support::{noise, values};
use graphc_ir::{Arg, Executable};
use graphc_nn::StepGraph;

/// The repository's `specs/iris.yaml`.
pub fn iris_spec() -> graphc_spec::Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/iris.yaml");
    graphc_spec::parse_file(&path).unwrap()
}

/// An MLP of linear layers of `sizes` with ReLUs between them, cross-entropy
/// and SGD with momentum.
pub fn mlp_spec(sizes: &[usize], batch: usize) -> graphc_spec::Spec {
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

/// The optimized training step of `spec` for `batch` rows.
pub fn step_graph(spec: &graphc_spec::Spec, batch: usize) -> StepGraph {
    let layout = graphc_nn::natural_layout(spec).unwrap();
    let mut step = graphc_nn::build_step(spec, batch, layout).unwrap();
    graphc_opt::optimize(&mut step.graph).unwrap();
    step
}

/// One batch: features in [-2, 2) and class indices.
pub struct Batch {
    x: Vec<f32>,
    y: Vec<i64>,
}

/// A deterministic batch for `step` from `seed`.
pub fn batch(step: &StepGraph, seed: u64) -> Batch {
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

/// The step's arguments: features, targets, then the hypers in order.
pub fn arguments<'a>(b: &'a Batch, hypers: &'a [f32]) -> Vec<Arg<'a>> {
    let mut args = vec![Arg::F32(&b.x), Arg::I64(&b.y)];
    args.extend(hypers.iter().map(std::slice::from_ref).map(Arg::F32));
    args
}

/// Values for the hypers after `x` and `y`, by name: the step count, a
/// learning rate of 0.1, and 0.9 for any other optimizer scalar.
pub fn hypers(step: &StepGraph, count: usize) -> Vec<f32> {
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

/// Writes `graphc-nn`'s default initial values (seed 0) into `exe`.
pub fn init(step: &StepGraph, exe: &mut dyn Executable) {
    for (p, v) in step
        .params
        .iter()
        .zip(graphc_nn::default_init(&step.params, 0))
    {
        exe.write(&p.name, &v).unwrap();
    }
}
