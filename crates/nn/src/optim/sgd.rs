//! `torch.optim.SGD` as an update subgraph (`_single_tensor_sgd`).

use graphc_ir::CompareOp;
use graphc_spec::SgdSpec;

use super::{GroupScalar, Hyper, ParamUpdate};
use crate::NnError;

/// One parameter's SGD step, as PyTorch computes it:
///
/// ```text
/// g ← -∇ if maximize else ∇;  g ← g + λ·p              (weight_decay λ ≠ 0)
/// if μ ≠ 0:  b ← g on the first step, else μ·b + (1-τ)·g   (momentum μ, dampening τ)
///            g ← g + μ·b if nesterov else b
/// p ← p - lr·g
/// ```
///
/// `lr` and `μ` are runtime hypers; the first step is `step == 1`.
pub(super) fn update(u: &mut ParamUpdate<'_>, s: &SgdSpec) -> Result<(), NnError> {
    let p = u.param();
    let mut g = u.grad_with_decay(s.maximize, s.weight_decay)?;
    if s.momentum != 0.0 {
        let shape = u.shape();
        let buf = u.state("momentum_buffer", &shape);
        let momentum = u.scalar(GroupScalar::Momentum);
        let kept = u.mul(buf, momentum)?;
        // `buf.mul_(momentum).add_(grad, alpha=1 - dampening)`; alpha 1 adds g itself.
        let added = if s.dampening == 0.0 {
            g
        } else {
            u.mul_const(g, 1.0 - s.dampening)?
        };
        let accumulated = u.add(kept, added)?;
        let step = u.hyper(Hyper::Step);
        let one = u.constant(1.0, &[]);
        let first = u.graph.compare(CompareOp::Eq, step, one)?;
        let first = u.full(first)?;
        let new_buf = u.graph.select(first, g, accumulated)?;
        u.assign(buf, new_buf)?;
        g = if s.nesterov {
            // `grad.add(buf, alpha=momentum)`.
            let ahead = u.mul(momentum, new_buf)?;
            u.add(g, ahead)?
        } else {
            new_buf
        };
    }
    let lr = u.lr();
    let delta = u.mul(lr, g)?;
    let new_p = u.sub(p, delta)?;
    u.assign(p, new_p)
}
