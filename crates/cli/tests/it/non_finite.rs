//! NaN and infinity at the edges, end to end: weights given by `model.init.from` or
//! `--weights` and checkpoint tensors on `--resume` holding NaN or infinity are refused in one
//! line naming the file, the tensor, the value and its index; a loss that is not finite before
//! any update is not blamed on the learning rate; weights trained to NaN are never written.

use std::path::Path;
use std::process::Output;

use graphc::stages::train::{read_safetensors, write_safetensors, NamedTensor};

use crate::support::{assert_clear_failure, graphc_in, scratch};

/// A 2 → 3 → 3 classifier with a relu between, momentum SGD, a checkpoint every epoch.
const SPEC: &str = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 3}, {type: relu}, {type: linear, out: 3}], init: {from: init.safetensors}}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
train: {epochs: 2, checkpoint_every: 1}
";

const DATA: &str = "a,b,y\n1,2,0\n3,4,1\n5,6,2\n7,8,1\n";

fn tensor(name: &str, shape: &[usize], data: Vec<f32>) -> NamedTensor {
    NamedTensor {
        name: name.into(),
        shape: shape.to_vec(),
        data,
    }
}

/// The model's parameters, small and finite, with `value` at flat position `at` of `0.weight`.
fn weights(at: usize, value: f32) -> Vec<NamedTensor> {
    let mut w0: Vec<f32> = (0..6).map(|i| 0.1 * i as f32 - 0.2).collect();
    w0[at] = value;
    vec![
        tensor("0.weight", &[3, 2], w0),
        tensor("0.bias", &[3], vec![0.1, -0.1, 0.0]),
        tensor(
            "2.weight",
            &[3, 3],
            (0..9).map(|i| 0.05 * i as f32 - 0.2).collect(),
        ),
        tensor("2.bias", &[3], vec![0.0; 3]),
    ]
}

/// A scratch directory with the spec, the data and `init.safetensors`.
fn setup(init: &[NamedTensor]) -> tempfile::TempDir {
    let dir = scratch(&[("spec.yaml", SPEC), ("data.csv", DATA)]);
    write_safetensors(&dir.path().join("init.safetensors"), init).unwrap();
    dir
}

fn train(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "spec.yaml", "--out", "out", "--quiet"];
    args.extend(extra);
    graphc_in(dir, &args)
}

#[test]
fn nan_init_weights_are_refused_naming_the_tensor_and_index() {
    // [2, 1] of a [3, 2] weight is flat position 5.
    let dir = setup(&weights(5, f32::NAN));
    let o = train(dir.path(), &[]);
    assert_clear_failure(
        &o,
        &[
            "init.from ",
            "init.safetensors: tensor \"0.weight\" holds NaN at [2, 1]",
        ],
    );
    assert!(
        !dir.path().join("out").exists(),
        "a refused run writes nothing"
    );
}

#[test]
fn infinite_init_weights_are_refused_not_reported_as_divergence() {
    let dir = setup(&weights(0, f32::NEG_INFINITY));
    let o = train(dir.path(), &[]);
    let err = assert_clear_failure(&o, &["tensor \"0.weight\" holds -inf at [0, 0]"]);
    assert!(
        !err.contains("learning rate") && !err.contains("training diverged"),
        "{err}"
    );
}

#[test]
fn eval_and_predict_refuse_weights_holding_nan_or_infinity() {
    let dir = setup(&weights(0, 0.5));
    let mut bad = weights(0, 0.5);
    bad[3].data[1] = f32::INFINITY;
    write_safetensors(&dir.path().join("bad.safetensors"), &bad).unwrap();
    for command in ["eval", "predict"] {
        let mut args = vec![command, "spec.yaml", "--weights", "bad.safetensors"];
        if command == "predict" {
            args.extend(["--data", "data.csv"]);
        }
        let o = graphc_in(dir.path(), &args);
        assert_clear_failure(
            &o,
            &["--weights bad.safetensors: tensor \"2.bias\" holds inf at [1]"],
        );
    }
}

#[test]
fn resume_refuses_a_checkpoint_whose_momentum_buffer_holds_nan() {
    let dir = setup(&weights(0, 0.5));
    let o = train(dir.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let checkpoint = dir.path().join("out/checkpoint");
    let file = checkpoint.join("optimizer.safetensors");
    let mut state = read_safetensors(&file).unwrap();
    let buffer = state
        .iter_mut()
        .find(|t| t.name.contains("momentum_buffer") && t.shape == [3, 3])
        .expect("a momentum buffer of 2.weight");
    buffer.data[4] = f32::NAN;
    let name = buffer.name.clone();
    write_safetensors(&file, &state).unwrap();
    let longer = SPEC.replace("epochs: 2", "epochs: 3");
    std::fs::write(dir.path().join("spec.yaml"), longer).unwrap();
    let model_before = std::fs::read(dir.path().join("out/model.safetensors")).unwrap();
    let o = train(dir.path(), &["--resume", "out/checkpoint"]);
    let err = assert_clear_failure(
        &o,
        &[
            "checkpoint",
            &format!("optimizer state \"{name}\" holds NaN at [1, 1]"),
        ],
    );
    assert!(!err.contains("learning rate"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("out/model.safetensors")).unwrap(),
        model_before,
        "a refused resume leaves the run as it was"
    );
}

#[test]
fn resume_refuses_a_checkpoint_whose_model_holds_infinity() {
    let dir = setup(&weights(0, 0.5));
    let o = train(dir.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = dir.path().join("out/checkpoint/model.safetensors");
    let mut params = read_safetensors(&file).unwrap();
    let bias = params.iter_mut().find(|t| t.name == "0.bias").unwrap();
    bias.data[2] = f32::INFINITY;
    write_safetensors(&file, &params).unwrap();
    std::fs::write(
        dir.path().join("spec.yaml"),
        SPEC.replace("epochs: 2", "epochs: 3"),
    )
    .unwrap();
    let o = train(dir.path(), &["--resume", "out/checkpoint"]);
    assert_clear_failure(&o, &["checkpoint", "parameter \"0.bias\" holds inf at [2]"]);
}

#[test]
fn a_loss_that_overflows_before_any_update_is_not_blamed_on_the_learning_rate() {
    // Finite weights and finite features whose products overflow: the loss of step 1 is
    // infinite before any update, so no learning rate is to blame.
    let spec = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 1}], init: {from: init.safetensors}}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.000001}
train: {epochs: 1}
";
    let dir = scratch(&[
        ("spec.yaml", spec),
        ("data.csv", "a,b,y\n3e38,3e38,1\n1,2,3\n"),
    ]);
    write_safetensors(
        &dir.path().join("init.safetensors"),
        &[
            tensor("0.weight", &[1, 2], vec![1.0, 1.0]),
            tensor("0.bias", &[1], vec![0.0]),
        ],
    )
    .unwrap();
    let o = train(dir.path(), &[]);
    let err = assert_clear_failure(
        &o,
        &["the loss is inf at step 1 (epoch 1), before any update"],
    );
    assert!(!err.contains("lower the learning rate"), "{err}");
    assert!(!dir.path().join("out").exists());
}
