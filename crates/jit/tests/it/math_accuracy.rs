//! Every unary op of the JIT against an f64 reference, driven by
//! [`UnaryOp::ALL`]: the polynomial transcendentals within 4 ulp, `sqrt`
//! correctly rounded and the sign and identity ops exact, wherever the exact
//! result is a normal f32; plus clean saturation and NaN propagation at the
//! edges.
//!
//! The default sweep takes every 4099th f32 bit pattern (all binades, both
//! signs), every 61st subnormal of both signs, and the 4096 floats on each
//! side of each point where an op changes regime (polynomial range
//! boundaries, overflow and underflow thresholds, 0 and 1): about 1.4 M
//! inputs per op, about a second for all ops in the test profile.
//!
//! `GRAPHC_FULL_ACCURACY=1` sweeps every 97th bit pattern instead (about 44 M
//! inputs per op, tens of seconds): run it after changing
//! `crates/jit/src/math.rs`, with `--nocapture` to see each op's maximum.

use graphc_ir::{Arg, Executable, Graph, TensorType, UnaryOp};
use graphc_jit::{compile_with, JitExecutable, Options};

const CHUNK: usize = 1 << 20;
/// Bit-pattern stride of the default sweep.
const COARSE_STRIDE: u64 = 4099;
/// Bit-pattern stride of the full sweep (`GRAPHC_FULL_ACCURACY=1`).
const FULL_STRIDE: u64 = 97;
/// Stride over the subnormal bit patterns (of each sign).
const SUBNORMAL_STRIDE: usize = 61;
/// Floats checked on each side of a regime boundary.
const BOUNDARY_WINDOW: usize = 4096;

/// What the JIT owes the reference for one op.
struct Accuracy {
    /// The exact result, in f64.
    reference: fn(f64) -> f64,
    /// Largest error allowed, in ulp of the exact result.
    max_ulp: f64,
    /// Inputs where the code changes regime; the floats around each are swept densely.
    boundaries: &'static [f32],
    /// Inputs with an exactly known result (saturation, identities at 0).
    edges: &'static [(f32, f32)],
    /// Inputs outside the domain, where the result is NaN (as is NaN itself for every op).
    nan_at: &'static [f32],
    /// The largest |x| the ulp bound holds for (the argument reduction of `sin` and `cos`
    /// loses digits beyond it); larger inputs are only checked to stay within `bounded`.
    domain: f32,
    /// Bounds every finite input's result must stay within.
    bounded: (f32, f32),
}

/// The op table of this test: one exhaustive match, so a new op gets checked here
/// from the moment it exists.
fn accuracy(op: UnaryOp) -> Accuracy {
    const INF: f32 = f32::INFINITY;
    /// `ln f32::MAX`: `exp` overflows above it.
    const LN_MAX: f32 = 88.722_84;
    /// `ln f32::MIN_POSITIVE`: `exp` turns subnormal below it.
    const LN_MIN_NORMAL: f32 = -87.336_55;
    /// `ln 2⁻¹⁵⁰`: `exp` underflows to 0 below it.
    const LN_UNDERFLOW: f32 = -103.972_08;
    const HALF_LN2: f32 = std::f32::consts::LN_2 / 2.0;
    let exact = |reference: fn(f64) -> f64| Accuracy {
        reference,
        max_ulp: 0.0,
        boundaries: &[0.0],
        edges: &[],
        nan_at: &[],
        domain: INF,
        bounded: (-INF, INF),
    };
    match op {
        UnaryOp::Sin | UnaryOp::Cos => Accuracy {
            reference: if op == UnaryOp::Sin {
                f64::sin
            } else {
                f64::cos
            },
            max_ulp: 4.0,
            boundaries: &[
                0.0,
                std::f32::consts::FRAC_PI_4,
                -std::f32::consts::FRAC_PI_4,
                std::f32::consts::FRAC_PI_2,
                std::f32::consts::PI,
                -std::f32::consts::PI,
                100.0,
            ],
            edges: if op == UnaryOp::Sin {
                &[(0.0, 0.0), (-0.0, -0.0), (1e-30, 1e-30), (-1e-30, -1e-30)]
            } else {
                &[(0.0, 1.0), (-0.0, 1.0), (1e-30, 1.0)]
            },
            nan_at: &[INF, -INF],
            domain: 100.0,
            bounded: (-1.0, 1.0),
        },
        UnaryOp::Neg => Accuracy {
            edges: &[(INF, -INF), (-INF, INF), (0.0, -0.0)],
            ..exact(|x| -x)
        },
        UnaryOp::Abs => Accuracy {
            edges: &[(-INF, INF), (-0.0, 0.0), (-2.5, 2.5)],
            ..exact(f64::abs)
        },
        UnaryOp::Relu => Accuracy {
            edges: &[
                (INF, INF),
                (-INF, 0.0),
                (-0.0, -0.0),
                (-2.5, 0.0),
                (2.5, 2.5),
            ],
            ..exact(|x| if x < 0.0 { 0.0 } else { x })
        },
        UnaryOp::RoundBf16 => Accuracy {
            // Halfway and neighbouring cases around 1 and the largest bf16 are swept densely.
            boundaries: &[0.0, 1.0, 1.003_906_3, f32::MIN_POSITIVE, 3.389_531_4e38],
            edges: &[
                (INF, INF),
                (-INF, -INF),
                (-0.0, -0.0),
                (f32::MAX, INF),
                (1.003_906_3, 1.0),
            ],
            ..exact(|x| f64::from(graphc_ir::round_bf16(x as f32)))
        },
        UnaryOp::StopGradient => Accuracy {
            edges: &[(INF, INF), (-INF, -INF), (-0.0, -0.0)],
            ..exact(|x| x)
        },
        UnaryOp::Sqrt => Accuracy {
            max_ulp: 0.5,
            boundaries: &[0.0, f32::MIN_POSITIVE, 1.0, f32::MAX],
            edges: &[(INF, INF), (0.0, 0.0), (4.0, 2.0)],
            nan_at: &[-1.0, -f32::MIN_POSITIVE, -INF],
            ..exact(f64::sqrt)
        },
        UnaryOp::Exp => Accuracy {
            reference: f64::exp,
            max_ulp: 4.0,
            boundaries: &[
                0.0,
                HALF_LN2,
                -HALF_LN2,
                LN_MAX,
                89.0,
                LN_MIN_NORMAL,
                LN_UNDERFLOW,
                -104.0,
            ],
            edges: &[
                (89.0, INF),
                (1e30, INF),
                (INF, INF),
                (-104.0, 0.0),
                (-1e30, 0.0),
                (-INF, 0.0),
                (0.0, 1.0),
            ],
            nan_at: &[],
            domain: INF,
            bounded: (-INF, INF),
        },
        UnaryOp::Log => Accuracy {
            reference: f64::ln,
            max_ulp: 4.0,
            boundaries: &[
                f32::MIN_POSITIVE,
                std::f32::consts::FRAC_1_SQRT_2,
                1.0,
                std::f32::consts::SQRT_2,
                f32::MAX,
            ],
            edges: &[
                (0.0, -INF),
                (-0.0, -INF),
                (INF, INF),
                (1.0, 0.0),
                (f32::MIN_POSITIVE / 1024.0, -94.268_02),
            ],
            nan_at: &[-1.0, -1e-30, -INF],
            domain: INF,
            bounded: (-INF, INF),
        },
        UnaryOp::Log1p => Accuracy {
            reference: f64::ln_1p,
            max_ulp: 4.0,
            boundaries: &[
                0.0,
                // Where `1 + x` stops rounding to 1.
                5.960_464_5e-8,
                -2.980_232_2e-8,
                -1.0,
                std::f32::consts::FRAC_1_SQRT_2 - 1.0,
                std::f32::consts::SQRT_2 - 1.0,
                f32::MAX,
            ],
            edges: &[(-1.0, -INF), (INF, INF), (0.0, 0.0), (1e-30, 1e-30)],
            nan_at: &[-1.5, -INF],
            domain: INF,
            bounded: (-INF, INF),
        },
        UnaryOp::Tanh => Accuracy {
            reference: f64::tanh,
            max_ulp: 4.0,
            boundaries: &[
                0.0,
                0.625,
                -0.625,
                // Where tanh rounds to ±1, and where `e^{2|x|}` overflows.
                9.010_913,
                -9.010_913,
                LN_MAX / 2.0,
                -LN_MAX / 2.0,
            ],
            edges: &[
                (10.0, 1.0),
                (1e30, 1.0),
                (INF, 1.0),
                (-10.0, -1.0),
                (-INF, -1.0),
                (0.0, 0.0),
                (1e-30, 1e-30),
            ],
            nan_at: &[],
            domain: INF,
            bounded: (-INF, INF),
        },
        UnaryOp::Sigmoid => Accuracy {
            reference: |x| 1.0 / (1.0 + (-x).exp()),
            max_ulp: 4.0,
            boundaries: &[
                0.0,
                // Where the result rounds to 1, and where `e^-x` overflows,
                // turns the result subnormal, or underflows.
                17.328_68,
                -LN_MAX,
                LN_MIN_NORMAL,
                LN_UNDERFLOW,
                -104.0,
            ],
            edges: &[
                (100.0, 1.0),
                (INF, 1.0),
                (-200.0, 0.0),
                (-INF, 0.0),
                (0.0, 0.5),
            ],
            nan_at: &[],
            domain: INF,
            bounded: (-INF, INF),
        },
    }
}

fn kernel(op: UnaryOp) -> JitExecutable {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[CHUNK]));
    let y = g.unary(op, x).unwrap();
    g.add_output("y", y);
    compile_with(&g, &Options { verify: true }).unwrap()
}

/// Size of one unit in the last place of f32 at magnitude `r` (normal range).
fn ulp(r: f64) -> f64 {
    let e = r.abs().log2().floor();
    (e - 23.0).exp2()
}

/// Runs `op` on `xs` (at most CHUNK values).
fn apply(exe: &mut JitExecutable, xs: &[f32]) -> Vec<f32> {
    let mut input = xs.to_vec();
    input.resize(CHUNK, 0.0);
    exe.run(&[Arg::F32(&input)]).unwrap();
    exe.output(0)[..xs.len()].to_vec()
}

/// The inputs swept for an op with these regime boundaries: every `stride`th
/// bit pattern, the subnormals, and the floats around each boundary.
fn sweep(stride: u64, boundaries: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let all = (0..=u64::from(u32::MAX))
        .step_by(stride as usize)
        .map(|bits| f32::from_bits(bits as u32));
    let subnormals = (1..f32::MIN_POSITIVE.to_bits())
        .step_by(SUBNORMAL_STRIDE)
        .flat_map(|bits| [f32::from_bits(bits), -f32::from_bits(bits)]);
    let around = boundaries.iter().flat_map(|&b| {
        let first = (0..BOUNDARY_WINDOW).fold(b, |x, _| x.next_down());
        std::iter::successors(Some(first), |x| Some(x.next_up())).take(2 * BOUNDARY_WINDOW + 1)
    });
    all.chain(subnormals)
        .chain(around)
        .filter(|x| x.is_finite())
}

/// Largest error in ulp over the sweep where the exact result is a normal f32, and where it happened.
fn max_ulp_error(op: UnaryOp, stride: u64) -> (f64, f32) {
    let accuracy = accuracy(op);
    let mut exe = kernel(op);
    let mut worst = (0.0f64, 0.0f32);
    let mut inputs = sweep(stride, accuracy.boundaries).peekable();
    let mut xs = Vec::with_capacity(CHUNK);
    while inputs.peek().is_some() {
        xs.clear();
        xs.extend(inputs.by_ref().take(CHUNK));
        let ys = apply(&mut exe, &xs);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x.abs() > accuracy.domain {
                let (lo, hi) = accuracy.bounded;
                if !(lo..=hi).contains(&y) {
                    worst = (f64::INFINITY, x);
                }
                continue;
            }
            let r = (accuracy.reference)(f64::from(x));
            if !(r as f32).is_normal() {
                continue;
            }
            let err = (f64::from(y) - r).abs() / ulp(r);
            if err.is_nan() || err > worst.0 {
                worst = (if err.is_nan() { f64::INFINITY } else { err }, x);
            }
        }
    }
    worst
}

#[test]
fn every_unary_op_is_within_its_ulp_bound() {
    let full = std::env::var("GRAPHC_FULL_ACCURACY").is_ok_and(|v| v == "1");
    let stride = if full { FULL_STRIDE } else { COARSE_STRIDE };
    let mut failures = Vec::new();
    for &op in UnaryOp::ALL {
        let bound = accuracy(op).max_ulp;
        let (err, at) = max_ulp_error(op, stride);
        println!("{op:?}: max error {err:.3} ulp at x = {at:e}");
        if err > bound {
            failures.push(format!(
                "{op:?}: {err} ulp (bound {bound}) at x = {at:e} ({:#x})",
                at.to_bits()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn edges_saturate_cleanly() {
    for &op in UnaryOp::ALL {
        let accuracy = accuracy(op);
        let mut exe = kernel(op);
        let xs: Vec<f32> = accuracy.edges.iter().map(|p| p.0).collect();
        let ys = apply(&mut exe, &xs);
        for (&(x, want), &got) in accuracy.edges.iter().zip(&ys) {
            let ok = got == want || (got - want).abs() <= 4.0 * f32::EPSILON * want.abs();
            assert!(ok, "{op:?}({x:e}) = {got:e}, want {want:e}");
        }
        let mut nan_at = vec![f32::NAN, -f32::NAN];
        nan_at.extend(accuracy.nan_at);
        let ys = apply(&mut exe, &nan_at);
        for (x, y) in nan_at.iter().zip(&ys) {
            assert!(y.is_nan(), "{op:?}({x:e}) = {y:e}, want NaN");
        }
    }
}
