//! Optimizer update graphs run on the interpreter: the facts of PyTorch's optimizer tutorial,
//! state names and initial values, runtime hyperparameters (no recompile when they change),
//! the host-side per-step scalars, and param groups.

use std::path::Path;

use graphc_interp::Interp;
use graphc_ir::{Arg, Backend, Executable};
use graphc_nn::{
    build_step, build_update_graph, group_of, hyper_value, initial_groups, state_init, GroupScalar,
    Hyper, ParamInfo, TargetLayout, UpdateGraph,
};
use graphc_spec::{OptimizerKind, OptimizerSpec, Spec};

/// A spec with `optimizer` as its optimizer section (a 3 → 2 linear model: `0.weight`, `0.bias`).
fn spec(optimizer: &str) -> Spec {
    let text = format!(
        "data: {{train: {{csv: d.csv, target: y}}, batch_size: 4}}\n\
         model: {{input: [3], layers: [{{type: linear, out: 2}}]}}\n\
         loss: {{type: mse}}\noptimizer: {optimizer}\ntrain: {{steps: 1}}\n"
    );
    graphc_spec::parse_str(&text, Path::new("test.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn optimizer(optimizer: &str) -> OptimizerSpec {
    spec(optimizer).optimizer
}

/// An update-only graph compiled on the interpreter, with its state initialised.
struct Updater {
    update: UpdateGraph,
    exe: Box<dyn Executable>,
    groups: Vec<OptimizerKind>,
    steps: u64,
}

impl Updater {
    fn new(spec: &OptimizerSpec, params: &[(&str, &[usize], &[f32])]) -> Updater {
        let shapes: Vec<(String, Vec<usize>)> = params
            .iter()
            .map(|(n, s, _)| (n.to_string(), s.to_vec()))
            .collect();
        let update = build_update_graph(spec, &shapes).unwrap();
        update.graph.verify().unwrap();
        let mut exe = Interp.compile(&update.graph).unwrap();
        for (name, _, init) in params {
            exe.write(name, init).unwrap();
        }
        for b in &update.state {
            let numel = b.shape.iter().product();
            exe.write(&b.name, &vec![b.init; numel]).unwrap();
        }
        Updater {
            update,
            exe,
            groups: initial_groups(spec),
            steps: 0,
        }
    }

    /// One `opt.step()` with these gradients (parameter order).
    fn step(&mut self, grads: &[&[f32]]) {
        self.steps += 1;
        let values: Vec<f32> = self
            .update
            .hypers
            .iter()
            .map(|h| hyper_value(*h, &self.groups, self.steps))
            .collect();
        let mut args: Vec<Arg<'_>> = grads.iter().map(|g| Arg::F32(g)).collect();
        args.extend(values.iter().map(|v| Arg::F32(std::slice::from_ref(v))));
        self.exe.run(&args).unwrap();
    }

    fn read(&self, name: &str) -> Vec<f32> {
        self.exe.read(name).unwrap().to_vec()
    }
}

const W: [f32; 6] = [0.5, -1.25, 2.0, 0.0, 3.75, -0.125];

#[test]
fn sgd_with_gradient_one_and_lr_one_moves_every_weight_by_exactly_minus_one() {
    let mut u = Updater::new(&optimizer("{type: sgd, lr: 1.0}"), &[("w", &[2, 3], &W)]);
    u.step(&[&[1.0; 6]]);
    let moved: Vec<f32> = W.iter().map(|w| w - 1.0).collect();
    assert_eq!(u.read("w"), moved);
    u.step(&[&[1.0; 6]]);
    let twice: Vec<f32> = W.iter().map(|w| w - 2.0).collect();
    assert_eq!(u.read("w"), twice);
}

#[test]
fn sgd_with_gradient_one_and_lr_point_one_moves_every_weight_by_minus_point_one() {
    let mut u = Updater::new(&optimizer("{type: sgd, lr: 0.1}"), &[("w", &[2, 3], &W)]);
    u.step(&[&[1.0; 6]]);
    // PyTorch's `p.add_(g, alpha=-0.1)` in f32: every weight minus 0.1f32, rounded once.
    let moved: Vec<f32> = W.iter().map(|w| w - 0.1f32).collect();
    assert_eq!(u.read("w"), moved);
    assert_eq!(u.read("w")[3], -0.1f32);
}

#[test]
fn sgd_momentum_accumulates_v_equals_point_nine_v_plus_g() {
    let mut u = Updater::new(
        &optimizer("{type: sgd, lr: 0.1, momentum: 0.9}"),
        &[("w", &[2, 3], &W)],
    );
    let grads = [1.0f32, 2.0, -1.0, 0.5];
    let (mut v, mut w) = (0.0f32, W);
    for (k, &g) in grads.iter().enumerate() {
        u.step(&[&[g; 6]]);
        // The first step's buffer is the gradient itself.
        v = if k == 0 { g } else { 0.9 * v + g };
        w = w.map(|x| x - 0.1 * v);
        assert_eq!(u.read("w.momentum_buffer"), vec![v; 6], "step {}", k + 1);
        assert_eq!(u.read("w"), w.to_vec(), "step {}", k + 1);
    }
    assert_eq!(v, 0.9f32 * (0.9 * (0.9 * 1.0 + 2.0) - 1.0) + 0.5);
}

#[test]
fn learning_rate_and_momentum_are_runtime_hypers_of_one_compiled_update() {
    let spec = optimizer("{type: sgd, lr: 0.1, momentum: 0.9}");
    let mut u = Updater::new(&spec, &[("w", &[1], &[0.0])]);
    assert_eq!(
        u.update.hypers,
        vec![
            Hyper::Group {
                group: 0,
                scalar: GroupScalar::Momentum
            },
            Hyper::Step,
            Hyper::Lr { group: 0 },
        ]
    );
    u.step(&[&[1.0]]);
    assert_eq!(u.read("w"), vec![-0.1]);
    // As a scheduler would: a new lr and momentum, the same executable.
    u.groups[0].set_lr(0.5);
    assert!(u.groups[0].set_momentum(0.5));
    u.step(&[&[1.0]]);
    let v = 0.5f32 * 1.0 + 1.0;
    assert_eq!(u.read("w.momentum_buffer"), vec![v]);
    assert_eq!(u.read("w"), vec![-0.1f32 - 0.5 * v]);
}

#[test]
fn adam_bias_corrections_are_computed_in_f64_on_the_host() {
    let spec = optimizer("{type: adam, lr: 0.001}");
    let groups = initial_groups(&spec);
    let at = |scalar, step| hyper_value(Hyper::Group { group: 0, scalar }, &groups, step);
    for t in [1u64, 2, 10, 1000] {
        let tf = t as f64;
        assert_eq!(
            at(GroupScalar::StepSize, t),
            (0.001 / (1.0 - 0.9f64.powf(tf))) as f32
        );
        assert_eq!(
            at(GroupScalar::BiasCorrection2Sqrt, t),
            (1.0 - 0.999f64.powf(tf)).powf(0.5) as f32
        );
    }
    // f32 arithmetic on rounded betas would be off by ~1e-5 relative at step 1.
    let f32_way = (1.0f32 - 0.999f32).sqrt();
    let host = at(GroupScalar::BiasCorrection2Sqrt, 1);
    assert!((host - 0.001f64.sqrt() as f32).abs() <= f32::EPSILON * host);
    assert_ne!(host, f32_way);
    assert_eq!(at(GroupScalar::OneMinusBeta1, 5), (1.0 - 0.9f64) as f32);
    assert_eq!(hyper_value(Hyper::Step, &groups, 7), 7.0);
    assert!(hyper_value(Hyper::Lr { group: 3 }, &groups, 1).is_nan());
}

#[test]
fn adam_first_step_moves_each_weight_by_about_lr_against_the_gradient_sign() {
    // With m̂ = g and v̂ = g², the first Adam step is lr · g / (|g| + eps).
    let mut u = Updater::new(
        &optimizer("{type: adam, lr: 0.01}"),
        &[("w", &[3], &[1.0, 1.0, 1.0])],
    );
    u.step(&[&[2.0, -0.5, 0.0]]);
    let w = u.read("w");
    assert!((w[0] - 0.99).abs() < 1e-6, "{w:?}");
    assert!((w[1] - 1.01).abs() < 1e-6, "{w:?}");
    assert_eq!(w[2], 1.0);
    assert_eq!(u.read("w.exp_avg"), vec![0.2f32, -0.05, 0.0]);
}

#[test]
fn adagrad_lr_decay_divides_the_lr_by_one_plus_decay_times_past_steps() {
    let spec = optimizer("{type: adagrad, lr: 0.1, lr_decay: 0.5}");
    let groups = initial_groups(&spec);
    let clr = |t| {
        hyper_value(
            Hyper::Group {
                group: 0,
                scalar: GroupScalar::AdagradLr,
            },
            &groups,
            t,
        )
    };
    assert_eq!(clr(1), 0.1);
    assert_eq!(clr(3), (0.1 / (1.0 + 2.0 * 0.5)) as f32);
}

#[test]
fn radam_rectifies_from_the_first_step_whose_rho_exceeds_five() {
    let spec = optimizer("{type: radam}");
    let groups = initial_groups(&spec);
    let on = |t| {
        hyper_value(
            Hyper::Group {
                group: 0,
                scalar: GroupScalar::RadamRectified,
            },
            &groups,
            t,
        )
    };
    // ρ_t ≈ 4.996 at step 5 and 5.994 at step 6 for β2 = 0.999 (PyTorch's `rho_t > 5`).
    assert_eq!(
        (1..=7).map(on).collect::<Vec<_>>(),
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    );
}

#[test]
fn state_buffers_are_named_like_pytorchs_state_keys_with_their_initial_values() {
    let param = ParamInfo {
        name: "0.weight".into(),
        shape: vec![2, 3],
        init: graphc_nn::DefaultInit::Uniform { fan_in: 3 },
        scheme: None,
        trainable: true,
        node: graphc_ir::Graph::new().param("0.weight", &[2, 3]),
    };
    let names = |yaml: &str| -> Vec<(String, Vec<usize>, f32)> {
        state_init(&optimizer(yaml).kind, &param)
            .into_iter()
            .map(|b| (b.name, b.shape, b.init))
            .collect()
    };
    let full = |key: &str, init: f32| (format!("0.weight.{key}"), vec![2, 3], init);
    assert_eq!(names("{type: sgd}"), vec![]);
    assert_eq!(
        names("{type: sgd, momentum: 0.9}"),
        vec![full("momentum_buffer", 0.0)]
    );
    assert_eq!(
        names("{type: adamw, amsgrad: true}"),
        vec![
            full("exp_avg", 0.0),
            full("exp_avg_sq", 0.0),
            full("max_exp_avg_sq", 0.0)
        ]
    );
    assert_eq!(
        names("{type: rmsprop, momentum: 0.5, centered: true}"),
        vec![
            full("square_avg", 0.0),
            full("momentum_buffer", 0.0),
            full("grad_avg", 0.0)
        ]
    );
    assert_eq!(
        names("{type: adagrad, initial_accumulator_value: 0.25}"),
        vec![full("sum", 0.25)]
    );
    assert_eq!(
        names("{type: adadelta}"),
        vec![full("square_avg", 0.0), full("acc_delta", 0.0)]
    );
    assert_eq!(
        names("{type: adamax}"),
        vec![full("exp_avg", 0.0), full("exp_inf", 0.0)]
    );
    assert_eq!(
        names("{type: nadam}"),
        vec![
            ("0.weight.mu_product".into(), vec![], 1.0),
            full("exp_avg", 0.0),
            full("exp_avg_sq", 0.0)
        ]
    );
    assert_eq!(
        names("{type: radam}"),
        vec![full("exp_avg", 0.0), full("exp_avg_sq", 0.0)]
    );
}

#[test]
fn nadam_mu_product_multiplies_the_momentum_cache_each_step() {
    let spec = optimizer("{type: nadam}");
    let mut u = Updater::new(&spec, &[("w", &[2], &[1.0, -1.0])]);
    let mu = |t: f64| 0.9 * (1.0 - 0.5 * 0.96f64.powf(t * 0.004));
    let mut product = 1.0f32;
    for t in 1..=3 {
        u.step(&[&[0.5, 0.25]]);
        product *= mu(t as f64) as f32;
        assert_eq!(u.read("w.mu_product"), vec![product]);
    }
}

#[test]
fn adagrad_starts_from_the_initial_accumulator_value() {
    let spec = optimizer("{type: adagrad, lr: 1.0, initial_accumulator_value: 3.0, eps: 0.0}");
    let mut u = Updater::new(&spec, &[("w", &[1], &[0.0])]);
    u.step(&[&[1.0]]);
    // sum = 3 + 1² = 4; w = 0 - 1 · 1 / sqrt(4).
    assert_eq!(u.read("w.sum"), vec![4.0]);
    assert_eq!(u.read("w"), vec![-0.5]);
}

#[test]
fn param_groups_give_each_parameter_its_groups_hyperparameters() {
    let spec = optimizer(
        "{type: sgd, lr: 1.0, param_groups: [{params: [b], lr: 0.5}, {params: [\"*\"], lr: 0.25}]}",
    );
    let mut u = Updater::new(&spec, &[("a", &[1], &[0.0]), ("b", &[1], &[0.0])]);
    // `b` takes the first group that matches; `a` the second (`*`); none is left for the top.
    assert_eq!(u.update.groups, vec![1, 0]);
    u.step(&[&[1.0], &[1.0]]);
    assert_eq!((u.read("a"), u.read("b")), (vec![-0.25], vec![-0.5]));
}

#[test]
fn a_param_group_pattern_that_matches_nothing_is_an_error_naming_the_parameters() {
    let spec = spec("{type: adam, param_groups: [{params: [\"1.*\"], lr: 0.1}]}");
    let err = build_step(&spec, 4, TargetLayout::Floats { width: 2 }).unwrap_err();
    assert_eq!(
        err.to_string(),
        "optimizer: param_groups[0]: pattern \"1.*\" matches no parameter; parameters are \
         0.weight, 0.bias"
    );
    let spec = self::spec("{type: adam, param_groups: [{params: [\"0.b*\"]}]}");
    let step = build_step(&spec, 4, TargetLayout::Floats { width: 2 }).unwrap();
    // `0.weight` matches no group and takes the top-level settings (group 1).
    assert_eq!(step.groups, vec![1, 0]);
    assert_eq!(
        group_of(&spec.optimizer, &step.params).unwrap(),
        step.groups
    );
}

#[test]
fn every_optimizer_builds_a_verified_training_step_with_its_state_and_hypers() {
    let cases = [
        (
            "{type: sgd, momentum: 0.9, nesterov: true, weight_decay: 0.1}",
            2,
        ),
        ("{type: adam, amsgrad: true, maximize: true}", 6),
        ("{type: adamw}", 4),
        ("{type: rmsprop, centered: true, momentum: 0.9}", 6),
        ("{type: adagrad, initial_accumulator_value: 0.5}", 2),
        ("{type: adadelta}", 4),
        ("{type: adamax}", 4),
        (
            "{type: nadam, decoupled_weight_decay: true, weight_decay: 0.1}",
            6,
        ),
        ("{type: radam}", 4),
    ];
    for (yaml, buffers) in cases {
        let spec = spec(yaml);
        let step = build_step(&spec, 4, TargetLayout::Floats { width: 2 }).unwrap();
        step.graph
            .verify()
            .unwrap_or_else(|e| panic!("{yaml}: {e}"));
        assert_eq!(step.state.len(), buffers, "{yaml}");
        assert_eq!(step.state_init.len(), buffers, "{yaml}");
        // Every hyper is an argument after x and y, named after itself.
        assert_eq!(
            step.graph.arguments().len(),
            2 + step.hypers.len(),
            "{yaml}"
        );
        for (h, &arg) in step.hypers.iter().zip(&step.graph.arguments()[2..]) {
            assert_eq!(step.graph.node(arg).op.leaf_name(), Some(h.name().as_str()));
        }
    }
}
