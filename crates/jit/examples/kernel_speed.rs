//! Tuning aid: throughput of generated elementwise and reduction kernels.
//!
//! `cargo run --release -p graphc-jit --example kernel_speed`

use std::time::Instant;

use graphc_ir::{Arg, BinaryOp, Executable, Graph, ReduceOp, TensorType, UnaryOp};
use graphc_jit::{compile_with, Options};

fn bench(
    name: &str,
    rows: usize,
    cols: usize,
    build: impl Fn(&mut Graph, [graphc_ir::NodeId; 3]) -> graphc_ir::NodeId,
) {
    let mut g = Graph::new();
    let xs = ["a", "b", "c"].map(|n| g.input(n, TensorType::f32(&[rows, cols])));
    let y = build(&mut g, xs);
    g.add_output("y", y);
    let mut exe = compile_with(&g, &Options::default()).unwrap();
    let data: Vec<Vec<f32>> = (0..3)
        .map(|k| {
            (0..rows * cols)
                .map(|i| ((i * 7 + k) % 13) as f32 * 0.1 - 0.6)
                .collect()
        })
        .collect();
    let args: Vec<Arg<'_>> = data.iter().map(|d| Arg::F32(d)).collect();
    let reps = (50_000_000 / (rows * cols)).clamp(3, 100_000);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..reps {
            exe.run(&args).unwrap();
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    println!(
        "{name:>12} {rows:5}x{cols:<5}: {:8.2} µs, {:6.3} ns/element",
        best * 1e6,
        best * 1e9 / (rows * cols) as f64
    );
}

fn main() {
    for (rows, cols) in [(16, 16), (64, 256), (256, 2048)] {
        bench("a*b+c", rows, cols, |g, [a, b, c]| {
            let m = g.binary(BinaryOp::Mul, a, b).unwrap();
            g.binary(BinaryOp::Add, m, c).unwrap()
        });
        bench("exp(a)", rows, cols, |g, [a, _, _]| {
            g.unary(UnaryOp::Exp, a).unwrap()
        });
        bench("tanh(a)*b", rows, cols, |g, [a, b, _]| {
            let t = g.unary(UnaryOp::Tanh, a).unwrap();
            g.binary(BinaryOp::Mul, t, b).unwrap()
        });
        bench("rowsum(a*b)", rows, cols, |g, [a, b, _]| {
            let m = g.binary(BinaryOp::Mul, a, b).unwrap();
            g.reduce(ReduceOp::Sum, m, &[1]).unwrap()
        });
        bench("colsum(a*b)", rows, cols, |g, [a, b, _]| {
            let m = g.binary(BinaryOp::Mul, a, b).unwrap();
            g.reduce(ReduceOp::Sum, m, &[0]).unwrap()
        });
        bench("rowmax(a)", rows, cols, |g, [a, _, _]| {
            g.reduce(ReduceOp::Max, a, &[1]).unwrap()
        });
    }
}
