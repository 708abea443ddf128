//! Building steps from specs: default init bounds, and errors that name the
//! layer, the loss or the optimizer setting at fault.

use graphc_nn::{build_step, default_init, natural_layout, DefaultInit, NnError, TargetLayout};
use graphc_spec::{parse_str, Spec};

fn spec(yaml: &str) -> Spec {
    parse_str(yaml, std::path::Path::new("test.yaml")).expect("valid spec")
}

const MLP: &str = "
data: {train: {csv: d.csv, target: y}, batch_size: 8}
model: {input: [5], layers: [{type: linear, out: 7}, {type: relu}, {type: linear, out: 3}]}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
train: {epochs: 1}
";

#[test]
fn default_init_draws_within_one_over_sqrt_fan_in() {
    let s = spec(MLP);
    let step = build_step(&s, 8, TargetLayout::Classes).unwrap();
    let values = default_init(&step.params, 0);
    for (p, v) in step.params.iter().zip(&values) {
        let DefaultInit::Uniform { fan_in } = p.init else {
            panic!("{} of an MLP starts uniform", p.name);
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        assert!(
            v.iter().all(|x| x.abs() <= bound),
            "{} exceeds ±{bound}",
            p.name
        );
        let spread = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(spread > 0.5 * bound, "{} does not fill its range", p.name);
    }
    assert_eq!(
        values,
        default_init(&step.params, 0),
        "same seed, same init"
    );
    assert_ne!(
        values,
        default_init(&step.params, 1),
        "another seed, another init"
    );
}

#[test]
fn parameters_are_named_and_shaped_like_a_pytorch_state_dict() {
    let step = build_step(&spec(MLP), 8, TargetLayout::Classes).unwrap();
    let names: Vec<(&str, &[usize])> = step
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.shape.as_slice()))
        .collect();
    assert_eq!(
        names,
        [
            ("0.weight", &[7, 5][..]),
            ("0.bias", &[7][..]),
            ("2.weight", &[3, 7][..]),
            ("2.bias", &[3][..])
        ]
    );
    let state: Vec<&str> = step.state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(state[0], "0.weight.momentum_buffer");
    step.graph.verify().unwrap();
}

#[test]
fn training_on_reduction_none_is_refused() {
    let s = spec(&MLP.replace(
        "{type: cross_entropy}",
        "{type: cross_entropy, reduction: none}",
    ));
    let err = build_step(&s, 8, TargetLayout::Classes).unwrap_err();
    assert!(matches!(err, NnError::Loss { .. }), "{err}");
    assert!(err.to_string().contains("reduction: none"), "{err}");
}

#[test]
fn class_weight_of_wrong_length_names_the_loss() {
    let s = spec(&MLP.replace(
        "{type: cross_entropy}",
        "{type: cross_entropy, weight: [1, 2]}",
    ));
    let err = build_step(&s, 8, TargetLayout::Classes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cross_entropy") && err.contains("weight has 2 values, expected 3"),
        "{err}"
    );
}

#[test]
fn mse_with_class_indices_names_the_loss_and_the_problem() {
    let s = spec(&MLP.replace("{type: cross_entropy}", "{type: mse}"));
    let err = build_step(&s, 8, TargetLayout::Classes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mse") && err.contains("class indices"),
        "{err}"
    );
    let err = build_step(&s, 8, TargetLayout::Floats { width: 2 })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("outputs 3 values") && err.contains("2 target columns"),
        "{err}"
    );
    assert_eq!(
        natural_layout(&s).unwrap(),
        TargetLayout::Floats { width: 3 }
    );
}

#[test]
fn softmax_dim_out_of_range_names_the_layer() {
    let s = spec(&MLP.replace("{type: relu}", "{type: softmax, dim: 2}"));
    let err = build_step(&s, 8, TargetLayout::Classes)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("model.layers[1] (softmax at 1)"), "{err}");
}

#[test]
fn absurd_layer_is_refused_before_allocating() {
    let s = spec(&MLP.replace("out: 7", "out: 1000000000000"));
    let err = build_step(&s, 8, TargetLayout::Classes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.layers[0]") && err.contains("too large"),
        "{err}"
    );
}

#[test]
fn param_group_pattern_matching_nothing_is_an_error() {
    let s = spec(&MLP.replace(
        "momentum: 0.9}",
        "momentum: 0.9, param_groups: [{params: ['head.*'], lr: 0.01}]}",
    ));
    let err = build_step(&s, 8, TargetLayout::Classes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("head.*") && err.contains("matches no parameter") && err.contains("0.weight"),
        "{err}"
    );
}

#[test]
fn param_groups_take_the_first_matching_pattern() {
    let s = spec(&MLP.replace(
        "momentum: 0.9}",
        "momentum: 0.9, param_groups: [{params: ['0.*'], lr: 0.01}, {params: ['*.bias'], lr: 0.5}]}",
    ));
    let step = build_step(&s, 8, TargetLayout::Classes).unwrap();
    // 0.weight, 0.bias → group 0 (first match); 2.weight → defaults (2); 2.bias → group 1.
    assert_eq!(step.groups, [0, 0, 2, 1]);
}

#[test]
fn prelu_declares_its_slopes_with_pytorchs_init() {
    let s = spec(&MLP.replace(
        "{type: relu}",
        "{type: prelu, num_parameters: 7, init: 0.1}, {type: prelu, name: act}",
    ));
    let infos = graphc_nn::describe_model(&s.model, 8).unwrap();
    let decls: Vec<(&str, &[usize], DefaultInit)> = infos
        .iter()
        .flat_map(|i| &i.params)
        .map(|p| (p.name.as_str(), p.shape.as_slice(), p.init.clone()))
        .filter(|(_, _, init)| matches!(init, DefaultInit::Constant(_)))
        .collect();
    assert_eq!(
        decls,
        [
            ("1.weight", &[7][..], DefaultInit::Constant(0.1)),
            ("act.weight", &[1][..], DefaultInit::Constant(0.25)),
        ]
    );
    let step = build_step(&s, 8, TargetLayout::Classes).unwrap();
    let values = default_init(&step.params, 0);
    let slopes = step
        .params
        .iter()
        .position(|p| p.name == "1.weight")
        .unwrap();
    assert_eq!(values[slopes], vec![0.1; 7]);
}

#[test]
fn prelu_slopes_must_match_the_channels() {
    let s = spec(&MLP.replace("{type: relu}", "{type: prelu, num_parameters: 3}"));
    let e = build_step(&s, 8, TargetLayout::Classes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "model.layers[1] (prelu at 1): num_parameters 3 must equal the input's channels (axis 1 of [8, 7]), as PyTorch requires"
    );
}
