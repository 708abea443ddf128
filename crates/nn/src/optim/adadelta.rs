//! `torch.optim.Adadelta` as an update subgraph (`_single_tensor_adadelta`).

use graphc_ir::UnaryOp;
use graphc_spec::AdadeltaSpec;

use super::ParamUpdate;
use crate::NnError;

/// One parameter's Adadelta step, as PyTorch computes it:
///
/// ```text
/// g ← -∇ if maximize else ∇;  g ← g + λ·p         (weight_decay λ ≠ 0)
/// v ← ρ·v + (1-ρ)·g·g
/// Δ ← sqrt(u + eps) / sqrt(v + eps) · g
/// u ← ρ·u + (1-ρ)·Δ·Δ
/// p ← p - lr·Δ
/// ```
///
/// `lr` is a runtime hyper.
pub(super) fn update(u: &mut ParamUpdate<'_>, s: &AdadeltaSpec) -> Result<(), NnError> {
    let shape = u.shape();
    let p = u.param();
    let g = u.grad_with_decay(s.maximize, s.weight_decay)?;
    let square_avg = u.state("square_avg", &shape);
    let acc_delta = u.state("acc_delta", &shape);
    let w = u.constant(1.0 - s.rho, &shape);
    let kept = u.mul_const(square_avg, s.rho)?;
    let new_sq = u.addcmul(kept, w, g, g)?;
    u.assign(square_avg, new_sq)?;
    let std = u.add_const(new_sq, s.eps)?;
    let std = u.unary(UnaryOp::Sqrt, std)?;
    let delta = u.add_const(acc_delta, s.eps)?;
    let delta = u.unary(UnaryOp::Sqrt, delta)?;
    // `delta.div_(std).mul_(grad)`.
    let delta = u.div(delta, std)?;
    let delta = u.mul(delta, g)?;
    let kept = u.mul_const(acc_delta, s.rho)?;
    let new_acc = u.addcmul(kept, w, delta, delta)?;
    u.assign(acc_delta, new_acc)?;
    let lr = u.lr();
    let step = u.mul(lr, delta)?;
    let new_p = u.sub(p, step)?;
    u.assign(p, new_p)
}
