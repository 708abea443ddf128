//! IDX sources (the MNIST format): an images file and a labels file, each gzipped or not.
//!
//! An IDX file is a 4-byte magic number — two zero bytes, a type code, the number of
//! dimensions — then each dimension as a big-endian `u32`, then the values, big-endian, in C
//! order. Type codes: `08` u8, `09` i8, `0B` i16, `0C` i32, `0D` f32, `0E` f64. A file that
//! starts with gzip's magic bytes `1F 8B` is decompressed as it is read (flate2), whatever its
//! name. The first dimension counts items (samples); an item of the images file is flattened
//! into its features (28 × 28 = 784 for MNIST), values as stored (0–255 for MNIST pixels).

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::{
    file_error, first_non_finite, indexed_names, open_data_file, quoted, read_failed, Dataset,
    Origin, RowUnit, TargetKind, Values, MAX_RESERVE,
};
use crate::error::DataError;
use crate::Features;

/// Loads `{idx: {images: PATH, labels: PATH}}`: the images are the features, the labels the target.
pub fn load_idx(images: &Path, labels: &Path, kind: TargetKind) -> Result<Dataset, DataError> {
    let x = read_idx(images, false)?;
    let class_labels = kind == TargetKind::ClassIndex;
    let y = read_idx(labels, class_labels)?;
    let (x_name, y_name) = (quoted(images), quoted(labels));
    let n = x.dims[0];
    if n == 0 {
        return Err(file_error(
            images,
            "the file has no items (its first dimension is 0); the data set is empty".into(),
        ));
    }
    // The dimensions' product was checked when the values were read, so the item's part fits;
    // checked anyway, as every size is.
    let width = x.dims[1..]
        .iter()
        .try_fold(1usize, |w, &d| w.checked_mul(d))
        .unwrap_or(0);
    if width == 0 {
        return Err(file_error(
            images,
            format!(
                "an item has no values (dimensions {}); check that this is an images file",
                graphc_spec::shown_list(&x.dims)
            ),
        ));
    }
    if y.dims.len() > 2 {
        return Err(file_error(
            labels,
            format!(
                "a labels file has one value per item (1 dimension), but this one has dimensions {}; are `images` and `labels` swapped?",
                graphc_spec::shown_list(&y.dims)
            ),
        ));
    }
    if y.dims[0] != n {
        return Err(DataError::Invalid(format!(
            "{x_name} has {n} items but {y_name} has {} labels; give the labels file that belongs to these images",
            y.dims[0]
        )));
    }
    let Values::F32(features) = x.values else {
        return Err(file_error(images, "read as labels (a bug)".into()));
    };
    if let Some((i, v)) = first_non_finite(&features) {
        return Err(file_error(
            images,
            format!(
                "item {}, value {}: {v} is not a finite number; NaN and infinity are not allowed in features",
                i / width,
                i % width,
            ),
        ));
    }
    let w = y.dims.get(1).copied().unwrap_or(1);
    let targets = y.values.into_targets(
        w,
        || file_error(labels, "a label has no values".into()),
        |i, v| {
            file_error(
                labels,
                format!(
                    "item {}: {v} is not a finite number; NaN and infinity are not allowed in targets",
                    i / w
                ),
            )
        },
    )?;
    Ok(Dataset {
        features: Features::Memory(features),
        feature_names: indexed_names("pixel", width),
        targets,
        origin: Origin {
            features: x_name,
            targets: y_name,
            unit: RowUnit::Item,
            rows: None,
        },
    })
}

/// An IDX array's dimensions and values (C order).
struct IdxArray {
    dims: Vec<usize>,
    values: Values,
}

/// The element types of IDX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    U8,
    I8,
    I16,
    I32,
    F32,
    F64,
}

impl Elem {
    /// The type of code `code`, if it is one.
    fn from_code(code: u8) -> Option<Elem> {
        Some(match code {
            0x08 => Elem::U8,
            0x09 => Elem::I8,
            0x0B => Elem::I16,
            0x0C => Elem::I32,
            0x0D => Elem::F32,
            0x0E => Elem::F64,
            _ => return None,
        })
    }

    /// Bytes per value.
    fn size(self) -> usize {
        match self {
            Elem::U8 | Elem::I8 => 1,
            Elem::I16 => 2,
            Elem::I32 | Elem::F32 => 4,
            Elem::F64 => 8,
        }
    }

    /// The big-endian value in `b` (exactly `size()` bytes) as f64.
    fn decode(self, b: &[u8]) -> f64 {
        match self {
            Elem::U8 => f64::from(b[0]),
            Elem::I8 => f64::from(b[0] as i8),
            Elem::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
            Elem::I32 => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            Elem::F32 => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            Elem::F64 => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Reads an IDX file; `class_labels` reads a one-value-per-item file as class indices.
fn read_idx(path: &Path, class_labels: bool) -> Result<IdxArray, DataError> {
    let file = open_data_file(path)?;
    let file_len = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| read_failed(path, &e))?;
    let mut buffered = BufReader::with_capacity(1 << 16, file);
    let gzipped = buffered
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .map_err(|e| read_failed(path, &e))?;
    let err = |message: String| file_error(path, message);
    let io_err = |e: io::Error, what: &str| {
        if gzipped && e.kind() != io::ErrorKind::UnexpectedEof {
            err(format!(
                "cannot decompress the gzip data ({e}); the file is damaged, download it again"
            ))
        } else {
            err(format!("the file ends inside {what}; it is truncated"))
        }
    };
    let mut reader: Box<dyn Read> = if gzipped {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };

    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|e| io_err(e, "the 4-byte magic number"))?;
    if magic[0] != 0 || magic[1] != 0 || magic[3] == 0 {
        return Err(err(format!(
            "not an IDX file: it starts with {:02X} {:02X} {:02X} {:02X}, but an IDX file starts with 00 00, a type code (08 for bytes) and the number of dimensions (03 for MNIST images, 01 for labels); check the path",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    let elem = Elem::from_code(magic[2]).ok_or_else(|| {
        err(format!(
            "unknown IDX type code {:02X} in the magic number; valid: 08 (u8), 09 (i8), 0B (i16), 0C (i32), 0D (f32), 0E (f64)",
            magic[2]
        ))
    })?;
    let ndim = usize::from(magic[3]);
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let mut d = [0u8; 4];
        reader
            .read_exact(&mut d)
            .map_err(|e| io_err(e, "the dimensions"))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let shown = graphc_spec::shown_list(&dims);
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|c| c.checked_mul(elem.size()).map(|_| c))
        .ok_or_else(|| {
            err(format!(
                "dimensions {shown} are too large to hold in memory"
            ))
        })?;
    let header_len = 4 + 4 * ndim as u64;
    let needed = count as u64 * elem.size() as u64;
    if !gzipped {
        let available = file_len.saturating_sub(header_len);
        if available != needed {
            return Err(err(format!(
                "the header's dimensions {shown} need {needed} bytes of data but the file has {available}; {}",
                if available < needed {
                    "it is truncated"
                } else {
                    "it is not an IDX file of this shape"
                }
            )));
        }
    }

    let as_classes = class_labels && (ndim == 1 || (ndim == 2 && dims[1] == 1));
    // A gzipped file can declare far more data than it holds: check the decoded size against
    // the budget before reading, which then goes in bounded chunks.
    let decoded = (count as u64).checked_mul(if as_classes { 8 } else { 4 });
    crate::check_budget(decoded, || {
        format!("{}: dimensions {shown}", crate::quoted(path))
    })?;
    let mut floats: Vec<f32> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    if as_classes {
        ints.reserve(count.min(MAX_RESERVE));
    } else {
        floats.reserve(count.min(MAX_RESERVE));
    }
    let size = elem.size();
    let mut chunk = vec![0u8; (1 << 16) / size * size];
    let mut left = count;
    while left > 0 {
        let take = (left * size).min(chunk.len());
        reader
            .read_exact(&mut chunk[..take])
            .map_err(|e| io_err(e, "its data"))?;
        for b in chunk[..take].chunks_exact(size) {
            let v = elem.decode(b);
            if as_classes {
                let item = ints.len();
                if v.fract() != 0.0 || !(-9.2e18..9.2e18).contains(&v) {
                    return Err(err(format!(
                        "item {item}: {v} is not a class index; class labels must be whole numbers (0, 1, 2, ...)"
                    )));
                }
                ints.push(v as i64);
            } else {
                floats.push(v as f32);
            }
        }
        left -= take / size;
    }
    if gzipped {
        let mut extra = [0u8; 1];
        if matches!(reader.read(&mut extra), Ok(n) if n > 0) {
            return Err(err(format!(
                "the data goes on after the {count} values its dimensions {shown} describe; it is not an IDX file of this shape"
            )));
        }
    }
    Ok(IdxArray {
        dims,
        values: if as_classes {
            Values::I64(ints)
        } else {
            Values::F32(floats)
        },
    })
}
