//! End-to-end tests of the `graphc` binary: the default spec trains, and bad
//! input ends with one clear line on stderr and a non-zero exit, never a panic.

use std::process::Output;

use crate::support::{assert_clear_failure, graphc_in, repo, scratch};

/// Runs `graphc ARGS` at the repository root.
fn graphc(args: &[&str]) -> Output {
    graphc_in(&repo(), args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const GOOD_SPEC: &str = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 1}]}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2}
";

#[test]
fn train_iris_reaches_95_percent_and_writes_spec_files() {
    let out = tempfile::tempdir().unwrap();
    let o = graphc(&[
        "train",
        "specs/iris.yaml",
        "--out",
        out.path().to_str().unwrap(),
        "--quiet",
        "--backend",
        "interp",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout);
    let accuracy: f64 = summary
        .split("train accuracy ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {summary}"));
    assert!(accuracy >= 95.0, "{summary}");
    assert_eq!(summary.lines().count(), 1, "one summary line: {summary}");

    let metrics = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    let first_line = metrics.lines().next().unwrap();
    assert!(
        first_line.starts_with(r#"{"step":1,"epoch":1,"loss":"#),
        "SPEC.md's key order: {first_line}"
    );
    let first: serde_json::Value = serde_json::from_str(first_line).unwrap();
    assert_eq!(first["lr"], 0.1);
    assert_eq!(
        metrics.lines().count(),
        30 * 10,
        "150 rows / 16 = 10 steps per epoch"
    );

    let params =
        graphc::stages::train::read_safetensors(&out.path().join("model.safetensors")).unwrap();
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["0.bias", "0.weight", "2.bias", "2.weight"]);
    assert_eq!(params[1].shape, [16, 4], "PyTorch layout [out, in]");
}

#[test]
fn check_prints_layers_shapes_and_parameter_count() {
    let o = graphc(&["check", "specs/iris.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("linear") && text.contains("[16]") && text.contains("[3]"),
        "{text}"
    );
    assert!(text.contains("total parameters: 131"), "{text}");
}

#[test]
fn check_prints_a_graph_models_table_and_flags_unused_nodes() {
    let spec = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model:
  input: [2]
  nodes:
    - {name: fc1, type: linear, out: 4}
    - {name: block, type: residual, layers: [{type: linear, out: 4}, {type: relu}]}
    - {name: skip, type: add, inputs: [block, fc1]}
    - {name: aux.fc, type: linear, out: 3, inputs: fc1}
    - {name: head, type: linear, out: 1, inputs: skip}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
";
    let dir = scratch(&[
        ("spec.yaml", spec),
        ("data.csv", "a,b,y\n1,2,0.5\n3,4,1.5\n"),
    ]);
    let o = graphc_in(dir.path(), &["check", "spec.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let expected = "\
layer         type      inputs             output shape  params
input                                      [2]
fc1           linear    input              [4]               12
block.body.0  linear    fc1                [4]               20
block.body.1  relu      block.body.0       [4]                0
block         residual  block.body.1, fc1  [4]                0
skip          add       block, fc1         [4]                0
aux.fc        linear    fc1                [3]               15
head          linear    skip               [1]                5
total parameters: 52
note: aux.fc (linear) does not reach the model's output: its parameters stay in the state_dict and are never trained
";
    assert!(text.starts_with(expected), "{text}");
    let o = graphc_in(dir.path(), &["graph", "--dot", "spec.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dot = String::from_utf8_lossy(&o.stdout);
    assert!(dot.starts_with("digraph model {"), "{dot}");
    for line in [
        "  \"block\" [label=\"block\\nresidual [4]\"];",
        "  \"block.body.1\" -> \"block\";",
        "  \"fc1\" -> \"block\";",
        "  \"aux.fc\" [label=\"aux.fc\\nlinear [3]\", style=dashed];",
    ] {
        assert!(dot.lines().any(|l| l == line), "{line} not in\n{dot}");
    }
    // The step follows the model.
    assert_eq!(dot.matches("digraph").count(), 2, "{dot}");
}

#[test]
fn check_marks_frozen_parameters() {
    let spec = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model:
  input: [2]
  layers:
    - {type: sequential, name: features, requires_grad: false, layers: [{type: linear, out: 4}, {type: relu}]}
    - {type: linear, out: 1, name: head}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
";
    let dir = scratch(&[
        ("spec.yaml", spec),
        ("data.csv", "a,b,y\n1,2,0.5\n3,4,1.5\n"),
    ]);
    let o = graphc_in(dir.path(), &["check", "spec.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[2].starts_with("features.0") && lines[2].ends_with("12 frozen"),
        "{text}"
    );
    assert!(
        lines[5].starts_with("head") && lines[5].ends_with(" 5"),
        "{text}"
    );
    assert!(
        text.contains("total parameters: 17 (12 frozen)\n"),
        "{text}"
    );
}

#[test]
fn set_overrides_spec_keys_on_train_check_and_bench() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let o = graphc(&[
        "train",
        "specs/iris.yaml",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
        "--set",
        "train.epochs=1",
        "--set",
        "optimizer.lr=0.0625",
        "--set",
        "model.layers.0.out=8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let first = metrics.lines().next().unwrap();
    assert!(first.contains("\"lr\":0.0625"), "{first}");
    let params = graphc::stages::train::read_safetensors(&run.join("model.safetensors")).unwrap();
    let w0 = params.iter().find(|p| p.name == "0.weight").unwrap();
    assert_eq!(w0.shape, [8, 4]);
    let o = graphc(&["check", "specs/iris.yaml", "--set", "model.layers.0.out=8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("total parameters: 67"));
    // An unknown key: one line naming the override and the valid keys, nothing written.
    let bad = out.path().join("bad");
    let o = graphc(&[
        "train",
        "specs/iris.yaml",
        "--out",
        bad.to_str().unwrap(),
        "--set",
        "optimizer.momentun=0.9",
    ]);
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o).trim_end(),
        "error: specs/iris.yaml: --set optimizer.momentun=0.9: unknown key `momentun` in \
         optimizer (sgd); did you mean `momentum`? valid keys: type, lr, momentum, dampening, \
         weight_decay, nesterov, maximize, param_groups"
    );
    assert!(!bad.exists());
    let o = graphc(&[
        "bench",
        "specs/iris.yaml",
        "--steps",
        "2",
        "--set",
        "data.batch_size=4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_regressor_with_batch_norm_without_running_statistics_checks_trains_and_predicts() {
    // Evaluation normalises such a layer with the batch's statistics; knowing the targets'
    // layout must not need a batch (`graphc check` and `predict` once refused this spec).
    let spec = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 4}, {type: batch_norm1d, track_running_stats: false}, {type: linear, out: 1}]}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
";
    let dir = scratch(&[
        ("spec.yaml", spec),
        ("data.csv", "a,b,y\n1,2,0.5\n3,4,1.5\n5,6,2.0\n7,8,1.0\n"),
        ("features.csv", "a,b\n1,2\n3,4\n5,6\n"),
    ]);
    let o = graphc_in(dir.path(), &["check", "spec.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    // linear 2·4 + 4, batch norm 4 + 4, linear 4 + 1.
    assert!(text.contains("total parameters: 25"), "{text}");
    let o = graphc_in(
        dir.path(),
        &["train", "spec.yaml", "--out", "out", "--quiet"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = graphc_in(
        dir.path(),
        &[
            "predict",
            "spec.yaml",
            "--weights",
            "out",
            "--data",
            "features.csv",
            "--out",
            "p.csv",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let predictions = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    assert_eq!(
        predictions.lines().count(),
        4,
        "a header and 3 rows: {predictions}"
    );
}

#[test]
fn graph_prints_text_and_dot() {
    let o = graphc(&["graph", "specs/iris.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("matmul") && text.contains("assign"), "{text}");
    let o = graphc(&["graph", "specs/iris.yaml", "--dot"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("digraph"));
}

#[test]
fn malformed_yaml_is_one_clear_error() {
    let dir = scratch(&[("spec.yaml", "data: {train: [unclosed\nmodel: 3\n")]);
    let o = graphc(&["train", dir.path().join("spec.yaml").to_str().unwrap()]);
    assert_clear_failure(&o, &["spec.yaml"]);
}

#[test]
fn unknown_key_names_key_and_position() {
    let spec = GOOD_SPEC.replace("batch_size: 2", "batch_size: 2, shufle: true");
    let dir = scratch(&[("spec.yaml", &spec), ("data.csv", "a,b,y\n1,2,3\n")]);
    let o = graphc(&["train", dir.path().join("spec.yaml").to_str().unwrap()]);
    assert_clear_failure(&o, &["spec.yaml:2:", "shufle", "shuffle"]);
}

#[test]
fn missing_csv_names_the_file() {
    let dir = scratch(&[("spec.yaml", GOOD_SPEC)]);
    let out = dir.path().join("out");
    let o = graphc(&[
        "train",
        dir.path().join("spec.yaml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clear_failure(&o, &["data.csv"]);
    assert!(!out.exists(), "no output for a run that never started");
}

#[test]
fn non_numeric_cell_names_line_and_column() {
    let dir = scratch(&[
        ("spec.yaml", GOOD_SPEC),
        ("data.csv", "a,b,y\n1,2,3\n4,five,6\n"),
    ]);
    let o = graphc(&["train", dir.path().join("spec.yaml").to_str().unwrap()]);
    assert_clear_failure(&o, &["line 3", "`b`", "five"]);
}

#[test]
fn class_index_out_of_range_names_the_line() {
    let spec = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 3}]}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
";
    let dir = scratch(&[("spec.yaml", spec), ("data.csv", "a,b,y\n1,2,0\n4,5,3\n")]);
    let o = graphc(&["train", dir.path().join("spec.yaml").to_str().unwrap()]);
    assert_clear_failure(&o, &["line 3", "class index 3"]);
}

#[test]
fn feature_count_mismatch_names_input_and_columns() {
    let spec = GOOD_SPEC.replace("input: [2]", "input: [3]");
    let dir = scratch(&[("spec.yaml", &spec), ("data.csv", "a,b,y\n1,2,3\n")]);
    let o = graphc(&["train", dir.path().join("spec.yaml").to_str().unwrap()]);
    assert_clear_failure(&o, &["model.input", "a, b"]);
}

#[test]
fn divergence_is_reported_with_its_step() {
    let spec = GOOD_SPEC.replace("lr: 0.1", "lr: 1.0e30");
    let dir = scratch(&[
        ("spec.yaml", &spec),
        ("data.csv", "a,b,y\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n"),
    ]);
    let out = dir.path().join("out");
    let o = graphc(&[
        "train",
        dir.path().join("spec.yaml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clear_failure(&o, &["diverged at step", "lr"]);
    assert!(
        !out.join("model.safetensors").exists(),
        "no model from a diverged run"
    );
}

#[test]
fn unknown_backend_lists_valid_ones() {
    let o = graphc(&["train", "specs/iris.yaml", "--backend", "gpu"]);
    assert_clear_failure(&o, &["gpu", "interp"]);
}

#[test]
fn bench_prints_one_json_line_with_rate_and_compile_time() {
    let o = graphc(&[
        "bench",
        "specs/iris.yaml",
        "--steps",
        "20",
        "--backend",
        "interp",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["backend"], "interp");
    assert_eq!(line["steps"], 20);
    assert!(line["steps_per_s"].as_f64().unwrap() > 0.0);
    assert!(line["compile_ms"].as_f64().unwrap() > 0.0);
    let rate = line["steps_per_s"].as_f64().unwrap();
    let step_us = line["step_us"].as_f64().unwrap();
    assert!(
        (rate * step_us / 1e6 - 1.0).abs() < 1e-6,
        "steps_per_s and step_us agree"
    );
}

#[test]
fn the_closing_line_reports_the_last_epochs_mean_loss_and_its_validation() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let spec = std::fs::read_to_string(repo().join("specs/iris.yaml"))
        .unwrap()
        .replace("  batch_size: 16", "  batch_size: 16\n  split: 0.2")
        .replace("epochs: 30", "epochs: 4")
        .replace(
            "data/iris.csv",
            &repo().join("specs/data/iris.csv").to_string_lossy(),
        );
    std::fs::write(out.path().join("iris.yaml"), spec).unwrap();
    let o = graphc_in(
        out.path(),
        &[
            "train",
            "iris.yaml",
            "--out",
            &format!("{dir}/run"),
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout).into_owned();
    let metrics = std::fs::read_to_string(out.path().join("run/metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last: Vec<f64> = lines
        .iter()
        .filter(|l| l["epoch"] == 4 && l.get("loss").is_some())
        .map(|l| l["loss"].as_f64().unwrap())
        .collect();
    // 120 training rows in batches of 16: 8 steps an epoch.
    assert_eq!(last.len(), 8);
    let mean = last.iter().sum::<f64>() / last.len() as f64;
    let valid = lines
        .iter()
        .rev()
        .find_map(|l| l["valid_loss"].as_f64())
        .unwrap();
    let expected = format!("epoch 4 mean loss {mean:.4}, valid loss {valid:.4} (accuracy ");
    assert!(summary.contains(&expected), "{summary} lacks {expected}");
    assert!(!summary.contains("final loss"), "{summary}");
}
