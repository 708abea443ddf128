//! Standardization: per-feature z-scores fitted on the training set, saved with the model as JSON.

use std::path::Path;

use graphc_spec::StdKind;
use serde::{Deserialize, Serialize};

use super::{file_error, write_json_line, Dataset};
use crate::error::DataError;

/// Per-feature z-score statistics (`x' = (x - mean) / std`), fitted on the training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// The mean of each feature.
    pub mean: Vec<f32>,
    /// The standard deviation of each feature (population or sample, as `ddof` says); 1.0 for
    /// a constant feature.
    pub std: Vec<f32>,
    /// The delta degrees of freedom of `std`: 0 for the population std (`standardize: true`),
    /// 1 for the sample std (`standardize: {std: sample}`, PyTorch's `X.std(0)`). Files
    /// written before it existed hold population statistics.
    #[serde(default)]
    pub ddof: u8,
}

impl Standardizer {
    /// Fits per-feature mean and std in f64: the population std (ddof 0, as sklearn's
    /// `StandardScaler`) or the sample std (ddof 1, as `torch.std`'s default).
    ///
    /// A constant feature (zero variance up to rounding, by sklearn's test) gets std 1.0, so it
    /// maps to 0; so does a sample std of one sample. An empty data set gives mean 0 and std 1.
    /// Features kept in a file are read in two streaming passes (an error only if the file
    /// cannot be read); the sums run over the rows in order either way, so the statistics are
    /// the same bits.
    pub fn fit(data: &Dataset, kind: StdKind) -> Result<Standardizer, DataError> {
        let f = data.num_features();
        let n = data.len();
        let ddof = match kind {
            StdKind::Population => 0u8,
            StdKind::Sample => 1,
        };
        if f == 0 || n == 0 {
            return Ok(Standardizer {
                mean: vec![0.0; f],
                std: vec![1.0; f],
                ddof,
            });
        }
        // Only the first `n` rows count (a caller may hold more values than rows).
        let for_each_row = |g: &mut dyn FnMut(&[f32])| {
            data.features
                .try_for_each_chunk::<DataError>(f, |first, values| {
                    let take = n.saturating_sub(first);
                    values.chunks_exact(f).take(take).for_each(&mut *g);
                    Ok(())
                })
        };
        let mut sum = vec![0f64; f];
        for_each_row(&mut |row| {
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += f64::from(x);
            }
        })?;
        let nf = n as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / nf).collect();
        let mut sq = vec![0f64; f];
        for_each_row(&mut |row| {
            for ((s, &x), m) in sq.iter_mut().zip(row).zip(&mean) {
                let d = f64::from(x) - m;
                *s += d * d;
            }
        })?;
        let eps = f64::EPSILON;
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let var = s / nf;
                // sklearn's `_is_constant_feature`: variance within rounding error of zero.
                let bound = nf * eps * var + (nf * m * eps).powi(2);
                let sd = (s / (nf - f64::from(ddof))).sqrt() as f32;
                if var <= bound || !sd.is_normal() {
                    1.0
                } else {
                    sd
                }
            })
            .collect();
        Ok(Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
            ddof,
        })
    }

    /// Replaces every feature `x` by `(x - mean) / std`, computed in f64 (features kept in a
    /// file, as they are read).
    ///
    /// The data set must have as many features as the standardizer was fitted on; extra
    /// features (a caller bug) are left unchanged.
    pub fn apply(&self, data: &mut Dataset) {
        let f = data.num_features();
        debug_assert_eq!(
            f,
            self.mean.len(),
            "standardizer fitted on a different feature count"
        );
        data.features.standardize(self, f);
    }

    /// Like [`Standardizer::apply`], but an error (naming `what`) when the data set's feature
    /// count differs from the one the statistics were fitted on, as with a standardizer loaded
    /// from a file and data given at prediction time.
    pub fn try_apply(&self, data: &mut Dataset, what: &str) -> Result<(), DataError> {
        if data.num_features() != self.mean.len() {
            return Err(DataError::Invalid(format!(
                "{what} has {} features but the standardization statistics are for {}; give data with the training set's feature columns",
                data.num_features(),
                self.mean.len()
            )));
        }
        self.apply(data);
        Ok(())
    }

    /// Which std the statistics hold.
    pub fn kind(&self) -> StdKind {
        if self.ddof == 0 {
            StdKind::Population
        } else {
            StdKind::Sample
        }
    }

    /// Writes the statistics to `path` as JSON `{"mean": [...], "std": [...], "ddof": 0}`,
    /// atomically.
    ///
    /// The numbers are written in the shortest form that reads back as the same `f32`.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        write_json_line(path, self)
    }

    /// Reads statistics written by [`Standardizer::save`], checking that they can be applied:
    /// as many means as standard deviations, every mean finite, every std finite and positive.
    pub fn load(path: &Path) -> Result<Standardizer, DataError> {
        let text = crate::read_text_bounded(path, "standardization file", crate::MAX_JSON_FILE)?;
        let s: Standardizer = serde_json::from_str(&text).map_err(|e| {
            file_error(
                path,
                format!("not standardization statistics ({e}); expected {{\"mean\": [...], \"std\": [...]}}"),
            )
        })?;
        if s.ddof > 1 {
            return Err(file_error(
                path,
                format!(
                    "ddof is {}, expected 0 (population std) or 1 (sample std); the file is damaged, train again to rewrite it",
                    s.ddof
                ),
            ));
        }
        if s.mean.len() != s.std.len() {
            return Err(file_error(
                path,
                format!(
                    "{} means but {} standard deviations; the file is damaged, train again to rewrite it",
                    s.mean.len(),
                    s.std.len()
                ),
            ));
        }
        if let Some(j) = s.mean.iter().position(|m| !m.is_finite()) {
            return Err(file_error(
                path,
                format!("mean {j} is not a finite number; the file is damaged, train again to rewrite it"),
            ));
        }
        if let Some(j) = s.std.iter().position(|d| !(d.is_finite() && *d > 0.0)) {
            return Err(file_error(
                path,
                format!(
                    "std {j} is {}, not a positive finite number; the file is damaged, train again to rewrite it",
                    s.std[j]
                ),
            ));
        }
        Ok(s)
    }
}

/// Replaces every `x` of `row` by `(x - mean) / std`, computed in f64; values beyond `mean`'s
/// length are left unchanged.
pub(crate) fn standardize_row(row: &mut [f32], mean: &[f32], std: &[f32]) {
    for ((x, &m), &s) in row.iter_mut().zip(mean).zip(std) {
        *x = ((f64::from(*x) - f64::from(m)) / f64::from(s)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Features, Origin, RowUnit, Targets};

    /// A data set of `rows` (each `features` wide) with a float target of zeros.
    fn dataset(features: usize, values: Vec<f32>) -> Dataset {
        let n = values.len() / features;
        Dataset {
            features: Features::Memory(values),
            feature_names: (0..features).map(|j| format!("f{j}")).collect(),
            targets: Targets::Floats {
                values: vec![0.0; n],
                width: 1,
            },
            origin: Origin::single("test".into(), RowUnit::Row),
        }
    }

    #[test]
    fn standardizer_uses_population_std_and_maps_constant_columns_to_zero() {
        #[rustfmt::skip]
        let mut d = dataset(3, vec![
            1.0, 5.0, 1000.1,
            2.0, 5.0, 1000.1,
            3.0, 5.0, 1000.1,
            6.0, 5.0, 1000.1,
        ]);
        let s = Standardizer::fit(&d, StdKind::Population).unwrap();
        assert_eq!(s.mean[0], 3.0);
        // population variance of 1,2,3,6: (4+1+0+9)/4 = 3.5
        assert!((s.std[0] - 3.5f32.sqrt()).abs() < 1e-6, "{:?}", s.std);
        assert_eq!(s.std[1], 1.0);
        assert_eq!(s.std[2], 1.0);
        s.apply(&mut d);
        let sd = 3.5f64.sqrt();
        let expected_a = [-2.0 / sd, -1.0 / sd, 0.0, 3.0 / sd];
        let x = d.features.in_memory().unwrap();
        for (i, e) in expected_a.iter().enumerate() {
            assert!((f64::from(x[i * 3]) - e).abs() < 1e-6);
            assert_eq!(x[i * 3 + 1], 0.0);
            assert_eq!(x[i * 3 + 2], 0.0);
        }
        let refit = Standardizer::fit(&d, StdKind::Population).unwrap();
        assert!(refit.mean.iter().all(|m| m.abs() < 1e-6));
    }

    #[test]
    fn sample_std_divides_by_n_minus_one_as_torch_std() {
        let d = dataset(2, vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0, 6.0, 5.0]);
        let s = Standardizer::fit(&d, StdKind::Sample).unwrap();
        // torch.tensor([1., 2., 3., 6.]).std() = sqrt(14 / 3)
        assert!(
            (s.std[0] - (14.0f32 / 3.0).sqrt()).abs() < 1e-6,
            "{:?}",
            s.std
        );
        assert_eq!(s.std[1], 1.0, "a constant feature still maps to 0");
        assert_eq!((s.ddof, s.kind()), (1, StdKind::Sample));
        let one = Standardizer::fit(&dataset(1, vec![4.0]), StdKind::Sample).unwrap();
        assert_eq!(one.std, vec![1.0], "one sample has no sample std");
    }

    #[test]
    fn try_apply_refuses_a_different_feature_count() {
        let s = Standardizer {
            mean: vec![0.0, 1.0],
            std: vec![1.0, 2.0],
            ddof: 0,
        };
        let mut d = dataset(3, vec![1.0, 2.0, 3.0]);
        let msg = s.try_apply(&mut d, "`new.csv`").unwrap_err().to_string();
        assert_eq!(
            msg,
            "`new.csv` has 3 features but the standardization statistics are for 2; give data with the training set's feature columns"
        );
        assert_eq!(d.features, vec![1.0, 2.0, 3.0], "left unchanged");
        let mut d = dataset(2, vec![4.0, 5.0]);
        s.try_apply(&mut d, "x").unwrap();
        assert_eq!(d.features, vec![4.0, 2.0]);
    }
}
