//! `torch.optim.Adamax` as an update subgraph (`_single_tensor_adamax`).

use graphc_ir::UnaryOp;
use graphc_spec::AdamaxSpec;

use super::{GroupScalar, ParamUpdate};
use crate::NnError;

/// One parameter's Adamax step, as PyTorch computes it (`t` the step):
///
/// ```text
/// g ← -∇ if maximize else ∇;  g ← g + λ·p        (weight_decay λ ≠ 0)
/// m ← m.lerp(g, 1-β1)
/// u ← max(β2·u, |g| + eps)
/// p ← p - (lr / (1-β1^t))·m / u
/// ```
///
/// The betas and `lr / (1-β1^t)` are runtime hypers computed on the host in f64.
pub(super) fn update(u: &mut ParamUpdate<'_>, s: &AdamaxSpec) -> Result<(), NnError> {
    let shape = u.shape();
    let p = u.param();
    let g = u.grad_with_decay(s.maximize, s.weight_decay)?;
    let exp_avg = u.state("exp_avg", &shape);
    let exp_inf = u.state("exp_inf", &shape);
    let w1 = u.scalar(GroupScalar::OneMinusBeta1);
    let new_avg = u.lerp(exp_avg, g, w1)?;
    u.assign(exp_avg, new_avg)?;
    let beta2 = u.scalar(GroupScalar::Beta2);
    let decayed = u.mul(exp_inf, beta2)?;
    let magnitude = u.unary(UnaryOp::Abs, g)?;
    let magnitude = u.add_const(magnitude, s.eps)?;
    let new_inf = u.max(decayed, magnitude)?;
    u.assign(exp_inf, new_inf)?;
    let clr = u.scalar(GroupScalar::StepSize);
    let neg_clr = u.unary(UnaryOp::Neg, clr)?;
    let new_p = u.addcdiv(p, neg_clr, new_avg, new_inf)?;
    u.assign(p, new_p)
}
