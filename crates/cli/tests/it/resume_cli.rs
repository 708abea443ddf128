//! `graphc train --resume` and `graphc inspect` end to end: a run stopped by
//! `GRAPHC_TEST_ABORT_AFTER_STEP` (an abort, as abrupt as a kill, at a chosen step: in the middle
//! of an epoch, right after a checkpoint, just before one) and resumed from its last checkpoint
//! writes byte-identical `model.safetensors` and `metrics.jsonl` to a run never stopped;
//! `inspect` shows the optimizer as PyTorch's `state_dict()` does; a checkpoint that does not
//! fit is one clear line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{assert_clear_failure, graphc_in};
use graphc::BackendKind;

/// Runs `graphc ARGS` in the current directory.
fn graphc(args: &[&str]) -> Output {
    graphc_in(Path::new("."), args)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// `rows` samples of 8 features, 4 classes, no randomness.
fn write_data(dir: &Path, rows: usize) {
    let mut text = String::from("a,b,c,d,e,f,g,h,label\n");
    for i in 0..rows {
        let x: Vec<f32> = (0..8)
            .map(|j| ((i * 13 + j * 7) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let label = ((x[0] - x[3] + 0.5 * x[5]) * 2.0).rem_euclid(4.0) as i64;
        let cells: Vec<String> = x.iter().map(f32::to_string).collect();
        text += &format!("{},{label}\n", cells.join(","));
    }
    std::fs::write(dir.join("train.csv"), text).unwrap();
}

fn spec(epochs: u64) -> String {
    format!(
        "seed: 3\n\
         data: {{train: {{csv: train.csv, target: label}}, batch_size: 4, shuffle: true}}\n\
         model:\n  input: [8]\n  layers: [{{type: linear, out: 32}}, {{type: relu}}, {{type: linear, out: 4}}]\n\
         loss: {{type: cross_entropy}}\n\
         optimizer: {{type: sgd, lr: 0.01, momentum: 0.9, nesterov: true}}\n\
         scheduler: {{type: exponential_lr, gamma: 0.97, interval: step}}\n\
         train: {{epochs: {epochs}, checkpoint_every: 1}}\n"
    )
}

fn train(dir: &Path, spec_file: &str, out: &Path, backend: &str, resume: Option<&Path>) -> Output {
    let spec_path = dir.join(spec_file);
    let mut args = vec![
        "train",
        path(&spec_path),
        "--out",
        path(out),
        "--backend",
        backend,
        "--quiet",
    ];
    if let Some(c) = resume {
        args.extend(["--resume", path(c)]);
    }
    graphc(&args)
}

/// The checkpoint's `metrics_bytes` and epoch, once a complete checkpoint exists.
fn checkpoint_position(out: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(out.join("checkpoint/state.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        json["progress"]["metrics_bytes"].as_u64()?,
        json["progress"]["epoch"].as_u64()?,
    ))
}

/// Runs `graphc train` like [`train`] but with the test hook set: the process aborts right
/// after step `step`'s metrics line is written. It runs in `dir`, where a core dump would land.
fn train_aborted_after(dir: &Path, out: &Path, backend: &str, step: u64) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graphc"))
        .args(["train", path(&dir.join("spec.yaml")), "--out", path(out)])
        .args(["--backend", backend, "--quiet"])
        .env("GRAPHC_TEST_ABORT_AFTER_STEP", step.to_string())
        .current_dir(dir)
        .output()
        .expect("graphc runs")
}

#[test]
fn run_aborted_mid_epoch_or_at_a_checkpoint_resumes_to_identical_files() {
    // 40 samples in batches of 4: 10 steps an epoch, a checkpoint after every epoch.
    const STEPS_PER_EPOCH: u64 = 10;
    for &backend in BackendKind::ALL {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        write_data(dir.path(), 40);
        std::fs::write(dir.path().join("spec.yaml"), spec(3)).unwrap();
        let whole = dir.path().join("whole");
        let o = train(dir.path(), "spec.yaml", &whole, name, None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

        // Aborted in the middle of epoch 2, at the first step after the epoch-1 checkpoint,
        // and at the last step of epoch 2 (its checkpoint not yet written): each resumes from
        // the epoch-1 checkpoint and cuts `metrics.jsonl` back to it.
        for stop in [15, STEPS_PER_EPOCH + 1, 2 * STEPS_PER_EPOCH] {
            let what = format!("{name}, aborted after step {stop}");
            let killed = dir.path().join(format!("aborted-{stop}"));
            let o = train_aborted_after(dir.path(), &killed, name, stop);
            assert!(!o.status.success(), "{what}: the run should not finish");
            let metrics = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
            assert_eq!(
                metrics.lines().count() as u64,
                stop,
                "{what}: one metrics line per step up to the abort"
            );
            assert_eq!(
                checkpoint_position(&killed).map(|(_, epoch)| epoch),
                Some(1),
                "{what}: the last checkpoint"
            );
            assert!(
                !killed.join("model.safetensors").exists(),
                "{what}: an aborted run writes no model"
            );

            let checkpoint = killed.join("checkpoint");
            let o = train(dir.path(), "spec.yaml", &killed, name, Some(&checkpoint));
            assert!(
                o.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            for file in ["model.safetensors", "metrics.jsonl"] {
                let a = std::fs::read(whole.join(file)).unwrap();
                let b = std::fs::read(killed.join(file)).unwrap();
                assert!(a == b, "{what}: {file} differs after the resume");
            }
        }
    }
}

fn small_run() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), 40);
    let text = spec(2).replace(
        "{type: sgd, lr: 0.01, momentum: 0.9, nesterov: true}",
        "{type: sgd, lr: 0.01, momentum: 0.9, nesterov: true, param_groups: [{params: [\"2.*\"], lr: 0.1}]}",
    );
    std::fs::write(dir.path().join("spec.yaml"), text).unwrap();
    let out = dir.path().join("out");
    let o = train(dir.path(), "spec.yaml", &out, "interp", None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, out)
}

#[test]
fn inspect_prints_the_optimizer_like_pytorchs_state_dict() {
    let (_dir, out) = small_run();
    let o = graphc(&["inspect", path(&out.join("checkpoint"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "optimizer: sgd (torch.optim.SGD), step 20");
    assert_eq!(
        lines[1],
        "defaults: {'lr': 0.01, 'dampening': 0.0, 'maximize': False, 'momentum': 0.9, 'nesterov': True, 'weight_decay': 0.0}"
    );
    assert_eq!(lines[2], "param_groups:");
    // 20 per-step exponential decays of 0.97 from 0.1, as Python computes them.
    let mut lr = 0.1f64;
    for _ in 0..20 {
        lr *= 0.97;
    }
    assert_eq!(
        lines[3],
        format!(
            "  [0] {{'lr': {lr:?}, 'dampening': 0.0, 'maximize': False, 'momentum': 0.9, 'nesterov': True, 'weight_decay': 0.0, 'initial_lr': 0.1, 'params': [0, 1]}}"
        )
    );
    assert_eq!(lines[4], "      params: 0 = 2.weight, 1 = 2.bias");
    assert!(
        lines[6].ends_with("params: 2 = 0.weight, 3 = 0.bias"),
        "{}",
        lines[6]
    );
    assert_eq!(lines[7], "state:");
    assert_eq!(lines[8], "  0 (2.weight):");
    assert!(
        lines[9].starts_with("      'momentum_buffer': shape [4, 32], ["),
        "{}",
        lines[9]
    );
    assert!(lines[9].ends_with(", ...]"), "{}", lines[9]);
    assert!(
        text.contains(
            "\nscheduler: {'type': 'exponential_lr', 'last_epoch': 20, '_step_count': 21,"
        ),
        "{text}"
    );
    assert!(
        text.contains("\nposition: 2 epochs done, 0 batches into epoch 3;"),
        "{text}"
    );
}

#[test]
fn inspect_of_a_directory_without_a_checkpoint_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = graphc(&["inspect", path(dir.path())]);
    assert_clear_failure(&o, &["is not a checkpoint (no state.json)"]);
}

#[test]
fn resume_with_a_model_that_does_not_fit_names_the_tensor() {
    let (dir, out) = small_run();
    let text = std::fs::read_to_string(dir.path().join("spec.yaml"))
        .unwrap()
        .replace("out: 32", "out: 16");
    std::fs::write(dir.path().join("other.yaml"), text).unwrap();
    let o = train(
        dir.path(),
        "other.yaml",
        &out,
        "interp",
        Some(&out.join("checkpoint")),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("tensor `0.weight` has shape [32, 8], the model needs [16, 8]"),
        "{err}"
    );
}

#[test]
fn resume_without_out_writes_next_to_the_checkpoint() {
    let (dir, out) = small_run();
    let longer = std::fs::read_to_string(dir.path().join("spec.yaml"))
        .unwrap()
        .replace("epochs: 2", "epochs: 3");
    std::fs::write(dir.path().join("longer.yaml"), longer).unwrap();
    let spec_path = dir.path().join("longer.yaml");
    let checkpoint = out.join("checkpoint");
    let o = graphc(&[
        "train",
        path(&spec_path),
        "--quiet",
        "--resume",
        path(&checkpoint),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["step"].as_u64(), last["epoch"].as_u64()),
        (Some(30), Some(3))
    );
}
