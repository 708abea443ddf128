//! `graphc loss` end to end: PyTorch's CrossEntropyLoss tutorial numbers,
//! gradients, every loss's options as flags, and bad input as one clear line.

use std::path::Path;
use std::process::Output;

use crate::support::{assert_clear_failure, graphc_in};
use serde_json::Value;

/// Runs `graphc loss ARGS` in the current directory.
fn graphc_loss(args: &[&str]) -> Output {
    let mut all = vec!["loss"];
    all.extend_from_slice(args);
    graphc_in(Path::new("."), &all)
}

/// The tutorial's batch: three samples, two classes.
const TUTORIAL: [&str; 6] = [
    "--type",
    "cross_entropy",
    "--input",
    "[[1,2],[1,3],[1,3]]",
    "--target",
    "[0,1,1]",
];

/// Runs `graphc loss` with the tutorial batch and `extra` flags; returns stdout as JSON.
fn tutorial(extra: &[&str]) -> Value {
    let mut args = TUTORIAL.to_vec();
    args.extend_from_slice(extra);
    stdout_json(&graphc_loss(&args))
}

fn stdout_json(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "graphc loss failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        out.trim_end().lines().count(),
        1,
        "one line expected: {out}"
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Runs `graphc loss --type KIND --input INPUT --target TARGET` and asserts it fails with
/// one clear line mentioning each of `needles`.
#[track_caller]
fn assert_loss_fails(kind: &str, input: &str, target: &str, needles: &[&str]) {
    let o = graphc_loss(&["--type", kind, "--input", input, "--target", target]);
    assert_clear_failure(&o, needles);
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        _ => vec![v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))],
    }
}

#[track_caller]
fn assert_near(actual: &Value, expected: &[f64], tolerance: f64) {
    let actual = floats(actual);
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= tolerance, "{actual:?} vs {expected:?}");
    }
}

// ---- the tutorial's numbers (rounded to 4 decimals there) ---------------------------------

#[test]
fn cross_entropy_tutorial_none_gives_the_per_sample_losses() {
    assert_near(
        &tutorial(&["--reduction", "none"]),
        &[1.3133, 0.1269, 0.1269],
        5e-5,
    );
}

#[test]
fn cross_entropy_tutorial_sum_is_1_5671() {
    assert_near(&tutorial(&["--reduction", "sum"]), &[1.5671], 5e-5);
}

#[test]
fn cross_entropy_tutorial_mean_is_0_5224() {
    assert_near(&tutorial(&[]), &[0.5224], 5e-5);
    assert_near(&tutorial(&["--reduction", "mean"]), &[0.5224], 5e-5);
}

#[test]
fn cross_entropy_tutorial_weighted_none_scales_by_the_target_class_weight() {
    assert_near(
        &tutorial(&["--weight", "[1, 2]", "--reduction", "none"]),
        &[1.3133, 0.2539, 0.2539],
        5e-5,
    );
}

#[test]
fn cross_entropy_tutorial_weighted_mean_divides_by_the_weight_sum() {
    // 1.8210 / (1 + 2 + 2)
    assert_near(&tutorial(&["--weight", "[1, 2]"]), &[0.3642], 5e-5);
}

#[test]
fn pytorch_class_name_is_an_alias_on_the_command_line() {
    let mut args = TUTORIAL.to_vec();
    args[1] = "CrossEntropyLoss";
    assert_near(&stdout_json(&graphc_loss(&args)), &[0.5224], 5e-5);
}

// ---- gradients --------------------------------------------------------------------------------

#[test]
fn grad_prints_the_loss_and_the_input_gradient_as_pytorch_computes_them() {
    let out = tutorial(&["--grad"]);
    assert_near(&out["loss"], &[0.5223725], 1e-6);
    // PyTorch: (softmax - one_hot) / 3
    assert_near(
        &out["grad"],
        &[
            -0.2436862, 0.2436862, 0.0397343, -0.0397343, 0.0397343, -0.0397343,
        ],
        1e-6,
    );
}

#[test]
fn grad_of_reduction_none_is_the_gradient_of_the_summed_losses() {
    let out = tutorial(&["--grad", "--weight", "[1,2]", "--reduction", "none"]);
    assert_near(&out["loss"], &[1.3132616, 0.2538561, 0.2538561], 1e-6);
    assert_near(
        &out["grad"],
        &[
            -0.7310586, 0.7310586, 0.2384058, -0.2384059, 0.2384058, -0.2384059,
        ],
        1e-6,
    );
}

#[test]
fn ignored_targets_count_nowhere_and_get_no_gradient() {
    let o = graphc_loss(&[
        "--type",
        "cross_entropy",
        "--input",
        "[[1,2],[1,3],[1,3]]",
        "--target",
        "[0,1,-100]",
        "--grad",
    ]);
    let out = stdout_json(&o);
    // (1.3132616 + 0.12692805) / 2
    assert_near(&out["loss"], &[0.7200948], 1e-6);
    let grad = floats(&out["grad"]);
    assert_eq!(&grad[4..], &[0.0, 0.0]);
}

#[test]
fn all_targets_ignored_gives_nan_like_pytorch() {
    let o = graphc_loss(&[
        "--type",
        "nll",
        "--input",
        "[[-1,-2],[-3,-1]]",
        "--target",
        "[5,5]",
        "--ignore-index",
        "5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "NaN");
}

#[test]
fn bce_gradient_at_probabilities_of_zero_and_one_is_pytorch_s_clamped_formula() {
    let o = graphc_loss(&[
        "--type",
        "bce",
        "--input",
        "[[0, 1e-20], [1, 0.5]]",
        "--target",
        "[[1, 1], [0, 0.5]]",
        "--reduction",
        "sum",
        "--grad",
    ]);
    let out = stdout_json(&o);
    // PyTorch: 100 + 46.0517 + 100 + 0.6931; (x - y) / max(x (1 - x), 1e-12)
    assert_near(&out["loss"], &[246.74484], 1e-3);
    let grad = floats(&out["grad"]);
    let expected = [
        -999_999_995_904.0,
        -999_999_995_904.0,
        999_999_995_904.0,
        0.0,
    ];
    for (g, e) in grad.iter().zip(expected) {
        assert!((g - e).abs() <= 1e-6 * e.abs(), "{grad:?}");
    }
}

// ---- every loss's options as flags -----------------------------------------------------------

#[test]
fn every_loss_option_is_a_flag() {
    let cases: &[(&[&str], f64)] = &[
        // smooth_l1, beta 0.5: |d| = 2 → 2 - 0.25; |d| = 0.25 → 0.5·0.0625/0.5
        (
            &[
                "--type",
                "smooth_l1",
                "--beta",
                "0.5",
                "--input",
                "[2, 0.25]",
                "--target",
                "[0, 0]",
                "--reduction",
                "sum",
            ],
            1.8125,
        ),
        // huber, delta 0.5: 0.5·(2 - 0.25) + 0.5·0.0625
        (
            &[
                "--type",
                "HuberLoss",
                "--delta",
                "0.5",
                "--input",
                "[2, 0.25]",
                "--target",
                "[0, 0]",
                "--reduction",
                "sum",
            ],
            0.90625,
        ),
        // kl_div, log_target, batchmean: exp(t)·(t - x) summed / 1
        (
            &[
                "--type",
                "kl_div",
                "--log-target",
                "--input",
                "[[0, 0]]",
                "--target",
                "[[0, 0]]",
                "--reduction",
                "batchmean",
            ],
            0.0,
        ),
        // poisson_nll, rate input: x - t·log(x + eps) = 2 - 0·log 2.5
        (
            &[
                "--type",
                "poisson_nll",
                "--log-input",
                "false",
                "--eps",
                "0.5",
                "--input",
                "[2]",
                "--target",
                "[0]",
            ],
            2.0,
        ),
        // bce_with_logits, pos_weight 3 on a positive target at logit 0: 3·log 2
        (
            &[
                "--type",
                "bce_with_logits",
                "--pos-weight",
                "[3]",
                "--input",
                "[[0]]",
                "--target",
                "[[1]]",
            ],
            3.0 * std::f64::consts::LN_2,
        ),
        // multi_margin, p 2, margin 0.5: (0.5 - 1 + 0.75)² / 2
        (
            &[
                "--type",
                "multi_margin",
                "--p",
                "2",
                "--margin",
                "0.5",
                "--input",
                "[[1, 0.75]]",
                "--target",
                "[0]",
            ],
            0.03125,
        ),
        // cross_entropy with label smoothing 1: the mean of -log p over classes (both 0.6931)
        (
            &[
                "--type",
                "cross_entropy",
                "--label-smoothing",
                "1",
                "--input",
                "[[0, 0]]",
                "--target",
                "[1]",
            ],
            std::f64::consts::LN_2,
        ),
        // soft_margin: log(1 + e^0)
        (
            &["--type", "soft_margin", "--input", "[0]", "--target", "[1]"],
            std::f64::consts::LN_2,
        ),
    ];
    for (args, expected) in cases {
        let out = stdout_json(&graphc_loss(args));
        let got = floats(&out)[0];
        assert!(
            (got - expected).abs() <= 1e-6,
            "{args:?}: {got} vs {expected}"
        );
    }
}

// ---- bad input --------------------------------------------------------------------------------

#[test]
fn ragged_input_is_one_clear_error() {
    assert_loss_fails(
        "cross_entropy",
        "[[1,2],[1]]",
        "[0,1]",
        &["--input", "ragged", "[1]"],
    );
}

#[test]
fn malformed_json_and_non_numbers_are_clear_errors() {
    assert_loss_fails("mse", "[1, 2", "[1, 2]", &["--input", "not valid JSON"]);
    assert_loss_fails(
        "mse",
        "[1, \"a\"]",
        "[1, 2]",
        &["--input[1]", "expected a number"],
    );
    assert_loss_fails("mse", "[]", "[]", &["--input", "empty"]);
}

#[test]
fn class_index_out_of_range_names_the_row() {
    assert_loss_fails(
        "cross_entropy",
        "[[1,2],[1,3]]",
        "[0,2]",
        &["cross_entropy", "row 1", "class index 2", "[0, 2)"],
    );
    assert_loss_fails(
        "multi_margin",
        "[[1,2],[1,3]]",
        "[-1,0]",
        &["multi_margin", "row 0", "class index -1"],
    );
}

#[test]
fn target_shape_that_does_not_fit_the_loss_names_the_loss_and_the_shapes() {
    assert_loss_fails(
        "nll",
        "[[-1,-2],[-3,-1]]",
        "[[0.5,0.5],[1,0]]",
        &["nll", "class indices", "[2, 2]"],
    );
    assert_loss_fails(
        "cross_entropy",
        "[[1,2],[1,3]]",
        "[0,1,1]",
        &["cross_entropy", "[2, 2]", "[3]"],
    );
    assert_loss_fails("bce", "[[0.5],[0.25]]", "[1, 0]", &["bce", "[2, 1]", "[2]"]);
    assert_loss_fails(
        "cross_entropy",
        "[[1,2],[1,3]]",
        "[0.5,1]",
        &["--target[0]", "whole numbers"],
    );
}

#[test]
fn options_a_loss_does_not_take_are_named_with_the_valid_ones() {
    let o = graphc_loss(&[
        "--type",
        "cross_entropy",
        "--input",
        "[[1,2]]",
        "--target",
        "[0]",
        "--pos-weight",
        "[2]",
    ]);
    assert_clear_failure(
        &o,
        &[
            "unknown key `pos_weight`",
            "cross_entropy",
            "ignore_index, reduction, label_smoothing",
        ],
    );
    let o = graphc_loss(&[
        "--type",
        "mse",
        "--input",
        "[1]",
        "--target",
        "[1]",
        "--reduction",
        "batchmean",
    ]);
    assert_clear_failure(&o, &["batchmean is only valid for kl_div"]);
    assert_loss_fails(
        "cross_entropyy",
        "[[1]]",
        "[0]",
        &["did you mean `cross_entropy`"],
    );
}

#[test]
fn bce_input_outside_zero_one_is_refused_as_in_pytorch() {
    assert_loss_fails(
        "bce",
        "[0.5, 1.5]",
        "[1, 0]",
        &["bce", "between 0 and 1", "element 1"],
    );
}

#[test]
fn unknown_backend_is_a_clear_error() {
    let mut args = TUTORIAL.to_vec();
    args.extend_from_slice(&["--backend", "gpu"]);
    assert_clear_failure(&graphc_loss(&args), &["unknown backend", "interp"]);
}
