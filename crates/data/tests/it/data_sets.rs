//! A spec's data as a whole: `load_source` dispatch, synthetic sets, `split`, and validation
//! sets whose text labels are numbered like the training set's.

use std::path::{Path, PathBuf};

use graphc_data::{
    generate, load_sets, load_source, load_split_sets, split_dataset, Dataset, SourceRole,
    SplitRecord, TargetKind, Targets,
};
use graphc_spec::{DataSpec, SourceSpec, SplitSpec, SyntheticKind, SyntheticSpec};

fn synthetic(
    kind: SyntheticKind,
    samples: usize,
    features: usize,
    classes: usize,
) -> SyntheticSpec {
    SyntheticSpec {
        kind,
        samples,
        features,
        classes,
        noise: 0.1,
    }
}

fn data_spec(train: SourceSpec, valid: Option<SourceSpec>, split: Option<f32>) -> DataSpec {
    let split = split.map(|fraction| SplitSpec::Fraction {
        fraction,
        seed: None,
    });
    DataSpec {
        train,
        valid,
        batch_size: 4,
        shuffle: false,
        drop_last: false,
        standardize: None,
        split,
    }
}

fn csv(dir: &Path, name: &str, text: &str) -> SourceSpec {
    std::fs::write(dir.join(name), text).unwrap();
    SourceSpec::Csv {
        path: PathBuf::from(name),
        target: vec!["y".into()],
        features: None,
    }
}

fn indices(d: &Dataset) -> Vec<i64> {
    match &d.targets {
        Targets::Classes { indices, .. } => indices.clone(),
        Targets::Floats { .. } => panic!("expected classes"),
    }
}

#[test]
fn synthetic_sets_are_deterministic_per_seed_and_balanced() {
    for kind in [
        SyntheticKind::Blobs,
        SyntheticKind::Moons,
        SyntheticKind::Spirals,
    ] {
        let classes = if kind == SyntheticKind::Moons { 2 } else { 3 };
        let spec = synthetic(kind, 30, 2, classes);
        let a = generate(&spec, 5, SourceRole::Train, TargetKind::ClassIndex).unwrap();
        let b = generate(&spec, 5, SourceRole::Train, TargetKind::ClassIndex).unwrap();
        let c = generate(&spec, 6, SourceRole::Train, TargetKind::ClassIndex).unwrap();
        assert_eq!(a, b, "{kind:?}: same seed, same data");
        assert_ne!(a.features, c.features, "{kind:?}: another seed, other data");
        assert_eq!((a.len(), a.num_features()), (30, 2));
        let labels = indices(&a);
        for class in 0..classes as i64 {
            let count = labels.iter().filter(|&&l| l == class).count();
            assert_eq!(count, 30 / classes, "{kind:?} class {class}");
        }
        assert!(a
            .features
            .in_memory()
            .unwrap()
            .iter()
            .all(|v| v.is_finite()));
    }
}

#[test]
fn blobs_cluster_around_one_centre_per_class() {
    let mut spec = synthetic(SyntheticKind::Blobs, 300, 4, 3);
    spec.noise = 0.5;
    let d = generate(&spec, 1, SourceRole::Train, TargetKind::ClassIndex).unwrap();
    let labels = indices(&d);
    // Per class: mean and spread around it; the spread is the noise (0.5) per feature.
    for class in 0..3 {
        let rows: Vec<&[f32]> = d
            .features
            .in_memory()
            .unwrap()
            .chunks(4)
            .zip(&labels)
            .filter(|(_, &l)| l == class)
            .map(|(r, _)| r)
            .collect();
        let n = rows.len() as f64;
        for j in 0..4 {
            let mean = rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n;
            let var = rows
                .iter()
                .map(|r| (f64::from(r[j]) - mean).powi(2))
                .sum::<f64>()
                / n;
            assert!(mean.abs() <= 10.5, "centre within [-10, 10]: {mean}");
            assert!((var.sqrt() - 0.5).abs() < 0.1, "std {}", var.sqrt());
        }
    }
}

#[test]
fn synthetic_validation_set_shares_the_distribution_but_not_the_samples() {
    let mut spec = synthetic(SyntheticKind::Linear, 200, 3, 0);
    spec.noise = 0.0;
    let train = generate(&spec, 9, SourceRole::Train, TargetKind::Float).unwrap();
    let valid = generate(&spec, 9, SourceRole::Valid, TargetKind::Float).unwrap();
    assert_ne!(train.features, valid.features);
    let (Targets::Floats { values: ty, .. }, Targets::Floats { values: vy, .. }) =
        (&train.targets, &valid.targets)
    else {
        panic!("float targets expected")
    };
    // Fit w, b on train by ordinary least squares (3 features + bias) and check valid exactly.
    let fit = least_squares(train.features.in_memory().unwrap(), ty, 3);
    for (row, y) in valid.features.in_memory().unwrap().chunks(3).zip(vy) {
        let pred = fit[3] + (0..3).map(|j| fit[j] * f64::from(row[j])).sum::<f64>();
        assert!((pred - f64::from(*y)).abs() < 1e-3, "{pred} vs {y}");
    }
}

/// Least-squares `[w0, w1, w2, b]` for `y ≈ x·w + b` by Gaussian elimination on the normal equations.
fn least_squares(x: &[f32], y: &[f32], f: usize) -> Vec<f64> {
    let k = f + 1;
    let mut a = vec![vec![0f64; k + 1]; k];
    for (row, &t) in x.chunks(f).zip(y) {
        let v: Vec<f64> = row.iter().map(|&v| f64::from(v)).chain([1.0]).collect();
        for i in 0..k {
            for j in 0..k {
                a[i][j] += v[i] * v[j];
            }
            a[i][k] += v[i] * f64::from(t);
        }
    }
    for c in 0..k {
        let p = a[c][c];
        let pivot: Vec<f64> = a[c].iter().map(|v| v / p).collect();
        for (r, row) in a.iter_mut().enumerate() {
            if r == c {
                row.clone_from(&pivot);
            } else {
                let m = row[c];
                for (x, pv) in row.iter_mut().zip(&pivot) {
                    *x -= m * pv;
                }
            }
        }
    }
    a.iter().map(|r| r[k]).collect()
}

#[test]
fn classifier_sets_for_float_losses_are_zero_one_or_one_hot() {
    let moons = synthetic(SyntheticKind::Moons, 4, 2, 2);
    let d = generate(&moons, 0, SourceRole::Train, TargetKind::Float).unwrap();
    assert_eq!(
        d.targets,
        Targets::Floats {
            values: vec![0.0, 1.0, 0.0, 1.0],
            width: 1
        }
    );
    let blobs = synthetic(SyntheticKind::Blobs, 4, 2, 3);
    let d = generate(&blobs, 0, SourceRole::Train, TargetKind::Float).unwrap();
    assert_eq!(
        d.targets,
        Targets::Floats {
            values: vec![1., 0., 0., 0., 1., 0., 0., 0., 1., 1., 0., 0.],
            width: 3
        }
    );
}

#[test]
fn linear_set_with_a_class_loss_is_an_error() {
    let spec = synthetic(SyntheticKind::Linear, 10, 2, 0);
    let msg = generate(&spec, 0, SourceRole::Train, TargetKind::ClassIndex)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("synthetic `linear` makes a float (regression) target"),
        "{msg}"
    );
}

#[test]
fn load_source_dispatches_csv_with_several_targets_as_floats() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), "x,a,b\n1,2,3\n4,5,6\n").unwrap();
    let source = SourceSpec::Csv {
        path: PathBuf::from("t.csv"),
        target: vec!["a".into(), "b".into()],
        features: None,
    };
    let d = load_source(&source, dir.path(), TargetKind::ClassIndex, 0).unwrap();
    assert_eq!(
        d.targets,
        Targets::Floats {
            values: vec![2.0, 3.0, 5.0, 6.0],
            width: 2
        }
    );
}

#[test]
fn split_holds_out_the_ceiling_of_the_fraction_and_keeps_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,y\n");
    for i in 0..10 {
        text += &format!("{i},{}\n", i % 2);
    }
    let train = csv(dir.path(), "d.csv", &text);
    let spec = data_spec(train, None, Some(0.25));
    let (t, v) = load_sets(&spec, dir.path(), TargetKind::ClassIndex, 3).unwrap();
    let v = v.expect("a validation set");
    assert_eq!((t.len(), v.len()), (7, 3), "ceil(0.25 * 10) = 3");
    let mut all: Vec<f32> = t
        .features
        .in_memory()
        .unwrap()
        .iter()
        .chain(v.features.in_memory().unwrap())
        .copied()
        .collect();
    all.sort_by(f32::total_cmp);
    assert_eq!(all, (0..10).map(|i| i as f32).collect::<Vec<_>>());
    // Targets travel with their rows, rows keep file order, and locations name the source line.
    for d in [&t, &v] {
        for (x, y) in d.features.in_memory().unwrap().iter().zip(indices(d)) {
            assert_eq!(*x as i64 % 2, y);
        }
        assert!(d
            .features
            .in_memory()
            .unwrap()
            .windows(2)
            .all(|w| w[0] < w[1]));
        let line = d.features.in_memory().unwrap()[0] as u64 + 2;
        assert!(d.row_location(0).ends_with(&format!("d.csv` line {line}")));
    }
    let (t2, v2) = load_sets(&spec, dir.path(), TargetKind::ClassIndex, 3).unwrap();
    assert_eq!(t2, t, "the same seed splits the same way");
    assert_eq!(v2.unwrap(), v);
    let (_, v3) = load_sets(&spec, dir.path(), TargetKind::ClassIndex, 4).unwrap();
    assert_ne!(
        v3.unwrap().features,
        v.features,
        "another seed splits another way"
    );
}

#[test]
fn a_split_record_reused_as_a_file_holds_out_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,y\n");
    for i in 0..20 {
        text += &format!("{i},{}\n", i % 3);
    }
    let train = csv(dir.path(), "d.csv", &text);
    let mut spec = data_spec(train, None, None);
    spec.split = Some(SplitSpec::Fraction {
        fraction: 0.2,
        seed: Some(11),
    });
    // The split's own seed decides, not the spec's.
    let (t, v, record) = load_split_sets(&spec, dir.path(), TargetKind::ClassIndex, 0).unwrap();
    let (_, v_other, _) = load_split_sets(&spec, dir.path(), TargetKind::ClassIndex, 5).unwrap();
    assert_eq!(v_other, v);
    let record = record.expect("a split record");
    assert_eq!(
        (
            record.samples,
            record.fraction,
            record.seed,
            record.valid_rows.len()
        ),
        (Some(20), Some(0.2), Some(11), 4)
    );
    let held_out: Vec<f32> = record.valid_rows.iter().map(|&r| r as f32).collect();
    assert_eq!(v.as_ref().unwrap().features, held_out, "x is the row index");
    record.save(&dir.path().join("split.json")).unwrap();
    let text = std::fs::read_to_string(dir.path().join("split.json")).unwrap();
    assert!(
        text.starts_with("{\"samples\":20,\"fraction\":0.2,\"seed\":11,\"valid_rows\":["),
        "{text}"
    );
    spec.split = Some(SplitSpec::File(PathBuf::from("split.json")));
    let (t2, v2, again) = load_split_sets(&spec, dir.path(), TargetKind::ClassIndex, 0).unwrap();
    assert_eq!((t2, v2), (t, v));
    assert_eq!(again.unwrap().file, Some(PathBuf::from("split.json")));
}

#[test]
fn bad_split_files_are_one_line_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let cases = [
        ("\"rows\"", "not a split file (invalid type: string"),
        (
            "{\"valid_rows\": [1, 2",
            "not a split file (EOF while parsing",
        ),
        (
            "{\"valid_rows\": [1, -2]}",
            "not a split file (invalid value: integer `-2`",
        ),
        (
            "{\"valid_rows\": [1], \"rows\": 2}",
            "not a split file (unknown field `rows`",
        ),
        (
            "{\"valid_rows\": [3, 10]}",
            "row 10 is out of range: the training data has 10 samples (rows 0 to 9)",
        ),
        (
            "{\"valid_rows\": [3, 4, 3]}",
            "row 3 is listed twice; each held-out row appears once",
        ),
        (
            "{\"valid_rows\": []}",
            "it holds out 0 of the 10 samples, which leaves no validation samples",
        ),
        (
            "{\"samples\": 12, \"valid_rows\": [1]}",
            "it splits 12 samples, but the training data has 10",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let msg = SplitRecord::load(&path, 10).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("`{}`: {expected}", path.display())) && !msg.contains('\n'),
            "{text}: {msg}"
        );
    }
    let all = format!("{{\"valid_rows\": {:?}}}", (0..10).collect::<Vec<_>>());
    std::fs::write(&path, all).unwrap();
    let msg = SplitRecord::load(&path, 10).unwrap_err().to_string();
    assert!(msg.ends_with("which leaves no training samples"), "{msg}");
    let missing = SplitRecord::load(&dir.path().join("none.json"), 10).unwrap_err();
    assert!(missing.to_string().contains("none.json"), "{missing}");
}

#[test]
fn split_of_a_decimal_fraction_rounds_as_sklearn_does() {
    // f32 0.2 × 150 is 30.0000004; sklearn's ceil(0.2 * 150) is 30.
    let d = generate(
        &synthetic(SyntheticKind::Blobs, 150, 2, 3),
        0,
        SourceRole::Train,
        TargetKind::ClassIndex,
    )
    .unwrap();
    let (t, v) = split_dataset(d, 0.2, 0).unwrap();
    assert_eq!((t.len(), v.len()), (120, 30));
}

#[test]
fn split_that_leaves_a_side_empty_is_an_error() {
    let d = generate(
        &synthetic(SyntheticKind::Blobs, 3, 2, 3),
        0,
        SourceRole::Train,
        TargetKind::ClassIndex,
    )
    .unwrap();
    let msg = split_dataset(d, 0.9, 0).unwrap_err().to_string();
    assert_eq!(
        msg,
        "data.split 0.9 of the 3 samples of synthetic blobs leaves no training samples; use more data or a split between 0.333 and 0.667"
    );
}

#[test]
fn validation_text_labels_are_numbered_like_the_training_set() {
    let dir = tempfile::tempdir().unwrap();
    let train = csv(dir.path(), "train.csv", "x,y\n1,ant\n2,bee\n3,cat\n");
    // Without `ant`, the file alone would number bee 0 and cat 1.
    let valid = csv(dir.path(), "valid.csv", "x,y\n4,cat\n5,bee\n");
    let spec = data_spec(train.clone(), Some(valid), None);
    let (_, v) = load_sets(&spec, dir.path(), TargetKind::ClassIndex, 0).unwrap();
    let v = v.unwrap();
    assert_eq!(
        v.targets,
        Targets::Classes {
            indices: vec![2, 1],
            names: Some(vec!["ant".into(), "bee".into(), "cat".into()])
        }
    );
    let unknown = csv(dir.path(), "valid2.csv", "x,y\n4,cat\n5,dog\n");
    let spec = data_spec(train, Some(unknown), None);
    let msg = load_sets(&spec, dir.path(), TargetKind::ClassIndex, 0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("valid2.csv` line 3: class `dog` does not appear in the training data")
            && msg.contains("(its classes are ant, bee, cat)"),
        "{msg}"
    );
}
