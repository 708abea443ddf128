//! Specs that parse: the SPEC.md example, PyTorch defaults, class-name aliases, param groups.

use std::path::{Path, PathBuf};

use graphc_spec::*;

/// SPEC.md's complete example, minus `scheduler` (not supported yet).
const EXAMPLE: &str = "\
seed: 0                         # init, shuffling, dropout: same seed, same run
data:
  train: {csv: data/iris.csv, target: species}    # target: a column name, or a list of names
  valid: {csv: data/iris_valid.csv, target: species}   # optional; or `split: 0.2` under data
  batch_size: 16
  shuffle: true                 # reshuffled every epoch, from `seed`
  drop_last: false              # a last partial batch is a full step of its own size
  standardize: false            # z-score features with the train set's statistics
model:
  input: [4]                    # the shape of one sample's features
  layers:                       # sequential, like torch.nn.Sequential
    - {type: linear, out: 16}   # in: inferred; bias: true
    - {type: relu}
    - {type: linear, out: 3}
  init: {from: init.safetensors}   # optional; otherwise PyTorch's default init from `seed`
loss: {type: cross_entropy, weight: [1.0, 2.0, 1.0], ignore_index: -100, reduction: mean, label_smoothing: 0.0}
optimizer:
  type: sgd
  lr: 0.1
  momentum: 0.9
  dampening: 0.0
  weight_decay: 0.0
  nesterov: false
  maximize: false
  param_groups:                 # torch.optim param groups; a parameter takes the first group whose pattern matches
    - {params: [\"0.*\"], lr: 0.01}   # unmatched parameters take the settings above
train:
  epochs: 20                    # or `steps: N`; both: whichever ends first
";

/// The smallest valid spec: every optional key left out.
const MINIMAL: &str = "\
data:
  train: {csv: train.csv, target: y}
model:
  input: [3]
  layers:
    - {type: linear, out: 1}
loss: {type: mse}
optimizer: {type: sgd}
train: {steps: 5}
";

fn parse(text: &str) -> Spec {
    match parse_str(text, Path::new("spec.yaml")) {
        Ok(spec) => spec,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn sgd(kind: &OptimizerKind) -> &SgdSpec {
    let OptimizerKind::Sgd(s) = kind else {
        panic!("expected sgd, got {kind:?}");
    };
    s
}

#[test]
fn spec_md_example_without_scheduler_parses_to_expected_value() {
    let spec = parse(EXAMPLE);
    assert_eq!(spec.seed, 0);
    assert_eq!(
        spec.data,
        DataSpec {
            train: SourceSpec::Csv {
                path: PathBuf::from("data/iris.csv"),
                target: vec!["species".into()],
                features: None,
            },
            valid: Some(SourceSpec::Csv {
                path: PathBuf::from("data/iris_valid.csv"),
                target: vec!["species".into()],
                features: None,
            }),
            batch_size: 16,
            shuffle: true,
            drop_last: false,
            standardize: None,
            split: None,
        }
    );
    assert_eq!(
        spec.model,
        ModelSpec {
            input: vec![4],
            body: ModelBody::Layers(vec![
                LayerSpec {
                    name: None,
                    kind: LayerKind::Linear {
                        out: 16,
                        bias: true
                    },
                    declared_input: None,
                    init: LayerInit::default(),
                    requires_grad: true,
                },
                LayerSpec {
                    name: None,
                    kind: LayerKind::Relu,
                    declared_input: None,
                    init: LayerInit::default(),
                    requires_grad: true,
                },
                LayerSpec {
                    name: None,
                    kind: LayerKind::Linear { out: 3, bias: true },
                    declared_input: None,
                    init: LayerInit::default(),
                    requires_grad: true,
                },
            ]),
            init: InitSpec::From(PathBuf::from("init.safetensors")),
        }
    );
    assert_eq!(
        spec.loss,
        LossSpec::CrossEntropy {
            weight: Some(vec![1.0, 2.0, 1.0]),
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    );
    let top = SgdSpec {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        maximize: false,
    };
    assert_eq!(spec.optimizer.kind, OptimizerKind::Sgd(top.clone()));
    assert_eq!(
        spec.optimizer.param_groups,
        vec![ParamGroupSpec {
            params: vec!["0.*".into()],
            kind: OptimizerKind::Sgd(SgdSpec { lr: 0.01, ..top }),
        }]
    );
    assert_eq!(
        spec.train,
        TrainSpec {
            epochs: Some(20),
            steps: None,
            accumulate: 1,
            clip_grad_norm: None,
            clip_grad_value: None,
            checkpoint_every: None,
            early_stopping: None,
            keep_best: false,
            precision: Precision::Fp32,
            sync_batch_norm: false,
        }
    );
}

#[test]
fn omitted_keys_take_pytorch_defaults() {
    let spec = parse(MINIMAL);
    assert_eq!(spec.seed, 0);
    assert_eq!(spec.data.batch_size, 1);
    assert!(!spec.data.shuffle && !spec.data.drop_last && spec.data.standardize.is_none());
    assert_eq!(spec.data.valid, None);
    assert!(matches!(
        &spec.data.train,
        SourceSpec::Csv { features: None, .. }
    ));
    assert_eq!(spec.model.init, InitSpec::Default);
    assert_eq!(
        spec.model.layers().unwrap()[0].kind,
        LayerKind::Linear { out: 1, bias: true }
    );
    assert_eq!(
        spec.loss,
        LossSpec::Mse {
            reduction: Reduction::Mean
        }
    );
    assert_eq!(
        *sgd(&spec.optimizer.kind),
        SgdSpec {
            lr: 0.001,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    );
    assert!(spec.optimizer.param_groups.is_empty());
    assert_eq!(
        spec.train,
        TrainSpec {
            epochs: None,
            steps: Some(5),
            accumulate: 1,
            clip_grad_norm: None,
            clip_grad_value: None,
            checkpoint_every: None,
            early_stopping: None,
            keep_best: false,
            precision: Precision::Fp32,
            sync_batch_norm: false,
        }
    );
}

#[test]
fn loss_defaults_follow_pytorch() {
    let ce = parse(&MINIMAL.replace("{type: mse}", "{type: cross_entropy}"));
    assert_eq!(
        ce.loss,
        LossSpec::CrossEntropy {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    );
    let bce = parse(&MINIMAL.replace("{type: mse}", "{type: bce_with_logits}"));
    assert_eq!(
        bce.loss,
        LossSpec::BceWithLogits {
            weight: None,
            pos_weight: None,
            reduction: Reduction::Mean,
        }
    );
    let bce = parse(&MINIMAL.replace(
        "{type: mse}",
        "{type: BCEWithLogitsLoss, pos_weight: [3], weight: [0.5], reduction: sum}",
    ));
    assert_eq!(
        bce.loss,
        LossSpec::BceWithLogits {
            weight: Some(vec![0.5]),
            pos_weight: Some(vec![3.0]),
            reduction: Reduction::Sum,
        }
    );
    let mse = parse(&MINIMAL.replace("{type: mse}", "{type: MSELoss, reduction: none}"));
    assert_eq!(
        mse.loss,
        LossSpec::Mse {
            reduction: Reduction::None
        }
    );
}

#[test]
fn pytorch_class_names_are_aliases_of_snake_case_types() {
    let text = "\
data: {train: {csv: t.csv, target: [a, b], features: [x, y]}}
model:
  input: [2]
  layers:
    - {type: Linear, out_features: 8, bias: false}
    - {type: ReLU}
    - {type: Sigmoid}
    - {type: Tanh}
    - {type: Softmax}
    - {type: LogSoftmax, dim: 0}
    - {type: log_softmax, name: head}
loss: {type: CrossEntropyLoss, label_smoothing: 0.1}
optimizer: {type: SGD, lr: 0.5}
train: {epochs: 1, steps: 10}
";
    let spec = parse(text);
    assert_eq!(
        spec.data.train,
        SourceSpec::Csv {
            path: PathBuf::from("t.csv"),
            target: vec!["a".into(), "b".into()],
            features: Some(vec!["x".into(), "y".into()]),
        }
    );
    let kinds: Vec<&LayerKind> = spec
        .model
        .layers()
        .unwrap()
        .iter()
        .map(|l| &l.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            &LayerKind::Linear {
                out: 8,
                bias: false
            },
            &LayerKind::Relu,
            &LayerKind::Sigmoid,
            &LayerKind::Tanh,
            &LayerKind::Softmax { dim: -1 },
            &LayerKind::LogSoftmax { dim: 0 },
            &LayerKind::LogSoftmax { dim: -1 },
        ]
    );
    assert_eq!(
        spec.model.layers().unwrap()[6].name.as_deref(),
        Some("head")
    );
    assert!(matches!(
        spec.loss,
        LossSpec::CrossEntropy { label_smoothing, .. } if (label_smoothing - 0.1).abs() < 1e-7
    ));
    assert_eq!(sgd(&spec.optimizer.kind).lr, 0.5);
    assert_eq!(spec.train.epochs, Some(1));
    assert_eq!(spec.train.steps, Some(10));
}

#[test]
fn type_may_come_after_the_other_keys() {
    let text = MINIMAL
        .replace(
            "{type: linear, out: 1}",
            "{out: 16, bias: false, type: linear}",
        )
        .replace("{type: mse}", "{reduction: sum, type: mse}")
        .replace(
            "{type: sgd}",
            "{lr: 0.2, param_groups: [{params: [a]}], type: sgd}",
        );
    let spec = parse(&text);
    assert_eq!(
        spec.model.layers().unwrap()[0].kind,
        LayerKind::Linear {
            out: 16,
            bias: false
        }
    );
    assert_eq!(
        spec.loss,
        LossSpec::Mse {
            reduction: Reduction::Sum
        }
    );
    assert_eq!(sgd(&spec.optimizer.param_groups[0].kind).lr, 0.2);
}

#[test]
fn param_groups_take_top_level_values_under_their_own() {
    let text = MINIMAL.replace(
        "optimizer: {type: sgd}",
        "\
optimizer:
  param_groups:
    - {params: [\"0.*\", \"2.weight\"], lr: 0.01, nesterov: true}
    - {params: [\"fc?.bias\"], weight_decay: 0.5, maximize: true}
  type: sgd
  lr: 0.1
  momentum: 0.9",
    );
    let spec = parse(&text);
    let top = SgdSpec {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        maximize: false,
    };
    assert_eq!(*sgd(&spec.optimizer.kind), top);
    let groups = &spec.optimizer.param_groups;
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].params, vec!["0.*", "2.weight"]);
    assert_eq!(
        *sgd(&groups[0].kind),
        SgdSpec {
            lr: 0.01,
            nesterov: true,
            ..top.clone()
        }
    );
    assert_eq!(groups[1].params, vec!["fc?.bias"]);
    assert_eq!(
        *sgd(&groups[1].kind),
        SgdSpec {
            weight_decay: 0.5,
            maximize: true,
            ..top
        }
    );
}

#[test]
fn null_optional_values_mean_not_given() {
    let text = "\
data: {train: {csv: t.csv, target: y, features: ~}, valid: null}
model: {input: [1], layers: [{type: linear, out: 1}], init: ~}
loss: {type: cross_entropy, weight: null}
optimizer: {type: sgd, param_groups: []}
train: {epochs: 2}
";
    let spec = parse(text);
    assert_eq!(spec.data.valid, None);
    assert!(matches!(
        &spec.data.train,
        SourceSpec::Csv { features: None, .. }
    ));
    assert_eq!(spec.model.init, InitSpec::Default);
    assert!(matches!(
        spec.loss,
        LossSpec::CrossEntropy { weight: None, .. }
    ));
}

#[test]
fn numbers_accept_yaml_integer_and_float_forms() {
    let text = MINIMAL.replace(
        "{type: sgd}",
        "{type: sgd, lr: 1e-3, momentum: 1, dampening: .5}",
    );
    let spec = parse(&text);
    let s = sgd(&spec.optimizer.kind);
    assert_eq!((s.lr, s.momentum, s.dampening), (1e-3, 1.0, 0.5));
}

#[test]
fn parse_file_reads_the_file() {
    let dir = std::env::temp_dir().join(format!("graphc-spec-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spec.yaml");
    std::fs::write(&path, MINIMAL).unwrap();
    let spec = parse_file(&path).unwrap();
    assert_eq!(spec.train.steps, Some(5));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pytorchs_input_size_arguments_are_read_for_the_build_to_check() {
    let spec = parse(
        &MINIMAL
            .replace(
                "- {type: linear, out: 1}",
                "- {type: conv1d, in_channels: 3, out_channels: 2, kernel_size: 1}\n    \
         - {type: batch_norm1d, num_features: 2}\n    - {type: flatten}\n    \
         - {type: linear, in_features: 2, out: 1}\n    - {type: linear, out: 1}",
            )
            .replace("input: [3]", "input: [3, 1]"),
    );
    let declared: Vec<Option<usize>> = spec
        .model
        .layers()
        .unwrap()
        .iter()
        .map(|l| l.declared_input)
        .collect();
    assert_eq!(declared, [Some(3), Some(2), None, Some(2), None]);
    let bad = parse_str(
        &MINIMAL.replace(
            "{type: linear, out: 1}",
            "{type: linear, in_features: 0, out: 1}",
        ),
        Path::new("spec.yaml"),
    )
    .unwrap_err();
    assert!(
        bad.to_string().contains("in_features")
            && bad
                .to_string()
                .contains("a positive integer (checked against the inferred size)"),
        "{bad}"
    );
}

#[test]
fn activations_take_pytorchs_defaults_and_class_names() {
    let layers: String = [
        "{type: linear, out: 4}",
        "{type: identity}",
        "{type: LeakyReLU}",
        "{type: leaky_relu, negative_slope: 0.2}",
        "{type: ELU}",
        "{type: selu}",
        "{type: CELU, alpha: 2}",
        "{type: gelu}",
        "{type: GELU, approximate: tanh}",
        "{type: SiLU}",
        "{type: mish}",
        "{type: Softplus, beta: 2, threshold: 4}",
        "{type: hardtanh}",
        "{type: hardtanh, min_val: -2, max_val: 0.5}",
        "{type: ReLU6}",
        "{type: Hardsigmoid}",
        "{type: hardswish}",
        "{type: LogSigmoid}",
        "{type: softsign}",
        "{type: Tanhshrink}",
        "{type: PReLU}",
        "{type: prelu, num_parameters: 4, init: 0.1}",
    ]
    .iter()
    .map(|l| format!("    - {l}\n"))
    .collect();
    let text = MINIMAL.replace("    - {type: linear, out: 1}\n", &layers);
    let spec = parse(&text);
    let kinds: Vec<&LayerKind> = spec
        .model
        .layers()
        .unwrap()
        .iter()
        .skip(1)
        .map(|l| &l.kind)
        .collect();
    let act = LayerKind::Activation;
    assert_eq!(
        kinds,
        [
            &act(Activation::Identity),
            &act(Activation::LeakyRelu {
                negative_slope: 0.01
            }),
            &act(Activation::LeakyRelu {
                negative_slope: 0.2
            }),
            &act(Activation::Elu { alpha: 1.0 }),
            &act(Activation::Selu),
            &act(Activation::Celu { alpha: 2.0 }),
            &act(Activation::Gelu {
                approximate: GeluApproximate::None
            }),
            &act(Activation::Gelu {
                approximate: GeluApproximate::Tanh
            }),
            &act(Activation::Silu),
            &act(Activation::Mish),
            &act(Activation::Softplus {
                beta: 2.0,
                threshold: 4.0
            }),
            &act(Activation::Hardtanh {
                min_val: -1.0,
                max_val: 1.0
            }),
            &act(Activation::Hardtanh {
                min_val: -2.0,
                max_val: 0.5
            }),
            &act(Activation::Relu6),
            &act(Activation::Hardsigmoid),
            &act(Activation::Hardswish),
            &act(Activation::LogSigmoid),
            &act(Activation::Softsign),
            &act(Activation::Tanhshrink),
            &LayerKind::Prelu {
                num_parameters: 1,
                init: 0.25
            },
            &LayerKind::Prelu {
                num_parameters: 4,
                init: 0.1
            },
        ]
    );
}
