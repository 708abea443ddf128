//! Image data loads directly: an `.npy` of shape `[N, C, H, W]` and an IDX file of `[N, H, W]`
//! images are rows of `C·H·W` features viewed as `model.input`, and a data set whose samples
//! hold another number of values is one clear error.

use std::path::Path;

use graphc::{BackendKind, RunOptions};

use crate::support::write_npy;

/// An IDX file of unsigned bytes with `dims`.
fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).expect("write idx");
}

fn spec(train: &str, input: &str) -> String {
    format!(
        "seed: 0
data:
  train: {train}
  batch_size: 4
model:
  input: {input}
  layers:
    - {{type: conv2d, out_channels: 2, kernel_size: 3, padding: 1}}
    - {{type: relu}}
    - {{type: avg_pool2d, kernel_size: 2}}
    - {{type: flatten}}
    - {{type: linear, out: 3}}
loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1}}
train: {{epochs: 2}}
"
    )
}

fn train(dir: &Path, spec_text: &str) -> Result<Vec<String>, String> {
    let path = dir.join("spec.yaml");
    std::fs::write(&path, spec_text).expect("write spec");
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    graphc::train(
        &path,
        RunOptions {
            out_dir: out.clone(),
            backend: BackendKind::Interp.backend(),
            quiet: true,
            overrides: Vec::new(),
        },
    )
    .map_err(|e| e.to_string())?;
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
    Ok(metrics.lines().map(str::to_owned).collect())
}

#[test]
fn npy_images_of_shape_n_c_h_w_train_as_model_input() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..8 * 16).map(|i| ((i * 37) % 11) as f32 / 11.0).collect();
    let x: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(&dir.path().join("x.npy"), "<f4", &[8, 1, 4, 4], &x);
    let y: Vec<u8> = (0..8i64).flat_map(|i| (i % 3).to_le_bytes()).collect();
    write_npy(&dir.path().join("y.npy"), "<i8", &[8], &y);
    let source = "{npy: {features: x.npy, target: y.npy}}";
    let lines = train(dir.path(), &spec(source, "[1, 4, 4]")).unwrap();
    assert_eq!(lines.len(), 4, "2 epochs of 2 batches: {lines:?}");
    let err = train(dir.path(), &spec(source, "[1, 5, 5]")).unwrap_err();
    assert!(
        err.contains("model.input is [1, 5, 5] (25 values per sample)")
            && err.contains("has 16 feature columns")
            && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn idx_images_train_as_one_channel_images() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..6 * 16).map(|i| ((i * 53) % 256) as u8).collect();
    write_idx(&dir.path().join("images.idx"), &[6, 4, 4], &pixels);
    let labels: Vec<u8> = (0..6).map(|i| i % 3).collect();
    write_idx(&dir.path().join("labels.idx"), &[6], &labels);
    let source = "{idx: {images: images.idx, labels: labels.idx}}";
    let lines = train(dir.path(), &spec(source, "[1, 4, 4]")).unwrap();
    assert_eq!(lines.len(), 4, "2 epochs of 2 batches (4, 2): {lines:?}");
}
