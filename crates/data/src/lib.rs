//! graphc-data: training data. The [`Dataset`] type, loading a spec's sources into it (CSV,
//! NumPy, IDX, synthetic), holding out a validation split, standardization, per-epoch shuffling
//! and batching, and the files saved beside a model (`labels.json`, `standardize.json`).
//!
//! Every loader keeps memory proportional to the data: features are stored once, as `f32`,
//! row-major; class targets as one `i64` per sample. Errors ([`DataError`]) name the file and,
//! where there is one, the row (CSV line, array row, IDX item) and column.
//!
//! Architecture invariant: this crate knows nothing of models, graphs or training steps; it
//! depends on graphc-spec only for the source and data spec types.

#![forbid(unsafe_code)]

mod atomic;
mod batch;
mod csv;
mod error;
mod features;
mod idx;
mod limits;
mod npy;
mod split;
mod standardize;
mod synthetic;

use std::path::Path;

use graphc_spec::{DataSpec, SourceSpec, SplitSpec};

pub use atomic::write_atomic;
pub use batch::{batch_ranges, epoch_order};
pub use csv::{csv_line, load_csv, load_csv_in, open_csv, CsvFile, MAX_RECORD};
pub use error::DataError;
pub use features::{Features, FileRows};
pub use idx::load_idx;
pub use limits::{
    byte_size, check_budget, memory_budget, memory_limit, open_regular, read_bytes_bounded,
    read_text_bounded, special_file_kind,
};
pub use npy::{load_npy, load_npy_in, load_npz};
pub use split::{decimal, draw_split, split_dataset, split_rows, SplitRecord};
pub use standardize::Standardizer;
pub use synthetic::generate;

/// How the target columns are read, decided by the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// One column of class indices (whole numbers) or of text labels, as `cross_entropy` and `nll` need.
    ClassIndex,
    /// One or more columns of finite floats, as regression and binary losses need.
    Float,
}

/// A loaded data set: one row of features and one of targets per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Feature values, row-major `len() × num_features()`, in memory or in a file.
    pub features: Features,
    /// The feature columns' names, in the order their values appear in a row.
    pub feature_names: Vec<String>,
    /// The target values.
    pub targets: Targets,
    /// Where the rows came from, for messages that point at one.
    pub origin: Origin,
}

/// Where a data set's rows came from: names for messages and the numbering of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The features' source as shown in messages, e.g. "`data/x.npy`" or "synthetic blobs".
    pub features: String,
    /// The targets' source as shown in messages (the same as `features` for one-file sources).
    pub targets: String,
    /// How rows are numbered in the targets' source.
    pub unit: RowUnit,
    /// The source row of each row when the set is part of a source (after `split`); `None`
    /// when row `i` is source row `i`.
    pub rows: Option<Vec<usize>>,
}

/// How a source numbers its rows in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowUnit {
    /// CSV line numbers: the header is line 1, data row `i` line `i + 2` (see [`csv_line`]).
    CsvLine,
    /// Array rows, 0-based as NumPy indexes them (`y[i]`).
    Row,
    /// IDX items, 0-based.
    Item,
    /// Generated samples, 0-based.
    Sample,
}

/// The target values of a data set.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class index per sample; `names` when the column held text labels (index `i` is `names[i]`).
    Classes {
        /// The class index of each sample.
        indices: Vec<i64>,
        /// The text labels in index order (sorted by byte order), when the column held text.
        names: Option<Vec<String>>,
    },
    /// `width` float values per sample, row-major.
    Floats {
        /// The target values, row-major `len() × width`.
        values: Vec<f32>,
        /// The number of target columns.
        width: usize,
    },
}

/// The targets of one batch, refilled in place by [`Dataset::gather`].
#[derive(Debug, Clone, PartialEq)]
pub enum BatchTargets {
    /// One class index per sample.
    Classes(Vec<i64>),
    /// `width` floats per sample, row-major.
    Floats(Vec<f32>),
}

impl Origin {
    /// An origin whose features and targets come from the same place, numbered by `unit`.
    pub fn single(name: String, unit: RowUnit) -> Origin {
        Origin {
            features: name.clone(),
            targets: name,
            unit,
            rows: None,
        }
    }

    /// Where row `row` of the data set is, e.g. "`iris.csv` line 7" or "`y.npy` row 5".
    pub fn row_location(&self, row: usize) -> String {
        self.location_in(&self.targets, row)
    }

    /// Where row `row` of the features' source `name` (or the targets') is.
    fn location_in(&self, name: &str, row: usize) -> String {
        let source_row = match &self.rows {
            Some(rows) => rows.get(row).copied().unwrap_or(row),
            None => row,
        };
        match self.unit {
            RowUnit::CsvLine => format!("{name} line {}", csv_line(source_row)),
            RowUnit::Row => format!("{name} row {source_row}"),
            RowUnit::Item => format!("{name} item {source_row}"),
            RowUnit::Sample => format!("{name} sample {source_row}"),
        }
    }
}

impl Dataset {
    /// The number of samples.
    pub fn len(&self) -> usize {
        match &self.targets {
            Targets::Classes { indices, .. } => indices.len(),
            Targets::Floats { values, width } => values.len().checked_div(*width).unwrap_or(0),
        }
    }

    /// Whether the data set has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of features per sample.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The class names in index order, when the targets were text labels.
    pub fn class_names(&self) -> Option<&[String]> {
        match &self.targets {
            Targets::Classes {
                names: Some(names), ..
            } => Some(names),
            _ => None,
        }
    }

    /// Where row `row` came from, for messages: see [`Origin::row_location`].
    pub fn row_location(&self, row: usize) -> String {
        self.origin.row_location(row)
    }

    /// Where feature `feature` of row `row` came from, e.g. "`x.csv` line 7, column `t2`" or
    /// "`x.npy` row 5, feature `x2`".
    pub fn feature_location(&self, row: usize, feature: usize) -> String {
        let place = self.origin.location_in(&self.origin.features, row);
        let what = match self.origin.unit {
            RowUnit::CsvLine => "column",
            RowUnit::Row | RowUnit::Item | RowUnit::Sample => "feature",
        };
        match self.feature_names.get(feature) {
            Some(name) => format!("{place}, {what} `{name}`"),
            None => format!("{place}, {what} {feature}"),
        }
    }

    /// Copies the given rows' features (row-major) and targets into the output buffers.
    ///
    /// Both buffers are cleared and refilled, so once they have grown to a batch's size no
    /// further allocation happens; `targets_out` is switched to this data set's kind of targets
    /// if it holds the other kind. Panics if a row index is out of range (a caller bug); an
    /// error only when features kept in a file cannot be read as they were loaded.
    pub fn gather(
        &self,
        rows: &[usize],
        features_out: &mut Vec<f32>,
        targets_out: &mut BatchTargets,
    ) -> Result<(), DataError> {
        self.gather_share(rows, 0..rows.len(), features_out, targets_out)
    }

    /// [`Dataset::gather`] of the targets of all `rows` but the features of `rows[share]` only:
    /// what one rank of data-parallel training steps (it needs the whole batch's targets for
    /// the loss's denominator).
    pub fn gather_share(
        &self,
        rows: &[usize],
        share: std::ops::Range<usize>,
        features_out: &mut Vec<f32>,
        targets_out: &mut BatchTargets,
    ) -> Result<(), DataError> {
        features_out.clear();
        self.features
            .extend_rows(&rows[share], self.num_features(), features_out)?;
        match &self.targets {
            Targets::Classes { indices, .. } => {
                let mut out = match std::mem::replace(targets_out, BatchTargets::Floats(Vec::new()))
                {
                    BatchTargets::Classes(v) => v,
                    BatchTargets::Floats(_) => Vec::with_capacity(rows.len()),
                };
                out.clear();
                out.extend(rows.iter().map(|&r| indices[r]));
                *targets_out = BatchTargets::Classes(out);
            }
            Targets::Floats { values, width } => {
                let w = *width;
                let mut out =
                    match std::mem::replace(targets_out, BatchTargets::Classes(Vec::new())) {
                        BatchTargets::Floats(v) => v,
                        BatchTargets::Classes(_) => Vec::with_capacity(rows.len() * w),
                    };
                out.clear();
                for &r in rows {
                    out.extend_from_slice(&values[r * w..(r + 1) * w]);
                }
                *targets_out = BatchTargets::Floats(out);
            }
        }
        Ok(())
    }
}

/// Which of a spec's sources is being loaded: a synthetic set draws different samples for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRole {
    /// `data.train`.
    Train,
    /// `data.valid`.
    Valid,
}

/// Loads one source of the spec as the training set (paths relative to `base_dir`).
///
/// `kind` is what the loss wants from a single target column; a source with several target
/// columns (a CSV `target` list, an array of shape `(samples, k)`) is read as floats whatever
/// `kind` says. `seed` is the spec's seed (used by synthetic sources).
pub fn load_source(
    source: &SourceSpec,
    base_dir: &Path,
    kind: TargetKind,
    seed: u64,
) -> Result<Dataset, DataError> {
    load_source_as(source, base_dir, kind, seed, SourceRole::Train)
}

/// Where a loader keeps feature values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residence {
    /// In memory, every source.
    Memory,
    /// In the file where the format allows reading single rows (a CSV file, through an index
    /// of where each row starts; an uncompressed C-order `.npy` of numbers other than bool),
    /// read when gathered; other sources in memory. For a rank of data-parallel training,
    /// which reads only its shares of the rows.
    File,
}

/// Loads one source of the spec in the given role: see [`load_source`].
///
/// A synthetic validation set shares the training set's distribution (the same blob centres,
/// the same linear weights) but draws its own samples.
pub fn load_source_as(
    source: &SourceSpec,
    base_dir: &Path,
    kind: TargetKind,
    seed: u64,
    role: SourceRole,
) -> Result<Dataset, DataError> {
    load_source_in(source, base_dir, (kind, seed, role), Residence::Memory)
}

/// [`load_source_as`], keeping the features where `residence` says.
fn load_source_in(
    source: &SourceSpec,
    base_dir: &Path,
    (kind, seed, role): (TargetKind, u64, SourceRole),
    residence: Residence,
) -> Result<Dataset, DataError> {
    match source {
        SourceSpec::Csv {
            path,
            target,
            features,
        } => {
            let kind = if target.len() > 1 {
                TargetKind::Float
            } else {
                kind
            };
            load_csv_in(
                &base_dir.join(path),
                target,
                features.as_deref(),
                kind,
                residence,
            )
        }
        SourceSpec::Npy { features, target } => npy::load_npy_in(
            &base_dir.join(features),
            &base_dir.join(target),
            kind,
            residence,
        ),
        SourceSpec::Npz {
            path,
            features,
            target,
        } => load_npz(&base_dir.join(path), features, target, kind),
        SourceSpec::Idx { images, labels } => {
            load_idx(&base_dir.join(images), &base_dir.join(labels), kind)
        }
        SourceSpec::Synthetic(spec) => generate(spec, seed, role, kind),
        // The objective reads neither the feature nor the target: one zero of each.
        SourceSpec::Objective => Ok(Dataset {
            features: Features::Memory(vec![0.0]),
            feature_names: vec!["none".into()],
            targets: Targets::Floats {
                values: vec![0.0],
                width: 1,
            },
            origin: Origin::single("the objective".into(), RowUnit::Sample),
        }),
    }
}

/// Loads a spec's training and validation sets, before standardization.
///
/// The validation set is `data.valid` when given, or the rows `data.split` holds out (see
/// [`load_split_sets`]), or none. A validation set with text labels is numbered with the
/// training set's classes, so the same label gets the same index in both.
pub fn load_sets(
    data: &DataSpec,
    base_dir: &Path,
    kind: TargetKind,
    seed: u64,
) -> Result<(Dataset, Option<Dataset>), DataError> {
    let (train, valid, _) = load_split_sets(data, base_dir, kind, seed)?;
    Ok((train, valid))
}

/// A training set, its validation set, and the record of the rows a split held out.
pub type SplitSets = (Dataset, Option<Dataset>, Option<SplitRecord>);

/// [`load_sets`], with the record of the rows `data.split` held out (what `split.json` holds):
/// a fraction drawn by its `seed` (else the spec's `seed`, see [`split_dataset`]), or the rows
/// of a split file (relative to `base_dir`).
pub fn load_split_sets(
    data: &DataSpec,
    base_dir: &Path,
    kind: TargetKind,
    seed: u64,
) -> Result<SplitSets, DataError> {
    load_split_sets_in(data, base_dir, kind, seed, Residence::Memory)
}

/// [`load_split_sets`], keeping the features where `residence` says (the same values either
/// way).
pub fn load_split_sets_in(
    data: &DataSpec,
    base_dir: &Path,
    kind: TargetKind,
    seed: u64,
    residence: Residence,
) -> Result<SplitSets, DataError> {
    let train = load_source_in(
        &data.train,
        base_dir,
        (kind, seed, SourceRole::Train),
        residence,
    )?;
    let record = match &data.split {
        Some(SplitSpec::Fraction {
            fraction,
            seed: split_seed,
        }) => {
            let seed = split_seed.unwrap_or(seed);
            let rows = draw_split(train.len(), *fraction, seed, &train.origin.targets)?;
            SplitRecord {
                samples: Some(train.len()),
                fraction: Some(decimal(*fraction)),
                seed: Some(seed),
                file: None,
                valid_rows: rows,
            }
        }
        Some(SplitSpec::File(path)) => {
            let mut record = SplitRecord::load(&base_dir.join(path), train.len())?;
            record.file = Some(path.clone());
            record
        }
        None => {
            let valid = match &data.valid {
                Some(source) => {
                    let mut valid = load_source_in(
                        source,
                        base_dir,
                        (kind, seed, SourceRole::Valid),
                        residence,
                    )?;
                    align_classes(&train, &mut valid)?;
                    Some(valid)
                }
                None => None,
            };
            return Ok((train, valid, None));
        }
    };
    let (train, valid) = split_rows(&train, &record.valid_rows);
    Ok((train, Some(valid), Some(record)))
}

/// Decoded values of an array file (NumPy, IDX): features and float targets as `f32`, class
/// indices as `i64`.
pub(crate) enum Values {
    /// Features and float targets.
    F32(Vec<f32>),
    /// Class indices.
    I64(Vec<i64>),
}

impl Values {
    /// The values as targets: class indices as they are, floats `width` per sample. Float
    /// targets need a `width` above 0 (else `no_width()`) and finite values (else
    /// `non_finite(i, v)` for the first value `v`, at flat index `i`, that is not).
    pub(crate) fn into_targets(
        self,
        width: usize,
        no_width: impl FnOnce() -> DataError,
        non_finite: impl FnOnce(usize, f32) -> DataError,
    ) -> Result<Targets, DataError> {
        match self {
            Values::I64(indices) => Ok(Targets::Classes {
                indices,
                names: None,
            }),
            Values::F32(values) => {
                if width == 0 {
                    return Err(no_width());
                }
                if let Some((i, v)) = first_non_finite(&values) {
                    return Err(non_finite(i, v));
                }
                Ok(Targets::Floats { values, width })
            }
        }
    }
}

/// Most elements reserved before a file's data is read, so that a header cannot make us
/// allocate more than the bytes that really arrive.
pub(crate) const MAX_RESERVE: usize = 1 << 24;

/// The first value that is NaN or infinite, with its index.
pub(crate) fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .copied()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
}

/// `v` as an `i64` when it is a whole number in range.
pub(crate) fn whole(v: f64) -> Option<i64> {
    // 2^63 bounds: every whole f64 in [-2^63, 2^63) converts to i64 exactly.
    (v.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v))
        .then_some(v as i64)
}

/// Renumbers `valid`'s text labels with `train`'s class names (each file's labels are numbered
/// in its own sorted order when loaded, so a class missing from one file would shift the rest).
pub fn align_classes(train: &Dataset, valid: &mut Dataset) -> Result<(), DataError> {
    let (train_names, valid_names) = (train.class_names(), valid.class_names());
    let (train_names, valid_names) = match (train_names, valid_names) {
        (None, None) => return Ok(()),
        (Some(t), Some(v)) => (t, v.to_vec()),
        (Some(_), None) | (None, Some(_)) => {
            let (text, numbers) = if train_names.is_some() {
                (&train.origin.targets, &valid.origin.targets)
            } else {
                (&valid.origin.targets, &train.origin.targets)
            };
            return Err(DataError::Invalid(format!(
                "{text} has text class labels but {numbers} has class indices; use the same kind of labels in the training and validation data"
            )));
        }
    };
    if train_names == valid_names.as_slice() {
        return Ok(());
    }
    let mut map = Vec::with_capacity(valid_names.len());
    for name in &valid_names {
        match train_names.binary_search(name) {
            Ok(i) => map.push(i as i64),
            Err(_) => map.push(-1),
        }
    }
    let Targets::Classes { indices, names } = &mut valid.targets else {
        return Ok(());
    };
    for (row, index) in indices.iter_mut().enumerate() {
        let mapped = usize::try_from(*index)
            .ok()
            .and_then(|i| map.get(i).copied())
            .unwrap_or(-1);
        if mapped < 0 {
            let label = usize::try_from(*index)
                .ok()
                .and_then(|i| valid_names.get(i))
                .map_or("?", String::as_str);
            return Err(DataError::Invalid(format!(
                "{}: class `{}` does not appear in the training data {} (its classes are {}); remove the row or add the class to the training data",
                valid.origin.row_location(row),
                shown(label),
                train.origin.targets,
                listing(train_names)
            )));
        }
        *index = mapped;
    }
    *names = Some(train_names.to_vec());
    Ok(())
}

/// Writes `names` (class names in index order) as a JSON list to `path`, atomically: the
/// `DIR/labels.json` that `predict` uses to print class names.
pub fn write_labels_json(path: &Path, names: &[String]) -> Result<(), DataError> {
    write_json_line(path, names)
}

/// Writes `value` as one line of JSON to `path`, atomically.
pub(crate) fn write_json_line(
    path: &Path,
    value: &(impl serde::Serialize + ?Sized),
) -> Result<(), DataError> {
    let mut text = serde_json::to_string(value).map_err(|e| DataError::Io {
        action: "write",
        path: path.to_path_buf(),
        detail: e.to_string(),
        hint: "report this as a bug",
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads a `labels.json` written by [`write_labels_json`].
pub fn read_labels_json(path: &Path) -> Result<Vec<String>, DataError> {
    let text = read_text_bounded(path, "labels file", MAX_JSON_FILE)?;
    serde_json::from_str(&text).map_err(|e| {
        file_error(
            path,
            format!("not a JSON list of class names ({e}); write it as [\"name\", ...]"),
        )
    })
}

/// Reads a `labels.json` for a model with `classes` classes: one name per class.
pub fn read_labels_for(path: &Path, classes: usize) -> Result<Vec<String>, DataError> {
    let names = read_labels_json(path)?;
    if names.len() != classes {
        return Err(file_error(
            path,
            format!(
                "has {} class names but the model has {classes} classes; it must name every class once, in index order",
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// The largest `labels.json` or `standardize.json` read (a bound before reading, not a format rule).
pub const MAX_JSON_FILE: u64 = 64 << 20;

/// An error about a data file as a whole or a part of it: "`PATH`: MESSAGE".
pub(crate) fn file_error(path: &Path, message: String) -> DataError {
    DataError::Invalid(format!("`{}`: {message}", path.display()))
}

/// A path as data-set origins show it: "`PATH`", whole (a cut path would not say which file),
/// with control characters escaped.
pub fn quoted(path: &Path) -> String {
    format!(
        "`{}`",
        escape_controls(&path.display().to_string(), usize::MAX)
    )
}

/// Text from a data file or the spec as shown inside a one-line message: control characters
/// escaped (a quoted CSV cell may hold a line break) and cut after 60 characters.
pub fn shown(text: &str) -> String {
    const MAX: usize = 60;
    let mut out = escape_controls(text, MAX);
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// The first `max` characters of `text`, control characters escaped.
fn escape_controls(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A list of names for a message: each shown, at most 20, then how many more.
pub fn listing(names: &[String]) -> String {
    const MAX: usize = 20;
    let mut parts: Vec<String> = names.iter().take(MAX).map(|n| shown(n)).collect();
    if names.len() > MAX {
        parts.push(format!("… ({} more)", names.len() - MAX));
    }
    parts.join(", ")
}

/// Opens a data file, with the same message for a missing file whatever the format; a FIFO,
/// device or directory is refused by its type before anything is read.
pub fn open_data_file(path: &Path) -> Result<std::fs::File, DataError> {
    open_regular(path, "data file").map(|(file, _)| file)
}

/// The error for a data file that is open but cannot be read.
pub(crate) fn read_failed(path: &Path, e: &std::io::Error) -> DataError {
    DataError::io("read data file", path, e, "check that the file is readable")
}

/// Feature names `{prefix}[0]`, `{prefix}[1]`, … for sources without column names.
pub(crate) fn indexed_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|j| format!("{prefix}[{j}]")).collect()
}
