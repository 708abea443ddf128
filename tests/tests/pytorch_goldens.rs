//! The training runs of `tests/goldens/skeleton/*` (made by
//! `tools/goldens/skeleton.py` with PyTorch) must give PyTorch's per-step
//! losses and final weights on every backend.

use std::path::{Path, PathBuf};

use graphc::{BackendKind, RunOptions};
use serde_json::Value;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/skeleton");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("golden cases are committed")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 8,
        "expected the skeleton's golden cases in {root:?}"
    );
    cases
}

fn close(actual: f64, expected: f64, relative: f64, absolute: f64) -> bool {
    (actual - expected).abs() <= absolute + relative * expected.abs()
}

fn check_case(case: &Path, backend: BackendKind) {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
            .unwrap();
    let out = tempfile::tempdir().unwrap();
    graphc::train(
        &case.join("spec.yaml"),
        RunOptions {
            out_dir: out.path().to_path_buf(),
            backend: backend.backend(),
            quiet: true,
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.display()));

    let metrics = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|v| v.get("loss").and_then(Value::as_f64))
        .collect();
    let want: Vec<f64> = expected["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(
        losses.len(),
        want.len(),
        "{}: number of steps",
        case.display()
    );
    for (step, (a, e)) in losses.iter().zip(&want).enumerate() {
        assert!(
            close(*a, *e, 2e-5, 1e-7),
            "{}: step {} loss {a} vs PyTorch {e}",
            case.display(),
            step + 1
        );
    }

    let params =
        graphc::stages::train::read_safetensors(&out.path().join("model.safetensors")).unwrap();
    let finals = expected["final"].as_object().unwrap();
    assert_eq!(
        params.len(),
        finals.len(),
        "{}: parameter count",
        case.display()
    );
    for p in params {
        let e = &finals[&p.name];
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(p.shape, shape, "{}: shape of {}", case.display(), p.name);
        for (i, (a, e)) in p.data.iter().zip(e["data"].as_array().unwrap()).enumerate() {
            let e = e.as_f64().unwrap();
            assert!(
                close(f64::from(*a), e, 1e-4, 1e-6),
                "{}: {}[{i}] = {a} vs PyTorch {e}",
                case.display(),
                p.name
            );
        }
    }
}

#[test]
fn every_backend_matches_pytorch_losses_and_final_weights() {
    for &backend in BackendKind::ALL {
        for case in cases() {
            check_case(&case, backend);
        }
    }
}
