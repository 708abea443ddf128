//! `data.split`: holding out a seeded random fraction of the training data as the validation set.

use super::batch::permutation;
use super::{Dataset, Origin, Targets};
use crate::error::DataError;

/// Mixed into the seed so the split's random stream differs from the shuffle's and init's.
const SPLIT_DOMAIN: u64 = 0x5350_4C49_5444_4154; // "SPLITDAT"

/// Splits `data` into a training and a validation set: `ceil(fraction × n)` samples (as
/// sklearn's `train_test_split` rounds) drawn at random by `seed` go to the validation set,
/// the rest stay for training.
///
/// Both parts keep the samples' original order, and each row remembers its source row for
/// messages. The draw depends on `(seed, n)` only. It is an error when either part would be
/// empty.
pub fn split_dataset(
    data: Dataset,
    fraction: f32,
    seed: u64,
) -> Result<(Dataset, Dataset), DataError> {
    let n = data.len();
    // The spec holds the fraction as f32, and f32 0.2 is 0.20000000298: read back as the
    // decimal the user wrote, so that 0.2 of 150 samples is 30 as in sklearn, not 31.
    let fraction_f64: f64 = fraction
        .to_string()
        .parse()
        .unwrap_or_else(|_| f64::from(fraction));
    let wanted = fraction_f64 * n as f64;
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
            "data.split {fraction} of the {n} samples of {} leaves {which}; use more data or a split between {:.3} and {:.3}",
            data.origin.targets,
            1.0 / n.max(1) as f64,
            n.saturating_sub(1) as f64 / n.max(1) as f64
        )));
    }
    let order = permutation(n, seed ^ SPLIT_DOMAIN, 0);
    let mut in_valid = vec![false; n];
    for &r in &order[..n_valid] {
        in_valid[r] = true;
    }
    let valid_rows: Vec<usize> = (0..n).filter(|&r| in_valid[r]).collect();
    let train_rows: Vec<usize> = (0..n).filter(|&r| !in_valid[r]).collect();
    drop(in_valid);
    let valid = subset(&data, &valid_rows);
    let train = subset(&data, &train_rows);
    Ok((train, valid))
}

/// The rows `rows` (ascending) of `data` as a data set of their own.
fn subset(data: &Dataset, rows: &[usize]) -> Dataset {
    let f = data.num_features();
    let mut features = Vec::with_capacity(rows.len() * f);
    for &r in rows {
        features.extend_from_slice(&data.features[r * f..(r + 1) * f]);
    }
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
