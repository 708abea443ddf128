//! Batch norm and dropout layers in specs: every key with PyTorch's default, the class-name
//! aliases, `momentum: null`, and bad values answered in one line naming file, line, column
//! and key.

use std::path::Path;

use graphc_spec::*;

use crate::support::{assert_layer_err, with_layer};

fn layer(layer: &str) -> LayerKind {
    match parse_str(&with_layer(layer), Path::new("spec.yaml")) {
        Ok(spec) => spec.model.layers().unwrap()[0].kind.clone(),
        Err(e) => panic!("{layer}: unexpected error: {e}"),
    }
}

const DEFAULTS: BatchNormSpec = BatchNormSpec {
    eps: 1e-5,
    momentum: Some(0.1),
    affine: true,
    track_running_stats: true,
};

#[test]
fn batch_norm_keys_default_to_pytorchs() {
    assert_eq!(
        layer("{type: batch_norm2d}"),
        LayerKind::BatchNorm2d(DEFAULTS)
    );
    assert_eq!(
        layer("{type: batch_norm1d, name: bn}"),
        LayerKind::BatchNorm1d(DEFAULTS)
    );
    assert_eq!(
        layer("{type: batch_norm2d, eps: 0.001, momentum: 0.3, affine: false, track_running_stats: false}"),
        LayerKind::BatchNorm2d(BatchNormSpec {
            eps: 0.001,
            momentum: Some(0.3),
            affine: false,
            track_running_stats: false,
        })
    );
    // Integers are numbers, as Python's float() takes them; eps 0 is allowed, as PyTorch does.
    assert_eq!(
        layer("{type: batch_norm2d, eps: 0, momentum: 1}"),
        LayerKind::BatchNorm2d(BatchNormSpec {
            eps: 0.0,
            momentum: Some(1.0),
            ..DEFAULTS
        })
    );
}

#[test]
fn momentum_null_is_the_cumulative_average() {
    for null in ["null", "~"] {
        assert_eq!(
            layer(&format!("{{type: batch_norm2d, momentum: {null}}}")),
            LayerKind::BatchNorm2d(BatchNormSpec {
                momentum: None,
                ..DEFAULTS
            }),
            "momentum: {null}"
        );
    }
}

#[test]
fn dropout_p_defaults_to_one_half() {
    assert_eq!(layer("{type: dropout}"), LayerKind::Dropout { p: 0.5 });
    assert_eq!(layer("{type: dropout1d}"), LayerKind::Dropout1d { p: 0.5 });
    assert_eq!(layer("{type: dropout2d}"), LayerKind::Dropout2d { p: 0.5 });
    assert_eq!(
        layer("{type: dropout, p: 0.25}"),
        LayerKind::Dropout { p: 0.25 }
    );
    // Both ends of [0, 1] are valid, as in PyTorch; integers are numbers.
    assert_eq!(
        layer("{type: dropout2d, p: 0}"),
        LayerKind::Dropout2d { p: 0.0 }
    );
    assert_eq!(
        layer("{type: dropout1d, p: 1}"),
        LayerKind::Dropout1d { p: 1.0 }
    );
}

#[test]
fn pytorch_class_names_are_aliases() {
    assert_eq!(
        layer("{type: BatchNorm2d}"),
        LayerKind::BatchNorm2d(DEFAULTS)
    );
    assert_eq!(
        layer("{type: BatchNorm1d}"),
        LayerKind::BatchNorm1d(DEFAULTS)
    );
    assert_eq!(
        layer("{type: Dropout, p: 0.1}"),
        LayerKind::Dropout { p: 0.1 }
    );
    assert_eq!(layer("{type: Dropout1d}"), LayerKind::Dropout1d { p: 0.5 });
    assert_eq!(layer("{type: Dropout2d}"), LayerKind::Dropout2d { p: 0.5 });
    // `type:` may come after the layer's keys.
    assert_eq!(
        layer("{momentum: null, eps: 0.01, type: BatchNorm2d}"),
        LayerKind::BatchNorm2d(BatchNormSpec {
            eps: 0.01,
            momentum: None,
            ..DEFAULTS
        })
    );
    assert_eq!(
        layer("{p: 0.2, type: Dropout}"),
        LayerKind::Dropout { p: 0.2 }
    );
}

#[test]
fn dropout_probability_outside_zero_to_one_is_refused_at_the_value() {
    assert_layer_err(
        "{type: dropout, p: 1.5}",
        "1.5",
        "model.layers[0].p: invalid value: float `1.5`, expected a probability between 0 and 1",
    );
    assert_layer_err(
        "{type: dropout2d, p: -0.1}",
        "-0.1",
        "model.layers[0].p: invalid value: float `-0.1`, expected a probability between 0 and 1",
    );
    assert_layer_err(
        "{type: Dropout1d, p: 2}",
        "2}",
        "model.layers[0].p: invalid value: integer `2`, expected a probability between 0 and 1",
    );
    assert_layer_err(
        "{type: dropout, p: half}",
        "half",
        "model.layers[0].p: invalid type: string \"half\", expected a probability between 0 and 1",
    );
    assert_layer_err(
        "{type: dropout, p: .nan}",
        ".nan",
        "model.layers[0].p: invalid value: float `NaN`, expected a finite number",
    );
}

#[test]
fn bad_batch_norm_values_are_refused_at_the_value() {
    assert_layer_err(
        "{type: batch_norm2d, eps: -1}",
        "-1",
        "model.layers[0].eps: invalid value: integer `-1`, expected a finite number >= 0",
    );
    assert_layer_err(
        "{type: batch_norm2d, momentum: \"x\"}",
        "\"x\"",
        "model.layers[0].momentum: invalid type: string \"x\", expected a finite number, or null (the cumulative average)",
    );
    assert_layer_err(
        "{type: batch_norm1d, affine: 1}",
        "1}",
        "model.layers[0].affine: invalid type: integer `1`, expected a boolean",
    );
    assert_layer_err(
        "{type: batch_norm1d, track_running_stats: yes}",
        "yes",
        "model.layers[0].track_running_stats: invalid type: string \"yes\", expected a boolean",
    );
}

#[test]
fn unknown_keys_list_the_layers_valid_keys() {
    assert_layer_err(
        "{type: BatchNorm1d, momentun: 0.1}",
        "momentun",
        "unknown key `momentun` in model.layers[0] (batch_norm1d); did you mean `momentum`? \
         valid keys: type, name, num_features, eps, momentum, affine, track_running_stats, init, requires_grad",
    );
    assert_layer_err(
        "{type: dropout, inplace: true}",
        "inplace",
        "unknown key `inplace` in model.layers[0] (dropout); valid keys: type, name, p",
    );
    // Dropout takes no batch norm key and batch norm no `p`.
    assert_layer_err(
        "{type: dropout2d, eps: 0.1}",
        "eps",
        "unknown key `eps` in model.layers[0] (dropout2d); did you mean `p`? valid keys: type, \
         name, p",
    );
    assert_layer_err(
        "{type: batch_norm2d, p: 0.1}",
        "p:",
        "unknown key `p` in model.layers[0] (batch_norm2d); did you mean `eps`? valid keys: \
         type, name, num_features, eps, momentum, affine, track_running_stats, init, requires_grad",
    );
}
