//! Products of bf16-rounded operands (`train.precision: bf16`) against the interpreter: the
//! JIT's `vdpbf16ps` kernels (on CPUs with AVX512_BF16; the f32 path elsewhere) sum the same
//! rounded operands in another order, so results agree to a few f32 ulp of the sums, at
//! sizes past every block edge of the kernels and with every transpose, on one and two
//! threads' splits. The backward products of a training step are checked by
//! `training_step`'s graphs and by the autocast goldens of `tests/goldens/bf16/`.

use graphc_ir::{BinaryOp, Graph, TensorType, UnaryOp};
use proptest::prelude::*;

use crate::support::{compare, values, Data};

/// `r(op(a)) · r(op(b))` with `r` the bf16 rounding, as output `c`.
fn rounded_product(m: usize, n: usize, k: usize, lhs_t: bool, rhs_t: bool) -> Graph {
    let mut g = Graph::new();
    let a_shape = if lhs_t { [k, m] } else { [m, k] };
    let b_shape = if rhs_t { [n, k] } else { [k, n] };
    let a = g.input("a", TensorType::f32(&a_shape));
    let b = g.input("b", TensorType::f32(&b_shape));
    let a = g.unary(UnaryOp::RoundBf16, a).unwrap();
    let b = g.unary(UnaryOp::RoundBf16, b).unwrap();
    let c = g.matmul(a, b, lhs_t, rhs_t).unwrap();
    g.add_output("c", c);
    g
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn bf16_products_match_the_interpreter(
        m in 1usize..140,
        n in 1usize..300,
        k in 1usize..600,
        lhs_t: bool,
        rhs_t: bool,
        seed: u64,
    ) {
        let g = rounded_product(m, n, k, lhs_t, rhs_t);
        compare_product(&g, (m, n, k), seed)?;
    }

    #[test]
    fn bf16_products_of_computed_and_kept_operands_match_the_interpreter(
        m in 1usize..100,
        n in 1usize..200,
        k in 5usize..400,
        rhs_t: bool,
        keep: bool,
        seed: u64,
    ) {
        let g = rounded_relu_product(m, n, k, rhs_t, keep);
        compare_product(&g, (m, n, k), seed)?;
    }
}

/// Runs product graph `g` (inputs `a` with `m · k` and `b` with `k · n` values in `[-2, 2)`)
/// on both backends: sums of `k` products of values below 4 in magnitude, reordered.
fn compare_product(
    g: &Graph,
    (m, n, k): (usize, usize, usize),
    seed: u64,
) -> Result<(), TestCaseError> {
    let args = [
        Data::F(values(seed, m * k, -2.0, 2.0)),
        Data::F(values(seed ^ 1, k * n, -2.0, 2.0)),
    ];
    compare(g, &[], &args, 1, 1e-5, 1e-6 * k as f32).map_err(TestCaseError::fail)
}

/// mlp_l's large shapes, split across threads as a step splits them.
#[test]
fn mlp_l_shaped_bf16_products_match_the_interpreter() {
    for (m, n, k, lhs_t, rhs_t) in [
        (256, 2048, 1024, false, true),
        (2048, 1024, 256, true, false),
        (256, 1024, 2048, false, false),
    ] {
        let g = rounded_product(m, n, k, lhs_t, rhs_t);
        let args = [
            Data::F(values(7, m * k, -1.0, 1.0)),
            Data::F(values(8, k * n, -1.0, 1.0)),
        ];
        compare(&g, &[], &args, 1, 1e-5, 1e-6 * k as f32)
            .unwrap_or_else(|e| panic!("{m}x{n}x{k}: {e}"));
    }
}

/// `r(relu(a)) · r(b)` with `r` the bf16 rounding, as output `c`, and `r(b)` as output `rb`
/// too when `keep`: the JIT's product rounds the computed `relu(a)` while packing it, and
/// `b` too unless its rounded value is kept (then it reads the rounded tensor).
fn rounded_relu_product(m: usize, n: usize, k: usize, rhs_t: bool, keep: bool) -> Graph {
    let mut g = Graph::new();
    let b_shape = if rhs_t { [n, k] } else { [k, n] };
    let a = g.input("a", TensorType::f32(&[m, k]));
    let b = g.input("b", TensorType::f32(&b_shape));
    let zero = g.fill(0.0, &[m, k]);
    let h = g.binary(BinaryOp::Max, a, zero).unwrap();
    let h = g.unary(UnaryOp::RoundBf16, h).unwrap();
    let rb = g.unary(UnaryOp::RoundBf16, b).unwrap();
    let c = g.matmul(h, rb, false, rhs_t).unwrap();
    g.add_output("c", c);
    if keep {
        g.add_output("rb", rb);
    }
    g
}

/// [`rounded_relu_product`] large enough for the bf16 kernels, which then round `relu(a)`
/// (and `b`, unless kept) while packing.
#[test]
fn large_bf16_products_of_computed_and_kept_operands_match_the_interpreter() {
    for (rhs_t, keep) in [(false, false), (true, false), (false, true), (true, true)] {
        let (m, n, k) = (256, 520, 1030);
        let g = rounded_relu_product(m, n, k, rhs_t, keep);
        compare_product(&g, (m, n, k), 3).unwrap_or_else(|e| panic!("{rhs_t} {keep}: {e}"));
    }
}
