//! mlp_l's matrix products in f32 (the `gemm` crate) and with bf16 operands (graphc-jit's
//! `vdpbf16ps` kernels where the CPU has AVX512_BF16), as the JIT runs them in a step:
//! `cargo run --release -p graphc-benches --example gemm_bf16 [SECONDS]`.
//! Prints GFLOP per second of this process's CPU time (user + system, from
//! `/proc/self/stat`) per shape and precision, each product run as a whole step (operands
//! copied in, rounded for bf16, the product, the result copied out) for at least SECONDS of
//! CPU time: on a shared machine CPU time is what the kernel really got. Run it with
//! `GRAPHC_THREADS=1` for one core's rate (the peaks to compare with are per core).

use graphc::stages::ir::{Arg, Executable, Graph, TensorType, UnaryOp};
use graphc::stages::jit::{compile_with, Options};
use graphc_benches::Result;

/// One product of mlp_l's step: `op(a) · op(b)` for `a` and `b` of these shapes.
struct Shape {
    what: &'static str,
    a: [usize; 2],
    b: [usize; 2],
    transpose_a: bool,
    transpose_b: bool,
}

const SHAPES: [Shape; 5] = [
    Shape {
        what: "forward 256×1024 · (2048×1024)ᵀ",
        a: [256, 1024],
        b: [2048, 1024],
        transpose_a: false,
        transpose_b: true,
    },
    Shape {
        what: "forward 256×2048 · (2048×2048)ᵀ",
        a: [256, 2048],
        b: [2048, 2048],
        transpose_a: false,
        transpose_b: true,
    },
    Shape {
        what: "weight grad (256×2048)ᵀ · 256×1024",
        a: [256, 2048],
        b: [256, 1024],
        transpose_a: true,
        transpose_b: false,
    },
    Shape {
        what: "weight grad (256×2048)ᵀ · 256×2048",
        a: [256, 2048],
        b: [256, 2048],
        transpose_a: true,
        transpose_b: false,
    },
    Shape {
        what: "input grad 256×2048 · 2048×2048",
        a: [256, 2048],
        b: [2048, 2048],
        transpose_a: false,
        transpose_b: false,
    },
];

fn main() -> Result<()> {
    let seconds: f64 = std::env::args().nth(1).map_or(Ok(2.0), |s| s.parse())?;
    for s in &SHAPES {
        let (m, k) = if s.transpose_a {
            (s.a[1], s.a[0])
        } else {
            (s.a[0], s.a[1])
        };
        let n = if s.transpose_b { s.b[0] } else { s.b[1] };
        let flops = 2.0 * (m * n * k) as f64;
        let values = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect()
        };
        let (a_v, b_v) = (values(s.a[0] * s.a[1]), values(s.b[0] * s.b[1]));
        let mut line = format!("{m}×{n}×{k} {}:", s.what);
        for bf16 in [false, true] {
            let mut g = Graph::new();
            let mut a = g.input("a", TensorType::f32(&s.a));
            let mut b = g.input("b", TensorType::f32(&s.b));
            if bf16 {
                a = g.unary(UnaryOp::RoundBf16, a)?;
                b = g.unary(UnaryOp::RoundBf16, b)?;
            }
            let c = g.matmul(a, b, s.transpose_a, s.transpose_b)?;
            g.add_output("c", c);
            let mut exe = compile_with(&g, &Options::default())?;
            let args = [Arg::F32(&a_v), Arg::F32(&b_v)];
            exe.run(&args)?;
            let start = cpu_seconds()?;
            let mut runs = 0u32;
            while cpu_seconds()? - start < seconds {
                exe.run(&args)?;
                runs += 1;
            }
            let cpu = (cpu_seconds()? - start) / f64::from(runs);
            let name = if bf16 { "bf16" } else { "f32" };
            line += &format!(
                " {name} {:.0} GFLOP/CPU-s ({:.2} CPU-ms)",
                flops / cpu / 1e9,
                cpu * 1e3
            );
        }
        println!("{line}");
    }
    Ok(())
}

/// This process's user + system CPU time so far (`/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (in parentheses, which may hold spaces): utime and stime
    // are fields 14 and 15 of the whole line, 12 and 13 after it.
    let rest = stat.rsplit_once(')').ok_or("malformed /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}
