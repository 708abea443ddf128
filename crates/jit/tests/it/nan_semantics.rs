//! NaN, infinities and signed zeros through relu (as graphc-nn builds it), `BinaryOp::Max`/
//! `Min` and `ReduceOp::Max`, forward and gradient, on the JIT and the interpreter: both give
//! PyTorch's values (written out here; `tests/goldens/nan` holds PyTorch's own) and agree bit
//! for bit. Inputs are long enough that the JIT's vector loop and its scalar tail both see
//! every kind of value.

use graphc_autodiff::grad;
use graphc_interp::Interp;
use graphc_ir::{Backend, BinaryOp, Executable, Graph, NodeId, ReduceOp};
use graphc_jit::{compile_with, Options};
use graphc_spec::{InitSpec, LayerInit, LayerKind, LayerSpec, ModelBody, ModelSpec, Precision};

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

/// Bits of `values`, every NaN alike (payloads are unspecified).
fn bits(values: &[f32]) -> Vec<u32> {
    values
        .iter()
        .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
        .collect()
}

/// Runs `graph` (parameters `x0`, `x1`, ... set to `inputs`) on both backends; asserts they
/// agree bit for bit and returns every output.
fn run_both(graph: &Graph, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut interp = Interp.compile(graph).unwrap();
    let mut jit = compile_with(graph, &Options { verify: true }).unwrap();
    for (i, data) in inputs.iter().enumerate() {
        interp.write(&format!("x{i}"), data).unwrap();
        jit.write(&format!("x{i}"), data).unwrap();
    }
    interp.run(&[]).unwrap();
    jit.run(&[]).unwrap();
    (0..graph.outputs().len())
        .map(|o| {
            assert_eq!(
                bits(jit.output(o)),
                bits(interp.output(o)),
                "output {o}: jit {:?} vs interp {:?}",
                jit.output(o),
                interp.output(o)
            );
            interp.output(o).to_vec()
        })
        .collect()
}

/// `y = build(x0, x1, ...)` for parameters of `shapes`, with outputs `y` and the gradients of
/// `sum(y · upstream)` with respect to every parameter.
fn graph_with_grads(
    shapes: &[&[usize]],
    upstream: &[f32],
    build: impl Fn(&mut Graph, &[NodeId]) -> NodeId,
) -> Graph {
    let mut g = Graph::new();
    let params: Vec<NodeId> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.param(&format!("x{i}"), s))
        .collect();
    let y = build(&mut g, &params);
    let shape = g.shape(y).to_vec();
    let w = g.constant(upstream.to_vec(), &shape).unwrap();
    let weighted = g.binary(BinaryOp::Mul, y, w).unwrap();
    let loss = g.sum_all(weighted).unwrap();
    let grads = grad(&mut g, loss, &params).unwrap();
    g.add_output("y", y);
    for d in grads {
        g.add_output("grad", d);
    }
    graphc_opt::optimize(&mut g).unwrap();
    g
}

/// Each value, then the same values again so that a 4-lane loop and its tail see them all.
fn twice(values: &[f32]) -> Vec<f32> {
    values.iter().chain(values).copied().collect()
}

#[test]
fn relu_propagates_nan_keeps_negative_zero_and_passes_no_gradient_at_zero() {
    let x = twice(&[NAN, INF, -INF, 0.0, -0.0, 1e-40, -1e-40, 2.5, -3.0]);
    let up = vec![3.0; x.len()];
    let n = x.len();
    let g = graph_with_grads(&[&[1, n]], &up, |g, p| {
        let model = ModelSpec {
            input: vec![n],
            body: ModelBody::Layers(vec![LayerSpec {
                name: None,
                kind: LayerKind::Relu,
                declared_input: None,
                init: LayerInit::default(),
                requires_grad: true,
            }]),
            init: InitSpec::Default,
        };
        graphc_nn::build_model(g, &model, p[0], graphc_nn::Mode::Eval, Precision::Fp32)
            .unwrap()
            .output
    });
    let out = run_both(&g, &[x]);
    // torch.relu is clamp_min(x, 0): x unless x < 0; its gradient threshold_backward(g, y, 0)
    // passes g unless y <= 0 (so NaN passes it, ±0 does not).
    let value = twice(&[NAN, INF, 0.0, 0.0, -0.0, 1e-40, 0.0, 2.5, 0.0]);
    let gradient = twice(&[3.0, 3.0, 0.0, 0.0, 0.0, 3.0, 0.0, 3.0, 0.0]);
    assert_eq!(bits(&out[0]), bits(&value), "{:?}", out[0]);
    assert_eq!(bits(&out[1]), bits(&gradient), "{:?}", out[1]);
}

#[test]
fn max_and_min_gradients_are_torch_maximum_and_minimum_at_nan_ties_and_infinite_upstream() {
    // (a, c, upstream): a strict winner, a tie, ±0 (a tie), NaN on either side, and an infinite
    // or NaN upstream gradient where an operand loses (masked to exactly 0 in PyTorch).
    let cases = [
        (1.0, 2.0, 4.0),
        (2.0, 2.0, 4.0),
        (-0.0, 0.0, 4.0),
        (NAN, 1.0, 4.0),
        (1.0, NAN, 4.0),
        (1.0, 2.0, INF),
        (3.0, 2.0, NAN),
        (INF, -INF, 4.0),
    ];
    let a = twice(&cases.map(|c| c.0));
    let c = twice(&cases.map(|c| c.1));
    let up = twice(&cases.map(|c| c.2));
    let n = a.len();
    for op in [BinaryOp::Max, BinaryOp::Min] {
        let g = graph_with_grads(&[&[n], &[n]], &up, |g, p| g.binary(op, p[0], p[1]).unwrap());
        let out = run_both(&g, &[a.clone(), c.clone()]);
        let (value, da, dc) = match op {
            BinaryOp::Max => (
                [2.0, 2.0, 0.0, NAN, NAN, 2.0, 3.0, INF],
                [0.0, 2.0, 2.0, 4.0, 4.0, 0.0, NAN, 4.0],
                [4.0, 2.0, 2.0, 4.0, 4.0, INF, 0.0, 0.0],
            ),
            BinaryOp::Min => (
                [1.0, 2.0, -0.0, NAN, NAN, 1.0, 2.0, -INF],
                [4.0, 2.0, 2.0, 4.0, 4.0, INF, 0.0, 0.0],
                [0.0, 2.0, 2.0, 4.0, 4.0, 0.0, NAN, 4.0],
            ),
            other => unreachable!("{other:?} is not tested here"),
        };
        assert_eq!(bits(&out[0]), bits(&twice(&value)), "{op:?} {:?}", out[0]);
        assert_eq!(bits(&out[1]), bits(&twice(&da)), "{op:?} da {:?}", out[1]);
        assert_eq!(bits(&out[2]), bits(&twice(&dc)), "{op:?} dc {:?}", out[2]);
    }
}

#[test]
fn reduce_max_propagates_nan_and_its_gradient_is_torch_amax() {
    let rows = [
        [1.0, 3.0, 3.0, 2.0, 0.0],
        [NAN, 1.0, 2.0, 3.0, 4.0],
        [-0.0, 0.0, -0.0, -1.0, -2.0],
        [-0.0, -0.0, -1.0, -2.0, -3.0],
        [-INF, -INF, -INF, -INF, -INF],
        [1.0, INF, NAN, 2.0, 3.0],
    ];
    let x: Vec<f32> = rows.iter().flatten().copied().collect();
    let up = [2.0, 2.0, 3.0, 2.0, 5.0, 2.0];
    let g = graph_with_grads(&[&[6, 5]], &up, |g, p| {
        g.reduce(ReduceOp::Max, p[0], &[1]).unwrap()
    });
    let out = run_both(&g, &[x]);
    assert_eq!(
        bits(&out[0]),
        bits(&[3.0, NAN, 0.0, -0.0, -INF, NAN]),
        "{:?}",
        out[0]
    );
    // g / count at the maxima; no element equals a NaN maximum, so its row is 0 · g/0 = NaN.
    let gradient: Vec<f32> = [
        [0.0, 1.0, 1.0, 0.0, 0.0],
        [NAN; 5],
        [1.0, 1.0, 1.0, 0.0, 0.0],
        [1.0, 1.0, 0.0, 0.0, 0.0],
        [1.0; 5],
        [NAN; 5],
    ]
    .iter()
    .flatten()
    .copied()
    .collect();
    assert_eq!(bits(&out[1]), bits(&gradient), "{:?}", out[1]);
}
