//! Gradient accumulation (`train.accumulate`) and clipping (`train.clip_grad_norm`,
//! `train.clip_grad_value`) against PyTorch (goldens made by
//! `tools/goldens/accumulate_clip.py`): per-update losses and final weights on every backend.

use std::path::Path;

use crate::support::{golden_cases, run_golden};
use graphc::BackendKind;

#[test]
fn accumulation_and_clipping_match_pytorch_on_every_backend() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("accumulate_clip", 10) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-5, 1e-6);
            run.assert_final_weights(1e-4, 1e-6);
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
