//! Learning-rate schedulers against PyTorch (goldens made by `tools/goldens/schedulers.py`):
//! the lr (and cycled momentum) sequences of every scheduler and option combination, per
//! param group, bit for bit; and whole training runs with a scheduler — per-step losses, the
//! lr every update used (`metrics.jsonl`), validation losses and final weights — on every
//! backend.

use std::path::{Path, PathBuf};

use crate::support::{close, floats, golden_cases, run_golden};
use graphc::stages::nn::sched::{ParamGroup, Scheduler};
use graphc::BackendKind;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/schedulers")
}

/// PyTorch's `lr_scheduler` computes in Python floats with the platform's libm, as graphc
/// does, so the sequences agree bit for bit (recursive and closed forms would not).
#[test]
fn every_scheduler_gives_pytorchs_lr_sequence_per_group_bit_for_bit() {
    let text = std::fs::read_to_string(root().join("lr_sequences.json")).expect("committed");
    let cases: Value = serde_json::from_str(&text).expect("JSON");
    let cases = cases["cases"].as_array().expect("cases");
    assert!(cases.len() >= 25, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let spec = graphc::parse_str(case["spec"].as_str().expect("spec"), Path::new(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut groups: Vec<ParamGroup> = spec
            .optimizer
            .param_groups
            .iter()
            .map(|g| ParamGroup::new(g.kind.clone()))
            .chain(std::iter::once(ParamGroup::new(
                spec.optimizer.kind.clone(),
            )))
            .collect();
        let mut scheduler =
            Scheduler::new(spec.scheduler.as_ref().expect("scheduler"), &mut groups)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let lrs = case["lr"].as_array().expect("lr");
        assert_eq!(
            lrs.len() as u64,
            case["steps"].as_u64().unwrap() + 1,
            "{name}"
        );
        for (k, expected) in lrs.iter().enumerate() {
            if k > 0 {
                let metric = case["metrics"]
                    .as_array()
                    .map(|m| m[k - 1].as_f64().unwrap());
                scheduler
                    .step(&mut groups, metric)
                    .unwrap_or_else(|e| panic!("{name} step {k}: {e}"));
            }
            let actual: Vec<f64> = groups.iter().map(ParamGroup::lr).collect();
            let expected = floats(expected);
            assert_eq!(
                actual.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                expected.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{name}: lr after {k} steps: {actual:?} vs PyTorch {expected:?}"
            );
            assert_eq!(scheduler.last_lr(), &actual[..], "{name}: get_last_lr");
            if let Some(momenta) = case["momentum"].as_array() {
                let actual: Vec<f64> = groups.iter().map(|g| g.momentum().unwrap()).collect();
                assert_eq!(
                    actual,
                    floats(&momenta[k]),
                    "{name}: momentum after {k} steps"
                );
            }
        }
    }
}

#[test]
fn one_cycle_lr_stepped_past_total_steps_is_an_error_like_pytorchs() {
    let spec = graphc::parse_str(
        "data: {train: {csv: x.csv, target: y}}\nmodel: {input: [1], layers: [{type: linear, out: 1}]}\n\
         loss: {type: mse}\noptimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n\
         scheduler: {type: one_cycle_lr, max_lr: 1.0, total_steps: 3}\ntrain: {steps: 9}\n",
        Path::new("x.yaml"),
    )
    .unwrap();
    let mut groups = vec![ParamGroup::new(spec.optimizer.kind.clone())];
    let mut s = Scheduler::new(spec.scheduler.as_ref().unwrap(), &mut groups).unwrap();
    for _ in 0..3 {
        s.step(&mut groups, None).unwrap();
    }
    let e = s.step(&mut groups, None).unwrap_err().to_string();
    assert!(
        e.contains("stepped 4 times but its total_steps is 3"),
        "{e}"
    );
}

fn check_run(case: &Path, backend: BackendKind) {
    let run = run_golden(case, backend);
    let (what, expected, lines) = (&run.what, &run.expected, &run.metrics);
    let steps: Vec<&Value> = lines.iter().filter(|l| l.get("step").is_some()).collect();
    let losses = floats(&expected["losses"]);
    let lrs = expected["lrs"].as_array().unwrap();
    assert_eq!(steps.len(), losses.len(), "{what}: number of updates");
    for (k, line) in steps.iter().enumerate() {
        let loss = line["loss"].as_f64().unwrap();
        assert!(
            close(loss, losses[k], 2e-5, 1e-7),
            "{what}: step {} loss {loss} vs PyTorch {}",
            k + 1,
            losses[k]
        );
        let want = floats(&lrs[k]);
        let got = match line.get("lrs") {
            Some(all) => floats(all),
            None => vec![line["lr"].as_f64().unwrap()],
        };
        assert_eq!(got.len(), want.len(), "{what}: groups at step {}", k + 1);
        for (g, (a, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(*a, *e, 1e-12, 0.0),
                "{what}: step {} group {g} lr {a} vs PyTorch {e}",
                k + 1
            );
        }
    }
    run.assert_valid_losses(2e-5, 1e-7);
    run.assert_final_weights(1e-4, 1e-6);
}

#[test]
fn training_with_a_scheduler_matches_pytorch_on_every_backend() {
    for &backend in BackendKind::ALL {
        for case in golden_cases("schedulers", 7) {
            check_run(&case, backend);
        }
    }
}
