//! `torch.optim.NAdam` as an update subgraph (`_single_tensor_nadam`), and its momentum
//! cache schedule.

use graphc_ir::UnaryOp;
use graphc_spec::{NAdamSpec, OptimizerKind};

use super::{GroupScalar, ParamUpdate};
use crate::NnError;

/// NAdam's momentum cache `μ_t = β1 (1 - ½ · 0.96^(t · ψ))` (ψ the momentum_decay), in f64
/// as PyTorch's Python code computes it; 0 for other optimizers.
pub(super) fn mu(kind: &OptimizerKind, t: f64) -> f64 {
    match kind {
        OptimizerKind::NAdam(s) => s.betas.0 * (1.0 - 0.5 * 0.96f64.powf(t * s.momentum_decay)),
        OptimizerKind::Sgd(_)
        | OptimizerKind::Adam(_)
        | OptimizerKind::AdamW(_)
        | OptimizerKind::RmsProp(_)
        | OptimizerKind::Adagrad(_)
        | OptimizerKind::Adadelta(_)
        | OptimizerKind::Adamax(_)
        | OptimizerKind::RAdam(_) => 0.0,
    }
}

/// One parameter's NAdam step, as PyTorch computes it (`t` the step):
///
/// ```text
/// g ← -∇ if maximize else ∇
/// p ← p·(1 - lr·λ) if decoupled_weight_decay, else g ← g + λ·p
/// Π ← Π·μ_t                                     (mu_product, starts at 1)
/// m ← m.lerp(g, 1-β1);  v ← β2·v + (1-β2)·g·g
/// denom ← sqrt(v / (1-β2^t)) + eps
/// p ← p + (-lr (1-μ_t) / (1-Π))·g / denom
/// p ← p + (-lr μ_{t+1} / (1-Π·μ_{t+1}))·m / denom
/// ```
///
/// `μ_t`, `μ_{t+1}`, the numerators and the betas are runtime hypers computed on the host in
/// f64; `Π` is the f32 state PyTorch keeps, so the two quotients are taken in f32.
pub(super) fn update(u: &mut ParamUpdate<'_>, s: &NAdamSpec) -> Result<(), NnError> {
    let param = u.param();
    let (p, g) = u.param_and_grad(s.maximize, s.weight_decay, s.decoupled_weight_decay)?;
    let mu_product = u.state("mu_product", &[]);
    let mu = u.scalar(GroupScalar::NadamMu);
    let new_mu_product = u.mul(mu_product, mu)?;
    u.assign(mu_product, new_mu_product)?;

    let (new_avg, new_avg_sq) = u.adam_moments(g)?;

    let correction = u.scalar(GroupScalar::BiasCorrection2);
    let denom = u.div(new_avg_sq, correction)?;
    let denom = u.unary(UnaryOp::Sqrt, denom)?;
    let denom = u.add_const(denom, s.eps)?;

    let grad_scale = u.scalar(GroupScalar::NadamGradScale);
    let rest = u.rsub_const(1.0, new_mu_product)?;
    let grad_value = u.div(grad_scale, rest)?;
    let p = u.addcdiv(p, grad_value, g, denom)?;

    let mu_next = u.scalar(GroupScalar::NadamMuNext);
    let avg_scale = u.scalar(GroupScalar::NadamAvgScale);
    let product_next = u.mul(new_mu_product, mu_next)?;
    let rest_next = u.rsub_const(1.0, product_next)?;
    let avg_value = u.div(avg_scale, rest_next)?;
    let new_p = u.addcdiv(p, avg_value, new_avg, denom)?;
    u.assign(param, new_p)
}
