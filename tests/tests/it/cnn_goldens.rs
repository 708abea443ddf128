//! The training runs of `tests/goldens/cnn/*` (made by `tools/goldens/cnn.py` with PyTorch):
//! convolution, pooling and flatten layers alone and combined, on multi-axis inputs, must
//! give PyTorch's per-step losses (rtol 2e-4) and final parameters (rtol 1e-3) on every
//! backend.

use crate::support::{golden_cases, run_golden};
use graphc::BackendKind;

#[test]
fn every_backend_matches_pytorch_on_convolution_and_pooling_layers() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("cnn", 16) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-4, 1e-6);
            run.assert_final_weights(1e-3, 1e-5);
        }
    }
}
