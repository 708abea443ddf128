//! Real training steps built by `graphc-nn` (forward, loss, backward, SGD with
//! momentum in one graph): the JIT matches the interpreter step after step.
//! Their timing is the example `training_step`.

use crate::steps::{arguments, batch, hypers, init, iris_spec, mlp_spec, step_graph};
use crate::support::{buffer_mismatch, output_mismatch};
use graphc_interp::Interp;
use graphc_ir::{Backend, Executable};
use graphc_jit::{compile_with, Options};

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
