//! Timing aid for the convolution steps: the lenet and convnet workloads'
//! convolutions (forward, input gradient, weight gradient), each alone as
//! the JIT runs it (`JitExecutable::profile` isolates the step), best of
//! 100 single runs (as the PyTorch side takes its best), in µs. `conv_speed.py` beside this file times the same
//! convolutions in PyTorch.
//!
//! `cargo run --release -p graphc-jit --example conv_speed [LAYER] [bf16]`
//! (both cores; only the layers whose name contains LAYER; with `bf16`, both
//! operands rounded to bf16 first, as `train.precision: bf16` does, which
//! the convolution's time leaves out), and with `GRAPHC_THREADS=1` for one.

use graphc_ir::{Arg, AxisWindows, Graph, Op, TensorType, UnaryOp, Window, WindowAxis};
use graphc_jit::{compile_with, Options};

/// A layer: name, input `[n, c, h, w]`, output channels, kernel, padding.
struct Layer {
    name: &'static str,
    input: [usize; 4],
    out: usize,
    kernel: usize,
    pad: usize,
}

const LAYERS: &[Layer] = &[
    Layer {
        name: "lenet conv1",
        input: [64, 1, 28, 28],
        out: 6,
        kernel: 5,
        pad: 2,
    },
    Layer {
        name: "lenet conv2",
        input: [64, 6, 14, 14],
        out: 16,
        kernel: 5,
        pad: 0,
    },
    Layer {
        name: "convnet conv1",
        input: [32, 3, 32, 32],
        out: 32,
        kernel: 3,
        pad: 1,
    },
    Layer {
        name: "convnet conv2",
        input: [32, 32, 32, 32],
        out: 32,
        kernel: 3,
        pad: 1,
    },
    Layer {
        name: "convnet conv3",
        input: [32, 32, 16, 16],
        out: 64,
        kernel: 3,
        pad: 1,
    },
    Layer {
        name: "convnet conv4",
        input: [32, 64, 16, 16],
        out: 64,
        kernel: 3,
        pad: 1,
    },
];

fn window(l: &Layer) -> Window {
    let axis = |input: usize| WindowAxis {
        input,
        output: input + 2 * l.pad - l.kernel + 1,
        windows: AxisWindows::Strided {
            kernel: l.kernel,
            stride: 1,
            dilation: 1,
            pad_lo: l.pad,
        },
    };
    Window {
        axes: vec![axis(l.input[2]), axis(l.input[3])],
    }
}

/// Best per-run time (µs) of the graph's convolution step.
fn time(g: &Graph, args: &[Vec<f32>]) -> f64 {
    let mut exe = compile_with(g, &Options { verify: false }).unwrap();
    let args: Vec<Arg<'_>> = args.iter().map(|a| Arg::F32(a)).collect();
    let mut best = f64::INFINITY;
    for _ in 0..100 {
        let steps = exe.profile(&args, 1).unwrap();
        let conv: f64 = steps
            .iter()
            .filter(|(label, _)| label.starts_with("conv"))
            .map(|(_, t)| t)
            .sum();
        best = best.min(conv);
    }
    best * 1e6
}

fn main() {
    let threads = std::env::var("GRAPHC_THREADS").unwrap_or_else(|_| "all".into());
    println!("graphc JIT, threads: {threads}");
    println!(
        "{:<15} {:>10} {:>12} {:>12}",
        "layer", "forward", "input grad", "weight grad"
    );
    // An optional argument keeps the layers whose name contains it (for perf).
    let only = std::env::args().nth(1).unwrap_or_default();
    let bf16 = std::env::args().nth(2).as_deref() == Some("bf16");
    if bf16 {
        println!("operands rounded to bf16");
    }
    for l in LAYERS.iter().filter(|l| l.name.contains(only.as_str())) {
        let w = window(l);
        let [n, c, h, wd] = l.input;
        let out = w.output_shape();
        let x_shape = [n, c, h, wd];
        let y_shape = [n, l.out, out[0], out[1]];
        let w_shape = [l.out, c, l.kernel, l.kernel];
        let filled = |shape: &[usize]| {
            let len: usize = shape.iter().product();
            (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect::<Vec<f32>>()
        };
        let op = |kind: usize| {
            let (window, groups) = (w.clone(), 1);
            match kind {
                0 => Op::Conv { window, groups },
                1 => Op::ConvInputGrad { window, groups },
                _ => Op::ConvWeightGrad { window, groups },
            }
        };
        let mut times = [0.0; 3];
        for (kind, t) in times.iter_mut().enumerate() {
            let mut g = Graph::new();
            let shapes: [&[usize]; 2] = match kind {
                0 => [&x_shape, &w_shape],
                1 => [&y_shape, &w_shape],
                _ => [&x_shape, &y_shape],
            };
            let mut a = g.input("a", TensorType::f32(shapes[0]));
            let mut b = g.input("b", TensorType::f32(shapes[1]));
            if bf16 {
                a = g.unary(UnaryOp::RoundBf16, a).unwrap();
                b = g.unary(UnaryOp::RoundBf16, b).unwrap();
            }
            let r = g.add(op(kind), &[a, b]).unwrap();
            g.add_output("r", r);
            *t = time(&g, &[filled(shapes[0]), filled(shapes[1])]);
        }
        println!(
            "{:<15} {:>10.1} {:>12.1} {:>12.1}",
            l.name, times[0], times[1], times[2]
        );
    }
}
