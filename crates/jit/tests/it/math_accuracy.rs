//! The polynomial transcendentals against f64 references: at most 4 ulp
//! wherever the exact result is a normal f32, over a sweep of every 97th f32
//! bit pattern (all binades, both signs), plus clean saturation at the edges.

use graphc_ir::{Arg, Executable, Graph, TensorType, UnaryOp};
use graphc_jit::{compile_with, JitExecutable, Options};

const CHUNK: usize = 1 << 20;
const STRIDE: u64 = 97;
const MAX_ULP: f64 = 4.0;

fn kernel(op: UnaryOp) -> JitExecutable {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32(&[CHUNK]));
    let y = g.unary(op, x).unwrap();
    g.add_output("y", y);
    compile_with(&g, &Options { verify: true }).unwrap()
}

fn reference(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Sqrt => x.sqrt(),
        other => panic!("no reference for {other:?}"),
    }
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

/// Largest error in ulp over the sweep where the exact result is a normal f32, and where it happened.
fn max_ulp_error(op: UnaryOp) -> (f64, f32) {
    let mut exe = kernel(op);
    let mut worst = (0.0f64, 0.0f32);
    let mut bits = 0u64;
    let mut xs = Vec::with_capacity(CHUNK);
    while bits <= u64::from(u32::MAX) {
        xs.clear();
        while xs.len() < CHUNK && bits <= u64::from(u32::MAX) {
            let x = f32::from_bits(bits as u32);
            if x.is_finite() {
                xs.push(x);
            }
            bits += STRIDE;
        }
        let ys = apply(&mut exe, &xs);
        for (&x, &y) in xs.iter().zip(&ys) {
            let r = reference(op, f64::from(x));
            let rounded = r as f32;
            if !rounded.is_normal() {
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

fn check(op: UnaryOp) {
    let (err, at) = max_ulp_error(op);
    println!("{op:?}: max error {err:.3} ulp at x = {at:e}");
    assert!(
        err <= MAX_ULP,
        "{op:?}: {err} ulp at x = {at:e} ({:?})",
        at.to_bits()
    );
}

#[test]
fn exp_is_within_4_ulp() {
    check(UnaryOp::Exp);
}

#[test]
fn log_is_within_4_ulp() {
    check(UnaryOp::Log);
}

#[test]
fn log1p_is_within_4_ulp() {
    check(UnaryOp::Log1p);
}

#[test]
fn tanh_is_within_4_ulp() {
    check(UnaryOp::Tanh);
}

#[test]
fn sigmoid_is_within_4_ulp() {
    check(UnaryOp::Sigmoid);
}

#[test]
fn sqrt_is_exact() {
    let (err, at) = max_ulp_error(UnaryOp::Sqrt);
    assert!(err <= 0.5, "sqrt: {err} ulp at {at:e}");
}

#[test]
fn edges_saturate_cleanly() {
    let inf = f32::INFINITY;
    let cases: &[(UnaryOp, &[(f32, f32)])] = &[
        (
            UnaryOp::Exp,
            &[
                (89.0, inf),
                (1e30, inf),
                (inf, inf),
                (-104.0, 0.0),
                (-1e30, 0.0),
                (-inf, 0.0),
                (0.0, 1.0),
            ],
        ),
        (
            UnaryOp::Log,
            &[
                (0.0, -inf),
                (-0.0, -inf),
                (inf, inf),
                (1.0, 0.0),
                (f32::MIN_POSITIVE / 1024.0, -94.268_02),
            ],
        ),
        (
            UnaryOp::Log1p,
            &[(-1.0, -inf), (inf, inf), (0.0, 0.0), (1e-30, 1e-30)],
        ),
        (
            UnaryOp::Tanh,
            &[
                (10.0, 1.0),
                (1e30, 1.0),
                (inf, 1.0),
                (-10.0, -1.0),
                (-inf, -1.0),
                (0.0, 0.0),
                (1e-30, 1e-30),
            ],
        ),
        (
            UnaryOp::Sigmoid,
            &[
                (100.0, 1.0),
                (inf, 1.0),
                (-200.0, 0.0),
                (-inf, 0.0),
                (0.0, 0.5),
            ],
        ),
    ];
    for (op, pairs) in cases {
        let mut exe = kernel(*op);
        let xs: Vec<f32> = pairs.iter().map(|p| p.0).collect();
        let ys = apply(&mut exe, &xs);
        for (&(x, want), &got) in pairs.iter().zip(&ys) {
            let ok = got == want || (got - want).abs() <= 4.0 * f32::EPSILON * want.abs();
            assert!(ok, "{op:?}({x:e}) = {got:e}, want {want:e}");
        }
        let nans = apply(&mut exe, &[f32::NAN, -f32::NAN]);
        assert!(nans.iter().all(|y| y.is_nan()), "{op:?}(NaN) = {nans:?}");
    }
    let mut log = kernel(UnaryOp::Log);
    assert!(apply(&mut log, &[-1.0, -1e-30, -inf])
        .iter()
        .all(|y| y.is_nan()));
    let mut log1p = kernel(UnaryOp::Log1p);
    assert!(apply(&mut log1p, &[-1.5, -inf]).iter().all(|y| y.is_nan()));
}
