//! CSV features left in their file (`Residence::File`, what a rank of data-parallel training
//! loads) give the values of the in-memory form bit for bit — gathered rows, shares, split
//! parts, standardization statistics and standardized rows — whatever the file's quoting,
//! padding, blank lines and line endings; bad input is the same one-line error, and a file
//! changed after loading is an error naming it.

use std::path::Path;

use graphc_data::{load_csv_in, BatchTargets, Dataset, Features, Residence, TargetKind};
use proptest::prelude::*;

use crate::file_features::{gathered, split_and_standardize_alike};
use crate::support::write;

/// Loads `dir/d.csv` with target columns `target` (and the feature columns `features`, when
/// given) with the features where `residence` says.
fn load(
    dir: &Path,
    (target, features): (&[&str], Option<&[&str]>),
    kind: TargetKind,
    residence: Residence,
) -> Result<Dataset, String> {
    let target: Vec<String> = target.iter().map(|s| s.to_string()).collect();
    let features: Option<Vec<String>> = features.map(|f| f.iter().map(|s| s.to_string()).collect());
    load_csv_in(
        &dir.join("d.csv"),
        &target,
        features.as_deref(),
        kind,
        residence,
    )
    .map_err(|e| e.to_string())
}

/// A cell holding `v`, written as the `style`-th of several ways a CSV file may write it.
fn number_cell(v: f32, style: u8) -> String {
    match style % 6 {
        0 => format!("{v}"),
        1 => format!("{v:e}"),
        2 => format!("{v:.3}"),
        3 => format!("\"{v}\""),
        4 => format!("  {v}\t"),
        _ => format!("\" {v:E} \""),
    }
}

/// Text labels, some needing quotes (a comma, a quote, a line break inside).
const LABELS: [&str; 5] = ["a", "\"b,c\"", "\"d\ne\"", "\"say \"\"f\"\"\"", "g h"];

/// The CSV text of `n` rows: `width` feature columns `x0..`, a column `note` of text, and the
/// target `y` (a label of [`LABELS`], a whole number, or a float per `target_style`), each
/// row's cells written by `styles`, rows ended by `crlf` line breaks, a blank line after the
/// rows `blank` marks, and a line break after the last row unless `open_end`.
struct Text {
    n: usize,
    width: usize,
    target_style: u8,
    crlf: bool,
    open_end: bool,
}

impl Text {
    fn render(&self, values: &[f32], styles: &[u8], blank: &[bool]) -> String {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut out = String::new();
        let names: Vec<String> = (0..self.width).map(|j| format!("x{j}")).collect();
        out.push_str(&format!("{},note,y{eol}", names.join(",")));
        for row in 0..self.n {
            let style = |j: usize| styles[(row * 7 + j) % styles.len()];
            let mut cells: Vec<String> = (0..self.width)
                .map(|j| number_cell(values[(row * self.width + j) % values.len()], style(j)))
                .collect();
            cells.push(LABELS[row % LABELS.len()].to_string());
            let target = match self.target_style % 3 {
                0 => LABELS[(row * 3 + 1) % LABELS.len()].to_string(),
                1 => format!("{}", (row * 5) % 4),
                _ => number_cell(values[(row * 11) % values.len()], style(9)),
            };
            cells.push(target);
            out.push_str(&cells.join(","));
            if row + 1 < self.n || !self.open_end {
                out.push_str(eol);
            }
            if blank[row % blank.len()] && row + 1 < self.n {
                out.push_str(eol);
            }
        }
        out
    }

    fn kind(&self) -> TargetKind {
        match self.target_style % 3 {
            0 | 1 => TargetKind::ClassIndex,
            _ => TargetKind::Float,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn csv_file_rows_gather_split_and_standardize_as_the_in_memory_rows(
        n in 2usize..40,
        width in 1usize..4,
        values in prop::collection::vec(-1.0e6f32..1.0e6, 1..50),
        styles in prop::collection::vec(any::<u8>(), 1..20),
        blank in prop::collection::vec(prop::bool::weighted(0.2), 1..10),
        (target_style, crlf, open_end) in (0u8..3, any::<bool>(), any::<bool>()),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        held in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        sample_std in any::<bool>(),
    ) {
        let text = Text { n, width, target_style, crlf, open_end };
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "d.csv", text.render(&values, &styles, &blank).as_bytes());
        // Every other column but `note` as features: the features in reverse order.
        let names: Vec<String> = (0..width).rev().map(|j| format!("x{j}")).collect();
        let features: Vec<&str> = names.iter().map(String::as_str).collect();
        let columns = (&["y"][..], Some(&features[..]));
        let memory = load(dir.path(), columns, text.kind(), Residence::Memory).unwrap();
        let file = load(dir.path(), columns, text.kind(), Residence::File).unwrap();
        prop_assert!(matches!(file.features, Features::File(_)), "the rows stay in the file");
        prop_assert_eq!(file.len(), n);
        prop_assert_eq!(&file.feature_names, &memory.feature_names);
        prop_assert_eq!(&file.targets, &memory.targets);
        let rows: Vec<usize> = picks.iter().map(|i| i.index(n)).collect();
        prop_assert_eq!(gathered(&file, &rows), gathered(&memory, &rows));
        let all: Vec<usize> = (0..n).collect();
        prop_assert_eq!(gathered(&file, &all), gathered(&memory, &all));

        split_and_standardize_alike(&memory, &file, &picks, &held, sample_std)?;
    }
}

#[test]
fn rows_longer_than_one_read_are_gathered_whole() {
    // Rows of ~40 KiB: runs of consecutive rows are cut at 1 MiB, a row never.
    let dir = tempfile::tempdir().unwrap();
    let width = 4000;
    let header: Vec<String> = (0..width).map(|j| format!("c{j}")).collect();
    let mut text = format!("{},y\n", header.join(","));
    for row in 0..60 {
        let cells: Vec<String> = (0..width)
            .map(|j| format!("{}.125", (row * 31 + j) % 1000))
            .collect();
        text.push_str(&format!("{},{}\n", cells.join(","), row % 2));
    }
    write(dir.path(), "d.csv", text.as_bytes());
    let columns = (&["y"][..], None);
    let memory = load(
        dir.path(),
        columns,
        TargetKind::ClassIndex,
        Residence::Memory,
    )
    .unwrap();
    let file = load(dir.path(), columns, TargetKind::ClassIndex, Residence::File).unwrap();
    let rows: Vec<usize> = (0..60).chain([59, 0, 30]).collect();
    assert_eq!(gathered(&file, &rows), gathered(&memory, &rows));
}

#[test]
fn bad_cells_are_the_same_one_line_error_left_in_the_file() {
    let cases: [(&str, TargetKind); 6] = [
        ("a,b,y\n1,2,0\n3,4\n", TargetKind::ClassIndex),
        ("a,b,y\n1,2,0\n\n3,four,1\n", TargetKind::ClassIndex),
        ("a,y\n1,0\ninf,1\n", TargetKind::ClassIndex),
        ("a,y\n1,0\n2,1.5\n", TargetKind::ClassIndex),
        ("a,y\n1,NaN\n", TargetKind::Float),
        ("a,b,y\n", TargetKind::Float),
    ];
    for (text, kind) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "d.csv", text.as_bytes());
        let columns = (&["y"][..], None);
        let memory = load(dir.path(), columns, kind, Residence::Memory).unwrap_err();
        let file = load(dir.path(), columns, kind, Residence::File).unwrap_err();
        assert_eq!(file, memory, "{text:?}");
        assert!(!file.contains('\n') && file.contains("d.csv`"), "{file}");
    }
}

#[test]
fn a_csv_file_truncated_or_rewritten_after_loading_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = "a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n";
    let path = write(dir.path(), "d.csv", text.as_bytes());
    let columns = (&["y"][..], None);
    let kind = TargetKind::ClassIndex;
    let d = load(dir.path(), columns, kind, Residence::File).unwrap();
    let (mut x, mut y) = (Vec::new(), BatchTargets::Floats(Vec::new()));
    d.gather(&[3, 0], &mut x, &mut y).unwrap();
    assert_eq!(x, vec![7.0, 8.0, 1.0, 2.0]);
    let changed = format!(
        "`{}`: the file changed on disk during training",
        path.display()
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(20)
        .unwrap();
    for rows in [&[3usize][..], &[0]] {
        let msg = d.gather(rows, &mut x, &mut y).unwrap_err().to_string();
        assert!(msg.starts_with(&changed), "{msg}");
    }
    // Rewritten with other cells of the same size, after the clock's tick.
    write(dir.path(), "d.csv", text.as_bytes());
    let d = load(dir.path(), columns, kind, Residence::File).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    write(dir.path(), "d.csv", text.replace('3', "x").as_bytes());
    let msg = d.gather(&[1], &mut x, &mut y).unwrap_err().to_string();
    assert!(msg.starts_with(&changed), "{msg}");
    // The same size and time, but a row that no longer parses as it did, or that moved.
    for other in [text.replace('3', "x"), text.replacen("3,4", "3\n4", 1)] {
        write(dir.path(), "d.csv", text.as_bytes());
        let d = load(dir.path(), columns, kind, Residence::File).unwrap();
        let time = std::fs::metadata(&path).unwrap().modified().unwrap();
        write(dir.path(), "d.csv", other.as_bytes());
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_modified(time).unwrap();
        let msg = d.gather(&[1], &mut x, &mut y).unwrap_err().to_string();
        assert!(msg.starts_with(&changed), "{other:?}: {msg}");
    }
}
