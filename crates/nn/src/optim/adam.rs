//! `torch.optim.Adam` and `torch.optim.AdamW` as an update subgraph (`_single_tensor_adam`).

use graphc_ir::UnaryOp;
use graphc_spec::AdamSpec;

use super::{GroupScalar, ParamUpdate};
use crate::NnError;

/// One parameter's Adam/AdamW step, as PyTorch computes it (`t` the step):
///
/// ```text
/// g ← -∇ if maximize else ∇
/// p ← p·(1 - lr·λ) if decoupled_weight_decay, else g ← g + λ·p
/// m ← m.lerp(g, 1-β1);  v ← v·β2 + (1-β2)·g·g
/// v̂ ← max(v̂, v) with amsgrad (normalise by v̂ instead of v)
/// denom ← sqrt(v) / sqrt(1-β2^t) + eps
/// p ← p - (lr / (1-β1^t))·m / denom
/// ```
///
/// The step-dependent scalars and the betas are runtime hypers computed on the host in f64.
pub(super) fn update(u: &mut ParamUpdate<'_>, s: &AdamSpec) -> Result<(), NnError> {
    let param = u.param();
    let (p, g) = u.param_and_grad(s.maximize, s.weight_decay, s.decoupled_weight_decay)?;
    let (new_avg, new_avg_sq) = u.adam_moments(g)?;
    let second = if s.amsgrad {
        let max_sq = u.state("max_exp_avg_sq", &u.shape());
        let new_max = u.max(max_sq, new_avg_sq)?;
        u.assign(max_sq, new_max)?;
        new_max
    } else {
        new_avg_sq
    };
    let root = u.unary(UnaryOp::Sqrt, second)?;
    let correction = u.scalar(GroupScalar::BiasCorrection2Sqrt);
    let denom = u.div(root, correction)?;
    let denom = u.add_const(denom, s.eps)?;
    let step_size = u.scalar(GroupScalar::StepSize);
    let neg_step = u.unary(UnaryOp::Neg, step_size)?;
    let new_p = u.addcdiv(p, neg_step, new_avg, denom)?;
    u.assign(param, new_p)
}
