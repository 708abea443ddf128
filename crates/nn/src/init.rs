//! PyTorch's default parameter init, drawn from the spec's seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ParamInfo;

/// Initial values for `params` as `nn.Linear.reset_parameters` draws them:
/// weight from `kaiming_uniform_(a=√5)`, which is U(±1/√fan_in), and bias from
/// U(±1/√fan_in). The bits differ from PyTorch's (another generator); the
/// distribution is the same. Parameters are drawn in order from one stream.
pub fn default_init(params: &[ParamInfo], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    params
        .iter()
        .map(|p| {
            let bound = if p.fan_in > 0 {
                1.0 / (p.fan_in as f64).sqrt()
            } else {
                0.0
            };
            let n: usize = p.shape.iter().product();
            (0..n)
                .map(|_| (rng.random::<f64>() * 2.0 - 1.0) * bound)
                .map(|v| v as f32)
                .collect()
        })
        .collect()
}
