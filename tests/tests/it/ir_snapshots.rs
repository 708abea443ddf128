//! Snapshots of the text IR of the iris training step (`specs/iris.yaml`): the forward graph
//! (model and loss), the backward graph `graphc-autodiff` appends to it, and the whole step
//! (forward, backward, SGD update) after `graphc-opt`'s passes. A change to graph building,
//! a gradient rule or a pass shows here as a diff of readable IR.
//!
//! The snapshots live in `tests/tests/it/snapshots/`. When a change to them is intended,
//! bless them and review the diff before committing:
//!
//! ```text
//! UPDATE_EXPECT=1 cargo test -p graphc-tests --test it ir_snapshots
//! git diff tests/tests/it/snapshots
//! ```

use std::path::Path;

use expect_test::expect_file;
use graphc::stages::{autodiff, nn, opt};
use graphc::Spec;

fn iris() -> Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/iris.yaml");
    graphc::parse_spec(&path).expect("specs/iris.yaml parses")
}

/// The forward graph as the trainer's steps start with it: the model and the loss for one
/// batch of `batch_size` samples.
fn forward(spec: &Spec) -> nn::StepGraph {
    let layout = nn::natural_layout(spec).expect("a layout");
    nn::build_eval(spec, spec.data.batch_size, layout).expect("the forward graph builds")
}

#[test]
fn iris_forward_graph() {
    let step = forward(&iris());
    expect_file!["snapshots/iris_forward.txt"].assert_eq(&step.graph.to_text());
}

#[test]
fn iris_backward_graph() {
    let mut step = forward(&iris());
    let loss = step.graph.outputs()[step.loss_output].node;
    let params: Vec<_> = step.params.iter().map(|p| p.node).collect();
    let grads = autodiff::grad(&mut step.graph, loss, &params).expect("the gradients build");
    // Named outputs, so the dump says which node is which parameter's gradient.
    for (p, g) in step.params.iter().zip(grads) {
        step.graph.add_output(&format!("grad {}", p.name), g);
    }
    expect_file!["snapshots/iris_backward.txt"].assert_eq(&step.graph.to_text());
}

#[test]
fn iris_optimized_training_step() {
    let spec = iris();
    let layout = nn::natural_layout(&spec).expect("a layout");
    let mut step = nn::build_step(&spec, spec.data.batch_size, layout).expect("the step builds");
    opt::optimize(&mut step.graph).expect("the passes run");
    expect_file!["snapshots/iris_step_optimized.txt"].assert_eq(&step.graph.to_text());
}
