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

/// What a run told its [`graphc_ir::Ranks`]: each assign's slot, value, and how many
/// steps (`progress` calls) had run by then; and the run's steps.
#[derive(Default)]
struct Heard {
    assigned: Vec<(usize, Vec<f32>, usize)>,
    steps: usize,
}

impl graphc_ir::Ranks for Heard {
    fn sum(&mut self, _values: &mut [f32]) {}
    fn assigned(&mut self, slot: usize, values: &[f32]) {
        self.assigned.push((slot, values.to_vec(), self.steps));
    }
    fn progress(&mut self) {
        self.steps += 1;
    }
}

#[test]
fn each_assign_is_reported_once_with_its_new_value_as_soon_as_it_is_computed() {
    // The accumulating step adds the last layer's gradients to their sums before its
    // backward reaches the first layer: the JIT reports each assign after the step that
    // computes it, so data-parallel training can sum those while the backward goes on. The
    // interpreter reports at the end. The update step's parameters are written last (the
    // backward reads them first); each is still reported once, with its new value.
    let spec = mlp_spec(&[13, 24, 17, 5], 9);
    let layout = graphc_nn::natural_layout(&spec).unwrap();
    let mut accumulate = graphc_nn::build_accumulate_step(&spec, 9, layout).unwrap();
    graphc_opt::optimize(&mut accumulate.graph).unwrap();
    for (step, accumulates) in [(accumulate, true), (step_graph(&spec, 9), false)] {
        let g = &step.graph;
        let slot_of = |name: &str| {
            (g.persistent().iter()).position(|&p| g.node(p).op.leaf_name() == Some(name))
        };
        let sums = slot_of("0.weight.grad").zip(slot_of("4.weight.grad"));
        assert_eq!(sums.is_some(), accumulates);
        let jit: Box<dyn Executable> =
            Box::new(compile_with(g, &Options { verify: true }).unwrap());
        for (backend, mut exe) in [("jit", jit), ("interp", Interp.compile(g).unwrap())] {
            init(&step, exe.as_mut());
            let b = batch(&step, 3);
            let h = hypers(&step, 1);
            let mut heard = Heard::default();
            exe.run_summing(&arguments(&b, &h), &mut heard).unwrap();
            let mut slots: Vec<usize> = heard.assigned.iter().map(|a| a.0).collect();
            slots.sort_unstable();
            let mut expected: Vec<usize> = (g.assigns().iter())
                .map(|a| g.persistent().iter().position(|&p| p == a.target).unwrap())
                .collect();
            expected.sort_unstable();
            assert_eq!(slots, expected, "{backend}: every assign once");
            for (slot, values, _) in &heard.assigned {
                assert_eq!(
                    values,
                    exe.slot(*slot),
                    "{backend}: slot {slot}'s new value"
                );
            }
            let Some((first, last)) = sums else {
                continue;
            };
            let when = |slot: usize| heard.assigned.iter().find(|a| a.0 == slot).unwrap().2;
            let (first, last) = (when(first), when(last));
            match backend {
                "jit" => assert!(
                    last < first && first < heard.steps,
                    "reported after {last} and {first} of {} steps",
                    heard.steps
                ),
                _ => assert_eq!((first, last), (0, 0)),
            }
        }
    }
}
