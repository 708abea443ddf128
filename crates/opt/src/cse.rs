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

#[cfg(test)]
mod tests {
    use graphc_ir::{AxisWindows, BinaryOp, TensorType, Window, WindowAxis};

    use super::*;

    fn window(stride: usize) -> Window {
        let axis = WindowAxis {
            input: 6,
            output: 6_usize.div_ceil(stride),
            windows: AxisWindows::Strided {
                kernel: 1,
                stride,
                dilation: 1,
                pad_lo: 0,
            },
        };
        Window { axes: vec![axis] }
    }

    /// Windowed ops merge only when the window, the groups and the operands
    /// in order all agree: a convolution's or max pooling's operands play
    /// different parts.
    #[test]
    fn windowed_ops_merge_only_with_the_same_window_groups_and_operands() {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[1, 2, 6]));
        let v = g.input("v", TensorType::f32(&[1, 2, 6]));
        let w = g.param("w", &[2, 2, 1]);
        let w_grouped = g.param("w_grouped", &[2, 1, 1]);
        let c = g.conv(x, w, &window(1), 1).unwrap();
        let same = g.conv(x, w, &window(1), 1).unwrap();
        let strided = g.conv(x, w, &window(2), 1).unwrap();
        let grouped = g.conv(x, w_grouped, &window(1), 2).unwrap();
        let p = g.max_pool_at(x, v, &window(1)).unwrap();
        let same_pool = g.max_pool_at(x, v, &window(1)).unwrap();
        let swapped = g.max_pool_at(v, x, &window(1)).unwrap();
        let nodes = [c, same, strided, grouped, p, same_pool, swapped];
        for (i, &n) in nodes.iter().enumerate() {
            g.add_output(&format!("o{i}"), n);
        }
        eliminate_common_subexpressions(&mut g).unwrap();
        let outputs: Vec<NodeId> = g.outputs().iter().map(|o| o.node).collect();
        // Which of two equal nodes survives follows the topological order.
        assert_eq!(outputs[0], outputs[1], "equal convolutions merge");
        assert_eq!(outputs[4], outputs[5], "equal max pools merge");
        let distinct = [outputs[0], strided, grouped, outputs[4], swapped];
        for (i, a) in distinct.iter().enumerate() {
            assert!(!distinct[i + 1..].contains(a), "{distinct:?} must differ");
        }
        assert!([c, same].contains(&outputs[0]) && [p, same_pool].contains(&outputs[4]));
    }

    /// The operand of output `name` after the pass (an `add` of two draws).
    fn draws_of(g: &Graph, name: &str) -> Vec<NodeId> {
        let sum = g.outputs()[g.output_index(name).unwrap()].node;
        g.operands(sum)
    }

    #[test]
    fn random_draws_merge_only_when_seed_stream_shape_and_step_agree() {
        let mut g = Graph::new();
        let step = g.input("step", TensorType::i64(&[]));
        let other_step = g.input("other_step", TensorType::i64(&[]));
        let pairs = [
            ("same", (step, 1, 0), (step, 1, 0)),
            ("stream", (step, 1, 0), (step, 1, 1)),
            ("seed", (step, 1, 0), (step, 2, 0)),
            ("step", (step, 1, 0), (other_step, 1, 0)),
        ];
        for (name, (s1, seed1, stream1), (s2, seed2, stream2)) in pairs {
            let a = g.random_uniform(s1, seed1, stream1, &[8]).unwrap();
            let b = g.random_uniform(s2, seed2, stream2, &[8]).unwrap();
            let sum = g.binary(BinaryOp::Add, a, b).unwrap();
            g.add_output(name, sum);
        }
        eliminate_common_subexpressions(&mut g).unwrap();
        g.verify().unwrap();
        let same = draws_of(&g, "same");
        assert_eq!(same[0], same[1], "equal draws give equal bits: one node");
        for name in ["stream", "seed", "step"] {
            let d = draws_of(&g, name);
            assert_ne!(d[0], d[1], "draws differing in {name} must stay apart");
        }
    }
}
