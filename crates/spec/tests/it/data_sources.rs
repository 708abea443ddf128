//! `data.train` / `data.valid` sources (csv, npy, npz, idx, synthetic) and `data.split`:
//! what each form parses to, and where each mistake is reported.

use std::path::{Path, PathBuf};

use graphc_spec::*;

/// A valid spec whose `data:` block is `DATA` (two-space indented lines).
fn spec_with_data(data: &str) -> String {
    format!(
        "seed: 3\ndata:\n{data}model:\n  input: [2]\n  layers:\n    - {{type: linear, out: 3}}\nloss: {{type: cross_entropy}}\noptimizer: {{type: sgd, lr: 0.1}}\ntrain: {{epochs: 1}}\n"
    )
}

fn data(data: &str) -> DataSpec {
    match parse_str(&spec_with_data(data), Path::new("spec.yaml")) {
        Ok(spec) => spec.data,
        Err(e) => panic!("{e}"),
    }
}

/// The error for a `data:` block, as `(line, column, message)`.
fn err(data: &str) -> (Option<usize>, Option<usize>, String) {
    match parse_str(&spec_with_data(data), Path::new("spec.yaml")) {
        Ok(spec) => panic!("expected an error, got {:?}", spec.data),
        Err(e) => (e.line(), e.column(), e.message().to_owned()),
    }
}

#[test]
fn csv_source_keeps_its_columns() {
    let d = data("  train: {csv: d.csv, target: y, features: [a, b]}\n");
    assert_eq!(
        d.train,
        SourceSpec::Csv {
            path: PathBuf::from("d.csv"),
            target: vec!["y".into()],
            features: Some(vec!["a".into(), "b".into()]),
        }
    );
    assert_eq!(d.split, None);
    // A single feature may be written without a list.
    let d = data("  train: {csv: d.csv, target: y, features: a}\n");
    assert!(matches!(d.train, SourceSpec::Csv { features: Some(f), .. } if f == ["a"]));
}

#[test]
fn npy_source_names_a_features_file_and_a_target_file() {
    let d = data("  train: {npy: {features: x.npy, target: y.npy}}\n");
    assert_eq!(
        d.train,
        SourceSpec::Npy {
            features: PathBuf::from("x.npy"),
            target: PathBuf::from("y.npy"),
        }
    );
}

#[test]
fn npz_source_names_two_arrays_of_one_archive() {
    let d = data("  train: {npz: d.npz, features: x, target: [y]}\n");
    assert_eq!(
        d.train,
        SourceSpec::Npz {
            path: PathBuf::from("d.npz"),
            features: "x".into(),
            target: "y".into(),
        }
    );
}

#[test]
fn idx_source_names_images_and_labels() {
    let d = data("  train: {idx: {images: train-images.gz, labels: train-labels.gz}}\n  valid:\n    idx: {labels: l.gz, images: i.gz}\n");
    assert_eq!(
        d.train,
        SourceSpec::Idx {
            images: PathBuf::from("train-images.gz"),
            labels: PathBuf::from("train-labels.gz"),
        }
    );
    assert_eq!(
        d.valid,
        Some(SourceSpec::Idx {
            images: PathBuf::from("i.gz"),
            labels: PathBuf::from("l.gz"),
        })
    );
}

#[test]
fn synthetic_sources_take_defaults_per_kind() {
    let cases = [
        ("blobs", 3, 1.0),
        ("moons", 2, 0.1),
        ("spirals", 3, 0.05),
        ("linear", 0, 0.1),
    ];
    for (kind, classes, noise) in cases {
        let d = data(&format!("  train: {{synthetic: {{kind: {kind}}}}}\n"));
        let SourceSpec::Synthetic(s) = d.train else {
            panic!("{kind}: {:?}", d.train)
        };
        assert_eq!(
            (s.samples, s.features, s.classes, s.noise),
            (1000, 2, classes, noise),
            "{kind}"
        );
    }
    let d = data(
        "  train: {synthetic: {kind: blobs, samples: 50, features: 5, classes: 4, noise: 0}}\n",
    );
    assert_eq!(
        d.train,
        SourceSpec::Synthetic(SyntheticSpec {
            kind: SyntheticKind::Blobs,
            samples: 50,
            features: 5,
            classes: 4,
            noise: 0.0,
        })
    );
}

#[test]
fn split_is_a_fraction_of_the_training_data() {
    let d = data("  train: {csv: d.csv, target: y}\n  split: 0.2\n");
    let drawn = |fraction| {
        Some(SplitSpec::Fraction {
            fraction,
            seed: None,
        })
    };
    assert_eq!(d.split, drawn(0.2));
    assert_eq!(d.valid, None);
    // `valid: null` is no validation source, so split may go with it.
    let d = data("  split: 0.5\n  valid: ~\n  train: {csv: d.csv, target: y}\n");
    assert_eq!(d.split, drawn(0.5));
}

#[test]
fn split_outside_zero_one_is_an_error_at_its_value() {
    for bad in ["0", "1", "1.5", "-0.1", "yes"] {
        let (line, col, msg) = err(&format!(
            "  train: {{csv: d.csv, target: y}}\n  split: {bad}\n"
        ));
        assert_eq!((line, col), (Some(4), Some(10)), "{bad}: {msg}");
        assert!(
            msg.starts_with("data.split: invalid ")
                && msg.ends_with(
                    "expected a fraction between 0 and 1 (exclusive), e.g. 0.2, or a mapping \
                     {fraction: 0.2, seed: N} or {file: split.json}"
                ),
            "{msg}"
        );
    }
}

#[test]
fn split_with_valid_is_an_error_at_split() {
    let (line, col, msg) =
        err("  train: {csv: d.csv, target: y}\n  valid: {csv: v.csv, target: y}\n  split: 0.2\n");
    assert_eq!((line, col), (Some(5), Some(3)));
    assert_eq!(
        msg,
        "data.split: `split` and `valid` are both given; give one: `valid` for a separate \
         validation set, or `split` to hold out part of `train`"
    );
}

#[test]
fn source_without_a_format_lists_the_formats() {
    let (line, col, msg) = err("  train: {target: y}\n");
    assert_eq!((line, col), (Some(3), Some(3)));
    assert_eq!(
        msg,
        "data.train needs one of the keys csv, npy, npz, idx, synthetic (where the data comes \
         from), e.g. {csv: data.csv, target: y}"
    );
}

#[test]
fn source_with_two_formats_is_an_error_at_the_second() {
    let (line, col, msg) = err("  train:\n    csv: d.csv\n    npz: d.npz\n    target: y\n");
    assert_eq!((line, col), (Some(5), Some(5)));
    assert_eq!(
        msg,
        "data.train gives both `csv` and `npz`; a source is exactly one of csv, npy, npz, idx, synthetic"
    );
}

#[test]
fn keys_that_do_not_belong_to_the_format_are_errors_at_the_key() {
    let (line, col, msg) =
        err("  train:\n    npy: {features: x.npy, target: y.npy}\n    target: y\n");
    assert_eq!((line, col), (Some(5), Some(5)));
    assert_eq!(
        msg,
        "`target` does not belong in data.train with `npy`; give both files inside it: npy: \
         {features: x.npy, target: y.npy}"
    );
    let (_, _, msg) = err("  train: {synthetic: {kind: moons}, features: [a]}\n");
    assert!(
        msg.contains("a generated data set has no columns to choose"),
        "{msg}"
    );
    let (_, _, msg) = err("  train: {idx: {images: i, labels: l}, target: y}\n");
    assert!(
        msg.contains("the images are the features and the labels the target"),
        "{msg}"
    );
}

#[test]
fn npz_needs_single_array_names() {
    let (_, _, msg) = err("  train: {npz: d.npz, target: y}\n");
    assert_eq!(msg, "missing key `features` in data.train");
    let (line, col, msg) = err("  train: {npz: d.npz, target: y, features: [a, b]}\n");
    assert_eq!((line, col), (Some(3), Some(34)));
    assert!(
        msg.starts_with("data.train.features: with `npz`, `features` is the name of one array"),
        "{msg}"
    );
}

#[test]
fn missing_and_unknown_keys_of_npy_and_idx_are_named() {
    let (_, _, msg) = err("  train: {npy: {features: x.npy}}\n");
    assert_eq!(msg, "missing key `target` in data.train.npy");
    let (line, col, msg) = err("  train: {idx: {images: i, lables: l}}\n");
    assert_eq!((line, col), (Some(3), Some(28)));
    assert_eq!(
        msg,
        "unknown key `lables` in data.train.idx; did you mean `labels`? valid keys: images, labels"
    );
}

#[test]
fn synthetic_mistakes_are_errors_at_the_key() {
    let (_, _, msg) = err("  train: {synthetic: {kind: moon}}\n");
    assert_eq!(
        msg,
        "data.train.synthetic.kind: unknown synthetic kind `moon`; did you mean `moons`?; valid: \
         blobs, moons, spirals, linear"
    );
    let (_, _, msg) = err("  train: {synthetic: {samples: 10}}\n");
    assert_eq!(msg, "missing key `kind` in data.train.synthetic");
    let (line, col, msg) = err("  train: {synthetic: {kind: moons, features: 3}}\n");
    assert_eq!((line, col), (Some(3), Some(36)));
    assert_eq!(
        msg,
        "data.train.synthetic.features: `moons` is 2-D: features must be 2 (or left out), not 3"
    );
    let (_, _, msg) = err("  train: {synthetic: {kind: linear, classes: 2}}\n");
    assert!(
        msg.contains("`linear` makes a regression target and has no classes"),
        "{msg}"
    );
    let (_, _, msg) = err("  train: {synthetic: {kind: spirals, classes: 1}}\n");
    assert!(
        msg.contains("`spirals` needs at least 2 classes, not 1"),
        "{msg}"
    );
    let (_, _, msg) = err("  train: {synthetic: {kind: blobs, noise: -1}}\n");
    assert!(
        msg.starts_with("data.train.synthetic.noise: invalid value"),
        "{msg}"
    );
    let (_, _, msg) = err("  train: {synthetic: {kind: blobs, samples: 0}}\n");
    assert!(msg.contains("expected a positive integer"), "{msg}");
}

#[test]
fn absurdly_large_synthetic_set_is_refused_at_parse_time() {
    let (line, col, msg) =
        err("  train: {synthetic: {kind: blobs, samples: 1000000000000, features: 10}}\n");
    assert_eq!((line, col), (Some(3), Some(36)));
    assert_eq!(
        msg,
        "data.train.synthetic.samples: 1000000000000 samples × 10 features is more than 2^30 \
         values (4 GiB); make the data set smaller"
    );
}

#[test]
fn every_example_of_the_data_section_of_docs_spec_md_parses() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/spec.md"))
            .unwrap();
    let start = doc.find("## `data`").expect("a data section");
    let section = &doc[start..];
    let section = &section[..section.find("\n## `model`").unwrap_or(section.len())];
    let mut forms = Vec::new();
    for block in section.split("```yaml\n").skip(1) {
        let yaml = &block[..block.find("```").expect("a closed code block")];
        let indented: String = yaml.lines().map(|l| format!("  {l}\n")).collect();
        forms.push(match data(&indented).train {
            SourceSpec::Csv { .. } => "csv",
            SourceSpec::Npy { .. } => "npy",
            SourceSpec::Npz { .. } => "npz",
            SourceSpec::Idx { .. } => "idx",
            SourceSpec::Synthetic(_) => "synthetic",
            SourceSpec::Objective => panic!("a data section cannot write an objective's data"),
        });
    }
    // The first shows `split: {file}` and `standardize: {std}` on a csv source.
    assert_eq!(forms, ["csv", "csv", "npy", "npz", "idx", "synthetic"]);
}
