//! `evaluate`: one exhaustive `match` on `Op`, each arm a plain loop.

use std::collections::HashMap;

use crate::windowed;
use graphc_ir::{
    random, BinaryOp, CompareOp, DType, Graph, IrError, NodeId, Op, ReduceOp, TensorType, UnaryOp,
};

/// The float types the interpreter computes in: f32 to train, f64 to check gradients.
pub trait Scalar: num_traits::Float + std::fmt::Debug + Send + Sync + 'static {
    /// Converts an f32 literal.
    fn from_f32(v: f32) -> Self;
    /// The value rounded to bfloat16 ([`graphc_ir::round_bf16`]); an f64 is first rounded
    /// to f32 (finite-difference checks only).
    fn round_bf16(self) -> Self;
}

impl Scalar for f32 {
    fn from_f32(v: f32) -> f32 {
        v
    }
    fn round_bf16(self) -> f32 {
        graphc_ir::round_bf16(self)
    }
}

impl Scalar for f64 {
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
    fn round_bf16(self) -> f64 {
        // Rounding f64 → f32 → bf16 twice can differ from one rounding by one bf16 step in
        // rare ties; only the f64 gradient checks evaluate in f64.
        f64::from(graphc_ir::round_bf16(self as f32))
    }
}

/// A node's value: floats, or i64 class indices.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<T> {
    /// Float data, row-major.
    F(Vec<T>),
    /// Integer data, row-major.
    I(Vec<i64>),
}

impl<T> Value<T> {
    /// The float data; the graph's verified types guarantee it is there.
    pub fn as_f(&self) -> &Vec<T> {
        match self {
            Value::F(v) => v,
            Value::I(_) => panic!("verified graph: expected a float value"),
        }
    }
}

/// Runs `graph` once and returns every node's value, indexed by `NodeId::index`.
/// `order` is a topological order of the graph; `args` binds `Graph::arguments()`
/// in order; `persistent` holds the `Param` and `State` values by name. One process:
/// `Op::SumRanks` is its operand.
pub fn evaluate<T: Scalar>(
    graph: &Graph,
    order: &[NodeId],
    args: &[Value<T>],
    persistent: &HashMap<String, Vec<T>>,
) -> Result<Vec<Value<T>>, IrError> {
    evaluate_summing(graph, order, args, persistent, &mut |_| {})
}

/// [`evaluate`] in a data-parallel run: each `Op::SumRanks`, in `order`, hands a copy of its
/// operand to `sum_ranks`, which replaces the values with their sums over the ranks.
pub fn evaluate_summing<T: Scalar>(
    graph: &Graph,
    order: &[NodeId],
    args: &[Value<T>],
    persistent: &HashMap<String, Vec<T>>,
    sum_ranks: &mut dyn FnMut(&mut [T]),
) -> Result<Vec<Value<T>>, IrError> {
    let arguments = graph.arguments();
    if args.len() != arguments.len() {
        return Err(IrError::Argument(format!(
            "the graph takes {} arguments, got {}",
            arguments.len(),
            args.len()
        )));
    }
    let mut values: Vec<Value<T>> = vec![Value::F(Vec::new()); graph.id_bound()];
    for (&id, arg) in arguments.iter().zip(args) {
        values[id.index()] = check_argument(graph, id, arg)?;
    }
    for &id in order {
        let node = graph.node(id);
        let operands = graph.operands(id);
        let x = |i: usize| values[operands[i].index()].as_f();
        let ty = |i: usize| &graph.node(operands[i]).ty;
        let value = match &node.op {
            Op::Input(_) | Op::Hyper(_) => continue,
            Op::Param(name) | Op::State(name) => match persistent.get(name) {
                Some(v) if v.len() == node.ty.numel() => Value::F(v.clone()),
                _ => return Err(IrError::Argument(format!("no value for {name:?}"))),
            },
            Op::Fill(v) => Value::F(vec![T::from_f32(*v); node.ty.numel()]),
            Op::Constant(data) => Value::F(data.iter().map(|&v| T::from_f32(v)).collect()),
            Op::Unary(u) => Value::F(x(0).iter().map(|&a| unary(*u, a)).collect()),
            Op::Binary(b) => Value::F(zip(x(0), x(1), |p, q| binary(*b, p, q))),
            Op::Compare(c) => Value::F(zip(x(0), x(1), |p, q| mask(compare(*c, p, q)))),
            Op::Select => {
                let (m, a, b) = (x(0), x(1), x(2));
                Value::F(
                    (0..m.len())
                        .map(|i| if m[i] != T::zero() { a[i] } else { b[i] })
                        .collect(),
                )
            }
            Op::Reduce { op, axes } => Value::F(reduce(*op, x(0), ty(0), axes, &node.ty)),
            Op::Broadcast(_) => Value::F(broadcast(x(0), ty(0), &node.ty)),
            Op::Reshape(_) => values[operands[0].index()].clone(),
            Op::Transpose(perm) => Value::F(transpose(x(0), ty(0), perm)),
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            } => Value::F(matmul(
                x(0),
                ty(0),
                *transpose_lhs,
                x(1),
                ty(1),
                *transpose_rhs,
            )),
            Op::OneHot(classes) => match &values[operands[0].index()] {
                Value::I(indices) => Value::F(one_hot(indices, *classes)),
                Value::F(_) => return Err(IrError::Argument("one_hot of floats".into())),
            },
            Op::Conv { window, groups } => {
                Value::F(windowed::conv(x(0), ty(0), x(1), ty(1), window, *groups))
            }
            Op::ConvInputGrad { window, groups } => Value::F(windowed::conv_input_grad(
                x(0),
                x(1),
                ty(1),
                &node.ty,
                window,
                *groups,
            )),
            Op::ConvWeightGrad { window, groups } => Value::F(windowed::conv_weight_grad(
                x(0),
                x(1),
                &node.ty,
                ty(0),
                window,
                *groups,
            )),
            Op::MaxPool(window) => Value::F(windowed::max_pool(x(0), x(1), ty(0), window)),
            Op::MaxPoolGrad(window) => Value::F(windowed::max_pool_grad(x(0), x(1), ty(0), window)),
            Op::SumRanks => {
                let mut sums = x(0).clone();
                if !sums.is_empty() {
                    sum_ranks(&mut sums);
                }
                Value::F(sums)
            }
            Op::RandomUniform { seed, stream, .. } => match &values[operands[0].index()] {
                Value::I(step) => {
                    let first = step
                        .get(1)
                        .map_or(0, |&row| random::first_element(row, &node.ty.shape));
                    Value::F(random_uniform(
                        *seed,
                        *stream,
                        step[0],
                        first,
                        node.ty.numel(),
                    ))
                }
                Value::F(_) => {
                    return Err(IrError::Argument("random_uniform of a float step".into()))
                }
            },
        };
        values[id.index()] = value;
    }
    Ok(values)
}

/// `len` uniform values in [0, 1) of stream `stream` at step `step` from global
/// element `first` on: element `i` is word `g % 4` of Philox block `g / 4`, for
/// `g = first + i` (not wrapped; the block mod 2^32: `graphc_ir::random`). The
/// step's i64 is read as its two's-complement u64, so every step is distinct.
fn random_uniform<T: Scalar>(seed: u64, stream: u32, step: i64, first: u64, len: usize) -> Vec<T> {
    let per_block = random::ELEMENTS_PER_BLOCK as u64;
    // `g` in two parts, so that `first + i` cannot wrap: its block and its word.
    let (first_block, first_word) = (first / per_block, first % per_block);
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        let word = first_word + i as u64;
        // The block word wraps mod 2^32 by definition (the type rule keeps a draw
        // without a first row below it).
        let block = (first_block + word / per_block) as u32;
        let words = random::random_uniform_block(seed, stream, step as u64, block);
        out.push(T::from_f32(words[(word % per_block) as usize]));
    }
    out
}

fn check_argument<T: Scalar>(
    graph: &Graph,
    id: NodeId,
    arg: &Value<T>,
) -> Result<Value<T>, IrError> {
    let node = graph.node(id);
    let name = node.op.leaf_name().unwrap_or_default();
    let (len, dtype) = match arg {
        Value::F(v) => (v.len(), DType::F32),
        Value::I(v) => (v.len(), DType::I64),
    };
    if dtype != node.ty.dtype || len != node.ty.numel() {
        return Err(IrError::Argument(format!(
            "{name:?} takes {}, got {len} {dtype} values",
            node.ty
        )));
    }
    Ok(arg.clone())
}

fn zip<T: Scalar>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> Vec<T> {
    a.iter().zip(b).map(|(&p, &q)| f(p, q)).collect()
}

fn mask<T: Scalar>(b: bool) -> T {
    if b {
        T::one()
    } else {
        T::zero()
    }
}

fn unary<T: Scalar>(u: UnaryOp, a: T) -> T {
    match u {
        UnaryOp::Neg => -a,
        UnaryOp::Exp => a.exp(),
        UnaryOp::Log => a.ln(),
        UnaryOp::Log1p => a.ln_1p(),
        UnaryOp::Sqrt => a.sqrt(),
        UnaryOp::Abs => a.abs(),
        UnaryOp::Tanh => a.tanh(),
        UnaryOp::Sigmoid => T::one() / (T::one() + (-a).exp()),
        UnaryOp::Sin => a.sin(),
        UnaryOp::Cos => a.cos(),
        UnaryOp::Relu => {
            if a < T::zero() {
                T::zero()
            } else {
                a
            }
        }
        UnaryOp::StopGradient => a,
        UnaryOp::RoundBf16 => a.round_bf16(),
    }
}

fn binary<T: Scalar>(b: BinaryOp, p: T, q: T) -> T {
    // max and min propagate NaN, as torch.maximum and torch.minimum do, and
    // order the zeros as IEEE 754's maximum/minimum: max(+0, -0) = +0.
    let pick = |p_wins: bool| {
        if p.is_nan() || q.is_nan() {
            T::nan()
        } else if p_wins {
            p
        } else {
            q
        }
    };
    let zeros_tie = p == q && p.is_zero();
    match b {
        BinaryOp::Add => p + q,
        BinaryOp::Sub => p - q,
        BinaryOp::Mul => p * q,
        BinaryOp::Div => p / q,
        BinaryOp::Max if zeros_tie => pick(p.is_sign_positive()),
        BinaryOp::Min if zeros_tie => pick(p.is_sign_negative()),
        BinaryOp::Max => pick(p > q),
        BinaryOp::Min => pick(p < q),
    }
}

fn compare<T: Scalar>(c: CompareOp, p: T, q: T) -> bool {
    match c {
        CompareOp::Lt => p < q,
        CompareOp::Le => p <= q,
        CompareOp::Gt => p > q,
        CompareOp::Ge => p >= q,
        CompareOp::Eq => p == q,
        CompareOp::Ne => p != q,
    }
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Flat index into `to` (same rank) of the element at flat index `i` of
/// `from`, where axes of size 1 in `to` collapse to coordinate 0.
fn collapse(i: usize, from: &[usize], to_strides: &[usize], to: &[usize]) -> usize {
    let mut rest = i;
    let mut j = 0;
    for axis in (0..from.len()).rev() {
        let coord = rest % from[axis];
        rest /= from[axis];
        if to[axis] != 1 {
            j += coord * to_strides[axis];
        }
    }
    j
}

fn reduce<T: Scalar>(
    op: ReduceOp,
    x: &[T],
    from: &TensorType,
    _axes: &[usize],
    to: &TensorType,
) -> Vec<T> {
    let init = match op {
        ReduceOp::Sum => T::zero(),
        ReduceOp::Max => T::neg_infinity(),
    };
    let mut out = vec![init; to.numel()];
    let to_strides = strides(&to.shape);
    for (i, &v) in x.iter().enumerate() {
        let j = collapse(i, &from.shape, &to_strides, &to.shape);
        out[j] = match op {
            ReduceOp::Sum => out[j] + v,
            // BinaryOp::Max's semantics (NaN wins, +0 above -0), so the order of the
            // elements does not matter; `f32::max` leaves the sign of equal zeros open.
            ReduceOp::Max => binary(BinaryOp::Max, out[j], v),
        };
    }
    out
}

fn broadcast<T: Scalar>(x: &[T], from: &TensorType, to: &TensorType) -> Vec<T> {
    let from_strides = strides(&from.shape);
    (0..to.numel())
        .map(|i| x[collapse(i, &to.shape, &from_strides, &from.shape)])
        .collect()
}

fn transpose<T: Scalar>(x: &[T], from: &TensorType, perm: &[usize]) -> Vec<T> {
    let from_strides = strides(&from.shape);
    let shape: Vec<usize> = perm.iter().map(|&p| from.shape[p]).collect();
    (0..x.len())
        .map(|i| {
            let mut rest = i;
            let mut j = 0;
            for axis in (0..shape.len()).rev() {
                j += (rest % shape[axis]) * from_strides[perm[axis]];
                rest /= shape[axis];
            }
            x[j]
        })
        .collect()
}

/// `op(a) · op(b)`, where `op` transposes when asked; an i-k-j loop over
/// row-major copies of the operands.
fn matmul<T: Scalar>(
    a: &[T],
    at: &TensorType,
    ta: bool,
    b: &[T],
    bt: &TensorType,
    tb: bool,
) -> Vec<T> {
    let a = if ta {
        transpose(a, at, &[1, 0])
    } else {
        a.to_vec()
    };
    let b = if tb {
        transpose(b, bt, &[1, 0])
    } else {
        b.to_vec()
    };
    let (m, k) = if ta {
        (at.shape[1], at.shape[0])
    } else {
        (at.shape[0], at.shape[1])
    };
    let n = if tb { bt.shape[0] } else { bt.shape[1] };
    let mut out = vec![T::zero(); m * n];
    for i in 0..m {
        for p in 0..k {
            let aip = a[i * k + p];
            let row = &b[p * n..(p + 1) * n];
            for (o, &bv) in out[i * n..(i + 1) * n].iter_mut().zip(row) {
                *o = *o + aip * bv;
            }
        }
    }
    out
}

fn one_hot<T: Scalar>(indices: &[i64], classes: usize) -> Vec<T> {
    let mut out = vec![T::zero(); indices.len() * classes];
    for (row, &c) in indices.iter().enumerate() {
        if let Ok(c) = usize::try_from(c) {
            if c < classes {
                out[row * classes + c] = T::one();
            }
        }
    }
    out
}
