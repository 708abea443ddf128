//! Reading and writing safetensors files in PyTorch `state_dict` layout (written atomically by
//! `graphc_data::write_atomic`).
//!
//! Tensors are named and shaped as PyTorch's `state_dict` names them (`0.weight`, `[out, in]`);
//! this module only moves named f32 tensors in and out of files, it does not check names.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use graphc_data::write_atomic;
use graphc_spec::shown_list;
use safetensors::{Dtype, SafeTensors};

use crate::error::TrainError;

/// One named tensor of f32 values, row-major (C order).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The `state_dict` name, e.g. `0.weight`.
    pub name: String,
    /// The shape; `[]` for a scalar.
    pub shape: Vec<usize>,
    /// The values, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

/// One named i64 scalar: a batch norm's `num_batches_tracked`, a 0-d I64 tensor in PyTorch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The `state_dict` name, e.g. `1.num_batches_tracked`.
    pub name: String,
    /// Its value.
    pub value: i64,
}

/// PyTorch's `model.state_dict()` as a file holds it: f32 tensors (parameters and buffers)
/// and i64 counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    /// Parameters and f32 buffers, sorted by name when read.
    pub tensors: Vec<NamedTensor>,
    /// The `num_batches_tracked` counters, sorted by name when read.
    pub counters: Vec<Counter>,
}

/// Reads every tensor of a safetensors file as f32, sorted by name.
///
/// F32 tensors are read as is; F64, F16 and BF16 tensors are converted to f32 (F64 rounds to
/// nearest, so values beyond f32's range become infinite; F16 and BF16 convert exactly). Any
/// other dtype is an error naming the tensor and its dtype. The file's metadata is ignored.
pub fn read_safetensors(path: &Path) -> Result<Vec<NamedTensor>, TrainError> {
    read(path, false).map(|s| s.tensors)
}

/// Reads a model's `state_dict` from a safetensors file: float tensors as
/// [`read_safetensors`] reads them, and 0-d I64 tensors (`num_batches_tracked`) as counters.
pub fn read_state_dict(path: &Path) -> Result<StateDict, TrainError> {
    read(path, true)
}

/// The reader of both: `counters` says whether 0-d I64 tensors are read (else refused).
fn read(path: &Path, counters: bool) -> Result<StateDict, TrainError> {
    // The file is held whole and decoded beside itself (up to twice its size for 16-bit
    // values), so three times its size must fit the budget; a FIFO or device is refused.
    let budget = graphc_data::memory_budget() / 3;
    let bytes = graphc_data::read_bytes_bounded(path, "safetensors file", budget)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| TrainError::Safetensors {
        path: path.to_path_buf(),
        message: format!(
            "not a valid safetensors file ({e}); save it with `safetensors.torch.save_file`"
        ),
    })?;
    let mut tensors = Vec::with_capacity(st.len());
    let mut read_counters = Vec::new();
    for (name, view) in st.iter() {
        if counters && view.dtype() == Dtype::I64 && view.shape().is_empty() {
            let bytes: [u8; 8] = view
                .data()
                .try_into()
                .map_err(|_| TrainError::Safetensors {
                    path: path.to_path_buf(),
                    message: format!("tensor `{name}` is a 0-d I64 tensor without 8 bytes of data"),
                })?;
            read_counters.push(Counter {
                name: name.to_owned(),
                value: i64::from_le_bytes(bytes),
            });
            continue;
        }
        let data = to_f32(view.dtype(), view.data()).ok_or_else(|| TrainError::Safetensors {
            path: path.to_path_buf(),
            message: format!(
                "tensor `{name}` has dtype {:?}, which cannot be loaded; convert it to float32 (e.g. `tensor.float()`) before saving",
                view.dtype()
            ),
        })?;
        tensors.push(NamedTensor {
            name: name.to_owned(),
            shape: view.shape().to_vec(),
            data,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    read_counters.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(StateDict {
        tensors,
        counters: read_counters,
    })
}

/// Refuses tensors holding NaN or an infinity: the first such value, in the order of
/// `tensors` and row-major within each, is an error naming `origin` (where the tensors came
/// from: `init.from data/x.safetensors`), the tensor as `kind` (`tensor`, `optimizer
/// state`) and its name, the value and its index. Weights, optimizer state and gradient sums
/// are finite in every run that did not diverge, and PyTorch would silently train NaN on: this
/// is the one check every load of them goes through.
pub(crate) fn check_finite<'a>(
    origin: &str,
    kind: &'static str,
    tensors: impl IntoIterator<Item = &'a NamedTensor>,
) -> Result<(), TrainError> {
    tensors
        .into_iter()
        .try_for_each(|t| check_finite_values(origin, kind, &t.name, &t.shape, &t.data))
}

/// [`check_finite`] of one tensor given by its parts.
pub(crate) fn check_finite_values(
    origin: &str,
    kind: &'static str,
    name: &str,
    shape: &[usize],
    data: &[f32],
) -> Result<(), TrainError> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(flat) => Err(TrainError::NonFinite {
            origin: origin.to_owned(),
            kind,
            tensor: name.to_owned(),
            value: data[flat],
            index: unravel(flat, shape),
        }),
    }
}

/// The coordinates of row-major position `flat` in a tensor of `shape` (`[]` for a scalar).
fn unravel(flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut rest = flat;
    let mut index = vec![0; shape.len()];
    for (coordinate, &size) in index.iter_mut().zip(shape).rev() {
        if size > 0 {
            *coordinate = rest % size;
            rest /= size;
        }
    }
    index
}

/// Converts little-endian tensor bytes of a float dtype to f32; `None` for other dtypes.
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let out = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    };
    Some(out)
}

/// Writes the tensors to a safetensors file as little-endian F32, atomically (see [`write_atomic`]).
///
/// Names are written as given; the header carries `{"format": "pt"}` metadata as
/// `safetensors.torch.save_file` does. A tensor whose data length does not match its shape, or
/// a name used twice, is an error and nothing is written.
pub fn write_safetensors(path: &Path, tensors: &[NamedTensor]) -> Result<(), TrainError> {
    write_state_dict(path, tensors, &[])
}

/// [`write_safetensors`] of `tensors` and `counters`, each counter a 0-d little-endian I64
/// tensor, as PyTorch saves `num_batches_tracked`.
pub fn write_state_dict(
    path: &Path,
    tensors: &[NamedTensor],
    counters: &[Counter],
) -> Result<(), TrainError> {
    write_state_dict_with(path, tensors, counters, &[])
}

/// [`write_state_dict`] with the string pairs `extra` in the header's metadata beside
/// `format: pt`.
pub fn write_state_dict_with(
    path: &Path,
    tensors: &[NamedTensor],
    counters: &[Counter],
    extra: &[(&str, String)],
) -> Result<(), TrainError> {
    let bad = |message: String| TrainError::Safetensors {
        path: path.to_path_buf(),
        message,
    };
    let mut seen = HashSet::with_capacity(tensors.len() + counters.len());
    for name in counters.iter().map(|c| c.name.as_str()) {
        if !seen.insert(name) {
            return Err(bad(format!(
                "tensor name `{name}` is used twice; every tensor needs its own name"
            )));
        }
    }
    for t in tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(bad(format!(
                "tensor name `{}` is used twice; every tensor needs its own name",
                t.name
            )));
        }
        let expected = t
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(t.data.len()) {
            return Err(bad(format!(
                "tensor `{}` has shape {} but {} values; this is a bug in the caller",
                t.name,
                shown_list(&t.shape),
                t.data.len()
            )));
        }
    }
    let views = tensors
        .iter()
        .map(|t| (t.name.as_str(), View::F32(t)))
        .chain(
            counters
                .iter()
                .map(|c| (c.name.as_str(), View::I64(c.value))),
        );
    let mut metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    metadata.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| bad(format!("cannot serialize the tensors: {e}")))?;
    let bytes = sorted_metadata(bytes).map_err(bad)?;
    Ok(write_atomic(path, &bytes)?)
}

/// A safetensors file's header as the safetensors crate writes it, with `__metadata__`'s keys
/// in sorted order: the crate writes them in the order of a `HashMap`, which differs from
/// process to process, and a file must not (a resumed run writes the same bytes as one never
/// stopped). The header keeps its length, so the data that follows stays where it is.
fn sorted_metadata(mut bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: std::collections::BTreeMap<String, String>,
        #[serde(flatten)]
        tensors: std::collections::BTreeMap<String, serde_json::Value>,
    }
    let fail = |e: &dyn std::fmt::Display| format!("cannot order the header's metadata: {e}");
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(bytes.get(..8).ok_or_else(|| fail(&"no header"))?);
    let len = usize::try_from(u64::from_le_bytes(prefix)).map_err(|e| fail(&e))?;
    let end = len.checked_add(8).filter(|&e| e <= bytes.len());
    let end = end.ok_or_else(|| fail(&"a header past the end"))?;
    let text = std::str::from_utf8(&bytes[8..end]).map_err(|e| fail(&e))?;
    let header: Header = serde_json::from_str(text).map_err(|e| fail(&e))?;
    let mut sorted = serde_json::to_vec(&header).map_err(|e| fail(&e))?;
    if sorted.len() > len {
        return Err(fail(&"the ordered header is longer"));
    }
    sorted.resize(len, b' ');
    bytes[8..end].copy_from_slice(&sorted);
    Ok(bytes)
}

/// A tensor as the safetensors crate's view, little-endian bytes made on demand: a
/// [`NamedTensor`] as F32, or a counter as a 0-d I64.
enum View<'a> {
    F32(&'a NamedTensor),
    I64(i64),
}

impl safetensors::View for View<'_> {
    fn dtype(&self) -> Dtype {
        match self {
            View::F32(_) => Dtype::F32,
            View::I64(_) => Dtype::I64,
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            View::F32(t) => &t.shape,
            View::I64(_) => &[],
        }
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match self {
            View::F32(t) => Cow::Owned(t.data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            View::I64(v) => Cow::Owned(v.to_le_bytes().to_vec()),
        }
    }

    fn data_len(&self) -> usize {
        match self {
            View::F32(t) => t.data.len() * 4,
            View::I64(_) => 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use safetensors::tensor::TensorView;

    fn tensor(name: &str, shape: &[usize], data: &[f32]) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trip_preserves_names_shapes_and_values_sorted_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let tensors = vec![
            tensor("2.weight", &[1, 3], &[0.5, -1.25, f32::MIN_POSITIVE]),
            tensor("0.weight", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            tensor("0.bias", &[3], &[0.1, 0.2, 0.3]),
            tensor("scalar", &[], &[7.0]),
        ];
        write_safetensors(&path, &tensors).unwrap();
        let back = read_safetensors(&path).unwrap();
        let mut expected = tensors.clone();
        expected.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, expected);
        assert_eq!(
            dir_entries(dir.path()),
            vec!["model.safetensors"],
            "no temp file left"
        );

        // PyTorch-compatible: parsable by the safetensors crate with `format: pt` metadata.
        let bytes = fs::read(&path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(
            meta.metadata()
                .as_ref()
                .and_then(|m| m.get("format"))
                .map(String::as_str),
            Some("pt")
        );
    }

    #[test]
    fn writing_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write_safetensors(&path, &[tensor("a", &[2], &[1.0, 2.0])]).unwrap();
        write_safetensors(&path, &[tensor("b", &[1], &[3.0])]).unwrap();
        assert_eq!(
            read_safetensors(&path).unwrap(),
            vec![tensor("b", &[1], &[3.0])]
        );
        assert_eq!(dir_entries(dir.path()), vec!["model.safetensors"]);
    }

    #[test]
    fn f64_f16_and_bf16_tensors_are_converted_to_f32() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.safetensors");
        let f64_vals = [1.5f64, -0.1, 1e300];
        let f64_bytes: Vec<u8> = f64_vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        // f16: 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal), +inf, -0.0
        let f16_bits: [u16; 6] = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000];
        let f16_bytes: Vec<u8> = f16_bits.iter().flat_map(|v| v.to_le_bytes()).collect();
        // bf16: 1.0, -3.0
        let bf16_bits: [u16; 2] = [0x3f80, 0xc040];
        let bf16_bytes: Vec<u8> = bf16_bits.iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = vec![
            (
                "d",
                TensorView::new(Dtype::F64, vec![3], &f64_bytes).unwrap(),
            ),
            (
                "h",
                TensorView::new(Dtype::F16, vec![2, 3], &f16_bytes).unwrap(),
            ),
            (
                "b",
                TensorView::new(Dtype::BF16, vec![2], &bf16_bytes).unwrap(),
            ),
        ];
        safetensors::tensor::serialize_to_file(views, None, &path).unwrap();
        let back = read_safetensors(&path).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], tensor("b", &[2], &[1.0, -3.0]));
        assert_eq!(back[1].name, "d");
        assert_eq!(back[1].data[..2], [1.5f32, -0.1f32]);
        assert_eq!(back[1].data[2], f32::INFINITY);
        assert_eq!(back[2].name, "h");
        assert_eq!(back[2].shape, vec![2, 3]);
        assert_eq!(
            back[2].data[..5],
            [1.0, -2.0, 65504.0, 2f32.powi(-24), f32::INFINITY]
        );
        assert_eq!(back[2].data[5].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn f16_conversion_handles_nan_and_subnormals() {
        let f16_to_f32 = |bits: u16| to_f32(Dtype::F16, &bits.to_le_bytes()).unwrap()[0];
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn unsupported_dtype_is_an_error_naming_tensor_and_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ints.safetensors");
        let bytes: Vec<u8> = [1i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = vec![(
            "steps",
            TensorView::new(Dtype::I64, vec![2], &bytes).unwrap(),
        )];
        safetensors::tensor::serialize_to_file(views, None, &path).unwrap();
        let msg = read_safetensors(&path).unwrap_err().to_string();
        assert!(
            msg.contains("`steps`") && msg.contains("I64") && msg.contains("ints.safetensors"),
            "{msg}"
        );
    }

    #[test]
    fn non_finite_values_are_refused_naming_origin_tensor_value_and_index() {
        let finite = tensor("0.bias", &[3], &[0.0, -0.0, f32::MAX]);
        let nan = tensor("0.weight", &[3, 2], &[1.0, 2.0, 3.0, f32::NAN, 5.0, 6.0]);
        check_finite("init.from x.safetensors", "tensor", [&finite]).unwrap();
        let msg = check_finite("init.from x.safetensors", "tensor", [&finite, &nan])
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(r#"init.from x.safetensors: tensor "0.weight" holds NaN at [1, 1]"#),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        let inf = tensor("s", &[], &[f32::NEG_INFINITY]);
        let msg = check_finite("checkpoint `c`", "optimizer state", [&inf])
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(r#"checkpoint `c`: optimizer state "s" holds -inf at []"#),
            "{msg}"
        );
        let wide = tensor("w", &[2, 3, 4], &[0.0; 24]);
        let mut last = wide.clone();
        last.data[23] = f32::INFINITY;
        let msg = check_finite("o", "tensor", [&wide, &last])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("holds inf at [1, 2, 3]"), "{msg}");
    }

    #[test]
    fn invalid_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.safetensors");
        fs::write(&path, b"this is not a safetensors file").unwrap();
        let msg = read_safetensors(&path).unwrap_err().to_string();
        assert!(
            msg.contains("garbage.safetensors") && msg.contains("not a valid safetensors"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn missing_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let msg = read_safetensors(&dir.path().join("init.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("init.safetensors") && msg.contains("cannot read"),
            "{msg}"
        );
    }

    #[test]
    fn write_to_missing_directory_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("model.safetensors");
        let msg = write_safetensors(&path, &[tensor("a", &[1], &[1.0])])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("model.safetensors") && msg.contains("cannot write"),
            "{msg}"
        );
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[test]
    fn shape_mismatch_and_duplicate_names_are_errors_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let msg = write_safetensors(&path, &[tensor("w", &[2, 2], &[1.0])])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`w`") && msg.contains("[2, 2]"), "{msg}");
        let msg = write_safetensors(
            &path,
            &[tensor("w", &[1], &[1.0]), tensor("w", &[1], &[2.0])],
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("`w`") && msg.contains("twice"), "{msg}");
        assert!(dir_entries(dir.path()).is_empty());
    }
}
