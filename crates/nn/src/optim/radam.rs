//! `torch.optim.RAdam` as an update subgraph (`_single_tensor_radam`), and its variance
//! rectification term.

use graphc_ir::UnaryOp;
use graphc_spec::RAdamSpec;

use super::{GroupScalar, ParamUpdate};
use crate::NnError;

/// RAdam's rectification `r_t` at step `t`, or `None` when `ρ_t <= 5` (no rectification), in
/// f64 with PyTorch's order of operations.
pub(super) fn rect(beta2: f64, t: f64) -> Option<f64> {
    let bias_correction2 = 1.0 - beta2.powf(t);
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let rho_t = rho_inf - 2.0 * t * beta2.powf(t) / bias_correction2;
    (rho_t > 5.0).then(|| {
        ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            .powf(0.5)
    })
}

/// One parameter's RAdam step, as PyTorch computes it (`t` the step):
///
/// ```text
/// g ← -∇ if maximize else ∇
/// p ← p·(1 - lr·λ) if decoupled_weight_decay, else g ← g + λ·p
/// m ← m.lerp(g, 1-β1);  v ← β2·v + (1-β2)·g·g
/// m̂ ← m / (1-β1^t)
/// ρ_t > 5:  p ← p - m̂·lr·(sqrt(1-β2^t) / (sqrt(v) + eps))·r_t
/// else:     p ← p - m̂·lr
/// ```
///
/// The branch, `r_t`, the bias corrections and the betas are runtime hypers computed on the
/// host in f64.
pub(super) fn update(u: &mut ParamUpdate<'_>, s: &RAdamSpec) -> Result<(), NnError> {
    let param = u.param();
    let (p, g) = u.param_and_grad(s.maximize, s.weight_decay, s.decoupled_weight_decay)?;
    let (new_avg, new_avg_sq) = u.adam_moments(g)?;

    let correction1 = u.scalar(GroupScalar::BiasCorrection1);
    let corrected = u.div(new_avg, correction1)?;
    let lr = u.lr();
    let plain = u.mul(corrected, lr)?;
    // `(bias_correction2 ** 0.5) / exp_avg_sq_sqrt` is `reciprocal(x) * c` in PyTorch.
    let root = u.unary(UnaryOp::Sqrt, new_avg_sq)?;
    let root = u.add_const(root, s.eps)?;
    let one = u.constant_like(root, 1.0);
    let inverse = u.div(one, root)?;
    let correction2 = u.scalar(GroupScalar::BiasCorrection2Sqrt);
    let adaptive = u.mul(inverse, correction2)?;
    let rect = u.scalar(GroupScalar::RadamRect);
    let rectified = u.mul(plain, adaptive)?;
    let rectified = u.mul(rectified, rect)?;
    let on = u.scalar(GroupScalar::RadamRectified);
    let half = u.constant(0.5, &[]);
    let on = u.graph.compare(graphc_ir::CompareOp::Gt, on, half)?;
    let on = u.full(on)?;
    let step = u.graph.select(on, rectified, plain)?;
    let new_p = u.sub(p, step)?;
    u.assign(param, new_p)
}
