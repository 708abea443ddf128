//! docs/tutorial.md as a test: every `$ graphc` line of the page runs as written (in a scratch
//! copy of `specs/`), and its numbers agree with PyTorch's — each `graphc loss` line's value
//! with `tests/goldens/tutorial/losses.json` (`tools/goldens/tutorial_losses.py`), the
//! per-step losses and values of `x` with `tests/goldens/objectives/*`
//! (`tools/goldens/objectives.py`), the sweep's final losses and best run with `sweep.json` —
//! and the outputs and sweep tables the page shows are what the commands printed and wrote.

use std::path::Path;

use serde_json::Value;

use crate::support::{graphc_in, repo};

/// The `$ graphc ...` lines of the page, split into arguments (single quotes group, as a
/// shell would read them).
fn commands(doc: &str) -> Vec<Vec<String>> {
    doc.lines()
        .filter_map(|l| l.strip_prefix("$ graphc "))
        .map(|line| {
            let mut args = Vec::new();
            let (mut arg, mut quoted, mut any) = (String::new(), false, false);
            for c in line.chars() {
                match c {
                    '\'' => (quoted, any) = (!quoted, true),
                    ' ' if !quoted => {
                        if any {
                            args.push(std::mem::take(&mut arg));
                        }
                        any = false;
                    }
                    c => {
                        arg.push(c);
                        any = true;
                    }
                }
            }
            if any {
                args.push(arg);
            }
            args
        })
        .collect()
}

/// Arguments as the page writes them: those with brackets or spaces in single quotes.
fn quoted(args: &[String]) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(['[', ' ', '(']) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect();
    shown.join(" ")
}

/// The text of the code block right after the line that names `file` (the sweep tables).
fn block_after(doc: &str, file: &str) -> String {
    let at = doc
        .find(&format!("`{file}`:"))
        .expect("the page shows the file");
    let rest = &doc[at..];
    let start = rest.find("```text\n").expect("a text block") + "```text\n".len();
    let end = rest[start..].find("```").expect("a closed block");
    rest[start..start + end].to_owned()
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// `key` of every line of a run's `metrics.jsonl`.
fn series(run: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()[key]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The run's losses and `x` agree with the golden case's first steps (a run may be longer).
#[track_caller]
fn assert_matches_golden(run: &Path, case: &str) {
    let golden = json(
        &repo()
            .join("tests/goldens/objectives")
            .join(case)
            .join("expected.json"),
    );
    for (key, want) in [("loss", &golden["losses"]), ("x", &golden["values"]["x"])] {
        let want = floats(want);
        let got = series(run, key);
        assert!(got.len() >= want.len(), "{run:?}: {} steps", got.len());
        for (step, (g, w)) in got.iter().zip(&want).enumerate() {
            let close = (g - w).abs() <= 1e-6 + 2e-5 * w.abs();
            assert!(close, "{run:?} step {}: {key} {g}, PyTorch {w}", step + 1);
        }
    }
}

#[test]
fn every_command_of_the_tutorial_runs_and_gives_pytorchs_numbers() {
    let doc = std::fs::read_to_string(repo().join("docs/tutorial.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    for sub in ["tutorial", "data"] {
        std::fs::create_dir_all(specs.join(sub)).unwrap();
        for entry in std::fs::read_dir(repo().join("specs").join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, specs.join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(repo().join("specs/iris.yaml"), specs.join("iris.yaml")).unwrap();

    let commands = commands(&doc);
    let losses = json(&repo().join("tests/goldens/tutorial/losses.json"));
    let losses = losses.as_array().unwrap();
    let (loss_commands, commands): (Vec<_>, Vec<_>) =
        commands.into_iter().partition(|c| c[0] == "loss");
    assert_eq!(loss_commands.len(), losses.len(), "{loss_commands:?}");
    for (args, golden) in loss_commands.iter().zip(losses) {
        // The page shows the commands the goldens were made for.
        let shown = format!("graphc {}", quoted(args));
        assert_eq!(shown, golden["command"].as_str().unwrap());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = graphc_in(dir.path(), &args);
        assert!(
            o.status.success(),
            "{shown}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        let (got, want) = match &golden["expected"] {
            Value::Array(_) => (floats(&got), floats(&golden["expected"])),
            v => (vec![got.as_f64().unwrap()], vec![v.as_f64().unwrap()]),
        };
        assert_eq!(got.len(), want.len(), "{shown}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
                "{shown}: {g}, PyTorch {w}"
            );
        }
        // And prints what the page shows after it.
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            doc.contains(&format!("$ {shown}\n{}", text)),
            "{shown}: {text}"
        );
    }
    assert_eq!(commands.len(), 6, "{commands:?}");
    let mut sweep_best = Vec::new();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = graphc_in(dir.path(), &args);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "graphc {}: {}{stdout}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
        if args[0] == "sweep" {
            sweep_best.push(stdout.lines().last().unwrap_or_default().to_owned());
        }
    }
    let runs = dir.path().join("runs");
    assert_matches_golden(&runs.join("lr-1"), "quadratic_lr_1_diverges");
    assert_matches_golden(&runs.join("lr-0.01"), "quadratic_lr_0.01_crawls");
    // The momentum sweep varies momentum slowest: run-2 and run-3 are momentum 0.9.
    assert_matches_golden(&runs.join("momentum/run-0"), "quadratic_lr_0.01_crawls");
    assert_matches_golden(
        &runs.join("momentum/run-2"),
        "quadratic_momentum_0.9_lr_0.01",
    );
    assert_matches_golden(
        &runs.join("momentum/run-3"),
        "quadratic_momentum_0.9_lr_0.03",
    );

    let golden = json(&repo().join("tests/goldens/objectives/sweep.json"));
    let csv = std::fs::read_to_string(runs.join("lr-sweep/sweep.csv")).unwrap();
    let finals: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let want = floats(&golden["final_losses"]);
    assert_eq!(finals.len(), want.len());
    for (i, (g, w)) in finals.iter().zip(&want).enumerate() {
        // Losses this small are products of many roundings: relative 1e-4.
        assert!(
            (g - w).abs() <= 1e-4 * w.abs(),
            "run {i}: {g} vs PyTorch {w}"
        );
    }
    let best = golden["best"].as_u64().unwrap();
    assert!(
        sweep_best[0].starts_with(&format!("best: runs/lr-sweep/run-{best} ")),
        "{}",
        sweep_best[0]
    );
    // The tables on the page are the files the sweeps wrote.
    for file in ["runs/lr-sweep/sweep.csv", "runs/momentum/sweep.csv"] {
        let written = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(block_after(&doc, file), written, "{file}");
    }
    assert!(runs.join("ewa.svg").exists());
}
