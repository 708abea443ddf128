//! What happens to the gradients between backward and the optimizer, inside the step graph:
//! accumulation over several batches (PyTorch's `.grad` summing between `zero_grad` calls)
//! and `torch.nn.utils.clip_grad_value_` / `clip_grad_norm_`.
//!
//! With `train.accumulate: k > 1` every parameter gets a persistent buffer `NAME.grad`.
//! An accumulating step adds the batch's gradients to it; the updating step adds them too,
//! clips the sums, updates, and zeroes the buffers. The sums are formed in PyTorch's order
//! (`((g1 + g2) + g3)`, starting from an exact `0 + g1`).

use graphc_ir::{BinaryOp, Graph, NodeId, ReduceOp, UnaryOp};
use graphc_spec::{ClipGradNorm, TrainSpec};

use crate::{NnError, ParamInfo};

/// The name of a parameter's gradient accumulation buffer: `0.weight.grad`.
pub fn accumulator_name(param: &str) -> String {
    format!("{param}.grad")
}

/// The accumulation buffers (name, shape) a spec's steps keep, one per trainable parameter
/// (a frozen one has no gradient); empty when `accumulate` is 1.
pub fn accumulators(train: &TrainSpec, params: &[ParamInfo]) -> Vec<(String, Vec<usize>)> {
    if train.accumulate <= 1 {
        return Vec::new();
    }
    accumulators_always(params)
}

/// The accumulation buffers of data-parallel training, which every rank keeps whatever
/// `accumulate` is: the gradients summed over ranks go through them.
pub(crate) fn accumulators_always(params: &[ParamInfo]) -> Vec<(String, Vec<usize>)> {
    params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| (accumulator_name(&p.name), p.shape.clone()))
        .collect()
}

/// Adds every gradient (one per trainable parameter of `params`, in order) to its
/// accumulation buffer: the buffers' new values, and the buffer nodes (to assign to).
pub(crate) fn add_to_accumulators(
    graph: &mut Graph,
    params: &[ParamInfo],
    grads: &[NodeId],
) -> Result<(Vec<NodeId>, Vec<NodeId>), NnError> {
    let mut sums = Vec::with_capacity(grads.len());
    let mut buffers = Vec::with_capacity(grads.len());
    for (p, &g) in params.iter().filter(|p| p.trainable).zip(grads) {
        let acc = graph.state(&accumulator_name(&p.name), &p.shape);
        sums.push(graph.binary(BinaryOp::Add, acc, g)?);
        buffers.push(acc);
    }
    Ok((sums, buffers))
}

/// The accumulating step's ending: each buffer takes its new sum.
pub(crate) fn keep_sums(
    graph: &mut Graph,
    buffers: &[NodeId],
    sums: &[NodeId],
) -> Result<(), NnError> {
    for (&acc, &sum) in buffers.iter().zip(sums) {
        graph.add_assign(acc, sum)?;
    }
    Ok(())
}

/// The updating step's ending: every buffer back to zero (`zero_grad`).
pub(crate) fn zero_accumulators(graph: &mut Graph, buffers: &[NodeId]) -> Result<(), NnError> {
    for &acc in buffers {
        let shape = graph.shape(acc).to_vec();
        let zero = graph.fill(0.0, &shape);
        graph.add_assign(acc, zero)?;
    }
    Ok(())
}

/// The gradients after `clip_grad_value_` and then `clip_grad_norm_`, as `train` asks.
pub(crate) fn clip(
    graph: &mut Graph,
    train: &TrainSpec,
    grads: Vec<NodeId>,
) -> Result<Vec<NodeId>, NnError> {
    let mut grads = grads;
    if let Some(value) = train.clip_grad_value {
        grads = grads
            .into_iter()
            .map(|g| clip_value(graph, g, value))
            .collect::<Result<_, _>>()?;
    }
    if let Some(norm) = &train.clip_grad_norm {
        grads = clip_norm(graph, norm, grads)?;
    }
    Ok(grads)
}

/// `torch.clamp(g, -value, value)`.
fn clip_value(graph: &mut Graph, g: NodeId, value: f64) -> Result<NodeId, NnError> {
    let shape = graph.shape(g).to_vec();
    let high = graph.fill(value as f32, &shape);
    let low = graph.fill(-value as f32, &shape);
    let below = graph.binary(BinaryOp::Min, g, high)?;
    Ok(graph.binary(BinaryOp::Max, below, low)?)
}

/// `clip_grad_norm_`: the p-norm of the per-tensor p-norms, `coef = max_norm / (total +
/// 1e-6)` clamped to at most 1, every gradient times `coef` (also when it is 1).
fn clip_norm(
    graph: &mut Graph,
    norm: &ClipGradNorm,
    grads: Vec<NodeId>,
) -> Result<Vec<NodeId>, NnError> {
    let p = norm.norm_type;
    let norms = grads
        .iter()
        .map(|&g| tensor_norm(graph, g, p))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(total) = vector_norm(graph, &norms, p)? else {
        return Ok(grads);
    };
    let eps = graph.fill(1e-6, &[]);
    let denominator = graph.binary(BinaryOp::Add, total, eps)?;
    let max_norm = graph.fill(norm.max_norm as f32, &[]);
    let coef = graph.binary(BinaryOp::Div, max_norm, denominator)?;
    let one = graph.fill(1.0, &[]);
    let coef = graph.binary(BinaryOp::Min, coef, one)?;
    grads
        .into_iter()
        .map(|g| {
            let shape = graph.shape(g).to_vec();
            let c = graph.broadcast_to(coef, &shape)?;
            Ok(graph.binary(BinaryOp::Mul, g, c)?)
        })
        .collect()
}

/// `torch.linalg.vector_norm(g, p)` of one tensor, as a `[]` scalar.
fn tensor_norm(graph: &mut Graph, g: NodeId, p: f64) -> Result<NodeId, NnError> {
    let abs = graph.unary(UnaryOp::Abs, g)?;
    if p == f64::INFINITY {
        let rank = graph.shape(abs).len();
        let axes: Vec<usize> = (0..rank).collect();
        let max = if rank == 0 {
            abs
        } else {
            graph.reduce(ReduceOp::Max, abs, &axes)?
        };
        return Ok(graph.reshape(max, &[])?);
    }
    if p == 1.0 {
        return Ok(graph.sum_all(abs)?);
    }
    if p == 2.0 {
        let squares = graph.binary(BinaryOp::Mul, g, g)?;
        let sum = graph.sum_all(squares)?;
        return Ok(graph.unary(UnaryOp::Sqrt, sum)?);
    }
    let powers = pow(graph, abs, p)?;
    let sum = graph.sum_all(powers)?;
    pow(graph, sum, 1.0 / p)
}

/// The p-norm of scalar norms (PyTorch's `vector_norm(stack(norms), p)`); `None` without any.
fn vector_norm(graph: &mut Graph, norms: &[NodeId], p: f64) -> Result<Option<NodeId>, NnError> {
    let Some((&first, rest)) = norms.split_first() else {
        return Ok(None);
    };
    // Norms are >= 0, so |n| = n.
    let term = |graph: &mut Graph, n: NodeId| -> Result<NodeId, NnError> {
        if p == f64::INFINITY || p == 1.0 {
            Ok(n)
        } else if p == 2.0 {
            Ok(graph.binary(BinaryOp::Mul, n, n)?)
        } else {
            pow(graph, n, p)
        }
    };
    let combine = if p == f64::INFINITY {
        BinaryOp::Max
    } else {
        BinaryOp::Add
    };
    let mut acc = term(graph, first)?;
    for &n in rest {
        let t = term(graph, n)?;
        acc = graph.binary(combine, acc, t)?;
    }
    Ok(Some(if p == f64::INFINITY || p == 1.0 {
        acc
    } else if p == 2.0 {
        graph.unary(UnaryOp::Sqrt, acc)?
    } else {
        pow(graph, acc, 1.0 / p)?
    }))
}

/// `x^e` for `x >= 0` as `exp(e · ln x)` (0 stays 0 for `e > 0`).
fn pow(graph: &mut Graph, x: NodeId, e: f64) -> Result<NodeId, NnError> {
    let shape = graph.shape(x).to_vec();
    let log = graph.unary(UnaryOp::Log, x)?;
    let factor = graph.fill(e as f32, &shape);
    let scaled = graph.binary(BinaryOp::Mul, log, factor)?;
    Ok(graph.unary(UnaryOp::Exp, scaled)?)
}
