//! `optimizer:` for every torch.optim class: PyTorch's defaults, class-name aliases,
//! per-group overrides, PyTorch's constructor checks as positioned errors, and the
//! `param_group`-style accessors.

use std::path::Path;

use crate::support::assert_err;
use graphc_spec::*;

/// A valid spec whose optimizer mapping starts on line 7; `OPT` is replaced.
const BASE: &str = "\
data:
  train: {csv: train.csv, target: y}
model:
  input: [3]
  layers: [{type: linear, out: 1}]
loss: {type: mse}
optimizer:
  OPT
train: {steps: 5}
";

fn with_optimizer(body: &str) -> String {
    BASE.replace("OPT", body)
}

fn parse(body: &str) -> OptimizerSpec {
    match parse_str(&with_optimizer(body), Path::new("spec.yaml")) {
        Ok(spec) => spec.optimizer,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(body: &str) -> SpecError {
    match parse_str(&with_optimizer(body), Path::new("spec.yaml")) {
        Ok(spec) => panic!("expected an error, got {:?}", spec.optimizer),
        Err(e) => e,
    }
}

#[test]
fn every_optimizer_takes_pytorchs_defaults() {
    let betas = (0.9, 0.999);
    assert_eq!(
        parse("type: sgd").kind,
        OptimizerKind::Sgd(SgdSpec {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        })
    );
    let adam = AdamSpec {
        lr: 1e-3,
        betas,
        eps: 1e-8,
        weight_decay: 0.0,
        amsgrad: false,
        maximize: false,
        decoupled_weight_decay: false,
    };
    assert_eq!(parse("type: adam").kind, OptimizerKind::Adam(adam.clone()));
    assert_eq!(
        parse("type: adamw").kind,
        OptimizerKind::AdamW(AdamSpec {
            weight_decay: 1e-2,
            decoupled_weight_decay: true,
            ..adam
        })
    );
    assert_eq!(
        parse("type: rmsprop").kind,
        OptimizerKind::RmsProp(RmsPropSpec {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        })
    );
    assert_eq!(
        parse("type: adagrad").kind,
        OptimizerKind::Adagrad(AdagradSpec {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        })
    );
    assert_eq!(
        parse("type: adadelta").kind,
        OptimizerKind::Adadelta(AdadeltaSpec {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        })
    );
    assert_eq!(
        parse("type: adamax").kind,
        OptimizerKind::Adamax(AdamaxSpec {
            lr: 2e-3,
            betas,
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        })
    );
    assert_eq!(
        parse("type: nadam").kind,
        OptimizerKind::NAdam(NAdamSpec {
            lr: 2e-3,
            betas,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        })
    );
    assert_eq!(
        parse("type: radam").kind,
        OptimizerKind::RAdam(RAdamSpec {
            lr: 1e-3,
            betas,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        })
    );
}

#[test]
fn pytorch_class_names_are_aliases_of_the_snake_case_types() {
    let pairs = [
        ("SGD", "sgd"),
        ("Adam", "adam"),
        ("AdamW", "adamw"),
        ("RMSprop", "rmsprop"),
        ("Adagrad", "adagrad"),
        ("Adadelta", "adadelta"),
        ("Adamax", "adamax"),
        ("NAdam", "nadam"),
        ("RAdam", "radam"),
    ];
    for (class, snake) in pairs {
        let by_class = parse(&format!("type: {class}")).kind;
        assert_eq!(by_class, parse(&format!("type: {snake}")).kind);
        assert_eq!(
            (by_class.type_name(), by_class.class_name()),
            (snake, class)
        );
    }
}

#[test]
fn hyperparameters_are_read_as_f64_like_pythons_floats() {
    let kind = parse("{type: adam, lr: 0.1, betas: [0.8, 0.99], eps: 1e-7}").kind;
    let OptimizerKind::Adam(a) = kind else {
        panic!("expected adam, got {kind:?}")
    };
    // 0.1 as f32 widened would be 0.10000000149011612.
    assert_eq!(a.lr.to_bits(), 0.1f64.to_bits());
    assert_eq!(a.betas, (0.8, 0.99));
    assert_eq!(a.eps, 1e-7);
}

#[test]
fn every_option_of_every_optimizer_is_read() {
    let kind = parse(
        "{type: adam, lr: 0.01, betas: [0.5, 0.6], eps: 0.1, weight_decay: 0.2, amsgrad: true, \
         maximize: true, decoupled_weight_decay: true}",
    )
    .kind;
    assert_eq!(
        kind,
        OptimizerKind::Adam(AdamSpec {
            lr: 0.01,
            betas: (0.5, 0.6),
            eps: 0.1,
            weight_decay: 0.2,
            amsgrad: true,
            maximize: true,
            decoupled_weight_decay: true,
        })
    );
    let kind = parse(
        "{type: RMSprop, lr: 0.1, alpha: 0.5, eps: 0.2, weight_decay: 0.3, momentum: 0.4, \
         centered: true, maximize: true}",
    )
    .kind;
    assert_eq!(
        kind,
        OptimizerKind::RmsProp(RmsPropSpec {
            lr: 0.1,
            alpha: 0.5,
            eps: 0.2,
            weight_decay: 0.3,
            momentum: 0.4,
            centered: true,
            maximize: true,
        })
    );
    let kind = parse(
        "{type: adagrad, lr: 0.1, lr_decay: 0.5, weight_decay: 0.2, \
         initial_accumulator_value: 0.3, eps: 0.4, maximize: true}",
    )
    .kind;
    assert_eq!(
        kind,
        OptimizerKind::Adagrad(AdagradSpec {
            lr: 0.1,
            lr_decay: 0.5,
            weight_decay: 0.2,
            initial_accumulator_value: 0.3,
            eps: 0.4,
            maximize: true,
        })
    );
    let kind = parse("{type: adadelta, lr: 0.5, rho: 1, eps: 0.1, weight_decay: 0.2}").kind;
    assert_eq!(
        kind,
        OptimizerKind::Adadelta(AdadeltaSpec {
            lr: 0.5,
            rho: 1.0,
            eps: 0.1,
            weight_decay: 0.2,
            maximize: false,
        })
    );
    let kind = parse(
        "{type: nadam, momentum_decay: 0.01, decoupled_weight_decay: true, weight_decay: 0.1}",
    )
    .kind;
    assert!(matches!(
        kind,
        OptimizerKind::NAdam(NAdamSpec { momentum_decay, decoupled_weight_decay: true, .. })
            if momentum_decay == 0.01
    ));
    let kind = parse("{type: radam, decoupled_weight_decay: true, maximize: true}").kind;
    assert!(matches!(
        kind,
        OptimizerKind::RAdam(RAdamSpec {
            decoupled_weight_decay: true,
            maximize: true,
            ..
        })
    ));
}

#[test]
fn param_groups_override_any_hyperparameter_of_the_type() {
    let spec = parse(
        "type: adam
  lr: 0.01
  param_groups:
    - {params: [\"0.*\"], lr: 0.1, betas: [0.8, 0.9], amsgrad: true}
    - {params: [\"0.bias\"], maximize: true}",
    );
    let OptimizerKind::Adam(top) = &spec.kind else {
        panic!("expected adam, got {:?}", spec.kind)
    };
    assert_eq!(
        spec.param_groups[0].kind,
        OptimizerKind::Adam(AdamSpec {
            lr: 0.1,
            betas: (0.8, 0.9),
            amsgrad: true,
            ..top.clone()
        })
    );
    assert_eq!(
        spec.param_groups[1].kind,
        OptimizerKind::Adam(AdamSpec {
            maximize: true,
            ..top.clone()
        })
    );
}

#[test]
fn param_groups_written_before_the_type_take_its_defaults() {
    let spec = parse("{param_groups: [{params: [a], rho: 0.5}], lr: 0.1, type: adadelta}");
    assert_eq!(
        spec.param_groups[0].kind,
        OptimizerKind::Adadelta(AdadeltaSpec {
            lr: 0.1,
            rho: 0.5,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        })
    );
}

#[test]
fn negative_lr_eps_and_weight_decay_are_rejected_at_the_value() {
    let e = err("{type: adam, eps: -1e-8}");
    // `  {type: adam, eps: ` is 20 characters.
    assert_err(
        &e,
        8,
        21,
        "optimizer.eps: invalid value: float `-1e-8`, expected an eps >= 0",
    );
    let e = err("{type: radam, weight_decay: -1}");
    assert_err(
        &e,
        8,
        31,
        "optimizer.weight_decay: invalid value: integer `-1`, expected a weight_decay >= 0",
    );
    let e = err("{type: adagrad, lr_decay: -0.5}");
    assert_err(
        &e,
        8,
        29,
        "optimizer.lr_decay: invalid value: float `-0.5`, expected an lr_decay >= 0",
    );
    let e = err("{type: adagrad, initial_accumulator_value: -0.5}");
    assert_err(
        &e,
        8,
        46,
        "optimizer.initial_accumulator_value: invalid value: float `-0.5`, expected an \
         initial_accumulator_value >= 0",
    );
    let e = err("{type: rmsprop, alpha: -0.5}");
    assert_err(
        &e,
        8,
        26,
        "optimizer.alpha: invalid value: float `-0.5`, expected an alpha >= 0",
    );
    let e = err("{type: nadam, momentum_decay: -0.5}");
    assert_err(
        &e,
        8,
        33,
        "optimizer.momentum_decay: invalid value: float `-0.5`, expected a momentum_decay >= 0",
    );
}

#[test]
fn betas_must_be_two_numbers_in_zero_one() {
    let e = err("{type: adam, betas: [0.9, 1.0]}");
    // `  {type: adam, betas: [0.9, ` is 28 characters.
    assert_err(
        &e,
        8,
        29,
        "optimizer.betas[1]: invalid value: float `1.0`, expected a beta in [0, 1)",
    );
    let e = err("{type: nadam, betas: [-0.1, 0.9]}");
    assert_err(
        &e,
        8,
        25,
        "optimizer.betas[0]: invalid value: float `-0.1`, expected a beta in [0, 1)",
    );
    let e = err("{type: adamax, betas: [0.9, 0.99, 0.999]}");
    assert_eq!(
        e.message(),
        "optimizer.betas: has 3 values; expected a list of two betas in [0, 1), such as \
         [0.9, 0.999]"
    );
    assert_eq!(e.line(), Some(8));
    let e = err("{type: adam, betas: 0.9}");
    assert_err(
        &e,
        8,
        23,
        "optimizer.betas: invalid type: float `0.9`, expected a list of two betas in [0, 1), \
         such as [0.9, 0.999]",
    );
}

#[test]
fn adadelta_rho_may_be_one_but_not_more() {
    let e = err("{type: adadelta, rho: 1.5}");
    assert_err(
        &e,
        8,
        25,
        "optimizer.rho: invalid value: float `1.5`, expected a rho in [0, 1]",
    );
}

#[test]
fn a_key_of_another_optimizer_is_unknown_and_lists_the_valid_keys() {
    let e = err("{type: adam, momentum: 0.9}");
    assert_err(
        &e,
        8,
        16,
        "unknown key `momentum` in optimizer (adam); valid keys: type, lr, betas, eps, \
         weight_decay, amsgrad, maximize, decoupled_weight_decay, param_groups",
    );
    // Read before `type:`, the key is blamed once the type is known.
    let e = err("{nesterov: true, type: adamw}");
    assert_err(
        &e,
        8,
        4,
        "unknown key `nesterov` in optimizer (adamw); valid keys: type, lr, betas, eps, \
         weight_decay, amsgrad, maximize, param_groups",
    );
    let e = err("{type: sgd, beta: [0.9, 0.99]}");
    assert_err(
        &e,
        8,
        15,
        "unknown key `beta` in optimizer (sgd); valid keys: type, lr, momentum, dampening, \
         weight_decay, nesterov, maximize, param_groups",
    );
    let e = err("{type: adam, betass: [0.9, 0.99]}");
    assert_err(
        &e,
        8,
        16,
        "unknown key `betass` in optimizer (adam); did you mean `betas`? valid keys: type, lr, \
         betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay, param_groups",
    );
}

#[test]
fn a_group_key_the_type_does_not_take_is_rejected_at_the_key() {
    // The group is read before `type:`, so its keys are checked once the type is known.
    let e = err("{param_groups: [{params: [a], amsgrad: true}], type: sgd}");
    // `  {param_groups: [{params: [a], ` is 32 characters.
    assert_err(
        &e,
        8,
        33,
        "unknown key `amsgrad` in optimizer.param_groups[0] (sgd param group); valid keys: \
         params, lr, momentum, dampening, weight_decay, nesterov, maximize",
    );
    let e = err("{type: rmsprop, param_groups: [{params: [a], betas: [0.9, 0.99]}]}");
    assert_err(
        &e,
        8,
        48,
        "unknown key `betas` in optimizer.param_groups[0]; valid keys: params, lr, alpha, eps, \
         weight_decay, momentum, centered, maximize",
    );
}

#[test]
fn pytorch_implementation_switches_are_explained() {
    let e = err("{type: adam, foreach: false}");
    assert_err(
        &e,
        8,
        16,
        "`foreach` picks one of PyTorch's implementations of the same update; graphc compiles \
         its own, so remove it; valid keys in optimizer (adam): type, lr, betas, eps, \
         weight_decay, amsgrad, maximize, decoupled_weight_decay, param_groups",
    );
}

#[test]
fn param_group_accessors_read_and_set_lr_momentum_and_betas() {
    let mut sgd = parse("{type: sgd, lr: 0.1, momentum: 0.9}").kind;
    assert_eq!(
        (sgd.lr(), sgd.momentum(), sgd.betas()),
        (0.1, Some(0.9), None)
    );
    sgd.set_lr(0.05);
    assert!(sgd.set_momentum(0.85));
    assert!(!sgd.set_betas((0.9, 0.99)));
    assert_eq!((sgd.lr(), sgd.momentum()), (0.05, Some(0.85)));

    let mut adam = parse("{type: adam}").kind;
    assert_eq!(adam.momentum(), None);
    assert!(!adam.set_momentum(0.9));
    assert!(adam.set_betas((0.85, 0.999)));
    assert_eq!(adam.betas(), Some((0.85, 0.999)));

    let adagrad = parse("{type: adagrad, lr_decay: 0.1}").kind;
    assert_eq!(
        adagrad.hyperparameters(),
        vec![
            ("lr", HyperValue::Float(0.01)),
            ("lr_decay", HyperValue::Float(0.1)),
            ("eps", HyperValue::Float(1e-10)),
            ("weight_decay", HyperValue::Float(0.0)),
            ("initial_accumulator_value", HyperValue::Float(0.0)),
            ("maximize", HyperValue::Bool(false)),
        ]
    );
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "type",
            "lr",
            "momentum",
            "dampening",
            "weight_decay",
            "nesterov",
            "maximize",
            "betas",
            "eps",
            "amsgrad",
            "decoupled_weight_decay",
            "alpha",
            "centered",
            "lr_decay",
            "initial_accumulator_value",
            "rho",
            "momentum_decay",
            "foreach",
            "params",
            "bogus",
        ])
    }

    fn value() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "0",
            "-1",
            "0.5",
            "1",
            "1.5",
            "1e-8",
            "1e400",
            ".nan",
            "true",
            "~",
            "[]",
            "[0.9]",
            "[0.9, 0.99]",
            "[0.9, 1.0]",
            "[a, b]",
            "{}",
            "adam",
            "NAdam",
            "sgd",
            "\"x\"",
            "[\"0.*\"]",
        ])
        .prop_map(str::to_owned)
    }

    fn mapping() -> impl Strategy<Value = String> {
        prop::collection::vec((key(), value()), 0..6).prop_map(|kv| {
            let items: Vec<String> = kv.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{{{}}}", items.join(", "))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_optimizer_mappings_never_panic(
            top in mapping(),
            groups in prop::collection::vec(mapping(), 0..3),
            type_first in any::<bool>(),
            t in prop::sample::select(vec!["sgd", "Adam", "adamw", "rmsprop", "adagrad",
                "adadelta", "adamax", "nadam", "radam"]),
        ) {
            let mut items: Vec<String> = top
                .trim_start_matches('{')
                .trim_end_matches('}')
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            items.push(format!("param_groups: [{}]", groups.join(", ")));
            if type_first {
                items.insert(0, format!("type: {t}"));
            } else {
                items.push(format!("type: {t}"));
            }
            let body = format!("{{{}}}", items.join(", "));
            if let Err(e) = parse_str(&with_optimizer(&body), Path::new("spec.yaml")) {
                // Every error is one line; a position, when given, is 1-based.
                prop_assert!(!e.to_string().contains('\n'), "{e}");
                prop_assert!(e.line() != Some(0) && e.column() != Some(0), "{e}");
            }
        }
    }
}
