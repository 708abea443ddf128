//! The training runs of `tests/goldens/norm_embed/*` (made by `tools/goldens/norm_embed.py`
//! with PyTorch): `layer_norm`, `group_norm` and `embedding` (with and without `padding_idx`,
//! a nonzero padding row trained by Adam) must give PyTorch's per-step losses (rtol 2e-4) and
//! final parameters (rtol 1e-3) on every backend, and a padding row must end bit for bit as it
//! started while the other rows learn.

use graphc::stages::train::{read_state_dict, StateDict};
use graphc::BackendKind;

use crate::support::{golden_cases, run_golden};

/// The embedding cases with a `padding_idx`: the case, the resolved row and `embedding_dim`.
const PADDING_ROWS: [(&str, usize, usize); 3] = [
    ("embedding_padding_idx", 0, 4),
    ("embedding_negative_padding_idx", 3, 2),
    ("embedding_padding_row_nonzero_adam", 1, 3),
];

/// The embedding weight `0.weight`'s values.
fn embedding_weight(state: &StateDict) -> &[f32] {
    &state
        .tensors
        .iter()
        .find(|t| t.name == "0.weight")
        .expect("an embedding weight")
        .data
}

#[test]
fn every_backend_matches_pytorch_on_layer_norm_group_norm_and_embedding() {
    let mut padding_checked = 0;
    for &backend in BackendKind::ALL {
        for case in golden_cases("norm_embed", 15) {
            let run = run_golden(&case, backend);
            run.assert_step_losses(2e-4, 1e-6);
            run.assert_final_weights(1e-3, 1e-5);
            let Some(&(_, row, dim)) = PADDING_ROWS.iter().find(|(n, ..)| case.ends_with(n)) else {
                continue;
            };
            let before = read_state_dict(&case.join("init.safetensors")).unwrap();
            let after = read_state_dict(&run.out.path().join("model.safetensors")).unwrap();
            let (before, after) = (embedding_weight(&before), embedding_weight(&after));
            let bits = |w: &[f32]| -> Vec<u32> {
                w[row * dim..(row + 1) * dim]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(before), bits(after), "{}: the padding row", run.what);
            assert_ne!(before, after, "{}: the other rows learn", run.what);
            padding_checked += 1;
        }
    }
    assert_eq!(padding_checked, PADDING_ROWS.len() * BackendKind::ALL.len());
}
