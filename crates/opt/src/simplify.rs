//! Algebraic simplification of identities that hold bit for bit in IEEE f32:
//! `x * 1`, `x / 1`, `x + (-0)`... are `x`; `-(-x)` is `x`; a broadcast or
//! reshape of a `Fill` is a `Fill` of the new shape.

use graphc_ir::{BinaryOp, Graph, IrError, NodeId, Op, UnaryOp};

/// Rewrites the identities above; unused nodes are left for DCE.
pub fn simplify(graph: &mut Graph) -> Result<(), IrError> {
    for n in graph.topo_order()? {
        if let Some(replacement) = rewrite(graph, n)? {
            graph.replace_uses(n, replacement);
        }
    }
    Ok(())
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
