//! Every loss, with every option combination, against PyTorch: the values and
//! input gradients in `tests/goldens/losses/*.json` (made by
//! `tools/goldens/losses.py`) must come out of every backend in
//! `BackendKind::ALL` within a relative 1e-5, NaN where PyTorch gives NaN and
//! the same infinities; and a short training run per loss
//! (`tests/goldens/losses/training/*`) must give PyTorch's per-step losses.

use std::path::Path;

use graphc::stages::ir::{Arg, DType, TensorType};
use graphc::stages::{nn, opt, spec};
use graphc::{BackendKind, RunOptions};
use serde_json::Value;

use crate::support::{mismatches, number, tensor, Tensor};

/// Relative tolerance on each element.
const RELATIVE: f64 = 1e-5;
/// An element's error may also be this fraction of the largest element of the
/// same tensor: a gradient element that is a difference of nearly equal terms
/// (a probability minus its target) carries the rounding error of the terms.
const OF_LARGEST: f64 = 1e-6;

fn close(actual: f64, expected: f64, largest: f64) -> bool {
    if expected.is_nan() {
        return actual.is_nan();
    }
    if expected.is_infinite() {
        return actual == expected;
    }
    (actual - expected).abs() <= RELATIVE * expected.abs() + OF_LARGEST * largest
}

/// Compares `actual` with `expected`; returns a message per mismatch.
fn compare(what: &str, actual: &[f32], expected: &Tensor) -> Vec<String> {
    mismatches(what, actual, expected, |_, a, e, largest| {
        close(f64::from(a), e, largest)
    })
}

/// Runs one case on one backend; returns its mismatches.
fn run_case(case: &Value, backend: BackendKind) -> Vec<String> {
    let loss_text = case["loss"].to_string();
    let loss = spec::parse_loss_str(&loss_text, Path::new("golden"))
        .unwrap_or_else(|e| panic!("golden loss {loss_text} does not parse: {e}"));
    let input = tensor(&case["input"]);
    let target = tensor(&case["target"]);
    let classes = case["target"]["dtype"] == "int64";
    let target_ty = if classes {
        TensorType::i64(&target.shape)
    } else {
        TensorType::f32(&target.shape)
    };
    assert_eq!(
        target_ty.dtype == DType::I64,
        classes,
        "target dtype of {loss_text}"
    );
    let mut built = match nn::build_loss_graph(&loss, &input.shape, &target_ty, true) {
        Ok(b) => b,
        Err(e) => return vec![format!("building: {e}")],
    };
    // As the trainer and `graphc loss` run it: optimized first.
    if let Err(e) = opt::optimize(&mut built.graph) {
        return vec![format!("optimizing: {e}")];
    }
    let mut exe = match backend.backend().compile(&built.graph) {
        Ok(exe) => exe,
        Err(e) => return vec![format!("compiling: {e}")],
    };
    let input_data: Vec<f32> = input.data.iter().map(|&v| v as f32).collect();
    exe.write("input", &input_data)
        .expect("the input is a parameter");
    let indices: Vec<i64> = target.data.iter().map(|&v| v as i64).collect();
    let floats: Vec<f32> = target.data.iter().map(|&v| v as f32).collect();
    let arg = if classes {
        Arg::I64(&indices)
    } else {
        Arg::F32(&floats)
    };
    if let Err(e) = exe.run(&[arg]) {
        return vec![format!("running: {e}")];
    }
    let mut problems = compare(
        "value",
        exe.output(built.loss_output),
        &tensor(&case["value"]),
    );
    let grad = built.grad_output.expect("asked for the gradient");
    problems.extend(compare("grad", exe.output(grad), &tensor(&case["grad"])));
    problems
}

/// Checks every case of `tests/goldens/losses/<loss>.json` on every backend.
fn check(loss: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("goldens/losses")
        .join(format!("{loss}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tools/goldens/losses.py)", path.display()));
    let golden: Value = serde_json::from_str(&text).expect("golden JSON");
    let cases = golden["cases"].as_array().expect("cases");
    assert!(cases.len() >= 6, "{loss}: only {} cases", cases.len());
    let mut failures = Vec::new();
    for backend in BackendKind::ALL {
        for case in cases {
            let problems = run_case(case, *backend);
            if !problems.is_empty() {
                failures.push(format!(
                    "{loss}/{} on {}: {}",
                    case["name"].as_str().unwrap_or("?"),
                    backend.name(),
                    problems.join("; ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from PyTorch:\n{}",
        failures.len(),
        cases.len() * BackendKind::ALL.len(),
        failures.join("\n")
    );
}

#[test]
fn cross_entropy_matches_pytorch_with_weights_ignore_index_smoothing_and_probabilities() {
    check("cross_entropy");
}

#[test]
fn nll_matches_pytorch_with_weights_and_ignore_index() {
    check("nll");
}

#[test]
fn bce_matches_pytorch_including_probabilities_of_exactly_zero_and_one() {
    check("bce");
}

#[test]
fn bce_with_logits_matches_pytorch_with_weight_and_pos_weight_for_any_logit() {
    check("bce_with_logits");
}

#[test]
fn mse_matches_pytorch() {
    check("mse");
}

#[test]
fn l1_matches_pytorch() {
    check("l1");
}

#[test]
fn smooth_l1_matches_pytorch_for_every_beta() {
    check("smooth_l1");
}

#[test]
fn huber_matches_pytorch_for_every_delta() {
    check("huber");
}

#[test]
fn kl_div_matches_pytorch_with_log_target_and_batchmean() {
    check("kl_div");
}

#[test]
fn poisson_nll_matches_pytorch_with_log_input_full_and_eps() {
    check("poisson_nll");
}

#[test]
fn soft_margin_matches_pytorch_including_its_overflow() {
    check("soft_margin");
}

#[test]
fn multilabel_soft_margin_matches_pytorch_with_weight() {
    check("multilabel_soft_margin");
}

#[test]
fn multi_margin_matches_pytorch_with_p_margin_and_weight() {
    check("multi_margin");
}

#[test]
fn training_with_every_loss_gives_pytorch_s_per_step_losses_on_every_backend() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/losses/training");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("training runs are committed")
        .map(|e| e.expect("readable").path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 13,
        "expected a training run per loss in {root:?}"
    );
    let mut failures = Vec::new();
    for backend in BackendKind::ALL {
        for case in &cases {
            let out = tempfile::tempdir().unwrap();
            let options = RunOptions {
                out_dir: out.path().to_path_buf(),
                backend: backend.backend(),
                quiet: true,
                overrides: Vec::new(),
            };
            if let Err(e) = graphc::train(&case.join("spec.yaml"), options) {
                failures.push(format!("{}: {e}", case.display()));
                continue;
            }
            let metrics = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
            let losses: Vec<f64> = metrics
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter_map(|v| v.get("loss").and_then(Value::as_f64))
                .collect();
            let expected: Value =
                serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
                    .unwrap();
            let want: Vec<f64> = expected["losses"]
                .as_array()
                .unwrap()
                .iter()
                .map(number)
                .collect();
            if losses.len() != want.len() {
                failures.push(format!(
                    "{}: {} steps, PyTorch {}",
                    case.display(),
                    losses.len(),
                    want.len()
                ));
                continue;
            }
            for (step, (a, e)) in losses.iter().zip(&want).enumerate() {
                if (a - e).abs() > 2e-5 * e.abs() + 1e-7 {
                    failures.push(format!(
                        "{} on {}: step {} loss {a} vs PyTorch {e}",
                        case.display(),
                        backend.name(),
                        step + 1
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
