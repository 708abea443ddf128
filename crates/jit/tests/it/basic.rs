//! Hand-written graphs covering each lowering path, compared with the
//! interpreter, and every elementwise op of the op tables (`UnaryOp::ALL`, ...)
//! alone on a tensor with a SIMD tail.

use crate::support::{
    compare, exactly_rounded, lace_with_specials, matmul_graph, unary_in_domain, values, Data,
};
use graphc_ir::{BinaryOp, CompareOp, Graph, ReduceOp, TensorType, UnaryOp};

#[test]
fn elementwise_chain_with_row_and_column_broadcasts_matches_interpreter() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[5, 7]));
    let row = g.input("row", TensorType::f32(&[1, 7]));
    let col = g.input("col", TensorType::f32(&[5, 1]));
    let r = g.broadcast(row, &[5, 7]).unwrap();
    let c = g.broadcast(col, &[5, 7]).unwrap();
    let a = g.binary(BinaryOp::Mul, x, r).unwrap();
    let b = g.binary(BinaryOp::Sub, a, c).unwrap();
    let e = g.unary(UnaryOp::Tanh, b).unwrap();
    let m = g.binary(BinaryOp::Max, e, x).unwrap();
    g.add_output("m", m);
    g.add_output("b", b);
    let args = [
        Data::F(values(1, 35, -2.0, 2.0)),
        Data::F(values(2, 7, -2.0, 2.0)),
        Data::F(values(3, 5, -2.0, 2.0)),
    ];
    compare(&g, &[], &args, 1, 1e-5, 1e-6).unwrap();
}

#[test]
fn every_elementwise_op_matches_the_interpreter() {
    // 3 × 7: one full 8-lane vector and a tail of each row length.
    let shape = [3, 7];
    let n = 21;
    let mut special = values(50, n, -2.0, 2.0);
    lace_with_specials(&mut special, 51);
    let mut other = values(52, n, -2.0, 2.0);
    lace_with_specials(&mut other, 53);
    for &op in UnaryOp::ALL {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&shape));
        // Exactly rounded ops on NaN, ±inf and ±0 too, with no tolerance; the
        // polynomial transcendentals in their domains, within their 4-ulp
        // bound on each side.
        let (y, arg, rtol) = if exactly_rounded(op) {
            (g.unary(op, x).unwrap(), special.clone(), 0.0)
        } else {
            let y = unary_in_domain(&mut g, op, x, &shape);
            (y, values(54, n, -2.0, 2.0), 8.0 * f32::EPSILON)
        };
        g.add_output("y", y);
        compare(&g, &[], &[Data::F(arg)], 1, rtol, 0.0).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
    // Binary ops and comparisons are exactly rounded: no tolerance, specials included.
    let args = [Data::F(special.clone()), Data::F(other.clone())];
    for &op in BinaryOp::ALL {
        let mut g = Graph::new();
        let a = g.input("a", TensorType::f32(&shape));
        let b = g.input("b", TensorType::f32(&shape));
        let y = g.binary(op, a, b).unwrap();
        g.add_output("y", y);
        compare(&g, &[], &args, 1, 0.0, 0.0).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
    for &op in CompareOp::ALL {
        let mut g = Graph::new();
        let a = g.input("a", TensorType::f32(&shape));
        let b = g.input("b", TensorType::f32(&shape));
        let mask = g.compare(op, a, b).unwrap();
        let y = g.select(mask, a, b).unwrap();
        g.add_output("mask", mask);
        g.add_output("y", y);
        compare(&g, &[], &args, 1, 0.0, 0.0).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
}

#[test]
fn reductions_over_every_axis_set_match_interpreter() {
    for axes in [
        vec![0],
        vec![1],
        vec![2],
        vec![0, 1],
        vec![0, 2],
        vec![1, 2],
        vec![0, 1, 2],
    ] {
        for &op in ReduceOp::ALL {
            let mut g = Graph::new();
            let x = g.input("x", TensorType::f32(&[3, 5, 6]));
            let e = g.unary(UnaryOp::Exp, x).unwrap();
            let r = g.reduce(op, e, &axes).unwrap();
            let s = g.reduce(op, x, &axes).unwrap();
            g.add_output("r", r);
            g.add_output("s", s);
            let args = [Data::F(values(4, 90, -3.0, 3.0))];
            compare(&g, &[], &args, 1, 1e-5, 1e-6)
                .unwrap_or_else(|e| panic!("{op:?} {axes:?}: {e}"));
        }
    }
}

#[test]
fn matmul_with_every_transpose_combination_matches_interpreter() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (m, k, n) = (5, 7, 3);
        let g = matmul_graph(m, n, k, ta, tb);
        let args = [
            Data::F(values(5, m * k, -1.0, 1.0)),
            Data::F(values(6, k * n, -1.0, 1.0)),
        ];
        compare(&g, &[], &args, 1, 1e-5, 1e-5).unwrap_or_else(|e| panic!("{ta} {tb}: {e}"));
    }
}

#[test]
fn one_hot_ignores_indices_out_of_range() {
    let mut g = Graph::new();
    let y = g.input("y", TensorType::i64(&[6]));
    let h = g.one_hot(y, 4).unwrap();
    g.add_output("h", h);
    compare(
        &g,
        &[],
        &[Data::I(vec![0, 3, -1, 4, i64::MAX, i64::MIN])],
        1,
        0.0,
        0.0,
    )
    .unwrap();
}

#[test]
fn transpose_compare_and_select_match_interpreter() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[4, 6, 5]));
    let t = g.transpose(x, &[2, 0, 1]).unwrap();
    let z = g.fill(0.0, &[5, 4, 6]);
    let gt = g.compare(CompareOp::Gt, t, z).unwrap();
    let s = g.select(gt, t, z).unwrap();
    let n = g.unary(UnaryOp::Neg, s).unwrap();
    g.add_output("n", n);
    g.add_output("mask", gt);
    compare(&g, &[], &[Data::F(values(7, 120, -1.0, 1.0))], 1, 0.0, 0.0).unwrap();
}

#[test]
fn momentum_update_in_place_over_three_runs_matches_interpreter() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[3, 9]));
    let lr = g.hyper("lr");
    let w = g.param("w", &[3, 9]);
    let v = g.state("v", &[3, 9]);
    let mu = g.fill(0.9, &[3, 9]);
    let lr = g.broadcast_to(lr, &[3, 9]).unwrap();
    let grad = g.binary(BinaryOp::Mul, x, w).unwrap();
    let mv = g.binary(BinaryOp::Mul, v, mu).unwrap();
    let v2 = g.binary(BinaryOp::Add, mv, grad).unwrap();
    let step = g.binary(BinaryOp::Mul, lr, v2).unwrap();
    let w2 = g.binary(BinaryOp::Sub, w, step).unwrap();
    let loss = g.sum_all(grad).unwrap();
    g.add_output("loss", loss);
    g.add_assign(v, v2).unwrap();
    g.add_assign(w, w2).unwrap();
    let init = vec![("w".to_string(), values(8, 27, -1.0, 1.0))];
    let args = [Data::F(values(9, 27, -1.0, 1.0)), Data::F(vec![0.1])];
    compare(&g, &init, &args, 3, 1e-6, 1e-7).unwrap();
    let exe = graphc_jit::compile_with(&g, &graphc_jit::Options { verify: true }).unwrap();
    assert_eq!(exe.stats().in_place_assigns, 2);
}

#[test]
fn swapping_assigns_read_old_values() {
    let mut g = Graph::new();
    let a = g.param("a", &[5]);
    let b = g.param("b", &[5]);
    let s = g.binary(BinaryOp::Add, a, b).unwrap();
    g.add_output("a_old", a);
    g.add_output("sum", s);
    g.add_assign(a, b).unwrap();
    g.add_assign(b, a).unwrap();
    let init = vec![
        ("a".to_string(), values(10, 5, -1.0, 1.0)),
        ("b".to_string(), values(11, 5, -1.0, 1.0)),
    ];
    compare(&g, &init, &[], 3, 0.0, 0.0).unwrap();
}

#[test]
fn wrong_arguments_are_rejected_before_running() {
    use graphc_ir::{Arg, Backend, IrError};
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[4]));
    let y = g.input("y", TensorType::i64(&[2]));
    let h = g.one_hot(y, 3).unwrap();
    let s = g.sum_all(h).unwrap();
    let t = g.sum_all(x).unwrap();
    let u = g.binary(BinaryOp::Add, s, t).unwrap();
    g.add_output("u", u);
    let mut exe = graphc_jit::Jit.compile(&g).unwrap();
    let bad: [&[Arg<'_>]; 4] = [
        &[Arg::F32(&[1.0; 4])],
        &[Arg::F32(&[1.0; 3]), Arg::I64(&[0, 1])],
        &[Arg::I64(&[0; 4]), Arg::I64(&[0, 1])],
        &[Arg::F32(&[1.0; 4]), Arg::F32(&[0.0, 1.0])],
    ];
    for args in bad {
        assert!(matches!(exe.run(args), Err(IrError::Argument(_))));
    }
    exe.run(&[Arg::F32(&[1.0; 4]), Arg::I64(&[0, 1])]).unwrap();
    assert_eq!(exe.output(0), &[6.0]);
}

#[test]
fn uniform_and_view_operands_of_a_matmul_are_materialised() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[4, 6]));
    let ones = g.fill(1.0, &[6, 3]);
    let row = g.input("row", TensorType::f32(&[1, 6]));
    let rows = g.broadcast(row, &[5, 6]).unwrap();
    let a = g.matmul(x, ones, false, false).unwrap();
    let b = g.matmul(rows, x, false, true).unwrap();
    g.add_output("a", a);
    g.add_output("b", b);
    let args = [
        Data::F(values(12, 24, -1.0, 1.0)),
        Data::F(values(13, 6, -1.0, 1.0)),
    ];
    compare(&g, &[], &args, 1, 1e-5, 1e-6).unwrap();
}

#[test]
fn leaves_aliases_and_constants_can_be_outputs() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[2, 3]));
    let h = g.hyper("h");
    let p = g.param("p", &[6]);
    let f = g.fill(2.5, &[3]);
    let c = g
        .constant(vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0], &[3, 2])
        .unwrap();
    let r = g.reshape(x, &[6]).unwrap();
    let ct = g.transpose(c, &[1, 0]).unwrap();
    let s = g.binary(BinaryOp::Mul, ct, x).unwrap();
    g.add_output("x", x);
    g.add_output("h", h);
    g.add_output("p", p);
    g.add_output("f", f);
    g.add_output("c", c);
    g.add_output("r", r);
    g.add_output("s", s);
    g.add_assign(p, r).unwrap();
    let init = vec![("p".to_string(), values(14, 6, -1.0, 1.0))];
    let args = [Data::F(values(15, 6, -1.0, 1.0)), Data::F(vec![3.0])];
    compare(&g, &init, &args, 2, 0.0, 0.0).unwrap();
}

#[test]
fn scalar_graphs_run() {
    let mut g = Graph::new();
    let a = g.hyper("a");
    let b = g.hyper("b");
    let q = g.binary(BinaryOp::Div, a, b).unwrap();
    let e = g.unary(UnaryOp::Exp, q).unwrap();
    let m = g.reduce(ReduceOp::Max, e, &[]).unwrap();
    g.add_output("m", m);
    compare(
        &g,
        &[],
        &[Data::F(vec![1.5]), Data::F(vec![-0.5])],
        1,
        1e-6,
        0.0,
    )
    .unwrap();
}

#[test]
fn empty_tensors_reduce_to_identities_and_empty_products_to_zero() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[0, 3]));
    let y = g.input("y", TensorType::f32(&[0, 2]));
    let s = g.reduce(ReduceOp::Sum, x, &[0]).unwrap();
    let m = g.reduce(ReduceOp::Max, x, &[0]).unwrap();
    let p = g.matmul(x, y, true, false).unwrap();
    let e = g.unary(UnaryOp::Exp, x).unwrap();
    g.add_output("s", s);
    g.add_output("m", m);
    g.add_output("p", p);
    g.add_output("e", e);
    compare(&g, &[], &[Data::F(vec![]), Data::F(vec![])], 1, 0.0, 0.0).unwrap();
}

#[test]
fn one_hot_of_reshaped_indices_fuses_with_a_loss() {
    let mut g = Graph::new();
    let y = g.input("y", TensorType::i64(&[2, 3]));
    let logits = g.input("logits", TensorType::f32(&[6, 5]));
    let flat = g.reshape(y, &[6]).unwrap();
    let h = g.one_hot(flat, 5).unwrap();
    let e = g.unary(UnaryOp::Exp, logits).unwrap();
    let z = g.reduce(ReduceOp::Sum, e, &[1]).unwrap();
    let lz = g.unary(UnaryOp::Log, z).unwrap();
    let lz = g.broadcast(lz, &[6, 5]).unwrap();
    let lp = g.binary(BinaryOp::Sub, logits, lz).unwrap();
    let picked = g.binary(BinaryOp::Mul, h, lp).unwrap();
    let loss = g.sum_all(picked).unwrap();
    g.add_output("loss", loss);
    let args = [
        Data::I(vec![0, 4, 2, 7, 1, 3]),
        Data::F(values(16, 30, -3.0, 3.0)),
    ];
    compare(&g, &[], &args, 1, 1e-5, 1e-6).unwrap();
}

#[test]
fn max_and_min_propagate_nan_and_order_signed_zeros() {
    use graphc_ir::{Arg, Executable};
    let mut g = Graph::new();
    let a = g.input("a", TensorType::f32(&[7]));
    let b = g.input("b", TensorType::f32(&[7]));
    let mx = g.binary(BinaryOp::Max, a, b).unwrap();
    let mn = g.binary(BinaryOp::Min, a, b).unwrap();
    g.add_output("max", mx);
    g.add_output("min", mn);
    let mut exe = graphc_jit::compile_with(&g, &graphc_jit::Options { verify: true }).unwrap();
    let nan = f32::NAN;
    let xs = [0.0, -0.0, nan, 1.0, nan, -2.0, 3.0];
    let ys = [-0.0, 0.0, 1.0, nan, nan, 5.0, -4.0];
    exe.run(&[Arg::F32(&xs), Arg::F32(&ys)]).unwrap();
    let bits = |v: &[f32]| {
        v.iter()
            .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bits(exe.output(0)),
        bits(&[0.0, 0.0, nan, nan, nan, 5.0, 3.0])
    );
    assert_eq!(
        bits(exe.output(1)),
        bits(&[-0.0, -0.0, nan, nan, nan, -2.0, -4.0])
    );
}

#[test]
fn an_elementwise_chain_with_broadcasts_is_one_kernel() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[8, 5]));
    let bias = g.param("bias", &[5]);
    let b = g.broadcast_to(bias, &[8, 5]).unwrap();
    let y = g.binary(BinaryOp::Add, x, b).unwrap();
    let z = g.fill(0.0, &[8, 5]);
    let m = g.compare(CompareOp::Gt, y, z).unwrap();
    let r = g.select(m, y, z).unwrap();
    let t = g.unary(UnaryOp::Tanh, r).unwrap();
    let s = g.reduce(ReduceOp::Sum, t, &[1]).unwrap();
    g.add_output("t", t);
    g.add_output("s", s);
    let exe = graphc_jit::compile_with(&g, &graphc_jit::Options { verify: true }).unwrap();
    assert_eq!(exe.stats().functions, 1, "{:?}", exe.stats());
    let init = vec![("bias".to_string(), values(17, 5, -1.0, 1.0))];
    compare(
        &g,
        &init,
        &[Data::F(values(18, 40, -2.0, 2.0))],
        1,
        1e-5,
        1e-6,
    )
    .unwrap();
}

#[test]
fn softmax_splits_where_a_reduction_feeds_back() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[6, 9]));
    let m = g.reduce(ReduceOp::Max, x, &[1]).unwrap();
    let mb = g.broadcast(m, &[6, 9]).unwrap();
    let d = g.binary(BinaryOp::Sub, x, mb).unwrap();
    let e = g.unary(UnaryOp::Exp, d).unwrap();
    let s = g.reduce(ReduceOp::Sum, e, &[1]).unwrap();
    let sb = g.broadcast(s, &[6, 9]).unwrap();
    let p = g.binary(BinaryOp::Div, e, sb).unwrap();
    g.add_output("p", p);
    let exe = graphc_jit::compile_with(&g, &graphc_jit::Options { verify: true }).unwrap();
    assert_eq!(exe.stats().functions, 3, "{:?}", exe.stats());
    compare(
        &g,
        &[],
        &[Data::F(values(19, 54, -5.0, 5.0))],
        1,
        1e-5,
        1e-7,
    )
    .unwrap();
}

#[test]
fn products_with_a_tiny_inner_dimension_fuse_into_their_consumer_bitwise() {
    for (k, lhs_t, rhs_t) in [
        (1, false, false),
        (2, false, true),
        (3, true, false),
        (4, true, true),
    ] {
        let (m, n) = (37, 5);
        let mut g = Graph::new();
        let a_shape = if lhs_t { [k, m] } else { [m, k] };
        let b_shape = if rhs_t { [n, k] } else { [k, n] };
        let a = g.input("a", TensorType::f32(&a_shape));
        let b = g.param("b", &b_shape);
        let c = g.matmul(a, b, lhs_t, rhs_t).unwrap();
        let e = g.unary(UnaryOp::Abs, c).unwrap();
        g.add_output("c", c);
        g.add_output("e", e);
        let exe = graphc_jit::compile_with(&g, &graphc_jit::Options { verify: true }).unwrap();
        assert_eq!(exe.stats().gemms, 0, "k = {k}: {:?}", exe.stats());
        let init = [("b".to_string(), values(20, k * n, -2.0, 2.0))];
        let args = [Data::F(values(21, m * k, -3.0, 3.0))];
        // Summed from 0 in k order, as the interpreter does: bitwise equal.
        compare(&g, &init, &args, 1, 0.0, 0.0).unwrap_or_else(|e| panic!("k = {k}: {e}"));
    }
}

#[test]
fn column_products_become_sums_of_the_cluster_that_computes_the_column_bitwise() {
    // aᵀ·b with `a` one computed column [k, 1] (a single-output model's output
    // gradient) and at most four result columns: running sums of a's kernel.
    for (cols, rhs_t) in [(1, false), (2, false), (3, true), (4, true), (5, false)] {
        let k = 103;
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(&[k, 1]));
        // An exactly rounded op, so that the column is the interpreter's bit for bit.
        let a = g.binary(BinaryOp::Mul, x, x).unwrap();
        let b_shape = if rhs_t { [cols, k] } else { [k, cols] };
        let b = g.input("b", TensorType::f32(&b_shape));
        let c = g.matmul(a, b, true, rhs_t).unwrap();
        let bias_grad = g.reduce(ReduceOp::Sum, a, &[0]).unwrap();
        g.add_output("c", c);
        g.add_output("bias_grad", bias_grad);
        let exe = graphc_jit::compile_with(&g, &graphc_jit::Options { verify: true }).unwrap();
        let expected_gemms = usize::from(cols > 4);
        assert_eq!(
            exe.stats().gemms,
            expected_gemms,
            "{cols} columns: {:?}",
            exe.stats()
        );
        let args = [
            Data::F(values(30, k, -2.0, 2.0)),
            Data::F(values(31, k * cols, -3.0, 3.0)),
        ];
        // Summed from 0 in row order, as the interpreter does: bitwise equal (the
        // five-column product runs as a GEMM, which may reassociate).
        let tol = if cols > 4 { 1e-5 } else { 0.0 };
        compare(&g, &[], &args, 1, tol, tol).unwrap_or_else(|e| panic!("{cols} columns: {e}"));
    }
}

#[test]
fn a_column_product_whose_right_operand_waits_for_the_column_is_a_separate_call() {
    // b depends on the kernel computing `a`, so fusing the product into that
    // kernel would read b before it exists.
    let k = 64;
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[k, 1]));
    let a = g.unary(UnaryOp::Exp, x).unwrap();
    let total = g.reduce(ReduceOp::Sum, a, &[0, 1]).unwrap();
    let total = g.broadcast_to(total, &[k, 2]).unwrap();
    let y = g.input("y", TensorType::f32(&[k, 2]));
    let b = g.binary(BinaryOp::Mul, y, total).unwrap();
    let c = g.matmul(a, b, true, false).unwrap();
    g.add_output("c", c);
    let exe = graphc_jit::compile_with(&g, &graphc_jit::Options { verify: true }).unwrap();
    assert_eq!(exe.stats().gemms, 1, "{:?}", exe.stats());
    let args = [
        Data::F(values(40, k, -1.0, 1.0)),
        Data::F(values(41, k * 2, -1.0, 1.0)),
    ];
    compare(&g, &[], &args, 1, 1e-5, 1e-6).unwrap();
}
