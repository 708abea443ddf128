//! `data.split`: holding out part of the training data as the validation set — a seeded
//! random fraction, or the rows a `split.json` lists — and `split.json` itself, which records
//! the held-out rows and what drew them so that the same split can be reused here or elsewhere.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::batch::permutation;
use super::{file_error, write_json_line, Dataset, Origin, Targets};
use crate::error::DataError;

/// Mixed into the seed so the split's random stream differs from the shuffle's and init's.
const SPLIT_DOMAIN: u64 = 0x5350_4C49_5444_4154; // "SPLITDAT"

/// What `split.json` holds: the held-out rows (0-based indices of the training source's
/// samples, ascending; CSV data rows counted from the first after the header) and what
/// produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRecord {
    /// The number of samples of the training source the rows index into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// The fraction drawn, when the split was drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// The seed of the draw, when the split was drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The file the split was read from, when it was reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The held-out (validation) rows, ascending.
    pub valid_rows: Vec<usize>,
}

impl SplitRecord {
    /// Writes the record to `path` as one line of JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        write_json_line(path, self)
    }

    /// Reads a split file for a training source of `n` samples: a JSON object with
    /// `valid_rows` (and, if given, `samples` equal to `n`). Rows out of range, repeated, or
    /// leaving either part empty are errors naming the file.
    pub fn load(path: &Path, n: usize) -> Result<SplitRecord, DataError> {
        let text = crate::read_text_bounded(path, "split file", crate::MAX_JSON_FILE)?;
        let mut record: SplitRecord = serde_json::from_str(&text).map_err(|e| {
            file_error(
                path,
                format!("not a split file ({e}); expected {{\"valid_rows\": [0-based row indices]}} as graphc train writes it"),
            )
        })?;
        if let Some(samples) = record.samples.filter(|&s| s != n) {
            return Err(file_error(
                path,
                format!("it splits {samples} samples, but the training data has {n}; use the split.json of a run on this data"),
            ));
        }
        if let Some(&r) = record.valid_rows.iter().find(|&&r| r >= n) {
            return Err(file_error(
                path,
                format!(
                    "row {r} is out of range: the training data has {n} samples (rows 0 to {})",
                    n.saturating_sub(1)
                ),
            ));
        }
        let mut sorted = record.valid_rows.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(file_error(
                path,
                format!(
                    "row {} is listed twice; each held-out row appears once",
                    w[0]
                ),
            ));
        }
        if sorted.is_empty() || sorted.len() >= n {
            let which = if sorted.is_empty() {
                "no validation samples"
            } else {
                "no training samples"
            };
            return Err(file_error(
                path,
                format!(
                    "it holds out {} of the {n} samples, which leaves {which}",
                    sorted.len()
                ),
            ));
        }
        record.valid_rows = sorted;
        record.samples = Some(n);
        Ok(record)
    }
}

/// The rows `ceil(fraction × n)` (as sklearn's `train_test_split` rounds) drawn at random by
/// `seed` from `n` samples, ascending; the draw depends on `(seed, n)` only. `what` names the
/// data in the error when either part would be empty.
pub fn draw_split(n: usize, fraction: f32, seed: u64, what: &str) -> Result<Vec<usize>, DataError> {
    // The spec holds the fraction as f32, and f32 0.2 is 0.20000000298: read back as the
    // decimal the user wrote, so that 0.2 of 150 samples is 30 as in sklearn, not 31.
    let wanted = decimal(fraction) * n as f64;
    let n_valid = if wanted.is_finite() && wanted > 0.0 {
        (wanted.ceil() as usize).min(n)
    } else {
        0
    };
    if n_valid == 0 || n_valid >= n {
        let which = if n_valid == 0 {
            "no validation samples"
        } else {
            "no training samples"
        };
        return Err(DataError::Invalid(format!(
            "data.split {fraction} of the {n} samples of {what} leaves {which}; use more data or a split between {:.3} and {:.3}",
            1.0 / n.max(1) as f64,
            n.saturating_sub(1) as f64 / n.max(1) as f64
        )));
    }
    let order = permutation(n, seed ^ SPLIT_DOMAIN, 0);
    let mut rows = order[..n_valid].to_vec();
    rows.sort_unstable();
    Ok(rows)
}

/// An f32 read back as the shortest decimal that gives it (0.2, not 0.20000000298).
pub fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or_else(|_| f64::from(x))
}

/// Splits `data` into a training and a validation set: the drawn rows of [`draw_split`] go to
/// the validation set, the rest stay for training.
pub fn split_dataset(
    data: Dataset,
    fraction: f32,
    seed: u64,
) -> Result<(Dataset, Dataset), DataError> {
    let rows = draw_split(data.len(), fraction, seed, &data.origin.targets)?;
    Ok(split_rows(&data, &rows))
}

/// `data` split into (training, validation) by the validation rows `valid_rows` (ascending,
/// in range, distinct). Both parts keep the samples' original order, and each row remembers
/// its source row for messages. Features kept in a file stay there.
pub fn split_rows(data: &Dataset, valid_rows: &[usize]) -> (Dataset, Dataset) {
    let n = data.len();
    let mut in_valid = vec![false; n];
    for &r in valid_rows {
        in_valid[r] = true;
    }
    let train_rows: Vec<usize> = (0..n).filter(|&r| !in_valid[r]).collect();
    drop(in_valid);
    (subset(data, &train_rows), subset(data, valid_rows))
}

/// The rows `rows` (ascending) of `data` as a data set of their own.
fn subset(data: &Dataset, rows: &[usize]) -> Dataset {
    let features = data.features.subset(rows, data.num_features());
    let targets = match &data.targets {
        Targets::Classes { indices, names } => Targets::Classes {
            indices: rows.iter().map(|&r| indices[r]).collect(),
            names: names.clone(),
        },
        Targets::Floats { values, width } => {
            let w = *width;
            let mut out = Vec::with_capacity(rows.len() * w);
            for &r in rows {
                out.extend_from_slice(&values[r * w..(r + 1) * w]);
            }
            Targets::Floats {
                values: out,
                width: w,
            }
        }
    };
    let source_rows = rows
        .iter()
        .map(|&r| match &data.origin.rows {
            Some(outer) => outer.get(r).copied().unwrap_or(r),
            None => r,
        })
        .collect();
    Dataset {
        features,
        feature_names: data.feature_names.clone(),
        targets,
        origin: Origin {
            features: data.origin.features.clone(),
            targets: data.origin.targets.clone(),
            unit: data.origin.unit,
            rows: Some(source_rows),
        },
    }
}
