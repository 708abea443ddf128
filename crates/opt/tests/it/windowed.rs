//! The passes on a small CNN training step (grouped convolution, relu, max
//! pooling, a linear head, and a convolution whose output is summed): the
//! optimized step computes bit for bit what the original does, and
//! simplification turns the adjoint of a summed convolution into a uniform
//! `Fill` operand of `conv_weight_grad`, which backends must accept.

use std::collections::HashMap;

use graphc_autodiff::grad;
use graphc_interp::{evaluate, Value};
use graphc_ir::{
    AxisWindows, BinaryOp, Graph, NodeId, Op, ReduceOp, TensorType, UnaryOp, Window, WindowAxis,
};
use graphc_opt::optimize;

fn strided(input: usize, output: usize, kernel: usize, stride: usize, pad_lo: usize) -> WindowAxis {
    WindowAxis {
        input,
        output,
        windows: AxisWindows::Strided {
            kernel,
            stride,
            dilation: 1,
            pad_lo,
        },
    }
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The 3×3 window with padding 1 over a 6×6 plane.
fn same() -> Window {
    Window {
        axes: vec![strided(6, 6, 3, 1, 1), strided(6, 6, 3, 1, 1)],
    }
}

/// Input `x` `[2, 2, 6, 6]`, weight `w` `[4, 1, 3, 3]` and their grouped
/// convolution `[2, 4, 6, 6]`: `(x, w, conv)`.
fn grouped_conv(g: &mut Graph) -> (NodeId, NodeId, NodeId) {
    let x = g.input("x", TensorType::f32(&[2, 2, 6, 6]));
    let w = g.param("w", &[4, 1, 3, 3]);
    let c = g.conv(x, w, &same(), 2).unwrap();
    (x, w, c)
}

/// The step: loss and the gradients of every parameter, as outputs.
fn cnn_step() -> Graph {
    let same = same();
    let pool = Window {
        axes: vec![strided(6, 3, 2, 2, 0), strided(6, 3, 2, 2, 0)],
    };
    let mut g = Graph::new();
    let (x, w, c) = grouped_conv(&mut g);
    let w2 = g.param("w2", &[1, 2, 3, 3]);
    let head = g.param("head", &[36, 3]);
    let zero = g.fill(0.0, &[2, 4, 6, 6]);
    let relu = g.binary(BinaryOp::Max, c, zero).unwrap();
    let pooled = g.max_pool(relu, &pool).unwrap();
    let flat = g.reshape(pooled, &[2, 36]).unwrap();
    let out = g.matmul(flat, head, false, false).unwrap();
    let squares = g.binary(BinaryOp::Mul, out, out).unwrap();
    let fit = g.sum_all(squares).unwrap();
    let side = g.conv(x, w2, &same, 1).unwrap();
    let side_sum = g.reduce(ReduceOp::Sum, side, &[0, 1, 2, 3]).unwrap();
    let side_sum = g.reshape(side_sum, &[]).unwrap();
    let loss = g.binary(BinaryOp::Add, fit, side_sum).unwrap();
    let params = [w, w2, head];
    let grads = grad(&mut g, loss, &params).unwrap();
    g.add_output("loss", loss);
    for (name, d) in ["dw", "dw2", "dhead"].iter().zip(grads) {
        g.add_output(name, d);
    }
    g
}

fn run(g: &Graph) -> Vec<Vec<f32>> {
    run_on(g, &[("w", 36, 1), ("w2", 18, 2), ("head", 108, 3)], 4, 0.0)
}

/// The outputs of `g` on the interpreter, with parameters `(name, length,
/// seed)` and the input `x` from seed `x_seed`, every value rounded to a
/// multiple of `grid` (0: unrounded).
fn run_on(g: &Graph, params: &[(&str, usize, u64)], x_seed: u64, grid: f32) -> Vec<Vec<f32>> {
    let round = |v: Vec<f32>| -> Vec<f32> {
        if grid == 0.0 {
            v
        } else {
            v.into_iter().map(|x| (x / grid).round() * grid).collect()
        }
    };
    let persistent: HashMap<String, Vec<f32>> = params
        .iter()
        .map(|&(name, n, seed)| (name.to_string(), round(values(n, seed))))
        .collect();
    let args = [Value::F(round(values(144, x_seed)))];
    let order = g.topo_order().unwrap();
    let all = evaluate::<f32>(g, &order, &args, &persistent).unwrap();
    g.outputs()
        .iter()
        .map(|o| all[o.node.index()].as_f().clone())
        .collect()
}

fn bits(outputs: &[Vec<f32>]) -> Vec<Vec<u32>> {
    outputs
        .iter()
        .map(|o| o.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn optimizing_a_cnn_step_keeps_every_bit() {
    let original = cnn_step();
    let mut optimized = original.clone();
    optimize(&mut optimized).unwrap();
    assert!(
        optimized.len() < original.len(),
        "the passes removed nothing"
    );
    let (before, after) = (run(&original), run(&optimized));
    assert!(
        before[1].iter().any(|&v| v != 0.0),
        "dw is all zero: a vacuous check"
    );
    assert_eq!(bits(&before), bits(&after));
}

#[test]
fn a_summed_convolution_gives_conv_weight_grad_a_uniform_operand() {
    let mut g = cnn_step();
    let uniform_operand = |g: &Graph| -> Vec<NodeId> {
        g.node_ids()
            .filter(|&n| matches!(g.node(n).op, Op::ConvWeightGrad { .. }))
            .filter(|&n| matches!(g.node(g.operands(n)[1]).op, Op::Fill(_)))
            .collect()
    };
    assert!(
        uniform_operand(&g).is_empty(),
        "autodiff alone broadcasts the scalar adjoint"
    );
    optimize(&mut g).unwrap();
    let found = uniform_operand(&g);
    assert_eq!(found.len(), 1, "simplify folds broadcast(fill) into a fill");
    let dy = g.operands(found[0])[1];
    assert_eq!(g.node(dy).op, Op::Fill(1.0));
    assert_eq!(g.shape(dy), [2, 1, 6, 6]);
}

/// A conv → relu (the primitive) → max pool → linear step.
fn relu_pool_step() -> Graph {
    // Overlapping windows: an element can be the argmax of two.
    let pool = Window {
        axes: vec![strided(6, 2, 3, 2, 0), strided(6, 3, 2, 2, 0)],
    };
    let mut g = Graph::new();
    let (_, w, c) = grouped_conv(&mut g);
    let head = g.param("head", &[24, 3]);
    let relu = g.unary(UnaryOp::Relu, c).unwrap();
    let pooled = g.max_pool(relu, &pool).unwrap();
    let flat = g.reshape(pooled, &[2, 24]).unwrap();
    let out = g.matmul(flat, head, false, false).unwrap();
    let squares = g.binary(BinaryOp::Mul, out, out).unwrap();
    let loss = g.sum_all(squares).unwrap();
    let grads = grad(&mut g, loss, &[w, head]).unwrap();
    g.add_output("loss", loss);
    g.add_output("dw", grads[0]);
    g.add_output("dhead", grads[1]);
    g
}

#[test]
fn relus_mask_moves_before_the_pooling_gradient_bit_for_bit() {
    let original = relu_pool_step();
    let mut optimized = original.clone();
    optimize(&mut optimized).unwrap();
    // The pooling gradient now scatters a masked pooled gradient, and no
    // comparison reads the full-size relu result any more.
    let relu = |g: &Graph| {
        g.node_ids()
            .find(|&n| g.node(n).op == Op::Unary(UnaryOp::Relu))
            .unwrap()
    };
    let pool_grads: Vec<NodeId> = optimized
        .node_ids()
        .filter(|&n| matches!(optimized.node(n).op, Op::MaxPoolGrad(_)))
        .collect();
    assert_eq!(pool_grads.len(), 1);
    let dy = optimized.operands(pool_grads[0])[1];
    assert_eq!(optimized.node(dy).op, Op::Select);
    assert_eq!(optimized.shape(dy), [2, 4, 2, 3]);
    let r = relu(&optimized);
    assert!(optimized
        .users(r)
        .iter()
        .all(|&u| !matches!(optimized.node(u).op, Op::Compare(_))));
    assert!(original
        .users(relu(&original))
        .iter()
        .any(|&u| matches!(original.node(u).op, Op::Compare(_))));
    for grid in [0.0, 0.5, 1.0] {
        let run = |g: &Graph| run_on(g, &[("w", 36, 5), ("head", 72, 6)], 7, grid);
        let (before, after) = (run(&original), run(&optimized));
        assert!(
            before[1].iter().any(|&v| v != 0.0),
            "dw is all zero on grid {grid}: a vacuous check"
        );
        assert_eq!(bits(&before), bits(&after), "grid {grid}");
    }
}
