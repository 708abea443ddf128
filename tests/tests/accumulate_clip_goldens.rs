//! Gradient accumulation (`train.accumulate`) and clipping (`train.clip_grad_norm`,
//! `train.clip_grad_value`) against PyTorch (goldens made by
//! `tools/goldens/accumulate_clip.py`): per-update losses and final weights on every backend.

use std::path::{Path, PathBuf};

use graphc::{BackendKind, RunOptions};
use serde_json::Value;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/accumulate_clip");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("golden cases are committed")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "expected the cases in {root:?}");
    cases
}

fn close(actual: f64, expected: f64, relative: f64, absolute: f64) -> bool {
    (actual - expected).abs() <= absolute + relative * expected.abs()
}

fn check_case(case: &Path, backend: BackendKind) {
    let what = format!("{} on {}", case.display(), backend.name());
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
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let losses: Vec<f64> = std::fs::read_to_string(out.path().join("metrics.jsonl"))
        .unwrap()
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
    assert_eq!(losses.len(), want.len(), "{what}: number of updates");
    for (k, (a, e)) in losses.iter().zip(&want).enumerate() {
        assert!(
            close(*a, *e, 2e-5, 1e-6),
            "{what}: update {} loss {a} vs PyTorch {e}",
            k + 1
        );
    }
    let params =
        graphc::stages::train::read_safetensors(&out.path().join("model.safetensors")).unwrap();
    let finals = expected["final"].as_object().unwrap();
    assert_eq!(params.len(), finals.len(), "{what}: parameters");
    for p in params {
        let e = finals[&p.name]["data"].as_array().unwrap();
        for (i, (a, e)) in p.data.iter().zip(e).enumerate() {
            let e = e.as_f64().unwrap();
            assert!(
                close(f64::from(*a), e, 1e-4, 1e-6),
                "{what}: {}[{i}] = {a} vs PyTorch {e}",
                p.name
            );
        }
    }
}

#[test]
fn accumulation_and_clipping_match_pytorch_on_every_backend() {
    for &backend in BackendKind::ALL {
        for case in cases() {
            check_case(&case, backend);
        }
    }
}

/// Accumulating k batches of a mean loss sums k gradients: with SGD and no momentum, one
/// update of two identical half-batches moves the weights twice as far as one update of
/// the same batch.
#[test]
fn accumulate_sums_gradients_of_the_batches_before_one_update() {
    let base = "data: {train: {csv: x.csv, target: y}, batch_size: 2}\n\
                model: {input: [1], layers: [{type: linear, out: 1, bias: false}]}\n\
                loss: {type: mse}\noptimizer: {type: sgd, lr: 0.1}\ntrain: {steps: 1";
    let plain = graphc::parse_str(&format!("{base}}}\n"), Path::new("a.yaml")).unwrap();
    let summed =
        graphc::parse_str(&format!("{base}, accumulate: 2}}\n"), Path::new("b.yaml")).unwrap();
    let x = [1.0f32, 2.0];
    let y = graphc::BatchTargets::Floats(vec![0.0, 0.0]);
    let mut one = graphc::compile(&plain, BackendKind::Interp).unwrap();
    let mut two = graphc::compile(&summed, BackendKind::Interp).unwrap();
    let w0 = one.param("0.weight").unwrap()[0];
    assert_eq!(two.param("0.weight").unwrap()[0], w0, "same init");
    one.step(&x, &y).unwrap();
    two.step(&x, &y).unwrap();
    assert_eq!(two.step_count(), 0, "the first batch only accumulates");
    assert_eq!(two.pending_batches(), 1);
    assert_eq!(two.param("0.weight").unwrap()[0], w0, "no update yet");
    two.step(&x, &y).unwrap();
    assert_eq!((two.step_count(), two.pending_batches()), (1, 0));
    // mse mean over x = [1, 2], y = 0: grad = mean(2 w x^2) = 5 w.
    let g = 5.0 * w0;
    assert_eq!(one.param("0.weight").unwrap()[0], w0 - 0.1 * g);
    let moved = two.param("0.weight").unwrap()[0];
    assert!(
        (moved - (w0 - 0.1 * (g + g))).abs() <= 1e-6 * w0.abs().max(1.0),
        "{moved} vs {}",
        w0 - 0.2 * g
    );
}
