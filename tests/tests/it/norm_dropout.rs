//! Batch norm and dropout through the trainer: `num_batches_tracked` counts every training
//! forward (accumulated micro-batches too, evaluations never) and drives `momentum: null`;
//! the JIT and the interpreter train with the same dropout masks; evaluation uses the running
//! statistics and no dropout, deterministically.

use std::path::Path;

use graphc::stages::train::{read_state_dict, Counter, StateDict};
use graphc::{BackendKind, BatchTargets, RunOptions, Trainer};

use crate::support::{close, dataset, rows_with_classes, to_bits};

fn parse(text: &str) -> graphc::Spec {
    graphc::parse_str(text, Path::new("spec.yaml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn compile(text: &str, backend: BackendKind) -> Trainer {
    graphc::compile(&parse(text), backend).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn counter(state: &StateDict) -> i64 {
    match state.counters.as_slice() {
        [Counter { name, value }] => {
            assert_eq!(name, "0.num_batches_tracked");
            *value
        }
        other => panic!("one counter expected: {other:?}"),
    }
}

/// A tensor of the model's `state_dict` by name.
fn tensor<'a>(state: &'a StateDict, name: &str) -> &'a [f32] {
    &state
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", state.tensors))
        .data
}

/// Batch norm first, on the raw features, so its running statistics depend on the data only.
fn cumulative_spec(train: &str) -> String {
    format!(
        "seed: 5
data: {{train: {{csv: train.csv, target: label}}, valid: {{csv: train.csv, target: label}}, batch_size: 4}}
model:
  input: [3]
  layers:
    - {{type: batch_norm1d, momentum: null}}
    - {{type: linear, out: 3}}
loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1}}
train: {train}
"
    )
}

#[test]
fn num_batches_tracked_counts_training_forwards_and_weighs_the_cumulative_average() {
    let (features, labels) = rows_with_classes(12, 3, 3);
    let batches: Vec<(&[f32], BatchTargets)> = features
        .chunks(4 * 3)
        .zip(labels.chunks(4))
        .map(|(x, y)| (x, BatchTargets::Classes(y.to_vec())))
        .collect();
    let data = dataset(features.clone(), 3, labels.clone());
    for &backend in BackendKind::ALL {
        let mut t = compile(&cumulative_spec("{epochs: 1, accumulate: 2}"), backend);
        assert_eq!(counter(&t.model_state()), 0);
        for (x, y) in &batches {
            t.step(x, y).unwrap();
        }
        // Three forwards, one update and one batch pending: every forward counts.
        assert_eq!((t.step_count(), t.pending_batches()), (1, 1));
        assert_eq!(counter(&t.model_state()), 3, "{}", backend.name());
        assert_eq!(t.state_dict().forwards, 3);
        let before = t.model_state();
        t.evaluate(&data).unwrap();
        t.predict(&data).unwrap();
        assert_eq!(
            t.model_state(),
            before,
            "evaluation changes no buffer or counter"
        );

        // momentum null: the running mean is the plain average of the batch means, and the
        // running variance that of the unbiased batch variances.
        let state = t.model_state();
        for c in 0..3 {
            let column = |b: usize| -> Vec<f64> {
                (0..4)
                    .map(|r| f64::from(features[(b * 4 + r) * 3 + c]))
                    .collect()
            };
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let var = |v: &[f64]| {
                let m = mean(v);
                v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
            };
            let means: Vec<f64> = (0..3).map(|b| mean(&column(b))).collect();
            let vars: Vec<f64> = (0..3).map(|b| var(&column(b))).collect();
            let running_mean = f64::from(tensor(&state, "0.running_mean")[c]);
            let running_var = f64::from(tensor(&state, "0.running_var")[c]);
            assert!(
                close(running_mean, mean(&means), 1e-5, 1e-6),
                "channel {c} on {}: running_mean {running_mean}, average of batch means {}",
                backend.name(),
                mean(&means)
            );
            assert!(
                close(running_var, mean(&vars), 1e-5, 1e-6),
                "channel {c} on {}: running_var {running_var}, average of batch variances {}",
                backend.name(),
                mean(&vars)
            );
        }
    }
}

#[test]
fn a_run_writes_the_number_of_training_batches_not_validation_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (features, labels) = rows_with_classes(10, 3, 3);
    crate::support::write_csv(&dir.path().join("train.csv"), &features, 3, &labels);
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(&spec_path, cumulative_spec("{epochs: 3, accumulate: 2}")).unwrap();
    let out = dir.path().join("out");
    graphc::train(
        &spec_path,
        RunOptions {
            out_dir: out.clone(),
            backend: BackendKind::Interp.backend(),
            quiet: true,
            overrides: Vec::new(),
        },
    )
    .unwrap();
    // 10 rows in batches of 4: 3 batches an epoch (4, 4, 2), 3 epochs; validation after each
    // epoch counts nothing.
    let model = read_state_dict(&out.join("model.safetensors")).unwrap();
    assert_eq!(counter(&model), 9);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["forwards"], 9);
    let saved = read_state_dict(&out.join("checkpoint/model.safetensors")).unwrap();
    assert_eq!(saved, model, "the checkpoint holds the same state_dict");
}

/// conv2d, batch norm, channel dropout, and element dropout on the output, so that the
/// output's zeros are the last dropout's mask.
const CNN: &str = "seed: 11
data: {train: {csv: unused.csv, target: y}, batch_size: 6}
model:
  input: [2, 4, 4]
  layers:
    - {type: conv2d, out_channels: 3, kernel_size: 3, padding: 1}
    - {type: batch_norm2d}
    - {type: relu}
    - {type: dropout2d, p: 0.4}
    - {type: flatten}
    - {type: linear, out: 8}
    - {type: dropout, p: 0.5}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
train: {steps: 6}
";

fn zeros(values: &[f32]) -> Vec<bool> {
    values.iter().map(|&v| v == 0.0).collect()
}

#[test]
fn jit_and_interpreter_train_with_the_same_dropout_masks_and_losses() {
    let x: Vec<f32> = (0..6 * 32)
        .map(|i| ((i * 29) % 23) as f32 / 7.0 - 1.5)
        .collect();
    let y = BatchTargets::Floats((0..6 * 8).map(|i| ((i * 13) % 5) as f32 - 2.0).collect());
    let mut jit = compile(CNN, BackendKind::Jit);
    let mut interp = compile(CNN, BackendKind::Interp);
    let mut masks = Vec::new();
    for step in 1..=6 {
        let a = jit.step(&x, &y).unwrap();
        let b = interp.step(&x, &y).unwrap();
        assert!(
            close(f64::from(a), f64::from(b), 1e-5, 0.0),
            "step {step}: jit loss {a}, interp loss {b}"
        );
        let mask = zeros(jit.last_output().unwrap());
        assert_eq!(
            mask,
            zeros(interp.last_output().unwrap()),
            "step {step}: the output dropout's mask"
        );
        let dropped = mask.iter().filter(|&&z| z).count();
        assert!(
            (8..=40).contains(&dropped),
            "step {step}: p 0.5 of 48 outputs, {dropped} dropped"
        );
        masks.push(mask);
    }
    assert!(
        masks.windows(2).all(|w| w[0] != w[1]),
        "every training forward draws a new mask"
    );
    let (a, b) = (jit.model_state(), interp.model_state());
    assert_eq!(a.counters, b.counters);
    assert_eq!(counter_named(&a, "1.num_batches_tracked"), 6);
    for (ta, tb) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(ta.name, tb.name);
        for (i, (&va, &vb)) in ta.data.iter().zip(&tb.data).enumerate() {
            assert!(
                close(f64::from(va), f64::from(vb), 1e-4, 1e-6),
                "{}[{i}]: jit {va}, interp {vb}",
                ta.name
            );
        }
    }

    // The same spec compiled again draws the same masks: they come from the seed.
    let mut again = compile(CNN, BackendKind::Jit);
    again.step(&x, &y).unwrap();
    assert_eq!(zeros(again.last_output().unwrap()), masks[0]);
    let reseeded = CNN.replace("seed: 11", "seed: 12");
    let mut other = compile(&reseeded, BackendKind::Jit);
    other.step(&x, &y).unwrap();
    assert_ne!(
        zeros(other.last_output().unwrap()),
        masks[0],
        "another seed"
    );
}

fn counter_named(state: &StateDict, name: &str) -> i64 {
    state
        .counters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no counter {name}: {:?}", state.counters))
        .value
}

#[test]
fn dropout_zeroes_with_probability_p_and_scales_the_rest_by_one_over_one_minus_p() {
    // lr 0: the parameters stay, so the training output is the evaluation output masked.
    let text = "seed: 2
data: {train: {csv: unused.csv, target: y}, batch_size: 16}
model: {input: [4], layers: [{type: linear, out: 32}, {type: dropout, p: 0.25}]}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.0}
train: {steps: 1}
";
    let x: Vec<f32> = (0..16 * 4)
        .map(|i| ((i * 7) % 9) as f32 / 4.0 - 1.0)
        .collect();
    let targets = vec![0.0; 16 * 32];
    let data = dataset_floats(x.clone(), 4, targets.clone(), 32);
    for &backend in BackendKind::ALL {
        let mut t = compile(text, backend);
        t.step(&x, &BatchTargets::Floats(targets.clone())).unwrap();
        let train = t.last_output().unwrap().to_vec();
        let (eval, width) = t.predict(&data).unwrap();
        assert_eq!(width, 32);
        let mut dropped = 0;
        for (i, (&a, &e)) in train.iter().zip(&eval).enumerate() {
            if a == 0.0 {
                dropped += 1;
            } else {
                assert!(
                    close(f64::from(a), f64::from(e) / 0.75, 1e-6, 1e-7),
                    "{}: element {i} kept as {a}, evaluation {e}",
                    backend.name()
                );
            }
        }
        // 512 draws with p 0.25: 128 expected, standard deviation about 10.
        assert!(
            (88..=168).contains(&dropped),
            "{}: {dropped} of 512 dropped",
            backend.name()
        );
    }
}

fn dataset_floats(
    features: Vec<f32>,
    width: usize,
    values: Vec<f32>,
    outputs: usize,
) -> graphc::Dataset {
    let mut data = dataset(features, width, Vec::new());
    data.targets = graphc::stages::train::Targets::Floats {
        values,
        width: outputs,
    };
    data
}

#[test]
fn evaluation_uses_the_running_statistics_and_no_dropout() {
    let text = "seed: 4
data: {train: {csv: unused.csv, target: y}, batch_size: 5}
model: {input: [3], layers: [{type: batch_norm1d}, {type: dropout, p: 0.5}]}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train: {steps: 3}
";
    let x: Vec<f32> = (0..5 * 3).map(|i| ((i * 11) % 7) as f32 - 2.5).collect();
    let y: Vec<f32> = (0..5 * 3).map(|i| (i % 4) as f32 * 0.5).collect();
    let data = dataset_floats(x.clone(), 3, y.clone(), 3);
    for &backend in BackendKind::ALL {
        let mut t = compile(text, backend);
        // Before training: running mean 0 and variance 1, weight 1 and bias 0.
        let (before, _) = t.predict(&data).unwrap();
        let scale = (1.0f64 + 1e-5).sqrt();
        for (i, (&out, &x)) in before.iter().zip(&x).enumerate() {
            assert!(
                close(f64::from(out), f64::from(x) / scale, 1e-6, 1e-7),
                "{}: output {i} is {out}, x / sqrt(1 + eps) is {}",
                backend.name(),
                f64::from(x) / scale
            );
        }
        let first = t.evaluate(&data).unwrap();
        assert_eq!(to_bits(&t.predict(&data).unwrap().0), to_bits(&before));
        assert_eq!(
            t.evaluate(&data).unwrap(),
            first,
            "evaluation is deterministic"
        );

        for _ in 0..3 {
            t.step(&x, &BatchTargets::Floats(y.clone())).unwrap();
        }
        // After training: (x - running_mean) / sqrt(running_var + eps) · weight + bias.
        let state = t.model_state();
        let (rm, rv) = (
            tensor(&state, "0.running_mean"),
            tensor(&state, "0.running_var"),
        );
        let (w, b) = (tensor(&state, "0.weight"), tensor(&state, "0.bias"));
        assert!(
            rm.iter().all(|&m| m != 0.0),
            "the running mean moved: {rm:?}"
        );
        let (after, _) = t.predict(&data).unwrap();
        for (i, (&out, &x)) in after.iter().zip(&x).enumerate() {
            let c = i % 3;
            let want = (f64::from(x) - f64::from(rm[c])) / (f64::from(rv[c]) + 1e-5).sqrt()
                * f64::from(w[c])
                + f64::from(b[c]);
            assert!(
                close(f64::from(out), want, 1e-5, 1e-6),
                "{}: output {i} is {out}, the running-statistics transform gives {want}",
                backend.name()
            );
        }
        assert_eq!(to_bits(&t.predict(&data).unwrap().0), to_bits(&after));
    }
}
