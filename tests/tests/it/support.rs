//! Shared harness of the cross-crate golden tests: list a golden area's
//! cases, train one case on a backend, and compare per-step losses and final
//! weights with PyTorch's (as `tools/goldens/*.py` wrote them).

use std::path::{Path, PathBuf};

use graphc::{BackendKind, RunOptions};
use serde_json::Value;

/// The case folders (those holding `expected.json`) of `tests/goldens/<area>`, sorted.
pub fn golden_cases(area: &str, at_least: usize) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("goldens")
        .join(area);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("golden cases are committed")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= at_least,
        "expected at least {at_least} cases in {root:?}"
    );
    cases
}

/// `|actual - expected| <= absolute + relative * |expected|`.
pub fn close(actual: f64, expected: f64, relative: f64, absolute: f64) -> bool {
    (actual - expected).abs() <= absolute + relative * expected.abs()
}

/// A golden case trained by `graphc::train`: PyTorch's numbers and ours.
pub struct GoldenRun {
    /// `<case> on <backend>`, for messages.
    pub what: String,
    /// The case's `expected.json`.
    pub expected: Value,
    /// Every line of the run's `metrics.jsonl`.
    pub metrics: Vec<Value>,
    /// The run's output directory.
    pub out: tempfile::TempDir,
}

/// Trains `case/spec.yaml` on `backend` into a temporary directory.
pub fn run_golden(case: &Path, backend: BackendKind) -> GoldenRun {
    let what = format!("{} on {}", case.display(), backend.name());
    let text = std::fs::read_to_string(case.join("expected.json")).expect("expected.json");
    let expected: Value = serde_json::from_str(&text).expect("valid JSON");
    let out = tempfile::tempdir().expect("temporary directory");
    graphc::train(
        &case.join("spec.yaml"),
        RunOptions {
            out_dir: out.path().to_path_buf(),
            backend: backend.backend(),
            quiet: true,
        },
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let metrics = std::fs::read_to_string(out.path().join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    GoldenRun {
        what,
        expected,
        metrics,
        out,
    }
}

/// The numbers of a JSON array.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

impl GoldenRun {
    /// Each update's `loss` against `expected.losses`.
    pub fn assert_step_losses(&self, relative: f64, absolute: f64) {
        let losses: Vec<f64> = self
            .metrics
            .iter()
            .filter(|l| l.get("step").is_some())
            .map(|l| l["loss"].as_f64().expect("a loss"))
            .collect();
        let want = floats(&self.expected["losses"]);
        assert_eq!(losses.len(), want.len(), "{}: number of steps", self.what);
        for (k, (a, e)) in losses.iter().zip(&want).enumerate() {
            assert!(
                close(*a, *e, relative, absolute),
                "{}: step {} loss {a} vs PyTorch {e}",
                self.what,
                k + 1
            );
        }
    }

    /// `model.safetensors` against `expected.final`: names, shapes and values.
    pub fn assert_final_weights(&self, relative: f64, absolute: f64) {
        let path = self.out.path().join("model.safetensors");
        let params = graphc::stages::train::read_safetensors(&path).expect("model.safetensors");
        let finals = self.expected["final"].as_object().expect("final weights");
        assert_eq!(params.len(), finals.len(), "{}: parameter count", self.what);
        for p in params {
            let e = &finals[&p.name];
            let shape: Vec<usize> = floats(&e["shape"]).iter().map(|&d| d as usize).collect();
            assert_eq!(p.shape, shape, "{}: shape of {}", self.what, p.name);
            for (i, (a, e)) in p.data.iter().zip(floats(&e["data"])).enumerate() {
                assert!(
                    close(f64::from(*a), e, relative, absolute),
                    "{}: {}[{i}] = {a} vs PyTorch {e}",
                    self.what,
                    p.name
                );
            }
        }
    }
}

/// A tensor of a golden case.
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f64>,
}

/// A JSON number, or the strings PyTorch's goldens write for NaN and the infinities.
pub fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "NaN" => f64::NAN,
        Value::String(s) if s == "Infinity" => f64::INFINITY,
        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
        _ => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

/// A `{"shape": [...], "data": [...]}` object of a golden file.
pub fn tensor(v: &Value) -> Tensor {
    let shape = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dimension") as usize)
        .collect();
    let data = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(number)
        .collect();
    Tensor { shape, data }
}

/// One message per element of `actual` that `agrees(index, actual, expected, largest)`
/// rejects, where `largest` is the largest finite magnitude in `expected`; a length
/// mismatch is one message.
pub fn mismatches(
    what: &str,
    actual: &[f32],
    expected: &Tensor,
    agrees: impl Fn(usize, f32, f64, f64) -> bool,
) -> Vec<String> {
    if actual.len() != expected.data.len() {
        return vec![format!(
            "{what}: {} values, PyTorch has {} (shape {:?})",
            actual.len(),
            expected.data.len(),
            expected.shape
        )];
    }
    let largest = expected
        .data
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    actual
        .iter()
        .zip(&expected.data)
        .enumerate()
        .filter(|&(i, (&a, &e))| !agrees(i, a, e, largest))
        .map(|(i, (a, e))| format!("{what}[{i}]: {a:?} vs PyTorch {e:?}"))
        .collect()
}

/// `rows` deterministic samples of `width` features in [-1, 1.2] (no randomness, every column
/// varying within a batch) and a class index in `[0, classes)` for each.
pub fn rows_with_classes(rows: usize, width: usize, classes: usize) -> (Vec<f32>, Vec<i64>) {
    let features = (0..rows * width)
        .map(|i| ((i * 7 + i / width * 3) % 11) as f32 / 5.0 - 1.0)
        .collect();
    let labels = (0..rows).map(|r| ((r * 5 + 1) % classes) as i64).collect();
    (features, labels)
}

/// A data set of `width` features per row (named `f0`, `f1`...) and class indices.
pub fn dataset(features: Vec<f32>, width: usize, labels: Vec<i64>) -> graphc::Dataset {
    use graphc::stages::data::{Origin, RowUnit};
    graphc::Dataset {
        features,
        feature_names: (0..width).map(|i| format!("f{i}")).collect(),
        targets: graphc::stages::train::Targets::Classes {
            indices: labels,
            names: None,
        },
        origin: Origin::single("test data".into(), RowUnit::Sample),
    }
}

/// Writes `features` (`width` per row) and `labels` as a CSV file with columns `f0`... and
/// `label`.
pub fn write_csv(path: &Path, features: &[f32], width: usize, labels: &[i64]) {
    let mut text: String = (0..width).map(|i| format!("f{i},")).collect();
    text += "label\n";
    for (row, label) in features.chunks(width).zip(labels) {
        for v in row {
            text += &format!("{v},");
        }
        text += &format!("{label}\n");
    }
    std::fs::write(path, text).expect("write the CSV file");
}

/// The bits of `values`, to compare floats exactly (NaN included).
pub fn to_bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}
