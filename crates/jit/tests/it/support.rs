//! Shared test helpers: run one graph on the interpreter and the JIT with the
//! same persistent values and arguments, and compare everything observable.

use graphc_interp::Interp;
use graphc_ir::{Arg, Backend, BinaryOp, Executable, Graph, NodeId, TensorType, UnaryOp};
use graphc_jit::{compile_with, Options};

/// Owned argument data.
#[derive(Debug, Clone)]
pub enum Data {
    /// f32 values.
    F(Vec<f32>),
    /// i64 values.
    I(Vec<i64>),
}

impl Data {
    /// Borrowed as an argument.
    pub fn arg(&self) -> Arg<'_> {
        match self {
            Data::F(v) => Arg::F32(v),
            Data::I(v) => Arg::I64(v),
        }
    }
}

/// Whether `a` (JIT) is within `rtol` of `b` (interpreter), relative to the
/// larger magnitude, with an absolute floor `atol` for results near zero.
pub fn close(a: f32, b: f32, rtol: f32, atol: f32) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= rtol * a.abs().max(b.abs()) + atol
}

/// First mismatch between two buffers, as a message.
pub fn mismatch(what: &str, jit: &[f32], interp: &[f32], rtol: f32, atol: f32) -> Option<String> {
    if jit.len() != interp.len() {
        return Some(format!("{what}: length {} vs {}", jit.len(), interp.len()));
    }
    jit.iter()
        .zip(interp)
        .position(|(&a, &b)| !close(a, b, rtol, atol))
        .map(|i| format!("{what}[{i}]: jit {} vs interp {}", jit[i], interp[i]))
}

/// The first output of `graph` where `jit` and `interp` differ; `what` names
/// an output in the message.
pub fn output_mismatch(
    graph: &Graph,
    jit: &dyn Executable,
    interp: &dyn Executable,
    what: impl Fn(&str) -> String,
    rtol: f32,
    atol: f32,
) -> Option<String> {
    graph
        .outputs()
        .iter()
        .enumerate()
        .find_map(|(i, o)| mismatch(&what(&o.name), jit.output(i), interp.output(i), rtol, atol))
}

/// The first parameter or state buffer of `graph` where `jit` and `interp`
/// differ (or that one of them lacks); `what` names a buffer in the message.
pub fn buffer_mismatch(
    graph: &Graph,
    jit: &dyn Executable,
    interp: &dyn Executable,
    what: impl Fn(&str) -> String,
    rtol: f32,
    atol: f32,
) -> Option<String> {
    graph.persistent().into_iter().find_map(|id| {
        let name = graph.node(id).op.leaf_name().unwrap_or_default();
        match (jit.read(name), interp.read(name)) {
            (Some(a), Some(b)) => mismatch(&what(name), a, b, rtol, atol),
            _ => Some(format!("buffer {name:?} missing")),
        }
    })
}

/// `op(a) · op(b)` for inputs `a` and `b` shaped so that the product is `m × n`
/// with inner dimension `k`, as output `c`.
pub fn matmul_graph(m: usize, n: usize, k: usize, lhs_t: bool, rhs_t: bool) -> Graph {
    let mut g = Graph::new();
    let a_shape = if lhs_t { [k, m] } else { [m, k] };
    let b_shape = if rhs_t { [n, k] } else { [k, n] };
    let a = g.input("a", TensorType::f32(&a_shape));
    let b = g.input("b", TensorType::f32(&b_shape));
    let c = g.matmul(a, b, lhs_t, rhs_t).unwrap();
    g.add_output("c", c);
    g
}

/// Compiles `graph` on both backends, writes `init` into persistent buffers
/// of both, runs `runs` steps with `args`, and compares every output and
/// persistent buffer after each step. Returns the first difference.
pub fn compare(
    graph: &Graph,
    init: &[(String, Vec<f32>)],
    args: &[Data],
    runs: usize,
    rtol: f32,
    atol: f32,
) -> Result<(), String> {
    let mut interp = Interp
        .compile(graph)
        .map_err(|e| format!("interp compile: {e}"))?;
    let mut jit =
        compile_with(graph, &Options { verify: true }).map_err(|e| format!("jit compile: {e}"))?;
    for (name, data) in init {
        interp.write(name, data).map_err(|e| e.to_string())?;
        jit.write(name, data).map_err(|e| e.to_string())?;
    }
    let args: Vec<Arg<'_>> = args.iter().map(Data::arg).collect();
    for run in 0..runs {
        interp.run(&args).map_err(|e| format!("interp run: {e}"))?;
        jit.run(&args).map_err(|e| format!("jit run: {e}"))?;
        let output = |name: &str| format!("run {run} output {name:?}");
        let buffer = |name: &str| format!("run {run} buffer {name:?}");
        if let Some(m) = output_mismatch(graph, &jit, interp.as_ref(), output, rtol, atol)
            .or_else(|| buffer_mismatch(graph, &jit, interp.as_ref(), buffer, rtol, atol))
        {
            return Err(m);
        }
    }
    Ok(())
}

/// A deterministic pseudo-random f32 in `[lo, hi)` from a counter.
pub fn noise(seed: u64, i: usize, lo: f32, hi: f32) -> f32 {
    let mut x = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    lo + (hi - lo) * ((x >> 40) as f32 / (1u64 << 24) as f32)
}

/// `n` pseudo-random values in `[lo, hi)`.
pub fn values(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|i| noise(seed, i, lo, hi)).collect()
}

/// Replaces about one value in ten by NaN, ±inf or ±0, chosen by `seed`.
pub fn lace_with_specials(data: &mut [f32], seed: u64) {
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0];
    for (i, v) in data.iter_mut().enumerate() {
        let r = noise(seed, i, 0.0, 1.0);
        if r < 0.1 {
            *v = specials[(r * 50.0) as usize % specials.len()];
        }
    }
}

/// Whether the JIT computes `op` bit for bit as the interpreter does (a
/// correctly rounded op), so that it may join graphs compared bitwise.
pub fn exactly_rounded(op: UnaryOp) -> bool {
    match op {
        UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Sqrt
        | UnaryOp::Relu
        | UnaryOp::StopGradient
        | UnaryOp::RoundBf16 => true,
        UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Log1p
        | UnaryOp::Tanh
        | UnaryOp::Sigmoid
        | UnaryOp::Sin
        | UnaryOp::Cos => false,
    }
}

/// `op(x)` with `x` (of shape `shape`) first moved into the op's domain, so
/// that the result stays finite and away from its singularities: the square
/// root and logarithm of `|x| + 0.5`, `log1p(|x|)`, `exp(min(x, 4))`.
pub fn unary_in_domain(g: &mut Graph, op: UnaryOp, x: NodeId, shape: &[usize]) -> NodeId {
    let x = match op {
        UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Tanh
        | UnaryOp::Sigmoid
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Relu
        | UnaryOp::StopGradient
        | UnaryOp::RoundBf16 => x,
        UnaryOp::Sqrt | UnaryOp::Log => {
            let a = g.unary(UnaryOp::Abs, x).unwrap();
            let half = g.fill(0.5, shape);
            g.binary(BinaryOp::Add, a, half).unwrap()
        }
        UnaryOp::Log1p => g.unary(UnaryOp::Abs, x).unwrap(),
        UnaryOp::Exp => {
            let four = g.fill(4.0, shape);
            g.binary(BinaryOp::Min, x, four).unwrap()
        }
    };
    g.unary(op, x).unwrap()
}

/// The products `(m, n, k, lhs_t, rhs_t)` of the benchmark workloads'
/// training steps, with their transposes: `parallel.rs` checks them and the
/// example `gemm_threads` times them.
pub const BENCHMARK_PRODUCTS: &[(usize, usize, usize, bool, bool)] = &[
    (64, 128, 64, false, true),
    (64, 10, 128, false, true),
    (128, 64, 64, true, false),
    (128, 256, 784, false, true),
    (128, 256, 256, false, true),
    (256, 256, 128, true, false),
    (128, 256, 256, false, false),
    (256, 784, 128, true, false),
    (256, 2048, 1024, false, true),
    (256, 2048, 2048, false, true),
    (2048, 2048, 256, true, false),
    (256, 2048, 2048, false, false),
    (2048, 1024, 256, true, false),
    (256, 10, 2048, false, true),
];
