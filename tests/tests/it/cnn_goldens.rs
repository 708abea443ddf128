//! The training runs of `tests/goldens/cnn/*` (made by `tools/goldens/cnn.py` with PyTorch):
//! convolution, pooling and flatten layers alone and combined, on multi-axis inputs, must
//! give PyTorch's per-step losses (rtol 2e-4) and final parameters (rtol 1e-3) on every
//! backend.

use std::path::Path;

use crate::support::{golden_cases, run_golden};
use graphc::BackendKind;

/// Whether the case's model has a convolution or a max pooling: the JIT lowers those on the
/// `cnn-jit` branch; until it is merged here, they run on the interpreter only.
fn uses_windowed_ops(case: &Path) -> bool {
    let spec = std::fs::read_to_string(case.join("spec.yaml")).expect("spec.yaml");
    ["conv1d", "conv2d", "max_pool"].iter().any(|t| {
        spec.contains(&format!("type: {t}")) || spec.contains(&format!("type: adaptive_{t}"))
    })
}

#[test]
fn every_backend_matches_pytorch_on_convolution_and_pooling_layers() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("cnn", 16) {
            if backend == BackendKind::Jit && uses_windowed_ops(&case) {
                continue;
            }
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-4, 1e-6);
            run.assert_final_weights(1e-3, 1e-5);
        }
    }
}
