//! The training runs of `tests/goldens/graph_models/*` (made by `tools/goldens/graph_models.py`
//! with PyTorch): nested `sequential` and `residual` blocks, and `model.nodes` graphs with
//! every combinator, dotted node names and a node the output does not use, must give
//! PyTorch's per-step losses (rtol 2e-4), parameter names and final parameters (rtol 1e-3)
//! on every backend.

use crate::support::{golden_cases, run_golden};
use graphc::BackendKind;

#[test]
fn every_backend_matches_pytorch_on_blocks_and_node_graphs() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("graph_models", 6) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-4, 1e-6);
            run.assert_final_weights(1e-3, 1e-5);
        }
    }
}
