//! Tuning aid for the GEMM policy (threads, split axis, operand copy): the
//! products of the benchmark workloads' training steps, with their
//! transposes, as the JIT runs them (`JitExecutable::profile` isolates the
//! product) against one direct single-threaded `gemm` call.
//!
//! `cargo run --release -p graphc-jit --example gemm_threads`

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

use std::time::Instant;

use gemm::{gemm, Parallelism};
use graphc_ir::{Arg, Executable};
use graphc_jit::{compile_with, Options};
use support::{matmul_graph, BENCHMARK_PRODUCTS};

/// Best of 5 single-threaded `gemm` calls for `op(a) (m×k) · op(b) (k×n)`.
fn direct(m: usize, n: usize, k: usize, lhs_t: bool, rhs_t: bool, reps: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let (lhs_cs, lhs_rs) = if lhs_t {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (rhs_cs, rhs_rs) = if rhs_t {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..reps {
            // SAFETY: a, b and c hold m×k, k×n and m×n floats, read with the
            // strides of their (transposed) row-major layouts.
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    lhs_cs,
                    lhs_rs,
                    b.as_ptr(),
                    rhs_cs,
                    rhs_rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

/// The JIT's time for the same product, and how it ran it.
fn jit(m: usize, n: usize, k: usize, lhs_t: bool, rhs_t: bool, reps: usize) -> (f64, String) {
    let g = matmul_graph(m, n, k, lhs_t, rhs_t);
    let mut exe = compile_with(&g, &Options::default()).unwrap();
    let (x, y) = (vec![0.5f32; m * k], vec![0.25f32; k * n]);
    let args = [Arg::F32(&x), Arg::F32(&y)];
    let mut best = (f64::INFINITY, String::new());
    for _ in 0..5 {
        let profile = exe.profile(&args, reps).unwrap();
        let (label, t) = profile
            .into_iter()
            .find(|p| p.0.starts_with("gemm"))
            .unwrap();
        if t < best.0 {
            best = (t, label);
        }
    }
    assert!(exe.output(0).iter().all(|&v| v == 0.125 * k as f32));
    best
}

fn main() {
    for &(m, n, k, lhs_t, rhs_t) in BENCHMARK_PRODUCTS {
        let macs = m * n * k;
        let reps = (100_000_000 / macs).clamp(2, 5_000);
        let one = direct(m, n, k, lhs_t, rhs_t, reps);
        let (t, how) = jit(m, n, k, lhs_t, rhs_t, reps);
        println!(
            "{m:5}x{n:5}x{k:5}: 1 thread {:9.1} µs ({:5.1} GFLOP/s); JIT {:9.1} µs ({:5.1} GFLOP/s, {:.2}×) {how}",
            one * 1e6,
            2.0 * macs as f64 / one / 1e9,
            t * 1e6,
            2.0 * macs as f64 / t / 1e9,
            one / t
        );
    }
}
