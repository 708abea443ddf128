//! Timing aid for `RandomUniform`: microseconds to fill 10^6 uniform values
//! with the JIT's Philox kernel (best of 20 runs of a step that only draws),
//! next to the same values from `graphc_ir::random` in plain Rust on one
//! thread. `GRAPHC_THREADS=1` keeps the kernel on one thread.
//!
//! `cargo run --release -p graphc-jit --example random_speed`
//!
//! AMD EPYC Zen 4 (family 25 model 17, 2 vCPUs, shared with other builds),
//! 2026-12-01: 3.1 ms on one thread (3.1 ns a value, the same as the plain
//! Rust loop: both are bound by the ten dependent multiply rounds), 2.2 ms
//! split on two. A dropout mask drawn this way costs more than the layer's
//! elementwise work; vectorizing the S-box (four blocks per `pmuludq` pair)
//! or fusing the draw into the layer's cluster is the next step.

use std::time::Instant;

use graphc_ir::{random, Arg, Executable, Graph, TensorType};
use graphc_jit::{compile_with, Options};

const N: usize = 1_000_000;

fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut g = Graph::new();
    let step = g.input("step", TensorType::i64(&[]));
    let u = g.random_uniform(step, 2026, 1, &[N]).unwrap();
    g.add_output("u", u);
    let mut exe = compile_with(&g, &Options::default()).unwrap();
    let mut t = 0i64;
    let jit = best_of(20, || {
        t += 1;
        exe.run(&[Arg::I64(&[t])]).unwrap();
    });
    let mut out = vec![0f32; N];
    let rust = best_of(5, || {
        for (block, chunk) in out.chunks_mut(random::ELEMENTS_PER_BLOCK).enumerate() {
            let words = random::random_uniform_block(2026, 1, 7, block as u32);
            chunk.copy_from_slice(&words[..chunk.len()]);
        }
    });
    std::hint::black_box(&out);
    let threads = std::env::var("GRAPHC_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "10^6 values: JIT {:.0} µs ({threads} threads, {:.2} ns/value), plain Rust one thread {:.0} µs",
        jit * 1e6,
        jit * 1e9 / N as f64,
        rust * 1e6
    );
}
