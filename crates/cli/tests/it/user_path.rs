//! The path a new user takes, end to end through the `graphc` binary: train (progress on
//! standard error, the summary on standard output), the files a run leaves (`loss.svg`,
//! `labels.json`, `standardize.json`), then `eval`, `predict` and `plot` on them.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{graphc_in, repo};
use serde_json::Value;

fn ok(o: &Output) -> (String, String) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    (String::from_utf8_lossy(&o.stdout).into_owned(), err)
}

/// Iris with text labels, standardized, a 20% validation split: trained into `dir/out`.
fn iris_spec(dir: &Path, epochs: u32, lr: f32) -> PathBuf {
    let csv = repo().join("specs/data/iris.csv");
    let spec = format!(
        "seed: 3
data:
  train: {{csv: {}, target: species}}
  split: 0.2
  batch_size: 16
  shuffle: true
  standardize: true
model:
  input: [4]
  layers: [{{type: linear, out: 16}}, {{type: relu}}, {{type: linear, out: 3}}]
loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: {lr}, momentum: 0.9}}
train: {{epochs: {epochs}}}
",
        csv.display()
    );
    let path = dir.join(format!("iris-{lr}.yaml"));
    std::fs::write(&path, spec).unwrap();
    path
}

/// A number after `key ` in `text`, e.g. `accuracy 96.67%` → 96.67.
fn number_after(text: &str, key: &str) -> f64 {
    text.split(key)
        .nth(1)
        .and_then(|s| {
            let end = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
                .unwrap_or(s.len());
            s[..end].parse().ok()
        })
        .unwrap_or_else(|| panic!("no number after {key:?} in {text}"))
}

#[test]
fn train_then_eval_predict_and_plot_agree_with_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let spec = iris_spec(dir.path(), 20, 0.05);
    let spec = spec.to_str().unwrap();
    let (stdout, stderr) = ok(&graphc_in(dir.path(), &["train", spec, "--out", "run"]));
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    assert!(
        stdout.starts_with("trained 160 steps (20 epochs)"),
        "{stdout}"
    );

    // Not a terminal: one plain line per epoch, then the table.
    let epoch_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("epoch ")).collect();
    assert_eq!(
        epoch_lines.len(),
        20 + 1,
        "20 epoch lines and the table header: {stderr}"
    );
    assert!(
        epoch_lines[0].starts_with("epoch 1/20: train loss ")
            && epoch_lines[0].contains(", accuracy ")
            && epoch_lines[0].contains(" | valid loss "),
        "{}",
        epoch_lines[0]
    );
    let header = stderr
        .lines()
        .find(|l| l.contains("train loss  train acc"))
        .unwrap();
    assert_eq!(
        header,
        "epoch  train loss  train acc  valid loss  valid acc"
    );

    // SPEC.md's metrics.jsonl: step lines, and one validation line per epoch.
    let run = dir.path().join("run");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        160 + 20,
        "8 steps (120 samples / 16) per epoch, 1 valid line"
    );
    let last_valid = lines
        .iter()
        .rev()
        .find(|l| l.get("valid_loss").is_some())
        .unwrap();
    assert_eq!(
        last_valid.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["epoch", "valid_accuracy", "valid_loss"]
    );

    // The files eval and predict use, and the plot.
    assert_eq!(
        std::fs::read_to_string(run.join("labels.json")).unwrap(),
        "[\"setosa\",\"versicolor\",\"virginica\"]\n"
    );
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("standardize.json")).unwrap())
            .unwrap();
    assert_eq!(stats["mean"].as_array().unwrap().len(), 4);
    let svg = std::fs::read_to_string(run.join("loss.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains(">\nstep\n</text>"),
        "axis labelled"
    );

    // eval on the spec's validation split gives the run's last validation numbers.
    let (eval_out, _) = ok(&graphc_in(dir.path(), &["eval", spec, "--weights", "run"]));
    assert!(
        eval_out.contains("on the validation set (30 samples)"),
        "{eval_out}"
    );
    let loss = number_after(&eval_out, "loss ");
    let want = last_valid["valid_loss"].as_f64().unwrap();
    assert!((loss - want).abs() < 1e-5, "eval {loss} vs run {want}");
    let accuracy = number_after(&eval_out, "accuracy ");
    let want = last_valid["valid_accuracy"].as_f64().unwrap() * 100.0;
    assert!(
        (accuracy - want).abs() < 0.01,
        "eval {accuracy} vs run {want}"
    );

    // The interpreter agrees, and per-sample losses average to the loss.
    let weights = run.join("model.safetensors");
    let o = graphc_in(
        dir.path(),
        &[
            "eval",
            spec,
            "--weights",
            weights.to_str().unwrap(),
            "--per-sample",
            "--backend",
            "interp",
        ],
    );
    let (per_sample, summary) = ok(&o);
    let interp_loss = number_after(&summary, "loss ");
    assert!(
        (interp_loss - loss).abs() < 1e-5,
        "interp {interp_loss} vs jit {loss}"
    );
    let mut rows = per_sample.lines();
    assert_eq!(rows.next(), Some("sample,loss"));
    let losses: Vec<f64> = rows
        .map(|r| r.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 30);
    assert!(losses.iter().all(|&l| l >= 0.0));
    let mean = losses.iter().sum::<f64>() / 30.0;
    assert!(
        (mean - loss).abs() < 1e-5,
        "mean of per-sample {mean} vs {loss}"
    );

    // eval on a CSV: the whole file, text labels numbered as labels.json says.
    let csv = repo().join("specs/data/iris.csv");
    let (all, _) = ok(&graphc_in(
        dir.path(),
        &[
            "eval",
            spec,
            "--weights",
            "run",
            "--data",
            csv.to_str().unwrap(),
        ],
    ));
    assert!(all.contains("(150 samples)"), "{all}");
    let eval_accuracy = number_after(&all, "accuracy ");

    // predict writes class names, atomically, and they agree with eval's accuracy.
    let o = graphc_in(
        dir.path(),
        &[
            "predict",
            spec,
            "--weights",
            "run",
            "--data",
            csv.to_str().unwrap(),
            "--out",
            "p.csv",
        ],
    );
    ok(&o);
    let predictions = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    let mut predicted = predictions.lines();
    assert_eq!(predicted.next(), Some("species"));
    let truth: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().trim().to_owned())
        .collect();
    let predicted: Vec<&str> = predicted.collect();
    assert_eq!(predicted.len(), 150);
    assert!(predicted
        .iter()
        .all(|p| ["setosa", "versicolor", "virginica"].contains(p)));
    let right = predicted
        .iter()
        .zip(&truth)
        .filter(|(p, t)| *p == t)
        .count();
    assert!(
        (right as f64 / 1.5 - eval_accuracy).abs() < 0.01,
        "{right}/150 right vs eval {eval_accuracy}%"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(names.is_empty(), "no temporary files: {names:?}");

    // Predicting samples without the target column.
    std::fs::write(
        dir.path().join("new.csv"),
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
    )
    .unwrap();
    let (text, _) = ok(&graphc_in(
        dir.path(),
        &["predict", spec, "--weights", "run", "--data", "new.csv"],
    ));
    assert_eq!(text, "species\nsetosa\nvirginica\n");

    // Without --weights, eval and predict use the spec's model.init.from, as `graphc train`
    // starts from it; without either, one line says what to give.
    let text = std::fs::read_to_string(spec).unwrap();
    let from = text.replace(
        "  input: [4]\n",
        "  input: [4]\n  init: {from: run/model.safetensors}\n",
    );
    std::fs::write(dir.path().join("from.yaml"), from).unwrap();
    let (from_eval, _) = ok(&graphc_in(dir.path(), &["eval", "from.yaml"]));
    assert_eq!(from_eval, eval_out, "model.init.from is the run's weights");
    let (from_text, _) = ok(&graphc_in(
        dir.path(),
        &["predict", "from.yaml", "--data", "new.csv"],
    ));
    assert_eq!(from_text, "species\nsetosa\nvirginica\n");
    let o = graphc_in(dir.path(), &["eval", spec]);
    crate::support::assert_clear_failure(&o, &["no --weights given", "model.init.from"]);
}

#[test]
fn plot_overlays_runs_with_one_legend_entry_each() {
    let dir = tempfile::tempdir().unwrap();
    for (lr, out) in [(0.05, "lr-0.05"), (0.01, "lr-0.01")] {
        let spec = iris_spec(dir.path(), 3, lr);
        let o = graphc_in(
            dir.path(),
            &["train", spec.to_str().unwrap(), "--out", out, "--quiet"],
        );
        let (_, stderr) = ok(&o);
        assert_eq!(stderr, "", "--quiet prints nothing on standard error");
    }
    let (stdout, _) = ok(&graphc_in(
        dir.path(),
        &["plot", "lr-0.05", "lr-0.01", "--out", "compare.svg"],
    ));
    assert_eq!(stdout, "wrote compare.svg\n");
    let svg = std::fs::read_to_string(dir.path().join("compare.svg")).unwrap();
    for label in [
        "lr-0.05 train",
        "lr-0.01 train",
        "lr-0.05 valid",
        "lr-0.01 valid",
    ] {
        assert!(
            svg.contains(&format!(">\n{label}\n</text>")),
            "legend {label}"
        );
    }
}

#[test]
fn plot_smooth_draws_a_moving_average_per_beta() {
    let dir = tempfile::tempdir().unwrap();
    let spec = iris_spec(dir.path(), 3, 0.05);
    ok(&graphc_in(
        dir.path(),
        &["train", spec.to_str().unwrap(), "--out", "run", "--quiet"],
    ));
    let (stdout, _) = ok(&graphc_in(
        dir.path(),
        &["plot", "run", "--smooth", "0.8,0.98", "--out", "smooth.svg"],
    ));
    assert_eq!(stdout, "wrote smooth.svg\n");
    let svg = std::fs::read_to_string(dir.path().join("smooth.svg")).unwrap();
    for label in ["train loss", "train loss, β 0.8", "train loss, β 0.98"] {
        assert!(
            svg.contains(&format!(">\n{label}\n</text>")),
            "legend {label}"
        );
    }
    let o = graphc_in(
        dir.path(),
        &["plot", "run", "--smooth", "1", "--out", "bad.svg"],
    );
    crate::support::assert_clear_failure(&o, &["--smooth 1", "less than 1"]);
    assert!(!dir.path().join("bad.svg").exists());
}

#[test]
fn sweep_trains_every_combination_and_names_the_best_run() {
    let dir = tempfile::tempdir().unwrap();
    let spec = iris_spec(dir.path(), 2, 0.05);
    let spec = spec.to_str().unwrap();
    let (stdout, _) = ok(&graphc_in(
        dir.path(),
        &[
            "sweep",
            spec,
            "--set",
            "optimizer.lr=[0.01, 0.1, 1e6]",
            "--set",
            "data.batch_size=[8, 16]",
            "--out",
            "sw",
            "--jobs",
            "2",
        ],
    ));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6 + 2, "{stdout}");
    assert!(lines[..6].iter().all(|l| l.starts_with('[')), "{stdout}");
    assert!(
        lines[..6]
            .iter()
            .filter(|l| l.contains("optimizer.lr=1000000.0"))
            .all(|l| l.contains(": training diverged at step ")),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.path().join("sw/sweep.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0][..5],
        [
            "optimizer.lr",
            "data.batch_size",
            "final_loss",
            "best_loss",
            "best_step"
        ]
    );
    assert_eq!(*rows[0].last().unwrap(), "diverged");
    assert_eq!(rows.len(), 7);
    let values: Vec<(&str, &str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[0], r[1], *r.last().unwrap()))
        .collect();
    assert_eq!(
        values,
        [
            ("0.01", "8", "false"),
            ("0.01", "16", "false"),
            ("0.1", "8", "false"),
            ("0.1", "16", "false"),
            ("1000000.0", "8", "true"),
            ("1000000.0", "16", "true"),
        ]
    );
    // The best run has the lowest final loss of the runs that did not diverge.
    let finals: Vec<f32> = rows[1..5].iter().map(|r| r[2].parse().unwrap()).collect();
    let best = (0..4)
        .min_by(|&a, &b| finals[a].total_cmp(&finals[b]))
        .unwrap();
    assert!(
        lines[7].starts_with(&format!("best: sw/run-{best} (")),
        "{stdout}"
    );
    // Each finished run is a run directory of its own, trained with its values.
    let metrics = std::fs::read_to_string(dir.path().join("sw/run-2/metrics.jsonl")).unwrap();
    assert!(
        metrics.lines().next().unwrap().contains("\"lr\":0.1"),
        "{metrics}"
    );
    let svg = std::fs::read_to_string(dir.path().join("sw/sweep.svg")).unwrap();
    assert!(
        svg.contains("diverged: optimizer.lr=1000000.0, data.batch_size=8"),
        "note"
    );
    // A key the spec does not have: one line, nothing written.
    let o = graphc_in(
        dir.path(),
        &[
            "sweep",
            spec,
            "--set",
            "optimizer.lrr=[1, 2]",
            "--out",
            "bad",
        ],
    );
    crate::support::assert_clear_failure(&o, &["--set optimizer.lrr=1", "unknown key `lrr`"]);
    assert!(!dir.path().join("bad").exists());
    // An existing sweep is not overwritten.
    let o = graphc_in(
        dir.path(),
        &["sweep", spec, "--set", "optimizer.lr=[1]", "--out", "sw"],
    );
    crate::support::assert_clear_failure(&o, &["already holds files"]);
}

#[test]
fn regression_runs_report_rmse_and_predict_values() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "seed: 1
data:
  train: {csv: data.csv, target: y}
  batch_size: 4
  standardize: true
model: {input: [1], layers: [{type: linear, out: 1}]}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 100}
";
    std::fs::write(dir.path().join("spec.yaml"), spec).unwrap();
    // y = 2x + 1 exactly.
    let rows: String = (0..8).map(|i| format!("{i}.0,{}.0\n", 2 * i + 1)).collect();
    std::fs::write(dir.path().join("data.csv"), format!("x,y\n{rows}")).unwrap();
    std::fs::write(dir.path().join("new.csv"), "x\n10\n").unwrap();
    let (stdout, stderr) = ok(&graphc_in(
        dir.path(),
        &["train", "spec.yaml", "--out", "run", "--backend", "interp"],
    ));
    assert!(stdout.contains("train RMSE "), "{stdout}");
    assert!(
        stderr.contains("epoch  train loss  train RMSE\n"),
        "{stderr}"
    );
    assert!(!dir.path().join("run/labels.json").exists());
    assert!(dir.path().join("run/standardize.json").exists());
    let (eval, _) = ok(&graphc_in(
        dir.path(),
        &["eval", "spec.yaml", "--weights", "run"],
    ));
    assert!(eval.contains("on the training set (8 samples)"), "{eval}");
    let rmse = number_after(&eval, "RMSE ");
    assert!(rmse < 0.05, "{eval}");
    let (text, _) = ok(&graphc_in(
        dir.path(),
        &[
            "predict",
            "spec.yaml",
            "--weights",
            "run",
            "--data",
            "new.csv",
        ],
    ));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("y"));
    let value: f64 = lines.next().unwrap().parse().unwrap();
    assert!((value - 21.0).abs() < 0.1, "2 × 10 + 1 ≈ {value}");
}

#[test]
fn a_diverged_sweep_run_is_drawn_up_to_the_step_before_its_divergence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("q.yaml"),
        "params: {x: 2.0}\nobjective: 4 * x^2\noptimizer: {type: sgd, lr: 0.1}\ntrain: {steps: 40}\n",
    )
    .unwrap();
    let (stdout, _) = ok(&graphc_in(
        dir.path(),
        &[
            "sweep",
            "q.yaml",
            "--set",
            "optimizer.lr=[0.1, 1]",
            "--out",
            "sw",
        ],
    ));
    // x is multiplied by -7 a step at lr 1: the loss 16·49^(k-1) overflows f32 at step 24.
    assert!(
        stdout.contains("optimizer.lr=1: training diverged at step 24 (epoch 24)"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.path().join("sw/sweep.csv")).unwrap();
    assert_eq!(csv.lines().nth(2), Some("1,,,,true"), "{csv}");
    // Its run directory holds the same run stopped at step 23: its curve.
    let metrics = std::fs::read_to_string(dir.path().join("sw/run-1/metrics.jsonl")).unwrap();
    let xs: Vec<f64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["x"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(xs.len(), 23);
    assert_eq!(xs[..4], [2.0, -14.0, 98.0, -686.0]);
    let svg = std::fs::read_to_string(dir.path().join("sw/sweep.svg")).unwrap();
    assert!(
        svg.contains("optimizer.lr=1 (diverged at step 24)"),
        "legend"
    );
    assert!(svg.contains("diverged: optimizer.lr=1"), "note");
}
