//! `requires_grad: false`: the runs of `tests/goldens/freeze/*` (made by
//! `tools/goldens/freeze.py` with PyTorch: frozen layers under SGD and Adam with weight decay,
//! AdamW, a frozen batch norm, param groups of frozen parameters, accumulation) give PyTorch's
//! losses and final `state_dict` on every backend, frozen parameters bit for bit their initial
//! values; the step graph differentiates no frozen parameter and keeps no state for it.

use std::path::Path;

use graphc::stages::ir::Op;
use graphc::stages::nn::{build_step, TargetLayout};
use graphc::BackendKind;

use crate::support::{golden_cases, read_state_dict, run_golden, StoredValues};

/// Every case on every backend; then every tensor PyTorch left unchanged (the frozen
/// parameters) is bit for bit its `init.safetensors` value in graphc's `model.safetensors`.
#[test]
fn every_backend_matches_pytorch_with_frozen_layers() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("freeze", 7) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-4, 1e-6);
            run.assert_valid_losses(2e-4, 1e-6);
            run.assert_final_weights(1e-3, 1e-5);
            let init = read_state_dict(&case.join("init.safetensors"));
            let ours = read_state_dict(&run.out.path().join("model.safetensors"));
            let finals = run.expected["final"].as_object().expect("final");
            let mut frozen = 0;
            for (name, start) in &init {
                let (StoredValues::F32(start), StoredValues::F32(end)) =
                    (&start.values, &ours[name].values)
                else {
                    continue;
                };
                let pytorch: Vec<f32> = crate::support::floats(&finals[name]["data"])
                    .into_iter()
                    .map(|v| v as f32)
                    .collect();
                if pytorch == *start && !name.contains("running_") {
                    frozen += 1;
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(end), bits(start), "{}: {name} moved", run.what);
                }
            }
            assert!(frozen >= 1, "{}: no frozen parameter", run.what);
        }
    }
}

const SPEC: &str = "\
seed: 3
data: {train: {csv: train.csv, target: label}, batch_size: 4}
model:
  input: [5]
  layers:
    - {type: linear, out: 6, requires_grad: FROZEN}
    - {type: relu}
    - {type: linear, out: 3}
loss: {type: cross_entropy}
optimizer: {type: adam, lr: 0.01, weight_decay: 0.1}
train: {epochs: 1, accumulate: 2, clip_grad_norm: {max_norm: 1.0}}
";

#[test]
fn the_step_differentiates_and_updates_no_frozen_parameter() {
    let step = |frozen: bool| {
        let text = SPEC.replace("FROZEN", &(!frozen).to_string());
        let spec = graphc::parse_str(&text, Path::new("spec.yaml")).unwrap();
        build_step(&spec, 4, TargetLayout::Classes).unwrap()
    };
    let matmuls = |s: &graphc::stages::nn::StepGraph| {
        s.graph
            .node_ids()
            .filter(|&n| matches!(s.graph.node(n).op, Op::MatMul { .. }))
            .count()
    };
    let (frozen, trained) = (step(true), step(false));
    // Trained: two forward products, the second weight's gradient, the gradient into the
    // hidden layer and the first weight's gradient. Frozen: the backward pass ends at the
    // second weight, so the last two are never built.
    assert_eq!(matmuls(&trained), 5);
    assert_eq!(matmuls(&frozen), 3);

    let names = |s: &graphc::stages::nn::StepGraph| {
        let assigned: Vec<String> = s
            .graph
            .assigns()
            .iter()
            .filter_map(|a| s.graph.node(a.target).op.leaf_name().map(str::to_owned))
            .collect();
        let state: Vec<String> = s.state.iter().map(|(n, _)| n.clone()).collect();
        let accumulators: Vec<String> = s.accumulators.iter().map(|(n, _)| n.clone()).collect();
        (assigned, state, accumulators)
    };
    let (assigned, state, accumulators) = names(&frozen);
    for name in assigned.iter().chain(&state).chain(&accumulators) {
        assert!(
            !name.starts_with("0."),
            "{name} belongs to the frozen layer"
        );
    }
    assert!(assigned.contains(&"2.weight".to_owned()), "{assigned:?}");
    assert_eq!(state.len(), 4, "{state:?}");
    assert_eq!(accumulators, ["2.weight.grad", "2.bias.grad"]);
    // The frozen parameters are still the model's, in state_dict order, and its groups'.
    let params: Vec<(&str, bool)> = frozen
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.trainable))
        .collect();
    assert_eq!(
        params,
        [
            ("0.weight", false),
            ("0.bias", false),
            ("2.weight", true),
            ("2.bias", true)
        ]
    );
    assert_eq!(frozen.groups, [0, 0, 0, 0]);
    let (_, trained_state, _) = names(&trained);
    assert_eq!(trained_state.len(), 8, "{trained_state:?}");
}

/// A block's `requires_grad: false` freezes every layer inside it, and a node the output
/// does not use trains nothing (PyTorch: no `.grad`, so no state, no update, no weight decay).
#[test]
fn blocks_freeze_their_layers_and_unused_nodes_are_not_trained() {
    let trainable = |model: &str| -> Vec<(String, bool)> {
        let text = format!(
            "data: {{train: {{csv: d.csv, target: y}}, batch_size: 4}}
model:
  input: [3]
{model}loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1, weight_decay: 0.1}}
train: {{epochs: 1}}
"
        );
        let spec = graphc::parse_str(&text, Path::new("spec.yaml")).unwrap();
        let step = build_step(&spec, 4, TargetLayout::Classes).unwrap();
        step.params
            .iter()
            .map(|p| (p.name.clone(), p.trainable))
            .collect()
    };
    let chain = trainable(
        "  layers:
    - {type: sequential, name: features, requires_grad: false, layers: [{type: linear, out: 4}, {type: relu}, {type: residual, layers: [{type: linear, out: 4}]}]}
    - {type: linear, out: 2, name: head}
",
    );
    assert_eq!(
        chain,
        [
            ("features.0.weight".to_owned(), false),
            ("features.0.bias".to_owned(), false),
            ("features.2.body.0.weight".to_owned(), false),
            ("features.2.body.0.bias".to_owned(), false),
            ("head.weight".to_owned(), true),
            ("head.bias".to_owned(), true),
        ]
    );
    let graph = trainable(
        "  nodes:
    - {name: a, type: linear, out: 4}
    - {name: unused, type: linear, out: 2}
    - {name: head, type: linear, out: 2, inputs: a}
",
    );
    assert_eq!(
        graph,
        [
            ("a.weight".to_owned(), true),
            ("a.bias".to_owned(), true),
            ("unused.weight".to_owned(), false),
            ("unused.bias".to_owned(), false),
            ("head.weight".to_owned(), true),
            ("head.bias".to_owned(), true),
        ]
    );
}
