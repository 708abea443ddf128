//! The training runs of `tests/goldens/activations/*` (made by
//! `tools/goldens/activations.py` with PyTorch): every activation layer between linear
//! layers, and the `kinks_*` cases whose first update sees pre-activations exactly at the
//! activations' kinks and boundaries, must give PyTorch's per-step losses (rtol 2e-4) and
//! final parameters (rtol 1e-3) on every backend.

use crate::support::{golden_cases, run_golden};
use graphc::BackendKind;

#[test]
fn every_backend_matches_pytorch_on_activation_layers_and_their_kinks() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("activations", 48) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-4, 1e-6);
            run.assert_final_weights(1e-3, 1e-5);
        }
    }
}
