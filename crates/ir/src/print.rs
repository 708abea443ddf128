//! Text and Graphviz DOT printing of a graph, for `graphc graph` and snapshot tests.

use std::fmt::Write;

use crate::{Graph, Op};

impl Graph {
    /// One line per node in topological order, then outputs and assigns:
    /// `%7: f32[16,3] = matmul rhsT(%5, %2)`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let order = self
            .topo_order()
            .unwrap_or_else(|_| self.node_ids().collect());
        for id in order {
            let node = self.node(id);
            let operands: Vec<String> = self.operands(id).iter().map(|o| o.to_string()).collect();
            let _ = write!(out, "{id}: {} = {}", node.ty, node.op);
            if !operands.is_empty() {
                let _ = write!(out, "({})", operands.join(", "));
            }
            out.push('\n');
        }
        for o in self.outputs() {
            let _ = writeln!(out, "output {:?} = {}", o.name, o.node);
        }
        for a in self.assigns() {
            let _ = writeln!(out, "assign {} <- {}", a.target, a.value);
        }
        out
    }

    /// The graph in Graphviz DOT: leaves as boxes, outputs and assigns as extra edges.
    pub fn to_dot(&self) -> String {
        let mut out =
            String::from("digraph graphc {\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n");
        for id in self.node_ids() {
            let node = self.node(id);
            let shape = match node.op {
                Op::Param(_) | Op::State(_) => "box, style=filled, fillcolor=\"#dde8f8\"",
                Op::Input(_) | Op::Hyper(_) => "box, style=filled, fillcolor=\"#e6f4e0\"",
                _ if node.op.is_leaf() => "box",
                _ => "ellipse",
            };
            let label = format!("{id} {}\\n{}", node.op, node.ty).replace('"', "\\\"");
            let _ = writeln!(out, "  n{} [label=\"{label}\", shape={shape}];", id.index());
            for (position, operand) in self.operands(id).iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  n{} -> n{} [label=\"{position}\"];",
                    operand.index(),
                    id.index()
                );
            }
        }
        for (i, o) in self.outputs().iter().enumerate() {
            let _ = writeln!(
                out,
                "  out{i} [label=\"{}\", shape=doubleoctagon];\n  n{} -> out{i};",
                o.name.replace('"', "\\\""),
                o.node.index()
            );
        }
        for a in self.assigns() {
            let _ = writeln!(
                out,
                "  n{} -> n{} [style=dashed, label=\"assign\"];",
                a.value.index(),
                a.target.index()
            );
        }
        out.push_str("}\n");
        out
    }
}
