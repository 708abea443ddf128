//! NaN, infinities and signed zeros as PyTorch treats them, on every backend: each activation
//! layer graphc builds, `BinaryOp::Max`/`Min` (torch.maximum/minimum), `ReduceOp::Max`
//! (torch.amax) and cross entropy, forward and gradient, against
//! `tests/goldens/nan/*.json` (made by `tools/goldens/nan_semantics.py`). NaN must be NaN,
//! infinities the same, a zero has PyTorch's sign wherever PyTorch fixes it; ops that only
//! select among their inputs (relu, max, min, amax) must match bit for bit, and the backends
//! must agree with each other bit for bit on them.

use std::path::Path;

use graphc::stages::autodiff;
use graphc::stages::ir::{Arg, BinaryOp, Graph, NodeId, ReduceOp, TensorType};
use graphc::stages::spec::{
    Activation, GeluApproximate, InitSpec, LayerInit, LayerKind, LayerSpec, LayerType, ModelBody,
    ModelSpec, Precision,
};
use graphc::stages::{nn, opt, spec};
use graphc::BackendKind;
use serde_json::Value;

use crate::support::{mismatches, tensor, Tensor};

/// Relative tolerance of rounded (not exact) results.
const RELATIVE: f64 = 1e-5;
/// An element's error may also be this fraction of the largest finite element of its tensor.
const OF_LARGEST: f64 = 1e-6;

fn f32s(t: &Tensor) -> Vec<f32> {
    t.data.iter().map(|&v| v as f32).collect()
}

/// The golden file of each activation layer; `None` for layers that are not activations. A
/// new layer type is a compile error here until it says whether it needs a NaN golden.
fn activation_golden(layer: LayerType) -> Option<&'static str> {
    match layer {
        LayerType::Linear => None,
        LayerType::Relu => Some("relu"),
        LayerType::Sigmoid => Some("sigmoid"),
        LayerType::Tanh => Some("tanh"),
        LayerType::Softmax => Some("softmax"),
        LayerType::LogSoftmax => Some("log_softmax"),
        // Max pooling's NaN rule (a NaN wins its window) is checked against PyTorch by
        // tests/goldens/windowed_ops/max_pool.json; the others only sum or move values.
        LayerType::Conv1d
        | LayerType::Conv2d
        | LayerType::MaxPool1d
        | LayerType::MaxPool2d
        | LayerType::AvgPool1d
        | LayerType::AvgPool2d
        | LayerType::AdaptiveAvgPool1d
        | LayerType::AdaptiveAvgPool2d
        | LayerType::AdaptiveMaxPool2d
        | LayerType::Flatten => None,
        // Batch norm and dropout multiply, divide and sum (NaN in, NaN out, as in PyTorch);
        // their goldens (tests/goldens/norm_dropout/) check them on finite values.
        LayerType::BatchNorm1d
        | LayerType::BatchNorm2d
        | LayerType::Dropout
        | LayerType::Dropout1d
        | LayerType::Dropout2d => None,
        // Layer and group norm sum, multiply and divide as batch norm does; an embedding's
        // inputs are checked class indices. tests/goldens/norm_embed/ checks them.
        LayerType::LayerNorm | LayerType::GroupNorm | LayerType::Embedding => None,
        // The activations of tools/goldens/activations.py, in tests/goldens/activations/ops/.
        LayerType::Identity => Some("identity"),
        LayerType::LeakyRelu => Some("leaky_relu"),
        LayerType::Elu => Some("elu"),
        LayerType::Selu => Some("selu"),
        LayerType::Celu => Some("celu"),
        LayerType::Gelu => Some("gelu"),
        LayerType::Silu => Some("silu"),
        LayerType::Mish => Some("mish"),
        LayerType::Softplus => Some("softplus"),
        LayerType::Hardtanh => Some("hardtanh"),
        LayerType::Relu6 => Some("relu6"),
        LayerType::Hardsigmoid => Some("hardsigmoid"),
        LayerType::Hardswish => Some("hardswish"),
        LayerType::LogSigmoid => Some("logsigmoid"),
        LayerType::Softsign => Some("softsign"),
        LayerType::Tanhshrink => Some("tanhshrink"),
        // A learned slope: its rule (`x > 0`, NaN and 0 take the slope) is checked by the
        // training goldens tests/goldens/activations/kinks_prelu*.
        LayerType::Prelu => None,
        // Blocks and combinators add, multiply and move values; their goldens
        // (tests/goldens/graph_models/) check them on finite values.
        LayerType::Sequential
        | LayerType::Residual
        | LayerType::Add
        | LayerType::Sub
        | LayerType::Mul
        | LayerType::Concat
        | LayerType::Mean
        | LayerType::Sum
        | LayerType::Reshape => None,
    }
}

/// The golden file of `op`: `tests/goldens/nan/<op>.json`, or for the activations of
/// `tools/goldens/activations.py`, `tests/goldens/activations/ops/<op>.json`.
fn golden_path(op: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens");
    let nan = root.join("nan").join(format!("{op}.json"));
    if nan.exists() {
        nan
    } else {
        root.join("activations/ops").join(format!("{op}.json"))
    }
}

/// The layer of an activation golden, over the last axis where it has one.
fn activation_layer(op: &str) -> Option<LayerKind> {
    Some(match op {
        "relu" => LayerKind::Relu,
        "sigmoid" => LayerKind::Sigmoid,
        "tanh" => LayerKind::Tanh,
        "softmax" => LayerKind::Softmax { dim: -1 },
        "log_softmax" => LayerKind::LogSoftmax { dim: -1 },
        "identity" => LayerKind::Activation(Activation::Identity),
        "leaky_relu" => LayerKind::Activation(Activation::LeakyRelu {
            negative_slope: 0.01,
        }),
        "leaky_relu_slope" => LayerKind::Activation(Activation::LeakyRelu {
            negative_slope: 0.2,
        }),
        "elu" => LayerKind::Activation(Activation::Elu { alpha: 1.0 }),
        "elu_alpha" => LayerKind::Activation(Activation::Elu { alpha: 0.5 }),
        "selu" => LayerKind::Activation(Activation::Selu),
        "celu" => LayerKind::Activation(Activation::Celu { alpha: 1.0 }),
        "celu_alpha" => LayerKind::Activation(Activation::Celu { alpha: 2.0 }),
        "gelu" => LayerKind::Activation(Activation::Gelu {
            approximate: GeluApproximate::None,
        }),
        "gelu_tanh" => LayerKind::Activation(Activation::Gelu {
            approximate: GeluApproximate::Tanh,
        }),
        "silu" => LayerKind::Activation(Activation::Silu),
        "mish" => LayerKind::Activation(Activation::Mish),
        "softplus" => LayerKind::Activation(Activation::Softplus {
            beta: 1.0,
            threshold: 20.0,
        }),
        "softplus_beta" => LayerKind::Activation(Activation::Softplus {
            beta: 2.0,
            threshold: 4.0,
        }),
        "hardtanh" => LayerKind::Activation(Activation::Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        }),
        "hardtanh_bounds" => LayerKind::Activation(Activation::Hardtanh {
            min_val: -2.0,
            max_val: 0.5,
        }),
        "relu6" => LayerKind::Activation(Activation::Relu6),
        "hardsigmoid" => LayerKind::Activation(Activation::Hardsigmoid),
        "hardswish" => LayerKind::Activation(Activation::Hardswish),
        "logsigmoid" => LayerKind::Activation(Activation::LogSigmoid),
        "softsign" => LayerKind::Activation(Activation::Softsign),
        "tanhshrink" => LayerKind::Activation(Activation::Tanhshrink),
        _ => return None,
    })
}

/// `op` applied to `params` (shaped as the case's inputs) in `graph`.
fn build_op(graph: &mut Graph, op: &str, params: &[NodeId]) -> NodeId {
    if let Some(kind) = activation_layer(op) {
        // The layer as graphc-nn builds it, on a batch of rows (a 1-D input is one row).
        let shape = graph.shape(params[0]).to_vec();
        let model = ModelSpec {
            input: shape[1..].to_vec(),
            body: ModelBody::Layers(vec![LayerSpec {
                name: None,
                kind,
                declared_input: None,
                init: LayerInit::default(),
                requires_grad: true,
            }]),
            init: InitSpec::Default,
        };
        return nn::build_model(graph, &model, params[0], nn::Mode::Eval, Precision::Fp32)
            .expect("the layer builds")
            .output;
    }
    match op {
        "maximum" => graph.binary(BinaryOp::Max, params[0], params[1]),
        "minimum" => graph.binary(BinaryOp::Min, params[0], params[1]),
        "amax" => graph.reduce(ReduceOp::Max, params[0], &[1]),
        other => panic!("no graph for golden op {other}"),
    }
    .expect("well-typed")
}

/// The value and the gradients of one case on one backend.
struct Run {
    value: Vec<f32>,
    grads: Vec<Vec<f32>>,
}

/// `value = op(inputs)` and the gradients of `sum(value · upstream)` (that is, the
/// vector-Jacobian product with `upstream`, as `value.backward(upstream)`).
fn run_op(op: &str, case: &Value, backend: BackendKind) -> Run {
    let inputs: Vec<Tensor> = case["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(tensor)
        .collect();
    let mut graph = Graph::new();
    let params: Vec<NodeId> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            // A 1-D input becomes one row, so a layer sees a batch axis.
            let shape = if t.shape.len() == 1 {
                vec![1, t.shape[0]]
            } else {
                t.shape.clone()
            };
            graph.param(&format!("x{i}"), &shape)
        })
        .collect();
    let y = build_op(&mut graph, op, &params);
    let upstream = tensor(&case["upstream"]);
    let y_shape = graph.shape(y).to_vec();
    let w = graph
        .constant(f32s(&upstream), &y_shape)
        .expect("upstream fits");
    let weighted = graph.binary(BinaryOp::Mul, y, w).expect("same shape");
    let loss = graph.sum_all(weighted).expect("sum");
    let grads = autodiff::grad(&mut graph, loss, &params).expect("differentiable");
    graph.add_output("value", y);
    for &g in &grads {
        graph.add_output("grad", g);
    }
    opt::optimize(&mut graph).expect("optimizes");
    let mut exe = backend.backend().compile(&graph).expect("compiles");
    for (i, t) in inputs.iter().enumerate() {
        exe.write(&format!("x{i}"), &f32s(t)).expect("a parameter");
    }
    exe.run(&[]).expect("runs");
    Run {
        value: exe.output(0).to_vec(),
        grads: (0..grads.len())
            .map(|i| exe.output(1 + i).to_vec())
            .collect(),
    }
}

/// Cross entropy as graphc-nn builds the loss, with the gradient of the summed losses.
fn run_cross_entropy(case: &Value, backend: BackendKind) -> Run {
    let loss_text = case["loss"].to_string();
    let loss = spec::parse_loss_str(&loss_text, Path::new("golden")).expect("loss parses");
    let logits = tensor(&case["inputs"][0]);
    let targets = tensor(&case["inputs"][1]);
    let mut built =
        nn::build_loss_graph(&loss, &logits.shape, &TensorType::i64(&targets.shape), true)
            .expect("loss builds");
    opt::optimize(&mut built.graph).expect("optimizes");
    let mut exe = backend.backend().compile(&built.graph).expect("compiles");
    exe.write("input", &f32s(&logits)).expect("a parameter");
    let indices: Vec<i64> = targets.data.iter().map(|&v| v as i64).collect();
    exe.run(&[Arg::I64(&indices)]).expect("runs");
    Run {
        value: exe.output(built.loss_output).to_vec(),
        grads: vec![exe
            .output(built.grad_output.expect("asked for the gradient"))
            .to_vec()],
    }
}

/// Whether the signs of zero gradients are PyTorch's. Not for softmax: its gradient comes
/// from the composite (`exp` of `log_softmax`) as `g·y + y·(-Σ g·y)`, PyTorch's fused kernel
/// computes `y·(g - Σ g·y)`; where `y` underflows to exactly 0 both give a zero, with the
/// sign its own order of operations leaves. NaN, infinities and values are still PyTorch's.
///
/// Nor for the activations of `tests/goldens/activations/ops/`: they are `select`s of
/// branches (or values with an attached gradient), and autodiff adds up what each branch
/// sends back, so where the taken branch gives `-0` the untaken one's `+0` makes it `+0`.
/// A zero gradient moves no parameter whatever its sign.
fn gradient_zero_signs_checked(op: &str) -> bool {
    let activation = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("goldens/activations/ops")
        .join(format!("{op}.json"))
        .exists();
    op != "softmax" && !activation
}

/// Whether `actual` is PyTorch's `expected`: NaN for NaN, the same infinity, a zero of the
/// same sign (unless `sign_free`), and the same value — bit for bit when `exact`, else within
/// the tolerances.
fn matches(actual: f32, expected: f64, exact: bool, sign_free: bool, largest: f64) -> bool {
    let a = f64::from(actual);
    if expected.is_nan() || a.is_nan() {
        return expected.is_nan() && a.is_nan();
    }
    if expected == 0.0 && a == 0.0 {
        return sign_free || a.is_sign_negative() == expected.is_sign_negative();
    }
    if exact || expected.is_infinite() {
        return a == expected;
    }
    (a - expected).abs() <= RELATIVE * expected.abs() + OF_LARGEST * largest
}

/// One message per element of `actual` that is not PyTorch's `expected`.
fn compare(
    what: &str,
    actual: &[f32],
    expected: &Tensor,
    exact: bool,
    sign_free: &[usize],
) -> Vec<String> {
    mismatches(what, actual, expected, |i, a, e, largest| {
        matches(a, e, exact, sign_free.contains(&i), largest)
    })
}

/// The bits of `values`, with every NaN the same (NaN payloads are not specified).
fn bits(values: &[f32]) -> Vec<u32> {
    values
        .iter()
        .map(|v| {
            if v.is_nan() {
                f32::NAN.to_bits()
            } else {
                v.to_bits()
            }
        })
        .collect()
}

/// Checks every case of `tests/goldens/nan/<op>.json` on every backend.
fn check(op: &str) {
    let failures = failures(op);
    assert!(
        failures.is_empty(),
        "{} elements differ from PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What differs from PyTorch in the cases of `op`'s golden, on every backend.
fn failures(op: &str) -> Vec<String> {
    let path = golden_path(op);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tools/goldens/nan_semantics.py)",
            path.display()
        )
    });
    let golden: Value = serde_json::from_str(&text).expect("golden JSON");
    assert_eq!(golden["op"], op);
    let exact = golden["exact"].as_bool().expect("exact");
    let cases = golden["cases"].as_array().expect("cases");
    assert!(cases.len() >= 2, "{op}: only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let sign_free: Vec<usize> = case["value_sign_free"]
            .as_array()
            .expect("value_sign_free")
            .iter()
            .map(|i| i.as_u64().expect("index") as usize)
            .collect();
        let mut runs = Vec::new();
        for &backend in BackendKind::ALL {
            let run = if op == "cross_entropy" {
                run_cross_entropy(case, backend)
            } else {
                run_op(op, case, backend)
            };
            let what = format!("{op}/{name} on {}", backend.name());
            let mut problems = compare(
                &format!("{what}: value"),
                &run.value,
                &tensor(&case["value"]),
                exact,
                &sign_free,
            );
            let expected_grads = case["grads"].as_array().expect("grads");
            assert_eq!(run.grads.len(), expected_grads.len(), "{what}: gradients");
            for (i, (g, e)) in run.grads.iter().zip(expected_grads).enumerate() {
                let every: Vec<usize> = (0..g.len()).collect();
                let sign_free: &[usize] = if gradient_zero_signs_checked(op) {
                    &[]
                } else {
                    &every
                };
                problems.extend(compare(
                    &format!("{what}: grad {i}"),
                    g,
                    &tensor(e),
                    exact,
                    sign_free,
                ));
            }
            failures.extend(problems);
            runs.push(run);
        }
        if exact {
            // Where PyTorch leaves a zero's sign open, graphc's backends still agree.
            for pair in runs.windows(2) {
                if bits(&pair[0].value) != bits(&pair[1].value) {
                    failures.push(format!("{op}/{name}: the backends' values differ in bits"));
                }
                for (a, b) in pair[0].grads.iter().zip(&pair[1].grads) {
                    if bits(a) != bits(b) {
                        failures.push(format!(
                            "{op}/{name}: the backends' gradients differ in bits"
                        ));
                    }
                }
            }
        }
    }
    failures
}

#[test]
fn every_activation_layer_has_a_nan_golden() {
    for &layer in LayerType::ALL {
        if let Some(op) = activation_golden(layer) {
            assert!(
                activation_layer(op).is_some(),
                "{}: no graph for its golden",
                layer.name()
            );
            let path = golden_path(op);
            assert!(path.exists(), "{}: no {}", layer.name(), path.display());
        }
    }
}

#[test]
fn relu_propagates_nan_keeps_negative_zero_and_has_zero_gradient_at_zero() {
    check("relu");
}

#[test]
fn sigmoid_matches_pytorch_at_nan_infinities_and_zeros() {
    check("sigmoid");
}

#[test]
fn tanh_matches_pytorch_at_nan_infinities_and_zeros() {
    check("tanh");
}

#[test]
fn softmax_matches_pytorch_on_rows_with_nan_and_infinities() {
    check("softmax");
}

#[test]
fn log_softmax_matches_pytorch_on_rows_with_nan_and_infinities() {
    check("log_softmax");
}

/// Every activation of `tests/goldens/activations/ops/` (made by
/// `tools/goldens/activations.py`): NaN, infinities, signed zeros and the kinks (0, ±1, ±3,
/// 6, the softplus threshold, hardtanh's bounds), forward and gradient.
#[test]
fn activations_match_pytorch_at_kinks_nan_infinities_and_zeros() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/activations/ops");
    let mut ops: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/goldens/activations/ops is committed")
        .map(|e| e.expect("readable").path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    ops.sort();
    assert!(ops.len() >= 22, "only {} activation goldens", ops.len());
    let mut all = Vec::new();
    for op in &ops {
        assert!(
            activation_layer(op).is_some(),
            "{op}: no layer for its golden"
        );
        all.extend(failures(op));
    }
    assert!(
        all.is_empty(),
        "{} elements differ from PyTorch:\n{}",
        all.len(),
        all.join("\n")
    );
}

#[test]
fn max_propagates_nan_and_splits_ties_as_torch_maximum() {
    check("maximum");
}

#[test]
fn min_propagates_nan_and_splits_ties_as_torch_minimum() {
    check("minimum");
}

#[test]
fn reduce_max_propagates_nan_as_torch_amax() {
    check("amax");
}

#[test]
fn cross_entropy_propagates_nan_and_infinite_logits_as_pytorch() {
    check("cross_entropy");
}
