//! Property test: random well-typed graphs (rank 1–3, extents 1–9 so SIMD
//! tails are hit) of fused elementwise chains with broadcasts, reductions over
//! random axes, transposes, reshapes, one-hots, constants, matmuls with every
//! transpose pair, sums over ranks (the caller's sum standing for other ranks), and a
//! parameter updated by an assign over three runs, run on the JIT and the
//! interpreter.
//!
//! Every op is drawn from its table (`UnaryOp::ALL`, `BinaryOp::ALL`, ...), so
//! a new op joins the fuzzing as soon as it exists.
//!
//! Two regimes: graphs of exactly rounded ops only (arithmetic, max/min,
//! compare/select, sqrt, reductions, movement, inputs laced with NaN, ±inf and
//! ±0; denominators kept off zero) must match the interpreter bit for bit, since the JIT sums in the
//! interpreter's order and never contracts to fma; graphs with transcendentals
//! and GEMMs must match within relative 1e-5, with an absolute floor of 1e-5
//! times the largest magnitude the step computes (for cancellation).

use std::collections::HashMap;

use crate::support::{
    exactly_rounded, lace_with_specials, mismatch, noise, output_mismatch, unary_in_domain, values,
    Data,
};
use graphc_interp::{evaluate_summing, Interp, Value};
use graphc_ir::{
    Arg, Backend, BinaryOp, CompareOp, Executable, Graph, NodeId, ReduceOp, TensorType, UnaryOp,
};
use graphc_jit::{compile_with, Options};
use proptest::prelude::*;
use proptest::sample::select;

/// One step of a random graph. Ops are drawn from their tables (`UnaryOp::ALL`, ...);
/// a unary step holds an index, since each regime picks from its own subset.
#[derive(Debug, Clone)]
enum Step {
    Unary(usize, usize),
    Binary(BinaryOp, usize, usize),
    CompareSelect(CompareOp, usize, usize, usize, usize),
    ReduceBroadcast(ReduceOp, u8, usize),
    BroadcastInput(u8),
    Hyper,
    Transpose(u8, usize),
    Reshape(usize),
    MatMul(bool, bool, usize, usize),
    OneHot,
    Constant(u8),
    SumRanks(usize),
}

#[derive(Debug, Clone)]
struct Case {
    dims: Vec<usize>,
    exact: bool,
    steps: Vec<Step>,
    outputs: Vec<usize>,
    reductions: Vec<(ReduceOp, u8, usize)>,
    assign: Option<usize>,
    seed: u64,
}

fn step() -> impl Strategy<Value = Step> {
    let i = 0usize..64;
    prop_oneof![
        3 => (0..UnaryOp::ALL.len(), i.clone()).prop_map(|(u, a)| Step::Unary(u, a)),
        4 => (select(BinaryOp::ALL), i.clone(), i.clone()).prop_map(|(b, x, y)| Step::Binary(b, x, y)),
        1 => (select(CompareOp::ALL), i.clone(), i.clone(), i.clone(), i.clone()).prop_map(|(c, a, b, x, y)| Step::CompareSelect(c, a, b, x, y)),
        2 => (select(ReduceOp::ALL), 0u8..8, i.clone()).prop_map(|(r, axes, x)| Step::ReduceBroadcast(r, axes, x)),
        1 => (0u8..8).prop_map(Step::BroadcastInput),
        1 => Just(Step::Hyper),
        1 => (0u8..6, i.clone()).prop_map(|(p, x)| Step::Transpose(p, x)),
        1 => i.clone().prop_map(Step::Reshape),
        1 => (any::<bool>(), any::<bool>(), 1usize..10, i.clone()).prop_map(|(a, b, k, x)| Step::MatMul(a, b, k, x)),
        1 => Just(Step::OneHot),
        1 => (0u8..8).prop_map(Step::Constant),
        1 => i.prop_map(Step::SumRanks),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(1usize..10, 1..=3),
        any::<bool>(),
        prop::collection::vec(step(), 1..16),
        prop::collection::vec(0usize..64, 0..3),
        prop::collection::vec((select(ReduceOp::ALL), 0u8..8, 0usize..64), 0..3),
        prop::option::of(0usize..64),
        any::<u64>(),
    )
        .prop_map(
            |(dims, exact, steps, outputs, reductions, assign, seed)| Case {
                dims,
                exact,
                steps,
                outputs,
                reductions,
                assign,
                seed,
            },
        )
}

/// The axes named by the low bits of `mask` (never empty).
fn axes(mask: u8, rank: usize) -> Vec<usize> {
    let a: Vec<usize> = (0..rank).filter(|&d| mask & (1 << d) != 0).collect();
    if a.is_empty() {
        vec![0]
    } else {
        a
    }
}

/// The `p`-th permutation of `0..rank`.
fn permutation(p: u8, rank: usize) -> Vec<usize> {
    let mut rest: Vec<usize> = (0..rank).collect();
    let mut p = usize::from(p);
    let mut out = Vec::new();
    while !rest.is_empty() {
        out.push(rest.remove(p % rest.len()));
        p /= rest.len().max(1);
    }
    out
}

struct Built {
    graph: Graph,
    args: Vec<Data>,
    param: Vec<f32>,
}

fn build(c: &Case) -> Built {
    let d = c.dims.as_slice();
    let rank = d.len();
    let numel: usize = d.iter().product();
    let mut g = Graph::new();
    let mut args: Vec<Data> = Vec::new();
    let input = |g: &mut Graph, shape: &[usize], args: &mut Vec<Data>| {
        let n = args.len();
        let id = g.input(&format!("in{n}"), TensorType::f32(shape));
        let len = shape.iter().product();
        let mut data = values(c.seed ^ n as u64, len, -2.0, 2.0);
        if c.exact {
            lace_with_specials(&mut data, c.seed.rotate_left(7) ^ n as u64);
        }
        args.push(Data::F(data));
        id
    };
    let p = g.param("p", d);
    let mut vals: Vec<NodeId> = vec![input(&mut g, d, &mut args), input(&mut g, d, &mut args), p];
    let pick = |vals: &Vec<NodeId>, i: usize| vals[i % vals.len()];
    let mut hypers = 0;
    let exact_unary: Vec<UnaryOp> = UnaryOp::ALL
        .iter()
        .copied()
        .filter(|&op| exactly_rounded(op))
        .collect();
    for s in &c.steps {
        let v = match *s {
            Step::Unary(u, a) => {
                let x = pick(&vals, a);
                if c.exact {
                    g.unary(exact_unary[u % exact_unary.len()], x).unwrap()
                } else {
                    unary_in_domain(&mut g, UnaryOp::ALL[u], x, d)
                }
            }
            Step::Binary(op, x, y) => {
                let (x, y) = (pick(&vals, x), pick(&vals, y));
                // The interpreter leaves the sign of max/min(+0, -0) unspecified
                // (Rust's f32::max), and only a division by zero makes that sign
                // visible, so denominators stay away from zero.
                if op == BinaryOp::Div {
                    let half = g.fill(0.5, d);
                    let a = g.unary(UnaryOp::Abs, y).unwrap();
                    let a = g.binary(BinaryOp::Add, a, half).unwrap();
                    g.binary(op, x, a).unwrap()
                } else {
                    g.binary(op, x, y).unwrap()
                }
            }
            Step::CompareSelect(op, a, b, x, y) => {
                let m = g.compare(op, pick(&vals, a), pick(&vals, b)).unwrap();
                g.select(m, pick(&vals, x), pick(&vals, y)).unwrap()
            }
            Step::ReduceBroadcast(op, mask, x) => {
                let r = g.reduce(op, pick(&vals, x), &axes(mask, rank)).unwrap();
                g.broadcast(r, d).unwrap()
            }
            Step::BroadcastInput(mask) => {
                let shape: Vec<usize> = (0..rank)
                    .map(|i| if mask & (1 << i) != 0 { 1 } else { d[i] })
                    .collect();
                let x = input(&mut g, &shape, &mut args);
                g.broadcast(x, d).unwrap()
            }
            Step::Hyper => {
                let h = g.hyper(&format!("h{hypers}"));
                hypers += 1;
                args.push(Data::F(vec![0.75 + hypers as f32]));
                g.broadcast_to(h, d).unwrap()
            }
            Step::Transpose(p, x) => {
                let perm = permutation(p, rank);
                let mut inverse = vec![0; rank];
                for (i, &q) in perm.iter().enumerate() {
                    inverse[q] = i;
                }
                let t = g.transpose(pick(&vals, x), &perm).unwrap();
                let t = g.unary(UnaryOp::Neg, t).unwrap();
                g.transpose(t, &inverse).unwrap()
            }
            Step::Reshape(x) => {
                // Flat, or the last axis split in two (batch norm's channel view): the
                // JIT runs ops on both sides of a reshape, and a sum over the view
                // broadcast back, as one kernel over a domain refining both shapes.
                let last = d[rank - 1];
                let view = if last.is_multiple_of(2) && last > 2 {
                    let mut v = d[..rank - 1].to_vec();
                    v.extend([last / 2, 2]);
                    v
                } else {
                    vec![numel]
                };
                let r = g.reshape(pick(&vals, x), &view).unwrap();
                let f = g.unary(UnaryOp::Abs, r).unwrap();
                let lanes = g.reduce(ReduceOp::Sum, f, &[0]).unwrap();
                let lanes = g.broadcast(lanes, &view).unwrap();
                let f = g.binary(BinaryOp::Sub, f, lanes).unwrap();
                g.reshape(f, d).unwrap()
            }
            Step::MatMul(ta, tb, k, x) => {
                if c.exact || rank != 2 {
                    continue;
                }
                let (a, b) = (d[0], d[1]);
                let lhs_shape = if ta { [k, a] } else { [a, k] };
                let rhs_shape = if tb { [b, k] } else { [k, b] };
                let lhs = if lhs_shape == [a, b] {
                    pick(&vals, x)
                } else {
                    input(&mut g, &lhs_shape, &mut args)
                };
                let rhs = if rhs_shape == [a, b] {
                    pick(&vals, x + 1)
                } else {
                    input(&mut g, &rhs_shape, &mut args)
                };
                g.matmul(lhs, rhs, ta, tb).unwrap()
            }
            Step::OneHot => {
                let classes = d[rank - 1];
                let n = args.len();
                let y = g.input(&format!("in{n}"), TensorType::i64(&d[..rank - 1]));
                let rows = numel / classes;
                let idx = (0..rows)
                    .map(|i| {
                        (noise(c.seed ^ n as u64, i, -1.0, classes as f32 + 1.0)).floor() as i64
                    })
                    .collect();
                args.push(Data::I(idx));
                g.one_hot(y, classes).unwrap()
            }
            Step::Constant(mask) => {
                let shape: Vec<usize> = (0..rank)
                    .map(|i| if mask & (1 << i) != 0 { 1 } else { d[i] })
                    .collect();
                let len = shape.iter().product();
                let k = g
                    .constant(
                        values(c.seed.rotate_left(11) ^ u64::from(mask), len, -2.0, 2.0),
                        &shape,
                    )
                    .unwrap();
                g.broadcast(k, d).unwrap()
            }
            Step::SumRanks(x) => g.sum_ranks(pick(&vals, x)).unwrap(),
        };
        vals.push(v);
    }
    let last = *vals.last().unwrap();
    g.add_output("last", last);
    for (i, &o) in c.outputs.iter().enumerate() {
        g.add_output(&format!("out{i}"), pick(&vals, o));
    }
    for (i, &(op, mask, x)) in c.reductions.iter().enumerate() {
        let r = g.reduce(op, pick(&vals, x), &axes(mask, rank)).unwrap();
        g.add_output(&format!("red{i}"), r);
    }
    if let Some(a) = c.assign {
        let v = pick(&vals, a);
        g.add_assign(p, v).unwrap();
    }
    let param = values(c.seed.rotate_right(3), numel, -1.0, 1.0);
    Built {
        graph: g,
        args,
        param,
    }
}

/// The sum over ranks the runs use: as if another rank held `2x + 1` for every `x` (exact
/// for the exact regime's values, and the same on both backends whatever it rounds to).
fn other_rank(values: &mut [f32]) {
    for v in values {
        *v += *v * 2.0 + 1.0;
    }
}

fn check(c: &Case) -> Result<(), String> {
    let b = build(c);
    let g = &b.graph;
    let args: Vec<Arg<'_>> = b.args.iter().map(Data::arg).collect();
    let mut interp = Interp.compile(g).map_err(|e| e.to_string())?;
    let mut jit =
        compile_with(g, &Options { verify: true }).map_err(|e| format!("jit compile: {e}"))?;
    interp.write("p", &b.param).map_err(|e| e.to_string())?;
    jit.write("p", &b.param).map_err(|e| e.to_string())?;
    let order = g.topo_order().map_err(|e| e.to_string())?;
    for run in 0..3 {
        let (rtol, atol) = if c.exact {
            (0.0, 0.0)
        } else {
            let state = HashMap::from([("p".to_string(), interp.read("p").unwrap().to_vec())]);
            let vals: Vec<Value<f32>> = b
                .args
                .iter()
                .map(|a| match a {
                    Data::F(v) => Value::F(v.clone()),
                    Data::I(v) => Value::I(v.clone()),
                })
                .collect();
            let all = evaluate_summing(g, &order, &vals, &state, &mut other_rank)
                .map_err(|e| e.to_string())?;
            let scale = all
                .iter()
                .filter_map(|v| if let Value::F(f) = v { Some(f) } else { None })
                .flatten()
                .filter(|x| x.is_finite())
                .fold(1.0f32, |m, x| m.max(x.abs()));
            (1e-5, 1e-5 * scale)
        };
        let both: [&mut dyn Executable; 2] = [interp.as_mut(), &mut jit];
        for exe in both {
            let mut lengths = Vec::new();
            let mut sum_ranks = |values: &mut [f32]| {
                lengths.push(values.len());
                other_rank(values);
            };
            exe.run_summing(&args, &mut sum_ranks)
                .map_err(|e| e.to_string())?;
            if lengths != exe.sum_ranks_lengths() {
                return Err(format!(
                    "run {run}: sums of {lengths:?} values, listed as {:?}",
                    exe.sum_ranks_lengths()
                ));
            }
        }
        let output = |name: &str| format!("run {run}, output {name:?}");
        if let Some(m) =
            output_mismatch(g, &jit, interp.as_ref(), output, rtol, atol).or_else(|| {
                let (x, y) = (jit.read("p").unwrap(), interp.read("p").unwrap());
                mismatch(&format!("run {run}, param p"), x, y, rtol, atol)
            })
        {
            return Err(m);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_match_the_interpreter(c in case()) {
        if let Err(e) = check(&c) {
            prop_assert!(false, "{}\n{}", e, build(&c).graph.to_text());
        }
    }
}

#[test]
fn many_random_graphs_match_the_interpreter() {
    // A deterministic wider sweep than the shrinking property test above;
    // GRAPHC_RANDOM_CASES widens it further.
    let cases = std::env::var("GRAPHC_RANDOM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&case(), |c| {
            check(&c)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{}", build(&c).graph.to_text())))
        })
        .unwrap();
}
