//! The run directory (`--out`) end to end: a run never destroys an earlier one. A failed
//! (diverging) or killed re-run leaves a finished run's files byte-identical; files graphc did
//! not write survive, and a symbolic link at an output's name is not followed; a run on a
//! directory another run holds is refused naming its PID; a tampered checkpoint or a cut
//! `metrics.jsonl` is refused before anything is written; a killed `--resume` keeps the
//! checkpoints it wrote.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{assert_clear_failure, graphc_in, scratch, snapshot};

/// Eight samples of a linear target.
const DATA: &str = "a,b,y\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n2,1,0\n5,4,3\n8,7,6\n11,10,9\n";

fn spec(lr: &str, standardize: bool) -> String {
    format!(
        "data: {{train: {{csv: data.csv, target: y}}, batch_size: 2, standardize: {standardize}}}\n\
         model: {{input: [2], layers: [{{type: linear, out: 1}}]}}\n\
         loss: {{type: mse}}\n\
         optimizer: {{type: sgd, lr: {lr}}}\n\
         train: {{epochs: 2, checkpoint_every: 1}}\n"
    )
}

/// A scratch directory with `good.yaml` (standardized), `plain.yaml` (not standardized) and
/// `diverging.yaml` (lr 1e30), and a finished run of `good.yaml` in `out`.
fn finished_run() -> tempfile::TempDir {
    let dir = scratch(&[
        ("data.csv", DATA),
        ("good.yaml", &spec("0.01", true)),
        ("plain.yaml", &spec("0.01", false)),
        ("diverging.yaml", &spec("1.0e30", true)),
    ]);
    ok(&graphc_in(
        dir.path(),
        &["train", "good.yaml", "--out", "out", "--quiet"],
    ));
    dir
}

#[track_caller]
fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `graphc train SPEC --out out --overwrite --quiet` in `dir`.
fn train_overwriting(dir: &Path, spec: &str) -> Output {
    graphc_in(
        dir,
        &["train", spec, "--out", "out", "--overwrite", "--quiet"],
    )
}

#[test]
fn failed_or_killed_rerun_into_a_finished_run_leaves_its_files_byte_identical() {
    let dir = finished_run();
    let out = dir.path().join("out");
    let before = snapshot(&out);
    for name in [
        "metrics.jsonl",
        "model.safetensors",
        "standardize.json",
        "loss.svg",
    ] {
        assert!(before.contains_key(name), "{name} in {:?}", before.keys());
    }

    // Without --overwrite a run does not start over another one.
    let o = graphc_in(dir.path(), &["train", "good.yaml", "--out", "out"]);
    assert_clear_failure(&o, &["--out `out` already holds files", "--overwrite"]);
    assert_eq!(snapshot(&out), before);

    // With --overwrite, a run that fails leaves the old one as it was.
    let o = graphc_in(
        dir.path(),
        &["train", "diverging.yaml", "--out", "out", "--overwrite"],
    );
    assert_clear_failure(&o, &["training diverged at step "]);
    assert_eq!(snapshot(&out), before);

    // A killed one too; only its staging directory and its (released) lock file are left, and
    // the next run removes them.
    let o = Command::new(env!("CARGO_BIN_EXE_graphc"))
        .args([
            "train",
            "plain.yaml",
            "--out",
            "out",
            "--overwrite",
            "--quiet",
        ])
        .env("GRAPHC_TEST_ABORT_AFTER_STEP", "3")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success(), "the run should be killed");
    let after = snapshot(&out);
    let staged: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(
        staged
            .iter()
            .all(|k| k.starts_with(".graphc-staging-") || *k == ".graphc.lock"),
        "{staged:?}"
    );
    for (name, bytes) in &before {
        assert_eq!(after.get(name), Some(bytes), "{name} after a killed re-run");
    }

    // The re-run that succeeds replaces the run and removes graphc's stale standardize.json.
    ok(&train_overwriting(dir.path(), "plain.yaml"));
    let replaced = snapshot(&out);
    assert!(
        !replaced.contains_key("standardize.json"),
        "stale statistics"
    );
    assert!(
        replaced
            .keys()
            .all(|k| !k.starts_with(".graphc-staging-") && k != ".graphc.lock"),
        "{:?}",
        replaced.keys()
    );
    assert_ne!(replaced["model.safetensors"], before["model.safetensors"]);
}

#[test]
fn files_the_user_put_in_out_survive_every_run() {
    let dir = scratch(&[("data.csv", DATA), ("plain.yaml", &spec("0.01", false))]);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("labels.json"), "[\"mine\"]").unwrap();
    std::fs::write(out.join("standardize.json"), "{\"mine\": 1}").unwrap();
    std::fs::write(out.join("notes.txt"), "my notes").unwrap();
    let before = snapshot(&out);

    let o = graphc_in(dir.path(), &["train", "plain.yaml", "--out", "out"]);
    let err = assert_clear_failure(&o, &["already holds files (labels.json, notes.txt, "]);
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(snapshot(&out), before);

    ok(&train_overwriting(dir.path(), "plain.yaml"));
    let after = snapshot(&out);
    for (name, bytes) in &before {
        assert_eq!(after.get(name), Some(bytes), "the user's {name}");
    }
    assert!(after.contains_key("model.safetensors"));
}

#[test]
fn a_symlinked_metrics_jsonl_is_replaced_never_followed() {
    let dir = scratch(&[
        ("data.csv", DATA),
        ("plain.yaml", &spec("0.01", false)),
        ("precious.txt", "precious"),
    ]);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink("../precious.txt", out.join("metrics.jsonl")).unwrap();

    let o = graphc_in(dir.path(), &["train", "plain.yaml", "--out", "out"]);
    assert_clear_failure(&o, &["already holds files (metrics.jsonl)"]);
    ok(&train_overwriting(dir.path(), "plain.yaml"));
    let precious = std::fs::read_to_string(dir.path().join("precious.txt")).unwrap();
    assert_eq!(precious, "precious");
    let meta = std::fs::symlink_metadata(out.join("metrics.jsonl")).unwrap();
    assert!(
        meta.is_file(),
        "the link itself is replaced by the run's file"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 8, "{metrics}");
}

#[test]
fn a_second_run_on_a_locked_directory_is_refused_naming_the_holder() {
    let dir = scratch(&[("data.csv", DATA), ("plain.yaml", &spec("0.01", false))]);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // This test process holds the lock, as a running `graphc train` does.
    let lock_path = out.join(".graphc.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.try_lock().unwrap();
    let pid = std::process::id();
    std::fs::write(&lock_path, format!("{pid}\n")).unwrap();

    let o = graphc_in(dir.path(), &["train", "plain.yaml", "--out", "out"]);
    assert_clear_failure(
        &o,
        &[
            "--out `out` is in use by another graphc run",
            &format!("process {pid}"),
            "out/.graphc.lock",
        ],
    );
    let left: Vec<String> = snapshot(&out).into_keys().collect();
    assert_eq!(left, [".graphc.lock"], "nothing written, the lock kept");
    drop(lock);
    ok(&graphc_in(
        dir.path(),
        &["train", "plain.yaml", "--out", "out", "--quiet"],
    ));
    assert!(
        !lock_path.exists(),
        "a run removes its lock file at its end"
    );
}

/// Resumes `out/checkpoint` with `spec`.
fn resume(dir: &Path, spec: &str) -> Output {
    graphc_in(
        dir,
        &["train", spec, "--resume", "out/checkpoint", "--quiet"],
    )
}

#[test]
fn a_tampered_checkpoint_is_refused_naming_the_key_and_value() {
    let dir = finished_run();
    let out = dir.path().join("out");
    let state_path = out.join("checkpoint/state.json");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    let cases: [(&str, &[&str], serde_json::Value, &str); 4] = [
        (
            "negative lr",
            &["optimizer", "param_groups", "0", "lr"],
            serde_json::json!(-0.1),
            "optimizer.param_groups[0].lr is -0.1, expected a learning rate >= 0",
        ),
        (
            "epoch 10^9",
            &["progress", "epoch"],
            serde_json::json!(1_000_000_000u64),
            "progress.epoch is 1000000000, expected at most the spec's train.epochs, 2",
        ),
        (
            "batch past the epoch",
            &["progress", "batch"],
            serde_json::json!(77),
            "progress.batch is 77, expected at most the 4 batches of an epoch",
        ),
        (
            "step count",
            &["optimizer", "step"],
            serde_json::json!(5),
            "optimizer.step is 5, expected 8 (2 epochs and 0 batches done)",
        ),
    ];
    for (what, key, value, message) in cases {
        let mut tampered = state.clone();
        let mut slot = &mut tampered;
        for k in key {
            slot = match k.parse::<usize>() {
                Ok(i) => &mut slot[i],
                Err(_) => &mut slot[*k],
            };
        }
        *slot = value;
        std::fs::write(&state_path, tampered.to_string()).unwrap();
        let before = snapshot(&out);
        let o = resume(dir.path(), "good.yaml");
        let err = assert_clear_failure(&o, &["checkpoint `out/checkpoint/state.json`", message]);
        assert_eq!(snapshot(&out), before, "{what}: {err}");
    }
}

#[test]
fn resuming_a_run_whose_metrics_were_emptied_is_refused_before_writing() {
    let dir = finished_run();
    let out = dir.path().join("out");
    std::fs::write(out.join("metrics.jsonl"), "").unwrap();
    let before = snapshot(&out);
    let o = resume(dir.path(), "good.yaml");
    assert_clear_failure(
        &o,
        &[
            "checkpoint `out/checkpoint`",
            "`out/metrics.jsonl` held ",
            "but it holds 0",
        ],
    );
    assert_eq!(snapshot(&out), before);

    // A finished run resumed with its metrics intact is a run that has nothing left to do.
    let dir = finished_run();
    let out = dir.path().join("out");
    let before = snapshot(&out);
    ok(&resume(dir.path(), "good.yaml"));
    let after = snapshot(&out);
    for name in ["metrics.jsonl", "model.safetensors"] {
        assert_eq!(after[name], before[name], "{name}");
    }
}

/// `progress.epoch` of `out/checkpoint/state.json`.
fn checkpoint_epoch(out: &Path) -> u64 {
    let text = std::fs::read_to_string(out.join("checkpoint/state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["progress"]["epoch"].as_u64().unwrap()
}

/// The `step` of every line of `out/metrics.jsonl`.
fn metrics_steps(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_killed_resume_keeps_its_checkpoints_and_resumes_from_the_last() {
    let dir = finished_run();
    let out = dir.path().join("out");
    let longer = spec("0.01", true).replace("epochs: 2", "epochs: 4");
    std::fs::write(dir.path().join("longer.yaml"), longer).unwrap();
    let before = snapshot(&out);
    assert_eq!(checkpoint_epoch(&out), 2);
    // Killed at step 14, after the epoch-3 checkpoint of the resumed run.
    let o = Command::new(env!("CARGO_BIN_EXE_graphc"))
        .args([
            "train",
            "longer.yaml",
            "--resume",
            "out/checkpoint",
            "--quiet",
        ])
        .env("GRAPHC_TEST_ABORT_AFTER_STEP", "14")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success(), "the run should be killed");
    // The epoch-3 checkpoint was promoted with the metrics it counts (and the lines after it);
    // the finished run's model and other files are as they were.
    assert_eq!(checkpoint_epoch(&out), 3);
    assert_eq!(metrics_steps(&out), (1..=14).collect::<Vec<u64>>());
    let after = snapshot(&out);
    for name in [
        "model.safetensors",
        "loss.svg",
        "standardize.json",
        ".graphc-files",
    ] {
        assert_eq!(
            after.get(name),
            before.get(name),
            "{name} after a killed resume"
        );
    }

    ok(&resume(dir.path(), "longer.yaml"));
    assert_eq!(metrics_steps(&out), (1..=16).collect::<Vec<u64>>());
    let left = snapshot(&out);
    assert!(
        left.keys()
            .all(|k| !k.starts_with(".graphc") || k == ".graphc-files"),
        "{:?}",
        left.keys()
    );
    // Bitwise the run never stopped.
    ok(&graphc_in(
        dir.path(),
        &["train", "longer.yaml", "--out", "fresh", "--quiet"],
    ));
    let fresh = snapshot(&dir.path().join("fresh"));
    for name in [
        "model.safetensors",
        "metrics.jsonl",
        "checkpoint/state.json",
    ] {
        assert_eq!(left.get(name), fresh.get(name), "{name}");
    }
}

#[test]
fn a_resume_that_fails_before_a_checkpoint_leaves_the_run_byte_identical() {
    let dir = finished_run();
    let out = dir.path().join("out");
    let before = snapshot(&out);
    // A standard error that cannot be written stops the run at its first epoch line, which
    // comes before that epoch's checkpoint: nothing was promoted.
    let longer = spec("0.01", true).replace("epochs: 2", "epochs: 4");
    std::fs::write(dir.path().join("longer.yaml"), longer).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_graphc"))
        .args(["train", "longer.yaml", "--resume", "out/checkpoint"])
        .stderr(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(snapshot(&out), before);
}
