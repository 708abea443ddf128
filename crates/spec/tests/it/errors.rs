//! Bad specs: each error names file, line, column, key path, what is wrong and what is valid.

use std::path::Path;

use graphc_spec::*;

use crate::support::with_layer;

/// A valid spec to break one piece at a time; line numbers below refer to it.
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
loss:
  type: cross_entropy
optimizer:
  type: sgd
  lr: 0.1
train:
  epochs: 2
";

fn err(text: &str) -> SpecError {
    match parse_str(text, Path::new("spec.yaml")) {
        Ok(spec) => panic!("expected an error, got {spec:?}"),
        Err(e) => e,
    }
}

/// `BASE` with the first occurrence of `from` replaced by `to` (which must exist).
fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

#[track_caller]
fn assert_err(e: &SpecError, line: usize, column: usize, message: &str) {
    assert_eq!(e.message(), message, "{e}");
    assert_eq!((e.line(), e.column()), (Some(line), Some(column)), "{e}");
    assert_eq!(
        e.to_string(),
        format!("spec.yaml:{line}:{column}: {message}")
    );
}

#[test]
fn base_spec_is_valid() {
    parse_str(BASE, Path::new("spec.yaml")).unwrap();
}

#[test]
fn unknown_layer_key_names_key_line_and_valid_keys() {
    let e = err(&base_with("{type: relu}", "{type: relu, slope: 0.1}"));
    // `    - {type: relu, ` is 19 characters.
    assert_err(
        &e,
        9,
        20,
        "unknown key `slope` in model.layers[1] (relu); valid keys: type, name",
    );
}

#[test]
fn unknown_data_key_suggests_the_nearest_valid_key() {
    let e = err(&base_with("  batch_size: 10", "  batchsize: 10"));
    assert_err(
        &e,
        4,
        3,
        "unknown key `batchsize` in data; did you mean `batch_size`? valid keys: train, valid, \
         split, batch_size, shuffle, drop_last, standardize",
    );
}

#[test]
fn unknown_key_without_a_near_match_has_no_suggestion() {
    let e = err(&base_with("  epochs: 2", "  epochs: 2\n  patience: 3"));
    assert_err(
        &e,
        18,
        3,
        "unknown key `patience` in train; valid keys: epochs, steps, accumulate, \
         clip_grad_norm, clip_grad_value, checkpoint_every, early_stopping, keep_best, \
         precision, sync_batch_norm",
    );
}

#[test]
fn unknown_loss_type_suggests_and_lists_types_and_class_names() {
    let e = err(&base_with(
        "  type: cross_entropy",
        "  type: cross_entropyy",
    ));
    assert_err(
        &e,
        12,
        9,
        "unknown loss type `cross_entropyy`; did you mean `cross_entropy`? valid: \
         cross_entropy, nll, bce, bce_with_logits, mse, l1, smooth_l1, huber, kl_div, \
         poisson_nll, soft_margin, multilabel_soft_margin, multi_margin (or CrossEntropyLoss, \
         NLLLoss, BCELoss, BCEWithLogitsLoss, MSELoss, L1Loss, SmoothL1Loss, HuberLoss, \
         KLDivLoss, PoissonNLLLoss, SoftMarginLoss, MultiLabelSoftMarginLoss, MultiMarginLoss)",
    );
}

#[test]
fn unknown_layer_and_optimizer_types_name_the_valid_types() {
    let e = err(&base_with("{type: relu}", "{type: Relu}"));
    assert_err(
        &e,
        9,
        14,
        "unknown layer type `Relu` in model.layers[1]; did you mean `relu`? valid: \
         linear, relu, sigmoid, tanh, softmax, log_softmax, conv1d, conv2d, max_pool1d, \
         max_pool2d, avg_pool1d, avg_pool2d, adaptive_avg_pool1d, adaptive_avg_pool2d, \
         adaptive_max_pool2d, flatten, batch_norm1d, batch_norm2d, layer_norm, group_norm, embedding, \
         dropout, dropout1d, dropout2d, \
         identity, leaky_relu, elu, selu, celu, gelu, silu, mish, softplus, hardtanh, relu6, \
         hardsigmoid, hardswish, logsigmoid, softsign, tanhshrink, prelu, sequential, residual, add, sub, mul, concat, mean, sum, reshape (or Linear, ReLU, Sigmoid, Tanh, Softmax, LogSoftmax, \
         Conv1d, Conv2d, MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, AdaptiveAvgPool1d, \
         AdaptiveAvgPool2d, AdaptiveMaxPool2d, Flatten, BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, \
         Embedding, Dropout, Dropout1d, Dropout2d, \
         Identity, LeakyReLU, ELU, SELU, CELU, GELU, SiLU, Mish, Softplus, Hardtanh, ReLU6, \
         Hardsigmoid, Hardswish, LogSigmoid, Softsign, Tanhshrink, PReLU, Sequential, cat)",
    );
    let e = err(&base_with("  type: sgd", "  type: adan"));
    assert_err(
        &e,
        14,
        9,
        "unknown optimizer type `adan`; did you mean `adam`? valid: sgd, adam, adamw, rmsprop, \
         adagrad, adadelta, adamax, nadam, radam (or SGD, Adam, AdamW, RMSprop, Adagrad, \
         Adadelta, Adamax, NAdam, RAdam)",
    );
}

#[test]
fn wrong_value_type_names_path_and_expected_type() {
    let e = err(&base_with("  batch_size: 10", "  batch_size: \"ten\""));
    assert_err(
        &e,
        4,
        15,
        "data.batch_size: invalid type: string \"ten\", expected a positive integer",
    );
    let e = err(&base_with("  input: [4]", "  input: [4, x]"));
    assert_err(
        &e,
        6,
        14,
        "model.input[1]: invalid type: string \"x\", expected a positive integer",
    );
    let e = err(&base_with("seed: 0", "seed: [0]"));
    assert_err(
        &e,
        1,
        7,
        "seed: invalid type: a list, expected a non-negative integer",
    );
}

#[test]
fn batch_size_zero_is_rejected_at_the_value() {
    let e = err(&base_with("  batch_size: 10", "  batch_size: 0"));
    assert_err(
        &e,
        4,
        15,
        "data.batch_size: invalid value: integer `0`, expected a positive integer",
    );
}

#[test]
fn missing_required_key_names_mapping_and_key() {
    // At the key of the mapping that lacks it…
    let e = err(&base_with("  train: {csv: train.csv, target: y}\n", ""));
    assert_err(&e, 2, 1, "missing key `train` in data");
    let e = err(&base_with(
        "{csv: train.csv, target: y}",
        "{csv: train.csv}",
    ));
    assert_err(&e, 3, 3, "missing key `target` in data.train");
    // …or at the mapping itself inside a list…
    let e = err(&base_with("{type: linear, out: 3}", "{type: linear}"));
    assert_err(&e, 10, 7, "missing key `out` in model.layers[2] (linear)");
    // …or at the start of the document for a top-level key.
    let e = err(&base_with("train:\n  epochs: 2\n", ""));
    assert_err(&e, 1, 1, "missing key `train` in the top-level mapping");
}

#[test]
fn missing_layer_type_lists_the_valid_types() {
    let e = err(&base_with("{type: relu}", "{name: act}"));
    assert_err(
        &e,
        9,
        7,
        "missing key `type` in model.layers[1]; valid types: \
         linear, relu, sigmoid, tanh, softmax, log_softmax, conv1d, conv2d, max_pool1d, \
         max_pool2d, avg_pool1d, avg_pool2d, adaptive_avg_pool1d, adaptive_avg_pool2d, \
         adaptive_max_pool2d, flatten, batch_norm1d, batch_norm2d, layer_norm, group_norm, embedding, \
         dropout, dropout1d, dropout2d, \
         identity, leaky_relu, elu, selu, celu, gelu, silu, mish, softplus, hardtanh, relu6, \
         hardsigmoid, hardswish, logsigmoid, softsign, tanhshrink, prelu, sequential, residual, add, sub, mul, concat, mean, sum, reshape (or Linear, ReLU, Sigmoid, Tanh, Softmax, LogSoftmax, \
         Conv1d, Conv2d, MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, AdaptiveAvgPool1d, \
         AdaptiveAvgPool2d, AdaptiveMaxPool2d, Flatten, BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, \
         Embedding, Dropout, Dropout1d, Dropout2d, \
         Identity, LeakyReLU, ELU, SELU, CELU, GELU, SiLU, Mish, Softplus, Hardtanh, ReLU6, \
         Hardsigmoid, Hardswish, LogSigmoid, Softsign, Tanhshrink, PReLU, Sequential, cat)",
    );
}

#[test]
fn key_before_type_that_the_type_does_not_allow_is_reported_at_that_key() {
    let e = err(&base_with("{type: relu}", "{out: 16, type: relu}"));
    assert_err(
        &e,
        9,
        8,
        "unknown key `out` in model.layers[1] (relu); valid keys: type, name",
    );
    let e = err(&base_with(
        "{type: relu}",
        "{negative_slope: 0.1, type: relu}",
    ));
    assert_err(
        &e,
        9,
        8,
        "unknown key `negative_slope` in model.layers[1] (relu); valid keys: type, name",
    );
    let e = err(&base_with(
        "  type: cross_entropy",
        "  pos_weight: [2]\n  type: cross_entropy",
    ));
    assert_err(
        &e,
        12,
        3,
        "unknown key `pos_weight` in loss (cross_entropy); valid keys: type, weight, \
         ignore_index, reduction, label_smoothing",
    );
}

#[test]
fn unknown_scheduler_type_suggests_and_lists_the_types() {
    let e = err(&base_with(
        "\ntrain:",
        "\nscheduler: {type: step_rl, step_size: 30}\ntrain:",
    ));
    assert_eq!((e.line(), e.column()), (Some(16), Some(19)), "{e}");
    assert!(
        e.message().starts_with(
            "unknown scheduler type `step_rl`; did you mean `step_lr`? valid: step_lr,"
        ),
        "{e}"
    );
}

#[test]
fn malformed_yaml_reports_the_parser_message_and_position() {
    let e = err(&base_with("  batch_size: 10", " batch_size: 10"));
    assert_err(
        &e,
        4,
        2,
        "did not find expected key, while parsing a block mapping",
    );
    let e = err(&base_with("  input: [4]", "  input: [4"));
    // libyaml notices at `layers:` on the next line, inside the still-open flow sequence.
    assert_eq!((e.line(), e.column()), (Some(7), Some(9)), "{e}");
    assert!(
        e.message().starts_with("did not find expected ',' or ']'"),
        "{e}"
    );
    let e = err(&base_with("seed: 0", "seed: 0\n\tx: 1"));
    assert_err(
        &e,
        2,
        1,
        "found a tab character that violates indentation, while scanning a plain scalar at line \
         1 column 7",
    );
}

#[test]
fn duplicate_keys_and_layer_names_are_rejected() {
    let e = err(&base_with("  lr: 0.1", "  lr: 0.1\n  lr: 0.2"));
    assert_err(&e, 16, 3, "duplicate key `lr` in optimizer (sgd)");
    let e = err(&base_with(
        "{type: linear, out: 16}",
        "{type: linear, out: 16, out_features: 8}",
    ));
    assert_err(
        &e,
        8,
        31,
        "duplicate key `out_features` in model.layers[0] (linear) (`out_features` and `out` \
         are the same key)",
    );
    let text = base_with(
        "{type: linear, out: 16}",
        "{type: linear, out: 16, name: fc}",
    )
    .replacen(
        "{type: linear, out: 3}",
        "{type: linear, out: 3, name: fc}",
        1,
    );
    let e = err(&text);
    assert_err(
        &e,
        10,
        36,
        "model.layers[2].name: duplicate layer name `fc`; names must be unique across layers",
    );
}

#[test]
fn layer_name_with_a_dot_is_rejected() {
    let e = err(&base_with("{type: relu}", "{type: relu, name: a.b}"));
    assert_err(
        &e,
        9,
        26,
        "model.layers[1].name: layer name `a.b` contains a dot; parameter names are NAME.weight, \
         so names cannot",
    );
}

#[test]
fn negative_lr_is_rejected_at_the_value() {
    let e = err(&base_with("  lr: 0.1", "  lr: -0.1"));
    assert_err(
        &e,
        15,
        7,
        "optimizer.lr: invalid value: float `-0.1`, expected a learning rate >= 0",
    );
    let e = err(&base_with(
        "  lr: 0.1",
        "  lr: 0.1\n  param_groups: [{params: [x], lr: -1}]",
    ));
    assert_err(
        &e,
        16,
        36,
        "optimizer.param_groups[0].lr: invalid value: integer `-1`, expected a learning rate >= 0",
    );
}

#[test]
fn negative_momentum_and_weight_decay_are_rejected() {
    let e = err(&base_with("  lr: 0.1", "  lr: 0.1\n  momentum: -0.5"));
    assert_err(
        &e,
        16,
        13,
        "optimizer.momentum: invalid value: float `-0.5`, expected a momentum >= 0",
    );
    let e = err(&base_with("  lr: 0.1", "  weight_decay: -1e-4"));
    assert_err(
        &e,
        15,
        17,
        "optimizer.weight_decay: invalid value: float `-0.0001`, expected a weight_decay >= 0",
    );
}

#[test]
fn nesterov_without_momentum_is_rejected_at_the_nesterov_key() {
    let e = err(&base_with("  lr: 0.1", "  nesterov: true\n  lr: 0.1"));
    assert_err(
        &e,
        15,
        3,
        "optimizer.nesterov: nesterov momentum requires momentum > 0 and dampening == 0 (here \
         momentum = 0.0, dampening = 0.0)",
    );
    let e = err(&base_with(
        "  lr: 0.1",
        "  lr: 0.1\n  momentum: 0.9\n  dampening: 0.1\n  nesterov: true",
    ));
    assert_err(
        &e,
        18,
        3,
        "optimizer.nesterov: nesterov momentum requires momentum > 0 and dampening == 0 (here \
         momentum = 0.9, dampening = 0.1)",
    );
}

#[test]
fn param_group_breaking_nesterov_is_rejected_at_its_own_key() {
    // The group inherits nesterov and momentum 0.9 but sets momentum 0: blame its `momentum`.
    let text = base_with(
        "  lr: 0.1",
        "  param_groups:\n    - {params: [\"0.*\"], momentum: 0}\n  lr: 0.1\n  momentum: 0.9\n  \
         nesterov: true",
    );
    let e = err(&text);
    assert_err(
        &e,
        16,
        25,
        "optimizer.param_groups[0].momentum: nesterov momentum requires momentum > 0 and \
         dampening == 0 (here momentum = 0.0, dampening = 0.0)",
    );
    // The group turns nesterov on without momentum: blame its `nesterov`.
    let text = base_with(
        "  lr: 0.1",
        "  lr: 0.1\n  param_groups:\n    - {params: [a]}\n    - {params: [b], nesterov: true}",
    );
    let e = err(&text);
    assert_err(
        &e,
        18,
        21,
        "optimizer.param_groups[1].nesterov: nesterov momentum requires momentum > 0 and \
         dampening == 0 (here momentum = 0.0, dampening = 0.0)",
    );
}

#[test]
fn param_group_keys_are_checked() {
    let e = err(&base_with("  lr: 0.1", "  param_groups: [{lr: 0.1}]"));
    // A list element has no key of its own: the error points at the mapping (`{`).
    assert_err(
        &e,
        15,
        18,
        "missing key `params` in optimizer.param_groups[0]",
    );
    let e = err(&base_with(
        "  lr: 0.1",
        "  param_groups: [{params: [a], type: sgd}]",
    ));
    assert_err(
        &e,
        15,
        32,
        "unknown key `type` in optimizer.param_groups[0]; valid keys: params, lr, momentum, \
         dampening, weight_decay, nesterov, maximize",
    );
    let e = err(&base_with("  lr: 0.1", "  param_groups: [{params: []}]"));
    assert_err(
        &e,
        15,
        27,
        "optimizer.param_groups[0].params: must not be empty; expected a non-empty list of \
         parameter name patterns such as \"0.*\"",
    );
}

#[test]
fn train_without_epochs_or_steps_is_rejected_at_the_train_key() {
    let e = err(&base_with("  epochs: 2\n", "  {}\n"));
    assert_err(
        &e,
        16,
        1,
        "train needs `epochs` or `steps` (or both, whichever ends first); neither is given",
    );
    let e = err(&base_with("  epochs: 2", "  epochs: 0"));
    assert_err(
        &e,
        17,
        11,
        "train.epochs: invalid value: integer `0`, expected a positive integer",
    );
}

#[test]
fn loss_values_are_checked() {
    let e = err(&base_with(
        "  type: cross_entropy",
        "  type: cross_entropy\n  label_smoothing: 1.5",
    ));
    assert_err(
        &e,
        13,
        20,
        "loss.label_smoothing: invalid value: float `1.5`, expected a number in [0, 1]",
    );
    let e = err(&base_with(
        "  type: cross_entropy",
        "  type: cross_entropy\n  reduction: avg",
    ));
    assert_err(
        &e,
        13,
        14,
        "loss.reduction: invalid value: string \"avg\", expected one of none, sum, mean",
    );
    let e = err(&base_with(
        "  type: cross_entropy",
        "  type: mse\n  reduction: Sum",
    ));
    assert_err(
        &e,
        13,
        14,
        "loss.reduction: invalid value: string \"Sum\", expected one of none, sum, mean; did you \
         mean `sum`?",
    );
}

#[test]
fn layers_must_be_a_non_empty_list_of_mappings() {
    let text = BASE.replace(
        "  layers:\n    - {type: linear, out: 16}\n    - {type: relu}\n    - {type: linear, out: 3}\n",
        "  layers: []\n",
    );
    let e = err(&text);
    assert_err(
        &e,
        7,
        11,
        "model.layers: must not be empty; expected a non-empty list of layers such as {type: \
         linear, out: 16}",
    );
    let e = err(&base_with("    - {type: relu}", "    - relu"));
    assert_eq!((e.line(), e.column()), (Some(9), Some(7)), "{e}");
    assert!(
        e.message().starts_with(
            "model.layers[1]: invalid type: string \"relu\", expected a layer mapping such as \
             {type: linear, out: 16}"
        ),
        "{e}"
    );
}

#[test]
fn empty_or_non_mapping_document_is_rejected() {
    let e = err("");
    assert_eq!(
        e.message(),
        "the spec is empty; expected a mapping with keys seed, data, model, loss, params, \
         objective, optimizer, scheduler, train"
    );
    let e = err("- 1\n");
    assert_err(
        &e,
        1,
        1,
        "invalid type: a list, expected a mapping with keys seed, data, model, loss, params, \
         objective, optimizer, scheduler, train",
    );
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let path = Path::new("/nonexistent/graphc/spec.yaml");
    let e = parse_file(path).unwrap_err();
    assert_eq!((e.line(), e.column()), (None, None));
    assert_eq!(e.file(), path);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/graphc/spec.yaml: cannot read the spec file: "),
        "{e}"
    );
}

#[test]
fn errors_in_files_name_the_file() {
    let dir = std::env::temp_dir().join(format!("graphc-spec-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, base_with("  batch_size: 10", "  batch_size: 0")).unwrap();
    let e = parse_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4:15: data.batch_size: invalid value: integer `0`, expected a positive integer",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn messages_stay_on_one_line() {
    let e = err(&base_with("  batch_size: 10", "  \"batch\\nsize\": 10"));
    assert!(!e.to_string().contains('\n'), "{e}");
    assert_eq!((e.line(), e.column()), (Some(4), Some(3)));
}

#[test]
fn byte_order_mark_and_crlf_line_ends_keep_positions() {
    let text = format!(
        "\u{feff}{}",
        base_with("  batch_size: 10", "  batch_size: 0")
    );
    let e = err(&text.replace('\n', "\r\n"));
    assert_err(
        &e,
        4,
        15,
        "data.batch_size: invalid value: integer `0`, expected a positive integer",
    );
}

/// `with_layer(layer)`: its error is on line 8 and says `message`.
#[track_caller]
fn assert_layer_err(layer: &str, message: &str) {
    let e = err(&with_layer(layer));
    assert_eq!(e.message(), message, "{e}");
    assert_eq!(e.line(), Some(8), "{e}");
    assert!(!e.to_string().contains('\n'), "{e}");
}

#[test]
fn convolution_and_pooling_layers_with_defaults_parse() {
    let layer = "{type: Conv2d, out_channels: 4, kernel_size: [3, 5], padding: valid, bias: false}";
    let spec = parse_str(&with_layer(layer), Path::new("spec.yaml")).unwrap();
    assert_eq!(
        spec.model.layers().unwrap()[0].kind,
        LayerKind::Conv2d(ConvSpec {
            out_channels: 4,
            kernel_size: vec![3, 5],
            stride: vec![1, 1],
            padding: ConvPadding::Explicit(vec![0, 0]),
            dilation: vec![1, 1],
            groups: 1,
            bias: false,
        })
    );
    let layer = "{type: max_pool2d, kernel_size: 3, padding: [1, 0], stride: null}";
    let spec = parse_str(&with_layer(layer), Path::new("spec.yaml")).unwrap();
    assert_eq!(
        spec.model.layers().unwrap()[0].kind,
        LayerKind::MaxPool2d(MaxPoolSpec {
            kernel_size: vec![3, 3],
            stride: vec![3, 3],
            padding: vec![1, 0],
            dilation: vec![1, 1],
            ceil_mode: false,
        })
    );
    let layer = "{kernel_size: 2, type: avg_pool2d, divisor_override: 3}";
    let spec = parse_str(&with_layer(layer), Path::new("spec.yaml")).unwrap();
    assert_eq!(
        spec.model.layers().unwrap()[0].kind,
        LayerKind::AvgPool2d(AvgPoolSpec {
            kernel_size: vec![2, 2],
            stride: vec![2, 2],
            padding: vec![0, 0],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: Some(3),
        })
    );
    let layer = "{type: adaptive_avg_pool2d, output_size: [null, 3]}";
    let spec = parse_str(&with_layer(layer), Path::new("spec.yaml")).unwrap();
    assert_eq!(
        spec.model.layers().unwrap()[0].kind,
        LayerKind::AdaptiveAvgPool2d {
            output_size: vec![None, Some(3)]
        }
    );
    let layer = "{type: conv1d, out_channels: 2, kernel_size: 4, padding: same, dilation: 3}";
    let spec = parse_str(&with_layer(layer), Path::new("spec.yaml")).unwrap();
    let LayerKind::Conv1d(conv) = &spec.model.layers().unwrap()[0].kind else {
        panic!("{:?}", spec.model.layers().unwrap()[0].kind)
    };
    assert_eq!(
        (&conv.padding, &conv.dilation),
        (&ConvPadding::Same, &vec![3])
    );
    assert_eq!(
        spec.model.layers().unwrap()[1].kind,
        LayerKind::Flatten {
            start_dim: 1,
            end_dim: -1
        }
    );
}

#[test]
fn bad_convolution_keys_are_one_line_naming_the_key() {
    let conv = |extra: &str| format!("{{type: conv2d, out_channels: 4, kernel_size: 3, {extra}}}");
    assert_layer_err(
        &conv("padding_mode: reflect"),
        "model.layers[0].padding_mode: padding_mode `reflect` is not supported; only `zeros` (the default) is",
    );
    assert_layer_err(
        &conv("padding_mode: mirror"),
        "model.layers[0].padding_mode: invalid value: string \"mirror\", expected `zeros` (the only padding mode supported)",
    );
    assert_layer_err(
        &conv("padding: same, stride: 2"),
        "model.layers[0].padding: padding `same` is not supported for strided convolutions (stride [2, 2]); PyTorch allows it only with stride 1",
    );
    assert_layer_err(
        &conv("padding: full"),
        "model.layers[0].padding: invalid value: string \"full\", expected a non-negative integer or a list of them, one per spatial axis, or `same` or `valid`",
    );
    assert_layer_err(
        &conv("padding: -1"),
        "model.layers[0].padding: invalid value: integer `-1`, expected a non-negative integer or a list of them, one per spatial axis, or `same` or `valid`",
    );
    assert_layer_err(
        "{type: conv2d, out_channels: 4, kernel_size: [3, 3, 3]}",
        "model.layers[0].kernel_size: conv2d has 2 spatial axes, so a list here needs 2 values, not 3",
    );
    assert_layer_err(
        "{type: conv2d, out_channels: 4, kernel_size: 0}",
        "model.layers[0].kernel_size: invalid value: integer `0`, expected a positive integer or a list of them, one per spatial axis",
    );
    assert_layer_err(
        &conv("stride: [1, 0]"),
        "model.layers[0].stride[1]: invalid value: integer `0`, expected a positive integer",
    );
    assert_layer_err(
        &conv("dilation: two"),
        "model.layers[0].dilation: invalid type: string \"two\", expected a positive integer or a list of them, one per spatial axis",
    );
    assert_layer_err(
        &conv("groups: 3"),
        "model.layers[0].groups: out_channels 4 must be divisible by groups 3",
    );
    assert_layer_err(
        &conv("stride: null"),
        "model.layers[0].stride: null is not valid for a convolution (its default is 1)",
    );
    assert_layer_err(
        &conv("bias: 1"),
        "model.layers[0].bias: invalid type: integer `1`, expected a boolean",
    );
    assert_layer_err(
        "{type: conv2d, kernel_size: 3}",
        "missing key `out_channels` in model.layers[0] (conv2d)",
    );
    assert_layer_err(
        "{type: conv2d, out_channels: 0, kernel_size: 3}",
        "model.layers[0].out_channels: invalid value: integer `0`, expected a positive integer (output channels)",
    );
}

#[test]
fn bad_pooling_and_flatten_keys_are_one_line_naming_the_key() {
    assert_layer_err(
        "{type: max_pool2d, kernel_size: 3, padding: 2}",
        "model.layers[0].padding: padding 2 must be at most half the kernel size 3 (PyTorch's rule)",
    );
    assert_layer_err(
        "{type: max_pool2d, kernel_size: 3, padding: same}",
        "model.layers[0].padding: `same` is only valid for convolutions; max_pool2d takes a non-negative integer or a list of them",
    );
    assert_layer_err(
        "{type: max_pool2d, stride: 2}",
        "missing key `kernel_size` in model.layers[0] (max_pool2d)",
    );
    assert_layer_err(
        "{type: max_pool2d, kernel_size: 2, ceil_mode: 1}",
        "model.layers[0].ceil_mode: invalid type: integer `1`, expected a boolean",
    );
    assert_layer_err(
        "{type: avg_pool1d, kernel_size: 2, divisor_override: 2}",
        "unknown key `divisor_override` in model.layers[0] (avg_pool1d); valid keys: type, name, kernel_size, stride, padding, ceil_mode, count_include_pad",
    );
    assert_layer_err(
        "{type: avg_pool2d, kernel_size: 2, divisor_override: 0}",
        "model.layers[0].divisor_override: invalid value: integer `0`, expected a positive integer or null",
    );
    assert_layer_err(
        "{type: avg_pool2d, kernel_size: 2, count_include_pad: yes}",
        "model.layers[0].count_include_pad: invalid type: string \"yes\", expected a boolean",
    );
    assert_layer_err(
        "{type: avg_pool2d, kernel_size: 2, dilation: 2}",
        "unknown key `dilation` in model.layers[0] (avg_pool2d); valid keys: type, name, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override",
    );
    assert_layer_err(
        "{type: adaptive_avg_pool2d, output_size: 0}",
        "model.layers[0].output_size: invalid value: integer `0`, expected a positive integer (or null: the input's size) or a list of them, one per spatial axis",
    );
    assert_layer_err(
        "{type: adaptive_max_pool2d, output_size: [1, 2, 3]}",
        "model.layers[0].output_size: adaptive_max_pool2d has 2 spatial axes, so a list here needs 2 values, not 3",
    );
    assert_layer_err(
        "{type: adaptive_avg_pool1d}",
        "missing key `output_size` in model.layers[0] (adaptive_avg_pool1d)",
    );
    assert_layer_err(
        "{type: flatten, start_dim: one}",
        "model.layers[0].start_dim: invalid type: string \"one\", expected an integer",
    );
    assert_layer_err(
        "{type: flatten, end_dim: 1.5}",
        "model.layers[0].end_dim: invalid type: float `1.5`, expected an integer",
    );
}

#[test]
fn activation_keys_are_checked_at_the_key() {
    // `    - {type: gelu, ` is 19 characters; a key's value starts after `KEY: `.
    let e = err(&base_with(
        "{type: relu}",
        "{type: gelu, approximate: fast}",
    ));
    assert_err(
        &e,
        9,
        33,
        "model.layers[1].approximate: invalid value: string \"fast\", expected `none` or `tanh`",
    );
    let e = err(&base_with("{type: relu}", "{type: softplus, beta: 0}"));
    assert_err(
        &e,
        9,
        30,
        "model.layers[1].beta: invalid value: integer `0`, expected a finite number other than 0",
    );
    let e = err(&base_with("{type: relu}", "{type: celu, alpha: 0.0}"));
    assert_err(
        &e,
        9,
        20,
        "model.layers[1].alpha: alpha must not be 0 (celu divides by it)",
    );
    let e = err(&base_with("{type: relu}", "{type: hardtanh, min_val: 2}"));
    assert_err(
        &e,
        9,
        24,
        "model.layers[1].min_val: max_val 1 must be greater than min_val 2",
    );
    let e = err(&base_with(
        "{type: relu}",
        "{type: prelu, num_parameters: 0}",
    ));
    assert_err(
        &e,
        9,
        37,
        "model.layers[1].num_parameters: invalid value: integer `0`, expected a positive integer (1, or the input's channels)",
    );
    let e = err(&base_with(
        "{type: relu}",
        "{type: elu, negative_slope: 0.1}",
    ));
    assert_err(
        &e,
        9,
        19,
        "unknown key `negative_slope` in model.layers[1] (elu); valid keys: type, name, alpha",
    );
}
