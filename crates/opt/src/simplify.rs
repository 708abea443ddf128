//! Algebraic simplification of identities that hold bit for bit in IEEE f32:
//! `x * 1`, `x / 1`, `x + (-0)`... are `x`; `-(-x)` is `x`; a broadcast or
//! reshape of a `Fill` is a `Fill` of the new shape; and relu's gradient mask
//! after a max pooling's gradient is taken on the pooled values before it
//! ([`mask_before_pool_grad`]).

use graphc_ir::{BinaryOp, CompareOp, Graph, IrError, NodeId, Op, UnaryOp};

/// Rewrites the identities above; unused nodes are left for DCE.
pub fn simplify(graph: &mut Graph) -> Result<(), IrError> {
    for n in graph.topo_order()? {
        let replacement = match rewrite(graph, n)? {
            Some(r) => Some(r),
            None => mask_before_pool_grad(graph, n)?,
        };
        if let Some(replacement) = replacement {
            graph.replace_uses(n, replacement);
        }
    }
    Ok(())
}

/// `select(a ≤ 0, 0, max_pool_grad(a, dy))` — relu's gradient (its mask read
/// from `a`, the relu's result) after the gradient of `p = max_pool(a)` — is
/// `max_pool_grad(a, select(p ≤ 0, 0, dy))`, bit for bit, when `p` is in the
/// graph: an element of `a` receives gradient only as some window's argmax,
/// where `p` holds its value, so both forms mask the same terms; a masked
/// term is `+0` either way (the select's literal, or `0 + (+0)` scattered onto
/// the zeroed gradient), and an unmasked one is the same chain of additions.
/// The mask then runs over the pooled tensor, and the full-size gradient is
/// the pooling's result itself: no pass reads `a` and writes the masked
/// gradient again (issue 12: pooling fused with the elementwise backward).
fn mask_before_pool_grad(graph: &mut Graph, n: NodeId) -> Result<Option<NodeId>, IrError> {
    let is_zero = |graph: &Graph, v: NodeId| {
        fill_value(graph, v).is_some_and(|c| c.to_bits() == 0.0f32.to_bits())
    };
    if !matches!(graph.node(n).op, Op::Select) {
        return Ok(None);
    }
    let [mask, zero, g] = graph.operands(n)[..] else {
        return Ok(None);
    };
    if !matches!(graph.node(mask).op, Op::Compare(CompareOp::Le)) || !is_zero(graph, zero) {
        return Ok(None);
    }
    let [a, mask_zero] = graph.operands(mask)[..] else {
        return Ok(None);
    };
    let Op::MaxPoolGrad(window) = &graph.node(g).op else {
        return Ok(None);
    };
    let window = window.clone();
    let [x, dy] = graph.operands(g)[..] else {
        return Ok(None);
    };
    if x != a || !is_zero(graph, mask_zero) {
        return Ok(None);
    }
    let pooled = graph.users(a).into_iter().find(|&p| {
        matches!(&graph.node(p).op, Op::MaxPool(w) if *w == window) && graph.operands(p) == [a, a]
    });
    let Some(p) = pooled else {
        return Ok(None);
    };
    let shape = graph.shape(p).to_vec();
    let zero = graph.fill(0.0, &shape);
    let off = graph.compare(CompareOp::Le, p, zero)?;
    let masked = graph.select(off, zero, dy)?;
    Ok(Some(graph.max_pool_grad(a, masked, &window)?))
}

fn fill_value(graph: &Graph, n: NodeId) -> Option<f32> {
    match graph.node(n).op {
        Op::Fill(v) => Some(v),
        _ => None,
    }
}

fn rewrite(graph: &mut Graph, n: NodeId) -> Result<Option<NodeId>, IrError> {
    let operands = graph.operands(n);
    let node = graph.node(n).clone();
    let is = |i: usize, value: f32| {
        fill_value(graph, operands[i]).is_some_and(|v| v.to_bits() == value.to_bits())
    };
    Ok(match node.op {
        // x·1 = 1·x = x/1 = x exactly; x - (+0) = x + (-0) = x exactly (also for x = -0).
        Op::Binary(BinaryOp::Mul) if is(1, 1.0) => Some(operands[0]),
        Op::Binary(BinaryOp::Mul) if is(0, 1.0) => Some(operands[1]),
        Op::Binary(BinaryOp::Div) if is(1, 1.0) => Some(operands[0]),
        Op::Binary(BinaryOp::Sub) if is(1, 0.0) => Some(operands[0]),
        Op::Binary(BinaryOp::Add) if is(1, -0.0) => Some(operands[0]),
        Op::Binary(BinaryOp::Add) if is(0, -0.0) => Some(operands[1]),
        Op::Unary(UnaryOp::Neg)
            if matches!(graph.node(operands[0]).op, Op::Unary(UnaryOp::Neg)) =>
        {
            Some(graph.operands(operands[0])[0])
        }
        Op::Broadcast(_) | Op::Reshape(_) => match fill_value(graph, operands[0]) {
            Some(v) => Some(graph.fill(v, &node.ty.shape)),
            None => None,
        },
        _ => None,
    })
}
