//! Bad CSV data files: each mistake is one line naming the file, the line and the column, what
//! is wrong and how to fix it (the other formats' mistakes are in numpy_sources.rs and
//! idx_sources.rs).

use std::path::{Path, PathBuf};

use graphc_train::{load_csv, TargetKind};

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("d.csv");
    std::fs::write(&p, text).unwrap();
    p
}

/// The message for `text` with target `y`, with the file's path replaced by `d.csv`.
fn message(text: &str, kind: TargetKind) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), text);
    let msg = load_csv(&path, &["y".into()], None, kind)
        .expect_err("expected an error")
        .to_string();
    assert!(!msg.contains('\n'), "one line: {msg:?}");
    msg.replace(&path.display().to_string(), "d.csv")
}

#[test]
fn ragged_row_names_line_and_both_counts() {
    assert_eq!(
        message("a,b,y\n1,2,0\n3,4\n", TargetKind::ClassIndex),
        "`d.csv` line 3: expected 3 fields as in the header, found 2; fix the row (quote cells that contain commas)"
    );
}

#[test]
fn non_numeric_cell_names_line_column_and_cell() {
    assert_eq!(
        message("a,b,y\n1,2,0\n3,four,1\n", TargetKind::ClassIndex),
        "`d.csv` line 3, column `b`: `four` is not a number; feature cells must be numbers (fix the cell or remove the row)"
    );
}

#[test]
fn a_line_break_inside_a_quoted_cell_is_escaped_in_the_message() {
    assert_eq!(
        message("a,y\n\"1\n2\",0\n", TargetKind::ClassIndex),
        "`d.csv` line 2, column `a`: `1\\n2` is not a number; feature cells must be numbers (fix the cell or remove the row)"
    );
}

#[test]
fn nan_and_infinity_name_line_and_column() {
    assert_eq!(
        message("a,y\n1,0\ninf,1\n", TargetKind::ClassIndex),
        "`d.csv` line 3, column `a`: `inf` is not a finite number; NaN and infinity are not allowed in features (fill in a real value or remove the row)"
    );
    assert_eq!(
        message("a,y\n1,NaN\n", TargetKind::Float),
        "`d.csv` line 2, column `y`: `NaN` is not a finite number; NaN and infinity are not allowed in targets (fill in a real value or remove the row)"
    );
}

#[test]
fn empty_data_sets_say_what_is_missing() {
    assert_eq!(
        message("a,b,y\n", TargetKind::Float),
        "`d.csv`: the file has a header but no data rows; add at least one row of data"
    );
    assert_eq!(
        message("", TargetKind::Float),
        "`d.csv`: the file is empty; it needs a header row naming the columns, then one row per sample"
    );
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.csv");
    let msg = load_csv(&path, &["y".into()], None, TargetKind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(&format!("cannot open data file `{}`: ", path.display()))
            && msg.ends_with("; check that the file exists and the path is right"),
        "{msg}"
    );
}
