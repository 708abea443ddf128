//! Objective specs (`params` + `objective`): the runs of `tests/goldens/objectives/*` (made
//! by `tools/goldens/objectives.py` with PyTorch: the chapter's gradient-descent experiments,
//! every function and operator, vector parameters, several optimizers and a scheduler) give
//! PyTorch's loss and scalar parameter values at every step, and its final parameters, on
//! every backend.

use graphc::BackendKind;

use crate::support::{assert_agree, close, floats, golden_cases, run_golden};

#[test]
fn every_backend_matches_pytorch_on_objectives() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("objectives", 10) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-5, 1e-6);
            run.assert_final_weights(1e-4, 1e-6);
            let values = run.expected["values"].as_object().expect("values");
            let mut wrong = Vec::new();
            for (name, want) in values {
                let got = run.metric_series("step", name);
                let want = floats(want);
                assert_eq!(got.len(), want.len(), "{}: steps of {name}", run.what);
                for (step, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    if !close(f64::from(g), w, 2e-5, 1e-6) {
                        wrong.push(format!("step {}: {name} = {g}, PyTorch {w}", step + 1));
                    }
                }
            }
            assert_agree(&run.what, wrong);
        }
    }
}
