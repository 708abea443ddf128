//! The loss builders: every loss's gradient against central finite
//! differences (in f64 on the interpreter), PyTorch's reductions on hand-made
//! numbers, the task each loss solves, and errors that name the loss and the shapes.

use std::collections::HashMap;
use std::path::Path;

use graphc_interp::{evaluate, Value};
use graphc_ir::TensorType;
use graphc_nn::{
    build_loss_graph, build_step, check_loss_data, mean_denominator, natural_layout, task_of,
    LossGraph, LossTargets, NnError, TargetLayout, Task,
};
use graphc_spec::{parse_loss_str, parse_str, LossSpec};

fn loss(yaml: &str) -> LossSpec {
    parse_loss_str(yaml, Path::new("test")).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

/// Deterministic pseudo-random numbers in `[lo, hi)`.
fn values(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            lo + (hi - lo) * ((state >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// The targets of a test case.
#[derive(Clone)]
enum Targets {
    Classes(Vec<i64>),
    Floats(Vec<f64>),
}

impl Targets {
    fn ty(&self, shape: &[usize]) -> TensorType {
        match self {
            Targets::Classes(_) => TensorType::i64(shape),
            Targets::Floats(_) => TensorType::f32(shape),
        }
    }
    fn value(&self) -> Value<f64> {
        match self {
            Targets::Classes(t) => Value::I(t.clone()),
            Targets::Floats(t) => Value::F(t.clone()),
        }
    }
}

/// Runs the loss graph in f64: the loss and the gradient.
fn run(built: &LossGraph, input: &[f64], targets: &Targets) -> (Vec<f64>, Vec<f64>) {
    let g = &built.graph;
    let order = g.topo_order().unwrap();
    let params = HashMap::from([("input".to_string(), input.to_vec())]);
    let all = evaluate::<f64>(g, &order, &[targets.value()], &params).unwrap();
    let out = |i: usize| all[g.outputs()[i].node.index()].as_f().clone();
    let grad = built.grad_output.map(out).unwrap_or_default();
    (out(built.loss_output), grad)
}

/// Checks d sum(loss) / d input against central differences, element by element.
#[track_caller]
fn check_gradient(
    yaml: &str,
    shape: &[usize],
    input: Vec<f64>,
    targets: Targets,
    target_shape: &[usize],
) {
    let spec = loss(yaml);
    let built = build_loss_graph(&spec, shape, &targets.ty(target_shape), true)
        .unwrap_or_else(|e| panic!("{yaml}: {e}"));
    built.graph.verify().unwrap();
    let (_, grad) = run(&built, &input, &targets);
    let total = |x: &[f64]| run(&built, x, &targets).0.iter().sum::<f64>();
    let eps = 1e-6;
    for i in 0..input.len() {
        let mut plus = input.clone();
        plus[i] += eps;
        let mut minus = input.clone();
        minus[i] -= eps;
        let numeric = (total(&plus) - total(&minus)) / (2.0 * eps);
        assert!(
            (numeric - grad[i]).abs() <= 1e-5 * (1.0 + numeric.abs()),
            "{yaml}: element {i}: finite difference {numeric}, autodiff {}",
            grad[i]
        );
    }
}

#[test]
fn every_loss_gradient_matches_finite_differences_for_every_reduction() {
    let (n, c) = (4, 3);
    let shape = [n, c];
    let logits = values(1, n * c, -2.0, 2.0);
    let probabilities: Vec<f64> = values(2, n * c, 0.05, 0.95);
    let soft = values(3, n * c, 0.0, 1.0);
    let hard: Vec<f64> = values(4, n * c, 0.0, 1.0)
        .iter()
        .map(|v| v.round())
        .collect();
    let signs: Vec<f64> = hard.iter().map(|v| 2.0 * v - 1.0).collect();
    let counts: Vec<f64> = values(5, n * c, 0.0, 5.0)
        .iter()
        .map(|v| v.floor())
        .collect();
    let rates = values(6, n * c, 0.2, 3.0);
    let log_p: Vec<f64> = logits
        .chunks(c)
        .flat_map(|row| {
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            row.iter().map(move |v| v - lse).collect::<Vec<_>>()
        })
        .collect();
    let row_probabilities: Vec<f64> = log_p.iter().map(|v| v.exp()).collect();
    let classes = Targets::Classes(vec![0, 2, 1, 2]);
    let ignored = Targets::Classes(vec![0, -100, 1, 2]);
    let floats = |v: &[f64]| Targets::Floats(v.to_vec());
    let cases: Vec<(String, Vec<f64>, Targets, Vec<usize>)> = vec![
        (
            "{type: cross_entropy, weight: [0.5, 2, 1.5], label_smoothing: 0.2}".into(),
            logits.clone(),
            ignored.clone(),
            vec![n],
        ),
        (
            "{type: cross_entropy, ignore_index: 1, label_smoothing: 0.1}".into(),
            logits.clone(),
            classes.clone(),
            vec![n],
        ),
        (
            "{type: cross_entropy, weight: [0.5, 2, 1.5], label_smoothing: 0.3}".into(),
            logits.clone(),
            floats(&row_probabilities),
            shape.to_vec(),
        ),
        (
            "{type: nll, weight: [0.5, 2, 1.5]}".into(),
            log_p.clone(),
            ignored.clone(),
            vec![n],
        ),
        (
            "{type: bce, weight: [0.5, 2, 1.5]}".into(),
            probabilities.clone(),
            floats(&soft),
            shape.to_vec(),
        ),
        (
            "{type: bce_with_logits, weight: [2], pos_weight: [3, 0.5, 1]}".into(),
            logits.clone(),
            floats(&soft),
            shape.to_vec(),
        ),
        (
            "{type: mse}".into(),
            logits.clone(),
            floats(&soft),
            shape.to_vec(),
        ),
        (
            "{type: l1}".into(),
            logits.clone(),
            floats(&soft),
            shape.to_vec(),
        ),
        (
            "{type: smooth_l1, beta: 0.7}".into(),
            logits.clone(),
            floats(&soft),
            shape.to_vec(),
        ),
        (
            "{type: huber, delta: 0.6}".into(),
            logits.clone(),
            floats(&soft),
            shape.to_vec(),
        ),
        (
            "{type: kl_div}".into(),
            log_p.clone(),
            floats(&row_probabilities),
            shape.to_vec(),
        ),
        (
            "{type: kl_div, log_target: true}".into(),
            log_p.clone(),
            floats(&log_p),
            shape.to_vec(),
        ),
        (
            "{type: poisson_nll}".into(),
            logits.clone(),
            floats(&counts),
            shape.to_vec(),
        ),
        (
            "{type: poisson_nll, log_input: false, full: true, eps: 0.1}".into(),
            rates.clone(),
            floats(&counts),
            shape.to_vec(),
        ),
        (
            "{type: soft_margin}".into(),
            logits.clone(),
            floats(&signs),
            shape.to_vec(),
        ),
        (
            "{type: multilabel_soft_margin, weight: [1, 0.5, 2]}".into(),
            logits.clone(),
            floats(&hard),
            shape.to_vec(),
        ),
        (
            "{type: multi_margin, p: 2, margin: 0.8, weight: [1, 0.5, 2]}".into(),
            logits.clone(),
            classes.clone(),
            vec![n],
        ),
        (
            "{type: multi_margin}".into(),
            logits.clone(),
            classes.clone(),
            vec![n],
        ),
    ];
    for (yaml, input, targets, target_shape) in cases {
        for reduction in ["none", "sum", "mean"] {
            let yaml = yaml.replace('}', &format!(", reduction: {reduction}}}"));
            check_gradient(&yaml, &shape, input.clone(), targets.clone(), &target_shape);
        }
    }
}

/// The f32 loss of `yaml` on `input` `[n, c]` and class indices.
fn class_loss(yaml: &str, input: &[f64], c: usize, targets: &[i64]) -> Vec<f64> {
    let spec = loss(yaml);
    let shape = [targets.len(), c];
    let built = build_loss_graph(&spec, &shape, &TensorType::i64(&[targets.len()]), false).unwrap();
    run(&built, input, &Targets::Classes(targets.to_vec())).0
}

#[test]
fn cross_entropy_weighted_mean_divides_by_weight_sum() {
    // log_softmax of [0, ln 3] is [ln 1/4, ln 3/4]
    let x = [0.0, 3f64.ln(), 0.0, 3f64.ln(), 0.0, 3f64.ln()];
    let per_sample = [4f64.ln(), (4.0f64 / 3.0).ln(), (4.0f64 / 3.0).ln()];
    let got = class_loss("{type: cross_entropy, weight: [1, 2]}", &x, 2, &[0, 1, 1]);
    let want = (per_sample[0] + 2.0 * per_sample[1] + 2.0 * per_sample[2]) / 5.0;
    assert!((got[0] - want).abs() < 1e-6, "{got:?} vs {want}");
}

#[test]
fn ignored_samples_count_neither_in_the_sum_nor_in_the_denominator() {
    let x = [0.0, 3f64.ln(), 0.0, 3f64.ln(), 0.0, 3f64.ln()];
    let (first, second) = (4f64.ln(), (4.0f64 / 3.0).ln());
    let got = class_loss("{type: cross_entropy}", &x, 2, &[0, 1, -100]);
    assert!((got[0] - (first + second) / 2.0).abs() < 1e-6, "{got:?}");
    // an ignore_index inside [0, C) drops that class's samples
    let got = class_loss("{type: cross_entropy, ignore_index: 1}", &x, 2, &[0, 1, 1]);
    assert!((got[0] - first).abs() < 1e-6, "{got:?}");
    let none = class_loss(
        "{type: nll, reduction: none}",
        &[-1.0, -2.0, -3.0, -4.0],
        2,
        &[1, -100],
    );
    assert_eq!(none, [2.0, 0.0]);
}

#[test]
fn label_smoothing_mean_is_over_the_counted_samples_with_or_without_weights() {
    // two classes, uniform logits: every -log p is ln 2, so every smoothed loss is ln 2
    let x = [0.0; 6];
    for yaml in [
        "{type: cross_entropy, label_smoothing: 0.4}",
        "{type: cross_entropy, label_smoothing: 0.4, weight: [1, 3]}",
    ] {
        let got = class_loss(yaml, &x, 2, &[0, -100, 1]);
        let weights_sum = if yaml.contains("weight") { 4.0 } else { 2.0 };
        let class_weights_sum = if yaml.contains("weight") { 4.0 } else { 2.0 };
        // (1 - ε)·Σ w_y ln2 / Σ w_y + ε/C · Σ_i Σ_c w_c ln 2 / Σ w_y
        let want = 0.6 * 2f64.ln() + 0.2 * 2.0 * class_weights_sum * 2f64.ln() / weights_sum;
        assert!((got[0] - want).abs() < 1e-6, "{yaml}: {got:?} vs {want}");
    }
}

#[test]
fn all_ignored_batch_has_a_nan_mean_a_zero_sum_and_a_zero_gradient() {
    let spec = loss("{type: cross_entropy, weight: [1, 2], label_smoothing: 0.1}");
    let built = build_loss_graph(&spec, &[2, 2], &TensorType::i64(&[2]), true).unwrap();
    let (value, grad) = run(
        &built,
        &[1.0, 2.0, 3.0, 4.0],
        &Targets::Classes(vec![-100, -100]),
    );
    assert!(value[0].is_nan(), "{value:?}");
    assert_eq!(grad, [0.0; 4]);
    let sum = class_loss("{type: nll, reduction: sum}", &[-1.0, -2.0], 2, &[-100]);
    assert_eq!(sum, [0.0]);
}

#[test]
fn huber_is_delta_times_smooth_l1_with_beta_delta() {
    let input: Vec<f64> = values(9, 12, -3.0, 3.0);
    let targets = Targets::Floats(vec![0.0; 12]);
    let eval = |yaml: &str| {
        let built = build_loss_graph(&loss(yaml), &[12], &TensorType::f32(&[12]), false).unwrap();
        run(&built, &input, &targets).0
    };
    let huber = eval("{type: huber, delta: 1.5, reduction: none}");
    let smooth = eval("{type: smooth_l1, beta: 1.5, reduction: none}");
    for (h, s) in huber.iter().zip(&smooth) {
        assert!((h - 1.5 * s).abs() < 1e-9, "{huber:?} vs {smooth:?}");
    }
}

#[test]
fn kl_div_batchmean_divides_the_sum_by_the_batch_size_and_mean_by_every_element() {
    let input = [-1.0, -0.5, -2.0, -0.25];
    let target = Targets::Floats(vec![0.25, 0.75, 0.0, 1.0]);
    let eval = |reduction: &str| {
        let yaml = format!("{{type: kl_div, reduction: {reduction}}}");
        let built =
            build_loss_graph(&loss(&yaml), &[2, 2], &TensorType::f32(&[2, 2]), false).unwrap();
        run(&built, &input, &target).0
    };
    // xlogy(0, 0) is 0: the third element contributes 0 - 0 · (-2)
    let none = eval("none");
    let want = [
        0.25 * 0.25f64.ln() + 0.25,
        0.75 * 0.75f64.ln() + 0.375,
        0.0,
        0.25,
    ];
    for (a, b) in none.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{none:?}");
    }
    let sum: f64 = want.iter().sum();
    assert!((eval("batchmean")[0] - sum / 2.0).abs() < 1e-6);
    assert!((eval("mean")[0] - sum / 4.0).abs() < 1e-6);
}

#[test]
fn poisson_full_adds_stirling_only_for_targets_above_one() {
    let input = [0.0, 0.0, 0.0];
    let targets = Targets::Floats(vec![0.0, 1.0, 3.0]);
    let built = build_loss_graph(
        &loss("{type: poisson_nll, full: true, reduction: none}"),
        &[3],
        &TensorType::f32(&[3]),
        false,
    )
    .unwrap();
    let got = run(&built, &input, &targets).0;
    let stirling = 3.0 * 3f64.ln() - 3.0 + 0.5 * (2.0 * std::f64::consts::PI * 3.0).ln();
    let want = [1.0, 1.0, 1.0 + stirling];
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

#[test]
fn every_loss_is_sorted_into_its_task() {
    let cases = [
        (
            "{type: cross_entropy, ignore_index: 3}",
            Task::MultiClass {
                ignore_index: Some(3),
            },
        ),
        (
            "{type: NLLLoss}",
            Task::MultiClass {
                ignore_index: Some(-100),
            },
        ),
        (
            "{type: multi_margin}",
            Task::MultiClass { ignore_index: None },
        ),
        ("{type: bce}", Task::Binary { from_logits: false }),
        (
            "{type: bce_with_logits}",
            Task::Binary { from_logits: true },
        ),
        ("{type: soft_margin}", Task::Binary { from_logits: true }),
        (
            "{type: multilabel_soft_margin}",
            Task::Binary { from_logits: true },
        ),
        ("{type: mse}", Task::Regression),
        ("{type: l1}", Task::Regression),
        ("{type: smooth_l1}", Task::Regression),
        ("{type: huber}", Task::Regression),
        ("{type: kl_div}", Task::Regression),
        ("{type: poisson_nll}", Task::Regression),
    ];
    for (yaml, task) in cases {
        assert_eq!(task_of(&loss(yaml)), task, "{yaml}");
    }
}

const MLP: &str = "
data: {train: {csv: d.csv, target: y}, batch_size: 8}
model: {input: [5], layers: [{type: linear, out: 7}, {type: relu}, {type: linear, out: 3}]}
loss: LOSS
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
";

const EVERY_LOSS: [&str; 13] = [
    "cross_entropy",
    "nll",
    "bce",
    "bce_with_logits",
    "mse",
    "l1",
    "smooth_l1",
    "huber",
    "kl_div",
    "poisson_nll",
    "soft_margin",
    "multilabel_soft_margin",
    "multi_margin",
];

#[test]
fn every_loss_builds_a_training_step_and_refuses_reduction_none() {
    for name in EVERY_LOSS {
        let text = MLP.replace("LOSS", &format!("{{type: {name}}}"));
        let spec = parse_str(&text, Path::new("t.yaml")).unwrap();
        let layout = natural_layout(&spec).unwrap();
        let step = build_step(&spec, 8, layout).unwrap_or_else(|e| panic!("{name}: {e}"));
        step.graph.verify().unwrap();

        let text = MLP.replace("LOSS", &format!("{{type: {name}, reduction: none}}"));
        let spec = parse_str(&text, Path::new("t.yaml")).unwrap();
        let err = build_step(&spec, 8, layout).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains("reduction: none"),
            "{err}"
        );
    }
}

#[test]
fn class_indices_for_a_float_loss_and_floats_for_a_class_loss_name_the_loss_and_the_shapes() {
    let err = build_loss_graph(&loss("{type: bce}"), &[4, 1], &TensorType::i64(&[4]), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("loss (bce)")
            && err.contains("[4, 1]")
            && err.contains("class indices of shape [4]"),
        "{err}"
    );
    let err = build_loss_graph(
        &loss("{type: nll}"),
        &[4, 3],
        &TensorType::f32(&[4, 3]),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("loss (nll)")
            && err.contains("class indices")
            && err.contains("float targets of shape [4, 3]"),
        "{err}"
    );
    let err = build_loss_graph(
        &loss("{type: cross_entropy}"),
        &[4, 3],
        &TensorType::f32(&[4, 2]),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("outputs 3 classes") && err.contains("2 target columns"),
        "{err}"
    );
    let err = build_loss_graph(
        &loss("{type: multi_margin}"),
        &[4],
        &TensorType::i64(&[4]),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[batch, classes]"), "{err}");
}

#[test]
fn ignore_index_with_class_probabilities_is_refused_as_in_pytorch() {
    let err = build_loss_graph(
        &loss("{type: cross_entropy, ignore_index: 0}"),
        &[2, 3],
        &TensorType::f32(&[2, 3]),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ignore_index (0) is not supported"), "{err}");
}

#[test]
fn weights_of_the_wrong_length_name_the_loss_and_the_lengths() {
    for (yaml, expected) in [
        (
            "{type: nll, weight: [1, 2]}",
            "weight has 2 values, expected 3",
        ),
        (
            "{type: multi_margin, weight: [1, 2, 3, 4]}",
            "weight has 4 values, expected 3",
        ),
        (
            "{type: multilabel_soft_margin, weight: [1]}",
            "weight has 1 values, expected 3",
        ),
        (
            "{type: bce_with_logits, pos_weight: [1, 2]}",
            "pos_weight has 2 values, expected 1 or 3",
        ),
    ] {
        let spec = loss(yaml);
        let target = match task_of(&spec) {
            Task::MultiClass { .. } => TensorType::i64(&[4]),
            _ => TensorType::f32(&[4, 3]),
        };
        let err = build_loss_graph(&spec, &[4, 3], &target, false).unwrap_err();
        assert!(matches!(err, NnError::Loss { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{yaml}: {err}");
    }
}

#[test]
fn data_checks_name_the_row_of_a_bad_class_index_and_bce_s_range() {
    let ce = loss("{type: cross_entropy, ignore_index: 7}");
    let err = check_loss_data(&ce, &[0.0; 6], &[3, 2], LossTargets::Classes(&[0, 7, 2]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("target row 2: class index 2 is outside [0, 2) and is not ignore_index (7)"),
        "{err}"
    );
    check_loss_data(&ce, &[0.0; 6], &[3, 2], LossTargets::Classes(&[0, 7, 1])).unwrap();
    let mm = loss("{type: multi_margin}");
    let err = check_loss_data(&mm, &[0.0; 4], &[2, 2], LossTargets::Classes(&[-100, 0]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 0") && !err.contains("ignore_index"),
        "{err}"
    );
    let bce = loss("{type: bce}");
    let err = check_loss_data(&bce, &[0.5, 1.5], &[2], LossTargets::Floats(&[0.0, 1.0]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("input should be between 0 and 1") && err.contains("element 1"),
        "{err}"
    );
    let err = check_loss_data(&bce, &[0.5, 1.0], &[2], LossTargets::Floats(&[-0.5, 1.0]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("target should be between 0 and 1") && err.contains("element 0"),
        "{err}"
    );
}

#[test]
fn natural_layout_gives_class_indices_to_class_losses_only() {
    for name in EVERY_LOSS {
        let text = MLP.replace("LOSS", &format!("{{type: {name}}}"));
        let spec = parse_str(&text, Path::new("t.yaml")).unwrap();
        let layout = natural_layout(&spec).unwrap();
        let classes = matches!(name, "cross_entropy" | "nll" | "multi_margin");
        let want = if classes {
            TargetLayout::Classes
        } else {
            TargetLayout::Floats { width: 3 }
        };
        assert_eq!(layout, want, "{name}");
    }
}

/// The whole batch's mean denominators a shard step of data-parallel training divides by:
/// what each loss's own mean divides a batch by.
#[test]
fn mean_denominators_are_the_counts_and_weights_each_mean_divides_by() {
    let classes = LossTargets::Classes(&[0, 1, -100, 2, 1]);
    let ce = loss("{type: cross_entropy, weight: [1.0, 2.0, 0.5]}");
    assert_eq!(mean_denominator(&ce, 3, classes), Some(5.5));
    // -100 is no class here: a zero row in the graph, counted nowhere.
    let ignore_1 = loss("{type: nll, ignore_index: 1}");
    assert_eq!(mean_denominator(&ignore_1, 3, classes), Some(2.0));
    let margin = loss("{type: multi_margin, weight: [1.0, 2.0, 0.5]}");
    assert_eq!(mean_denominator(&margin, 3, classes), Some(5.0));
    let floats = LossTargets::Floats(&[0.0; 6]);
    assert_eq!(mean_denominator(&loss("{type: mse}"), 2, floats), Some(6.0));
    assert_eq!(
        mean_denominator(&loss("{type: mse, reduction: sum}"), 2, floats),
        None
    );
    let kl = loss("{type: kl_div, reduction: batchmean}");
    assert_eq!(mean_denominator(&kl, 2, floats), Some(3.0));
    let probabilities = loss("{type: cross_entropy}");
    assert_eq!(mean_denominator(&probabilities, 2, floats), Some(3.0));
    let rows = loss("{type: multilabel_soft_margin}");
    assert_eq!(mean_denominator(&rows, 3, floats), Some(2.0));
}
