//! The daily-path keys: `data.standardize` as a boolean or `{std}`, `data.split` as a
//! fraction, `{fraction, seed}` or `{file}`, `train.early_stopping` and `train.keep_best`:
//! what each form parses to, and where each mistake is reported.

use std::path::{Path, PathBuf};

use graphc_spec::*;

use crate::support::assert_err;

/// A valid spec with `data:` lines `DATA`, `train:` lines `TRAIN` and the loss `LOSS`; the
/// data block starts on line 3, the train block on the line after `train:`.
fn spec(data: &str, train: &str, loss: &str) -> String {
    format!(
        "seed: 3\ndata:\n  train: {{csv: d.csv, target: y}}\n{data}model:\n  input: [2]\n  layers:\n    - {{type: linear, out: 3}}\nloss: {{type: {loss}}}\noptimizer: {{type: sgd, lr: 0.1}}\ntrain:\n  epochs: 5\n{train}"
    )
}

/// The 1-based column of `word` in the one-line block `line`.
fn column(line: &str, word: &str) -> usize {
    line.find(word).expect("the word is in the line") + 1
}

fn parse(text: &str) -> Result<Spec, SpecError> {
    parse_str(text, Path::new("spec.yaml"))
}

fn ok(text: &str) -> Spec {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn standardize_is_a_boolean_or_names_its_std() {
    let std = |line: &str| ok(&spec(line, "", "cross_entropy")).data.standardize;
    assert_eq!(std(""), None);
    assert_eq!(std("  standardize: false\n"), None);
    assert_eq!(std("  standardize: true\n"), Some(StdKind::Population));
    assert_eq!(std("  standardize: {}\n"), Some(StdKind::Population));
    assert_eq!(
        std("  standardize: {std: population}\n"),
        Some(StdKind::Population)
    );
    assert_eq!(std("  standardize: {std: sample}\n"), Some(StdKind::Sample));
}

#[test]
fn standardize_mistakes_are_errors_at_their_key_or_value() {
    let e = parse(&spec("  standardize: {std: samples}\n", "", "mse")).unwrap_err();
    assert_err(
        &e,
        4,
        22,
        "data.standardize.std: invalid value: string \"samples\", expected one of population, \
         sample; did you mean `sample`?",
    );
    let e = parse(&spec("  standardize: {ddof: 1}\n", "", "mse")).unwrap_err();
    assert_err(
        &e,
        4,
        17,
        "unknown key `ddof` in data.standardize; valid keys: std",
    );
    let e = parse(&spec("  standardize: 1\n", "", "mse")).unwrap_err();
    assert_err(
        &e,
        4,
        16,
        "data.standardize: invalid type: integer `1`, expected a boolean, or a mapping \
         {std: population or sample}",
    );
}

#[test]
fn split_is_drawn_with_its_own_seed_or_read_from_a_file() {
    let split = |line: &str| ok(&spec(line, "", "cross_entropy")).data.split;
    assert_eq!(
        split("  split: {fraction: 0.25, seed: 7}\n"),
        Some(SplitSpec::Fraction {
            fraction: 0.25,
            seed: Some(7),
        })
    );
    assert_eq!(
        split("  split: {fraction: 0.25}\n"),
        Some(SplitSpec::Fraction {
            fraction: 0.25,
            seed: None,
        })
    );
    assert_eq!(
        split("  split: {file: runs/a/split.json}\n"),
        Some(SplitSpec::File(PathBuf::from("runs/a/split.json")))
    );
}

#[test]
fn split_mistakes_are_errors_at_their_key_or_value() {
    let cases = [
        (
            "  split: {fraction: 0.2, file: s.json}\n",
            "file:",
            "data.split.file: a split is either drawn ({fraction, seed}) or read from a file \
             ({file}), not both; remove `file` or the other keys",
        ),
        (
            "  split: {seed: 3}\n",
            "split",
            "data.split needs `fraction` (with an optional `seed`) or `file`, e.g. \
             {fraction: 0.2, seed: 3} or {file: split.json}",
        ),
        (
            "  split: {fraction: 0.2, seeds: 3}\n",
            "seeds",
            "unknown key `seeds` in data.split; did you mean `seed`? valid keys: fraction, \
             seed, file",
        ),
        (
            "  split: {fraction: 2}\n",
            "2}",
            "data.split.fraction: invalid value: integer `2`, expected a fraction between 0 \
             and 1 (exclusive), e.g. 0.2",
        ),
        (
            "  split: {file: 3}\n",
            "3}",
            "data.split.file: invalid type: integer `3`, expected a path to a split.json file",
        ),
        (
            "  split: {fraction: 0.2, seed: -1}\n",
            "-1",
            "data.split.seed: invalid value: integer `-1`, expected a non-negative integer",
        ),
    ];
    for (line, at, message) in cases {
        let e = parse(&spec(line, "", "mse")).unwrap_err();
        assert_err(&e, 4, column(line, at), message);
    }
}

#[test]
fn early_stopping_takes_lightnings_defaults() {
    let s = ok(&spec(
        "  split: 0.2\n",
        "  early_stopping: {}\n  keep_best: true\n",
        "cross_entropy",
    ));
    assert_eq!(s.train.early_stopping, Some(EarlyStopping::default()));
    assert_eq!(
        EarlyStopping::default(),
        EarlyStopping {
            monitor: Monitor::ValidLoss,
            mode: PlateauMode::Min,
            patience: 3,
            min_delta: 0.0,
        }
    );
    assert!(s.train.keep_best);
    let s = ok(&spec(
        "  split: 0.2\n",
        "  early_stopping: {monitor: valid_accuracy, mode: max, patience: 0, min_delta: 0.01}\n",
        "cross_entropy",
    ));
    assert_eq!(
        s.train.early_stopping,
        Some(EarlyStopping {
            monitor: Monitor::ValidAccuracy,
            mode: PlateauMode::Max,
            patience: 0,
            min_delta: 0.01,
        })
    );
    assert!(!s.train.keep_best);
    let s = ok(&spec(
        "",
        "  early_stopping: {monitor: train_loss}\n",
        "mse",
    ));
    assert_eq!(
        s.train.early_stopping.map(|e| e.monitor),
        Some(Monitor::TrainLoss)
    );
    let s = ok(&spec("", "  early_stopping: null\n", "mse"));
    assert_eq!(s.train.early_stopping, None);
}

#[test]
fn precision_is_fp32_unless_bf16_is_asked() {
    assert_eq!(ok(&spec("", "", "mse")).train.precision, Precision::Fp32);
    let s = ok(&spec("", "  precision: bf16\n", "mse"));
    assert_eq!(s.train.precision, Precision::Bf16);
    let s = ok(&spec("", "  precision: fp32\n", "mse"));
    assert_eq!(s.train.precision, Precision::Fp32);
}

#[test]
fn early_stopping_mistakes_are_errors_at_their_key_or_value() {
    // The train block's first key is on line 12, or 13 after a data line.
    let cases = [
        (
            "",
            "  early_stopping: {monitor: train_loss, patient: 3}\n",
            "mse",
            "patient",
            "unknown key `patient` in train.early_stopping; did you mean `patience`? valid \
             keys: monitor, mode, patience, min_delta",
        ),
        (
            "",
            "  early_stopping: {monitor: val_loss}\n",
            "mse",
            "val_loss",
            "train.early_stopping.monitor: invalid value: string \"val_loss\", expected one of \
             valid_loss, valid_accuracy, train_loss; did you mean `valid_loss`?",
        ),
        (
            "",
            "  early_stopping: {monitor: train_loss, patience: 1.5}\n",
            "mse",
            "1.5",
            "train.early_stopping.patience: invalid type: float `1.5`, expected a \
             non-negative integer (epochs without improvement)",
        ),
        (
            "",
            "  early_stopping: {monitor: train_loss, mode: up}\n",
            "mse",
            "up",
            "train.early_stopping.mode: invalid value: string \"up\", expected one of min, max",
        ),
        (
            "",
            "  early_stopping: 3\n",
            "mse",
            "3",
            "train.early_stopping: invalid type: integer `3`, expected a mapping with keys \
             monitor, mode, patience, min_delta (monitor: valid_loss, valid_accuracy or \
             train_loss)",
        ),
        (
            "",
            "  keep_best: yes\n",
            "mse",
            "yes",
            "train.keep_best: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "",
            "  sync_batch_norm: 1\n",
            "mse",
            "1",
            "train.sync_batch_norm: invalid type: integer `1`, expected a boolean",
        ),
        (
            "",
            "  precision: double\n",
            "mse",
            "double",
            "train.precision: invalid value: string \"double\", expected one of fp32, bf16",
        ),
        (
            "",
            "  precision: 16\n",
            "mse",
            "16",
            "train.precision: invalid type: integer `16`, expected fp32 or bf16",
        ),
        (
            "",
            "  early_stopping: {patience: 2}\n",
            "mse",
            "early_stopping",
            "train.early_stopping: monitor valid_loss needs a validation set, and the spec has \
             none; add data.valid or data.split, or monitor train_loss",
        ),
        (
            "",
            "  keep_best: true\n",
            "mse",
            "keep_best",
            "train.keep_best: keep_best without early_stopping monitors valid_loss, which needs \
             a validation set, and the spec has none; add data.valid or data.split, or monitor \
             train_loss",
        ),
        (
            "  split: 0.2\n",
            "  early_stopping: {monitor: valid_accuracy}\n",
            "mse",
            "early_stopping",
            "train.early_stopping: monitor valid_accuracy needs a classification loss, and mse \
             has no accuracy; monitor valid_loss or train_loss",
        ),
    ];
    for (data, train, loss, at, message) in cases {
        let e = parse(&spec(data, train, loss)).unwrap_err();
        let line = if data.is_empty() { 12 } else { 13 };
        assert_err(&e, line, column(train, at), message);
    }
}
