//! CSV sources: a header row, quoted fields, numeric features, and class targets given as whole
//! numbers or as text labels (numbered in sorted order). Features are read into memory, or
//! (`Residence::File`) checked and left in the file behind an index of where each row starts
//! ([`CsvRows`]), parsed again by the same code when a row is gathered.
//!
//! Line numbers in error messages count as a spreadsheet numbers rows: the header is line 1 and
//! data row `i` (0-based) is line `i + 2` (see [`csv_line`]); blank lines, which the CSV reader
//! skips, are not counted, and a quoted cell spanning several physical lines is one row.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::ops::Range;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use super::{
    open_data_file, quoted, read_failed, shown, whole, Dataset, Origin, Residence, RowUnit,
    TargetKind, Targets,
};
use crate::error::DataError;
use crate::features::{stamped, Layout};
use crate::{Features, FileRows};

/// The CSV line number of data row `row` (0-based): the header is line 1, the first data row line 2.
pub fn csv_line(row: usize) -> u64 {
    (row as u64).saturating_add(2)
}

/// Loads a CSV file with a header row into a [`Dataset`].
///
/// `target` names the target columns; the features are `features` in that order when given,
/// otherwise every other column in file order. Cells are trimmed of surrounding whitespace and
/// may be quoted. Features (and `Float` targets) must be finite `f32` numbers. A `ClassIndex`
/// target is a single column: when every cell is a whole number (`2`, `2.0`, `-100`) those are
/// the indices (range checks are the caller's); otherwise the cells are text labels, numbered
/// `0..` in sorted (byte) order and returned in `names`.
pub fn load_csv(
    path: &Path,
    target: &[String],
    features: Option<&[String]>,
    kind: TargetKind,
) -> Result<Dataset, DataError> {
    load_csv_in(path, target, features, kind, Residence::Memory)
}

/// [`load_csv`], keeping the features where `residence` says: with [`Residence::File`] every
/// cell is still parsed and checked here (the same errors), but only where each row starts is
/// kept, and a gather parses its rows again (the same values).
pub fn load_csv_in(
    path: &Path,
    target: &[String],
    features: Option<&[String]>,
    kind: TargetKind,
    residence: Residence,
) -> Result<Dataset, DataError> {
    let mut reader = open_csv(path)?;
    let mut sink = match residence {
        Residence::Memory => Sink::Memory(Vec::new()),
        Residence::File => Sink::File {
            file: stamped(reader.file()?, path)?,
            starts: Vec::new(),
        },
    };
    let header = reader.headers()?;
    let columns: Vec<String> = header.iter().map(str::to_owned).collect();
    let (target_cols, feature_cols) = select_columns(path, &columns, target, features, kind)?;

    let ncols = columns.len();
    let mut row_values: Vec<f32> = Vec::with_capacity(feature_cols.len());
    let mut float_targets: Vec<f32> = Vec::new();
    let mut labels = LabelInterner::default();
    let mut record = ::csv::StringRecord::new();
    let mut row: usize = 0;
    loop {
        let line = csv_line(row);
        let start = reader.position();
        if !reader.read_record(&mut record, line)? {
            break;
        }
        if record.len() != ncols {
            return Err(DataError::CsvRow {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "expected {ncols} fields as in the header, found {}; fix the row (quote cells that contain commas)",
                    record.len()
                ),
            });
        }
        row_values.clear();
        for &c in &feature_cols {
            let value = parse_number(&record[c], "feature")
                .map_err(|message| cell_error(path, line, &columns[c], message))?;
            row_values.push(value);
        }
        match &mut sink {
            Sink::Memory(values) => values.extend_from_slice(&row_values),
            Sink::File { starts, .. } => starts.push(start),
        }
        match kind {
            TargetKind::Float => {
                for &c in &target_cols {
                    let value = parse_number(&record[c], "target")
                        .map_err(|message| cell_error(path, line, &columns[c], message))?;
                    float_targets.push(value);
                }
            }
            TargetKind::ClassIndex => {
                // `select_columns` guarantees exactly one target column for class indices.
                for &c in &target_cols {
                    labels
                        .push(&record[c], line)
                        .map_err(|message| cell_error(path, line, &columns[c], message))?;
                }
            }
        }
        row += 1;
    }
    if row == 0 {
        return Err(DataError::Csv {
            path: path.to_path_buf(),
            message: "the file has a header but no data rows; add at least one row of data".into(),
        });
    }

    let targets = match kind {
        TargetKind::Float => Targets::Floats {
            values: float_targets,
            width: target_cols.len(),
        },
        TargetKind::ClassIndex => {
            let column = target_cols
                .first()
                .map(|&c| columns[c].as_str())
                .unwrap_or("");
            labels.finish(path, column)?
        }
    };
    let features = match sink {
        Sink::Memory(values) => Features::Memory(values),
        Sink::File { file, mut starts } => {
            starts.push(reader.position());
            let layout = Layout::Csv(CsvRows {
                starts: starts.into(),
                columns: feature_cols.as_slice().into(),
                fields: ncols,
            });
            let names = (quoted(path), path.to_path_buf());
            Features::File(FileRows::new(
                file,
                names,
                layout,
                (row, feature_cols.len()),
            ))
        }
    };
    Ok(Dataset {
        features,
        feature_names: feature_cols.iter().map(|&c| columns[c].clone()).collect(),
        targets,
        origin: Origin::single(quoted(path), RowUnit::CsvLine),
    })
}

/// Where [`load_csv_in`] puts the feature values it parses.
enum Sink {
    /// Every row's values, row-major.
    Memory(Vec<f32>),
    /// None: the file (with its stamp before the rows were read) and where each row starts.
    File {
        file: (std::fs::File, crate::features::Stamp),
        starts: Vec<u64>,
    },
}

/// A CSV file's data rows as features left in the file: data row `i` is the bytes
/// `starts[i]..starts[i + 1]` (blank lines after it included), `fields` cells, the features in
/// cells `columns`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CsvRows {
    /// Where each data row starts, then where the last one ends.
    starts: Arc<[u64]>,
    /// The feature columns, in feature order.
    columns: Arc<[usize]>,
    /// The cells of every row (the header's).
    fields: usize,
}

impl CsvRows {
    /// The bytes of data rows `rows` (consecutive).
    pub(crate) fn span(&self, rows: &Range<usize>) -> Range<u64> {
        self.starts[rows.start]..self.starts[rows.end]
    }

    /// Appends the features of the `count` rows that `bytes` (a [`CsvRows::span`]) holds,
    /// parsed as [`load_csv_in`] parsed them; `None` if they are not `count` such rows, as
    /// loading found them (the file changed since).
    pub(crate) fn decode(&self, bytes: &[u8], count: usize, out: &mut Vec<f32>) -> Option<()> {
        // A span starts where a row starts, so a reader of its own parses it as the loader's did.
        let mut reader = reader_builder().has_headers(false).from_reader(bytes);
        let mut record = ::csv::StringRecord::new();
        for _ in 0..count {
            if !reader.read_record(&mut record).ok()? || record.len() != self.fields {
                return None;
            }
            for &c in self.columns.iter() {
                out.push(parse_number(&record[c], "feature").ok()?);
            }
        }
        (!reader.read_record(&mut record).ok()?).then_some(())
    }
}

/// Resolves the target and feature column names to header indices, checking them.
fn select_columns(
    path: &Path,
    columns: &[String],
    target: &[String],
    features: Option<&[String]>,
    kind: TargetKind,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let csv_error = |message: String| DataError::Csv {
        path: path.to_path_buf(),
        message,
    };
    if columns.is_empty() || (columns.len() == 1 && columns[0].is_empty()) {
        return Err(csv_error(
            "the file is empty; it needs a header row naming the columns, then one row per sample"
                .into(),
        ));
    }
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(columns.len());
    for (i, name) in columns.iter().enumerate() {
        if let Some(first) = index.insert(name.as_str(), i) {
            return Err(csv_error(format!(
                "the header names column `{}` twice (columns {} and {}); rename one of them",
                shown(name),
                first + 1,
                i + 1
            )));
        }
    }
    let available = graphc_spec::shown_items(
        &columns
            .iter()
            .map(|c| format!("`{}`", shown(c)))
            .collect::<Vec<_>>(),
    );
    let lookup = |name: &String, role: &str| {
        index.get(name.as_str()).copied().ok_or_else(|| {
            csv_error(format!(
                "no column named `{}` (a {role} in the spec); the columns are {available}; fix the name (names are case-sensitive)",
                shown(name)
            ))
        })
    };

    if target.is_empty() {
        return Err(csv_error(
            "no target column given; name the target column(s) under `target:`".into(),
        ));
    }
    let mut target_cols = Vec::with_capacity(target.len());
    for name in target {
        let c = lookup(name, "target")?;
        if target_cols.contains(&c) {
            return Err(csv_error(format!(
                "target column `{}` is listed twice; list each column once",
                shown(name)
            )));
        }
        target_cols.push(c);
    }
    if kind == TargetKind::ClassIndex && target_cols.len() != 1 {
        return Err(csv_error(format!(
            "this loss needs one class-index target column, but {} are given ({}); give a single column of class indices or labels",
            target.len(),
            super::listing(target)
        )));
    }

    let feature_cols = match features {
        Some(names) => {
            if names.is_empty() {
                return Err(csv_error(
                    "the feature list is empty; list at least one feature column, or leave `features` out to use every non-target column".into(),
                ));
            }
            let mut cols = Vec::with_capacity(names.len());
            for name in names {
                let c = lookup(name, "feature")?;
                if target_cols.contains(&c) {
                    return Err(csv_error(format!(
                        "column `{}` is both a target and a feature; remove it from one of the lists",
                        shown(name)
                    )));
                }
                if cols.contains(&c) {
                    return Err(csv_error(format!(
                        "feature column `{}` is listed twice; list each column once",
                        shown(name)
                    )));
                }
                cols.push(c);
            }
            cols
        }
        None => {
            let cols: Vec<usize> = (0..columns.len())
                .filter(|c| !target_cols.contains(c))
                .collect();
            if let Some(&c) = cols.iter().find(|&&c| columns[c].is_empty()) {
                return Err(csv_error(format!(
                    "column {} has no name in the header, so it would be used as a feature; name it, or list the feature columns under `features:`",
                    c + 1
                )));
            }
            if cols.is_empty() {
                return Err(csv_error(
                    "there are no feature columns: every column is a target; add feature columns to the file".into(),
                ));
            }
            cols
        }
    };
    Ok((target_cols, feature_cols))
}

/// Parses a feature or float-target cell as a finite `f32`, or says what is wrong with it.
fn parse_number(cell: &str, role: &str) -> Result<f32, String> {
    if cell.is_empty() {
        return Err(format!(
            "the cell is empty; every {role} needs a number (fill it in or remove the row)"
        ));
    }
    match cell.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => {
            if cell.parse::<f64>().is_ok_and(f64::is_finite) {
                Err(format!(
                    "`{}` is too large for a 32-bit float (largest is about 3.4e38); rescale the column",
                    shown(cell)
                ))
            } else {
                Err(format!(
                    "`{}` is not a finite number; NaN and infinity are not allowed in {role}s (fill in a real value or remove the row)",
                    shown(cell)
                ))
            }
        }
        Err(_) => Err(format!(
            "`{}` is not a number; {role} cells must be numbers (fix the cell or remove the row)",
            shown(cell)
        )),
    }
}

/// Builds a [`DataError::CsvCell`].
fn cell_error(path: &Path, line: u64, column: &str, message: String) -> DataError {
    DataError::CsvCell {
        path: path.to_path_buf(),
        line,
        column: shown(column),
        message,
    }
}

/// Turns an error of the CSV reader into a [`DataError`] (the line is `None` for the header).
fn read_error(path: &Path, line: Option<u64>, err: ::csv::Error) -> DataError {
    let line = line.unwrap_or(1);
    match err.into_kind() {
        ::csv::ErrorKind::Io(e) if is_record_too_long(&e) => DataError::CsvRow {
            path: path.to_path_buf(),
            line,
            message: format!(
                "the row is longer than {}, the most a CSV row may hold; check that this is a CSV file with one row per line",
                crate::byte_size(MAX_RECORD)
            ),
        },
        ::csv::ErrorKind::Io(e) => read_failed(path, &e),
        ::csv::ErrorKind::Utf8 { err, .. } => DataError::CsvRow {
            path: path.to_path_buf(),
            line,
            message: format!(
                "field {} is not valid UTF-8 text; save the file as UTF-8",
                err.field() + 1
            ),
        },
        other => DataError::CsvRow {
            path: path.to_path_buf(),
            line,
            message: format!("cannot read the row ({other:?}); fix the row"),
        },
    }
}

/// A CSV file opened for reading row by row (header first, cells trimmed, rows of any length
/// accepted by the reader so the caller can say which is wrong), each row at most
/// [`MAX_RECORD`] bytes.
pub struct CsvFile {
    reader: ::csv::Reader<RecordLimit<std::fs::File>>,
    record_start: Rc<Cell<u64>>,
    path: std::path::PathBuf,
}

/// Opens a CSV data file (refusing FIFOs, devices and directories, see [`open_data_file`]).
pub fn open_csv(path: &Path) -> Result<CsvFile, DataError> {
    let file = open_data_file(path)?;
    let record_start = Rc::new(Cell::new(0));
    let reader = reader_builder().has_headers(true).from_reader(RecordLimit {
        inner: file,
        delivered: 0,
        record_start: Rc::clone(&record_start),
    });
    Ok(CsvFile {
        reader,
        record_start,
        path: path.to_path_buf(),
    })
}

/// How every CSV reader here reads: rows of any length (the caller says which is wrong), cells
/// trimmed. One place, so rows parsed again from their file read as they were loaded.
fn reader_builder() -> ::csv::ReaderBuilder {
    let mut builder = ::csv::ReaderBuilder::new();
    builder.flexible(true).trim(::csv::Trim::All);
    builder
}

impl CsvFile {
    /// Another handle to the open file, for reading its rows again.
    fn file(&self) -> Result<std::fs::File, DataError> {
        self.reader
            .get_ref()
            .inner
            .try_clone()
            .map_err(|e| read_failed(&self.path, &e))
    }

    /// The byte offset where the next row starts (after the header once it is read).
    fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The header row (line 1).
    pub fn headers(&mut self) -> Result<::csv::StringRecord, DataError> {
        let header = self
            .reader
            .headers()
            .map_err(|e| read_error(&self.path, None, e))?
            .clone();
        self.record_start.set(self.reader.position().byte());
        Ok(header)
    }

    /// Reads the next row into `record`, `false` at the end; `line` is its line for messages.
    pub fn read_record(
        &mut self,
        record: &mut ::csv::StringRecord,
        line: u64,
    ) -> Result<bool, DataError> {
        let more = self
            .reader
            .read_record(record)
            .map_err(|e| read_error(&self.path, Some(line), e))?;
        self.record_start.set(self.reader.position().byte());
        Ok(more)
    }
}

/// The most bytes one CSV row (header included) may take, so that a file without line
/// breaks is refused early instead of being buffered whole.
pub const MAX_RECORD: u64 = 16 << 20;

/// The file under the CSV reader: fails once the row being read (from `record_start`, set
/// after each row) exceeds [`MAX_RECORD`] bytes, so memory stays bounded whatever the file.
struct RecordLimit<R> {
    inner: R,
    /// Bytes handed to the CSV reader so far.
    delivered: u64,
    /// The byte offset where the row being read starts.
    record_start: Rc<Cell<u64>>,
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.delivered.saturating_sub(self.record_start.get()) > MAX_RECORD {
            return Err(io::Error::other(RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        self.delivered += n as u64;
        Ok(n)
    }
}

/// The marker error of [`RecordLimit`].
#[derive(Debug)]
struct RecordTooLong;

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CSV row too long")
    }
}

impl std::error::Error for RecordTooLong {}

/// Whether `e` is [`RecordLimit`]'s error.
fn is_record_too_long(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<RecordTooLong>().is_some())
}

/// What a class-column cell holds.
enum ClassCell {
    /// A whole number.
    Whole(i64),
    /// A number that is not whole (or NaN, infinite, or out of `i64` range).
    NotWhole,
    /// Text that is not a number.
    Text,
}

/// Classifies a class-column cell.
fn classify(cell: &str) -> ClassCell {
    if let Ok(v) = cell.parse::<i64>() {
        return ClassCell::Whole(v);
    }
    match cell.parse::<f64>() {
        Ok(v) => whole(v).map_or(ClassCell::NotWhole, ClassCell::Whole),
        Err(_) => ClassCell::Text,
    }
}

/// Collects a class column while streaming: each distinct cell text gets an id, each row the id of its text.
#[derive(Default)]
struct LabelInterner {
    /// The id of each distinct cell text.
    ids: HashMap<String, i64>,
    /// Each distinct text, by id, with the line it first appeared on.
    texts: Vec<(String, u64)>,
    /// Each row's text id; remapped in place to the final class index by `finish`.
    rows: Vec<i64>,
}

impl LabelInterner {
    /// Records one row's cell.
    fn push(&mut self, cell: &str, line: u64) -> Result<(), String> {
        if cell.is_empty() {
            return Err(
                "the cell is empty; every row needs a class (a whole number or a text label)"
                    .into(),
            );
        }
        let id = match self.ids.get(cell) {
            Some(&id) => id,
            None => {
                let id = self.texts.len() as i64;
                self.ids.insert(cell.to_owned(), id);
                self.texts.push((cell.to_owned(), line));
                id
            }
        };
        self.rows.push(id);
        Ok(())
    }

    /// Decides between whole numbers and text labels and produces the targets.
    fn finish(self, path: &Path, column: &str) -> Result<Targets, DataError> {
        let LabelInterner {
            texts, mut rows, ..
        } = self;
        let kinds: Vec<ClassCell> = texts.iter().map(|(t, _)| classify(t)).collect();
        if kinds.iter().any(|k| matches!(k, ClassCell::Text)) {
            let mut order: Vec<usize> = (0..texts.len()).collect();
            order.sort_by(|&a, &b| texts[a].0.cmp(&texts[b].0));
            let mut rank = vec![0i64; texts.len()];
            for (r, &id) in order.iter().enumerate() {
                rank[id] = r as i64;
            }
            for v in &mut rows {
                *v = rank[*v as usize];
            }
            let names = order.iter().map(|&id| texts[id].0.clone()).collect();
            return Ok(Targets::Classes {
                indices: rows,
                names: Some(names),
            });
        }
        let first_bad = kinds
            .iter()
            .zip(&texts)
            .filter(|(k, _)| matches!(k, ClassCell::NotWhole))
            .map(|(_, t)| t)
            .min_by_key(|(_, line)| *line);
        if let Some((text, line)) = first_bad {
            return Err(cell_error(
                path,
                *line,
                column,
                format!(
                    "`{}` is not a whole number; class-index targets must be whole numbers (0, 1, 2, ...) in every row, or text labels",
                    shown(text)
                ),
            ));
        }
        let values: Vec<i64> = kinds
            .iter()
            .map(|k| match k {
                ClassCell::Whole(v) => *v,
                ClassCell::NotWhole | ClassCell::Text => 0,
            })
            .collect();
        for v in &mut rows {
            *v = values[*v as usize];
        }
        Ok(Targets::Classes {
            indices: rows,
            names: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchTargets;
    use std::fs::File;
    use std::io::Write;

    fn write_csv(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data.csv");
        let mut f = File::create(&path).expect("create");
        f.write_all(text.as_bytes()).expect("write");
        (dir, path)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn load(
        text: &str,
        target: &[&str],
        features: Option<&[&str]>,
        kind: TargetKind,
    ) -> Result<Dataset, DataError> {
        let (_dir, path) = write_csv(text);
        let features = features.map(names);
        load_csv(&path, &names(target), features.as_deref(), kind)
    }

    fn load_err(
        text: &str,
        target: &[&str],
        features: Option<&[&str]>,
        kind: TargetKind,
    ) -> String {
        match load(text, target, features, kind) {
            Ok(d) => panic!("expected an error, got {d:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Asserts that `msg` contains every one of `parts`.
    #[track_caller]
    fn assert_mentions(msg: &str, parts: &[&str]) {
        for part in parts {
            assert!(msg.contains(part), "expected {part:?} in: {msg}");
        }
    }

    const IRIS: &str = "sepal_length,sepal_width,petal_length,petal_width,species
5.1,3.5,1.4,0.2,setosa
7.0,3.2,4.7,1.4,versicolor
6.3,3.3,6.0,2.5,virginica
4.9,3.0,1.4,0.2,setosa
";

    #[test]
    fn text_class_column_maps_labels_in_sorted_order() {
        let d = load(IRIS, &["species"], None, TargetKind::ClassIndex).unwrap();
        assert_eq!(d.len(), 4);
        assert_eq!(d.num_features(), 4);
        assert_eq!(
            d.feature_names,
            names(&["sepal_length", "sepal_width", "petal_length", "petal_width"])
        );
        assert_eq!(&d.features.in_memory().unwrap()[..4], &[5.1, 3.5, 1.4, 0.2]);
        assert_eq!(
            &d.features.in_memory().unwrap()[12..],
            &[4.9, 3.0, 1.4, 0.2]
        );
        assert_eq!(
            d.targets,
            Targets::Classes {
                indices: vec![0, 1, 2, 0],
                names: Some(names(&["setosa", "versicolor", "virginica"])),
            }
        );
    }

    #[test]
    fn text_labels_sort_by_bytes_and_mixed_numeric_cells_become_labels() {
        let d = load(
            "x,y\n1,b\n2,10\n3,B\n4,2\n5,b\n",
            &["y"],
            None,
            TargetKind::ClassIndex,
        )
        .unwrap();
        assert_eq!(
            d.targets,
            Targets::Classes {
                indices: vec![3, 0, 2, 1, 3],
                names: Some(names(&["10", "2", "B", "b"])),
            }
        );
    }

    #[test]
    fn integer_class_column_keeps_values_including_negative_ignore_index() {
        let d = load(
            "a,label\n0.5,2\n1.5,-100\n2.5,0\n3.5,2.0\n4.5,1e0\n",
            &["label"],
            None,
            TargetKind::ClassIndex,
        )
        .unwrap();
        assert_eq!(
            d.targets,
            Targets::Classes {
                indices: vec![2, -100, 0, 2, 1],
                names: None,
            }
        );
    }

    #[test]
    fn non_whole_number_in_class_column_is_an_error_naming_line_and_column() {
        let msg = load_err(
            "a,label\n0,1\n1,2\n2,1.5\n3,1.5\n",
            &["label"],
            None,
            TargetKind::ClassIndex,
        );
        assert_mentions(&msg, &["line 4", "`label`", "1.5", "whole number"]);
    }

    #[test]
    fn empty_class_cell_is_an_error() {
        let msg = load_err(
            "a,label\n0,1\n1,\n",
            &["label"],
            None,
            TargetKind::ClassIndex,
        );
        assert_mentions(&msg, &["line 3", "`label`", "empty"]);
    }

    #[test]
    fn float_targets_with_two_columns_are_row_major() {
        let d = load(
            "x,y1,z,y2\n1,10,2,20\n3,30,4,40\n",
            &["y1", "y2"],
            None,
            TargetKind::Float,
        )
        .unwrap();
        assert_eq!(d.feature_names, names(&["x", "z"]));
        assert_eq!(d.features, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            d.targets,
            Targets::Floats {
                values: vec![10.0, 20.0, 30.0, 40.0],
                width: 2,
            }
        );
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn non_numeric_float_target_is_an_error() {
        let msg = load_err("x,y\n1,2\n3,abc\n", &["y"], None, TargetKind::Float);
        assert_mentions(&msg, &["line 3", "`y`", "abc"]);
    }

    #[test]
    fn features_list_selects_and_reorders_columns() {
        let d = load(
            IRIS,
            &["species"],
            Some(&["petal_width", "sepal_length"]),
            TargetKind::ClassIndex,
        )
        .unwrap();
        assert_eq!(d.feature_names, names(&["petal_width", "sepal_length"]));
        assert_eq!(d.features, vec![0.2, 5.1, 1.4, 7.0, 2.5, 6.3, 0.2, 4.9]);
    }

    #[test]
    fn unknown_target_column_lists_available_columns() {
        let msg = load_err(IRIS, &["specis"], None, TargetKind::ClassIndex);
        assert_mentions(
            &msg,
            &[
                "`specis`",
                "`sepal_length`, `sepal_width`, `petal_length`, `petal_width`, `species`",
                "data.csv",
            ],
        );
    }

    #[test]
    fn unknown_feature_column_lists_available_columns() {
        let msg = load_err(IRIS, &["species"], Some(&["petal"]), TargetKind::ClassIndex);
        assert_mentions(&msg, &["`petal`", "`petal_width`"]);
    }

    #[test]
    fn column_both_target_and_feature_is_an_error() {
        let msg = load_err(
            IRIS,
            &["species"],
            Some(&["species"]),
            TargetKind::ClassIndex,
        );
        assert_mentions(&msg, &["both a target and a feature"]);
    }

    #[test]
    fn non_numeric_feature_is_an_error_naming_line_column_and_cell() {
        let msg = load_err(
            "a,b,y\n1,2,0\n3,4,1\n5,six,0\n",
            &["y"],
            None,
            TargetKind::ClassIndex,
        );
        assert_mentions(&msg, &["line 4", "column `b`", "`six`"]);
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn nan_and_infinite_features_are_errors_naming_line_and_column() {
        for cell in ["NaN", "nan", "inf", "-Infinity"] {
            let msg = load_err(
                &format!("a,b,y\n1,2,0\n3,{cell},1\n"),
                &["y"],
                None,
                TargetKind::ClassIndex,
            );
            assert_mentions(&msg, &["line 3", "column `b`", "finite"]);
        }
        let msg = load_err("a,y\n1e39,0\n", &["y"], None, TargetKind::ClassIndex);
        assert_mentions(&msg, &["line 2", "`a`", "too large"]);
    }

    #[test]
    fn empty_feature_cell_is_an_error() {
        let msg = load_err("a,b,y\n1,,0\n", &["y"], None, TargetKind::ClassIndex);
        assert_mentions(&msg, &["line 2", "column `b`", "empty"]);
    }

    #[test]
    fn ragged_row_is_an_error_with_expected_and_actual_counts() {
        let msg = load_err("a,b,y\n1,2,0\n3,4\n", &["y"], None, TargetKind::ClassIndex);
        assert_mentions(&msg, &["line 3", "expected 3", "found 2"]);
        let msg = load_err("a,b,y\n1,2,0,9\n", &["y"], None, TargetKind::ClassIndex);
        assert_mentions(&msg, &["line 2", "expected 3", "found 4"]);
    }

    #[test]
    fn header_only_file_is_an_error() {
        let msg = load_err("a,b,y\n", &["y"], None, TargetKind::ClassIndex);
        assert_mentions(&msg, &["no data rows"]);
    }

    #[test]
    fn empty_file_is_an_error() {
        let msg = load_err("", &["y"], None, TargetKind::ClassIndex);
        assert_mentions(&msg, &["empty"]);
    }

    #[test]
    fn missing_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.csv");
        let err = load_csv(&path, &names(&["y"]), None, TargetKind::Float).unwrap_err();
        let msg = err.to_string();
        assert_mentions(&msg, &["nope.csv", "cannot open"]);
    }

    #[test]
    fn several_class_index_targets_are_an_error() {
        let msg = load_err("a,b,c\n1,2,3\n", &["b", "c"], None, TargetKind::ClassIndex);
        assert_mentions(&msg, &["one class-index target column", "b, c"]);
    }

    #[test]
    fn duplicate_header_names_are_an_error() {
        let msg = load_err("a,a,y\n1,2,3\n", &["y"], None, TargetKind::Float);
        assert_mentions(&msg, &["`a` twice"]);
    }

    #[test]
    fn unnamed_column_used_as_feature_is_an_error() {
        let msg = load_err(",a,y\n0,1,2\n", &["y"], None, TargetKind::Float);
        assert_mentions(&msg, &["column 1 has no name"]);
        // Listing the features explicitly leaves the unnamed column out.
        let d = load(",a,y\n0,1,2\n", &["y"], Some(&["a"]), TargetKind::Float).unwrap();
        assert_eq!(d.features, vec![1.0]);
    }

    #[test]
    fn quoted_fields_and_surrounding_whitespace_are_accepted() {
        // As in RFC 4180 (and Python's csv), a quote opens a quoted cell only right after the
        // delimiter; whitespace inside and around cells is trimmed.
        let text = "\"x 1\",\"x2\" ,label\n\" 1.5 \",  2 ,\"Iris, setosa\"\n3,\"4\",\"Iris \"\"virginica\"\"\"  \n";
        let d = load(text, &["label"], None, TargetKind::ClassIndex).unwrap();
        assert_eq!(d.feature_names, names(&["x 1", "x2"]));
        assert_eq!(d.features, vec![1.5, 2.0, 3.0, 4.0]);
        assert_eq!(
            d.targets,
            Targets::Classes {
                // Byte order: '"' (0x22) sorts before ',' (0x2c).
                indices: vec![1, 0],
                names: Some(names(&["Iris \"virginica\"", "Iris, setosa"])),
            }
        );
    }

    #[test]
    fn line_numbers_count_rows_not_physical_lines() {
        // A quoted cell spanning two physical lines is one row; the bad row is data row 3 = line 4.
        let msg = load_err(
            "a,y\n1,\"two\nlines\"\n2,b\nx,c\n",
            &["y"],
            None,
            TargetKind::ClassIndex,
        );
        assert_mentions(&msg, &["line 4", "`x`"]);
    }

    #[test]
    fn gather_copies_rows_and_reuses_buffers() {
        let d = load(
            IRIS,
            &["species"],
            Some(&["sepal_length", "petal_width"]),
            TargetKind::ClassIndex,
        )
        .unwrap();
        let mut feats = Vec::new();
        let mut targets = BatchTargets::Floats(Vec::new());
        d.gather(&[3, 1], &mut feats, &mut targets).unwrap();
        assert_eq!(feats, vec![4.9, 0.2, 7.0, 1.4]);
        assert_eq!(targets, BatchTargets::Classes(vec![0, 1]));
        let cap = feats.capacity();
        let ptr = feats.as_ptr();
        d.gather(&[2], &mut feats, &mut targets).unwrap();
        assert_eq!(feats, vec![6.3, 2.5]);
        assert_eq!(targets, BatchTargets::Classes(vec![2]));
        assert_eq!((feats.capacity(), feats.as_ptr()), (cap, ptr));

        let f = load(
            "x,y1,y2\n1,10,20\n2,30,40\n",
            &["y1", "y2"],
            None,
            TargetKind::Float,
        )
        .unwrap();
        f.gather(&[1, 0], &mut feats, &mut targets).unwrap();
        assert_eq!(feats, vec![2.0, 1.0]);
        assert_eq!(targets, BatchTargets::Floats(vec![30.0, 40.0, 10.0, 20.0]));
    }

    #[test]
    fn rows_are_located_by_csv_line() {
        let d = load(IRIS, &["species"], None, TargetKind::ClassIndex).unwrap();
        let loc = d.row_location(2);
        assert!(loc.ends_with("data.csv` line 4"), "{loc}");
    }
}
