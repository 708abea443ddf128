//! Issue 15's daily path through the `graphc` binary: a PyTorch-trained `state_dict`
//! evaluated and predicted without hand-written files, `predict --proba`, early stopping with
//! `keep_best` (and its resume), `split.json` reused, and the resume warning for an edited
//! hyperparameter.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::{assert_clear_failure, graphc_in, repo};

fn ok(o: &Output) -> (String, String) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    (String::from_utf8_lossy(&o.stdout).into_owned(), err)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    dir.join(name).to_str().unwrap().to_owned()
}

/// The spec PyTorch's model of `tests/goldens/pytorch_model/` was trained from, as graphc
/// writes it: iris, its text labels, standardized with the sample std, the fixture as
/// `model.init.from`.
fn pytorch_spec(dir: &Path) -> String {
    let golden = repo().join("tests/goldens/pytorch_model");
    write(
        dir,
        "iris.yaml",
        &format!(
            "data:
  train: {{csv: {}, target: species}}
  standardize: {{std: sample}}
model:
  input: [4]
  layers: [{{type: linear, out: 8}}, {{type: relu}}, {{type: linear, out: 3}}]
  init: {{from: {}}}
loss: {{type: cross_entropy}}
optimizer: {{type: adam, lr: 0.01}}
train: {{epochs: 1}}
",
            repo().join("specs/data/iris.csv").display(),
            golden.join("model.safetensors").display()
        ),
    )
}

#[test]
fn a_pytorch_state_dict_is_predicted_with_probabilities_without_hand_written_files() {
    let dir = tempfile::tempdir().unwrap();
    let spec = pytorch_spec(dir.path());
    let golden = repo().join("tests/goldens/pytorch_model");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(golden.join("expected.json")).unwrap())
            .unwrap();
    let iris = repo().join("specs/data/iris.csv");
    let weights = golden.join("model.safetensors");
    let args = [
        "predict",
        &spec,
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        iris.to_str().unwrap(),
        "--proba",
    ];
    let (stdout, stderr) = ok(&graphc_in(dir.path(), &args));
    assert_eq!(
        stderr.lines().next().unwrap_or(""),
        format!(
            "no standardize.json beside the weights: standardizing with the sample std statistics of the spec's training data `{}`",
            iris.display()
        ),
        "{stderr}"
    );
    let mut lines = stdout.lines();
    let names: Vec<&str> = expected["class_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        lines.next().unwrap(),
        names.join(","),
        "class names head the columns"
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 150);
    for row in &rows {
        let sum: f64 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "a softmax row sums to 1: {row:?}");
    }
    for (i, want) in expected["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (c, p) in want.as_array().unwrap().iter().enumerate() {
            let p = p.as_f64().unwrap();
            assert!(
                (rows[i][c] - p).abs() < 1e-5,
                "row {i} class {c}: graphc {} PyTorch {p}",
                rows[i][c]
            );
        }
    }
    // Without --weights, model.init.from; the class names come from the data.
    let args = ["predict", &spec, "--data", iris.to_str().unwrap()];
    let (stdout, _) = ok(&graphc_in(dir.path(), &args));
    assert_eq!(stdout.lines().nth(1), Some("setosa"), "{stdout}");
    let (stdout, _) = ok(&graphc_in(dir.path(), &["eval", &spec]));
    assert!(
        stdout.starts_with("loss ") && stdout.contains("on the training set (150 samples)"),
        "{stdout}"
    );
}

#[test]
fn proba_of_a_sigmoid_model_and_of_a_regression_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "d.csv", "a,b,y\n1,0,1\n0,1,0\n1,1,1\n0,0,0\n");
    let spec = |loss: &str| {
        format!(
            "data: {{train: {{csv: d.csv, target: y}}, batch_size: 2}}\n\
             model: {{input: [2], layers: [{{type: linear, out: 1}}]}}\n\
             loss: {{type: {loss}}}\noptimizer: {{type: sgd, lr: 0.1}}\ntrain: {{epochs: 2}}\n"
        )
    };
    let bce = write(dir.path(), "bce.yaml", &spec("bce_with_logits"));
    ok(&graphc_in(dir.path(), &["train", &bce, "--out", "bce"]));
    let args = [
        "predict",
        &bce,
        "--weights",
        "bce",
        "--data",
        &data,
        "--proba",
    ];
    let (stdout, _) = ok(&graphc_in(dir.path(), &args));
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("y"));
    for line in lines {
        let p: f64 = line.parse().unwrap();
        assert!(p > 0.0 && p < 1.0, "a sigmoid: {line}");
    }
    let mse = write(dir.path(), "mse.yaml", &spec("mse"));
    ok(&graphc_in(dir.path(), &["train", &mse, "--out", "mse"]));
    let args = [
        "predict",
        &mse,
        "--weights",
        "mse",
        "--data",
        &data,
        "--proba",
    ];
    assert_clear_failure(
        &graphc_in(dir.path(), &args),
        &["--proba needs a classification loss, and the spec's loss mse is a regression loss"],
    );
}

/// Train rows say y = x, validation rows y = -x: fitting the one makes the other worse.
fn diverging_data(dir: &Path) {
    let mut train = String::from("x,y\n");
    let mut valid = String::from("x,y\n");
    for i in 0..16 {
        let x = f64::from(i) / 8.0 - 1.0;
        train += &format!("{x},{x}\n");
        valid += &format!("{x},{}\n", -x);
    }
    write(dir, "train.csv", &train);
    write(dir, "valid.csv", &valid);
}

fn stopping_spec(dir: &Path, epochs: u32) -> String {
    write(
        dir,
        &format!("stop-{epochs}.yaml"),
        &format!(
            "seed: 1
data: {{train: {{csv: train.csv, target: y}}, valid: {{csv: valid.csv, target: y}}, batch_size: 4}}
model: {{input: [1], layers: [{{type: linear, out: 1}}]}}
loss: {{type: mse}}
optimizer: {{type: sgd, lr: 0.05}}
train: {{epochs: {epochs}, early_stopping: {{monitor: valid_loss, patience: 2, min_delta: 0.001}}, keep_best: true}}
"
        ),
    )
}

/// Each epoch's `valid_loss` from `metrics.jsonl`.
fn valid_losses(run: &Path) -> Vec<f32> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).unwrap()["valid_loss"].as_f64())
        .map(|v| v as f32)
        .collect()
}

#[test]
fn early_stopping_ends_a_run_whose_validation_loss_rises_and_keeps_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    diverging_data(dir.path());
    let spec = stopping_spec(dir.path(), 100);
    let (stdout, _) = ok(&graphc_in(dir.path(), &["train", &spec, "--out", "run"]));
    let run = dir.path().join("run");
    let losses = valid_losses(&run);
    // Lightning's rule, recomputed: improve by more than min_delta, else wait; stop at patience.
    let (mut best, mut best_epoch, mut wait, mut stop) = (f32::INFINITY, 0, 0, None);
    for (i, &v) in losses.iter().enumerate() {
        if v + 0.001 < best {
            (best, best_epoch, wait) = (v, i + 1, 0);
        } else {
            wait += 1;
            if wait >= 2 {
                stop = Some(i + 1);
                break;
            }
        }
    }
    let stop = stop.expect("the validation loss rises, so the run stops early");
    assert_eq!(losses.len(), stop, "no epoch after the stop: {losses:?}");
    assert!(stop < 100);
    assert!(
        stdout.contains(&format!(
            "; stopped: early stopping after epoch {stop} (best valid_loss {best:.4} at epoch {best_epoch})"
        )),
        "{stdout}"
    );
    let bytes = std::fs::read(run.join("best.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["epoch"], best_epoch.to_string());
    assert_eq!(meta["monitor"], "valid_loss");
    assert_eq!(meta["value"].parse::<f32>().unwrap(), best);
    // The best weights give the best validation loss again.
    let (stdout, _) = ok(&graphc_in(
        dir.path(),
        &["eval", &spec, "--weights", "run/best.safetensors"],
    ));
    assert!(
        stdout.starts_with(&format!("loss {best:.6}")),
        "{stdout} vs {best}"
    );
}

#[test]
fn early_stopping_resumes_with_its_counters_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    diverging_data(dir.path());
    let full = stopping_spec(dir.path(), 100);
    ok(&graphc_in(dir.path(), &["train", &full, "--out", "whole"]));
    let short = stopping_spec(dir.path(), 2);
    ok(&graphc_in(dir.path(), &["train", &short, "--out", "part"]));
    let args = [
        "train",
        &full,
        "--out",
        "part",
        "--resume",
        "part/checkpoint",
    ];
    ok(&graphc_in(dir.path(), &args));
    for file in ["model.safetensors", "best.safetensors", "metrics.jsonl"] {
        assert_eq!(
            std::fs::read(dir.path().join("whole").join(file)).unwrap(),
            std::fs::read(dir.path().join("part").join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn split_json_records_the_held_out_rows_and_a_spec_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let iris = repo().join("specs/data/iris.csv");
    let spec = |split: &str| {
        format!(
            "data: {{train: {{csv: {}, target: species}}, split: {split}, batch_size: 16}}\n\
             model: {{input: [4], layers: [{{type: linear, out: 3}}]}}\n\
             loss: {{type: cross_entropy}}\noptimizer: {{type: sgd, lr: 0.1}}\ntrain: {{epochs: 2}}\n",
            iris.display()
        )
    };
    let drawn = write(dir.path(), "drawn.yaml", &spec("{fraction: 0.2, seed: 5}"));
    ok(&graphc_in(dir.path(), &["train", &drawn, "--out", "a"]));
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("a/split.json")).unwrap())
            .unwrap();
    assert_eq!(record["samples"], 150);
    assert_eq!(record["seed"], 5);
    assert_eq!(record["fraction"], 0.2);
    let rows = record["valid_rows"].as_array().unwrap();
    assert_eq!(rows.len(), 30);
    let reused = write(dir.path(), "reused.yaml", &spec("{file: a/split.json}"));
    ok(&graphc_in(dir.path(), &["train", &reused, "--out", "b"]));
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("b/split.json")).unwrap())
            .unwrap();
    assert_eq!(
        again["valid_rows"], record["valid_rows"],
        "the same held-out rows"
    );
    assert_eq!(again["file"], "a/split.json");
    // The same validation set: the same model evaluates the same on both.
    let eval = |spec: &str| ok(&graphc_in(dir.path(), &["eval", spec, "--weights", "a"])).0;
    assert_eq!(eval(&drawn), eval(&reused));
    write(dir.path(), "bad.json", "{\"valid_rows\": [3, 3]}");
    let bad = write(dir.path(), "bad.yaml", &spec("{file: bad.json}"));
    let o = graphc_in(dir.path(), &["train", &bad, "--out", "c"]);
    assert_clear_failure(&o, &["bad.json`: row 3 is listed twice"]);
}

#[test]
fn a_resume_with_an_edited_learning_rate_warns_and_keeps_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    diverging_data(dir.path());
    let spec = |lr: &str, epochs: u32| {
        format!(
            "data: {{train: {{csv: train.csv, target: y}}, batch_size: 4}}\n\
             model: {{input: [1], layers: [{{type: linear, out: 1}}]}}\n\
             loss: {{type: mse}}\noptimizer: {{type: sgd, lr: {lr}, weight_decay: 0.01}}\n\
             train: {{epochs: {epochs}}}\n"
        )
    };
    let first = write(dir.path(), "first.yaml", &spec("0.05", 1));
    ok(&graphc_in(dir.path(), &["train", &first, "--out", "run"]));
    let edited = write(
        dir.path(),
        "edited.yaml",
        &spec("0.1", 2).replace("weight_decay: 0.01", "weight_decay: 0.02"),
    );
    let args = [
        "train",
        &edited,
        "--out",
        "run",
        "--resume",
        "run/checkpoint",
    ];
    let (_, stderr) = ok(&graphc_in(dir.path(), &args));
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: resuming with optimizer.lr 0.05 from the checkpoint, not the spec's 0.1: a resumed optimizer keeps its saved hyperparameters, as PyTorch's load_state_dict does",
            "warning: resuming with optimizer.weight_decay 0.01 from the checkpoint, not the spec's 0.02: a resumed optimizer keeps its saved hyperparameters, as PyTorch's load_state_dict does",
        ],
        "{stderr}"
    );
}

/// The README's `cargo run --release -p graphc-cli -- ...` commands, run as written (in a
/// copy of `specs/`, where they write `runs/`): each succeeds, and its eval example checks
/// the validation set, as the text around it says.
#[test]
fn the_readmes_commands_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(specs.join("data")).unwrap();
    for name in [
        "iris.yaml",
        "digits_cnn.yaml",
        "wine_resmlp.yaml",
        "data/iris.csv",
        "data/digits.csv",
        "data/wine.csv",
    ] {
        std::fs::copy(repo().join("specs").join(name), specs.join(name)).unwrap();
    }
    // The README's `printf ... > new.csv`.
    write(
        dir.path(),
        "new.csv",
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
    );
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let prefix = "cargo run --release -p graphc-cli -- ";
    let commands: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect();
    assert!(commands.len() >= 5, "{commands:?}");
    let mut outputs = Vec::new();
    for command in &commands {
        let args: Vec<&str> = command.split_whitespace().collect();
        let (stdout, _) = ok(&graphc_in(dir.path(), &args));
        outputs.push((command.to_owned(), stdout));
    }
    let eval = outputs
        .iter()
        .find(|(c, _)| c.starts_with("eval "))
        .expect("an eval example");
    assert!(
        eval.1.contains("on the validation set (360 samples)"),
        "{eval:?}"
    );
    let proba = outputs
        .iter()
        .find(|(c, _)| c.contains("--proba"))
        .expect("a --proba example");
    assert!(
        proba.1.starts_with("setosa,versicolor,virginica\n"),
        "{proba:?}"
    );
}
