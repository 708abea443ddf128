//! `scheduler:` and the update-shaping keys of `train:` (accumulate, clipping, checkpoints):
//! PyTorch's defaults, aliases, and located errors.

use std::path::Path;

use graphc_spec::*;

const BASE: &str = "\
data:
  train: {csv: train.csv, target: y}
model:
  input: [2]
  layers: [{type: linear, out: 1}]
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train:
  epochs: 3
";

/// `BASE` with `extra` (YAML lines) appended; `train:` is the last section, so keys indented
/// by two spaces land in it.
fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn parse(text: &str) -> Spec {
    parse_str(text, Path::new("spec.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> SpecError {
    match parse_str(text, Path::new("spec.yaml")) {
        Ok(spec) => panic!("expected an error, got {spec:?}"),
        Err(e) => e,
    }
}

fn scheduler(yaml: &str) -> SchedulerSpec {
    parse(&with(&format!("scheduler: {yaml}\n")))
        .scheduler
        .expect("a scheduler")
}

#[test]
fn no_scheduler_and_null_scheduler_mean_a_constant_learning_rate() {
    assert_eq!(parse(BASE).scheduler, None);
    assert_eq!(parse(&with("scheduler: null\n")).scheduler, None);
}

#[test]
fn step_lr_takes_pytorch_defaults_and_is_stepped_per_epoch() {
    assert_eq!(
        scheduler("{type: step_lr, step_size: 30}"),
        SchedulerSpec {
            kind: SchedulerKind::StepLr {
                step_size: 30,
                gamma: 0.1
            },
            interval: Interval::Epoch,
        }
    );
}

#[test]
fn pytorch_class_names_and_lowercase_t_arguments_are_aliases() {
    assert_eq!(
        scheduler("{type: CosineAnnealingLR, T_max: 10}"),
        scheduler("{type: cosine_annealing_lr, t_max: 10, eta_min: 0}")
    );
    assert_eq!(
        scheduler("{type: CosineAnnealingWarmRestarts, T_0: 4, T_mult: 2}").kind,
        SchedulerKind::CosineAnnealingWarmRestarts {
            t_0: 4,
            t_mult: 2,
            eta_min: 0.0
        }
    );
}

#[test]
fn every_scheduler_fills_in_pytorch_defaults() {
    assert_eq!(
        scheduler("{type: multi_step_lr, milestones: [2, 2, 5]}").kind,
        SchedulerKind::MultiStepLr {
            milestones: vec![2, 2, 5],
            gamma: 0.1
        }
    );
    assert_eq!(
        scheduler("{type: exponential_lr, gamma: 0.9}").kind,
        SchedulerKind::ExponentialLr { gamma: 0.9 }
    );
    assert_eq!(
        scheduler("{type: linear_lr}").kind,
        SchedulerKind::LinearLr {
            start_factor: 1.0 / 3.0,
            end_factor: 1.0,
            total_iters: 5
        }
    );
    assert_eq!(
        scheduler("{type: constant_lr}").kind,
        SchedulerKind::ConstantLr {
            factor: 1.0 / 3.0,
            total_iters: 5
        }
    );
    assert_eq!(
        scheduler("{type: reduce_lr_on_plateau}").kind,
        SchedulerKind::ReduceLrOnPlateau {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: PerGroup::All(0.0),
            eps: 1e-8,
        }
    );
}

#[test]
fn one_cycle_lr_is_stepped_per_update_and_infers_total_steps() {
    let s = scheduler("{type: one_cycle_lr, max_lr: [0.1, 0.01], epochs: 3, steps_per_epoch: 7}");
    assert_eq!(s.interval, Interval::Step);
    assert_eq!(
        s.kind,
        SchedulerKind::OneCycleLr {
            max_lr: PerGroup::Each(vec![0.1, 0.01]),
            total_steps: 21,
            pct_start: 0.3,
            anneal_strategy: AnnealStrategy::Cos,
            cycle_momentum: true,
            base_momentum: PerGroup::All(0.85),
            max_momentum: PerGroup::All(0.95),
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    );
    let explicit = scheduler("{type: one_cycle_lr, max_lr: 1, total_steps: 5, interval: epoch}");
    assert_eq!(explicit.interval, Interval::Epoch);
}

#[test]
fn one_cycle_lr_without_a_length_is_an_error_at_its_key() {
    let e = err(&with(
        "scheduler: {type: one_cycle_lr, max_lr: 0.1, epochs: 3}\n",
    ));
    assert_eq!(e.line(), Some(10), "{e}");
    assert!(
        e.message()
            .contains("needs `total_steps`, or both `epochs` and `steps_per_epoch`"),
        "{e}"
    );
}

#[test]
fn sequential_lr_holds_a_warm_up_then_a_decay() {
    let s = scheduler(
        "{type: sequential_lr, milestones: [2], schedulers: [{type: linear_lr, start_factor: 0.5, total_iters: 2}, {type: exponential_lr, gamma: 0.9}]}",
    );
    assert_eq!(
        s.kind,
        SchedulerKind::SequentialLr {
            schedulers: vec![
                SchedulerKind::LinearLr {
                    start_factor: 0.5,
                    end_factor: 1.0,
                    total_iters: 2
                },
                SchedulerKind::ExponentialLr { gamma: 0.9 },
            ],
            milestones: vec![2],
        }
    );
}

#[test]
fn sequential_lr_checks_its_milestones_and_schedulers() {
    let e = err(&with(
        "scheduler: {type: sequential_lr, milestones: [2, 3], schedulers: [{type: constant_lr}]}\n",
    ));
    assert!(
        e.message()
            .contains("one milestone fewer than schedulers; here 1 schedulers and 2 milestones"),
        "{e}"
    );
    let e = err(&with(
        "scheduler: {type: sequential_lr, milestones: [], schedulers: [{type: reduce_lr_on_plateau}]}\n",
    ));
    assert!(
        e.message().contains("cannot hold reduce_lr_on_plateau"),
        "{e}"
    );
    let e = err(&with(
        "scheduler: {type: sequential_lr, milestones: [], schedulers: [{type: constant_lr, interval: step}]}\n",
    ));
    assert!(
        e.message()
            .contains("`interval` belongs to the top-level scheduler"),
        "{e}"
    );
}

#[test]
fn reduce_lr_on_plateau_rejects_a_step_interval_and_a_factor_of_one() {
    let e = err(&with(
        "scheduler: {type: reduce_lr_on_plateau, interval: step}\n",
    ));
    assert!(e.message().contains("stepped once per epoch"), "{e}");
    let e = err(&with(
        "scheduler: {type: reduce_lr_on_plateau, factor: 1.0}\n",
    ));
    assert!(e.message().contains("factor must be < 1.0"), "{e}");
}

#[test]
fn scheduler_keys_are_checked_against_the_type() {
    let e = err(&with(
        "scheduler: {type: step_lr, step_size: 3, T_max: 4}\n",
    ));
    assert_eq!(
        e.message(),
        "unknown key `T_max` in scheduler (step_lr); valid keys: type, interval, step_size, gamma"
    );
    let e = err(&with("scheduler: {type: step_lr}\n"));
    assert_eq!(
        e.message(),
        "missing key `step_size` in scheduler (step_lr)"
    );
    let e = err(&with("scheduler: {type: step_lr, step_size: 0}\n"));
    assert!(e.message().contains("expected a positive integer"), "{e}");
    let e = err(&with(
        "scheduler: {type: reduce_lr_on_plateau, mode: mini}\n",
    ));
    assert!(e.message().contains("did you mean `min`?"), "{e}");
}

#[test]
fn train_update_keys_default_to_plain_sgd_steps() {
    let t = parse(BASE).train;
    assert_eq!(t.accumulate, 1);
    assert_eq!(t.clip_grad_norm, None);
    assert_eq!(t.clip_grad_value, None);
    assert_eq!(t.checkpoint_every, None);
}

#[test]
fn train_update_keys_are_read() {
    let t = parse(&with(
        "  accumulate: 4\n  clip_grad_norm: 1.5\n  clip_grad_value: 0.25\n  checkpoint_every: 2\n",
    ))
    .train;
    assert_eq!(t.accumulate, 4);
    assert_eq!(
        t.clip_grad_norm,
        Some(ClipGradNorm {
            max_norm: 1.5,
            norm_type: 2.0
        })
    );
    assert_eq!(t.clip_grad_value, Some(0.25));
    assert_eq!(t.checkpoint_every, Some(2));
    for inf in ["inf", ".inf"] {
        let t = parse(&with(&format!(
            "  clip_grad_norm: {{max_norm: 1, norm_type: {inf}}}\n"
        )))
        .train;
        assert_eq!(
            t.clip_grad_norm,
            Some(ClipGradNorm {
                max_norm: 1.0,
                norm_type: f64::INFINITY
            })
        );
    }
}

#[test]
fn bad_train_update_values_are_located_errors() {
    let e = err(&with("  accumulate: 0\n"));
    assert_eq!((e.line(), e.column()), (Some(10), Some(15)), "{e}");
    assert!(
        e.message().starts_with("train.accumulate: invalid value"),
        "{e}"
    );
    let e = err(&with("  clip_grad_norm: {max_norm: 1, norm_type: 0}\n"));
    assert!(e.message().contains("expected a number > 0, or inf"), "{e}");
    let e = err(&with("  clip_grad_norm: {norm_type: 2}\n"));
    assert_eq!(
        e.message(),
        "missing key `max_norm` in train.clip_grad_norm"
    );
    let e = err(&with("  clip_grad_value: -1\n"));
    assert!(e.message().contains("expected a clip value > 0"), "{e}");
    let e = err(&with("  checkpoint_evry: 1\n"));
    assert!(
        e.message().contains("did you mean `checkpoint_every`?"),
        "{e}"
    );
}

/// SPEC.md's complete example, scheduler included.
const SPEC_MD_EXAMPLE: &str = r#"
seed: 0
data:
  train: {csv: data/iris.csv, target: species}
  valid: {csv: data/iris_valid.csv, target: species}
  batch_size: 16
  shuffle: true
  drop_last: false
  standardize: false
model:
  input: [4]
  layers:
    - {type: linear, out: 16}
    - {type: relu}
    - {type: linear, out: 3}
  init: {from: init.safetensors}
loss: {type: cross_entropy, weight: [1.0, 2.0, 1.0], ignore_index: -100, reduction: mean, label_smoothing: 0.0}
optimizer:
  type: sgd
  lr: 0.1
  momentum: 0.9
  dampening: 0.0
  weight_decay: 0.0
  nesterov: false
  maximize: false
  param_groups:
    - {params: ["0.*"], lr: 0.01}
scheduler: {type: step_lr, step_size: 30, gamma: 0.1}
train:
  epochs: 20
"#;

#[test]
fn spec_md_complete_example_parses_with_its_scheduler() {
    let spec = parse(SPEC_MD_EXAMPLE);
    assert_eq!(
        spec.scheduler,
        Some(SchedulerSpec {
            kind: SchedulerKind::StepLr {
                step_size: 30,
                gamma: 0.1
            },
            interval: Interval::Epoch,
        })
    );
    assert_eq!(spec.train.epochs, Some(20));
    assert_eq!(spec.train.accumulate, 1);
}
