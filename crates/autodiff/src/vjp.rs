//! The vector-Jacobian rule of every primitive: one exhaustive `match` on `Op`.
//! Each arm states its math in one line.

use graphc_ir::{BinaryOp, CompareOp, Graph, IrError, NodeId, Op, ReduceOp, UnaryOp};

/// The adjoint a product's backward products take: rounded to bf16 when both of the
/// product's operands are (a `train.precision: bf16` product), as autocast's backward
/// multiplies a bf16 gradient, so the input and weight gradients are bf16 products too.
fn bf16_adjoint(graph: &mut Graph, operands: &[NodeId], g: NodeId) -> Result<NodeId, IrError> {
    let rounded = |n: NodeId| matches!(graph.node(n).op, Op::Unary(UnaryOp::RoundBf16));
    if operands.iter().all(|&n| rounded(n)) {
        graph.unary(UnaryOp::RoundBf16, g)
    } else {
        Ok(g)
    }
}

/// Given the adjoint `g` of `node`'s output, returns the contribution to the
/// adjoint of each operand (`None` where the operand is not `wanted` or has
/// no gradient, such as a comparison's operands or class indices).
pub fn vjp(
    graph: &mut Graph,
    node: NodeId,
    operands: &[NodeId],
    g: NodeId,
    wanted: &[bool],
) -> Result<Vec<Option<NodeId>>, IrError> {
    use BinaryOp::{Div, Mul, Sub};
    let op = graph.node(node).op.clone();
    let shape = graph.shape(node).to_vec();
    let y = node;
    let x = |i: usize| operands[i];
    let mut out: Vec<Option<NodeId>> = vec![None; operands.len()];
    match op {
        Op::Input(_)
        | Op::Param(_)
        | Op::State(_)
        | Op::Hyper(_)
        | Op::Fill(_)
        | Op::Constant(_) => {}
        Op::Unary(u) => {
            out[0] = Some(match u {
                // d(-x) = -1
                UnaryOp::Neg => graph.unary(UnaryOp::Neg, g)?,
                // d(e^x) = e^x = y
                UnaryOp::Exp => graph.binary(Mul, g, y)?,
                // d(ln x) = 1/x
                UnaryOp::Log => graph.binary(Div, g, x(0))?,
                // d ln(1+x) = 1/(1+x)
                UnaryOp::Log1p => {
                    let one = graph.fill(1.0, &shape);
                    let one_plus = graph.binary(BinaryOp::Add, one, x(0))?;
                    graph.binary(Div, g, one_plus)?
                }
                // d(sqrt x) = 1/(2 y)
                UnaryOp::Sqrt => {
                    let two_y = scaled(graph, y, 2.0)?;
                    graph.binary(Div, g, two_y)?
                }
                // d|x| = sign(x), 0 at 0 as in PyTorch
                UnaryOp::Abs => {
                    let zero = graph.fill(0.0, &shape);
                    let pos = graph.compare(CompareOp::Gt, x(0), zero)?;
                    let neg = graph.compare(CompareOp::Lt, x(0), zero)?;
                    let sign = graph.binary(Sub, pos, neg)?;
                    graph.binary(Mul, g, sign)?
                }
                // d(tanh x) = 1 - y²
                UnaryOp::Tanh => {
                    let one = graph.fill(1.0, &shape);
                    let y2 = graph.binary(Mul, y, y)?;
                    let d = graph.binary(Sub, one, y2)?;
                    graph.binary(Mul, g, d)?
                }
                // d(sigmoid x) = y (1 - y)
                UnaryOp::Sigmoid => {
                    let one = graph.fill(1.0, &shape);
                    let one_minus = graph.binary(Sub, one, y)?;
                    let d = graph.binary(Mul, y, one_minus)?;
                    graph.binary(Mul, g, d)?
                }
                // d(sin x) = cos x
                UnaryOp::Sin => {
                    let cos = graph.unary(UnaryOp::Cos, x(0))?;
                    graph.binary(Mul, g, cos)?
                }
                // d(cos x) = -sin x
                UnaryOp::Cos => {
                    let sin = graph.unary(UnaryOp::Sin, x(0))?;
                    let minus_sin = graph.unary(UnaryOp::Neg, sin)?;
                    graph.binary(Mul, g, minus_sin)?
                }
                // d relu = 1 where y > 0 or y is NaN, 0 where y <= 0 (torch's threshold_backward
                // on the result: 0 at x = ±0 and below)
                UnaryOp::Relu => {
                    let zero = graph.fill(0.0, &shape);
                    let off = graph.compare(CompareOp::Le, y, zero)?;
                    graph.select(off, zero, g)?
                }
                // stop_gradient passes values only: no gradient
                UnaryOp::StopGradient => return Ok(out),
                // bf16 rounding passes the gradient straight through (autocast's cast)
                UnaryOp::RoundBf16 => g,
            });
        }
        Op::Binary(b) => {
            let (a, c) = (x(0), x(1));
            let (da, dc) = match b {
                // d(a+c) = (1, 1)
                BinaryOp::Add => (g, g),
                // d(a-c) = (1, -1)
                BinaryOp::Sub => (g, graph.unary(UnaryOp::Neg, g)?),
                // d(a*c) = (c, a)
                BinaryOp::Mul => (graph.binary(Mul, g, c)?, graph.binary(Mul, g, a)?),
                // d(a/c) = (1/c, -y/c)
                BinaryOp::Div => {
                    let da = graph.binary(Div, g, c)?;
                    let gy = graph.binary(Mul, g, y)?;
                    let gy_c = graph.binary(Div, gy, c)?;
                    (da, graph.unary(UnaryOp::Neg, gy_c)?)
                }
                // d max(a,c) = (0 if a<c, 0 if c<a), g/2 each on ties, g to both at NaN (torch.maximum)
                BinaryOp::Max => winner_split(graph, g, a, c, CompareOp::Lt, &shape)?,
                // d min(a,c) = (0 if a>c, 0 if c>a), g/2 each on ties, g to both at NaN (torch.minimum)
                BinaryOp::Min => winner_split(graph, g, a, c, CompareOp::Gt, &shape)?,
            };
            out[0] = Some(da);
            out[1] = Some(dc);
        }
        // a comparison is piecewise constant: no gradient
        Op::Compare(_) => {}
        // d select(m, a, b) = (0, m, 1-m)
        Op::Select => {
            let zero = graph.fill(0.0, &shape);
            out[1] = Some(graph.select(x(0), g, zero)?);
            out[2] = Some(graph.select(x(0), zero, g)?);
        }
        Op::Reduce { op, axes } => {
            let from = graph.shape(x(0)).to_vec();
            out[0] = Some(match op {
                // d sum(x) = 1 for every summed element
                ReduceOp::Sum => graph.broadcast_to(g, &from)?,
                // d max(x) = 1/count at the maxima (ties split evenly as torch.amax does)
                ReduceOp::Max => {
                    let y_b = graph.broadcast_to(y, &from)?;
                    let is_max = graph.compare(CompareOp::Eq, x(0), y_b)?;
                    let count = graph.reduce(ReduceOp::Sum, is_max, &axes)?;
                    let share = graph.binary(Div, g, count)?;
                    let share_b = graph.broadcast_to(share, &from)?;
                    graph.binary(Mul, share_b, is_max)?
                }
            });
        }
        // d broadcast(x) = sum over the repeated axes
        Op::Broadcast(to) => {
            let from = graph.shape(x(0)).to_vec();
            let axes: Vec<usize> = (0..to.len()).filter(|&i| from[i] != to[i]).collect();
            out[0] = Some(graph.reduce(ReduceOp::Sum, g, &axes)?);
        }
        // y = Σ_ranks x: every rank's loss term reads y, so the adjoint of this rank's x is
        // the sum of every rank's adjoint of y: dx = Σ_ranks g (alone, g itself)
        Op::SumRanks => out[0] = Some(graph.sum_ranks(g)?),
        // d reshape(x) = reshape back
        Op::Reshape(_) => {
            let from = graph.shape(x(0)).to_vec();
            out[0] = Some(graph.reshape(g, &from)?);
        }
        // d transpose(x, p) = transpose(g, p⁻¹)
        Op::Transpose(perm) => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            out[0] = Some(graph.transpose(g, &inverse)?);
        }
        // C = op(A)·op(B): d op(A) = G·op(B)ᵀ, d op(B) = op(A)ᵀ·G, transposed back where A or B was
        // (G in bf16 when A and B are)
        Op::MatMul {
            transpose_lhs: ta,
            transpose_rhs: tb,
        } => {
            let (a, b) = (x(0), x(1));
            let g = bf16_adjoint(graph, operands, g)?;
            if wanted[0] {
                out[0] = Some(if ta {
                    graph.matmul(b, g, tb, true)?
                } else {
                    graph.matmul(g, b, false, !tb)?
                });
            }
            if wanted[1] {
                out[1] = Some(if tb {
                    graph.matmul(g, a, true, ta)?
                } else {
                    graph.matmul(a, g, !ta, false)?
                });
            }
        }
        // class indices are integers: no gradient
        Op::OneHot(_) => {}
        // y = conv(x, w): dx = conv_input_grad(g, w), dw = conv_weight_grad(x, g) (g in bf16
        // when x and w are)
        Op::Conv { window, groups } => {
            let (x, w) = (x(0), x(1));
            let g = bf16_adjoint(graph, operands, g)?;
            if wanted[0] {
                out[0] = Some(graph.conv_input_grad(g, w, &window, groups)?);
            }
            if wanted[1] {
                out[1] = Some(graph.conv_weight_grad(x, g, &window, groups)?);
            }
        }
        // dx = conv_input_grad(dy, w), linear in each: d(dy) = conv(g, w), dw = conv_weight_grad(g, dy)
        Op::ConvInputGrad { window, groups } => {
            let (dy, w) = (x(0), x(1));
            if wanted[0] {
                out[0] = Some(graph.conv(g, w, &window, groups)?);
            }
            if wanted[1] {
                out[1] = Some(graph.conv_weight_grad(g, dy, &window, groups)?);
            }
        }
        // dw = conv_weight_grad(x, dy), linear in each: dx = conv_input_grad(dy, g), d(dy) = conv(x, g)
        Op::ConvWeightGrad { window, groups } => {
            let (x, dy) = (x(0), x(1));
            if wanted[0] {
                out[0] = Some(graph.conv_input_grad(dy, g, &window, groups)?);
            }
            if wanted[1] {
                out[1] = Some(graph.conv(x, g, &window, groups)?);
            }
        }
        // y = v at x's argmax: the argmax is piecewise constant in x (no dx), dv = max_pool_grad(x, g)
        Op::MaxPool(window) => {
            if wanted[1] {
                out[1] = Some(graph.max_pool_grad(x(0), g, &window)?);
            }
        }
        // dx = dy scattered to x's argmax: piecewise constant in x (no dx), d(dy) = max_pool(x, g)
        Op::MaxPoolGrad(window) => {
            if wanted[1] {
                out[1] = Some(graph.max_pool_at(x(0), g, &window)?);
            }
        }
        // random values depend on no float operand (the step is an integer): d/dstep = 0
        Op::RandomUniform { .. } => {}
    }
    for (slot, &w) in out.iter_mut().zip(wanted) {
        if !w {
            *slot = None;
        }
    }
    Ok(out)
}

fn scaled(graph: &mut Graph, x: NodeId, factor: f32) -> Result<NodeId, IrError> {
    let shape = graph.shape(x).to_vec();
    let f = graph.fill(factor, &shape);
    graph.binary(BinaryOp::Mul, x, f)
}

/// The gradients of an elementwise max or min, as torch.maximum's and torch.minimum's
/// backward formulas give them: `where(a == c, g / 2, g)`, then exactly 0 for the operand that
/// `loses` (`a < c` for max), as `masked_fill` sets it (so an infinite or NaN `g` gives 0
/// there, not NaN). Where either operand is NaN nothing loses or ties, so both get `g`.
fn winner_split(
    graph: &mut Graph,
    g: NodeId,
    a: NodeId,
    c: NodeId,
    loses: CompareOp,
    shape: &[usize],
) -> Result<(NodeId, NodeId), IrError> {
    let zero = graph.fill(0.0, shape);
    let half = graph.fill(0.5, shape);
    // g · 0.5 is g / 2 bit for bit: halving is exact or rounds the same either way.
    let half_g = graph.binary(BinaryOp::Mul, g, half)?;
    let tie = graph.compare(CompareOp::Eq, a, c)?;
    let shared = graph.select(tie, half_g, g)?;
    let a_loses = graph.compare(loses, a, c)?;
    let c_loses = graph.compare(loses, c, a)?;
    Ok((
        graph.select(a_loses, zero, shared)?,
        graph.select(c_loses, zero, shared)?,
    ))
}
