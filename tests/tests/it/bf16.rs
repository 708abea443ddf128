//! `train.precision: bf16`: PyTorch autocast-bf16 goldens (`tests/goldens/bf16/*`, made by
//! `tools/goldens/bf16.py`) on every backend, fp32 runs bit for bit as before the option
//! existed, and the final accuracy of `specs/iris.yaml` and `specs/digits_cnn.yaml` in bf16
//! against fp32.

use std::path::{Path, PathBuf};

use graphc::{BackendKind, Override, RunOptions, Summary};
use serde_json::Value;

use crate::support::{floats, golden_cases, run_golden};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Trains `spec` with the `--set` overrides `set` into a temporary directory: the summary
/// and every line of `metrics.jsonl`.
fn train(spec: &Path, set: &[&str], backend: BackendKind) -> (Summary, Vec<Value>) {
    let out = tempfile::tempdir().expect("temporary directory");
    let overrides = set
        .iter()
        .map(|s| s.parse::<Override>().expect("a valid override"))
        .collect();
    let summary = graphc::train(
        spec,
        RunOptions {
            out_dir: out.path().to_path_buf(),
            backend: backend.backend(),
            quiet: true,
            overrides,
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", spec.display()));
    let metrics = std::fs::read_to_string(out.path().join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    (summary, metrics)
}

/// Each update's loss, in order.
fn step_losses(metrics: &[Value]) -> Vec<f32> {
    metrics
        .iter()
        .filter(|m| m.get("step").is_some())
        .map(|m| m["loss"].as_f64().expect("a loss") as f32)
        .collect()
}

/// Within 2 % of PyTorch's autocast losses at every step (graphc's products return f32 where
/// autocast's return bf16), and different from graphc's own fp32 run of the same spec, so
/// the rounding is really there.
#[test]
fn bf16_training_matches_pytorch_autocast() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("bf16", 2) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(0.02, 1e-6);
            let spec = case.join("spec.yaml");
            let bf16 = step_losses(&run.metrics);
            let fp32 = step_losses(&train(&spec, &["train.precision=fp32"], backend).1);
            assert_eq!(bf16.len(), fp32.len());
            assert!(
                bf16.iter().zip(&fp32).any(|(a, b)| a != b),
                "{} on {}: bf16 gave the fp32 losses",
                case.display(),
                backend.name()
            );
        }
    }
}

/// fp32 runs give the losses that graphc built from main before `train.precision` existed
/// wrote, bit for bit, on both backends (`tests/goldens/bf16/fp32_unchanged.json`).
#[test]
fn fp32_results_are_bitwise_unchanged() {
    let text = std::fs::read_to_string(repo("tests/goldens/bf16/fp32_unchanged.json"))
        .expect("fp32_unchanged.json");
    let recorded: Value = serde_json::from_str(&text).expect("valid JSON");
    for r in recorded["runs"].as_array().expect("runs") {
        let spec = repo(r["spec"].as_str().expect("spec"));
        let set: Vec<&str> = r["set"]
            .as_array()
            .expect("set")
            .iter()
            .map(|s| s.as_str().expect("an override"))
            .collect();
        let backend = match r["backend"].as_str() {
            Some("jit") => BackendKind::Jit,
            Some("interp") => BackendKind::Interp,
            other => panic!("unknown backend {other:?}"),
        };
        let want: Vec<u32> = floats(&r["losses"])
            .iter()
            .map(|&v| (v as f32).to_bits())
            .collect();
        let got: Vec<u32> = step_losses(&train(&spec, &set, backend).1)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got, want, "{} on {}", spec.display(), backend.name());
    }
}

/// The final accuracy in bf16 is fp32's within half a point: iris on its training set,
/// the digits CNN on its validation split (JIT only: 675 CNN steps per run).
#[test]
fn bf16_keeps_the_fp32_accuracy_of_iris_and_digits() {
    let iris = repo("specs/iris.yaml");
    let accuracy = |precision: &str| {
        let set = format!("train.precision={precision}");
        let (summary, _) = train(&iris, &[&set], BackendKind::Jit);
        summary.train.accuracy.expect("a classification")
    };
    let (fp32, bf16) = (accuracy("fp32"), accuracy("bf16"));
    assert!(
        (fp32 - bf16).abs() <= 0.005,
        "iris: fp32 {fp32}, bf16 {bf16}"
    );

    let digits = repo("specs/digits_cnn.yaml");
    let valid_accuracy = |precision: &str| {
        let set = format!("train.precision={precision}");
        let (_, metrics) = train(&digits, &[&set], BackendKind::Jit);
        metrics
            .iter()
            .rev()
            .find_map(|m| m.get("valid_accuracy").and_then(Value::as_f64))
            .expect("a validation accuracy")
    };
    let (fp32, bf16) = (valid_accuracy("fp32"), valid_accuracy("bf16"));
    assert!(
        (fp32 - bf16).abs() <= 0.005,
        "digits: fp32 {fp32}, bf16 {bf16}"
    );
}
