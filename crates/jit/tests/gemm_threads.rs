//! Tuning aid for the GEMM threading threshold: single-threaded vs rayon
//! timings of the shapes a training step produces.

use std::time::Instant;

use gemm::{gemm, Parallelism};

fn time(m: usize, n: usize, k: usize, par: Parallelism, reps: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..reps {
            // SAFETY: the three buffers hold m×k, k×n and m×n floats, row-major.
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
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

#[test]
#[ignore = "timing aid; run with --release --ignored --nocapture"]
fn gemm_single_vs_rayon() {
    for (m, n, k) in [
        (16, 16, 4),
        (64, 64, 64),
        (64, 256, 784),
        (256, 784, 64),
        (128, 128, 128),
        (64, 128, 256),
        (256, 256, 256),
        (32, 512, 512),
        (256, 10, 2048),
        (512, 512, 512),
    ] {
        let macs = m * n * k;
        let reps = (20_000_000 / macs).clamp(1, 10_000);
        let one = time(m, n, k, Parallelism::None, reps);
        let many = time(m, n, k, Parallelism::Rayon(0), reps);
        println!(
            "{m:4}x{n:4}x{k:4} ({macs:>10} MAC): 1 thread {:8.1} µs ({:5.1} GFLOP/s), rayon {:8.1} µs ({:5.1} GFLOP/s)",
            one * 1e6,
            2.0 * macs as f64 / one / 1e9,
            many * 1e6,
            2.0 * macs as f64 / many / 1e9
        );
    }
}
