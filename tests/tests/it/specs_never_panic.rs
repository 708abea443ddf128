//! Arbitrary structurally valid specs — random layers, losses, optimizers, schedulers, data and
//! train keys, with values in and out of range — go through the whole pipeline on the
//! interpreter (parse → size check → data → build → compile → one step → evaluate) without
//! a panic: every stage answers `Ok` or a one-line error.

use std::path::Path;

use graphc::stages::train::{self, BatchTargets};
use graphc::Interp;
use proptest::prelude::*;

fn source() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            4 => Just("blobs"),
            2 => Just("moons"),
            1 => Just("spirals"),
            2 => Just("linear"),
            1 => Just("rings"),
            30 => Just("blobs"),
        ],
        prop_oneof![1 => Just(0u32), 40 => 1u32..24],
        prop_oneof![30 => Just(None), 1 => (0u32..5).prop_map(Some)],
        prop_oneof![30 => Just(None), 1 => (0u32..5).prop_map(Some)],
        prop_oneof![40 => Just(None), 1 => Just(Some("0")), 1 => Just(Some("-1"))],
    )
        .prop_map(|(kind, samples, features, classes, noise)| {
            let mut text = format!("{{synthetic: {{kind: {kind}, samples: {samples}");
            if let Some(f) = features {
                text += &format!(", features: {f}");
            }
            if let Some(c) = classes {
                text += &format!(", classes: {c}");
            }
            if let Some(n) = noise {
                text += &format!(", noise: {n}");
            }
            text + "}}"
        })
}

fn layer() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (1u64..6).prop_map(|out| format!("{{type: linear, out: {out}}}")),
        4 => (prop_oneof![0u64..6, Just(1_000_000_000_000u64), Just(70_000u64)], any::<bool>())
            .prop_map(|(out, bias)| format!("{{type: linear, out: {out}, bias: {bias}}}")),
        2 => Just("{type: relu}".to_string()),
        1 => Just("{type: ReLU}".to_string()),
        1 => Just("{type: sigmoid}".to_string()),
        1 => Just("{type: tanh}".to_string()),
        1 => (-3i64..4).prop_map(|d| format!("{{type: softmax, dim: {d}}}")),
        1 => (-3i64..4).prop_map(|d| format!("{{type: log_softmax, dim: {d}}}")),
        1 => Just("{type: conv2d, out: 3}".to_string()),
        3 => spatial_layer(),
        2 => norm_or_embedding_layer(),
    ]
}

/// Layer norm, group norm and embedding with small random arguments, valid or not (huge
/// tables, groups that do not divide, shapes that do not end the input, indices not in range).
fn norm_or_embedding_layer() -> impl Strategy<Value = String> {
    let size = || prop_oneof![1u64..6, Just(1u64 << 40)];
    (size(), size(), 1u64..5, -7i64..7, any::<bool>(), 0u8..4).prop_map(
        |(a, b, groups, padding, flag, kind)| match kind {
            0 => format!("{{type: layer_norm, elementwise_affine: {flag}, bias: {}}}", !flag),
            1 => format!("{{type: layer_norm, normalized_shape: [{groups}, {a}], eps: 0.01}}"),
            2 => format!("{{type: group_norm, num_groups: {groups}, affine: {flag}}}"),
            _ => format!(
                "{{type: embedding, num_embeddings: {a}, embedding_dim: {b}, padding_idx: {padding}}}"
            ),
        },
    )
}

/// Convolutions, poolings and `flatten` with small random arguments, valid or not.
fn spatial_layer() -> impl Strategy<Value = String> {
    let size = || prop_oneof![0u64..4, Just(1u64 << 40)];
    let dims = prop_oneof![Just(1usize), Just(2)];
    (
        dims,
        size(),
        size(),
        size(),
        size(),
        1u64..4,
        any::<bool>(),
        -4i64..4,
        -4i64..4,
    )
        .prop_map(|(d, k, s, p, dil, g, flag, a, b)| {
            let padding = if flag && p == 0 {
                "same".to_string()
            } else {
                p.to_string()
            };
            match (d, a.rem_euclid(6)) {
                (_, 0) => format!(
                    "{{type: conv{d}d, out_channels: {g}, kernel_size: {k}, stride: {s}, \
                     padding: {padding}, dilation: {dil}, groups: {g}, bias: {flag}}}"
                ),
                (_, 1) => format!(
                    "{{type: max_pool{d}d, kernel_size: {k}, stride: {s}, padding: {p}, \
                     dilation: {dil}, ceil_mode: {flag}}}"
                ),
                (_, 2) => format!(
                    "{{type: avg_pool{d}d, kernel_size: {k}, stride: {s}, padding: {p}, \
                     ceil_mode: {flag}, count_include_pad: {}}}",
                    !flag
                ),
                (1, 3) => format!("{{type: adaptive_avg_pool1d, output_size: {k}}}"),
                (_, 3) => format!("{{type: adaptive_max_pool2d, output_size: [{k}, null]}}"),
                (_, 4) => format!("{{type: adaptive_avg_pool2d, output_size: {s}}}"),
                (_, _) => format!("{{type: flatten, start_dim: {a}, end_dim: {b}}}"),
            }
        })
}

/// Each loss type with the keys it takes (PyTorch's keyword arguments); `triplet` is unknown.
const LOSSES: &[(&str, &[&str])] = &[
    (
        "cross_entropy",
        &["weight", "ignore_index", "reduction", "label_smoothing"],
    ),
    (
        "CrossEntropyLoss",
        &["weight", "ignore_index", "reduction", "label_smoothing"],
    ),
    ("nll", &["weight", "ignore_index", "reduction"]),
    ("bce", &["weight", "reduction"]),
    ("bce_with_logits", &["weight", "pos_weight", "reduction"]),
    ("mse", &["reduction"]),
    ("l1", &["reduction"]),
    ("smooth_l1", &["beta", "reduction"]),
    ("huber", &["delta", "reduction"]),
    ("kl_div", &["log_target", "reduction"]),
    ("poisson_nll", &["log_input", "full", "eps", "reduction"]),
    ("soft_margin", &["reduction"]),
    ("multilabel_soft_margin", &["weight", "reduction"]),
    ("multi_margin", &["p", "margin", "weight", "reduction"]),
];

/// Each optimizer type with the keys it takes; `lbfgs` is unknown.
const OPTIMIZERS: &[(&str, &[&str])] = &[
    (
        "sgd",
        &[
            "momentum",
            "dampening",
            "weight_decay",
            "nesterov",
            "maximize",
        ],
    ),
    ("SGD", &["momentum", "nesterov"]),
    (
        "adam",
        &["betas", "eps", "weight_decay", "amsgrad", "maximize"],
    ),
    ("adamw", &["betas", "eps", "weight_decay", "amsgrad"]),
    (
        "rmsprop",
        &["alpha", "eps", "weight_decay", "momentum", "centered"],
    ),
    (
        "adagrad",
        &[
            "lr_decay",
            "weight_decay",
            "initial_accumulator_value",
            "eps",
        ],
    ),
    ("adadelta", &["rho", "eps", "weight_decay"]),
    ("adamax", &["betas", "eps", "weight_decay"]),
    ("nadam", &["betas", "eps", "weight_decay", "momentum_decay"]),
    ("radam", &["betas", "eps", "weight_decay"]),
];

/// Values a key is given: mostly valid, some at the edges, a few wrong.
fn values_of(key: &str) -> &'static [&'static str] {
    match key {
        "reduction" => &[
            "mean",
            "mean",
            "mean",
            "sum",
            "sum",
            "mean",
            "none",
            "batchmean",
        ],
        "weight" | "pos_weight" => &["[1.0, 2.0, 0.5]", "[1.0, 1.0]", "[0.5]", "[-1.0, 1.0, 1.0]"],
        "ignore_index" => &["-100", "0", "1", "-1"],
        "label_smoothing" => &["0.0", "0.1", "1.5"],
        "beta" | "delta" | "margin" | "eps" => &["1.0", "0.5", "2.0", "0.1", "1.0e-8", "0", "-1"],
        "p" => &["1", "2", "3"],
        "lr" => &[
            "0.01", "0.1", "0.01", "0.1", "0.05", "0.2", "0", "1.0e30", "0.5", "0.001", "0.3", "-1",
        ],
        "momentum" => &["0.9", "0", "0.5", "0.9", "0.99", "-0.1"],
        "betas" => &[
            "[0.9, 0.999]",
            "[0.5, 0.9]",
            "[0.9, 0.99]",
            "[0.0, 0.5]",
            "[0.9, 1.5]",
        ],
        "alpha" | "rho" => &["0.99", "0.9", "1.0", "2"],
        "dampening" | "weight_decay" | "lr_decay" | "momentum_decay" => &["0", "0.01", "0.1"],
        "initial_accumulator_value" => &["0", "0.1"],
        _ => &["true", "false", "false"],
    }
}

/// A `{type: T, key: value, ...}` mapping with some of the type's keys.
fn typed(
    table: &'static [(&'static str, &'static [&'static str])],
    lr: bool,
) -> impl Strategy<Value = String> {
    proptest::sample::select(table).prop_flat_map(move |(ty, keys)| {
        let picks = proptest::sample::subsequence(keys.to_vec(), 0..=keys.len().min(3));
        (
            Just(ty),
            picks,
            any::<proptest::sample::Index>(),
            proptest::collection::vec(any::<proptest::sample::Index>(), 4),
        )
            .prop_map(move |(ty, keys, lr_pick, picks)| {
                let mut text = format!("{{type: {ty}");
                if lr {
                    text += &format!(", lr: {}", lr_pick.get(values_of("lr")));
                }
                for (k, pick) in keys.iter().zip(&picks) {
                    text += &format!(", {k}: {}", pick.get(values_of(k)));
                }
                text + "}"
            })
    })
}

fn loss() -> impl Strategy<Value = String> {
    typed(LOSSES, false)
}

fn optimizer() -> impl Strategy<Value = String> {
    typed(OPTIMIZERS, true)
}

fn scheduler() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(String::new()),
        Just(String::new()),
        Just("scheduler: {type: step_lr, step_size: 1}\n".to_string()),
        Just("scheduler: {type: cosine_annealing_lr, T_max: 2}\n".to_string()),
        Just("scheduler: {type: one_cycle_lr, max_lr: 0.1, total_steps: 2}\n".to_string()),
        Just("scheduler: {type: reduce_lr_on_plateau, patience: 0}\n".to_string()),
        Just("scheduler: {type: exponential_lr, gamma: 0.5}\n".to_string()),
    ]
}

fn train_section() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            10 => Just("epochs: 1"),
            10 => Just("steps: 2"),
            1 => Just("epochs: 0"),
            5 => Just("steps: 1, epochs: 2"),
        ],
        prop_oneof![
            12 => Just(""),
            4 => Just(", accumulate: 2"),
            1 => Just(", accumulate: 0"),
        ],
        prop_oneof![
            12 => Just(""),
            3 => Just(", clip_grad_norm: 1.0"),
            2 => Just(", clip_grad_value: 0.5"),
            1 => Just(", clip_grad_value: -1"),
        ],
    )
        .prop_map(|(len, acc, clip)| format!("{{{len}{acc}{clip}}}"))
}

fn spec_text() -> impl Strategy<Value = String> {
    let sets = (
        source(),
        proptest::option::weighted(0.3, source()),
        prop_oneof![
            20 => Just(""),
            5 => Just("  split: 0.25\n"),
            1 => Just("  split: 1.5\n"),
        ],
    );
    let input = prop_oneof![
        60 => Just("[2]"),
        1 => Just("[3]"),
        1 => Just("[2, 2]"),
        2 => Just("[1, 2]"),
        2 => Just("[1, 1, 2]"),
        2 => Just("[2, 1, 1]"),
        1 => Just("[]"),
        1 => Just("[0]"),
    ];
    (
        sets,
        prop_oneof![1 => Just(0u32), 40 => 1u32..6],
        (any::<bool>(), any::<bool>(), any::<bool>()),
        input,
        (
            proptest::collection::vec(layer(), 1..4),
            proptest::bool::weighted(0.7),
        ),
        (loss(), optimizer(), scheduler(), train_section()),
    )
        .prop_map(
            |(
                (train, valid, split),
                batch,
                (shuffle, drop_last, standardize),
                input,
                (mut layers, fit),
                (loss, optimizer, scheduler, train_keys),
            )| {
                if fit {
                    layers.push(format!(
                        "{{type: linear, out: {}}}",
                        fitting_width(&train, &loss)
                    ));
                }
                let valid = valid.map(|v| format!("  valid: {v}\n")).unwrap_or_default();
                format!(
                    "seed: 1\ndata:\n  train: {train}\n{valid}  batch_size: {batch}\n{split}  \
                     shuffle: {shuffle}\n  drop_last: {drop_last}\n  standardize: {standardize}\n\
                     model:\n  input: {input}\n  layers: [{}]\nloss: {loss}\n\
                     optimizer: {optimizer}\n{scheduler}train: {train_keys}\n",
                    layers.join(", ")
                )
            },
        )
}

/// The last layer's width that fits the synthetic source's targets for the loss: its classes
/// for a class-index loss; for a float loss one column for two classes (or `linear`), else
/// one per class.
fn fitting_width(source: &str, loss: &str) -> u32 {
    let classes = source
        .split("classes: ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(if source.contains("moons") { 2 } else { 3 });
    let class_loss = ["cross_entropy", "CrossEntropyLoss", "nll", "multi_margin"]
        .iter()
        .any(|l| loss.starts_with(&format!("{{type: {l}")));
    match (class_loss, source.contains("linear"), classes) {
        (true, _, c) => c,
        (false, true, _) | (false, false, 2) => 1,
        (false, false, c) => c,
    }
}

/// Runs one spec as far as it goes; every error must be a single line.
fn run(text: &str) -> Result<(), String> {
    let one_line = |e: &dyn std::fmt::Display| {
        let m = e.to_string();
        assert!(!m.contains('\n'), "multi-line error for\n{text}\n{m}");
        m
    };
    let spec = graphc::parse_str(text, Path::new("fuzz.yaml")).map_err(|e| one_line(&e))?;
    // Far below the machine's memory: the test must stay small.
    train::run::check_size_within(&spec, 64 << 20).map_err(|e| one_line(&e))?;
    let data = train::load_data(&spec, Path::new(".")).map_err(|e| one_line(&e))?;
    let mut trainer =
        train::prepare(&spec, Path::new("."), &data, Box::new(Interp)).map_err(|e| one_line(&e))?;
    let n = data.train.len().min(spec.data.batch_size);
    let rows: Vec<usize> = (0..n).collect();
    let mut features = Vec::new();
    let mut targets = BatchTargets::Floats(Vec::new());
    data.train
        .gather(&rows, &mut features, &mut targets)
        .unwrap();
    trainer
        .step(&features, &targets)
        .map_err(|e| one_line(&e))?;
    if let Some(valid) = &data.valid {
        trainer.evaluate(valid).map_err(|e| one_line(&e))?;
    }
    trainer
        .per_sample_losses(&data.train)
        .map_err(|e| one_line(&e))?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn structurally_valid_specs_never_panic_from_parse_to_a_step(text in spec_text()) {
        let _ = run(&text);
    }
}

#[test]
fn the_generator_reaches_the_step_for_some_specs() {
    // A spec the generator can produce that trains: the property above is not vacuous.
    let text = "seed: 1\ndata:\n  train: {synthetic: {kind: blobs, samples: 12, features: 2, classes: 3, noise: 0.1}}\n  batch_size: 4\n  shuffle: true\n  drop_last: false\n  standardize: true\nmodel:\n  input: [2]\n  layers: [{type: linear, out: 3, bias: true}]\nloss: {type: cross_entropy}\noptimizer: {type: sgd, lr: 0.01}\ntrain: {epochs: 1}\n";
    assert_eq!(run(text), Ok(()));
}

#[test]
fn generated_specs_reach_every_stage_not_only_the_parser() {
    // The property above is only as strong as the specs reaching the later stages: of 200
    // deterministic draws, a good share must pass the parser and some must train a step.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut parsed, mut stepped) = (0, 0);
    for _ in 0..200 {
        let text = spec_text().new_tree(&mut runner).unwrap().current();
        match run(&text) {
            Ok(()) => stepped += 1,
            Err(e) if !e.starts_with("fuzz.yaml:") => parsed += 1,
            Err(_) => {}
        }
    }
    assert!(stepped >= 20, "{stepped} of 200 specs trained a step");
    assert!(
        parsed + stepped >= 50,
        "{} of 200 specs passed the parser",
        parsed + stepped
    );
}
