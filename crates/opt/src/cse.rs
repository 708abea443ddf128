//! Common-subexpression elimination: one node per distinct (op, operands).

use std::collections::HashMap;

use graphc_ir::{Graph, IrError, NodeId, Op, TensorType};

/// Merges nodes that compute the same op on the same operands with the same
/// type. Named leaves are never merged: each is its own storage.
pub fn eliminate_common_subexpressions(graph: &mut Graph) -> Result<(), IrError> {
    let mut seen: HashMap<String, NodeId> = HashMap::new();
    for n in graph.topo_order()? {
        let node = graph.node(n);
        if node.op.leaf_name().is_some() {
            continue;
        }
        let key = key(&node.op, &node.ty, &graph.operands(n));
        match seen.get(&key) {
            Some(&existing) => graph.replace_uses(n, existing),
            None => {
                seen.insert(key, n);
            }
        }
    }
    Ok(())
}

/// A structural key: the op with its attributes (floats by their bits), the type, the operands.
fn key(op: &Op, ty: &TensorType, operands: &[NodeId]) -> String {
    let attributes = match op {
        Op::Fill(v) => format!("fill {:08x}", v.to_bits()),
        Op::Constant(data) => {
            let bits: Vec<u32> = data.iter().map(|v| v.to_bits()).collect();
            format!("constant {bits:?}")
        }
        other => format!("{other:?}"),
    };
    format!("{attributes} {ty} {operands:?}")
}
