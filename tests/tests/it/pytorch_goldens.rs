//! The training runs of `tests/goldens/skeleton/*` (made by
//! `tools/goldens/skeleton.py` with PyTorch) must give PyTorch's per-step
//! losses and final weights on every backend.

use crate::support::{golden_cases, run_golden};
use graphc::BackendKind;

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
