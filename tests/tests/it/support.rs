//! Shared harness of the cross-crate golden tests: list a golden area's
//! cases, train one case on a backend, and compare per-step losses, per-epoch
//! validation losses and the final `state_dict` (parameters and buffers) with
//! PyTorch's (as `tools/goldens/*.py` wrote them), every series through one
//! comparison loop, [`mismatches`].

use std::collections::BTreeMap;
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
            overrides: Vec::new(),
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
    /// Each update's `loss` against `expected.losses` (a NaN, written `null`, never agrees).
    pub fn assert_step_losses(&self, relative: f64, absolute: f64) {
        let losses = self.metric_series("step", "loss");
        let want = floats(&self.expected["losses"]);
        assert_eq!(losses.len(), want.len(), "{}: number of steps", self.what);
        let wrong = mismatches(
            &format!("{}: losses", self.what),
            &losses,
            &Tensor::vector(want),
            |_, a, e, _| close(f64::from(a), e, relative, absolute),
        );
        assert_agree(&self.what, wrong);
    }

    /// Each epoch's `valid_loss` against `expected.valid_losses` (none when the case has no
    /// validation set).
    pub fn assert_valid_losses(&self, relative: f64, absolute: f64) {
        let losses = self.metric_series("valid_loss", "valid_loss");
        let want = self
            .expected
            .get("valid_losses")
            .map(floats)
            .unwrap_or_default();
        assert_eq!(
            losses.len(),
            want.len(),
            "{}: number of validation epochs",
            self.what
        );
        let wrong = mismatches(
            &format!("{}: valid_losses", self.what),
            &losses,
            &Tensor::vector(want),
            |_, a, e, _| close(f64::from(a), e, relative, absolute),
        );
        assert_agree(&self.what, wrong);
    }

    /// `key` of every `metrics.jsonl` line that has `marker`, in order (`null` as NaN).
    pub fn metric_series(&self, marker: &str, key: &str) -> Vec<f32> {
        self.metrics
            .iter()
            .filter(|l| l.get(marker).is_some())
            .map(|l| l[key].as_f64().unwrap_or(f64::NAN) as f32)
            .collect()
    }

    /// `model.safetensors` against `expected.final`: names, shapes, dtypes and values. F32
    /// tensors (parameters, batch-norm running statistics) agree within the tolerances; I64
    /// tensors (`num_batches_tracked`, written as integers in `expected.json`) exactly.
    pub fn assert_final_weights(&self, relative: f64, absolute: f64) {
        let stored = read_state_dict(&self.out.path().join("model.safetensors"));
        let finals = self.expected["final"].as_object().expect("final weights");
        let names: Vec<&String> = stored.keys().collect();
        let mut want: Vec<&String> = finals.keys().collect();
        want.sort();
        assert_eq!(names, want, "{}: tensor names", self.what);
        let mut wrong = Vec::new();
        for (name, t) in &stored {
            let what = format!("{}: {name}", self.what);
            let e = tensor(&finals[name]);
            if t.shape != e.shape {
                wrong.push(format!(
                    "{what}: shape {:?} vs PyTorch {:?}",
                    t.shape, e.shape
                ));
                continue;
            }
            match (&t.values, integers(&finals[name]["data"])) {
                (StoredValues::F32(v), None) => {
                    wrong.extend(mismatches(&what, v, &e, |_, a, e, _| {
                        close(f64::from(a), e, relative, absolute)
                    }))
                }
                (StoredValues::I64(v), Some(e)) if *v == e => {}
                (StoredValues::I64(v), Some(e)) => {
                    wrong.push(format!("{what}: {v:?} vs PyTorch {e:?} (exact)"))
                }
                (StoredValues::F32(_), Some(_)) => {
                    wrong.push(format!("{what}: F32, PyTorch has I64"))
                }
                (StoredValues::I64(_), None) => wrong.push(format!("{what}: I64, PyTorch has F32")),
            }
        }
        assert_agree(&self.what, wrong);
    }
}

/// Panics listing the first mismatches (and how many there are) unless there are none.
pub fn assert_agree(what: &str, wrong: Vec<String>) {
    const SHOWN: usize = 12;
    if !wrong.is_empty() {
        let more = wrong.len().saturating_sub(SHOWN);
        panic!(
            "{what}: {} mismatches with PyTorch:\n{}{}",
            wrong.len(),
            wrong[..wrong.len().min(SHOWN)].join("\n"),
            if more > 0 {
                format!("\n... and {more} more")
            } else {
                String::new()
            }
        );
    }
}

/// The values of a tensor as a safetensors file stores them.
pub enum StoredValues {
    /// `F32` (parameters, running statistics).
    F32(Vec<f32>),
    /// `I64` (`num_batches_tracked`).
    I64(Vec<i64>),
}

/// A tensor of a safetensors file.
pub struct StoredTensor {
    /// Dimensions (`[]` for a 0-d tensor).
    pub shape: Vec<usize>,
    /// Values, row-major, in the stored dtype.
    pub values: StoredValues,
}

/// Every tensor of a safetensors file (F32 or I64; any other dtype panics), by name. The
/// tests' own reader: it keeps each tensor's dtype, which graphc's f32 loader does not.
/// Layout: an 8-byte little-endian header length, the JSON header (`{name: {dtype, shape,
/// data_offsets: [begin, end]}}` and `__metadata__`), then the data the offsets index.
pub fn read_state_dict(path: &Path) -> BTreeMap<String, StoredTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let head = |n: usize| -> &[u8] {
        bytes
            .get(..n)
            .unwrap_or_else(|| panic!("{}: truncated safetensors file", path.display()))
    };
    let len = u64::from_le_bytes(head(8).try_into().expect("8 bytes")) as usize;
    let header: Value = serde_json::from_slice(&head(8 + len)[8..]).expect("a JSON header");
    let data = &bytes[8 + len..];
    let mut tensors = BTreeMap::new();
    for (name, info) in header.as_object().expect("a JSON object header") {
        if name == "__metadata__" {
            continue;
        }
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dimension") as usize)
            .collect();
        let offsets = integers(&info["data_offsets"]).expect("data_offsets");
        let raw = &data[offsets[0] as usize..offsets[1] as usize];
        let values = match info["dtype"].as_str().expect("dtype") {
            "F32" => StoredValues::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect(),
            ),
            "I64" => StoredValues::I64(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            other => panic!("{}: {name} has dtype {other}", path.display()),
        };
        let count = match &values {
            StoredValues::F32(v) => v.len(),
            StoredValues::I64(v) => v.len(),
        };
        assert_eq!(
            count,
            shape.iter().product::<usize>(),
            "{}: {name}'s data for shape {shape:?}",
            path.display()
        );
        tensors.insert(name.clone(), StoredTensor { shape, values });
    }
    tensors
}

/// The integers of a JSON array when every element is an integer (`expected.json` writes an
/// I64 tensor's data as integers and an F32 tensor's as floats: `1.0`, never `1`); `None`
/// when the array is empty or holds anything else.
pub fn integers(v: &Value) -> Option<Vec<i64>> {
    let items = v.as_array()?;
    if items.is_empty() {
        return None;
    }
    items.iter().map(Value::as_i64).collect()
}

/// A tensor of a golden case.
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f64>,
}

impl Tensor {
    /// A 1-d tensor of `data` (a series of per-step or per-epoch numbers).
    pub fn vector(data: Vec<f64>) -> Tensor {
        Tensor {
            shape: vec![data.len()],
            data,
        }
    }
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
        features: graphc::stages::data::Features::Memory(features),
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

/// A C-order `.npy` file (format 1.0) of `descr` values.
pub fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).expect("write npy");
}
