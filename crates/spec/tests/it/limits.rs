//! Hostile spec files: deep bracket nesting is refused by a pre-scan at the first too-deep
//! bracket, special files by their type and huge files by their size, all before parsing, and
//! synthetic classes that outnumber the samples at the `classes` key.

use std::path::Path;

use graphc_spec::{parse_file, parse_str, MAX_DEPTH};

use crate::support::assert_err;

#[test]
fn nesting_deeper_than_the_limit_is_refused_at_the_first_too_deep_bracket() {
    let text = format!("seed: 0\nx: {}\n", "[".repeat(100_000));
    let e = parse_str(&text, Path::new("s.yaml")).unwrap_err();
    // `x: ` is 3 columns; bracket 65 is at column 3 + 65.
    assert_err(
        &e,
        2,
        3 + MAX_DEPTH + 1,
        "`[`/`{` nested more than 64 deep; a spec needs only a few levels, flatten it",
    );
    let text = format!("seed: 0\nx: {}\n", "{a: ".repeat(MAX_DEPTH + 1));
    let e = parse_str(&text, Path::new("s.yaml")).unwrap_err();
    assert!(e.message().contains("nested more than 64 deep"), "{e}");
}

#[test]
fn brackets_in_quotes_and_comments_do_not_count_towards_the_depth() {
    let deep = "[".repeat(200);
    for text in [
        format!("seed: 0 # {deep}\n"),
        format!("name: '{deep}'\n"),
        format!("name: \"{deep}\"\n"),
    ] {
        let e = parse_str(&text, Path::new("s.yaml")).unwrap_err();
        assert!(
            !e.message().contains("nested"),
            "quoted or commented brackets counted: {e}"
        );
    }
}

#[test]
fn nesting_within_the_limit_reaches_the_parser() {
    let text = format!("x: {}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    let e = parse_str(&text, Path::new("s.yaml")).unwrap_err();
    assert!(!e.message().contains("nested"), "{e}");
}

#[test]
fn special_files_are_refused_by_type() {
    let e = parse_file(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/dev/zero: the spec file is a character device, not a regular file; give the path of a .yaml file"
    );
    let e = parse_file(Path::new("/")).unwrap_err();
    assert!(
        e.message().starts_with("the spec file is a directory"),
        "{e}"
    );
}

#[test]
fn a_spec_file_over_the_size_limit_is_refused_before_reading() {
    let path = std::env::temp_dir().join(format!("graphc-big-spec-{}.yaml", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    // Sparse: 17 MiB of size without 17 MiB of disk.
    file.set_len(17 << 20).unwrap();
    let e = parse_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        e.message(),
        "the spec file is larger than 16 MiB, far more than any spec; check the path"
    );
}

#[test]
fn synthetic_classes_must_not_outnumber_the_samples() {
    let text =
        "data: {train: {synthetic: {kind: blobs, samples: 100, classes: 9223372036854775808}}}\n";
    let e = parse_str(text, Path::new("s.yaml")).unwrap_err();
    assert_err(
        &e,
        1,
        55,
        "data.train.synthetic.classes: 9223372036854775808 classes for 100 samples; every class needs at least one sample, so use at most 100 classes or more samples",
    );
}
