//! `torch.optim.RMSprop` as an update subgraph (`_single_tensor_rmsprop`).

use graphc_ir::UnaryOp;
use graphc_spec::RmsPropSpec;

use super::{GroupScalar, ParamUpdate};
use crate::NnError;

/// One parameter's RMSprop step, as PyTorch computes it:
///
/// ```text
/// g ← -∇ if maximize else ∇;  g ← g + λ·p        (weight_decay λ ≠ 0)
/// v ← α·v + (1-α)·g·g
/// centered: ḡ ← ḡ.lerp(g, 1-α);  avg ← sqrt(v - ḡ·ḡ) + eps,  else avg ← sqrt(v) + eps
/// momentum μ > 0: b ← μ·b + g / avg;  p ← p - lr·b
/// else:           p ← p - lr·g / avg
/// ```
///
/// `lr` and `μ` are runtime hypers.
pub(super) fn update(u: &mut ParamUpdate<'_>, s: &RmsPropSpec) -> Result<(), NnError> {
    let shape = u.shape();
    let p = u.param();
    let g = u.grad_with_decay(s.maximize, s.weight_decay)?;
    let square_avg = u.state("square_avg", &shape);
    let kept = u.mul_const(square_avg, s.alpha)?;
    let w = u.constant(1.0 - s.alpha, &shape);
    let new_sq = u.addcmul(kept, w, g, g)?;
    u.assign(square_avg, new_sq)?;
    let avg = if s.centered {
        let grad_avg = u.state("grad_avg", &shape);
        let new_grad_avg = u.lerp_const(grad_avg, g, 1.0 - s.alpha)?;
        u.assign(grad_avg, new_grad_avg)?;
        // `square_avg.addcmul(grad_avg, grad_avg, value=-1)`.
        let minus_one = u.constant(-1.0, &shape);
        let variance = u.addcmul(new_sq, minus_one, new_grad_avg, new_grad_avg)?;
        u.unary(UnaryOp::Sqrt, variance)?
    } else {
        u.unary(UnaryOp::Sqrt, new_sq)?
    };
    let avg = u.add_const(avg, s.eps)?;
    let lr = u.lr();
    let new_p = if s.momentum > 0.0 {
        let buf = u.state("momentum_buffer", &shape);
        let momentum = u.scalar(GroupScalar::Momentum);
        let kept = u.mul(buf, momentum)?;
        let scaled = u.div(g, avg)?;
        let new_buf = u.add(kept, scaled)?;
        u.assign(buf, new_buf)?;
        let delta = u.mul(lr, new_buf)?;
        u.sub(p, delta)?
    } else {
        let neg_lr = u.unary(UnaryOp::Neg, lr)?;
        u.addcdiv(p, neg_lr, g, avg)?
    };
    u.assign(p, new_p)
}
