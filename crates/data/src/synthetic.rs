//! Built-in synthetic data sets (`synthetic: {kind, samples, features, classes, noise}`),
//! generated from the spec's seed for examples that need no file.
//!
//! The generators (sample `i` belongs to class `i mod classes`, so classes are balanced and
//! interleaved; `N(0, 1)` is a standard normal draw, `noise` its scale):
//! - `blobs` (sklearn's `make_blobs`): one centre per class, uniform in `[-10, 10]^features`;
//!   a sample is its class's centre plus `noise · N(0, 1)` per feature.
//! - `moons` (sklearn's `make_moons`), 2-D, 2 classes: class 0 on the upper half circle
//!   `(cos t, sin t)`, class 1 on the lower one `(1 - cos t, 0.5 - sin t)`, `t` evenly spaced in
//!   `[0, π]`, plus `noise · N(0, 1)` per coordinate.
//! - `spirals`, 2-D: one arm per class, radius `r` evenly spaced in `[0, 1]`, angle
//!   `4r + 2πc / classes` for class `c`, the point `r · (sin θ, cos θ)` plus `noise · N(0, 1)`
//!   per coordinate (the two- and three-arm spirals of the CS231n notes).
//! - `linear`: regression; `x ~ N(0, 1)` per feature, `y = x·w + b + noise · N(0, 1)` with
//!   `w ~ N(0, 1)` per feature and `b ~ N(0, 1)`.
//!
//! The distribution (centres, `w`, `b`) depends on the seed only; the samples on the seed and
//! the role, so a synthetic validation set is new samples from the training set's distribution.
//! Random numbers come from `ChaCha8Rng` words turned into floats here (Box–Muller for normals),
//! not from `rand`'s samplers, so a data set never changes with a `rand` upgrade.

use std::f64::consts::PI;

use graphc_spec::{SyntheticKind, SyntheticSpec};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{indexed_names, Dataset, Origin, RowUnit, SourceRole, TargetKind, Targets};
use crate::error::DataError;
use crate::Features;

/// Mixed into the seed so the generators' streams differ from the shuffle's and init's.
const SYNTHETIC_DOMAIN: u64 = 0x5359_4E54_4845_5449; // "SYNTHETI"

/// Generates the synthetic data set `spec` from `seed` for `role`.
///
/// With a `ClassIndex` target the classifiers give class indices; with a `Float` target they
/// give one column of 0/1 for two classes and one-hot columns for more (as `bce_with_logits`
/// takes them). `linear` gives one float column and is an error with a `ClassIndex` target.
pub fn generate(
    spec: &SyntheticSpec,
    seed: u64,
    role: SourceRole,
    kind: TargetKind,
) -> Result<Dataset, DataError> {
    let name = kind_name(spec.kind);
    check_size(spec, role, kind)?;
    let n = spec.samples;
    let noise = f64::from(spec.noise);
    let mut shape_rng = Normal::new(seed, 0);
    let mut rng = Normal::new(
        seed,
        match role {
            SourceRole::Train => 1,
            SourceRole::Valid => 2,
        },
    );
    let (features, targets) = match spec.kind {
        SyntheticKind::Linear => {
            if kind == TargetKind::ClassIndex {
                return Err(DataError::Invalid(format!(
                    "synthetic `{name}` makes a float (regression) target, but the loss wants class indices; use a regression loss such as mse, or kind blobs, moons or spirals"
                )));
            }
            let f = spec.features;
            let w: Vec<f64> = (0..f).map(|_| shape_rng.normal()).collect();
            let b = shape_rng.normal();
            let mut x = Vec::with_capacity(n * f);
            let mut y = Vec::with_capacity(n);
            for _ in 0..n {
                let mut dot = b;
                for wj in &w {
                    let xj = rng.normal();
                    dot += xj * wj;
                    x.push(xj as f32);
                }
                y.push((dot + noise * rng.normal()) as f32);
            }
            (
                x,
                Targets::Floats {
                    values: y,
                    width: 1,
                },
            )
        }
        SyntheticKind::Blobs => {
            let (f, k) = (spec.features, spec.classes.max(1));
            let centres: Vec<f64> = (0..k * f)
                .map(|_| 20.0 * shape_rng.uniform() - 10.0)
                .collect();
            let mut x = Vec::with_capacity(n * f);
            for i in 0..n {
                let c = i % k;
                for j in 0..f {
                    x.push((centres[c * f + j] + noise * rng.normal()) as f32);
                }
            }
            (x, class_targets(n, k, kind))
        }
        SyntheticKind::Moons => {
            let mut x = Vec::with_capacity(n * 2);
            for i in 0..n {
                let (c, j) = (i % 2, i / 2);
                let t = PI * spaced(j, count_of_class(n, 2, c));
                let (px, py) = if c == 0 {
                    (t.cos(), t.sin())
                } else {
                    (1.0 - t.cos(), 0.5 - t.sin())
                };
                x.push((px + noise * rng.normal()) as f32);
                x.push((py + noise * rng.normal()) as f32);
            }
            (x, class_targets(n, 2, kind))
        }
        SyntheticKind::Spirals => {
            let k = spec.classes.max(1);
            let mut x = Vec::with_capacity(n * 2);
            for i in 0..n {
                let (c, j) = (i % k, i / k);
                let r = spaced(j, count_of_class(n, k, c));
                let theta = 4.0 * r + 2.0 * PI * c as f64 / k as f64;
                x.push((r * theta.sin() + noise * rng.normal()) as f32);
                x.push((r * theta.cos() + noise * rng.normal()) as f32);
            }
            (x, class_targets(n, k, kind))
        }
    };
    let width = match spec.kind {
        SyntheticKind::Moons | SyntheticKind::Spirals => 2,
        SyntheticKind::Blobs | SyntheticKind::Linear => spec.features,
    };
    Ok(Dataset {
        features: Features::Memory(features),
        feature_names: indexed_names("x", width),
        targets,
        origin: Origin::single(format!("synthetic {name}"), RowUnit::Sample),
    })
}

/// Refuses a set whose classes outnumber its samples, or whose values would not fit in the
/// memory budget, before anything is allocated; messages name the spec key.
fn check_size(spec: &SyntheticSpec, role: SourceRole, kind: TargetKind) -> Result<(), DataError> {
    let key = match role {
        SourceRole::Train => "data.train.synthetic",
        SourceRole::Valid => "data.valid.synthetic",
    };
    let (n, f) = (spec.samples as u64, spec.features as u64);
    let k = match spec.kind {
        SyntheticKind::Linear => 1,
        SyntheticKind::Moons => 2,
        SyntheticKind::Blobs | SyntheticKind::Spirals => (spec.classes as u64).max(1),
    };
    if k > n.max(1) {
        return Err(DataError::Invalid(format!(
            "{key}.classes: {k} classes for {n} samples; every class needs at least one sample, so use at most {n} classes or more samples"
        )));
    }
    let f = match spec.kind {
        SyntheticKind::Moons | SyntheticKind::Spirals => 2,
        SyntheticKind::Blobs | SyntheticKind::Linear => f,
    };
    // Features (f32), blob centres (f64), and targets: i64 indices or f32 columns (one-hot
    // for more than two classes).
    let target_width = match (kind, k) {
        (TargetKind::ClassIndex, _) => Some(2),
        (TargetKind::Float, 1 | 2) => Some(1),
        (TargetKind::Float, k) => Some(k),
    };
    let bytes = (|| {
        let features = n.checked_mul(f)?.checked_mul(4)?;
        let centres = k.checked_mul(f)?.checked_mul(8)?;
        let targets = n.checked_mul(target_width?)?.checked_mul(4)?;
        features.checked_add(centres)?.checked_add(targets)
    })();
    crate::check_budget(bytes, || {
        format!("{key}: {n} samples × {f} features with {k} classes")
    })
}

/// The spec's name of a generator.
fn kind_name(kind: SyntheticKind) -> &'static str {
    match kind {
        SyntheticKind::Blobs => "blobs",
        SyntheticKind::Moons => "moons",
        SyntheticKind::Spirals => "spirals",
        SyntheticKind::Linear => "linear",
    }
}

/// How many of `n` interleaved samples belong to class `c` of `k`.
fn count_of_class(n: usize, k: usize, c: usize) -> usize {
    n / k + usize::from(c < n % k)
}

/// The `j`-th of `count` evenly spaced points in `[0, 1]` (0 when there is one).
fn spaced(j: usize, count: usize) -> f64 {
    if count > 1 {
        j as f64 / (count - 1) as f64
    } else {
        0.0
    }
}

/// Class `i mod k` for each sample, as indices or as float columns.
fn class_targets(n: usize, k: usize, kind: TargetKind) -> Targets {
    match kind {
        TargetKind::ClassIndex => Targets::Classes {
            indices: (0..n).map(|i| (i % k) as i64).collect(),
            names: None,
        },
        TargetKind::Float if k == 2 => Targets::Floats {
            values: (0..n).map(|i| (i % 2) as f32).collect(),
            width: 1,
        },
        TargetKind::Float => {
            let mut values = vec![0.0; n * k];
            for i in 0..n {
                values[i * k + i % k] = 1.0;
            }
            Targets::Floats { values, width: k }
        }
    }
}

/// Uniform and standard normal draws from a `ChaCha8Rng` stream.
struct Normal {
    rng: ChaCha8Rng,
    /// The second value of the last Box–Muller pair, not yet used.
    spare: Option<f64>,
}

impl Normal {
    /// The generator for `seed` on `stream`.
    fn new(seed: u64, stream: u64) -> Normal {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SYNTHETIC_DOMAIN);
        rng.set_stream(stream);
        Normal { rng, spare: None }
    }

    /// Uniform in `[0, 1)`, with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw, by the Box–Muller transform.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // 1 - u is in (0, 1], so the logarithm is finite.
        let r = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        let angle = 2.0 * PI * self.uniform();
        self.spare = Some(r * angle.sin());
        r * angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: SyntheticKind, samples: usize, features: usize, classes: usize) -> SyntheticSpec {
        SyntheticSpec {
            kind,
            samples,
            features,
            classes,
            noise: 0.0,
        }
    }

    #[test]
    fn normal_draws_have_zero_mean_and_unit_variance() {
        let mut g = Normal::new(3, 0);
        let n = 20_000;
        let draws: Vec<f64> = (0..n).map(|_| g.normal()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.04, "{var}");
    }

    #[test]
    fn noiseless_moons_lie_on_their_half_circles() {
        let d = generate(
            &spec(SyntheticKind::Moons, 9, 2, 2),
            0,
            SourceRole::Train,
            TargetKind::ClassIndex,
        )
        .unwrap();
        let Targets::Classes { indices, .. } = &d.targets else {
            panic!("classes expected")
        };
        let features = d.features.in_memory().unwrap();
        for (i, p) in features.chunks(2).enumerate() {
            let (x, y) = (f64::from(p[0]), f64::from(p[1]));
            if indices[i] == 0 {
                assert!((x.hypot(y) - 1.0).abs() < 1e-6 && y >= -1e-6, "{p:?}");
            } else {
                assert!(((1.0 - x).hypot(0.5 - y) - 1.0).abs() < 1e-6 && y <= 0.5 + 1e-6);
            }
        }
        // Class 0 (5 samples) runs from t = 0 to t = π.
        assert_eq!(&features[..2], &[1.0, 0.0]);
        assert!((features[16] + 1.0).abs() < 1e-6, "{:?}", &features[16..]);
    }

    #[test]
    fn noiseless_linear_target_is_an_exact_affine_function() {
        let d = generate(
            &spec(SyntheticKind::Linear, 50, 3, 0),
            7,
            SourceRole::Train,
            TargetKind::Float,
        )
        .unwrap();
        let Targets::Floats { values: y, width } = &d.targets else {
            panic!("floats expected")
        };
        assert_eq!(*width, 1);
        // w and b are the first draws of the distribution stream (stream 0).
        let x = |i: usize| -> Vec<f64> {
            d.features.in_memory().unwrap()[i * 3..i * 3 + 3]
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        };
        let mut shape = Normal::new(7, 0);
        let w: Vec<f64> = (0..3).map(|_| shape.normal()).collect();
        let b = shape.normal();
        assert_eq!(y.len(), 50);
        for (i, &yi) in y.iter().enumerate() {
            let pred: f64 = x(i).iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + b;
            assert!((pred - f64::from(yi)).abs() < 1e-4, "{i}: {pred} vs {yi}");
        }
    }
}
