//! An objective spec's model: its `params` as parameter leaves (`x`, 0-d for a scalar) and
//! its expression as IR over them, evaluated as PyTorch evaluates the same expression on
//! float32 tensors. The input is not read; the value is broadcast to one per sample.

use graphc_ir::{BinaryOp, Graph, NodeId, UnaryOp};
use graphc_spec::{BinOp, Expr, Func, ObjectiveSpec};

use crate::{DefaultInit, ModelGraph, NnError, ParamInfo};

/// The largest integer exponent computed by repeated multiplication (as `torch.pow` computes
/// small integer powers exactly, including of negative bases); other exponents go through
/// `exp(b · log(a))`.
const MAX_INTEGER_POWER: f64 = 64.0;

/// Builds `objective` for a batch of `batch` samples: the output is `[batch, 1]`, every row the
/// objective's value.
pub(crate) fn build_objective(
    graph: &mut Graph,
    objective: &ObjectiveSpec,
    batch: usize,
) -> Result<ModelGraph, NnError> {
    let mut params = Vec::with_capacity(objective.params.len());
    for p in &objective.params {
        let shape = p.shape();
        let node = graph.param(&p.name, &shape);
        params.push(ParamInfo {
            name: p.name.clone(),
            shape,
            init: DefaultInit::Values(p.init.clone()),
            scheme: None,
            trainable: true,
            node,
        });
    }
    let leaves: Vec<NodeId> = params.iter().map(|p| p.node).collect();
    let value = emit(graph, &objective.expr, &leaves)?;
    // The spec checked that the value is a scalar.
    let output = graph.broadcast_to(value, &[batch, 1])?;
    Ok(ModelGraph {
        output,
        params,
        buffers: Vec::new(),
        counters: Vec::new(),
        hypers: Vec::new(),
    })
}

/// `e` as a node: a scalar (`[]`) or a vector (`[n]`).
fn emit(graph: &mut Graph, e: &Expr, leaves: &[NodeId]) -> Result<NodeId, NnError> {
    Ok(match e {
        Expr::Num(v) => graph.fill(*v as f32, &[]),
        Expr::Param(i) => leaves[*i],
        Expr::Neg(a) => {
            let a = emit(graph, a, leaves)?;
            graph.unary(UnaryOp::Neg, a)?
        }
        Expr::Bin(op, a, b) => {
            let op = match op {
                BinOp::Add => BinaryOp::Add,
                BinOp::Sub => BinaryOp::Sub,
                BinOp::Mul => BinaryOp::Mul,
                BinOp::Div => BinaryOp::Div,
                BinOp::Pow => return pow(graph, a, b, leaves),
            };
            let a = emit(graph, a, leaves)?;
            let b = emit(graph, b, leaves)?;
            binary(graph, op, a, b)?
        }
        Expr::Call(f, a) => {
            let a = emit(graph, a, leaves)?;
            let mut unary = |u| graph.unary(u, a);
            match f {
                Func::Exp => unary(UnaryOp::Exp)?,
                Func::Log => unary(UnaryOp::Log)?,
                Func::Sqrt => unary(UnaryOp::Sqrt)?,
                Func::Abs => unary(UnaryOp::Abs)?,
                Func::Sin => unary(UnaryOp::Sin)?,
                Func::Cos => unary(UnaryOp::Cos)?,
                Func::Tanh => unary(UnaryOp::Tanh)?,
                Func::Sigmoid => unary(UnaryOp::Sigmoid)?,
                Func::Relu => unary(UnaryOp::Relu)?,
                Func::Sum => graph.sum_all(a)?,
                Func::Mean => {
                    let n = graph.node(a).ty.numel();
                    let sum = graph.sum_all(a)?;
                    let count = graph.fill(n as f32, &[]);
                    graph.binary(BinaryOp::Div, sum, count)?
                }
            }
        }
    })
}

/// `base ^ exponent`.
fn pow(
    graph: &mut Graph,
    base: &Expr,
    exponent: &Expr,
    leaves: &[NodeId],
) -> Result<NodeId, NnError> {
    let a = emit(graph, base, leaves)?;
    if let Some(n) = constant(exponent) {
        return power(graph, a, n);
    }
    // a^b = exp(b · log(a)), as `torch.pow` with a tensor exponent computes it for a positive
    // base (a negative base gives NaN, as in PyTorch).
    let b = emit(graph, exponent, leaves)?;
    let log = graph.unary(UnaryOp::Log, a)?;
    let product = binary(graph, BinaryOp::Mul, b, log)?;
    Ok(graph.unary(UnaryOp::Exp, product)?)
}

/// The value of an exponent written as a number (`2`, `-1`, `0.5`), if it is one.
fn constant(e: &Expr) -> Option<f64> {
    match e {
        Expr::Num(v) => Some(*v),
        Expr::Neg(a) => constant(a).map(|v| -v),
        Expr::Param(_) | Expr::Bin(..) | Expr::Call(..) => None,
    }
}

/// `a^n` for a constant `n`: small integers by multiplication (exact for negative bases, as
/// PyTorch's `pow` special-cases them), `0.5` as `sqrt`, others as `exp(n · log(a))`.
fn power(graph: &mut Graph, a: NodeId, n: f64) -> Result<NodeId, NnError> {
    let shape = graph.shape(a).to_vec();
    if n == 0.0 {
        return Ok(graph.fill(1.0, &shape));
    }
    if n == 0.5 {
        return Ok(graph.unary(UnaryOp::Sqrt, a)?);
    }
    if n.fract() == 0.0 && n.abs() <= MAX_INTEGER_POWER {
        let mut k = n.abs() as u32;
        // Square-and-multiply, lowest bit first.
        let (mut result, mut square) = (None, a);
        loop {
            if k & 1 == 1 {
                result = Some(match result {
                    None => square,
                    Some(r) => graph.binary(BinaryOp::Mul, r, square)?,
                });
            }
            k >>= 1;
            if k == 0 {
                break;
            }
            square = graph.binary(BinaryOp::Mul, square, square)?;
        }
        let result = result.expect("n ≠ 0 has a set bit");
        if n > 0.0 {
            return Ok(result);
        }
        let one = graph.fill(1.0, &shape);
        return Ok(graph.binary(BinaryOp::Div, one, result)?);
    }
    let log = graph.unary(UnaryOp::Log, a)?;
    let scale = graph.fill(n as f32, &shape);
    let product = graph.binary(BinaryOp::Mul, scale, log)?;
    Ok(graph.unary(UnaryOp::Exp, product)?)
}

/// `a op b`, a scalar operand broadcast to the other's vector (shapes were checked when the
/// spec was read).
fn binary(graph: &mut Graph, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, NnError> {
    let (sa, sb) = (graph.shape(a).to_vec(), graph.shape(b).to_vec());
    let (a, b) = if sa.len() < sb.len() {
        (graph.broadcast_to(a, &sb)?, b)
    } else if sb.len() < sa.len() {
        (a, graph.broadcast_to(b, &sa)?)
    } else {
        (a, b)
    };
    Ok(graph.binary(op, a, b)?)
}
