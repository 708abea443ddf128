//! PyTorch's default parameter init, drawn from the spec's seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{DefaultInit, ParamInfo};

/// Initial values for `params` (or buffers) as PyTorch's `reset_parameters` makes them:
/// `nn.Linear`'s and `nn.ConvNd`'s weight from `kaiming_uniform_(a=√5)`, which is
/// U(±1/√fan_in), and bias from U(±1/√fan_in); a batch norm's ones and zeros; `nn.PReLU`'s `init`;
/// `nn.Embedding`'s N(0, 1) with its `padding_idx` row zeroed. The bits of the random draws
/// differ from PyTorch's (another generator); the distributions are the same. Random tensors
/// are drawn in order from one stream.
pub fn default_init(params: &[ParamInfo], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    params
        .iter()
        .map(|p| {
            let n: usize = p.shape.iter().product();
            match p.init {
                DefaultInit::Uniform { fan_in } => {
                    let bound = if fan_in > 0 {
                        1.0 / (fan_in as f64).sqrt()
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
                DefaultInit::Constant(v) => vec![v; n],
                DefaultInit::StandardNormal { zero_row } => {
                    let mut values: Vec<f32> =
                        (0..n).map(|_| standard_normal(&mut rng) as f32).collect();
                    if let (Some(row), Some(&width)) = (zero_row, p.shape.last()) {
                        values[row * width..(row + 1) * width].fill(0.0);
                    }
                    values
                }
            }
        })
        .collect()
}

/// One N(0, 1) draw by the Box–Muller transform, from two uniform draws (`1 - u` keeps the
/// logarithm's argument in (0, 1]).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
