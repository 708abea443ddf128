//! `loss:`: every torch.nn loss by its snake_case name and its PyTorch class
//! name, PyTorch's defaults, every keyword argument, and positioned errors
//! that name the key and the keys valid for that loss type.

use std::path::Path;

use crate::support::assert_err;
use graphc_spec::{parse_loss_str, parse_str, LossSpec, Reduction, SpecError};

fn parse(text: &str) -> LossSpec {
    parse_loss_str(text, Path::new("loss.yaml")).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn err(text: &str) -> SpecError {
    match parse_loss_str(text, Path::new("loss.yaml")) {
        Ok(l) => panic!("expected an error for {text}, got {l:?}"),
        Err(e) => e,
    }
}

const MEAN: Reduction = Reduction::Mean;

#[test]
fn every_loss_and_its_pytorch_class_name_parse_with_pytorch_defaults() {
    let cases = [
        (
            "cross_entropy",
            "CrossEntropyLoss",
            LossSpec::CrossEntropy {
                weight: None,
                ignore_index: -100,
                reduction: MEAN,
                label_smoothing: 0.0,
            },
        ),
        (
            "nll",
            "NLLLoss",
            LossSpec::Nll {
                weight: None,
                ignore_index: -100,
                reduction: MEAN,
            },
        ),
        (
            "bce",
            "BCELoss",
            LossSpec::Bce {
                weight: None,
                reduction: MEAN,
            },
        ),
        (
            "bce_with_logits",
            "BCEWithLogitsLoss",
            LossSpec::BceWithLogits {
                weight: None,
                pos_weight: None,
                reduction: MEAN,
            },
        ),
        ("mse", "MSELoss", LossSpec::Mse { reduction: MEAN }),
        ("l1", "L1Loss", LossSpec::L1 { reduction: MEAN }),
        (
            "smooth_l1",
            "SmoothL1Loss",
            LossSpec::SmoothL1 {
                beta: 1.0,
                reduction: MEAN,
            },
        ),
        (
            "huber",
            "HuberLoss",
            LossSpec::Huber {
                delta: 1.0,
                reduction: MEAN,
            },
        ),
        (
            "kl_div",
            "KLDivLoss",
            LossSpec::KlDiv {
                log_target: false,
                reduction: MEAN,
            },
        ),
        (
            "poisson_nll",
            "PoissonNLLLoss",
            LossSpec::PoissonNll {
                log_input: true,
                full: false,
                eps: 1e-8,
                reduction: MEAN,
            },
        ),
        (
            "soft_margin",
            "SoftMarginLoss",
            LossSpec::SoftMargin { reduction: MEAN },
        ),
        (
            "multilabel_soft_margin",
            "MultiLabelSoftMarginLoss",
            LossSpec::MultiLabelSoftMargin {
                weight: None,
                reduction: MEAN,
            },
        ),
        (
            "multi_margin",
            "MultiMarginLoss",
            LossSpec::MultiMargin {
                p: 1,
                margin: 1.0,
                weight: None,
                reduction: MEAN,
            },
        ),
    ];
    for (snake, class, expected) in cases {
        assert_eq!(parse(&format!("{{type: {snake}}}")), expected, "{snake}");
        assert_eq!(parse(&format!("{{type: {class}}}")), expected, "{class}");
    }
}

#[test]
fn every_keyword_argument_is_read() {
    assert_eq!(
        parse("{type: cross_entropy, weight: [1, 2.5], ignore_index: 3, reduction: sum, label_smoothing: 0.25}"),
        LossSpec::CrossEntropy { weight: Some(vec![1.0, 2.5]), ignore_index: 3, reduction: Reduction::Sum, label_smoothing: 0.25 }
    );
    assert_eq!(
        parse("{type: nll, weight: [0.5], ignore_index: -1, reduction: none}"),
        LossSpec::Nll {
            weight: Some(vec![0.5]),
            ignore_index: -1,
            reduction: Reduction::None
        }
    );
    assert_eq!(
        parse("{type: bce, weight: [2], reduction: sum}"),
        LossSpec::Bce {
            weight: Some(vec![2.0]),
            reduction: Reduction::Sum
        }
    );
    assert_eq!(
        parse("{type: bce_with_logits, weight: [1, 2], pos_weight: [3, 4]}"),
        LossSpec::BceWithLogits {
            weight: Some(vec![1.0, 2.0]),
            pos_weight: Some(vec![3.0, 4.0]),
            reduction: MEAN
        }
    );
    assert_eq!(
        parse("{type: smooth_l1, beta: 0}"),
        LossSpec::SmoothL1 {
            beta: 0.0,
            reduction: MEAN
        }
    );
    assert_eq!(
        parse("{type: huber, delta: 2.5}"),
        LossSpec::Huber {
            delta: 2.5,
            reduction: MEAN
        }
    );
    assert_eq!(
        parse("{type: kl_div, log_target: true, reduction: batchmean}"),
        LossSpec::KlDiv {
            log_target: true,
            reduction: Reduction::BatchMean
        }
    );
    assert_eq!(
        parse("{type: poisson_nll, log_input: false, full: true, eps: 0.001}"),
        LossSpec::PoissonNll {
            log_input: false,
            full: true,
            eps: 0.001,
            reduction: MEAN
        }
    );
    assert_eq!(
        parse("{type: multilabel_soft_margin, weight: [1, 2, 3]}"),
        LossSpec::MultiLabelSoftMargin {
            weight: Some(vec![1.0, 2.0, 3.0]),
            reduction: MEAN
        }
    );
    assert_eq!(
        parse("{type: MultiMarginLoss, p: 2, margin: 0.5, weight: [1, 2]}"),
        LossSpec::MultiMargin {
            p: 2,
            margin: 0.5,
            weight: Some(vec![1.0, 2.0]),
            reduction: MEAN
        }
    );
}

#[test]
fn keys_may_come_before_the_type() {
    assert_eq!(
        parse("reduction: sum\nbeta: 0.5\ntype: smooth_l1\n"),
        LossSpec::SmoothL1 {
            beta: 0.5,
            reduction: Reduction::Sum
        }
    );
}

#[test]
fn unknown_key_names_key_line_column_and_the_valid_keys_of_each_loss_type() {
    let cases = [
        (
            "cross_entropy",
            "type, weight, ignore_index, reduction, label_smoothing",
        ),
        ("nll", "type, weight, ignore_index, reduction"),
        ("bce", "type, weight, reduction"),
        ("bce_with_logits", "type, weight, pos_weight, reduction"),
        ("mse", "type, reduction"),
        ("l1", "type, reduction"),
        ("smooth_l1", "type, beta, reduction"),
        ("huber", "type, delta, reduction"),
        ("kl_div", "type, log_target, reduction"),
        ("poisson_nll", "type, log_input, full, eps, reduction"),
        ("soft_margin", "type, reduction"),
        ("multilabel_soft_margin", "type, weight, reduction"),
        ("multi_margin", "type, p, margin, weight, reduction"),
    ];
    for (name, valid) in cases {
        let e = err(&format!("type: {name}\nbogus: 1\n"));
        assert_err(
            &e,
            2,
            1,
            &format!("unknown key `bogus` in loss ({name}); valid keys: {valid}"),
        );
    }
}

#[test]
fn a_key_another_loss_takes_is_reported_at_that_key_with_a_suggestion() {
    // read before `type:`, checked once the type is known
    let e = err("beta: 0.5\ntype: huber\n");
    assert_err(
        &e,
        1,
        1,
        "unknown key `beta` in loss (huber); did you mean `delta`? valid keys: type, delta, reduction",
    );
    let e = err("type: mse\nweight: [1]\n");
    assert_err(
        &e,
        2,
        1,
        "unknown key `weight` in loss (mse); valid keys: type, reduction",
    );
}

#[test]
fn batchmean_is_only_valid_for_kl_div_and_is_reported_at_the_reduction_key() {
    let e = err("type: mse\nreduction: batchmean\n");
    assert_err(
        &e,
        2,
        12,
        "loss.reduction: batchmean is only valid for kl_div; expected one of none, sum, mean",
    );
    // the type comes after the reduction: still at the reduction key
    let e = err("reduction: batchmean\ntype: cross_entropy\n");
    assert_err(
        &e,
        1,
        1,
        "loss.reduction: batchmean is only valid for kl_div; expected one of none, sum, mean",
    );
    let e = err("type: kl_div\nreduction: batch_mean\n");
    assert_err(
        &e,
        2,
        12,
        "loss.reduction: invalid value: string \"batch_mean\", expected one of none, sum, mean, batchmean; did you mean `batchmean`?",
    );
}

#[test]
fn parameter_values_are_checked_against_pytorch_s_rules() {
    let cases = [
        ("{type: multi_margin, p: 3}", "loss.p: invalid value: integer `3`, expected 1 or 2 (PyTorch supports only these)"),
        ("{type: huber, delta: 0}", "loss.delta: invalid value: integer `0`, expected a number > 0"),
        ("{type: smooth_l1, beta: -1}", "loss.beta: invalid value: integer `-1`, expected a number >= 0 (0 makes smooth_l1 the l1 loss)"),
        ("{type: poisson_nll, eps: -0.5}", "loss.eps: invalid value: float `-0.5`, expected a number >= 0"),
        ("{type: kl_div, log_target: yes}", "loss.log_target: invalid type: string \"yes\", expected true or false"),
        ("{type: multi_margin, margin: big}", "loss.margin: invalid type: string \"big\", expected a number"),
        ("{type: bce, weight: []}", "loss.weight: must not be empty; expected a non-empty list of numbers (one per class)"),
        ("{type: cross_entropy, label_smoothing: 1.5}", "loss.label_smoothing: invalid value: float `1.5`, expected a number in [0, 1]"),
    ];
    for (text, message) in cases {
        let e = err(text);
        assert_eq!(e.message(), message, "{text}");
        assert_eq!(e.line(), Some(1), "{text}");
    }
}

#[test]
fn deprecated_size_average_and_reduce_point_to_reduction() {
    let e = err("type: mse\nsize_average: false\n");
    assert_eq!((e.line(), e.column()), (Some(2), Some(1)), "{e}");
    assert!(
        e.message()
            .contains("`size_average` is PyTorch's deprecated form of `reduction`")
            && e.message()
                .contains("valid keys in loss (mse): type, reduction"),
        "{e}"
    );
    let e = err("type: nll\nreduce: true\n");
    assert!(
        e.message().contains("use reduction: mean, sum or none"),
        "{e}"
    );
}

#[test]
fn a_loss_without_type_lists_every_loss_type() {
    let e = err("{reduction: sum}");
    assert!(
        e.message().starts_with("missing key `type` in loss; valid types: cross_entropy, nll, bce, bce_with_logits, mse, l1, smooth_l1, huber, kl_div, poisson_nll, soft_margin, multilabel_soft_margin, multi_margin (or CrossEntropyLoss, NLLLoss"),
        "{e}"
    );
    let e = err("[1, 2]");
    assert!(
        e.message()
            .starts_with("loss: invalid type: a list, expected a loss mapping"),
        "{e}"
    );
}

#[test]
fn a_spec_s_loss_errors_are_positioned_in_the_spec() {
    let spec = "\
data:
  train: {csv: train.csv, target: y}
  batch_size: 10
model:
  input: [4]
  layers:
    - {type: linear, out: 3}
loss:
  type: HuberLoss
  delta: -2
optimizer:
  type: sgd
  lr: 0.1
train:
  epochs: 2
";
    let e = parse_str(spec, Path::new("spec.yaml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.yaml:10:10: loss.delta: invalid value: integer `-2`, expected a number > 0"
    );
    let spec = spec.replace(
        "  type: HuberLoss\n  delta: -2\n",
        "  delta: 2\n  type: SmoothL1Loss\n",
    );
    let e = parse_str(&spec, Path::new("spec.yaml")).unwrap_err();
    assert_eq!((e.line(), e.column()), (Some(9), Some(3)), "{e}");
    assert!(
        e.message()
            .starts_with("unknown key `delta` in loss (smooth_l1)"),
        "{e}"
    );
}
