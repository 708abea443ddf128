//! Checkpoints and exact resume: a run stopped (at an epoch's end or inside an epoch) and
//! resumed from its `checkpoint/` ends with bitwise the parameters — and the same
//! `metrics.jsonl` — of a run never stopped, for every optimizer the spec accepts, with
//! shuffling and a scheduler on, on every backend. `Trainer::state_dict()` /
//! `load_state_dict()` do the same in memory, mid-accumulation too; a checkpoint that does
//! not fit the spec is an error naming what differs.

use std::path::{Path, PathBuf};

use graphc::{BackendKind, BatchTargets, RunOptions};

/// Every optimizer `type:` the spec accepts, read from the unknown-type message.
fn optimizer_types() -> Vec<String> {
    let text = spec("{type: no_such_optimizer}", "", "{epochs: 1}");
    let e = graphc::parse_str(&text, Path::new("x.yaml")).unwrap_err();
    let listing = e
        .message()
        .split("valid: ")
        .nth(1)
        .expect("the message lists the valid types");
    let snake = listing.split(" (or ").next().unwrap();
    let types: Vec<String> = snake.split(", ").map(str::to_owned).collect();
    assert!(types.contains(&"sgd".to_owned()), "{types:?}");
    types
}

/// Settings that exercise each optimizer's state (momentum buffers, amsgrad maxima, ...).
fn optimizer_block(t: &str) -> String {
    match t {
        "sgd" => "{type: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.01}".into(),
        "rmsprop" => "{type: rmsprop, lr: 0.01, momentum: 0.5, centered: true}".into(),
        "adam" => "{type: adam, lr: 0.01, amsgrad: true}".into(),
        "adagrad" => {
            "{type: adagrad, lr: 0.05, initial_accumulator_value: 0.1, lr_decay: 0.01}".into()
        }
        other => format!("{{type: {other}, lr: 0.01}}"),
    }
}

fn spec(optimizer: &str, extra: &str, train: &str) -> String {
    format!(
        "seed: 7\n\
         data: {{train: {{csv: train.csv, target: label}}, batch_size: 4, shuffle: true}}\n\
         model:\n  input: [4]\n  layers: [{{type: linear, out: 6}}, {{type: tanh}}, {{type: linear, out: 3}}]\n\
         loss: {{type: cross_entropy}}\n\
         optimizer: {optimizer}\n{extra}\
         train: {train}\n"
    )
}

/// 30 rows (8 batches of 4, the last of 2), three classes, no randomness.
fn write_data(dir: &Path, valid: bool) {
    let mut text = String::from("f0,f1,f2,f3,label\n");
    for i in 0..30 {
        let x: Vec<f32> = (0..4)
            .map(|j| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let label = ((x[0] + 2.0 * x[1] - x[3]) * 1.5).rem_euclid(3.0) as i64;
        text += &format!("{},{},{},{},{label}\n", x[0], x[1], x[2], x[3]);
    }
    std::fs::write(dir.join("train.csv"), &text).unwrap();
    if valid {
        std::fs::write(dir.join("valid.csv"), &text).unwrap();
    }
}

struct Run {
    params: Vec<graphc::NamedTensor>,
    /// `model.safetensors` as written: parameters, buffers and counters.
    model: Vec<u8>,
    metrics: String,
}

fn run(dir: &Path, text: &str, out: &Path, resume: Option<&Path>, backend: BackendKind) -> Run {
    let spec_path = dir.join(format!("spec-{}.yaml", text.len()));
    std::fs::write(&spec_path, text).unwrap();
    let options = RunOptions {
        out_dir: out.to_path_buf(),
        backend: backend.backend(),
        quiet: true,
        overrides: Vec::new(),
    };
    let result = match resume {
        Some(c) => graphc::resume(&spec_path, options, c),
        None => graphc::train(&spec_path, options),
    };
    result.unwrap_or_else(|e| panic!("{}: {e}\n{text}", backend.name()));
    let model = out.join("model.safetensors");
    Run {
        params: graphc::stages::train::read_state_dict(&model)
            .unwrap()
            .tensors,
        model: std::fs::read(&model).unwrap(),
        metrics: std::fs::read_to_string(out.join("metrics.jsonl")).unwrap(),
    }
}

fn bits(params: &[graphc::NamedTensor]) -> Vec<(String, Vec<u32>)> {
    params
        .iter()
        .map(|p| (p.name.clone(), p.data.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// Stops after `stop` (a `train:` mapping), resumes with `full`, compares with `full` run
/// straight through.
fn check_resume(optimizer: &str, extra: &str, stop: &str, full: &str, valid: bool) {
    for &backend in BackendKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        write_data(dir.path(), valid);
        let whole = run(
            dir.path(),
            &spec(optimizer, extra, full),
            &dir.path().join("whole"),
            None,
            backend,
        );
        let parts = dir.path().join("parts");
        let first = run(
            dir.path(),
            &spec(optimizer, extra, stop),
            &parts,
            None,
            backend,
        );
        assert_ne!(
            bits(&first.params),
            bits(&whole.params),
            "{optimizer}: the stopped run must stop early"
        );
        let resumed = run(
            dir.path(),
            &spec(optimizer, extra, full),
            &parts,
            Some(&parts.join("checkpoint")),
            backend,
        );
        let what = format!(
            "{optimizer} {extra} stopped at {stop} on {}",
            backend.name()
        );
        assert_eq!(
            bits(&resumed.params),
            bits(&whole.params),
            "{what}: parameters"
        );
        if !valid {
            assert_eq!(resumed.metrics, whole.metrics, "{what}: metrics.jsonl");
        }
    }
}

#[test]
fn every_optimizer_resumed_inside_an_epoch_ends_bitwise_equal_to_an_uninterrupted_run() {
    let scheduler =
        "scheduler: {type: cosine_annealing_warm_restarts, T_0: 3, T_mult: 2, interval: step}\n";
    for t in optimizer_types() {
        check_resume(
            &optimizer_block(&t),
            scheduler,
            "{epochs: 3, steps: 11}",
            "{epochs: 3}",
            false,
        );
    }
}

#[test]
fn resuming_at_an_epoch_end_with_plateau_on_validation_and_accumulation_is_exact() {
    let extra =
        "scheduler: {type: reduce_lr_on_plateau, patience: 0, factor: 0.5, threshold: 0.5}\n";
    let sgd = "{type: sgd, lr: 0.1, momentum: 0.9}";
    let data = |s: String| {
        s.replace(
            "{csv: train.csv, target: label}",
            "{csv: train.csv, target: label}, valid: {csv: valid.csv, target: label}",
        )
    };
    for &backend in BackendKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        write_data(dir.path(), true);
        let full = "{epochs: 4, accumulate: 3, checkpoint_every: 1}";
        let whole = run(
            dir.path(),
            &data(spec(sgd, extra, full)),
            &dir.path().join("whole"),
            None,
            backend,
        );
        let parts = dir.path().join("parts");
        run(
            dir.path(),
            &data(spec(sgd, extra, "{epochs: 2, accumulate: 3}")),
            &parts,
            None,
            backend,
        );
        let resumed = run(
            dir.path(),
            &data(spec(sgd, extra, full)),
            &parts,
            Some(&parts.join("checkpoint")),
            backend,
        );
        assert_eq!(
            bits(&resumed.params),
            bits(&whole.params),
            "{}",
            backend.name()
        );
        assert_eq!(resumed.metrics, whole.metrics, "{}", backend.name());
        let lrs: Vec<f64> = whole
            .metrics
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64())
            .collect();
        assert!(
            lrs.first() != lrs.last(),
            "the plateau scheduler must reduce the lr in this run: {lrs:?}"
        );
    }
}

/// [`spec`] with a model of batch norm (the cumulative average, which reads
/// `num_batches_tracked`) and both dropouts, on the 4 features viewed as `[1, 2, 2]`.
fn norm_dropout_spec(train: &str) -> String {
    let text = spec("{type: sgd, lr: 0.05, momentum: 0.9}", "", train);
    let mlp =
        "input: [4]\n  layers: [{type: linear, out: 6}, {type: tanh}, {type: linear, out: 3}]";
    assert!(text.contains(mlp));
    text.replace(
        mlp,
        "input: [1, 2, 2]\n  layers: [{type: conv2d, out_channels: 3, kernel_size: 1}, \
         {type: batch_norm2d, momentum: null}, {type: relu}, {type: dropout2d, p: 0.3}, \
         {type: flatten}, {type: dropout, p: 0.2}, {type: linear, out: 3}]",
    )
}

#[test]
fn batch_norm_and_dropout_resume_bitwise_with_the_same_masks_and_counters() {
    // Inside an epoch; and inside an epoch with accumulation, where forwards outnumber updates
    // (updates after forwards 3, 6, 8 at the epoch's end, and 11: stopped after 11 forwards).
    let cases = [
        ("{epochs: 3, steps: 11}", "{epochs: 3}"),
        (
            "{epochs: 3, accumulate: 3, steps: 4}",
            "{epochs: 3, accumulate: 3}",
        ),
    ];
    for (stop, full) in cases {
        for &backend in BackendKind::ALL {
            let what = format!("stopped at {stop} on {}", backend.name());
            let dir = tempfile::tempdir().unwrap();
            write_data(dir.path(), false);
            let whole = run(
                dir.path(),
                &norm_dropout_spec(full),
                &dir.path().join("whole"),
                None,
                backend,
            );
            let parts = dir.path().join("parts");
            let first = run(dir.path(), &norm_dropout_spec(stop), &parts, None, backend);
            assert_ne!(first.model, whole.model, "{what}: the run must stop early");
            let stopped =
                graphc::stages::train::read_state_dict(&parts.join("model.safetensors")).unwrap();
            assert_eq!(
                stopped.counters[0].value, 11,
                "{what}: forwards before the stop"
            );
            let resumed = run(
                dir.path(),
                &norm_dropout_spec(full),
                &parts,
                Some(&parts.join("checkpoint")),
                backend,
            );
            // Byte for byte: parameters, running statistics and num_batches_tracked.
            assert!(
                resumed.model == whole.model,
                "{what}: model.safetensors differs"
            );
            assert_eq!(resumed.metrics, whole.metrics, "{what}: metrics.jsonl");
            let state =
                graphc::stages::train::read_state_dict(&parts.join("model.safetensors")).unwrap();
            // 30 rows in batches of 4: 8 forwards an epoch, 3 epochs.
            assert_eq!(state.counters.len(), 1, "{what}");
            assert_eq!(state.counters[0].name, "1.num_batches_tracked", "{what}");
            assert_eq!(state.counters[0].value, 24, "{what}");
        }
    }
}

#[test]
fn checkpoint_holds_pytorch_named_state_and_loop_position() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let text = spec(
        "{type: sgd, lr: 0.05, momentum: 0.9, param_groups: [{params: [\"0.*\"], lr: 0.01}]}",
        "scheduler: {type: step_lr, step_size: 1, gamma: 0.5}\n",
        "{epochs: 2, steps: 11}",
    );
    run(
        dir.path(),
        &text,
        &dir.path().join("out"),
        None,
        BackendKind::Interp,
    );
    let ckpt = dir.path().join("out/checkpoint");
    let mut names: Vec<String> =
        graphc::stages::train::read_safetensors(&ckpt.join("optimizer.safetensors"))
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "0.bias.momentum_buffer",
            "0.weight.momentum_buffer",
            "2.bias.momentum_buffer",
            "2.weight.momentum_buffer",
        ]
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("state.json")).unwrap()).unwrap();
    let opt = &state["optimizer"];
    assert_eq!(opt["type"], "sgd");
    assert_eq!(opt["step"], 11);
    assert_eq!(opt["defaults"]["lr"], 0.05);
    assert_eq!(
        opt["param_groups"][0]["params"],
        serde_json::json!(["0.weight", "0.bias"])
    );
    assert_eq!(
        opt["param_groups"][1]["params"],
        serde_json::json!(["2.weight", "2.bias"])
    );
    // One epoch of 8 batches done: step_lr halved both groups once.
    assert_eq!(opt["param_groups"][0]["lr"], 0.005);
    assert_eq!(opt["param_groups"][1]["lr"], 0.025);
    assert_eq!(opt["param_groups"][1]["initial_lr"], 0.05);
    assert_eq!(state["scheduler"]["type"], "step_lr");
    assert_eq!(state["scheduler"]["core"]["last_epoch"], 1);
    assert_eq!(state["progress"]["epoch"], 1);
    assert_eq!(state["progress"]["batch"], 3);
    assert_eq!(state["batch_order"]["seed"], 7);
    assert_eq!(state["batch_order"]["shuffle"], true);
    assert!(
        !dir.path().join("out").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".checkpoint")),
        "no temporary checkpoint is left behind"
    );
}

/// PyTorch's `load_state_dict` rule: a resumed optimizer keeps the checkpoint's
/// hyperparameters (runtime ones such as lr, and compiled ones such as dampening and
/// weight_decay), so a resume with an edited spec continues the original run bitwise.
#[test]
fn a_resume_with_edited_hyperparameters_keeps_the_checkpoints_values() {
    let original = "{type: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.01}";
    let edited = "{type: sgd, lr: 0.2, momentum: 0.5, weight_decay: 0.1, dampening: 0.5}";
    let backend = BackendKind::Interp;
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let whole = run(
        dir.path(),
        &spec(original, "", "{epochs: 3}"),
        &dir.path().join("whole"),
        None,
        backend,
    );
    let parts = dir.path().join("parts");
    run(
        dir.path(),
        &spec(original, "", "{epochs: 1}"),
        &parts,
        None,
        backend,
    );
    let resumed = run(
        dir.path(),
        &spec(edited, "", "{epochs: 3}"),
        &parts,
        Some(&parts.join("checkpoint")),
        backend,
    );
    assert_eq!(bits(&resumed.params), bits(&whole.params));
    assert_eq!(resumed.metrics, whole.metrics);
}

fn resume_error(changed: &str, from: &str, to: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let base = spec("{type: sgd, lr: 0.05, momentum: 0.9}", "", "{epochs: 1}");
    let out = dir.path().join("out");
    run(dir.path(), &base, &out, None, BackendKind::Interp);
    assert!(base.contains(from), "{from}");
    let spec_path = dir.path().join(format!("{changed}.yaml"));
    std::fs::write(&spec_path, base.replace(from, to)).unwrap();
    let e = graphc::resume(
        &spec_path,
        RunOptions {
            out_dir: out.clone(),
            backend: BackendKind::Interp.backend(),
            quiet: true,
            overrides: Vec::new(),
        },
        &out.join("checkpoint"),
    )
    .expect_err(changed);
    let message = e.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(message.starts_with("checkpoint `"), "{message}");
    message
}

#[test]
fn a_checkpoint_that_does_not_fit_the_spec_is_an_error_naming_the_difference() {
    let e = resume_error("shape", "out: 6", "out: 5");
    assert!(
        e.contains("tensor `0.weight` has shape [6, 4], the model needs [5, 4]"),
        "{e}"
    );
    let e = resume_error(
        "optimizer",
        "{type: sgd, lr: 0.05, momentum: 0.9}",
        "{type: adam}",
    );
    assert!(
        e.contains("written by the sgd optimizer, the spec's optimizer is adam"),
        "{e}"
    );
    let e = resume_error("batch", "batch_size: 4", "batch_size: 5");
    assert!(
        e.contains("data.batch_size is 4 in the checkpoint and 5 in the spec"),
        "{e}"
    );
    let e = resume_error(
        "scheduler",
        "\ntrain:",
        "\nscheduler: {type: exponential_lr, gamma: 0.9}\ntrain:",
    );
    assert!(
        e.contains("the spec has a exponential_lr scheduler and the checkpoint has none"),
        "{e}"
    );
}

#[test]
fn resuming_from_a_directory_without_a_checkpoint_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let spec_path: PathBuf = dir.path().join("spec.yaml");
    std::fs::write(&spec_path, spec("{type: sgd}", "", "{epochs: 1}")).unwrap();
    let e = graphc::resume(
        &spec_path,
        RunOptions {
            out_dir: dir.path().join("out"),
            backend: BackendKind::Interp.backend(),
            quiet: true,
            overrides: Vec::new(),
        },
        &dir.path().join("nowhere"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("there is no checkpoint here (no state.json)"),
        "{e}"
    );
}

/// The batches of one shuffled epoch, for stepping a trainer by hand.
fn batches(dir: &Path) -> Vec<(Vec<f32>, BatchTargets)> {
    let text = std::fs::read_to_string(dir.join("train.csv")).unwrap();
    let rows: Vec<Vec<f32>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    rows.chunks(4)
        .map(|c| {
            let x = c.iter().flat_map(|r| r[..4].to_vec()).collect();
            let y = BatchTargets::Classes(c.iter().map(|r| r[4] as i64).collect());
            (x, y)
        })
        .collect()
}

#[test]
fn state_dict_round_trip_mid_accumulation_continues_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), false);
    let text = spec(
        "{type: adam, lr: 0.01}",
        "scheduler: {type: one_cycle_lr, max_lr: 0.05, total_steps: 20}\n",
        "{epochs: 5, accumulate: 3, clip_grad_norm: 0.5}",
    );
    let spec = graphc::parse_str(&text, Path::new("x.yaml")).unwrap();
    let data = batches(dir.path());
    for &backend in BackendKind::ALL {
        let mut straight = graphc::compile(&spec, backend).unwrap();
        let mut first = graphc::compile(&spec, backend).unwrap();
        for (x, y) in &data[..5] {
            straight.step(x, y).unwrap();
            first.step(x, y).unwrap();
        }
        let saved = first.state_dict();
        assert_eq!(saved.optimizer.pending_batches, 2);
        assert_eq!(saved.optimizer.accumulated.len(), 4);
        assert_eq!(saved.optimizer.step, 1);
        let mut second = graphc::compile(&spec, backend).unwrap();
        second.load_state_dict(&saved).unwrap();
        assert_eq!(second.state_dict(), saved);
        for (x, y) in &data[5..] {
            let a = straight.step(x, y).unwrap();
            let b = second.step(x, y).unwrap();
            assert_eq!(a.to_bits(), b.to_bits());
        }
        assert_eq!(
            bits(&second.params()),
            bits(&straight.params()),
            "{}",
            backend.name()
        );
        assert_eq!(second.lrs(), straight.lrs());
    }
}

/// A frozen first layer (`requires_grad: false`) under SGD with weight decay: the checkpoint
/// holds no optimizer state for it, its group still lists it (as PyTorch's
/// `optimizer.state_dict()` does for parameters without a gradient), and a resumed run ends
/// bitwise equal to one never stopped, the frozen layer unchanged from its initial values.
#[test]
fn a_frozen_layer_resumes_bitwise_without_optimizer_state() {
    let frozen = |train: &str| {
        let text = spec(
            "{type: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.01}",
            "",
            train,
        );
        let layer = "{type: linear, out: 6}";
        assert!(text.contains(layer));
        text.replacen(layer, "{type: linear, out: 6, requires_grad: false}", 1)
    };
    let state = graphc::compile(
        &graphc::parse_str(&frozen("{epochs: 1}"), Path::new("x.yaml")).unwrap(),
        BackendKind::Interp,
    )
    .unwrap()
    .state_dict();
    let names: Vec<&str> = state
        .optimizer
        .state
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["2.weight.momentum_buffer", "2.bias.momentum_buffer"]
    );
    assert_eq!(
        state.optimizer.param_groups[0].params,
        ["0.weight", "0.bias", "2.weight", "2.bias"]
    );
    for &backend in BackendKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        write_data(dir.path(), false);
        let whole = run(
            dir.path(),
            &frozen("{epochs: 3}"),
            &dir.path().join("whole"),
            None,
            backend,
        );
        let parts = dir.path().join("parts");
        let first = run(
            dir.path(),
            &frozen("{epochs: 3, steps: 11}"),
            &parts,
            None,
            backend,
        );
        let what = format!("frozen first layer on {}", backend.name());
        assert_ne!(bits(&first.params), bits(&whole.params), "{what}");
        let resumed = run(
            dir.path(),
            &frozen("{epochs: 3}"),
            &parts,
            Some(&parts.join("checkpoint")),
            backend,
        );
        assert_eq!(bits(&resumed.params), bits(&whole.params), "{what}");
        assert_eq!(resumed.metrics, whole.metrics, "{what}");
        // The frozen tensors are the seed's initial values throughout.
        let frozen_bits = |params: &[graphc::NamedTensor]| {
            let mut first_layer: Vec<(String, Vec<u32>)> = bits(params)
                .into_iter()
                .filter(|(name, _)| name.starts_with("0."))
                .collect();
            first_layer.sort();
            first_layer
        };
        assert_eq!(
            frozen_bits(&first.params),
            frozen_bits(&whole.params),
            "{what}"
        );
        let initial = frozen_bits(&state.model.tensors);
        assert_eq!(initial.len(), 2, "{what}");
        assert_eq!(frozen_bits(&whole.params), initial, "{what}");
    }
}
