//! Bad input through the `graphc` binary, end to end: every case ends with one `error:` line
//! saying what is wrong, where, and how to fix it, a non-zero exit, no panic, and no output
//! file left behind (or half-written). Cases already covered by `cli.rs` (malformed YAML,
//! unknown key, missing CSV, non-numeric cell, class index out of range, divergence) are not
//! repeated here, nor hostile input (sizes, bombs, special files, output that cannot be
//! written), which `hostile.rs` runs as one table under an address-space limit.

use std::path::Path;
use std::process::Output;

use graphc::stages::train::{read_state_dict, write_state_dict, Counter, NamedTensor, StateDict};

use crate::support::{assert_clear_failure, graphc_in, scratch};

/// The files in `dir` (sorted), to check that a failed command left nothing behind.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

const SPEC: &str = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 3}]}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2}
";

const DATA: &str = "a,b,y\n1,2,0\n3,4,1\n5,6,2\n7,8,1\n";

/// Trains `spec` over `data` in a scratch directory with `--out out`; returns the directory
/// and the run's output.
fn train(spec: &str, data: &str) -> (tempfile::TempDir, Output) {
    let dir = scratch(&[("spec.yaml", spec), ("data.csv", data)]);
    let o = graphc_in(dir.path(), &["train", "spec.yaml", "--out", "out"]);
    (dir, o)
}

/// Asserts that a failed run left no output directory.
fn assert_no_output(dir: &Path) {
    assert!(
        !dir.join("out").exists(),
        "a failed run leaves no output: {:?}",
        files_in(&dir.join("out"))
    );
}

#[test]
fn wrong_value_type_names_the_key_position_and_the_expected_type() {
    let (dir, o) = train(&SPEC.replace("batch_size: 2", "batch_size: two"), DATA);
    assert_clear_failure(
        &o,
        &[
            "spec.yaml:2:",
            "data.batch_size",
            "string \"two\"",
            "expected a positive integer",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn missing_spec_file_names_the_path() {
    let dir = scratch(&[]);
    let o = graphc_in(dir.path(), &["train", "nowhere.yaml"]);
    assert_clear_failure(&o, &["nowhere.yaml", "No such file"]);
}

#[test]
fn ragged_csv_row_names_the_line_and_both_counts() {
    let (dir, o) = train(SPEC, "a,b,y\n1,2,0\n3,4\n");
    assert_clear_failure(
        &o,
        &[
            "data.csv` line 3",
            "expected 3 fields",
            "found 2",
            "fix the row",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn empty_data_set_says_to_add_rows() {
    let (dir, o) = train(SPEC, "a,b,y\n");
    assert_clear_failure(&o, &["data.csv", "no data rows", "add at least one row"]);
    assert_no_output(dir.path());
}

#[test]
fn negative_class_index_that_is_not_ignore_index_names_the_line() {
    let (dir, o) = train(SPEC, "a,b,y\n1,2,0\n3,4,-1\n");
    assert_clear_failure(
        &o,
        &[
            "data.csv` line 3",
            "class index -1 is outside [0, 3)",
            "not ignore_index (-100)",
            "fix the label",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn nan_and_infinite_features_name_line_and_column() {
    for cell in ["nan", "inf", "-Infinity"] {
        let (dir, o) = train(SPEC, &format!("a,b,y\n1,2,0\n3,{cell},1\n"));
        assert_clear_failure(
            &o,
            &["data.csv` line 3, column `b`", cell, "not a finite number"],
        );
        assert_no_output(dir.path());
    }
}

#[test]
fn loss_that_does_not_fit_the_targets_names_the_loss_and_the_shapes() {
    let (dir, o) = train(&SPEC.replace("cross_entropy", "mse"), DATA);
    assert_clear_failure(
        &o,
        &[
            "loss (mse)",
            "3 values per sample",
            "1 target columns",
            "fit the loss",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn layer_shapes_that_do_not_fit_name_the_layer() {
    let spec = SPEC.replace(
        "layers: [{type: linear, out: 3}]",
        "layers: [{type: linear, out: 3}, {type: softmax, dim: 2}]",
    );
    let (dir, o) = train(&spec, DATA);
    assert_clear_failure(
        &o,
        &[
            "model.layers[1] (softmax",
            "dim 2 is out of range",
            "change the layer",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn batch_size_zero_is_refused_at_its_position() {
    let (dir, o) = train(&SPEC.replace("batch_size: 2", "batch_size: 0"), DATA);
    assert_clear_failure(&o, &["spec.yaml:2:", "data.batch_size", "positive integer"]);
    assert_no_output(dir.path());
}

#[test]
fn negative_learning_rate_is_refused_at_its_position() {
    let (dir, o) = train(&SPEC.replace("lr: 0.1", "lr: -0.1"), DATA);
    assert_clear_failure(&o, &["spec.yaml:5:", "optimizer.lr", "-0.1", ">= 0"]);
    assert_no_output(dir.path());
}

#[test]
fn divergence_names_the_step_and_suggests_a_ten_times_smaller_lr() {
    let spec = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 1}]}
loss: {type: mse}
optimizer: {type: sgd, lr: 1.0e30}
train: {epochs: 3}
";
    let (dir, o) = train(spec, "a,b,y\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n");
    assert_clear_failure(
        &o,
        &["training diverged at step ", "optimizer.lr 1e30 → try 1e29"],
    );
    // A failed run leaves nothing behind: not its metrics, not a model.
    assert_no_output(dir.path());
}

#[test]
fn batch_of_only_ignored_targets_is_named_instead_of_a_nan_loss() {
    let (dir, o) = train(SPEC, "a,b,y\n1,2,0\n3,4,1\n5,6,-100\n7,8,-100\n");
    assert_clear_failure(
        &o,
        &[
            "epoch 1, batch 2 (step 2)",
            "every target of the batch is ignore_index (-100)",
            "`data.csv` line 4, `data.csv` line 5",
            "larger batch_size",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn batch_of_only_ignored_targets_is_fine_with_a_sum_reduction() {
    let spec = SPEC.replace(
        "{type: cross_entropy}",
        "{type: cross_entropy, reduction: sum}",
    );
    let (dir, o) = train(&spec, "a,b,y\n1,2,0\n3,4,1\n5,6,-100\n7,8,-100\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let metrics = std::fs::read_to_string(dir.path().join("out/metrics.jsonl")).unwrap();
    let second: serde_json::Value = serde_json::from_str(metrics.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["loss"], 0.0, "PyTorch's sum over no samples is 0");
}

#[test]
fn checkpoint_of_another_model_names_the_tensor_and_how_to_fix_it() {
    let (dir, o) = train(SPEC, DATA);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(
        dir.path().join("wider.yaml"),
        SPEC.replace("out: 3", "out: 4"),
    )
    .unwrap();
    let before = std::fs::read(dir.path().join("out/model.safetensors")).unwrap();
    let o = graphc_in(
        dir.path(),
        &["train", "wider.yaml", "--resume", "out/checkpoint"],
    );
    assert_clear_failure(
        &o,
        &[
            "checkpoint `out/checkpoint`",
            "tensor `0.weight` has shape [3, 2], the model needs [4, 2]",
            "resume with the spec that wrote the checkpoint",
        ],
    );
    let after = std::fs::read(dir.path().join("out/model.safetensors")).unwrap();
    assert_eq!(before, after, "the run's model is untouched");
    let o = graphc_in(dir.path(), &["eval", "wider.yaml", "--weights", "out"]);
    assert_clear_failure(
        &o,
        &[
            "out/model.safetensors`",
            "[3, 2], the model needs [4, 2]",
            "graphc check SPEC",
        ],
    );
}

#[test]
fn output_directory_that_cannot_be_made_is_refused_before_training() {
    let dir = scratch(&[("spec.yaml", SPEC), ("data.csv", DATA), ("a-file", "")]);
    let o = graphc_in(dir.path(), &["train", "spec.yaml", "--out", "a-file/run"]);
    assert_clear_failure(
        &o,
        &[
            "cannot create output directory `a-file/run`",
            "writable --out",
        ],
    );
    assert_eq!(files_in(dir.path()), ["a-file", "data.csv", "spec.yaml"]);
}

#[test]
fn layer_of_a_trillion_units_is_refused_before_allocating() {
    let (dir, o) = train(&SPEC.replace("out: 3", "out: 1000000000000"), DATA);
    assert_clear_failure(
        &o,
        &[
            "the training step needs about ",
            "TiB",
            "model.layers[0] (linear, out 1000000000000)",
            "make the layer narrower or the batch_size smaller",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn wide_layer_times_a_large_batch_is_refused_for_its_activations() {
    // 2^31 / 8 parameters pass nn's per-weight limit; 4096 × 2^28 activations do not fit.
    let spec = SPEC
        .replace("out: 3", "out: 268435456")
        .replace("batch_size: 2", "batch_size: 4096");
    let (dir, o) = train(&spec, DATA);
    assert_clear_failure(
        &o,
        &[
            "TiB",
            "a batch of 4096",
            "model.layers[0] (linear, out 268435456)",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn eval_and_predict_on_bad_data_name_the_file_line_and_column() {
    let (dir, o) = train(SPEC, DATA);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(dir.path().join("ragged.csv"), "a,b,y\n1,2,0\n3\n").unwrap();
    std::fs::write(dir.path().join("text.csv"), "a,b\n1,2\n3,x\n").unwrap();
    std::fs::write(dir.path().join("other.csv"), "a,c\n1,2\n").unwrap();
    let o = graphc_in(
        dir.path(),
        &[
            "eval",
            "spec.yaml",
            "--weights",
            "out",
            "--data",
            "ragged.csv",
        ],
    );
    assert_clear_failure(&o, &["ragged.csv` line 3", "expected 3 fields", "found 1"]);
    let o = graphc_in(
        dir.path(),
        &[
            "predict",
            "spec.yaml",
            "--weights",
            "out",
            "--data",
            "text.csv",
            "--out",
            "p.csv",
        ],
    );
    assert_clear_failure(&o, &["text.csv` line 3, column `b`", "`x` is not a number"]);
    assert!(!dir.path().join("p.csv").exists(), "no predictions file");
    let o = graphc_in(
        dir.path(),
        &[
            "predict",
            "spec.yaml",
            "--weights",
            "out",
            "--data",
            "other.csv",
        ],
    );
    assert_clear_failure(
        &o,
        &[
            "other.csv`",
            "no column named `b`",
            "the columns are `a`, `c`",
        ],
    );
    let o = graphc_in(
        dir.path(),
        &[
            "predict",
            "spec.yaml",
            "--weights",
            "missing",
            "--data",
            "text.csv",
        ],
    );
    assert_clear_failure(
        &o,
        &["missing", "give --weights the model.safetensors of a run"],
    );
}

#[test]
fn eval_of_a_standardized_spec_without_the_saved_statistics_recomputes_them() {
    let spec = SPEC.replace("batch_size: 2", "batch_size: 2, standardize: true");
    let (dir, o) = train(&spec, DATA);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let with = graphc_in(dir.path(), &["eval", "spec.yaml", "--weights", "out"]);
    std::fs::remove_file(dir.path().join("out/standardize.json")).unwrap();
    let without = graphc_in(dir.path(), &["eval", "spec.yaml", "--weights", "out"]);
    assert!(without.status.success());
    assert_eq!(
        String::from_utf8_lossy(&without.stderr),
        "no standardize.json beside the weights: standardizing with the population std \
         statistics of the spec's training data `data.csv`\n"
    );
    assert_eq!(
        without.stdout, with.stdout,
        "the same statistics as training's"
    );
}

#[test]
fn plot_of_a_directory_without_metrics_says_what_it_needs() {
    let dir = scratch(&[]);
    let o = graphc_in(dir.path(), &["plot", "nowhere", "--out", "x.svg"]);
    assert_clear_failure(&o, &["nowhere/metrics.jsonl", "graphc train"]);
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn absurd_inputs_never_panic_the_binary() {
    let dir = scratch(&[("data.csv", DATA)]);
    let cases = [
        "",
        "[]",
        "data: 3",
        "model: {input: [0], layers: []}",
        "data: {train: {csv: data.csv, target: y}, batch_size: 99999999999999999999}",
        "\u{0}\u{1}\u{2}",
        &SPEC.replace("input: [2]", "input: [18446744073709551615, 2]"),
        &SPEC.replace("input: [2]", "input: []"),
        &SPEC.replace("out: 3", "out: 0"),
        &SPEC.replace("epochs: 2", "epochs: 0"),
        &SPEC.replace("lr: 0.1", "lr: .nan"),
        &SPEC.replace("lr: 0.1", "lr: .inf"),
    ];
    for (i, text) in cases.iter().enumerate() {
        let name = format!("case{i}.yaml");
        std::fs::write(dir.path().join(&name), text).unwrap();
        let o = graphc_in(dir.path(), &["train", &name, "--out", "out"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{text:?}: {err}");
        if !o.status.success() {
            assert_eq!(err.trim_end().lines().count(), 1, "{text:?}: {err}");
        }
    }
}

/// A classifier with a batch norm at index 1 (3 channels): `1.weight`, `1.bias`,
/// `1.running_mean`, `1.running_var` and the counter `1.num_batches_tracked`.
const NORM_SPEC: &str = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 3}, {type: batch_norm1d}, {type: dropout, p: 0.5}, {type: linear, out: 3}]}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2}
";

#[test]
fn batch_norm_and_dropout_on_shapes_they_cannot_take_name_the_layer() {
    let layer = |from: &str, to: &str| {
        assert!(NORM_SPEC.contains(from), "{from}");
        NORM_SPEC.replace(from, to)
    };
    let (dir, o) = train(&layer("{type: batch_norm1d}", "{type: batch_norm2d}"), DATA);
    assert_clear_failure(
        &o,
        &["model.layers[1] (batch_norm2d at 1): expects a [N, C, H, W] input, got [2, 3]"],
    );
    assert_no_output(dir.path());
    let (dir, o) = train(
        &layer(
            "input: [2], layers: [",
            "input: [1, 1, 2], layers: [{type: dropout1d}, {type: flatten}, ",
        ),
        DATA,
    );
    assert_clear_failure(
        &o,
        &["model.layers[0] (dropout1d at 0): expects a [N, C, L] input, got [2, 1, 1, 2]"],
    );
    assert_no_output(dir.path());
    let (dir, o) = train(&layer("p: 0.5", "p: 2"), DATA);
    assert_clear_failure(
        &o,
        &[
            "spec.yaml:3:",
            "model.layers[2].p: invalid value: integer `2`, expected a probability between 0 and 1",
        ],
    );
    assert_no_output(dir.path());
    let (dir, o) = train(
        &layer(
            "{type: batch_norm1d}",
            "{type: batch_norm1d, num_features: 4}",
        ),
        DATA,
    );
    assert_clear_failure(
        &o,
        &[
            "model.layers[1] (batch_norm1d at 1): num_features is 4, but its input [2, 3] has 3 \
           channels; leave num_features out to infer it",
        ],
    );
    assert_no_output(dir.path());
}

#[test]
fn a_training_batch_of_one_sample_for_batch_norm_is_pytorchs_error() {
    // Three rows in batches of two: the last batch has one value per channel.
    let (dir, o) = train(NORM_SPEC, "a,b,y\n1,2,0\n3,4,1\n5,6,2\n");
    assert_clear_failure(
        &o,
        &[
            "model.layers[1] (batch_norm1d at 1)",
            "more than 1 value per channel",
        ],
    );
    assert_no_output(dir.path());
}

/// Trains `NORM_SPEC` into `out` and returns the scratch directory and its `state_dict`.
fn trained_norm_run() -> (tempfile::TempDir, StateDict) {
    let (dir, o) = train(NORM_SPEC, DATA);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let state = read_state_dict(&dir.path().join("out/model.safetensors")).unwrap();
    (dir, state)
}

/// `NORM_SPEC` starting from `init.safetensors`, trained into `again`.
fn train_from_init(dir: &Path) -> Output {
    let spec = NORM_SPEC.replace(
        "{type: linear, out: 3}]}",
        "{type: linear, out: 3}], init: {from: init.safetensors}}",
    );
    assert_ne!(spec, NORM_SPEC);
    std::fs::write(dir.join("init.yaml"), spec).unwrap();
    graphc_in(dir, &["train", "init.yaml", "--out", "again"])
}

#[test]
fn init_from_a_batch_norm_run_loads_its_buffers_and_counter() {
    let (dir, state) = trained_norm_run();
    // 4 rows in batches of 2, 2 epochs.
    assert_eq!(
        state.counters,
        [Counter {
            name: "1.num_batches_tracked".into(),
            value: 4
        }]
    );
    let names: Vec<&str> = state.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.weight",
            "3.bias",
            "3.weight"
        ]
    );
    std::fs::copy(
        dir.path().join("out/model.safetensors"),
        dir.path().join("init.safetensors"),
    )
    .unwrap();
    let o = train_from_init(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = read_state_dict(&dir.path().join("again/model.safetensors")).unwrap();
    assert_eq!(
        again.counters[0].value, 8,
        "the loaded counter goes on counting, as after load_state_dict"
    );
    // Without the counter the file loads too and the counter starts from the model's 0:
    // PyTorch's batch norm fills a missing num_batches_tracked in for a state_dict without
    // version metadata, which every safetensors file is.
    write_state_dict(&dir.path().join("init.safetensors"), &state.tensors, &[]).unwrap();
    std::fs::remove_dir_all(dir.path().join("again")).unwrap();
    let o = train_from_init(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = read_state_dict(&dir.path().join("again/model.safetensors")).unwrap();
    assert_eq!(again.counters[0].value, 4);
}

#[test]
fn init_from_without_a_buffer_or_with_a_bad_counter_names_the_tensor() {
    let (dir, state) = trained_norm_run();
    let without = |name: &str| -> Vec<NamedTensor> {
        state
            .tensors
            .iter()
            .filter(|t| t.name != name)
            .cloned()
            .collect()
    };
    let counter = |value: i64| {
        vec![Counter {
            name: "1.num_batches_tracked".into(),
            value,
        }]
    };
    let float_counter = {
        let mut tensors = state.tensors.clone();
        tensors.push(NamedTensor {
            name: "1.num_batches_tracked".into(),
            shape: vec![],
            data: vec![4.0],
        });
        tensors
    };
    let cases: [(&str, Vec<NamedTensor>, Vec<Counter>, &str); 3] = [
        (
            "no running_var",
            without("1.running_var"),
            counter(4),
            "missing tensor `1.running_var` of shape [3]",
        ),
        (
            "negative counter",
            state.tensors.clone(),
            counter(-1),
            "counter `1.num_batches_tracked` is -1; num_batches_tracked counts batches and cannot be negative",
        ),
        (
            "F32 counter",
            float_counter,
            Vec::new(),
            "tensor `1.num_batches_tracked` is a 0-d int64 counter in this model, not a float tensor",
        ),
    ];
    for (what, tensors, counters, message) in cases {
        write_state_dict(&dir.path().join("init.safetensors"), &tensors, &counters).unwrap();
        let o = train_from_init(dir.path());
        let err = assert_clear_failure(&o, &["`init.safetensors`: ", message]);
        assert!(
            !dir.path().join("again").exists(),
            "{what}: nothing written: {err}"
        );
        // --weights is checked the same way.
        let o = graphc_in(
            dir.path(),
            &["eval", "spec.yaml", "--weights", "init.safetensors"],
        );
        assert_clear_failure(&o, &["`init.safetensors`: ", message]);
    }
}

/// A classifier whose first layer embeds the two features, indices in `[0, 4)`.
const EMBEDDING_SPEC: &str = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model:
  input: [2]
  layers:
    - {type: embedding, num_embeddings: 4, embedding_dim: 3, padding_idx: -1}
    - {type: flatten}
    - {type: linear, out: 3}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2}
";

#[test]
fn embedding_inputs_that_are_not_class_indices_name_line_column_and_value() {
    for (cell, shown) in [
        ("4", "4"),
        ("-1", "-1"),
        ("1.5", "1.5"),
        ("1e9", "1000000000"),
    ] {
        let data = format!("a,b,y\n1,2,0\n3,{cell},1\n0,0,2\n");
        let (dir, o) = train(EMBEDDING_SPEC, &data);
        assert_clear_failure(
            &o,
            &[
                "data.csv` line 3, column `b`",
                &format!("{shown} is not a class index of the embedding (model.layers[0])"),
                "whole numbers in [0, 4)",
            ],
        );
        assert_no_output(dir.path());
    }
    // The same check on the validation set, before the first step.
    let spec = EMBEDDING_SPEC.replace(
        "data: {train: {csv: data.csv, target: y},",
        "data: {train: {csv: data.csv, target: y}, valid: {csv: valid.csv, target: y},",
    );
    let dir = scratch(&[
        ("spec.yaml", &spec),
        ("data.csv", "a,b,y\n1,2,0\n3,3,1\n"),
        ("valid.csv", "a,b,y\n1,2,0\n7,3,1\n"),
    ]);
    let o = graphc_in(dir.path(), &["train", "spec.yaml", "--out", "out"]);
    assert_clear_failure(
        &o,
        &["valid.csv` line 3, column `a`", "7 is not a class index"],
    );
    assert_no_output(dir.path());
}

#[test]
fn embedding_anywhere_but_first_or_with_standardize_is_refused() {
    let spec = EMBEDDING_SPEC.replace("  layers:\n", "  layers:\n    - {type: identity}\n");
    let (dir, o) = train(&spec, "a,b,y\n1,2,0\n3,3,1\n");
    assert_clear_failure(
        &o,
        &[
            "model.layers[1] (embedding at 1)",
            "so it must read `input`",
        ],
    );
    assert_no_output(dir.path());
    let spec = EMBEDDING_SPEC.replace("batch_size: 2}", "batch_size: 2, standardize: true}");
    let (dir, o) = train(&spec, "a,b,y\n1,2,0\n3,3,1\n");
    assert_clear_failure(&o, &["data.standardize: true", "set standardize: false"]);
    assert_no_output(dir.path());
}

#[test]
fn an_embedding_trains_and_predicts_with_class_index_features() {
    let (dir, o) = train(EMBEDDING_SPEC, "a,b,y\n1,2,0\n3,0,1\n0,1,2\n2,2,1\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(dir.path().join("new.csv"), "a,b,y\n0,3,0\n2,5,1\n").unwrap();
    let o = graphc_in(
        dir.path(),
        &[
            "predict",
            "spec.yaml",
            "--weights",
            "out",
            "--data",
            "new.csv",
        ],
    );
    assert_clear_failure(
        &o,
        &["new.csv` line 3, column `b`", "5 is not a class index"],
    );
}
