//! `torch.optim.Adagrad` as an update subgraph (`_single_tensor_adagrad`, dense gradients).

use graphc_ir::UnaryOp;
use graphc_spec::AdagradSpec;

use super::{GroupScalar, ParamUpdate};
use crate::NnError;

/// One parameter's Adagrad step, as PyTorch computes it (`t` the step):
///
/// ```text
/// g ← -∇ if maximize else ∇;  g ← g + λ·p       (weight_decay λ ≠ 0)
/// clr ← lr / (1 + (t-1)·lr_decay)
/// s ← s + g·g                                   (s starts at initial_accumulator_value)
/// p ← p - clr·g / (sqrt(s) + eps)
/// ```
///
/// `clr` is a runtime hyper computed on the host in f64.
pub(super) fn update(u: &mut ParamUpdate<'_>, s: &AdagradSpec) -> Result<(), NnError> {
    let shape = u.shape();
    let p = u.param();
    let g = u.grad_with_decay(s.maximize, s.weight_decay)?;
    let sum = u.state("sum", &shape);
    // `state_sum.addcmul_(grad, grad, value=1)`: 1·g is g itself.
    let square = u.mul(g, g)?;
    let new_sum = u.add(sum, square)?;
    u.assign(sum, new_sum)?;
    let root = u.unary(UnaryOp::Sqrt, new_sum)?;
    let std = u.add_const(root, s.eps)?;
    let clr = u.scalar(GroupScalar::AdagradLr);
    let neg_clr = u.unary(UnaryOp::Neg, clr)?;
    let new_p = u.addcdiv(p, neg_clr, g, std)?;
    u.assign(p, new_p)
}
