//! `Graph::verify`: the invariants every pass must preserve.
//!
//! Checked here:
//! - the graph is acyclic;
//! - every node has exactly `arity` operands at positions `0..arity`;
//! - every non-leaf node's type equals `Op::infer` of its operand types;
//! - leaves are consistent: a `Hyper` is an f32 scalar, a `Constant` fills its
//!   shape, `Param`/`State`/`Fill`/`Constant` are f32, named leaves have unique names;
//! - arguments are exactly the `Input` and `Hyper` leaves;
//! - outputs and assigns refer to live nodes; an assign writes a `Param` or
//!   `State` with a value of its type, and no target is written twice.

use std::collections::HashSet;

use crate::{DType, Graph, IrError, NodeId, Op};

fn invalid(node: impl ToString, message: impl Into<String>) -> IrError {
    IrError::Invalid {
        node: node.to_string(),
        message: message.into(),
    }
}

impl Graph {
    /// Checks every invariant listed in this module's header.
    pub fn verify(&self) -> Result<(), IrError> {
        self.topo_order()?;
        let mut names = HashSet::new();
        for id in self.node_ids() {
            self.verify_node(id, &mut names)?;
        }
        let expected_args: Vec<NodeId> = self
            .node_ids()
            .filter(|&n| matches!(self.node(n).op, Op::Input(_) | Op::Hyper(_)))
            .collect();
        let mut args = self.arguments().to_vec();
        args.sort_unstable();
        if args != expected_args {
            return Err(invalid(
                "graph",
                "arguments are not exactly the Input and Hyper leaves",
            ));
        }
        for o in self.outputs() {
            if !self.contains(o.node) {
                return Err(invalid(
                    o.node,
                    format!("output {:?} is not a node", o.name),
                ));
            }
        }
        let mut written = HashSet::new();
        for a in self.assigns() {
            if !self.contains(a.target) || !self.contains(a.value) {
                return Err(invalid(a.target, "assign refers to a removed node"));
            }
            let (t, v) = (self.node(a.target), self.node(a.value));
            if !t.op.is_persistent() || t.ty != v.ty {
                return Err(invalid(
                    a.target,
                    format!("cannot assign {} to {}", v.ty, t.op),
                ));
            }
            if !written.insert(a.target) {
                return Err(invalid(a.target, "assigned twice"));
            }
        }
        Ok(())
    }

    fn verify_node<'a>(&'a self, id: NodeId, names: &mut HashSet<&'a str>) -> Result<(), IrError> {
        let node = self.node(id);
        let mut positions = self.operand_positions(id);
        positions.sort_unstable();
        if positions != (0..node.op.arity() as u32).collect::<Vec<_>>() {
            return Err(invalid(
                id,
                format!(
                    "{} needs operands at positions 0..{}, has {positions:?}",
                    node.op.mnemonic(),
                    node.op.arity()
                ),
            ));
        }
        if let Some(name) = node.op.leaf_name() {
            if !names.insert(name) {
                return Err(invalid(id, format!("leaf name {name:?} used twice")));
            }
        }
        match &node.op {
            Op::Hyper(_) if node.ty.rank() != 0 || node.ty.dtype != DType::F32 => {
                Err(invalid(id, "a hyper must be an f32 scalar"))
            }
            Op::Constant(data) if data.len() != node.ty.numel() => {
                Err(invalid(id, "constant data does not fill its shape"))
            }
            Op::Param(_) | Op::State(_) | Op::Fill(_) | Op::Constant(_)
                if node.ty.dtype != DType::F32 =>
            {
                Err(invalid(id, "must be f32"))
            }
            op if op.is_leaf() => Ok(()),
            op => {
                let operands = self.operands(id);
                let types: Vec<_> = operands.iter().map(|&o| &self.node(o).ty).collect();
                let inferred = op.infer(&types).map_err(|e| invalid(id, e.to_string()))?;
                if inferred != node.ty {
                    return Err(invalid(
                        id,
                        format!("type {} differs from inferred {inferred}", node.ty),
                    ));
                }
                Ok(())
            }
        }
    }
}
