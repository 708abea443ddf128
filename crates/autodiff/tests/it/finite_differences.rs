//! Every vector-Jacobian rule against central finite differences, computed in
//! f64 on the reference interpreter. One proptest per primitive, or per
//! family of primitives with the op drawn from its table (`UnaryOp::ALL`, ...)
//! and a domain for each op: the graph is `loss = sum(op(params) * w)` with
//! random shapes, values and weights `w`. The windowed ops (convolution, max
//! pooling and their gradients) draw random batch, channels, groups and
//! window geometry, every draw a valid one.

use std::collections::HashMap;

use graphc_autodiff::grad;
use graphc_interp::{evaluate, evaluate_summing, Value};
use graphc_ir::{
    AxisWindows, BinaryOp, CompareOp, Graph, IrError, NodeId, ReduceOp, TensorType, UnaryOp,
    Window, WindowAxis,
};
use proptest::prelude::*;

/// A tensor for a test: shape and row-major values.
type Tensor = (Vec<usize>, Vec<f64>);

type Build = dyn Fn(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>;

/// Checks d loss / d param for every element of every parameter.
fn check_gradients(
    params: &[(Vec<usize>, Vec<f64>)],
    weights_seed: u64,
    build: &Build,
) -> Result<(), TestCaseError> {
    check_gradients_with_args(params, weights_seed, &[], build)
}

/// [`check_gradients`] of a graph that takes arguments (`Input`s `build`
/// creates, bound by `args` in creation order).
fn check_gradients_with_args(
    params: &[(Vec<usize>, Vec<f64>)],
    weights_seed: u64,
    args: &[Value<f64>],
    build: &Build,
) -> Result<(), TestCaseError> {
    check_gradients_over_ranks(params, weights_seed, args, 1.0, build)
}

/// [`check_gradients_with_args`] as one of `ranks` identical ranks: each `Op::SumRanks` is
/// its operand times `ranks` (what every rank holding the same values sums to), so the
/// loss is one rank's, and its gradient reads every rank's adjoint through the rule.
fn check_gradients_over_ranks(
    params: &[(Vec<usize>, Vec<f64>)],
    weights_seed: u64,
    args: &[Value<f64>],
    ranks: f64,
    build: &Build,
) -> Result<(), TestCaseError> {
    let mut g = Graph::new();
    let ids: Vec<NodeId> = params
        .iter()
        .enumerate()
        .map(|(i, (shape, _))| g.param(&format!("p{i}"), shape))
        .collect();
    let y = build(&mut g, &ids).expect("well-typed test graph");
    let y_shape = g.shape(y).to_vec();
    let n: usize = y_shape.iter().product();
    // Deterministic pseudo-random weights in [-1, 1], so every output element matters differently.
    let weights: Vec<f32> = (0..n)
        .map(|i| {
            let h = (weights_seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let w = g.constant(weights, &y_shape).expect("weights fit");
    let weighted = g.binary(BinaryOp::Mul, y, w).expect("same shape");
    let loss = g.sum_all(weighted).expect("sum");
    let grads = grad(&mut g, loss, &ids).expect("differentiable");
    g.add_output("loss", loss);
    for &d in &grads {
        g.add_output("grad", d);
    }
    g.verify().expect("autodiff leaves a verifiable graph");
    let order = g.topo_order().expect("acyclic");

    let mut values: HashMap<String, Vec<f64>> = params
        .iter()
        .enumerate()
        .map(|(i, (_, v))| (format!("p{i}"), v.clone()))
        .collect();
    let run = |values: &HashMap<String, Vec<f64>>| -> Vec<Vec<f64>> {
        let mut sum_ranks = |v: &mut [f64]| v.iter_mut().for_each(|a| *a *= ranks);
        let all = evaluate_summing::<f64>(&g, &order, args, values, &mut sum_ranks).expect("runs");
        g.outputs()
            .iter()
            .map(|o| all[o.node.index()].as_f().clone())
            .collect()
    };
    let analytic = run(&values);
    let eps = 1e-6;
    for (i, (_, v)) in params.iter().enumerate() {
        for j in 0..v.len() {
            let name = format!("p{i}");
            values.get_mut(&name).unwrap()[j] = v[j] + eps;
            let plus = run(&values)[0][0];
            values.get_mut(&name).unwrap()[j] = v[j] - eps;
            let minus = run(&values)[0][0];
            values.get_mut(&name).unwrap()[j] = v[j];
            let numeric = (plus - minus) / (2.0 * eps);
            let symbolic = analytic[1 + i][j];
            prop_assert!(
                (numeric - symbolic).abs() <= 1e-6 * (1.0 + numeric.abs()),
                "param {i} element {j}: finite difference {numeric}, autodiff {symbolic}"
            );
        }
    }
    Ok(())
}

fn shape(rank: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, rank)
}

fn values_in(shape: Vec<usize>, lo: f64, hi: f64) -> impl Strategy<Value = Tensor> {
    let n: usize = shape.iter().product();
    prop::collection::vec(lo..hi, n).prop_map(move |v| (shape.clone(), v))
}

fn tensor(lo: f64, hi: f64) -> impl Strategy<Value = Tensor> {
    shape(0..=3).prop_flat_map(move |s| values_in(s, lo, hi))
}

fn pair(lo: f64, hi: f64) -> impl Strategy<Value = (Tensor, Tensor)> {
    shape(0..=3).prop_flat_map(move |s| (values_in(s.clone(), lo, hi), values_in(s, lo, hi)))
}

fn far_apart(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(p, q)| (p - q).abs() > 1e-3)
}

/// The range each unary rule is checked on, clear of the op's singularities,
/// or `None` where finite differences cannot judge the rule.
fn unary_domain(u: UnaryOp) -> Option<(f64, f64)> {
    match u {
        UnaryOp::Neg
        | UnaryOp::Exp
        | UnaryOp::Abs
        | UnaryOp::Tanh
        | UnaryOp::Sin
        | UnaryOp::Cos => Some((-3.0, 3.0)),
        UnaryOp::Log | UnaryOp::Sqrt => Some((0.1, 5.0)),
        UnaryOp::Log1p => Some((-0.9, 5.0)),
        UnaryOp::Sigmoid => Some((-6.0, 6.0)),
        // Away from the kink at 0 (a random draw within the step of it is improbable).
        UnaryOp::Relu => Some((-3.0, 3.0)),
        // Its gradient is zero by definition while its value moves with x:
        // `stop_gradient_passes_values_and_blocks_gradients` checks it.
        UnaryOp::StopGradient => None,
        // Piecewise constant in x (its true derivative is 0 or undefined); its rule is the
        // straight-through pass of autocast's cast:
        // `bf16_products_round_their_backward_operands` checks it.
        UnaryOp::RoundBf16 => None,
    }
}

fn unary_case() -> impl Strategy<Value = (Tensor, u64, UnaryOp)> {
    let checked: Vec<UnaryOp> = UnaryOp::ALL
        .iter()
        .copied()
        .filter(|&u| unary_domain(u).is_some())
        .collect();
    prop::sample::select(checked).prop_flat_map(|u| {
        let (lo, hi) = unary_domain(u).expect("only ops with a domain are selected");
        (tensor(lo, hi), any::<u64>(), Just(u))
    })
}

/// The range both operands of a binary rule are drawn from, and whether they
/// must stay apart (max and min have a kink where the operands meet).
fn binary_domain(op: BinaryOp) -> (f64, f64, bool) {
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul => (-3.0, 3.0, false),
        // Denominators clear of 0; the test negates them half of the time.
        BinaryOp::Div => (0.5, 3.0, false),
        BinaryOp::Max | BinaryOp::Min => (-3.0, 3.0, true),
    }
}

fn binary_case() -> impl Strategy<Value = (BinaryOp, (Tensor, Tensor))> {
    prop::sample::select(BinaryOp::ALL).prop_flat_map(|op| {
        let (lo, hi, _) = binary_domain(op);
        (Just(op), pair(lo, hi))
    })
}

/// Cases per op for the rules drawn from an op table, and per test for the others.
const CASES: u32 = 48;

/// `CASES` for each of the `ops` a test draws from.
fn per_op(ops: usize) -> ProptestConfig {
    ProptestConfig::with_cases(CASES * ops as u32)
}

proptest! {
    #![proptest_config(per_op(UnaryOp::ALL.len()))]

    #[test]
    fn unary_rules_match_finite_differences((x, seed, u) in unary_case()) {
        prop_assume!(u != UnaryOp::Abs || x.1.iter().all(|v| v.abs() > 1e-3));
        check_gradients(&[x], seed, &move |g, p| g.unary(u, p[0]))?;
    }
}

proptest! {
    #![proptest_config(per_op(BinaryOp::ALL.len()))]

    #[test]
    fn binary_rules_match_finite_differences((op, (a, b)) in binary_case(), seed: u64, negate: bool) {
        let rhs: Vec<f64> = b.1.iter().map(|&v| if negate { -v } else { v }).collect();
        prop_assume!(!binary_domain(op).2 || far_apart(&a.1, &rhs));
        check_gradients(&[a, b], seed, &move |g, p| {
            let rhs = if negate { g.unary(UnaryOp::Neg, p[1])? } else { p[1] };
            g.binary(op, p[0], rhs)
        })?;
    }
}

proptest! {
    #![proptest_config(per_op(CompareOp::ALL.len()))]

    #[test]
    fn compare_and_select_rules_match_finite_differences(
        (a, b) in pair(-3.0, 3.0),
        seed: u64,
        c in prop::sample::select(CompareOp::ALL),
    ) {
        prop_assume!(far_apart(&a.1, &b.1));
        check_gradients(&[a, b], seed, &move |g, p| {
            let mask = g.compare(c, p[0], p[1])?;
            let ab = g.binary(BinaryOp::Mul, p[0], p[1])?;
            g.select(mask, ab, p[1])
        })?;
    }
}

proptest! {
    #![proptest_config(per_op(ReduceOp::ALL.len()))]

    #[test]
    fn reduce_rules_match_finite_differences(
        x in tensor(-3.0, 3.0),
        seed: u64,
        axes_bits in 0u32..8,
        op in prop::sample::select(ReduceOp::ALL),
    ) {
        match op {
            ReduceOp::Sum => {}
            // Max has a kink wherever two elements tie.
            ReduceOp::Max => {
                let mut sorted = x.1.clone();
                sorted.sort_by(f64::total_cmp);
                prop_assume!(sorted.windows(2).all(|w| w[1] - w[0] > 1e-3));
            }
        }
        let axes: Vec<usize> = (0..x.0.len()).filter(|a| axes_bits & (1 << a) != 0).collect();
        check_gradients(&[x], seed, &move |g, p| g.reduce(op, p[0], &axes))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn broadcast_rule_matches_finite_differences(
        (x, target) in shape(1..=3).prop_flat_map(|to| {
            let from: Vec<_> = to.iter().map(|&d| Just(d).boxed().prop_union(Just(1).boxed())).collect();
            (from.prop_flat_map(|s| values_in(s, -3.0, 3.0)), Just(to))
        }),
        seed: u64,
    ) {
        let to: Vec<usize> = x.0.iter().zip(&target).map(|(&f, &t)| if f == 1 { t } else { f }).collect();
        check_gradients(&[x], seed, &move |g, p| g.broadcast(p[0], &to))?;
    }

    #[test]
    fn sum_ranks_rule_matches_finite_differences(
        x in tensor(-3.0, 3.0),
        seed: u64,
        ranks in 1..=4usize,
        square: bool,
    ) {
        // Alone, and as one of several identical ranks; `square` puts the sum between two
        // nonlinear ops, as batch norm's statistics sit.
        check_gradients_over_ranks(&[x], seed, &[], ranks as f64, &move |g, p| {
            let x = if square { g.binary(BinaryOp::Mul, p[0], p[0])? } else { p[0] };
            let s = g.sum_ranks(x)?;
            if square { g.binary(BinaryOp::Mul, s, p[0]) } else { Ok(s) }
        })?;
    }

    #[test]
    fn reshape_rule_matches_finite_differences(x in tensor(-3.0, 3.0), seed: u64) {
        let flat = vec![x.1.len()];
        check_gradients(&[x], seed, &move |g, p| g.reshape(p[0], &flat))?;
    }

    #[test]
    fn transpose_rule_matches_finite_differences(
        (x, perm) in shape(1..=3).prop_flat_map(|s| {
            let rank = s.len();
            (values_in(s, -3.0, 3.0), Just((0..rank).collect::<Vec<_>>()).prop_shuffle())
        }),
        seed: u64,
    ) {
        check_gradients(&[x], seed, &move |g, p| g.transpose(p[0], &perm))?;
    }

    #[test]
    fn matmul_rule_matches_finite_differences(
        (m, k, n) in (1usize..4, 1usize..4, 1usize..4),
        ta: bool,
        tb: bool,
        values in prop::collection::vec(-2.0f64..2.0, 18),
        seed: u64,
    ) {
        let a_shape = if ta { vec![k, m] } else { vec![m, k] };
        let b_shape = if tb { vec![n, k] } else { vec![k, n] };
        let a = (a_shape, values[..m * k].to_vec());
        let b = (b_shape, values[9..9 + k * n].to_vec());
        check_gradients(&[a, b], seed, &move |g, p| g.matmul(p[0], p[1], ta, tb))?;
    }
}

/// The convolution ops, each checked in both of its operands.
#[derive(Debug, Clone, Copy)]
enum ConvOp {
    /// `conv(x, w)`
    Conv,
    /// `conv_input_grad(dy, w)`
    InputGrad,
    /// `conv_weight_grad(x, dy)`
    WeightGrad,
}

/// The max-pooling ops, each checked in both of its operands.
#[derive(Debug, Clone, Copy)]
enum PoolOp {
    /// `max_pool(x, v)`, and `max_pool(x, x)` when asked
    MaxPool,
    /// `max_pool_grad(x, dy)`
    MaxPoolGrad,
}

/// One convolution axis: kernel, stride, dilation and padding on both sides
/// (uneven included), with the input grown where needed so that at least one
/// window fits; the output size is PyTorch's `(padded − span) / stride + 1`.
fn conv_axis() -> impl Strategy<Value = WindowAxis> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=2,
        0usize..=2,
        0usize..=2,
        1usize..=5,
    )
        .prop_map(|(kernel, stride, dilation, pad_lo, pad_hi, input)| {
            let span = dilation * (kernel - 1) + 1;
            let input = input.max(span.saturating_sub(pad_lo + pad_hi)).max(1);
            let output = (input + pad_lo + pad_hi - span) / stride + 1;
            WindowAxis {
                input,
                output,
                windows: AxisWindows::Strided {
                    kernel,
                    stride,
                    dilation,
                    pad_lo,
                },
            }
        })
}

/// One pooling axis: PyTorch's `max_pool` geometry (padding at most half the
/// kernel, floor or ceil mode, the last window starting inside the input or
/// its left padding, every window reading the input) or an adaptive axis.
fn pool_axis() -> impl Strategy<Value = WindowAxis> {
    let strided = (
        1usize..=3,
        1usize..=3,
        1usize..=2,
        0usize..=1,
        1usize..=5,
        any::<bool>(),
    )
        .prop_map(|(kernel, stride, dilation, pad, input, ceil_mode)| {
            let pad = pad.min(kernel / 2);
            let span = dilation * (kernel - 1) + 1;
            let input = input.max(span.saturating_sub(2 * pad)).max(1);
            let room = input + 2 * pad - span;
            let mut output = if ceil_mode {
                room.div_ceil(stride) + 1
            } else {
                room / stride + 1
            };
            if ceil_mode && (output - 1) * stride >= input + pad {
                output -= 1;
            }
            WindowAxis {
                input,
                output,
                windows: AxisWindows::Strided {
                    kernel,
                    stride,
                    dilation,
                    pad_lo: pad,
                },
            }
        });
    // PyTorch lets a dilated window fall wholly in the padding (its value is
    // -inf and its index out of range); the type rule refuses those windows.
    let strided = strided.prop_filter("every window reads the input", |axis| {
        (0..axis.output).all(|o| {
            let (start, len, step) = axis.window(o);
            (0..len).any(|k| {
                let p = start + (k * step) as isize;
                p >= 0 && (p as usize) < axis.input
            })
        })
    });
    let adaptive = (1usize..=5)
        .prop_flat_map(|input| (Just(input), 1..=input))
        .prop_map(|(input, output)| WindowAxis {
            input,
            output,
            windows: AxisWindows::Adaptive,
        });
    prop_oneof![3 => strided, 1 => adaptive]
}

fn window(axis: impl Strategy<Value = WindowAxis>) -> impl Strategy<Value = Window> {
    prop::collection::vec(axis, 1..=2).prop_map(|axes| Window { axes })
}

fn batched(n: usize, c: usize, spatial: &[usize]) -> Vec<usize> {
    let mut shape = vec![n, c];
    shape.extend_from_slice(spatial);
    shape
}

/// A convolution op, its window and groups, and its two operands.
fn conv_case() -> impl Strategy<Value = (ConvOp, Window, usize, Tensor, Tensor)> {
    let ops = [ConvOp::Conv, ConvOp::InputGrad, ConvOp::WeightGrad];
    (
        prop::sample::select(ops.to_vec()),
        window(conv_axis()),
        1usize..=2,
        1usize..=3,
        1usize..=2,
        1usize..=2,
    )
        .prop_flat_map(|(op, window, n, groups, c_per_group, o_per_group)| {
            let (c, o) = (c_per_group * groups, o_per_group * groups);
            let kernel = window.kernel_shape().expect("convolution axes are strided");
            let x = batched(n, c, &window.input_shape());
            let w = batched(o, c_per_group, &kernel);
            let dy = batched(n, o, &window.output_shape());
            let (a, b) = match op {
                ConvOp::Conv => (x, w),
                ConvOp::InputGrad => (dy, w),
                ConvOp::WeightGrad => (x, dy),
            };
            (
                Just(op),
                Just(window),
                Just(groups),
                values_in(a, -2.0, 2.0),
                values_in(b, -2.0, 2.0),
            )
        })
}

/// Values `0.25·k` for a shuffled `k` in `0..n`, shifted around zero: no two
/// elements within 0.25 of each other, so no perturbation moves an argmax.
fn distinct_values(shape: Vec<usize>) -> impl Strategy<Value = Tensor> {
    let n: usize = shape.iter().product();
    Just((0..n).collect::<Vec<usize>>())
        .prop_shuffle()
        .prop_map(move |order| {
            let values = order
                .iter()
                .map(|&k| 0.25 * k as f64 - 0.125 * n as f64)
                .collect();
            (shape.clone(), values)
        })
}

/// A max-pooling op, its window, `x` (distinct values) and the other operand.
fn pool_case() -> impl Strategy<Value = (PoolOp, Window, Tensor, Tensor)> {
    let ops = [PoolOp::MaxPool, PoolOp::MaxPoolGrad];
    (
        prop::sample::select(ops.to_vec()),
        window(pool_axis()),
        1usize..=2,
        1usize..=2,
    )
        .prop_flat_map(|(op, window, n, c)| {
            let x = batched(n, c, &window.input_shape());
            let other = match op {
                PoolOp::MaxPool => x.clone(),
                PoolOp::MaxPoolGrad => batched(n, c, &window.output_shape()),
            };
            (
                Just(op),
                Just(window),
                distinct_values(x),
                values_in(other, -2.0, 2.0),
            )
        })
}

proptest! {
    #![proptest_config(per_op(3))]

    #[test]
    fn conv_rules_match_finite_differences((op, window, groups, a, b) in conv_case(), seed: u64) {
        check_gradients(&[a, b], seed, &move |g, p| match op {
            ConvOp::Conv => g.conv(p[0], p[1], &window, groups),
            ConvOp::InputGrad => g.conv_input_grad(p[0], p[1], &window, groups),
            ConvOp::WeightGrad => g.conv_weight_grad(p[0], p[1], &window, groups),
        })?;
    }
}

proptest! {
    #![proptest_config(per_op(2))]

    /// `x` only chooses positions: its gradient is zero, which the finite
    /// difference confirms since no perturbation moves an argmax.
    #[test]
    fn max_pool_rules_match_finite_differences(
        (op, window, x, other) in pool_case(),
        seed: u64,
        pool_itself: bool,
    ) {
        check_gradients(&[x, other], seed, &move |g, p| match op {
            PoolOp::MaxPool if pool_itself => g.max_pool(p[0], &window),
            PoolOp::MaxPool => g.max_pool_at(p[0], p[1], &window),
            PoolOp::MaxPoolGrad => g.max_pool_grad(p[0], p[1], &window),
        })?;
    }
}

/// `loss = sum(one_hot(y) * x)`: the gradient wrt `x` is the one-hot matrix
/// itself, out-of-range indices give zero rows, and the i64 indices get none.
#[test]
fn one_hot_gradient_is_the_one_hot_matrix() {
    let mut g = Graph::new();
    let y = g.input("y", TensorType::i64(&[3]));
    let x = g.param("x", &[3, 4]);
    let hot = g.one_hot(y, 4).unwrap();
    let picked = g.binary(BinaryOp::Mul, hot, x).unwrap();
    let loss = g.sum_all(picked).unwrap();
    let grads = grad(&mut g, loss, &[x]).unwrap();
    g.add_output("dx", grads[0]);
    let order = g.topo_order().unwrap();
    let params = HashMap::from([("x".to_string(), vec![0.5f64; 12])]);
    let values = evaluate::<f64>(&g, &order, &[Value::I(vec![2, -100, 0])], &params).unwrap();
    let expected = [0., 0., 1., 0., 0., 0., 0., 0., 1., 0., 0., 0.];
    assert_eq!(values[grads[0].index()].as_f().as_slice(), &expected);
}

/// `stop_gradient` is the identity forward and has no gradient, so
/// `loss = sum(sg(x)·x + (x - sg(x))·c)` has the value `sum(x²)` and the
/// gradient `sg(x) + c = x + c` (the custom-gradient pattern losses use).
#[test]
fn stop_gradient_passes_values_and_blocks_gradients() {
    let mut g = Graph::new();
    let x = g.param("x", &[4]);
    let c = g.constant(vec![0.5, -2.0, 3.0, 1e12], &[4]).unwrap();
    let sg = g.unary(UnaryOp::StopGradient, x).unwrap();
    let squares = g.binary(BinaryOp::Mul, sg, x).unwrap();
    let zero = g.binary(BinaryOp::Sub, x, sg).unwrap();
    let surrogate = g.binary(BinaryOp::Mul, zero, c).unwrap();
    let total = g.binary(BinaryOp::Add, squares, surrogate).unwrap();
    let loss = g.sum_all(total).unwrap();
    let grads = grad(&mut g, loss, &[x]).unwrap();
    g.verify().unwrap();
    let order = g.topo_order().unwrap();
    let xs = vec![1.0f64, -2.0, 0.0, 4.0];
    let params = HashMap::from([("x".to_string(), xs.clone())]);
    let values = evaluate::<f64>(&g, &order, &[], &params).unwrap();
    assert_eq!(values[loss.index()].as_f().as_slice(), &[21.0]);
    let cs = [0.5, -2.0, 3.0, f64::from(1e12f32)];
    let want: Vec<f64> = xs.iter().zip(cs).map(|(x, c)| x + c).collect();
    assert_eq!(values[grads[0].index()].as_f(), &want);
}

/// `loss = sum(c ⊙ (r(a)·r(b)ᵀ))`, `r` the bf16 rounding: the rounding passes its gradient
/// straight through, and the backward products take the rounded adjoint, as autocast's bf16
/// backward does: `da = r(c)·r(b)`, `db = r(c)ᵀ·r(a)`, computed here by hand. The values
/// are chosen so that rounding changes every operand.
#[test]
fn bf16_products_round_their_backward_operands() {
    let (a_v, b_v, c_v) = (
        vec![1.003f64, -2.01, 0.5001, 3.3, 7.77, -0.123],
        vec![0.7123f64, 1.4321, -3.1234, 2.7345, 0.5813, 1.6234],
        vec![1.0001f64, -0.3333, 2.2222, 0.0999],
    );
    let mut g = Graph::new();
    let a = g.param("a", &[2, 3]);
    let b = g.param("b", &[2, 3]);
    let c = g.param("c", &[2, 2]);
    let ra = g.unary(UnaryOp::RoundBf16, a).unwrap();
    let rb = g.unary(UnaryOp::RoundBf16, b).unwrap();
    let y = g.matmul(ra, rb, false, true).unwrap();
    let weighted = g.binary(BinaryOp::Mul, y, c).unwrap();
    let loss = g.sum_all(weighted).unwrap();
    let grads = grad(&mut g, loss, &[a, b]).unwrap();
    g.verify().unwrap();
    let order = g.topo_order().unwrap();
    let params = HashMap::from([
        ("a".to_string(), a_v.clone()),
        ("b".to_string(), b_v.clone()),
        ("c".to_string(), c_v.clone()),
    ]);
    let values = evaluate::<f64>(&g, &order, &[], &params).unwrap();
    let r = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .map(|&x| f64::from(graphc_ir::round_bf16(x as f32)))
            .collect()
    };
    let (ra, rb, rc) = (r(&a_v), r(&b_v), r(&c_v));
    for v in [&a_v, &b_v, &c_v] {
        assert!(r(v).iter().zip(v.iter()).all(|(p, q)| p != q));
    }
    // da[i][k] = Σ_j rc[i][j]·rb[j][k]; db[j][k] = Σ_i rc[i][j]·ra[i][k].
    let mut da = vec![0.0; 6];
    let mut db = vec![0.0; 6];
    for i in 0..2 {
        for j in 0..2 {
            for k in 0..3 {
                da[i * 3 + k] += rc[i * 2 + j] * rb[j * 3 + k];
                db[j * 3 + k] += rc[i * 2 + j] * ra[i * 3 + k];
            }
        }
    }
    assert_eq!(values[grads[0].index()].as_f(), &da);
    assert_eq!(values[grads[1].index()].as_f(), &db);
}

proptest! {
    #![proptest_config(per_op(1))]

    /// A dropout-like use of random values: `select(u >= 1/2, x·u, x²)`
    /// differentiates as if `u` were a constant (the gradient is `u` or `2x`),
    /// at any seed, stream and step.
    #[test]
    fn random_uniform_is_a_constant_to_the_gradient(
        x in tensor(-3.0, 3.0),
        seed: u64,
        stream: u32,
        step: i64,
        weights_seed: u64,
    ) {
        let shape = x.0.clone();
        let build = move |g: &mut Graph, p: &[NodeId]| {
            let t = g.input("step", TensorType::i64(&[]));
            let u = g.random_uniform(t, seed, stream, &shape)?;
            let half = g.fill(0.5, &shape);
            let keep = g.compare(CompareOp::Ge, u, half)?;
            let scaled = g.binary(BinaryOp::Mul, p[0], u)?;
            let squared = g.binary(BinaryOp::Mul, p[0], p[0])?;
            g.select(keep, scaled, squared)
        };
        check_gradients_with_args(&[x], weights_seed, &[Value::I(vec![step])], &build)?;
    }
}

/// `loss = sum(x · u)` for random `u`: the gradient wrt `x` is `u` itself,
/// bit for bit, and the i64 step gets none.
#[test]
fn random_uniform_gradient_of_a_product_is_the_draw() {
    let mut g = Graph::new();
    let step = g.input("step", TensorType::i64(&[]));
    let x = g.param("x", &[2, 5]);
    let u = g.random_uniform(step, 42, 3, &[2, 5]).unwrap();
    let product = g.binary(BinaryOp::Mul, x, u).unwrap();
    let loss = g.sum_all(product).unwrap();
    let grads = grad(&mut g, loss, &[x]).unwrap();
    g.verify().unwrap();
    let order = g.topo_order().unwrap();
    let params = HashMap::from([("x".to_string(), vec![0.25f64; 10])]);
    let values = evaluate::<f64>(&g, &order, &[Value::I(vec![17])], &params).unwrap();
    let draw = values[u.index()].as_f();
    assert!(draw.iter().all(|&v| (0.0..1.0).contains(&v)), "{draw:?}");
    assert_eq!(values[grads[0].index()].as_f(), draw);
}
