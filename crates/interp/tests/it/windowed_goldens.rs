//! The windowed ops against PyTorch: `tests/goldens/windowed_ops/*.json`
//! (made by `tools/goldens/windowed_ops.py`) holds conv1d/conv2d with both
//! gradients, max_pool1d/2d and adaptive_max_pool2d with their gradients and
//! indices; the interpreter, in f32 as it trains, must give the same values.

use std::collections::HashMap;
use std::path::Path;

use graphc_interp::{evaluate, Value};
use graphc_ir::{AxisWindows, Graph, NodeId, Op, TensorType, Window, WindowAxis};
use serde_json::Value as Json;

/// Relative tolerance on each element of a sum of products.
const RELATIVE: f64 = 1e-5;
/// An element's error may also be this fraction of the largest element of the
/// same tensor: a sum of terms of both signs carries the rounding of its terms,
/// and PyTorch sums in another order.
const OF_LARGEST: f64 = 2e-6;

/// A tensor of a golden case.
struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn number(v: &Json) -> f32 {
    match v {
        Json::String(s) if s == "NaN" => f32::NAN,
        Json::String(s) if s == "Infinity" => f32::INFINITY,
        Json::String(s) if s == "-Infinity" => f32::NEG_INFINITY,
        // Every golden float is a float32 value written as a double.
        _ => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32,
    }
}

fn tensor(v: &Json) -> Tensor {
    let usizes = |key: &str| -> Vec<usize> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} of {v}"))
            .iter()
            .map(|d| d.as_u64().expect("a size") as usize)
            .collect()
    };
    Tensor {
        shape: usizes("shape"),
        data: v["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(number)
            .collect(),
    }
}

fn field(case: &Json, key: &str) -> usize {
    case[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} of {case}")) as usize
}

fn window(case: &Json) -> Window {
    let axes = case["window"]
        .as_array()
        .expect("window")
        .iter()
        .map(|a| WindowAxis {
            input: field(a, "input"),
            output: field(a, "output"),
            windows: if a["adaptive"].as_bool() == Some(true) {
                AxisWindows::Adaptive
            } else {
                AxisWindows::Strided {
                    kernel: field(a, "kernel"),
                    stride: field(a, "stride"),
                    dilation: field(a, "dilation"),
                    pad_lo: field(a, "pad_lo"),
                }
            },
        })
        .collect();
    Window { axes }
}

fn cases(file: &str, at_least: usize) -> Vec<Json> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/goldens/windowed_ops")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let json: Json = serde_json::from_str(&text).expect("valid JSON");
    let cases = json["cases"].as_array().expect("cases").clone();
    assert!(
        cases.len() >= at_least,
        "{file}: only {} cases",
        cases.len()
    );
    cases
}

/// Evaluates `op` on two inputs in f32 and returns its value and shape.
fn run(op: Op, a: &Tensor, b: &Tensor) -> (Vec<f32>, Vec<usize>) {
    let mut graph = Graph::new();
    let na = graph.input("a", TensorType::f32(&a.shape));
    let nb = graph.input("b", TensorType::f32(&b.shape));
    let node: NodeId = graph
        .add(op.clone(), &[na, nb])
        .unwrap_or_else(|e| panic!("{op}: {e}"));
    graph.add_output("y", node);
    let order = graph.topo_order().expect("acyclic");
    let args = [Value::F(a.data.clone()), Value::F(b.data.clone())];
    let values = evaluate(&graph, &order, &args, &HashMap::new()).expect("evaluates");
    (
        values[node.index()].as_f().clone(),
        graph.shape(node).to_vec(),
    )
}

/// Mismatches of `actual` against PyTorch's `expected`: NaN where PyTorch has
/// NaN, the same infinities, finite values within the tolerance.
fn compare(what: &str, (actual, shape): (Vec<f32>, Vec<usize>), expected: &Tensor) -> Vec<String> {
    if shape != expected.shape || actual.len() != expected.data.len() {
        return vec![format!(
            "{what}: shape {shape:?}, PyTorch has {:?}",
            expected.shape
        )];
    }
    let largest = expected
        .data
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    actual
        .iter()
        .zip(&expected.data)
        .enumerate()
        .filter(|&(_, (&a, &e))| {
            let (a, e) = (f64::from(a), f64::from(e));
            let ok = if e.is_nan() {
                a.is_nan()
            } else if e.is_infinite() {
                a == e
            } else {
                (a - e).abs() <= RELATIVE * e.abs() + OF_LARGEST * largest
            };
            !ok
        })
        .map(|(i, (a, e))| format!("{what}[{i}]: {a}, PyTorch {e}"))
        .collect()
}

#[test]
fn conv_and_its_gradients_match_pytorch() {
    let mut failures = Vec::new();
    for case in cases("conv.json", 15) {
        let name = case["name"].as_str().expect("name");
        let (window, groups) = (window(&case), field(&case, "groups"));
        let [x, w, y, dy, dx, dw] = ["x", "w", "y", "dy", "dx", "dw"].map(|k| tensor(&case[k]));
        let conv = Op::Conv {
            window: window.clone(),
            groups,
        };
        let input_grad = Op::ConvInputGrad {
            window: window.clone(),
            groups,
        };
        let weight_grad = Op::ConvWeightGrad { window, groups };
        failures.extend(compare(&format!("{name} y"), run(conv, &x, &w), &y));
        failures.extend(compare(
            &format!("{name} dx"),
            run(input_grad, &dy, &w),
            &dx,
        ));
        failures.extend(compare(
            &format!("{name} dw"),
            run(weight_grad, &x, &dy),
            &dw,
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn max_pool_and_its_gradient_match_pytorch() {
    let mut failures = Vec::new();
    for case in cases("max_pool.json", 15) {
        let name = case["name"].as_str().expect("name");
        let window = window(&case);
        let [x, y, indices, dy, dx] = ["x", "y", "indices", "dy", "dx"].map(|k| tensor(&case[k]));
        // max_pool(x, x) is the pooled value; max_pool(x, p), where p holds each
        // element's index within its spatial plane, is PyTorch's `indices`.
        let plane: usize = x.shape[2..].iter().product();
        let positions = Tensor {
            shape: x.shape.clone(),
            data: (0..x.data.len()).map(|i| (i % plane) as f32).collect(),
        };
        let pool = Op::MaxPool(window.clone());
        failures.extend(compare(&format!("{name} y"), run(pool.clone(), &x, &x), &y));
        failures.extend(compare(
            &format!("{name} indices"),
            run(pool, &x, &positions),
            &indices,
        ));
        failures.extend(compare(
            &format!("{name} dx"),
            run(Op::MaxPoolGrad(window), &x, &dy),
            &dx,
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
