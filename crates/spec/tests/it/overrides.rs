//! `--set KEY=VALUE`: overrides by dotted path, values read as YAML, and their errors named
//! by the override.

use std::path::Path;

use graphc_spec::*;

const BASE: &str = "\
seed: 0
data:
  train: {csv: train.csv, target: y}
  batch_size: 10
model:
  input: [4]
  layers:
    - {type: linear, out: 16}
    - {type: relu}
    - {type: linear, out: 3}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2}
";

fn set(overrides: &[&str]) -> Result<Spec, SpecError> {
    let overrides: Vec<Override> = overrides.iter().map(|o| o.parse().unwrap()).collect();
    parse_str_with(BASE, Path::new("spec.yaml"), &overrides)
}

#[test]
fn overrides_replace_add_and_index_keys() {
    let spec = set(&[
        "optimizer.lr=0.05",
        "optimizer.momentum=0.9",
        "model.layers.0.out=32",
        "data.batch_size=4",
        "train.steps=7",
        "loss={type: mse}",
    ])
    .unwrap();
    let OptimizerKind::Sgd(sgd) = &spec.optimizer.kind else {
        panic!("{:?}", spec.optimizer);
    };
    assert_eq!((sgd.lr, sgd.momentum), (0.05, 0.9));
    assert_eq!(
        spec.model.layers().unwrap()[0].kind,
        LayerKind::Linear {
            out: 32,
            bias: true
        }
    );
    assert_eq!(spec.data.batch_size, 4);
    assert_eq!((spec.train.epochs, spec.train.steps), (Some(2), Some(7)));
    assert!(matches!(spec.loss, LossSpec::Mse { .. }), "{:?}", spec.loss);
    // Later overrides win.
    let spec = set(&["optimizer.lr=0.05", "optimizer.lr=0.2"]).unwrap();
    let OptimizerKind::Sgd(sgd) = &spec.optimizer.kind else {
        panic!();
    };
    assert_eq!(sgd.lr, 0.2);
}

#[track_caller]
fn assert_fails(overrides: &[&str], message: &str) {
    let e = set(overrides).unwrap_err();
    assert_eq!(e.to_string(), message);
}

#[test]
fn override_errors_name_the_override_and_the_valid_keys() {
    assert_fails(
        &["optimizer.lr=0.05", "optimizer.lrr=0.5"],
        "spec.yaml: --set optimizer.lrr=0.5: unknown key `lrr` in optimizer (sgd); did you mean \
         `lr`? valid keys: type, lr, momentum, dampening, weight_decay, nesterov, maximize, \
         param_groups",
    );
    assert_fails(
        &["model.layers.3.out=3"],
        "spec.yaml: --set model.layers.3.out=3: model.layers is a list of 3, so the part after \
         it is an index 0 to 2, not `3`",
    );
    assert_fails(
        &["optimizer.lr.x=3"],
        "spec.yaml: --set optimizer.lr.x=3: optimizer.lr is a single value, not a mapping with a \
         key `x`",
    );
    assert_fails(
        &["optimizer.lr=-1"],
        "spec.yaml: --set optimizer.lr=-1: optimizer.lr: invalid value: integer `-1`, expected a \
         learning rate >= 0",
    );
    assert_fails(
        &["modle.input=[4]"],
        "spec.yaml: --set modle.input=[4]: unknown key `modle` in the top-level mapping; did you \
         mean `model`? valid keys: seed, data, model, loss, params, objective, optimizer, scheduler, train",
    );
}

#[test]
fn malformed_overrides_are_refused_when_read() {
    let e = "optimizer".parse::<Override>().unwrap_err();
    assert_eq!(e, "`optimizer` is not KEY=VALUE (e.g. optimizer.lr=0.05)");
    let e = "optimizer..lr=1".parse::<Override>().unwrap_err();
    assert!(e.contains("not a dotted path"), "{e}");
    let e = "optimizer.lr=[1".parse::<Override>().unwrap_err();
    assert!(
        e.starts_with("the value of optimizer.lr is not YAML"),
        "{e}"
    );
}

#[test]
fn the_file_is_checked_first_with_its_own_positions() {
    let bad = BASE.replace("lr: 0.1", "lr: -0.1");
    let overrides: Vec<Override> = vec!["optimizer.lr=0.1".parse().unwrap()];
    let e = parse_str_with(&bad, Path::new("spec.yaml"), &overrides).unwrap_err();
    assert_eq!((e.line(), e.column()), (Some(12), Some(28)), "{e}");
}

#[test]
fn sweep_values_are_lists_or_numpy_spaces() {
    let texts = |s: &str| -> Vec<String> {
        let axis: SweepAxis = s.parse().unwrap();
        axis.values.iter().map(|o| o.text.clone()).collect()
    };
    assert_eq!(texts("optimizer.lr=[0.01, 0.03]"), ["0.01", "0.03"]);
    assert_eq!(
        texts("optimizer.lr=linspace(0.01,0.2,3)"),
        ["0.01", "0.105", "0.2"]
    );
    assert_eq!(
        texts("optimizer.lr=logspace(-2, 1, 4)"),
        ["0.01", "0.1", "1.0", "10.0"]
    );
    assert_eq!(texts("optimizer.lr=linspace(1,2,1)"), ["1.0"]);
    assert_eq!(texts("optimizer.lr=0.5"), ["0.5"]);
    assert_eq!(
        texts("loss=[{type: mse}, {type: l1}]"),
        [r#"{"type":"mse"}"#, r#"{"type":"l1"}"#]
    );
    let axis: SweepAxis = "optimizer.lr=[0.01, 0.03]".parse().unwrap();
    assert_eq!(axis.key, "optimizer.lr");
    for bad in [
        "optimizer.lr=linspace(1,2)",
        "optimizer.lr=logspace(a,2,3)",
        "optimizer.lr=linspace(1,2,0)",
        "optimizer.lr=[]",
    ] {
        assert!(bad.parse::<SweepAxis>().is_err(), "{bad}");
    }
    let e = "optimizer.lr=linspace(1,2)"
        .parse::<SweepAxis>()
        .unwrap_err();
    assert_eq!(
        e,
        "optimizer.lr=linspace(1,2): expected linspace(A,B,N), N a positive integer"
    );
}
