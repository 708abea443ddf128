//! Gives every user of a broadcast its own copy of it.
//!
//! A broadcast costs nothing inside the kernel that reads it (a stride of 0), but fusion
//! puts a node in one kernel: when two kernels read the same broadcast — the forward pass
//! and its gradient both read batch norm's per-channel scale repeated over a whole
//! activation — the broadcast becomes a full-size tensor in memory, written by one kernel
//! and kept alive for the other. A copy per user keeps each read a view. CSE would merge the
//! copies again, so this runs after it, last.

use graphc_ir::{Graph, IrError, Op};

/// Splits every broadcast read by several nodes into one broadcast per reader.
pub fn unshare_broadcasts(graph: &mut Graph) -> Result<(), IrError> {
    let shared: Vec<_> = graph
        .node_ids()
        .filter(|&v| matches!(graph.node(v).op, Op::Broadcast(_)))
        .collect();
    for v in shared {
        let mut users = graph.users(v);
        users.sort_unstable();
        users.dedup();
        let op = graph.node(v).op.clone();
        let operand = graph.operands(v)[0];
        for &user in users.iter().skip(1) {
            let copy = graph.add(op.clone(), &[operand])?;
            graph.replace_use(user, v, copy);
        }
    }
    Ok(())
}
