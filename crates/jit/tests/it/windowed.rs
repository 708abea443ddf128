//! Convolution, its two gradients, max pooling and its gradient on the JIT
//! against the interpreter: random 1-d and 2-d geometries (strides, padding
//! including an uneven far side through `output`, dilation, groups, adaptive
//! pooling windows), each op alone, operands that are fills and reshapes, and
//! a training-like step (conv → relu → max pool → sum, its gradient written
//! out with the ops' adjoints, and an SGD update of the weight over two
//! steps, on values whose sums are exact: bit for bit).
//!
//! Max pooling and its gradient must match bit for bit, NaN and ±inf in the
//! input included: the argmax rule is the interpreter's and the gradient adds
//! in the interpreter's order. Convolution sums go through GEMMs, which
//! reassociate, so they match as the JIT's matrix products do (`basic.rs`,
//! `random_graphs.rs`): within relative 1e-5, plus an absolute floor of 1e-6
//! per summed term (values in [-1, 1], so a sum of `t` terms can cancel to
//! near zero with an error of order `t·ε`). On AVX-512 CPUs the JIT runs 2-d
//! 3×3 windows with stride and dilation 1 in the Winograd F(2×2, 3×3) domain,
//! whose transforms add roundings and larger intermediate sums: those cases
//! are held to the worst-case bound docs/architecture.md derives instead
//! (see [`winograd_floor`]), and drawn often by a property of their own. On
//! the exact 1/8 grid the transforms' coefficients (0, ±1, ±½) keep every sum
//! exact, so the training steps stay bit for bit on that path too.

use crate::support::{compare, lace_with_specials, values, Data};
use graphc_ir::{
    AxisWindows, BinaryOp, CompareOp, Graph, Op, TensorType, UnaryOp, Window, WindowAxis,
};
use graphc_jit::{compile_with, Options};
use proptest::prelude::*;

/// One spatial axis as drawn: input, kernel, stride, dilation, padding on both sides.
#[derive(Debug, Clone, Copy)]
struct AxisCase {
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: (usize, usize),
}

impl AxisCase {
    /// The strided axis, if the padded input holds one window.
    fn strided(self) -> Option<WindowAxis> {
        let span = (self.kernel - 1) * self.dilation + 1;
        let padded = self.input + self.pad.0 + self.pad.1;
        (padded >= span).then(|| WindowAxis {
            input: self.input,
            output: (padded - span) / self.stride + 1,
            windows: AxisWindows::Strided {
                kernel: self.kernel,
                stride: self.stride,
                dilation: self.dilation,
                pad_lo: self.pad.0,
            },
        })
    }
}

fn axis_case() -> impl Strategy<Value = AxisCase> {
    (
        1usize..10,
        1usize..5,
        1usize..4,
        1usize..4,
        0usize..3,
        0usize..3,
    )
        .prop_map(|(input, kernel, stride, dilation, lo, hi)| AxisCase {
            input,
            kernel,
            stride,
            dilation,
            pad: (lo, hi),
        })
}

#[derive(Debug, Clone)]
struct ConvCase {
    axes: Vec<AxisCase>,
    n: usize,
    groups: usize,
    cg: usize,
    og: usize,
    seed: u64,
}

/// A case over `axes` with 1–3 samples, `groups` groups and `channels`
/// channels per group on each side.
fn case_over(
    axes: impl Strategy<Value = Vec<AxisCase>>,
    groups: std::ops::Range<usize>,
    channels: std::ops::Range<usize>,
) -> impl Strategy<Value = ConvCase> {
    (
        axes,
        1usize..4,
        groups,
        channels.clone(),
        channels,
        any::<u64>(),
    )
        .prop_map(|(axes, n, groups, cg, og, seed)| ConvCase {
            axes,
            n,
            groups,
            cg,
            og,
            seed,
        })
}

/// A 2-d 3×3 window with stride and dilation 1 (the Winograd form's), rows
/// of up to 40 (more than 16 tiles), padding 0–2 on each side, 5–10
/// channels per group (the Winograd form needs 8 output channels; fewer take
/// the patch matrix).
fn winograd_case() -> impl Strategy<Value = ConvCase> {
    case_over(prop::collection::vec(winograd_axis(41), 2), 1..3, 5..11)
}

/// An axis of 3 taps, stride and dilation 1, inputs below `inputs`, padding
/// 0–2 on each side.
fn winograd_axis(inputs: usize) -> impl Strategy<Value = AxisCase> {
    (1..inputs, 0usize..3, 0usize..3).prop_map(|(input, lo, hi)| AxisCase {
        input,
        kernel: 3,
        stride: 1,
        dilation: 1,
        pad: (lo, hi),
    })
}

/// A 2-d window with stride 1 (the shifted form's with AVX2): kernels of 1–5
/// taps, dilation 1–2, rows of up to 20, padding 0–2 on each side, 5–8
/// channels per group (its input gradient needs 6 input channels).
fn shifted_case() -> impl Strategy<Value = ConvCase> {
    let axis = (1usize..21, 1usize..6, 1usize..3, 0usize..3, 0usize..3).prop_map(
        |(input, kernel, dilation, lo, hi)| AxisCase {
            input,
            kernel,
            stride: 1,
            dilation,
            pad: (lo, hi),
        },
    );
    case_over(prop::collection::vec(axis, 2), 1..3, 5..9)
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    case_over(prop::collection::vec(axis_case(), 1..=2), 1..4, 1..4)
}

impl ConvCase {
    fn window(&self) -> Option<Window> {
        Some(Window {
            axes: self
                .axes
                .iter()
                .map(|a| a.strided())
                .collect::<Option<_>>()?,
        })
    }
}

/// `[n, c, *spatial]`.
fn nc(n: usize, c: usize, spatial: &[usize]) -> Vec<usize> {
    let mut s = vec![n, c];
    s.extend_from_slice(spatial);
    s
}

/// The absolute floor for a sum of `terms` products of values in [-1, 1].
fn floor(terms: usize) -> f32 {
    1e-6 * terms as f32
}

/// Whether `window` is one the JIT may run in the Winograd domain: 2-d, 3×3,
/// stride and dilation 1.
fn winograd_window(window: &Window) -> bool {
    window.axes.len() == 2
        && window.axes.iter().all(|a| {
            matches!(
                a.windows,
                AxisWindows::Strided {
                    kernel: 3,
                    stride: 1,
                    dilation: 1,
                    ..
                }
            )
        })
}

/// The Winograd F(2×2, 3×3) path's worst-case absolute error for operands in
/// [-1, 1] (docs/architecture.md, "Winograd convolutions"), with
/// `γ_k = k·u / (1 − k·u)`, `u = 2⁻²⁴`: `γ_{C+11} · 64·C` for an output of the
/// forward product or the input gradient summing `C` source channels, and
/// `γ_{T+9} · 36·T` for a weight gradient summing `T` tiles (2×2 outputs of
/// every sample).
fn winograd_floor(chain: usize, magnitude: usize) -> f32 {
    let ku = chain as f64 * f64::powi(2.0, -24);
    (ku / (1.0 - ku) * magnitude as f64) as f32
}

/// A 3×3 window as [`winograd_case`]'s, rows of up to 12, with 16–24
/// channels per group on each side: convnet's conv2–4 in miniature, whose
/// operands `train.precision: bf16` rounds.
fn bf16_winograd_case() -> impl Strategy<Value = ConvCase> {
    case_over(prop::collection::vec(winograd_axis(13), 2), 1..3, 16..25)
}

/// Each convolution op alone on `c` against the interpreter, with operands
/// rounded to bf16 first when `bf16` (`train.precision: bf16`): both round
/// them as `graphc_ir::round_bf16` does, then the JIT convolves the rounded
/// values in f32, so the tolerances are fp32's.
fn check_conv_rounded(c: &ConvCase, bf16: bool) -> Result<bool, String> {
    let Some(window) = c.window() else {
        return Ok(false);
    };
    let (ci, co) = (c.cg * c.groups, c.og * c.groups);
    let x_shape = nc(c.n, ci, &window.input_shape());
    let y_shape = nc(c.n, co, &window.output_shape());
    let kernel = window.kernel_shape().unwrap();
    let w_shape = nc(co, c.cg, &kernel);
    let k_sp: usize = kernel.iter().product();
    let out_sp: usize = window.output_shape().iter().product();
    // Tiles of the Winograd form: of the output for the forward product and
    // the weight gradient, of the input for the input gradient.
    let tiles = |shape: Vec<usize>| shape.iter().map(|s| s.div_ceil(2)).product::<usize>();
    let winograd = winograd_window(&window);
    let bound = |chain: usize, magnitude: usize| {
        if winograd {
            winograd_floor(chain, magnitude)
        } else {
            0.0
        }
    };
    let weight_tiles = c.n * tiles(window.output_shape());
    let ops = [
        (
            Op::Conv {
                window: window.clone(),
                groups: c.groups,
            },
            [&x_shape, &w_shape],
            c.cg * k_sp,
            bound(c.cg + 11, 64 * c.cg),
        ),
        (
            Op::ConvInputGrad {
                window: window.clone(),
                groups: c.groups,
            },
            [&y_shape, &w_shape],
            c.og * k_sp,
            bound(c.og + 11, 64 * c.og),
        ),
        (
            Op::ConvWeightGrad {
                window: window.clone(),
                groups: c.groups,
            },
            [&x_shape, &y_shape],
            c.n * out_sp,
            bound(weight_tiles + 9, 36 * weight_tiles),
        ),
    ];
    for (i, (op, [a_shape, b_shape], terms, bound)) in ops.into_iter().enumerate() {
        let mut g = Graph::new();
        let mut a = g.input("a", TensorType::f32(a_shape));
        let mut b = g.input("b", TensorType::f32(b_shape));
        if bf16 {
            a = g.unary(UnaryOp::RoundBf16, a).map_err(|e| e.to_string())?;
            b = g.unary(UnaryOp::RoundBf16, b).map_err(|e| e.to_string())?;
        }
        let name = op.mnemonic();
        let r = g.add(op, &[a, b]).map_err(|e| format!("{name}: {e}"))?;
        g.add_output("r", r);
        let len = |s: &[usize]| s.iter().product::<usize>();
        let args = [
            Data::F(values(c.seed + i as u64, len(a_shape), -1.0, 1.0)),
            Data::F(values(c.seed + 10 + i as u64, len(b_shape), -1.0, 1.0)),
        ];
        compare(&g, &[], &args, 1, 1e-5, floor(terms).max(bound))
            .map_err(|e| format!("{name} {window} groups {}: {e}", c.groups))?;
    }
    Ok(true)
}

/// Each convolution op alone on `c` against the interpreter.
fn check_conv(c: &ConvCase) -> Result<bool, String> {
    check_conv_rounded(c, false)
}

#[derive(Debug, Clone)]
struct PoolCase {
    axes: Vec<(AxisCase, Option<usize>)>,
    n: usize,
    c: usize,
    separate_values: bool,
    seed: u64,
}

fn pool_case() -> impl Strategy<Value = PoolCase> {
    (
        prop::collection::vec((axis_case(), prop::option::of(1usize..10)), 1..=2),
        1usize..4,
        1usize..4,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(axes, n, c, separate_values, seed)| PoolCase {
            axes,
            n,
            c,
            separate_values,
            seed,
        })
}

impl PoolCase {
    /// Strided axes, or adaptive ones where an output size was drawn (no
    /// larger than the input).
    fn window(&self) -> Option<Window> {
        let axes = self
            .axes
            .iter()
            .map(|&(a, adaptive)| match adaptive {
                Some(out) => Some(WindowAxis {
                    input: a.input,
                    output: out.min(a.input),
                    windows: AxisWindows::Adaptive,
                }),
                None => a.strided(),
            })
            .collect::<Option<_>>()?;
        Some(Window { axes })
    }
}

/// Max pooling (of `x` itself, or carrying separate values) and its gradient
/// on `p`, bit for bit.
fn check_pool(p: &PoolCase) -> Result<bool, String> {
    let Some(window) = p.window() else {
        return Ok(false);
    };
    let x_shape = nc(p.n, p.c, &window.input_shape());
    let y_shape = nc(p.n, p.c, &window.output_shape());
    let len = |s: &[usize]| s.iter().product::<usize>();
    let mut x = values(p.seed, len(&x_shape), -2.0, 2.0);
    // Ties: a coarse grid of values, then NaN, ±inf and ±0.
    for v in x.iter_mut() {
        *v = (*v * 2.0).round() / 2.0;
    }
    lace_with_specials(&mut x, p.seed + 1);
    let mut g = Graph::new();
    let xi = g.input("x", TensorType::f32(&x_shape));
    let pooled = if p.separate_values {
        let v = g.input("v", TensorType::f32(&x_shape));
        g.add(Op::MaxPool(window.clone()), &[xi, v])
    } else {
        g.max_pool(xi, &window)
    };
    // A window wholly in the padding is a type error: not a case.
    let Ok(pooled) = pooled else {
        return Ok(false);
    };
    let dy = g.input("dy", TensorType::f32(&y_shape));
    let dx = g
        .add(Op::MaxPoolGrad(window.clone()), &[xi, dy])
        .map_err(|e| e.to_string())?;
    g.add_output("y", pooled);
    g.add_output("dx", dx);
    let mut args = vec![Data::F(x)];
    if p.separate_values {
        args.push(Data::F(values(p.seed + 2, len(&x_shape), -1.0, 1.0)));
    }
    args.push(Data::F(values(p.seed + 3, len(&y_shape), -1.0, 1.0)));
    compare(&g, &[], &args, 1, 0.0, 0.0).map_err(|e| format!("{window}: {e}"))?;
    Ok(true)
}

/// What runs between a parameter and its max pooling in
/// [`check_fused_pool`]: nothing, a relu, a per-channel affine map (batch
/// norm's normalisation `x·α + β`), or both.
#[derive(Debug, Clone, Copy)]
enum Before {
    Nothing,
    Relu,
    Affine,
    AffineRelu,
}

fn before() -> impl Strategy<Value = Before> {
    prop_oneof![
        Just(Before::Nothing),
        Just(Before::Relu),
        Just(Before::Affine),
        Just(Before::AffineRelu),
    ]
}

/// `sum(r · max_pool(before(x))²)` and its gradients in `x` (and `α`, `β`),
/// built by autodiff and optimized as a training step is, on values with
/// ties, whole non-positive windows, NaN and ±inf: the JIT pairs the pooling
/// with its gradient (argmaxes kept, the input not searched again), after a
/// relu the mask runs on the pooled gradient, and every output matches the
/// interpreter bit for bit (products and sums on grids of 1/2 and 1/8 are exact).
fn check_fused_pool(p: &PoolCase, before: Before) -> Result<bool, String> {
    let Some(window) = p.window() else {
        return Ok(false);
    };
    let x_shape = nc(p.n, p.c, &window.input_shape());
    let y_shape = nc(p.n, p.c, &window.output_shape());
    let len = |s: &[usize]| s.iter().product::<usize>();
    let grid = |v: Vec<f32>, step: f32| -> Vec<f32> {
        v.into_iter().map(|x| (x / step).round() * step).collect()
    };
    let mut g = Graph::new();
    let x = g.param("x", &x_shape);
    let r = g.input("r", TensorType::f32(&y_shape));
    let mut params = vec![x];
    let mut h = x;
    let e = |e: graphc_ir::IrError| e.to_string();
    if matches!(before, Before::Affine | Before::AffineRelu) {
        let per_channel: Vec<usize> = (0..x_shape.len())
            .map(|i| if i == 1 { p.c } else { 1 })
            .collect();
        let mut channel = |name: &str| -> Result<_, String> {
            let v = g.param(name, &[p.c]);
            params.push(v);
            let v = g.reshape(v, &per_channel).map_err(e)?;
            g.broadcast_to(v, &x_shape).map_err(e)
        };
        let (alpha, beta) = (channel("alpha")?, channel("beta")?);
        h = g.binary(BinaryOp::Mul, h, alpha).map_err(e)?;
        h = g.binary(BinaryOp::Add, h, beta).map_err(e)?;
    }
    let relu = matches!(before, Before::Relu | Before::AffineRelu);
    if relu {
        h = g.unary(UnaryOp::Relu, h).map_err(e)?;
    }
    // A window wholly in the padding is a type error: not a case.
    let Ok(pooled) = g.max_pool(h, &window) else {
        return Ok(false);
    };
    // Squared, so that the pooling's gradient depends on its result (as a
    // training step's does through the loss) and runs after it.
    let square = g.binary(BinaryOp::Mul, pooled, pooled).map_err(e)?;
    let weighted = g.binary(BinaryOp::Mul, square, r).map_err(e)?;
    let loss = g.sum_all(weighted).map_err(e)?;
    let grads = graphc_autodiff::grad(&mut g, loss, &params).map_err(|e| e.to_string())?;
    g.add_output("loss", loss);
    for (i, d) in grads.into_iter().enumerate() {
        g.add_output(&format!("d{i}"), d);
    }
    graphc_opt::optimize(&mut g).map_err(e)?;
    let pool_grads: Vec<_> = g
        .node_ids()
        .filter(|&v| matches!(g.node(v).op, Op::MaxPoolGrad(_)))
        .collect();
    if pool_grads.len() != 1 {
        return Err(format!(
            "{} pooling gradients\n{}",
            pool_grads.len(),
            g.to_text()
        ));
    }
    let dy = g.operands(pool_grads[0])[1];
    if relu != matches!(g.node(dy).op, Op::Select) {
        return Err(format!(
            "relu {relu}: the pooling gradient scatters {dy}\n{}",
            g.to_text()
        ));
    }
    let jit = compile_with(&g, &Options { verify: true }).map_err(e)?;
    if jit.stats().argmax_pools != 2 {
        return Err(format!("not paired: {:?}", jit.stats()));
    }
    let mut xs = grid(values(p.seed, len(&x_shape), -2.0, 2.0), 0.5);
    lace_with_specials(&mut xs, p.seed + 1);
    let mut init = vec![("x".to_string(), xs)];
    if params.len() == 3 {
        init.push((
            "alpha".into(),
            grid(values(p.seed + 2, p.c, -1.0, 1.0), 0.5),
        ));
        init.push(("beta".into(), grid(values(p.seed + 3, p.c, -1.0, 1.0), 0.5)));
    }
    let r = grid(values(p.seed + 4, len(&y_shape), -1.0, 1.0), 0.125);
    compare(&g, &init, &[Data::F(r)], 1, 0.0, 0.0)
        .map_err(|e| format!("{window} after {before:?}: {e}"))?;
    Ok(true)
}

/// `sum(max_pool(relu(conv(x, w))))` with its gradient in `w` written out
/// with the ops' adjoints, and `w -= dw/8`, as one step.
fn training_graph(c: &ConvCase, pool: &Window, window: &Window) -> Option<Graph> {
    let (ci, co) = (c.cg * c.groups, c.og * c.groups);
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&nc(c.n, ci, &window.input_shape())));
    let w = g.param("w", &nc(co, c.cg, &window.kernel_shape()?));
    let y = g.conv(x, w, window, c.groups).ok()?;
    let y_shape = g.shape(y).to_vec();
    let zero = g.fill(0.0, &y_shape);
    let r = g.binary(BinaryOp::Max, y, zero).ok()?;
    let m = g.max_pool(r, pool).ok()?;
    let loss = g.sum_all(m).ok()?;
    g.add_output("loss", loss);
    // d loss / d m = 1; through the pooling, the relu and the convolution.
    let ones = g.fill(1.0, g.shape(m).to_vec().as_slice());
    let dr = g.add(Op::MaxPoolGrad(pool.clone()), &[r, ones]).ok()?;
    let positive = g.compare(CompareOp::Gt, y, zero).ok()?;
    let dy = g.select(positive, dr, zero).ok()?;
    let dw = g
        .add(
            Op::ConvWeightGrad {
                window: window.clone(),
                groups: c.groups,
            },
            &[x, dy],
        )
        .ok()?;
    let lr = g.fill(0.125, g.shape(w).to_vec().as_slice());
    let step = g.binary(BinaryOp::Mul, lr, dw).ok()?;
    let updated = g.binary(BinaryOp::Sub, w, step).ok()?;
    g.add_assign(w, updated).ok()?;
    g.add_output("dw", dw);
    Some(g)
}

fn check_training(c: &ConvCase, pool_axes: &[AxisCase]) -> Result<bool, String> {
    let Some(window) = c.window() else {
        return Ok(false);
    };
    let out = window.output_shape();
    let pool = pool_axes
        .iter()
        .zip(&out)
        .map(|(a, &input)| AxisCase { input, ..*a }.strided())
        .collect::<Option<Vec<_>>>();
    let Some(pool) = pool.map(|axes| Window { axes }) else {
        return Ok(false);
    };
    if pool.axes.len() != out.len() {
        return Ok(false);
    }
    let Some(g) = training_graph(c, &pool, &window) else {
        return Ok(false);
    };
    let x_len: usize = g.shape(g.arguments()[0]).iter().product();
    let w = g.find_leaf("w").unwrap();
    let w_len: usize = g.shape(w).iter().product();
    // Values on a grid of 1/8 (and a learning rate of 1/8) keep every sum of
    // the two steps exact in f32 whatever its order, so GEMM and interpreter
    // agree bit for bit, and so do the relu's sign and the pooling's argmax
    // that depend on them.
    let grid = |v: Vec<f32>| v.into_iter().map(|x| (x * 8.0).round() / 8.0).collect();
    let init = [("w".to_string(), grid(values(c.seed + 5, w_len, -1.0, 1.0)))];
    let args = [Data::F(grid(values(c.seed + 6, x_len, -1.0, 1.0)))];
    compare(&g, &init, &args, 2, 0.0, 0.0)
        .map_err(|e| format!("{window} then pool {pool}: {e}\n{}", g.to_text()))?;
    Ok(true)
}

/// Fails the case on a mismatch and rejects it (proptest draws another)
/// when the geometry drawn is not a valid one.
fn verdict(result: Result<bool, String>) -> Result<(), TestCaseError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(TestCaseError::reject("not a valid geometry")),
        Err(e) => Err(TestCaseError::fail(e)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn convolutions_match_the_interpreter(c in conv_case()) {
        verdict(check_conv(&c))?;
    }

    #[test]
    fn shifted_convolutions_match_the_interpreter(c in shifted_case()) {
        verdict(check_conv(&c))?;
    }

    #[test]
    fn winograd_convolutions_match_the_interpreter(c in winograd_case()) {
        verdict(check_conv(&c))?;
    }

    #[test]
    fn bf16_convolutions_match_the_interpreter(c in bf16_winograd_case()) {
        verdict(check_conv_rounded(&c, true))?;
    }

    #[test]
    fn a_winograd_conv_relu_pool_step_matches_the_interpreter_bit_for_bit(
        c in winograd_case(),
        pool in prop::collection::vec(axis_case(), 2),
    ) {
        verdict(check_training(&c, &pool))?;
    }

    #[test]
    fn max_pooling_matches_the_interpreter_bit_for_bit(p in pool_case()) {
        verdict(check_pool(&p))?;
    }

    #[test]
    fn pooling_fused_with_its_neighbours_matches_the_interpreter_bit_for_bit(
        p in pool_case(),
        before in before(),
    ) {
        verdict(check_fused_pool(&p, before))?;
    }

    #[test]
    fn a_conv_relu_pool_step_matches_the_interpreter(
        c in conv_case(),
        pool in prop::collection::vec(axis_case(), 2),
    ) {
        verdict(check_training(&c, &pool))?;
    }
}

/// Two convolutions (the second grouped and strided) with a relu and a max
/// pooling between them, differentiated by `graphc-autodiff` (so the
/// second's input gradient runs too) and optimized as a training step is,
/// with an SGD update of both weights over two steps; values on a 1/8 grid
/// keep every sum exact, so the JIT matches bit for bit (a third step's sums
/// outgrow f32's exact range: the loss is a plain sum, its gradients large).
#[test]
fn an_autodiff_step_through_two_convolutions_matches_the_interpreter_bit_for_bit() {
    let strided = |input, kernel, stride, pad| {
        AxisCase {
            input,
            kernel,
            stride,
            dilation: 1,
            pad,
        }
        .strided()
        .unwrap()
    };
    let conv1 = Window {
        axes: vec![strided(9, 3, 1, (1, 1)), strided(8, 3, 1, (1, 1))],
    };
    let pool = Window {
        axes: vec![strided(9, 2, 2, (0, 1)), strided(8, 2, 2, (0, 0))],
    };
    let conv2 = Window {
        axes: vec![strided(5, 3, 2, (1, 1)), strided(4, 2, 1, (0, 0))],
    };
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[3, 2, 9, 8]));
    let w1 = g.param("w1", &[4, 2, 3, 3]);
    let w2 = g.param("w2", &[6, 2, 3, 2]);
    let y1 = g.conv(x, w1, &conv1, 1).unwrap();
    let zero = g.fill(0.0, &[3, 4, 9, 8]);
    let r = g.binary(BinaryOp::Max, y1, zero).unwrap();
    let m = g.max_pool(r, &pool).unwrap();
    let y2 = g.conv(m, w2, &conv2, 2).unwrap();
    let loss = g.sum_all(y2).unwrap();
    g.add_output("loss", loss);
    let grads = graphc_autodiff::grad(&mut g, loss, &[w1, w2]).unwrap();
    for (w, dw) in [w1, w2].into_iter().zip(grads) {
        let shape = g.shape(w).to_vec();
        let lr = g.fill(0.125, &shape);
        let step = g.binary(BinaryOp::Mul, lr, dw).unwrap();
        let updated = g.binary(BinaryOp::Sub, w, step).unwrap();
        g.add_assign(w, updated).unwrap();
    }
    graphc_opt::optimize(&mut g).unwrap();
    let grid = |v: Vec<f32>| v.into_iter().map(|x| (x * 8.0).round() / 8.0).collect();
    let init = [
        ("w1".to_string(), grid(values(21, 4 * 2 * 9, -1.0, 1.0))),
        ("w2".to_string(), grid(values(22, 6 * 2 * 6, -1.0, 1.0))),
    ];
    let args = [Data::F(grid(values(23, 3 * 2 * 9 * 8, -1.0, 1.0)))];
    compare(&g, &init, &args, 2, 0.0, 0.0).unwrap();
}

/// Operands that are not plain buffers: the input a reshape of a flat
/// argument, the weight (and `dy`) uniform fills, as the lowering of matrix
/// products handles them.
#[test]
fn fills_and_reshapes_as_operands_match_the_interpreter() {
    let window = Window {
        axes: vec![
            AxisCase {
                input: 6,
                kernel: 3,
                stride: 1,
                dilation: 1,
                pad: (1, 1),
            }
            .strided()
            .unwrap(),
            AxisCase {
                input: 5,
                kernel: 2,
                stride: 2,
                dilation: 1,
                pad: (0, 1),
            }
            .strided()
            .unwrap(),
        ],
    };
    let (n, c, o) = (2, 3, 4);
    let x_shape = nc(n, c, &window.input_shape());
    let flat = [n, x_shape[1..].iter().product()];
    let y_shape = nc(n, o, &window.output_shape());
    let w_shape = nc(o, c, &window.kernel_shape().unwrap());
    let mut g = Graph::new();
    let xf = g.input("x", TensorType::f32(&flat));
    let x = g.reshape(xf, &x_shape).unwrap();
    let w = g.fill(0.25, &w_shape);
    let y = g.conv(x, w, &window, 1).unwrap();
    let dy = g.fill(-0.5, &y_shape);
    let conv = |op: fn(Window) -> Op| op(window.clone());
    let dx = g
        .add(
            conv(|window| Op::ConvInputGrad { window, groups: 1 }),
            &[dy, w],
        )
        .unwrap();
    let dw = g
        .add(
            conv(|window| Op::ConvWeightGrad { window, groups: 1 }),
            &[x, dy],
        )
        .unwrap();
    let pooled = g.max_pool(x, &window_for_pool()).unwrap();
    g.add_output("y", y);
    g.add_output("dx", dx);
    g.add_output("dw", dw);
    g.add_output("pooled", pooled);
    let args = [Data::F(values(3, flat[0] * flat[1], -1.0, 1.0))];
    compare(&g, &[], &args, 1, 1e-5, floor(64)).unwrap();
}

/// A 2×2 pooling over the 6×5 input of the test above.
fn window_for_pool() -> Window {
    Window {
        axes: vec![
            AxisCase {
                input: 6,
                kernel: 2,
                stride: 2,
                dilation: 1,
                pad: (0, 0),
            }
            .strided()
            .unwrap(),
            AxisCase {
                input: 5,
                kernel: 2,
                stride: 2,
                dilation: 1,
                pad: (0, 1),
            }
            .strided()
            .unwrap(),
        ],
    }
}

/// The lenet shapes on the JIT, large enough to split across threads (the
/// property tests' shapes stay on one).
#[test]
fn lenet_sized_layers_match_the_interpreter() {
    let c = ConvCase {
        axes: vec![
            AxisCase {
                input: 28,
                kernel: 5,
                stride: 1,
                dilation: 1,
                pad: (2, 2)
            };
            2
        ],
        n: 16,
        groups: 1,
        cg: 1,
        og: 6,
        seed: 11,
    };
    assert!(check_conv(&c).unwrap());
    // Convnet-like channel counts (the weight gradient's transposed patch copy).
    let wide = ConvCase {
        axes: vec![
            AxisCase {
                input: 8,
                kernel: 3,
                stride: 1,
                dilation: 1,
                pad: (1, 1)
            };
            2
        ],
        n: 4,
        groups: 2,
        cg: 3,
        og: 32,
        seed: 13,
    };
    assert!(check_conv(&wide).unwrap());
    let pool = AxisCase {
        input: 28,
        kernel: 2,
        stride: 2,
        dilation: 1,
        pad: (0, 0),
    };
    assert!(check_training(&c, &[pool, pool]).unwrap());
    assert!(check_pool(&PoolCase {
        axes: vec![(pool, None), (pool, None)],
        n: 16,
        c: 6,
        separate_values: false,
        seed: 12,
    })
    .unwrap());
}
