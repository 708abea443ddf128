//! The training runs of `tests/goldens/skeleton/*` (made by
//! `tools/goldens/skeleton.py` with PyTorch) must give PyTorch's per-step
//! losses and final weights on every backend; and those of
//! `tests/goldens/norm_dropout/*` (made by `tools/goldens/norm_dropout.py`):
//! batch norm, dropout and the train/eval modes, with PyTorch's per-step losses,
//! per-epoch validation losses (evaluation mode) and final `state_dict`,
//! batch-norm buffers included.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::support::{golden_cases, integers, read_state_dict, run_golden, tensor, StoredValues};
use graphc::stages::ir::random::{philox4x32_10, random_uniform_block};
use graphc::BackendKind;
use serde_json::Value;

#[test]
fn every_backend_matches_pytorch_losses_and_final_weights() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("skeleton", 8) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-5, 1e-7);
            run.assert_final_weights(1e-4, 1e-6);
        }
    }
}

/// Every case on every backend: losses per update (rtol 2e-4), `valid_loss` per epoch
/// (rtol 2e-4), parameters and running statistics (rtol 1e-3), `num_batches_tracked`
/// exactly. Runs them all and then lists every case that failed, with its first message.
#[test]
fn every_backend_matches_pytorch_on_batch_norm_dropout_and_modes() {
    let mut failed = Vec::new();
    let mut runs = 0;
    for &backend in BackendKind::ALL {
        for case in golden_cases("norm_dropout", 15) {
            runs += 1;
            let checked = catch_unwind(AssertUnwindSafe(|| {
                let run = run_golden(&case, backend);
                run.assert_step_losses(2e-4, 1e-6);
                run.assert_valid_losses(2e-4, 1e-6);
                run.assert_final_weights(1e-3, 1e-5);
            }));
            if let Err(e) = checked {
                let message = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                // Messages name the run (`<case dir> on <backend>: `); the summary already does.
                let run = format!("{} on {}: ", case.display(), backend.name());
                let first = message.lines().take(3).collect::<Vec<_>>().join(" / ");
                failed.push(format!(
                    "{} on {}: {}",
                    case.file_name().unwrap().to_string_lossy(),
                    backend.name(),
                    first.replace(&run, "")
                ));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {runs} norm_dropout runs differ from PyTorch:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// The dropout masks of `norm_dropout` come from `tools/goldens/norm_dropout.py`'s numpy
/// Philox; `philox.json` holds its known answers and draws (every dropout layer of every
/// case at training forwards 0 and 5, and draws with high seed, stream and step words),
/// which must be `graphc_ir::random`'s bits exactly.
#[test]
fn the_norm_dropout_goldens_draw_graphcs_philox_values() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/norm_dropout/philox.json");
    let text = std::fs::read_to_string(path).expect("committed");
    let json: Value = serde_json::from_str(&text).expect("JSON");
    let word = |v: &Value| -> Vec<u32> {
        integers(v)
            .expect("integers")
            .into_iter()
            .map(|w| u32::try_from(w).expect("a u32"))
            .collect()
    };
    for known in json["known_answers"].as_array().expect("known answers") {
        let (c, k) = (word(&known["counter"]), word(&known["key"]));
        assert_eq!(
            philox4x32_10([c[0], c[1], c[2], c[3]], [k[0], k[1]]).to_vec(),
            word(&known["result"]),
            "{known}"
        );
    }
    let draws = json["cases"].as_array().expect("draws");
    assert!(draws.len() >= 18, "{} draws", draws.len());
    for draw in draws {
        let what = draw["what"].as_str().expect("what");
        let seed = draw["seed"].as_u64().expect("seed");
        let stream = u32::try_from(draw["stream"].as_u64().expect("stream")).expect("u32");
        let step = draw["step"].as_u64().expect("step");
        let bits = word(&draw["bits"]);
        let len: u64 = draw["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dimension"))
            .product();
        assert_eq!(bits.len() as u64, len, "{what}");
        let ours: Vec<u32> = (0..bits.len().div_ceil(4))
            .flat_map(|b| random_uniform_block(seed, stream, step, b as u32))
            .take(bits.len())
            .map(f32::to_bits)
            .collect();
        assert_eq!(
            ours, bits,
            "{what}: seed {seed} stream {stream} step {step}"
        );
    }
}

/// Every `norm_dropout` case's `init.safetensors` (PyTorch's `save_file(model.state_dict())`)
/// holds the tensors of `expected.final`, with its shapes, and the batch-norm buffers as
/// PyTorch writes them: `num_batches_tracked` I64 and 0-d, the rest F32 (one case starts
/// from 5 tracked batches). This is what `init: {from: ...}` must load.
#[test]
fn the_norm_dropout_inits_hold_pytorchs_buffers() {
    let (mut counts, mut loaded) = (0, 0);
    for case in golden_cases("norm_dropout", 15) {
        let init = read_state_dict(&case.join("init.safetensors"));
        let text = std::fs::read_to_string(case.join("expected.json")).expect("expected.json");
        let expected: Value = serde_json::from_str(&text).expect("JSON");
        let finals = expected["final"].as_object().expect("final");
        let mut names: Vec<&String> = finals.keys().collect();
        names.sort();
        assert_eq!(init.keys().collect::<Vec<_>>(), names, "{}", case.display());
        for (name, t) in &init {
            let want = tensor(&finals[name]);
            assert_eq!(t.shape, want.shape, "{}: {name}", case.display());
            let count = name.ends_with(".num_batches_tracked");
            match &t.values {
                StoredValues::I64(v) => {
                    assert!(count && t.shape.is_empty(), "{}: {name}", case.display());
                    assert!(v[0] >= 0);
                    counts += 1;
                    loaded = loaded.max(v[0]);
                }
                StoredValues::F32(_) => assert!(!count, "{}: {name}", case.display()),
            }
        }
    }
    assert!(counts >= 9, "{counts} num_batches_tracked buffers");
    assert_eq!(loaded, 5, "a case starts from 5 tracked batches");
}
