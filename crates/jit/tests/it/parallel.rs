//! Work split across threads gives the interpreter's results: GEMMs split in
//! row or column blocks (with the transposed right operand copied first, or
//! as dot products),
//! elementwise kernels split by rows (including in-place updates of
//! persistent buffers), and kernels with column sums split by columns; the
//! products of the benchmark workloads sum every term once.

use crate::support::{compare, matmul_graph, values, Data, BENCHMARK_PRODUCTS};
use graphc_ir::{Arg, Executable};
use graphc_ir::{BinaryOp, CompareOp, Graph, ReduceOp, TensorType, UnaryOp};
use graphc_jit::{compile_with, Options};

#[test]
fn split_and_copied_gemms_match_the_interpreter() {
    for (m, n, k, lhs_t, rhs_t) in [
        // Column blocks, transposed right operand copied to scratch first.
        (256, 512, 512, false, true),
        // Row blocks (thin n).
        (96, 10, 4096, false, true),
        // Column blocks with a transposed left operand.
        (128, 256, 64, true, false),
        // Uneven blocks: n is no multiple of the block size.
        (64, 200, 260, false, false),
        // Thin products with a transposed right operand: dot products in blocks
        // of 2 × 4, split in row blocks, with a masked tail (k = 520 is no
        // multiple of 16) and short blocks at the edges.
        (512, 12, 520, false, true),
        (37, 10, 100, false, true),
        // Odd rows, a one-column last group, k a multiple of 16.
        (41, 5, 48, false, true),
    ] {
        // Shapes big enough for the JIT to split (and copy).
        let g = matmul_graph(m, n, k, lhs_t, rhs_t);
        let args = [
            Data::F(values(1, m * k, 0.0, 1.0)),
            Data::F(values(2, k * n, 0.0, 1.0)),
        ];
        // Positive operands: no cancellation, so reassociated sums stay within 1e-5.
        if let Err(e) = compare(&g, &[], &args, 1, 1e-5, 0.0) {
            panic!("{m}x{n}x{k} lhs_t={lhs_t} rhs_t={rhs_t}: {e}");
        }
    }
}

#[test]
fn benchmark_sized_products_sum_every_term_into_every_output() {
    // Too large for the interpreter: constant operands make every entry of
    // the product exactly 0.125·k, whatever the split, block or copy.
    for &(m, n, k, lhs_t, rhs_t) in BENCHMARK_PRODUCTS {
        let g = matmul_graph(m, n, k, lhs_t, rhs_t);
        let mut exe = compile_with(&g, &Options::default()).unwrap();
        let (a, b) = (vec![0.5f32; m * k], vec![0.25f32; k * n]);
        exe.run(&[Arg::F32(&a), Arg::F32(&b)]).unwrap();
        let want = 0.125 * k as f32;
        let wrong = exe.output(0).iter().position(|&v| v != want);
        assert_eq!(
            wrong, None,
            "{m}x{n}x{k} lhs_t={lhs_t} rhs_t={rhs_t}: want {want}"
        );
    }
}

#[test]
fn row_split_kernels_and_in_place_updates_match_the_interpreter() {
    let shape = [512, 256];
    let mut g = Graph::new();
    let p = g.param("p", &shape);
    let v = g.state("v", &shape);
    let x = g.input("x", TensorType::f32(&shape));
    let half = g.fill(0.5, &shape);
    let decayed = g.binary(BinaryOp::Mul, v, half).unwrap();
    let v_new = g.binary(BinaryOp::Add, decayed, x).unwrap();
    let root = g.unary(UnaryOp::Sqrt, v_new).unwrap();
    let step = g.binary(BinaryOp::Div, x, root).unwrap();
    let p_new = g.binary(BinaryOp::Sub, p, step).unwrap();
    let e = g.unary(UnaryOp::Exp, p_new).unwrap();
    g.add_output("e", e);
    g.add_assign(v, v_new).unwrap();
    g.add_assign(p, p_new).unwrap();
    let n = shape[0] * shape[1];
    let init = [
        ("p".to_string(), values(3, n, -1.0, 1.0)),
        ("v".to_string(), values(4, n, 0.0, 1.0)),
    ];
    let args = [Data::F(values(5, n, 0.1, 1.0))];
    // Exactly rounded ops are bitwise equal; exp is within its 4-ulp bound.
    compare(&g, &init, &args, 3, 1e-6, 0.0).unwrap();
}

#[test]
fn column_split_kernels_with_column_sums_match_the_interpreter() {
    let shape = [64, 2048];
    let mut g = Graph::new();
    let mask = g.input("mask", TensorType::f32(&shape));
    let dh = g.input("dh", TensorType::f32(&shape));
    let zero = g.fill(0.0, &shape);
    let on = g.compare(CompareOp::Gt, mask, zero).unwrap();
    let masked = g.select(on, dh, zero).unwrap();
    let sums = g.reduce(ReduceOp::Sum, masked, &[0]).unwrap();
    let scaled = g.binary(BinaryOp::Mul, masked, dh).unwrap();
    let maxes = g.reduce(ReduceOp::Max, scaled, &[0]).unwrap();
    g.add_output("masked", masked);
    g.add_output("sums", sums);
    g.add_output("maxes", maxes);
    let n = shape[0] * shape[1];
    let args = [
        Data::F(values(6, n, -1.0, 1.0)),
        Data::F(values(7, n, -2.0, 2.0)),
    ];
    // Column sums run down the rows in the interpreter's order: bitwise equal.
    compare(&g, &[], &args, 2, 0.0, 0.0).unwrap();
}
