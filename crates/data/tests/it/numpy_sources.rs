//! NumPy sources read from files NumPy itself wrote (tests/fixtures/make_npy_fixtures.py):
//! dtypes, byte orders, Fortran order, `.npz` (plain and compressed), and every bad array.

use std::path::{Path, PathBuf};

use graphc_data::{load_npy, load_npz, Dataset, TargetKind, Targets};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy")
        .join(name)
}

/// `x[i, j] = i + j / 4` for 6 samples of 3 features, as make_npy_fixtures.py writes it.
fn expected_x() -> Vec<f32> {
    (0..6)
        .flat_map(|i| (0..3).map(move |j| i as f32 + j as f32 / 4.0))
        .collect()
}

fn npy(x: &str, y: &str, kind: TargetKind) -> Result<Dataset, String> {
    load_npy(&fixture(x), &fixture(y), kind).map_err(|e| e.to_string())
}

fn npy_err(x: &str, y: &str, kind: TargetKind) -> String {
    let msg = npy(x, y, kind).expect_err("expected an error");
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

fn classes(indices: &[i64]) -> Targets {
    Targets::Classes {
        indices: indices.to_vec(),
        names: None,
    }
}

#[test]
fn float32_features_and_int64_labels_load_as_written() {
    let d = npy("x_f32.npy", "y_i64.npy", TargetKind::ClassIndex).unwrap();
    assert_eq!(d.len(), 6);
    assert_eq!(d.features, expected_x());
    assert_eq!(d.feature_names, vec!["x_f32[0]", "x_f32[1]", "x_f32[2]"]);
    assert_eq!(d.targets, classes(&[0, 1, 2, 0, 1, 2]));
    assert!(
        d.row_location(4).ends_with("y_i64.npy` row 4"),
        "{}",
        d.row_location(4)
    );
}

#[test]
fn fortran_order_and_big_endian_float64_read_in_c_order() {
    for x in ["x_f64_fortran.npy", "x_f64_big_endian.npy"] {
        let d = npy(x, "y_i64.npy", TargetKind::ClassIndex).unwrap();
        assert_eq!(d.features, expected_x(), "{x}");
    }
}

#[test]
fn integer_float_and_bool_labels_become_class_indices() {
    for y in ["y_u8.npy", "y_f32_whole.npy"] {
        let d = npy("x_f32.npy", y, TargetKind::ClassIndex).unwrap();
        assert_eq!(d.targets, classes(&[0, 1, 2, 0, 1, 2]), "{y}");
    }
    let d = npy("x_f32.npy", "y_bool.npy", TargetKind::ClassIndex).unwrap();
    assert_eq!(d.targets, classes(&[0, 1, 0, 0, 1, 0]));
}

#[test]
fn labels_for_a_float_loss_are_one_float_column() {
    let d = npy("x_f32.npy", "y_i64.npy", TargetKind::Float).unwrap();
    assert_eq!(
        d.targets,
        Targets::Floats {
            values: vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
            width: 1
        }
    );
}

#[test]
fn a_two_dimensional_target_is_read_as_float_rows_even_for_class_losses() {
    let d = npy("x_f32.npy", "y_probs.npy", TargetKind::ClassIndex).unwrap();
    let Targets::Floats { values, width } = &d.targets else {
        panic!("expected float targets, got {:?}", d.targets)
    };
    assert_eq!(*width, 3);
    assert_eq!(&values[..6], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn image_arrays_are_flattened_per_sample() {
    let d = npy("images_u8.npy", "y_i64.npy", TargetKind::ClassIndex).unwrap();
    assert_eq!(d.num_features(), 4);
    // pixel [i, r, c] = 10 i + 2 r + c
    assert_eq!(
        &d.features.in_memory().unwrap()[8..12],
        &[20.0, 21.0, 22.0, 23.0]
    );
}

#[test]
fn npz_arrays_load_by_name_from_plain_and_compressed_archives() {
    let d = load_npz(&fixture("data.npz"), "x", "y", TargetKind::ClassIndex).unwrap();
    assert_eq!(d.features, expected_x());
    assert_eq!(d.feature_names, vec!["x[0]", "x[1]", "x[2]"]);
    assert_eq!(d.targets, classes(&[0, 1, 2, 0, 1, 2]));
    assert!(d.row_location(1).ends_with("data.npz` array `y` row 1"));
    let c = load_npz(
        &fixture("data_compressed.npz"),
        "features",
        "labels",
        TargetKind::ClassIndex,
    )
    .unwrap();
    assert_eq!(c.features, expected_x());
    assert_eq!(c.targets, d.targets);
}

#[test]
fn missing_npz_array_lists_the_arrays_of_the_archive() {
    let msg = load_npz(&fixture("data.npz"), "X", "y", TargetKind::ClassIndex)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("data.npz`: no array named `X`; the archive has the arrays `x`, `y`"),
        "{msg}"
    );
}

#[test]
fn nan_feature_is_an_error_naming_the_array_row_and_column() {
    let msg = npy_err("x_nan.npy", "y_i64.npy", TargetKind::ClassIndex);
    // element 7 of a (6, 3) array is row 2, column 1
    assert!(msg.contains("x_nan.npy` row 2, column 1: NaN"), "{msg}");
    assert!(msg.contains("not allowed in features"), "{msg}");
}

#[test]
fn fractional_class_label_is_an_error_naming_the_row() {
    let msg = npy_err("x_f32.npy", "y_f32_half.npy", TargetKind::ClassIndex);
    assert!(
        msg.contains("y_f32_half.npy` row 3: 0.5 is not a class index"),
        "{msg}"
    );
}

#[test]
fn unsupported_dtypes_are_errors_naming_the_dtype() {
    let cases = [
        (
            "x_f32.npy",
            "y_text.npy",
            "dtype `<U1` (text) is not supported",
        ),
        (
            "x_complex.npy",
            "y_i64.npy",
            "dtype `<c8` (complex numbers)",
        ),
        (
            "x_f16.npy",
            "y_i64.npy",
            "dtype `<f2` (a float size other than 32 or 64 bits)",
        ),
        ("x_f32.npy", "y_object.npy", "dtype `|O` (Python objects)"),
    ];
    for (x, y, expected) in cases {
        let msg = npy_err(x, y, TargetKind::ClassIndex);
        assert!(msg.contains(expected), "{x}/{y}: {msg}");
        assert!(msg.contains("astype(np.float32)"), "{msg}");
    }
}

#[test]
fn wrong_shapes_are_errors_naming_both_arrays_and_shapes() {
    let msg = npy_err("x_f32.npy", "y_short.npy", TargetKind::ClassIndex);
    assert!(
        msg.contains("x_f32.npy` has 6 samples (shape (6, 3)) but `")
            && msg.contains("y_short.npy` has 5 (shape (5,))"),
        "{msg}"
    );
    let msg = npy_err("x_f32.npy", "y_3d.npy", TargetKind::Float);
    assert!(
        msg.contains("the target array has shape (6, 2, 2)"),
        "{msg}"
    );
    let msg = npy_err("x_scalar.npy", "y_i64.npy", TargetKind::Float);
    assert!(msg.contains("is a scalar (shape ())"), "{msg}");
}

#[test]
fn empty_array_is_an_empty_data_set_error() {
    let msg = npy_err("x_empty.npy", "y_i64.npy", TargetKind::Float);
    assert!(
        msg.contains(
            "x_empty.npy`: the array has no samples (shape (0, 3)); the data set is empty"
        ),
        "{msg}"
    );
}

#[test]
fn missing_file_and_non_npy_file_are_errors_naming_the_file() {
    let msg = npy_err("nope.npy", "y_i64.npy", TargetKind::Float);
    assert!(
        msg.contains("cannot open data file") && msg.contains("nope.npy"),
        "{msg}"
    );
    let msg = npy_err("data.npz", "y_i64.npy", TargetKind::Float);
    assert!(
        msg.contains("data.npz`: not a NumPy .npy array: it starts with \"PK"),
        "{msg}"
    );
}

#[test]
fn truncated_array_is_an_error_not_a_short_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("x_f32.npy")).unwrap();
    let cut = dir.path().join("cut.npy");
    std::fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
    let msg = load_npy(&cut, &fixture("y_i64.npy"), TargetKind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("promises shape (6, 3) (72 bytes of data) but only 68 bytes follow"),
        "{msg}"
    );
}

#[test]
fn header_with_an_overflowing_shape_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.npy");
    let mut header =
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }"
            .to_vec();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    std::fs::write(&path, &bytes).unwrap();
    let msg = load_npy(&path, &fixture("y_i64.npy"), TargetKind::Float)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("too large to hold in memory"), "{msg}");
}

#[test]
fn a_long_path_is_named_whole_in_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir
        .path()
        .join("a-directory-name-long-enough-that-a-cut-path-would-lose-the-file");
    std::fs::create_dir(&deep).unwrap();
    let (x, y) = (deep.join("x.npy"), deep.join("labels_with_a_half.npy"));
    std::fs::copy(fixture("x_f32.npy"), &x).unwrap();
    std::fs::copy(fixture("y_f32_half.npy"), &y).unwrap();
    let msg = load_npy(&x, &y, TargetKind::ClassIndex)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("`{}` row 3: 0.5", y.display())),
        "{msg}"
    );
}
