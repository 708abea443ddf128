//! Data-parallel training over MPI (`--features mpi`): `mpirun -n 2` and `-n 3` on the
//! PyTorch golden cases — losses of every family, optimizers and param groups, schedulers,
//! accumulation, clipping, shares of uneven size and partial last batches — give the
//! single-process numbers (per-step losses within relative 1e-5, final parameters within
//! 1e-4) and PyTorch's; only rank 0 writes the run directory; a failing rank ends every rank;
//! a binary built without the feature refuses to run as one of several ranks. Dropout cases
//! draw the single-process masks; batch norm (per-rank statistics) gives PyTorch DDP's
//! numbers, and with `train.sync_batch_norm` the single process's. Features left in their
//! `.npy` or CSV file, each rank reading its shares, give the same numbers; a bad CSV cell is
//! still one line naming the file, line and column.
//!
//! Skipped, saying so, when this binary was built without the feature. With it, `mpirun`
//! must be installed (`.ci/run` installs Open MPI).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graphc::stages::train::{read_state_dict, StateDict};
use serde_json::Value;

use crate::hostile::npy_header;
use crate::support::{assert_clear_failure, graphc_in, repo, scratch};

/// The golden cases the multi-rank runs replay: `(area, case)`.
const CASES: &[(&str, &str)] = &[
    // Accumulation, clipping by value and by the global norm, partial last batches.
    ("accumulate_clip", "accumulate_2_sum_reduction"),
    ("accumulate_clip", "accumulate_3_partial_last"),
    ("accumulate_clip", "accumulate_adam_clip_norm"),
    ("accumulate_clip", "accumulate_and_both_clips"),
    ("accumulate_clip", "clip_norm_2"),
    ("accumulate_clip", "clip_norm_inf"),
    // Loss families: weighted and ignored classes, probabilities, element means, batchmean.
    ("losses/training", "bce_with_logits_pos_weight"),
    ("losses/training", "cross_entropy_probabilities"),
    ("losses/training", "cross_entropy_smoothing_weight_ignore"),
    ("losses/training", "kl_div_batchmean"),
    ("losses/training", "mse_sum"),
    ("losses/training", "multi_margin_p2_weight"),
    ("losses/training", "nll_weight_ignore"),
    ("losses/training", "smooth_l1_beta"),
    // Optimizers and param groups.
    ("optimizers", "mlp_adam"),
    ("optimizers", "mlp_adam_param_groups_lr_betas"),
    ("optimizers", "mlp_sgd_groups_momentum"),
    ("optimizers", "regression_sgd_momentum_dampening"),
    // Schedulers, per step and on the validation loss.
    ("schedulers", "plateau_on_valid_loss"),
    ("schedulers", "warm_restarts_per_step"),
    // Dropout: masks by global sample index (shares of 3, 3 and 2 rows; of 4 and 4).
    ("norm_dropout", "dropout_mlp_p025_named"),
    ("norm_dropout", "dropout2d_conv2d_seed_above_2_32"),
];

/// Whether this binary can run data-parallel; prints why the test is skipped when not.
fn built_with_mpi(test: &str) -> bool {
    if cfg!(feature = "mpi") {
        return true;
    }
    eprintln!("{test}: skipped: graphc was built without the cargo feature `mpi`");
    false
}

/// `mpirun -n RANKS graphc ARGS` in `dir` (as root too, more ranks than cores allowed).
fn mpirun(dir: &Path, ranks: usize, args: &[&str]) -> Output {
    Command::new("mpirun")
        .args(["-n", &ranks.to_string(), "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_graphc"))
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .current_dir(dir)
        .output()
        .expect("mpirun runs (install Open MPI: apt-get install -y openmpi-bin)")
}

/// A finished run: its per-update losses and final `state_dict`.
struct Run {
    losses: Vec<f64>,
    state: StateDict,
}

fn read_run(out: &Path) -> Run {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics.jsonl");
    let losses = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .filter(|l| l.get("step").is_some())
        .map(|l| l["loss"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let state = read_state_dict(&out.join("model.safetensors")).expect("model.safetensors");
    Run { losses, state }
}

/// Trains `case` alone and on `ranks` ranks (JIT backend) in a new directory of `work`, both
/// with the `extra` arguments; returns both runs.
fn train_both(case: &Path, ranks: usize, work: &Path, extra: &[&str]) -> (Run, Run) {
    let spec = case.join("spec.yaml");
    let spec = spec.to_str().expect("UTF-8 path");
    let work = tempfile::tempdir_in(work).unwrap();
    let one = work.path().join("one");
    let many = work.path().join("many");
    let (one_out, many_out) = (one.to_str().unwrap(), many.to_str().unwrap());
    let mut one_args = vec!["train", spec, "--out", one_out, "--quiet"];
    let mut many_args = vec!["train", spec, "--out", many_out, "--quiet"];
    one_args.extend(extra);
    many_args.extend(extra);
    let o = graphc_in(work.path(), &one_args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = mpirun(work.path(), ranks, &many_args);
    assert!(
        o.status.success(),
        "{} on {ranks} ranks: {}",
        case.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    (read_run(&one), read_run(&many))
}

fn close(a: f64, e: f64, relative: f64, absolute: f64) -> bool {
    (a - e).abs() <= absolute + relative * e.abs()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// Every difference of `many` (the run on several ranks) from `one` (alone) and from the
/// PyTorch golden `case`'s losses and final tensors beyond the tolerances; counters
/// (`num_batches_tracked`) exactly.
fn differences(what: &str, case: &Path, one: &Run, many: &Run) -> Vec<String> {
    let mut wrong = Vec::new();
    let text = std::fs::read_to_string(case.join("expected.json")).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    let torch = floats(&expected["losses"]);
    if many.losses.len() != one.losses.len() || many.losses.len() != torch.len() {
        wrong.push(format!(
            "{what}: {} steps, one process {}, PyTorch {}",
            many.losses.len(),
            one.losses.len(),
            torch.len()
        ));
        return wrong;
    }
    for (s, ((&m, &o), &t)) in many.losses.iter().zip(&one.losses).zip(&torch).enumerate() {
        if !close(m, o, 1e-5, 1e-7) || !close(m, t, 2e-5, 1e-6) {
            wrong.push(format!(
                "{what}: step {} loss {m} vs one process {o}, PyTorch {t}",
                s + 1
            ));
        }
    }
    if many.state.counters != one.state.counters {
        wrong.push(format!(
            "{what}: counters {:?} vs one process {:?}",
            many.state.counters, one.state.counters
        ));
    }
    for t in &many.state.tensors {
        let name = &t.name;
        let Some(single) = one.state.tensors.iter().find(|o| o.name == *name) else {
            wrong.push(format!(
                "{what}: {name} missing from the single-process run"
            ));
            continue;
        };
        // The loss cases keep PyTorch's losses only.
        let torch = match expected.get("final") {
            Some(finals) => floats(&finals[name]["data"]),
            None => single.data.iter().map(|&v| f64::from(v)).collect(),
        };
        if torch.len() != t.data.len() || single.data.len() != t.data.len() {
            wrong.push(format!("{what}: {name} has {} values", t.data.len()));
            continue;
        }
        for (k, ((&m, &o), &e)) in t.data.iter().zip(&single.data).zip(&torch).enumerate() {
            let (m, o) = (f64::from(m), f64::from(o));
            if !close(m, o, 1e-4, 1e-6) || !close(m, e, 1e-4, 1e-6) {
                wrong.push(format!(
                    "{what}: {name}[{k}] = {m} vs one process {o}, PyTorch {e}"
                ));
                break;
            }
        }
    }
    wrong
}

#[test]
fn mpirun_gives_the_single_process_and_pytorch_numbers() {
    if !built_with_mpi("mpirun_gives_the_single_process_and_pytorch_numbers") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for (i, (area, name)) in CASES.iter().enumerate() {
        let case: PathBuf = repo().join("tests/goldens").join(area).join(name);
        // Both rank counts on half the cases each keeps the test short; every case runs on 3
        // ranks or 2, and the uneven shares come from batch sizes 4, 8, 12 and 16 on 3 ranks.
        let ranks = if i % 2 == 0 { 3 } else { 2 };
        let (one, many) = train_both(&case, ranks, work.path(), &[]);
        let what = format!("{area}/{name} on {ranks} ranks");
        wrong.extend(differences(&what, &case, &one, &many));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn sync_batch_norm_on_ranks_gives_the_single_process_and_pytorch_numbers() {
    if !built_with_mpi("sync_batch_norm_on_ranks_gives_the_single_process_and_pytorch_numbers") {
        return;
    }
    // Statistics summed over ranks: one process's (PyTorch's) numbers. Shares of 2 and 2 of
    // the batches of 6 and of 3, 3 and 2 of those of 8; the last batch of 1 leaves two ranks
    // without samples.
    let work = tempfile::tempdir().unwrap();
    let sync = ["--set", "train.sync_batch_norm=true"];
    let mut wrong = Vec::new();
    for (name, ranks) in [
        ("bn2d_momentum_null_adam", 3),
        ("bn1d_channels_after_conv1d_last_batch_1", 3),
        ("bn1d_features_after_linear_named", 2),
    ] {
        let case = repo().join("tests/goldens/norm_dropout").join(name);
        let (one, many) = train_both(&case, ranks, work.path(), &sync);
        wrong.extend(differences(
            &format!("{name} on {ranks} ranks"),
            &case,
            &one,
            &many,
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn batch_norm_on_ranks_gives_pytorch_ddps_numbers() {
    if !built_with_mpi("batch_norm_on_ranks_gives_pytorch_ddps_numbers") {
        return;
    }
    // `tools/goldens/ddp_batch_norm.py`: DDP over gloo with each rank's own batch statistics
    // and rank 0's running statistics, which only rank 0 writes here too.
    let work = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for name in ["ddp_bn1d_2_ranks", "ddp_bn2d_momentum_null_3_ranks"] {
        let case = repo().join("tests/goldens/data_parallel").join(name);
        let text = std::fs::read_to_string(case.join("expected.json")).unwrap();
        let expected: Value = serde_json::from_str(&text).unwrap();
        let ranks = expected["ranks"].as_u64().unwrap() as usize;
        let out = work.path().join(name);
        let spec = case.join("spec.yaml");
        let o = mpirun(
            work.path(),
            ranks,
            &[
                "train",
                spec.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--quiet",
            ],
        );
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let run = read_run(&out);
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let valid: Vec<f64> = metrics
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
            .filter_map(|l| l.get("valid_loss").and_then(Value::as_f64))
            .collect();
        let pairs = [
            ("loss", run.losses.clone(), floats(&expected["losses"])),
            ("valid_loss", valid, floats(&expected["valid_losses"])),
        ];
        for (what, ours, torch) in pairs {
            let same = ours.len() == torch.len()
                && ours
                    .iter()
                    .zip(&torch)
                    .all(|(&a, &e)| close(a, e, 2e-5, 1e-6));
            if !same {
                wrong.push(format!("{name}: {what} {ours:?} vs PyTorch {torch:?}"));
            }
        }
        for t in &run.state.tensors {
            let torch = floats(&expected["final"][&t.name]["data"]);
            let ours = t.data.iter().map(|&v| f64::from(v));
            if torch.len() != t.data.len()
                || !ours.zip(&torch).all(|(a, &e)| close(a, e, 1e-4, 1e-6))
            {
                wrong.push(format!(
                    "{name}: {} {:?} vs PyTorch {torch:?}",
                    t.name, t.data
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const SPEC: &str = "data: {train: {csv: data.csv, target: y}, batch_size: 4}\n\
                    model: {input: [2], layers: [{type: linear, out: 1}]}\n\
                    loss: {type: mse}\noptimizer: {type: sgd, lr: 0.1}\ntrain: {epochs: 2}\n";

const DATA: &str = "a,b,y\n1,2,3\n2,1,3\n0,1,1\n1,0,1\n3,1,4\n1,3,4\n2,2,4\n";

#[test]
fn only_rank_0_writes_and_a_checkpoint_resumes_on_another_rank_count() {
    if !built_with_mpi("only_rank_0_writes_and_a_checkpoint_resumes_on_another_rank_count") {
        return;
    }
    let dir = scratch(&[("spec.yaml", SPEC), ("data.csv", DATA)]);
    let o = mpirun(
        dir.path(),
        3,
        &["train", "spec.yaml", "--out", "out", "--quiet"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        printed.lines().count(),
        1,
        "rank 0 alone reports: {printed}"
    );
    let whole = read_run(&dir.path().join("out"));
    // Train one epoch alone, then resume the second on 2 ranks: the same numbers.
    let spec_one = SPEC.replace("epochs: 2", "epochs: 1");
    std::fs::write(dir.path().join("one.yaml"), spec_one).unwrap();
    let o = graphc_in(
        dir.path(),
        &["train", "one.yaml", "--out", "split", "--quiet"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = mpirun(
        dir.path(),
        2,
        &[
            "train",
            "spec.yaml",
            "--resume",
            "split/checkpoint",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let resumed = read_run(&dir.path().join("split"));
    assert_eq!(resumed.losses.len(), whole.losses.len());
    for (a, b) in resumed.losses.iter().zip(&whole.losses) {
        assert!(close(*a, *b, 1e-5, 1e-7), "{a} vs {b}");
    }
}

#[test]
fn a_failing_rank_ends_every_rank_with_its_message() {
    if !built_with_mpi("a_failing_rank_ends_every_rank_with_its_message") {
        return;
    }
    // Divergence: every rank sees the summed loss become infinite at the same step.
    let spec = SPEC.replace("lr: 0.1", "lr: 1.0e30");
    let dir = scratch(&[("spec.yaml", &spec), ("data.csv", DATA)]);
    let o = mpirun(
        dir.path(),
        2,
        &["train", "spec.yaml", "--out", "out", "--quiet"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("training diverged"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !dir.path().join("out/model.safetensors").exists(),
        "no model from a failed run"
    );
}

#[test]
fn a_binary_without_the_feature_refuses_to_be_one_of_several_ranks() {
    if cfg!(feature = "mpi") {
        eprintln!("a_binary_without_the_feature_refuses_to_be_one_of_several_ranks: skipped: this binary has the feature `mpi`");
        return;
    }
    let dir = scratch(&[("spec.yaml", SPEC), ("data.csv", DATA)]);
    // What `mpirun -n 2` (Open MPI) and `srun` (PMI) put in every rank's environment.
    for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
        let o = Command::new(env!("CARGO_BIN_EXE_graphc"))
            .args(["train", "spec.yaml", "--out", "out", "--quiet"])
            .env(key, "2")
            .current_dir(dir.path())
            .output()
            .expect("graphc runs");
        assert_clear_failure(&o, &["one of 2 MPI ranks", "--features mpi"]);
        assert!(!dir.path().join("out").exists(), "nothing written");
    }
}

#[test]
fn npy_features_read_by_each_rank_from_the_file_give_the_single_process_numbers() {
    if !built_with_mpi(
        "npy_features_read_by_each_rank_from_the_file_give_the_single_process_numbers",
    ) {
        return;
    }
    // Each rank reads its shares of the shuffled batches and of the validation rows from
    // `x.npy`; the statistics of `standardize` come from a streaming pass.
    let n = 45;
    let mut x = npy_header(&format!("({n}, 5)"));
    x.extend((0..n * 5).flat_map(|i| (((i * 37 % 101) as f32) * 0.25 - 3.0).to_le_bytes()));
    let mut y = npy_header(&format!("({n},)"));
    y.extend((0..n).flat_map(|i| ((i % 3) as f32).to_le_bytes()));
    let spec = shuffled_split_spec("{npy: {features: x.npy, target: y.npy}}", 5);
    let dir = scratch(&[("spec.yaml", &spec)]);
    std::fs::write(dir.path().join("x.npy"), x).unwrap();
    std::fs::write(dir.path().join("y.npy"), y).unwrap();
    let (one, many) = train_both(dir.path(), 2, dir.path(), &[]);
    assert_same_numbers(&one, &many);
}

/// The file-backed cases' spec: `train` as the training source of `input` features, 3
/// classes, shuffled batches of 8, standardized, a fifth held out.
fn shuffled_split_spec(train: &str, input: usize) -> String {
    format!(
        "seed: 5
data:
  train: {train}
  batch_size: 8
  shuffle: true
  standardize: true
  split: 0.2
model: {{input: [{input}], layers: [{{type: linear, out: 6}}, {{type: tanh}}, {{type: linear, out: 3}}]}}
loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1, momentum: 0.9}}
train: {{epochs: 3}}
"
    )
}

/// Asserts that `many` (a run on several ranks) has `one`'s (alone) per-step losses (relative
/// 1e-5) and final tensors (1e-4).
#[track_caller]
fn assert_same_numbers(one: &Run, many: &Run) {
    assert_eq!(one.losses.len(), many.losses.len());
    for (a, e) in many.losses.iter().zip(&one.losses) {
        assert!(close(*a, *e, 1e-5, 1e-7), "loss {a} vs {e} alone");
    }
    assert_eq!(one.state.tensors.len(), many.state.tensors.len());
    for (m, t) in many.state.tensors.iter().zip(&one.state.tensors) {
        assert_eq!((&m.name, m.data.len()), (&t.name, t.data.len()));
        for (a, e) in m.data.iter().zip(&t.data) {
            let name = &t.name;
            assert!(
                close(f64::from(*a), f64::from(*e), 1e-4, 1e-6),
                "{name}: {a} vs {e}"
            );
        }
    }
}

/// A CSV of `n` rows: 4 features (some cells quoted or padded, a blank line now and then) and
/// text labels of 3 classes, one needing quotes.
fn labelled_csv(n: usize) -> String {
    let mut text = String::from("f0,f1,\"f2\",f3,label\n");
    for i in 0..n {
        let f = |j: usize| ((i * 37 + j * 11) % 101) as f32 * 0.25 - 3.0 + j as f32 * 4.0;
        let label = ["ant", "\"bee, tiny\"", "cow"][i % 3];
        text.push_str(&format!(
            "{},\"{}\", {} ,{:e},{label}\n",
            f(0),
            f(1),
            f(2),
            f(3)
        ));
        if i % 10 == 3 {
            text.push('\n');
        }
    }
    text
}

#[test]
fn csv_features_read_by_each_rank_from_the_file_give_the_single_process_numbers() {
    if !built_with_mpi(
        "csv_features_read_by_each_rank_from_the_file_give_the_single_process_numbers",
    ) {
        return;
    }
    // Each of 3 ranks reads its shares (3, 3 and 2 rows) of the shuffled batches and of the
    // validation rows from `d.csv`; `standardize` is fitted in streaming passes.
    let spec = shuffled_split_spec("{csv: d.csv, target: label}", 4);
    let dir = scratch(&[("spec.yaml", &spec), ("d.csv", &labelled_csv(45))]);
    let (one, many) = train_both(dir.path(), 3, dir.path(), &[]);
    assert_same_numbers(&one, &many);
}

#[test]
fn a_bad_csv_cell_on_ranks_is_one_line_naming_file_line_and_column() {
    if !built_with_mpi("a_bad_csv_cell_on_ranks_is_one_line_naming_file_line_and_column") {
        return;
    }
    let spec = "data: {train: {csv: d.csv, target: label}, batch_size: 8}
model: {input: [4], layers: [{type: linear, out: 3}]}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
";
    let csv = labelled_csv(30).replacen(" 10.5 ", " twelve ", 1);
    assert!(csv.contains("twelve"), "the bad cell is in the data");
    let dir = scratch(&[("spec.yaml", spec), ("d.csv", &csv)]);
    let o = mpirun(
        dir.path(),
        2,
        &["train", "spec.yaml", "--out", "out", "--quiet"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    let line = csv
        .lines()
        .filter(|l| !l.is_empty())
        .position(|l| l.contains("twelve"))
        .unwrap()
        + 1;
    let wanted = format!("d.csv` line {line}, column `f2`: `twelve` is not a number");
    let first = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(first.contains(&wanted), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing written");
}
