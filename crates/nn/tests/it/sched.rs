//! Schedulers as state machines: state round trips, fit checks, PyTorch's construction
//! errors, and the momentum buffers a cycled momentum needs in the step graph.

use std::path::Path;

use graphc_nn::sched::{cycles_momentum, graph_optimizer, ParamGroup, Scheduler};
use graphc_spec::{Interval, SchedulerKind, SchedulerSpec, Spec};

fn spec(optimizer: &str, scheduler: &str) -> Spec {
    let text = format!(
        "data: {{train: {{csv: x.csv, target: y}}}}\n\
         model: {{input: [2], layers: [{{type: linear, out: 1}}]}}\n\
         loss: {{type: mse}}\noptimizer: {optimizer}\nscheduler: {scheduler}\ntrain: {{steps: 1}}\n"
    );
    graphc_spec::parse_str(&text, Path::new("x.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn groups(spec: &Spec) -> Vec<ParamGroup> {
    spec.optimizer
        .param_groups
        .iter()
        .map(|g| ParamGroup::new(g.kind.clone()))
        .chain(std::iter::once(ParamGroup::new(
            spec.optimizer.kind.clone(),
        )))
        .collect()
}

#[test]
fn a_restored_state_continues_exactly_like_the_original() {
    let s = spec(
        "{type: sgd, lr: 0.1, param_groups: [{params: [\"0.*\"], lr: 0.3}]}",
        "{type: sequential_lr, milestones: [3], schedulers: [{type: linear_lr}, {type: cosine_annealing_warm_restarts, T_0: 2, T_mult: 3}]}",
    );
    let mut g1 = groups(&s);
    let mut first = Scheduler::new(s.scheduler.as_ref().unwrap(), &mut g1).unwrap();
    for _ in 0..5 {
        first.step(&mut g1, None).unwrap();
    }
    let saved = first.state();
    let mut g2 = groups(&s);
    let mut second = Scheduler::new(s.scheduler.as_ref().unwrap(), &mut g2).unwrap();
    second.load_state(&saved).unwrap();
    for (a, b) in g1.iter().zip(&g2) {
        // The group hyperparameters travel with the optimizer's state, not the scheduler's.
        assert_ne!(a.lr(), b.lr());
    }
    g2 = g1.clone();
    for _ in 0..9 {
        first.step(&mut g1, None).unwrap();
        second.step(&mut g2, None).unwrap();
        assert_eq!(g1, g2);
        assert_eq!(first.last_lr(), second.last_lr());
    }
    let json = serde_json::to_string(&second.state()).unwrap();
    let back = serde_json::from_str(&json).unwrap();
    assert_eq!(second.state(), back);
}

#[test]
fn plateau_state_with_no_best_yet_survives_json() {
    let s = spec("{type: sgd, lr: 0.1}", "{type: reduce_lr_on_plateau}");
    let mut g = groups(&s);
    let sched = Scheduler::new(s.scheduler.as_ref().unwrap(), &mut g).unwrap();
    let json = serde_json::to_string(&sched.state()).unwrap();
    assert!(json.contains("\"best\":null"), "{json}");
    assert_eq!(
        serde_json::from_str::<graphc_nn::sched::SchedulerState>(&json).unwrap(),
        sched.state()
    );
}

#[test]
fn loading_another_schedulers_state_is_an_error_naming_both() {
    let a = spec("{type: sgd, lr: 0.1}", "{type: step_lr, step_size: 2}");
    let b = spec("{type: sgd, lr: 0.1}", "{type: exponential_lr, gamma: 0.5}");
    let mut ga = groups(&a);
    let sa = Scheduler::new(a.scheduler.as_ref().unwrap(), &mut ga).unwrap();
    let mut gb = groups(&b);
    let mut sb = Scheduler::new(b.scheduler.as_ref().unwrap(), &mut gb).unwrap();
    let e = sb.load_state(&sa.state()).unwrap_err().to_string();
    assert_eq!(
        e,
        "scheduler: the checkpoint holds a step_lr scheduler, the spec has exponential_lr"
    );
}

#[test]
fn a_per_group_list_of_the_wrong_length_is_an_error() {
    let s = spec(
        "{type: sgd, lr: 0.1, momentum: 0.9}",
        "{type: one_cycle_lr, max_lr: [0.1, 0.2], total_steps: 5}",
    );
    let e = Scheduler::new(s.scheduler.as_ref().unwrap(), &mut groups(&s))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("max_lr has 2 values but the optimizer has 1 param groups"),
        "{e}"
    );
}

#[test]
fn cycling_momentum_of_an_optimizer_without_one_is_an_error() {
    let s = spec(
        "{type: adagrad}",
        "{type: one_cycle_lr, max_lr: 0.1, total_steps: 5}",
    );
    assert!(cycles_momentum(s.scheduler.as_ref().unwrap()));
    let e = Scheduler::new(s.scheduler.as_ref().unwrap(), &mut groups(&s))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adagrad has neither momentum nor betas; set cycle_momentum: false"),
        "{e}"
    );
    let off = spec(
        "{type: adagrad}",
        "{type: one_cycle_lr, max_lr: 0.1, total_steps: 5, cycle_momentum: false}",
    );
    assert!(Scheduler::new(off.scheduler.as_ref().unwrap(), &mut groups(&off)).is_ok());
}

#[test]
fn a_cycled_momentum_gives_sgd_without_momentum_a_buffer_in_the_graph() {
    let s = spec(
        "{type: sgd, lr: 0.1}",
        "{type: one_cycle_lr, max_lr: 0.1, total_steps: 5}",
    );
    assert_eq!(s.optimizer.kind.momentum(), Some(0.0));
    assert_ne!(graph_optimizer(&s).kind.momentum(), Some(0.0));
    let plain = spec("{type: sgd, lr: 0.1}", "{type: step_lr, step_size: 1}");
    assert_eq!(*graph_optimizer(&plain), plain.optimizer);
}

#[test]
fn schedulers_built_in_code_with_zero_periods_are_errors_not_panics() {
    let s = spec("{type: sgd, lr: 0.1}", "null");
    let zero = SchedulerSpec {
        kind: SchedulerKind::StepLr {
            step_size: 0,
            gamma: 0.1,
        },
        interval: Interval::Epoch,
    };
    let e = Scheduler::new(&zero, &mut groups(&s))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "scheduler: step_lr needs step_size > 0");
    let empty = SchedulerSpec {
        kind: SchedulerKind::SequentialLr {
            schedulers: Vec::new(),
            milestones: Vec::new(),
        },
        interval: Interval::Epoch,
    };
    assert!(Scheduler::new(&empty, &mut groups(&s)).is_err());
}
