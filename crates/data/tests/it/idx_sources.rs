//! IDX sources (the MNIST format), plain and gzipped, and every bad file.

use std::path::{Path, PathBuf};

use graphc_data::{load_idx, TargetKind, Targets};

use crate::support::{gzip, write};

/// An IDX file: magic `00 00 code ndim`, big-endian u32 dimensions, then `data`.
fn idx_bytes(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// Three 2×2 images with pixel [i, r, c] = 10 i + 2 r + c, and labels 7, 0, 3.
fn mnist_like(dir: &Path, gzipped: bool) -> (PathBuf, PathBuf) {
    let pixels: Vec<u8> = (0..3u8)
        .flat_map(|i| (0..4u8).map(move |k| 10 * i + k))
        .collect();
    let images = idx_bytes(0x08, &[3, 2, 2], &pixels);
    let labels = idx_bytes(0x08, &[3], &[7, 0, 3]);
    if gzipped {
        (
            write(dir, "images.gz", &gzip(&images)),
            write(dir, "labels.gz", &gzip(&labels)),
        )
    } else {
        (
            write(dir, "images-idx3-ubyte", &images),
            write(dir, "labels-idx1-ubyte", &labels),
        )
    }
}

fn load_err(images: &Path, labels: &Path, kind: TargetKind) -> String {
    let msg = load_idx(images, labels, kind)
        .expect_err("expected an error")
        .to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn plain_and_gzipped_files_load_the_same_flattened_images_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    for gzipped in [false, true] {
        let (images, labels) = mnist_like(dir.path(), gzipped);
        let d = load_idx(&images, &labels, TargetKind::ClassIndex).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.num_features(), 4);
        assert_eq!(d.feature_names[3], "pixel[3]");
        assert_eq!(
            &d.features.in_memory().unwrap()[4..8],
            &[10.0, 11.0, 12.0, 13.0]
        );
        assert_eq!(
            d.targets,
            Targets::Classes {
                indices: vec![7, 0, 3],
                names: None
            }
        );
        assert!(
            d.row_location(2).ends_with(" item 2"),
            "{}",
            d.row_location(2)
        );
    }
}

#[test]
fn signed_and_float_types_decode_big_endian() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Vec::new();
    for v in [-1.5f32, 2.25] {
        data.extend_from_slice(&v.to_be_bytes());
    }
    let images = write(dir.path(), "f32", &idx_bytes(0x0D, &[2, 1], &data));
    let mut labels = Vec::new();
    for v in [-300i16, 5] {
        labels.extend_from_slice(&v.to_be_bytes());
    }
    let labels = write(dir.path(), "i16", &idx_bytes(0x0B, &[2], &labels));
    let d = load_idx(&images, &labels, TargetKind::Float).unwrap();
    assert_eq!(d.features, vec![-1.5, 2.25]);
    assert_eq!(
        d.targets,
        Targets::Floats {
            values: vec![-300.0, 5.0],
            width: 1
        }
    );
}

#[test]
fn magic_mismatch_is_an_error_showing_the_bytes_found() {
    let dir = tempfile::tempdir().unwrap();
    let (_, labels) = mnist_like(dir.path(), false);
    let csv = write(dir.path(), "iris.csv", b"a,b,y\n1,2,0\n");
    let msg = load_err(&csv, &labels, TargetKind::ClassIndex);
    assert!(
        msg.contains("iris.csv`: not an IDX file: it starts with 61 2C 62 2C"),
        "{msg}"
    );
    let bad_code = write(dir.path(), "code", &idx_bytes(0x0A, &[1], &[0]));
    let msg = load_err(&bad_code, &labels, TargetKind::ClassIndex);
    assert!(msg.contains("unknown IDX type code 0A"), "{msg}");
}

#[test]
fn truncated_and_oversized_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, labels) = mnist_like(dir.path(), false);
    let short = write(dir.path(), "short", &idx_bytes(0x08, &[3, 2, 2], &[0; 11]));
    let msg = load_err(&short, &labels, TargetKind::ClassIndex);
    assert!(
        msg.contains(
            "dimensions [3, 2, 2] need 12 bytes of data but the file has 11; it is truncated"
        ),
        "{msg}"
    );
    let short_gz = write(
        dir.path(),
        "short.gz",
        &gzip(&idx_bytes(0x08, &[3, 2, 2], &[0; 11])),
    );
    let msg = load_err(&short_gz, &labels, TargetKind::ClassIndex);
    assert!(
        msg.contains("ends inside its data; it is truncated"),
        "{msg}"
    );
    let long_gz = write(
        dir.path(),
        "long.gz",
        &gzip(&idx_bytes(0x08, &[3, 2, 2], &[0; 13])),
    );
    let msg = load_err(&long_gz, &labels, TargetKind::ClassIndex);
    assert!(
        msg.contains("the data goes on after the 12 values"),
        "{msg}"
    );
}

#[test]
fn corrupt_gzip_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, labels) = mnist_like(dir.path(), false);
    let mut bytes = gzip(&idx_bytes(0x08, &[3, 2, 2], &[9; 12]));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    bytes[mid + 1] ^= 0xff;
    let bad = write(dir.path(), "bad.gz", &bytes);
    let msg = load_err(&bad, &labels, TargetKind::ClassIndex);
    assert!(msg.contains("bad.gz`"), "{msg}");
}

#[test]
fn counts_that_differ_and_swapped_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = mnist_like(dir.path(), false);
    let two = write(dir.path(), "two", &idx_bytes(0x08, &[2], &[1, 2]));
    let msg = load_err(&images, &two, TargetKind::ClassIndex);
    assert!(
        msg.contains("has 3 items but") && msg.contains("has 2 labels"),
        "{msg}"
    );
    let msg = load_err(&labels, &images, TargetKind::ClassIndex);
    assert!(msg.contains("are `images` and `labels` swapped?"), "{msg}");
}

#[test]
fn empty_file_and_missing_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = mnist_like(dir.path(), false);
    let none = write(dir.path(), "none", &idx_bytes(0x08, &[0, 2, 2], &[]));
    let none_labels = write(dir.path(), "none-labels", &idx_bytes(0x08, &[0], &[]));
    let msg = load_err(&none, &none_labels, TargetKind::ClassIndex);
    assert!(msg.contains("the file has no items"), "{msg}");
    let msg = load_err(&images, &dir.path().join("missing"), TargetKind::ClassIndex);
    assert!(
        msg.contains("cannot open data file") && msg.contains("missing"),
        "{msg}"
    );
    let empty = write(dir.path(), "empty", b"");
    let msg = load_err(&empty, &labels, TargetKind::ClassIndex);
    assert!(msg.contains("ends inside the 4-byte magic number"), "{msg}");
}

#[test]
fn nan_pixel_is_an_error_naming_item_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Vec::new();
    for v in [0.0f32, 1.0, f32::NAN, 3.0] {
        data.extend_from_slice(&v.to_be_bytes());
    }
    let images = write(dir.path(), "nan", &idx_bytes(0x0D, &[2, 2], &data));
    let labels = write(dir.path(), "labels", &idx_bytes(0x08, &[2], &[0, 1]));
    let msg = load_err(&images, &labels, TargetKind::ClassIndex);
    assert!(
        msg.contains("item 1, value 0: NaN is not a finite number"),
        "{msg}"
    );
}
