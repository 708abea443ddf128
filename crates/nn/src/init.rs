//! Parameter init drawn from the spec's seed: PyTorch's default init of every layer, then
//! each layer's `init:` schemes (`torch.nn.init`), with PyTorch's fans and gains.

use std::f64::consts::{PI, SQRT_2};

use graphc_spec::{FanMode, InitScheme, Kaiming, Nonlinearity};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{DefaultInit, ParamInfo};

/// Initial values for `params` (or buffers). First PyTorch's `reset_parameters` for every
/// tensor, in order, from one stream: `nn.Linear`'s and `nn.ConvNd`'s weight from
/// `kaiming_uniform_(a=√5)`, which is U(±1/√fan_in), and bias from U(±1/√fan_in); a batch
/// norm's ones and zeros; `nn.PReLU`'s `init`; `nn.Embedding`'s N(0, 1) with its
/// `padding_idx` row zeroed. Then, continuing the stream, every tensor with
/// an `init:` scheme is drawn again from it, as a PyTorch user re-initialises a constructed
/// module: a scheme on one tensor leaves every other tensor's values as they were. The bits
/// of the draws differ from PyTorch's (another generator); the distributions are the same.
///
/// Schemes must fit their tensors ([`check_scheme`], which `describe_model` runs).
pub fn default_init(params: &[ParamInfo], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values: Vec<Vec<f32>> = params
        .iter()
        .map(|p| {
            let n: usize = p.shape.iter().product();
            match &p.init {
                DefaultInit::Uniform { fan_in } => {
                    let bound = if *fan_in > 0 {
                        1.0 / (*fan_in as f64).sqrt()
                    } else {
                        0.0
                    };
                    (0..n)
                        .map(|_| (rng.random::<f64>() * 2.0 - 1.0) * bound)
                        .map(|v| v as f32)
                        .collect()
                }
                DefaultInit::Ones => vec![1.0; n],
                DefaultInit::Zeros => vec![0.0; n],
                DefaultInit::Constant(v) => vec![*v; n],
                DefaultInit::Values(v) => v.clone(),
                DefaultInit::StandardNormal { zero_row } => {
                    let mut values: Vec<f32> =
                        (0..n).map(|_| standard_normal(&mut rng) as f32).collect();
                    if let (Some(row), Some(&width)) = (*zero_row, p.shape.last()) {
                        values[row * width..(row + 1) * width].fill(0.0);
                    }
                    values
                }
            }
        })
        .collect();
    for (p, v) in params.iter().zip(&mut values) {
        if let Some(scheme) = &p.scheme {
            *v = draw(scheme, &p.shape, &mut rng).expect("describe_model checked the scheme");
        }
    }
    values
}

/// Refuses a scheme PyTorch would refuse for a tensor of `shape`: `eye` on anything but a
/// 2-d tensor, `orthogonal` and the fan-based schemes on fewer than 2 dimensions.
pub fn check_scheme(scheme: &InitScheme, shape: &[usize]) -> Result<(), String> {
    let name = scheme.init_type().name();
    match scheme {
        InitScheme::Uniform { .. }
        | InitScheme::Normal { .. }
        | InitScheme::TruncNormal { .. }
        | InitScheme::Constant { .. }
        | InitScheme::Zeros
        | InitScheme::Ones => Ok(()),
        InitScheme::Eye if shape.len() == 2 => Ok(()),
        InitScheme::Eye => Err(format!("{name} needs a 2-d tensor, as PyTorch's eye_")),
        InitScheme::Orthogonal { .. } if shape.len() >= 2 => Ok(()),
        InitScheme::Orthogonal { .. } => Err(format!(
            "{name} needs a tensor of 2 or more dimensions, as PyTorch's orthogonal_"
        )),
        InitScheme::XavierUniform { .. }
        | InitScheme::XavierNormal { .. }
        | InitScheme::KaimingUniform(_)
        | InitScheme::KaimingNormal(_) => {
            fans(shape).map(|_| ()).map_err(|m| format!("{name}: {m}"))
        }
    }
}

/// `torch.nn.init._calculate_fan_in_and_fan_out`: `(fan_in, fan_out)` of a weight
/// `[out, in, *kernel]` is `(in · receptive field, out · receptive field)`, the receptive
/// field the product of the kernel's sizes (1 for a 2-d tensor).
pub fn fans(shape: &[usize]) -> Result<(usize, usize), String> {
    let [fan_out_maps, fan_in_maps, kernel @ ..] = shape else {
        return Err(
            "fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions"
                .to_owned(),
        );
    };
    let too_large = || format!("a tensor of shape {shape:?} is too large");
    let receptive = kernel
        .iter()
        .try_fold(1usize, |n, &k| n.checked_mul(k))
        .ok_or_else(too_large)?;
    let fan_in = fan_in_maps.checked_mul(receptive).ok_or_else(too_large)?;
    let fan_out = fan_out_maps.checked_mul(receptive).ok_or_else(too_large)?;
    Ok((fan_in, fan_out))
}

/// `torch.nn.init.calculate_gain(nonlinearity, param)`: 1 for the linear and convolution
/// functions and sigmoid, 5/3 for tanh, √2 for relu, √(2/(1 + slope²)) for leaky_relu (slope
/// `param`, PyTorch's 0.01 when absent), 3/4 for selu.
pub fn calculate_gain(nonlinearity: Nonlinearity, param: Option<f64>) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear
        | Nonlinearity::Conv1d
        | Nonlinearity::Conv2d
        | Nonlinearity::Conv3d
        | Nonlinearity::ConvTranspose1d
        | Nonlinearity::ConvTranspose2d
        | Nonlinearity::ConvTranspose3d
        | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2.0f64.sqrt(),
        Nonlinearity::LeakyRelu => {
            let slope = param.unwrap_or(0.01);
            (2.0 / (1.0 + slope * slope)).sqrt()
        }
        Nonlinearity::Selu => 3.0 / 4.0,
    }
}

/// The standard deviation of a Kaiming scheme on a tensor with fans `fans`:
/// `gain / √fan`, the fan `mode` picks.
pub fn kaiming_std(k: &Kaiming, fans: (usize, usize)) -> f64 {
    let fan = match k.mode {
        FanMode::FanIn => fans.0,
        FanMode::FanOut => fans.1,
    };
    calculate_gain(k.nonlinearity, Some(k.a)) / (fan as f64).sqrt()
}

/// The standard deviation of a Xavier scheme: `gain · √(2 / (fan_in + fan_out))`.
pub fn xavier_std(gain: f64, fans: (usize, usize)) -> f64 {
    gain * (2.0 / (fans.0 as f64 + fans.1 as f64)).sqrt()
}

/// A tensor of `shape` drawn with `scheme` from `rng`, in row-major order.
fn draw(scheme: &InitScheme, shape: &[usize], rng: &mut ChaCha8Rng) -> Result<Vec<f32>, String> {
    check_scheme(scheme, shape)?;
    let n: usize = shape.iter().product();
    let uniform = |rng: &mut ChaCha8Rng, a: f64, b: f64| -> Vec<f32> {
        (0..n)
            .map(|_| (a + (b - a) * rng.random::<f64>()) as f32)
            .collect()
    };
    let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| -> Vec<f32> {
        (0..n)
            .map(|_| (mean + std * standard_normal(rng)) as f32)
            .collect()
    };
    // √3 · std bounds a uniform distribution of standard deviation std.
    let sqrt3 = 3.0f64.sqrt();
    Ok(match scheme {
        InitScheme::Uniform { a, b } => uniform(rng, *a, *b),
        InitScheme::Normal { mean, std } => normal(rng, *mean, *std),
        InitScheme::TruncNormal { mean, std, a, b } => trunc_normal(rng, n, *mean, *std, (*a, *b)),
        InitScheme::Constant { val } => vec![*val as f32; n],
        InitScheme::Zeros => vec![0.0; n],
        InitScheme::Ones => vec![1.0; n],
        InitScheme::Eye => {
            let cols = shape[1];
            (0..n)
                .map(|i| f32::from(u8::from(i / cols == i % cols)))
                .collect()
        }
        InitScheme::XavierUniform { gain } => {
            let bound = sqrt3 * xavier_std(*gain, fans(shape)?);
            uniform(rng, -bound, bound)
        }
        InitScheme::XavierNormal { gain } => normal(rng, 0.0, xavier_std(*gain, fans(shape)?)),
        InitScheme::KaimingUniform(k) => {
            let bound = sqrt3 * kaiming_std(k, fans(shape)?);
            uniform(rng, -bound, bound)
        }
        InitScheme::KaimingNormal(k) => normal(rng, 0.0, kaiming_std(k, fans(shape)?)),
        InitScheme::Orthogonal { gain } => orthogonal(rng, shape[0], n / shape[0], *gain),
    })
}

/// One draw of N(0, 1) from `rng` by the Box–Muller transform: two uniforms, one normal
/// (`√(-2 ln u₁) · cos(2π u₂)`, with `u₁` in (0, 1] so the logarithm is finite).
pub(crate) fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// `trunc_normal_` as PyTorch computes it (the inverse-CDF method): a uniform draw between the
/// normal CDF's values at the cut-offs, mapped back through the inverse CDF
/// (`mean + std·√2·erfinv(2u - 1)`), then clamped to `[a, b]` against rounding.
fn trunc_normal(
    rng: &mut ChaCha8Rng,
    n: usize,
    mean: f64,
    std: f64,
    (a, b): (f64, f64),
) -> Vec<f32> {
    let cdf = |x: f64| (1.0 + libm::erf(x / SQRT_2)) / 2.0;
    let (low, high) = (
        2.0 * cdf((a - mean) / std) - 1.0,
        2.0 * cdf((b - mean) / std) - 1.0,
    );
    (0..n)
        .map(|_| {
            let u = low + (high - low) * rng.random::<f64>();
            (mean + std * SQRT_2 * erfinv(u)).clamp(a, b) as f32
        })
        .collect()
}

/// The inverse of erf on (-1, 1) (±∞ at ±1): M. Giles' single-precision approximation
/// ("Approximating the erfinv function", GPU Computing Gems, 2011) refined by Newton
/// steps on `erf(x) - y`, whose derivative is `2/√π · e^(-x²)`, to double precision.
pub(crate) fn erfinv(y: f64) -> f64 {
    if y <= -1.0 {
        return f64::NEG_INFINITY;
    }
    if y >= 1.0 {
        return f64::INFINITY;
    }
    let w = -((1.0 - y) * (1.0 + y)).ln();
    let p = if w < 5.0 {
        let w = w - 2.5;
        [
            2.810_226_36e-8,
            3.432_739_39e-7,
            -3.523_387_7e-6,
            -4.391_506_54e-6,
            2.185_808_7e-4,
            -1.253_725_03e-3,
            -4.177_681_64e-3,
            2.466_407_27e-1,
            1.501_409_41,
        ]
        .iter()
        .fold(0.0, |p, c| c + p * w)
    } else {
        let w = w.sqrt() - 3.0;
        [
            -2.002_142_57e-4,
            1.009_505_58e-4,
            1.349_343_22e-3,
            -3.673_428_44e-3,
            5.739_507_73e-3,
            -7.622_461_3e-3,
            9.438_870_47e-3,
            1.001_674_06,
            2.832_976_82,
        ]
        .iter()
        .fold(0.0, |p, c| c + p * w)
    };
    let mut x = p * y;
    for _ in 0..4 {
        let slope = 2.0 / PI.sqrt() * (-x * x).exp();
        if slope == 0.0 {
            break;
        }
        x -= (libm::erf(x) - y) / slope;
    }
    x
}

/// `orthogonal_`: a `rows × cols` matrix of N(0, 1) draws, transposed when it has fewer rows
/// than columns, made orthonormal by a QR decomposition with `R`'s diagonal positive (PyTorch
/// multiplies `Q` by the signs of `R`'s diagonal; modified Gram–Schmidt makes it positive by
/// construction, so both give the same `Q`), transposed back and scaled by `gain`. In `f64`,
/// with a second Gram–Schmidt pass against the loss of orthogonality.
fn orthogonal(rng: &mut ChaCha8Rng, rows: usize, cols: usize, gain: f64) -> Vec<f32> {
    let flat: Vec<f64> = (0..rows * cols).map(|_| standard_normal(rng)).collect();
    // The tall matrix's columns, each a vector of `len`: the draws' columns when rows >= cols,
    // else their rows (the transpose's columns).
    let (len, count) = (rows.max(cols), rows.min(cols));
    let mut q: Vec<Vec<f64>> = (0..count)
        .map(|j| {
            (0..len)
                .map(|i| {
                    if rows >= cols {
                        flat[i * cols + j]
                    } else {
                        flat[j * cols + i]
                    }
                })
                .collect()
        })
        .collect();
    for j in 0..count {
        let (done, rest) = q.split_at_mut(j);
        let v = &mut rest[0];
        for _pass in 0..2 {
            for u in done.iter() {
                let r: f64 = u.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(x, y)| *x -= r * y);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    (0..rows * cols)
        .map(|k| {
            let (i, j) = (k / cols, k % cols);
            let value = if rows >= cols { q[j][i] } else { q[i][j] };
            (gain * value) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfinv_inverts_erf_to_double_precision() {
        for i in -999..=999 {
            let y = f64::from(i) / 1000.0;
            let x = erfinv(y);
            assert!(
                (libm::erf(x) - y).abs() < 1e-15,
                "erf(erfinv({y})) = {}",
                libm::erf(x)
            );
        }
        for y in [1.0 - 1e-12, -1.0 + 1e-15] {
            assert!(
                (libm::erf(erfinv(y)) - y).abs() < 1e-15,
                "{y}: {}",
                libm::erf(erfinv(y)) - y
            );
        }
        assert_eq!(erfinv(1.0), f64::INFINITY);
        assert_eq!(erfinv(-1.0), f64::NEG_INFINITY);
    }
}
