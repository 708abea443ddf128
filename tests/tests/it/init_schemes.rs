//! A layer's `init:` schemes reach the trainer: a model compiled from a spec starts from the
//! schemes' values (exactly, for the deterministic ones) and a frozen layer keeps them
//! through training.

use std::path::Path;

use graphc::{BackendKind, BatchTargets};

use crate::support::rows_with_classes;

const SPEC: &str = "\
seed: 5
data: {train: {csv: train.csv, target: label}, batch_size: 4}
model:
  input: [3]
  layers:
    - {type: linear, out: 3, requires_grad: false,
       init: {weight: {type: eye}, bias: {type: constant, val: 0.5}}}
    - {type: tanh}
    - {type: linear, out: 2, init: {bias: {type: zeros}}}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.5, weight_decay: 0.1}
train: {epochs: 1}
";

#[test]
fn a_model_starts_from_its_schemes_and_a_frozen_layer_keeps_them() {
    let spec = graphc::parse_str(SPEC, Path::new("spec.yaml")).unwrap();
    for &backend in BackendKind::ALL {
        let mut trainer = graphc::compile(&spec, backend).unwrap();
        let value = |t: &graphc::Trainer, name: &str| t.param(name).unwrap().to_vec();
        let eye = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(value(&trainer, "0.weight"), eye);
        assert_eq!(value(&trainer, "0.bias"), vec![0.5; 3]);
        assert_eq!(value(&trainer, "2.bias"), vec![0.0; 2]);
        let head = value(&trainer, "2.weight");
        assert!(head
            .iter()
            .all(|w| w.abs() <= 1.0 / 3f32.sqrt() && *w != 0.0));

        let (features, labels) = rows_with_classes(16, 3, 2);
        for (x, y) in features.chunks(12).zip(labels.chunks(4)) {
            trainer.step(x, &BatchTargets::Classes(y.to_vec())).unwrap();
        }
        assert_eq!(trainer.step_count(), 4, "{}", backend.name());
        assert_eq!(value(&trainer, "0.weight"), eye, "{}", backend.name());
        assert_eq!(
            value(&trainer, "0.bias"),
            vec![0.5; 3],
            "{}",
            backend.name()
        );
        assert_ne!(value(&trainer, "2.weight"), head, "{}", backend.name());
    }
}
