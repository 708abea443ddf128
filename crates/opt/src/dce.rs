//! Dead code elimination: drop nodes that no output or assign depends on.

use graphc_ir::{Graph, IrError};

/// Removes every node that no output or assign reaches; arguments stay so the
/// step's calling convention never changes, and persistent leaves (parameters,
/// buffers) stay so the model's state holds every tensor its `state_dict` names,
/// even one nothing reads (a frozen layer of a node the output does not use).
pub fn eliminate_dead_code(graph: &mut Graph) -> Result<(), IrError> {
    let mut live = vec![false; graph.id_bound()];
    let mut stack: Vec<_> = graph.outputs().iter().map(|o| o.node).collect();
    for a in graph.assigns() {
        stack.push(a.value);
        stack.push(a.target);
    }
    stack.extend_from_slice(graph.arguments());
    stack.extend(graph.persistent());
    while let Some(n) = stack.pop() {
        if !std::mem::replace(&mut live[n.index()], true) {
            stack.extend(graph.operands(n));
        }
    }
    // Remove users before their operands so each removal sees an unused node.
    let order = graph.topo_order()?;
    for n in order.into_iter().rev() {
        if !live[n.index()] {
            graph.remove_unused(n)?;
        }
    }
    Ok(())
}
