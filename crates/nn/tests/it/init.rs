//! `init:` schemes: fans, gains and the scales derived from them exactly as PyTorch computes
//! them (`tests/goldens/init/fans_gains.json`, made by `tools/goldens/init.py`), the draws'
//! statistics on large tensors, and the schemes PyTorch refuses refused before training.

use std::path::Path;

use graphc_ir::Graph;
use graphc_nn::{
    calculate_gain, check_scheme, default_init, describe_model, fans, kaiming_std, xavier_std,
    DefaultInit, NnError, ParamInfo,
};
use graphc_spec::{FanMode, InitScheme, Kaiming, Nonlinearity, Spec};
use serde_json::Value;

fn goldens() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/goldens/init/fans_gains.json");
    let text = std::fs::read_to_string(path).expect("committed");
    serde_json::from_str(&text).expect("JSON")
}

fn shape_of(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("a shape")
        .iter()
        .map(|d| d.as_u64().expect("a size") as usize)
        .collect()
}

fn nonlinearity(name: &str) -> Nonlinearity {
    *Nonlinearity::ALL
        .iter()
        .find(|n| n.name() == name)
        .unwrap_or_else(|| panic!("{name}"))
}

/// The scheme a golden row names, from its type and PyTorch keyword arguments.
fn scheme(row: &Value) -> InitScheme {
    let args = &row["args"];
    let number = |key: &str, default: f64| args.get(key).map_or(default, |v| v.as_f64().unwrap());
    let kaiming = || Kaiming {
        a: number("a", 0.0),
        mode: match args.get("mode").and_then(Value::as_str) {
            Some("fan_out") => FanMode::FanOut,
            _ => FanMode::FanIn,
        },
        nonlinearity: nonlinearity(
            args.get("nonlinearity")
                .and_then(Value::as_str)
                .unwrap_or("leaky_relu"),
        ),
    };
    match row["type"].as_str().unwrap() {
        "xavier_uniform" => InitScheme::XavierUniform {
            gain: number("gain", 1.0),
        },
        "xavier_normal" => InitScheme::XavierNormal {
            gain: number("gain", 1.0),
        },
        "kaiming_uniform" => InitScheme::KaimingUniform(kaiming()),
        "kaiming_normal" => InitScheme::KaimingNormal(kaiming()),
        "eye" => InitScheme::Eye,
        "orthogonal" => InitScheme::Orthogonal {
            gain: number("gain", 1.0),
        },
        other => panic!("no golden scheme {other}"),
    }
}

#[track_caller]
fn assert_close(ours: f64, pytorch: f64, what: &str) {
    assert!(
        (ours - pytorch).abs() <= 1e-15 * pytorch.abs(),
        "{what}: {ours} vs PyTorch {pytorch}"
    );
}

#[test]
fn fans_are_pytorchs() {
    let goldens = goldens();
    let rows = goldens["fans"].as_array().unwrap();
    assert!(rows.len() >= 9);
    for row in rows {
        let shape = shape_of(&row["shape"]);
        match fans(&shape) {
            Ok((fan_in, fan_out)) => {
                assert_eq!(Some(fan_in as u64), row["fan_in"].as_u64(), "{row}");
                assert_eq!(Some(fan_out as u64), row["fan_out"].as_u64(), "{row}");
            }
            Err(_) => assert_eq!(row["error"], Value::Bool(true), "{row}"),
        }
    }
    assert!(fans(&[usize::MAX, 2, 2]).is_err(), "checked arithmetic");
}

#[test]
fn gains_are_pytorchs() {
    let goldens = goldens();
    let rows = goldens["gains"].as_array().unwrap();
    let mut seen = Vec::new();
    for row in rows {
        let n = nonlinearity(row["nonlinearity"].as_str().unwrap());
        let param = row["param"].as_f64();
        seen.push(n);
        assert_close(
            calculate_gain(n, param),
            row["gain"].as_f64().unwrap(),
            &row.to_string(),
        );
    }
    for n in Nonlinearity::ALL {
        assert!(seen.contains(n), "{n:?} has no golden");
    }
}

#[test]
fn scheme_scales_and_refusals_are_pytorchs() {
    let goldens = goldens();
    let rows = goldens["schemes"].as_array().unwrap();
    let (mut refused, mut scaled) = (0, 0);
    for row in rows {
        let (scheme, shape) = (scheme(row), shape_of(&row["shape"]));
        let what = row.to_string();
        let checked = check_scheme(&scheme, &shape);
        if row.get("error").is_some() {
            assert!(checked.is_err(), "{what}: PyTorch refuses it");
            refused += 1;
            continue;
        }
        assert_eq!(checked, Ok(()), "{what}");
        let std = match scheme {
            InitScheme::XavierUniform { gain } | InitScheme::XavierNormal { gain } => {
                xavier_std(gain, fans(&shape).unwrap())
            }
            InitScheme::KaimingUniform(k) | InitScheme::KaimingNormal(k) => {
                kaiming_std(&k, fans(&shape).unwrap())
            }
            InitScheme::Eye | InitScheme::Orthogonal { .. } => continue,
            InitScheme::Uniform { .. }
            | InitScheme::Normal { .. }
            | InitScheme::TruncNormal { .. }
            | InitScheme::Constant { .. }
            | InitScheme::Zeros
            | InitScheme::Ones => unreachable!("no golden row of {scheme:?}"),
        };
        match (row.get("bound"), row.get("std")) {
            (Some(bound), None) => assert_close(3f64.sqrt() * std, bound.as_f64().unwrap(), &what),
            (None, Some(want)) => assert_close(std, want.as_f64().unwrap(), &what),
            _ => panic!("{what}: neither bound nor std"),
        }
        scaled += 1;
    }
    assert!(
        refused >= 20 && scaled >= 60,
        "{refused} refused, {scaled} scaled"
    );
}

/// One tensor of `shape` drawn with `scheme` from seed 7, after a default-init tensor.
fn draw(scheme: InitScheme, shape: &[usize]) -> Vec<f32> {
    let mut graph = Graph::new();
    let mut param = |name: &str, shape: &[usize], scheme| ParamInfo {
        name: name.into(),
        shape: shape.to_vec(),
        init: DefaultInit::Uniform { fan_in: 3 },
        scheme,
        trainable: true,
        node: graph.param(name, shape),
    };
    let params = [
        param("0.weight", &[4, 3], None),
        param("1.weight", shape, Some(scheme)),
    ];
    default_init(&params, 7).pop().unwrap()
}

/// Mean and (population) variance in f64.
fn moments(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var)
}

/// Mean and variance within 5 standard errors of `mean` and `var` (for a distribution whose
/// fourth central moment is `kurtosis · var²`).
#[track_caller]
fn assert_moments(values: &[f32], mean: f64, var: f64, kurtosis: f64, what: &str) {
    let n = values.len() as f64;
    let (m, v) = moments(values);
    let mean_se = (var / n).sqrt();
    let var_se = ((kurtosis - 1.0) * var * var / n).sqrt();
    assert!(
        (m - mean).abs() < 5.0 * mean_se,
        "{what}: mean {m} vs {mean}"
    );
    assert!(
        (v - var).abs() < 5.0 * var_se,
        "{what}: variance {v} vs {var}"
    );
}

const BIG: [usize; 2] = [400, 250];

#[test]
fn uniform_and_normal_draws_have_their_moments_and_bounds() {
    let w = draw(InitScheme::Uniform { a: -1.0, b: 3.0 }, &BIG);
    assert!(w.iter().all(|&v| (-1.0..3.0).contains(&v)));
    assert_moments(&w, 1.0, 16.0 / 12.0, 1.8, "uniform(-1, 3)");

    let w = draw(
        InitScheme::Normal {
            mean: 0.5,
            std: 2.0,
        },
        &BIG,
    );
    assert_moments(&w, 0.5, 4.0, 3.0, "normal(0.5, 2)");
    // Tails: about 4.6% of a normal lies beyond 2 standard deviations.
    let beyond = w
        .iter()
        .filter(|&&v| (f64::from(v) - 0.5).abs() > 4.0)
        .count();
    let share = beyond as f64 / w.len() as f64;
    assert!((share - 0.0455).abs() < 0.004, "share beyond 2σ {share}");

    let fans = (250.0, 400.0);
    let w = draw(InitScheme::XavierUniform { gain: 2.0 }, &BIG);
    let bound = 2.0 * (6.0f64 / (fans.0 + fans.1)).sqrt();
    assert!(w.iter().all(|&v| f64::from(v).abs() <= bound));
    assert_moments(&w, 0.0, bound * bound / 3.0, 1.8, "xavier_uniform");

    let w = draw(InitScheme::XavierNormal { gain: 1.0 }, &BIG);
    assert_moments(&w, 0.0, 2.0 / (fans.0 + fans.1), 3.0, "xavier_normal");

    let relu = Kaiming {
        a: 0.0,
        mode: FanMode::FanOut,
        nonlinearity: Nonlinearity::Relu,
    };
    let w = draw(InitScheme::KaimingNormal(relu), &[100, 50, 3, 3]);
    assert_moments(
        &w,
        0.0,
        2.0 / 900.0,
        3.0,
        "kaiming_normal fan_out relu on a conv weight",
    );
    let w = draw(
        InitScheme::KaimingUniform(Kaiming {
            mode: FanMode::FanIn,
            ..relu
        }),
        &BIG,
    );
    let bound = (6.0f64 / fans.0).sqrt();
    assert!(w.iter().all(|&v| f64::from(v).abs() <= bound));
    assert_moments(&w, 0.0, 2.0 / fans.0, 1.8, "kaiming_uniform");
}

#[test]
fn trunc_normal_stays_within_its_cut_offs_with_the_truncated_moments() {
    // N(0.5, 1) cut to [-0.5, 2]: standardised cut-offs α = -1, β = 1.5.
    let (mean, std, a, b) = (0.5, 1.0, -0.5, 2.0);
    let w = draw(InitScheme::TruncNormal { mean, std, a, b }, &BIG);
    assert!(w.iter().all(|&v| (a..=b).contains(&f64::from(v))));
    let pdf = |x: f64| (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let (alpha, beta) = ((a - mean) / std, (b - mean) / std);
    // Φ(1.5) - Φ(-1) from tables: 0.9331928 - 0.1586553.
    let z = 0.933_192_798_731_142 - 0.158_655_253_931_457;
    let shift = (pdf(alpha) - pdf(beta)) / z;
    let want_mean = mean + std * shift;
    let want_var = std * std * (1.0 + (alpha * pdf(alpha) - beta * pdf(beta)) / z - shift * shift);
    assert_moments(&w, want_mean, want_var, 2.5, "trunc_normal");
    // Default cut-offs ±2 around a small std: nothing is cut, the moments are the normal's.
    let w = draw(
        InitScheme::TruncNormal {
            mean: 0.0,
            std: 0.02,
            a: -2.0,
            b: 2.0,
        },
        &BIG,
    );
    assert_moments(&w, 0.0, 0.0004, 3.0, "trunc_normal std 0.02");
}

#[test]
fn orthogonal_draws_are_orthonormal_times_gain() {
    for (rows, cols) in [(64, 32), (32, 64), (40, 40), (12, 2 * 3 * 3)] {
        let gain = 1.5;
        let shape = if cols == 18 {
            vec![12, 2, 3, 3]
        } else {
            vec![rows, cols]
        };
        let w = draw(InitScheme::Orthogonal { gain }, &shape);
        // The smaller Gram matrix: WᵀW (cols × cols) for tall W, W Wᵀ for wide W.
        let (k, dot): (usize, Box<dyn Fn(usize, usize) -> f64>) = if rows >= cols {
            (
                cols,
                Box::new(|i, j| {
                    (0..rows)
                        .map(|r| f64::from(w[r * cols + i]) * f64::from(w[r * cols + j]))
                        .sum()
                }),
            )
        } else {
            (
                rows,
                Box::new(|i, j| {
                    (0..cols)
                        .map(|c| f64::from(w[i * cols + c]) * f64::from(w[j * cols + c]))
                        .sum()
                }),
            )
        };
        for i in 0..k {
            for j in 0..k {
                let want = if i == j { gain * gain } else { 0.0 };
                assert!(
                    (dot(i, j) - want).abs() < 1e-5,
                    "{rows}x{cols} [{i},{j}] {}",
                    dot(i, j)
                );
            }
        }
    }
}

#[test]
fn eye_and_constants_are_exact() {
    let w = draw(InitScheme::Eye, &[3, 5]);
    let want: Vec<f32> = (0..15)
        .map(|i| if i / 5 == i % 5 { 1.0 } else { 0.0 })
        .collect();
    assert_eq!(w, want);
    assert_eq!(
        draw(InitScheme::Constant { val: 0.3 }, &[2, 3]),
        vec![0.3f32; 6]
    );
    assert_eq!(draw(InitScheme::Zeros, &[4]), vec![0.0f32; 4]);
    assert_eq!(draw(InitScheme::Ones, &[4]), vec![1.0f32; 4]);
}

#[test]
fn a_scheme_leaves_the_other_tensors_default_draws_as_they_were() {
    let spec = |init: &str| -> Spec {
        format!(
            "data: {{train: {{csv: t.csv, target: y}}, batch_size: 4}}
model:
  input: [5]
  layers:
    - {{type: linear, out: 6{init}}}
    - {{type: relu}}
    - {{type: linear, out: 3}}
loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1}}
train: {{epochs: 1}}
"
        )
        .parse()
        .unwrap()
    };
    let values = |s: &Spec| {
        let step = graphc_nn::build_step(s, 4, graphc_nn::TargetLayout::Classes).unwrap();
        default_init(&step.params, s.seed)
    };
    let plain = values(&spec(""));
    let schemed = values(&spec(
        ", init: {weight: {type: kaiming_normal}, bias: {type: zeros}}",
    ));
    assert_ne!(plain[0], schemed[0]);
    assert_eq!(schemed[1], vec![0.0; 6]);
    assert_eq!(plain[2..], schemed[2..], "the second linear's default init");
}

#[test]
fn a_scheme_pytorch_refuses_for_the_tensor_names_the_layer_and_tensor() {
    let model = |layer: &str| -> Result<(), NnError> {
        let spec: Spec = format!(
            "data: {{train: {{csv: t.csv, target: y}}, batch_size: 4}}
model:
  input: [5]
  layers:
    - {layer}
loss: {{type: mse}}
optimizer: {{type: sgd, lr: 0.1}}
train: {{epochs: 1}}
"
        )
        .parse()
        .unwrap();
        describe_model(&spec.model, 4).map(|_| ())
    };
    let cases = [
        (
            "{type: linear, out: 3, init: {bias: {type: xavier_uniform}}}",
            "model.layers[0] (linear at 0): init.bias: xavier_uniform: fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions; 0.bias is [3]",
        ),
        (
            "{type: linear, out: 3, name: fc, init: {bias: {type: eye}}}",
            "model.layers[0] (linear \"fc\"): init.bias: eye needs a 2-d tensor, as PyTorch's eye_; fc.bias is [3]",
        ),
        (
            "{type: batch_norm1d, init: {weight: {type: orthogonal}}}",
            "model.layers[0] (batch_norm1d at 0): init.weight: orthogonal needs a tensor of 2 or more dimensions, as PyTorch's orthogonal_; 0.weight is [5]",
        ),
        (
            "{type: prelu, init: {weight: {type: kaiming_normal}}}",
            "model.layers[0] (prelu at 0): init.weight: kaiming_normal: fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions; 0.weight is [1]",
        ),
        (
            "{type: linear, out: 3, bias: false, init: {bias: {type: zeros}}}",
            "model.layers[0] (linear at 0): init.bias: the layer has no bias (bias: false)",
        ),
        (
            "{type: batch_norm1d, affine: false, init: {weight: {type: ones}}}",
            "model.layers[0] (batch_norm1d at 0): init.weight: the layer has no weight",
        ),
    ];
    for (layer, message) in cases {
        let e = model(layer).expect_err(layer);
        assert_eq!(e.to_string(), message, "{layer}");
    }
    model("{type: linear, out: 3, init: {weight: {type: eye}, bias: {type: normal}}}").unwrap();
}
