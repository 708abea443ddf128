//! Files a run leaves for people and later commands: the loss plot, `metrics.jsonl` read back,
//! `labels.json`, and the standardization statistics.

use std::path::Path;

use graphc_train::{
    read_labels_json, read_metrics, write_labels_json, write_loss_plot, PlotRun, Standardizer,
};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Whether the SVG has a `<text>` element reading `text` (plotters puts it on its own line).
fn has_text(svg: &str, text: &str) -> bool {
    svg.contains(&format!(">\n{text}\n</text>"))
}

/// Files in `dir` other than `keep` (left-over temporary files of an atomic write).
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

const METRICS: &str = r#"{"step":1,"epoch":1,"loss":1.5,"lr":0.1}
{"step":2,"epoch":1,"loss":1.25,"lr":0.1}
{"epoch":1,"valid_loss":1.375,"valid_accuracy":0.5}

{"step":3,"epoch":2,"loss":null,"lr":0.1}
{"step":4,"epoch":2,"loss":0.75,"lr":0.1}
{"epoch":2,"valid_loss":0.875,"valid_accuracy":0.75}
"#;

#[test]
fn metrics_are_read_into_train_points_and_validation_at_epoch_end() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("lr-0.1");
    std::fs::create_dir(&run_dir).unwrap();
    write(&run_dir, "metrics.jsonl", METRICS);
    let run = read_metrics(&run_dir).unwrap();
    assert_eq!(
        run,
        PlotRun {
            label: "lr-0.1".into(),
            // step 3's loss was not finite (null) and is left out
            train: vec![(1, 1.5), (2, 1.25), (4, 0.75)],
            valid: vec![(2, 1.375), (4, 0.875)],
        }
    );
}

#[test]
fn bad_metrics_files_are_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let msg = read_metrics(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("metrics.jsonl") && msg.contains("graphc train"),
        "{msg}"
    );
    write(
        dir.path(),
        "metrics.jsonl",
        "{\"step\":1,\"epoch\":1,\"loss\":1.0}\n{oops\n",
    );
    let msg = read_metrics(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("metrics.jsonl` line 2: not a JSON object"),
        "{msg}"
    );
    write(dir.path(), "metrics.jsonl", "{\"epoch\":1}\n");
    let msg = read_metrics(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("line 1: neither a step record"), "{msg}");
    write(dir.path(), "metrics.jsonl", "\n");
    let msg = read_metrics(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("has no losses to plot"), "{msg}");
}

#[test]
fn loss_plot_is_an_svg_with_labelled_axes_and_a_line_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("loss.svg");
    let run = PlotRun {
        label: "iris".into(),
        train: (1..=50).map(|s| (s, 1.0 / s as f32)).collect(),
        valid: vec![(10, 0.2), (20, 0.1), (50, 0.05)],
    };
    write_loss_plot(&out, &[run]).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
    assert!(has_text(&svg, "step"), "x axis label");
    assert!(
        has_text(&svg, "loss (log scale)"),
        "losses span 1..0.02: log axis"
    );
    assert!(has_text(&svg, "train loss") && has_text(&svg, "valid loss"));
    assert!(has_text(&svg, "loss — iris"), "caption names the run");
    // Raw and smoothed training lines, dashes for validation, one dot per epoch.
    assert!(svg.matches("<polyline").count() >= 3);
    assert_eq!(
        svg.matches("<circle").count(),
        3 + 1,
        "3 epochs + 1 legend marker"
    );
    assert!(
        others(dir.path(), &["loss.svg"]).is_empty(),
        "no temporary file left"
    );
}

#[test]
fn several_runs_get_their_own_colours_and_legend_entries() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("compare.svg");
    let runs: Vec<PlotRun> = ["lr-0.1", "lr-0.01"]
        .iter()
        .enumerate()
        .map(|(i, name)| PlotRun {
            label: (*name).into(),
            train: (1..=20)
                .map(|s| (s, 2.0 - 0.05 * s as f32 * (i + 1) as f32))
                .collect(),
            valid: Vec::new(),
        })
        .collect();
    write_loss_plot(&out, &runs).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(has_text(&svg, "lr-0.1 train") && has_text(&svg, "lr-0.01 train"));
    assert!(
        has_text(&svg, "loss") && !has_text(&svg, "loss (log scale)"),
        "linear axis for losses within a factor of 20"
    );
    assert!(
        svg.contains("#1F77B4") && svg.contains("#FF7F0E"),
        "tab10 colours"
    );
}

#[test]
fn long_runs_are_thinned_and_empty_runs_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("long.svg");
    let run = PlotRun {
        label: "long".into(),
        train: (1..=100_000).map(|s| (s, 1.0 + (s % 7) as f32)).collect(),
        valid: Vec::new(),
    };
    write_loss_plot(&out, &[run]).unwrap();
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size < 200_000, "{size} bytes");
    let empty = PlotRun {
        label: "nan".into(),
        train: vec![(1, f32::NAN)],
        valid: Vec::new(),
    };
    let msg = write_loss_plot(&dir.path().join("e.svg"), &[empty])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no finite losses"), "{msg}");
    assert!(!dir.path().join("e.svg").exists());
}

#[test]
fn labels_json_is_a_list_of_names_in_index_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.json");
    let names: Vec<String> = ["setosa", "versicolor", "Iris \"x\""]
        .iter()
        .map(|s| s.to_string())
        .collect();
    write_labels_json(&path, &names).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[\"setosa\",\"versicolor\",\"Iris \\\"x\\\"\"]\n"
    );
    assert_eq!(read_labels_json(&path).unwrap(), names);
    assert!(others(dir.path(), &["labels.json"]).is_empty());
    let msg = write_labels_json(&dir.path().join("no/such/dir/labels.json"), &names)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cannot write") && msg.contains("labels.json"),
        "{msg}"
    );
}

#[test]
fn standardizer_saves_and_loads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("standardize.json");
    let s = Standardizer {
        mean: vec![5.843_333_3, -0.1, 1e-30],
        std: vec![0.825_301_3, 1.0, 3.4e38],
        ddof: 1,
    };
    s.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("{\"mean\":[5.8433332,"), "{text}");
    assert_eq!(Standardizer::load(&path).unwrap(), s);
}

#[test]
fn damaged_standardizer_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let cases = [
        (
            "{\"mean\":[1,2],\"std\":[1]}",
            "2 means but 1 standard deviations",
        ),
        (
            "{\"mean\":[1],\"std\":[0]}",
            "std 0 is 0, not a positive finite number",
        ),
        (
            "{\"mean\":[1],\"std\":[1],\"ddof\":2}",
            "ddof is 2, expected 0 (population std) or 1 (sample std)",
        ),
        ("{\"mean\":[1]}", "not standardization statistics"),
        ("[1, 2]", "not standardization statistics"),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let msg = Standardizer::load(&path).unwrap_err().to_string();
        assert!(
            msg.contains("s.json`") && msg.contains(expected),
            "{text}: {msg}"
        );
        assert!(!msg.contains('\n'));
    }
}
