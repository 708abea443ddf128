//! Helpers the spec tests share.

use std::path::Path;

use graphc_spec::{parse_str, SpecError};

/// Asserts an error's message and its 1-based line and column.
#[track_caller]
pub fn assert_err(e: &SpecError, line: usize, column: usize, message: &str) {
    assert_eq!(e.message(), message, "{e}");
    assert_eq!((e.line(), e.column()), (Some(line), Some(column)), "{e}");
}

/// A valid image spec whose first layer, on line 8 after the 6 characters `    - `, the
/// layer tests replace (see [`with_layer`]).
const IMAGE_SPEC: &str = "\
seed: 0
data:
  train: {csv: train.csv, target: y}
  batch_size: 10
model:
  input: [2, 8, 8]
  layers:
    - LAYER
    - {type: flatten}
    - {type: linear, out: 3}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2}
";

/// The image spec with `layer` as its first layer (line 8, column 7).
pub fn with_layer(layer: &str) -> String {
    IMAGE_SPEC.replace("LAYER", layer)
}

/// Asserts that the image spec with `layer` first is refused with `message`, on line 8 at the
/// column where `at` starts inside `layer`, as one line `spec.yaml:8:COL: message`.
#[track_caller]
pub fn assert_layer_err(layer: &str, at: &str, message: &str) {
    let e = match parse_str(&with_layer(layer), Path::new("spec.yaml")) {
        Ok(spec) => panic!("{layer}: expected an error, got {spec:?}"),
        Err(e) => e,
    };
    let column = 6 + layer.find(at).expect("`at` is inside the layer") + 1;
    assert_eq!(e.message(), message, "{e}");
    assert_eq!((e.line(), e.column()), (Some(8), Some(column)), "{e}");
    assert_eq!(e.to_string(), format!("spec.yaml:8:{column}: {message}"));
}
