//! `unshare_broadcasts`: a broadcast read by several nodes becomes one broadcast per reader,
//! and the step computes the same bits.

use std::collections::HashMap;

use graphc_autodiff::grad;
use graphc_interp::{evaluate, Value};
use graphc_ir::{BinaryOp, Graph, Op};
use graphc_opt::{optimize, unshare_broadcasts};

/// `y = x · s` with a per-column scale `s` repeated over the rows, and its gradients: the
/// forward product and the gradient of `x` both read the broadcast of `s`.
fn scaled_step() -> Graph {
    let mut g = Graph::new();
    let x = g.param("x", &[4, 3]);
    let s = g.param("s", &[1, 3]);
    let s_rows = g.broadcast(s, &[4, 3]).unwrap();
    let y = g.binary(BinaryOp::Mul, x, s_rows).unwrap();
    let y2 = g.binary(BinaryOp::Mul, y, y).unwrap();
    let loss = g.sum_all(y2).unwrap();
    let grads = grad(&mut g, loss, &[x, s]).unwrap();
    g.add_output("loss", loss);
    g.add_output("dx", grads[0]);
    g.add_output("ds", grads[1]);
    g
}

fn broadcasts_with_readers(g: &Graph) -> Vec<usize> {
    g.node_ids()
        .filter(|&v| matches!(g.node(v).op, Op::Broadcast(_)))
        .map(|v| g.users(v).len())
        .collect()
}

fn run(g: &Graph) -> Vec<Vec<u32>> {
    let persistent: HashMap<String, Vec<f32>> = HashMap::from([
        (
            "x".to_string(),
            (0..12).map(|i| i as f32 * 0.25 - 1.0).collect(),
        ),
        ("s".to_string(), vec![0.5, -2.0, 3.0]),
    ]);
    let order = g.topo_order().unwrap();
    let all = evaluate::<f32>(g, &order, &[] as &[Value<f32>], &persistent).unwrap();
    g.outputs()
        .iter()
        .map(|o| {
            all[o.node.index()]
                .as_f()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

#[test]
fn every_reader_of_a_broadcast_gets_its_own_and_the_values_stay() {
    let mut g = scaled_step();
    graphc_opt::eliminate_common_subexpressions(&mut g).unwrap();
    let shared = broadcasts_with_readers(&g);
    assert!(
        shared.iter().any(|&readers| readers > 1),
        "the step shares no broadcast: a vacuous check ({shared:?})"
    );
    let before = run(&g);
    unshare_broadcasts(&mut g).unwrap();
    g.verify().unwrap();
    let after = broadcasts_with_readers(&g);
    assert!(after.iter().all(|&readers| readers == 1), "{after:?}");
    assert_eq!(run(&g), before);

    // The whole pipeline ends with it: CSE does not merge the copies again.
    let mut optimized = scaled_step();
    optimize(&mut optimized).unwrap();
    assert!(broadcasts_with_readers(&optimized).iter().all(|&r| r == 1));
    assert_eq!(run(&optimized), before);
}
