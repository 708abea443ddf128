//! Where a data set's feature values live: in memory, or in their file (an uncompressed C-order
//! `.npy`, or a CSV file through an index of where each row starts) from which each gather
//! reads just the rows it needs (positioned reads, no mmap), so a rank of data-parallel
//! training holds no more than the batches it steps.
//!
//! Both forms give the same values: the file form decodes elements (parses cells) as the
//! in-memory loader does and applies standardization with the same f64 arithmetic
//! ([`crate::standardize`]).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::csv::CsvRows;
use crate::error::DataError;
use crate::npy::Codec;
use crate::standardize::{standardize_row, Standardizer};

/// Bytes read in one positioned read at most (rows of a chunk are read in runs of
/// consecutive file rows).
const READ_BYTES: usize = 1 << 20;

/// A data set's feature values, `width` per sample, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// All rows in memory.
    Memory(Vec<f32>),
    /// The rows stay in a file and are read when gathered.
    File(FileRows),
}

/// Feature rows kept in a `.npy` or CSV file: row `i` of the data set is file row `rows[i]` (or
/// `i`), decoded to `f32` and standardized by `scales`, in order.
#[derive(Debug, Clone)]
pub struct FileRows {
    file: Arc<File>,
    /// The file's name as messages show it ("`x.npy`").
    shown: String,
    path: PathBuf,
    /// Where the rows are in the file and how their values are written.
    layout: Layout,
    /// Values per row.
    width: usize,
    /// The data set's rows as file rows; `None` when they are the file's rows in order.
    rows: Option<Arc<[usize]>>,
    /// The number of rows (the file's, when `rows` is `None`).
    len: usize,
    /// Standardizations applied, in order.
    scales: Vec<Standardizer>,
    /// The file's size and modification time when it was checked at load time.
    stamp: Stamp,
}

/// A file's size and modification time.
pub(crate) type Stamp = (u64, Option<SystemTime>);

/// Where a file's rows are and how their values are written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Layout {
    /// `.npy`: rows of `width` elements back to back from byte `offset`, each decoded by `codec`.
    Npy {
        /// Where the array's data starts.
        offset: u64,
        /// How an element is decoded.
        codec: Codec,
    },
    /// CSV: text rows at the offsets of an index, their feature cells parsed as the loader does.
    Csv(CsvRows),
}

impl Layout {
    /// The bytes of file rows `rows` (consecutive), each of `width` values.
    fn span(&self, rows: &Range<usize>, width: usize) -> Range<u64> {
        match self {
            Layout::Npy { offset, codec } => {
                let row_bytes = (width * codec.size()) as u64;
                offset + rows.start as u64 * row_bytes..offset + rows.end as u64 * row_bytes
            }
            Layout::Csv(csv) => csv.span(rows),
        }
    }
}

impl PartialEq for FileRows {
    fn eq(&self, other: &FileRows) -> bool {
        self.path == other.path
            && self.layout == other.layout
            && self.width == other.width
            && self.rows == other.rows
            && self.len == other.len
            && self.scales == other.scales
    }
}

/// In-memory features equal the values they hold (what tests compare).
impl PartialEq<Vec<f32>> for Features {
    fn eq(&self, other: &Vec<f32>) -> bool {
        self.in_memory() == Some(other.as_slice())
    }
}

impl FileRows {
    /// The rows of `file` (`shown` in messages, at `path`, of size and modification time
    /// `stamp` when its rows were checked): `len` rows of `width` values laid out as `layout`
    /// says.
    pub(crate) fn new(
        (file, stamp): (File, Stamp),
        (shown, path): (String, PathBuf),
        layout: Layout,
        (len, width): (usize, usize),
    ) -> FileRows {
        FileRows {
            file: Arc::new(file),
            shown,
            path,
            layout,
            width,
            rows: None,
            len,
            scales: Vec::new(),
            stamp,
        }
    }

    /// Appends the features of data-set rows `rows` to `out`, read from the file.
    fn read_rows(
        &self,
        rows: impl Iterator<Item = usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), DataError> {
        let mut bytes = Vec::new();
        let start = out.len();
        // Runs of consecutive file rows, each read at once (up to READ_BYTES, or one row).
        let mut run: Option<Range<usize>> = None;
        for row in rows {
            let file_row = match &self.rows {
                Some(map) => map[row],
                None => row,
            };
            run = match run {
                Some(r) if r.end == file_row && self.fits_one_read(r.start..file_row + 1) => {
                    Some(r.start..file_row + 1)
                }
                Some(r) => {
                    self.read_run(r, &mut bytes, out)?;
                    Some(file_row..file_row + 1)
                }
                None => Some(file_row..file_row + 1),
            };
        }
        if let Some(r) = run {
            self.read_run(r, &mut bytes, out)?;
        }
        // The file must be the one checked at load time: a truncated or rewritten file would
        // give other values than the run started with.
        if stamp_of(&self.file).ok() != Some(self.stamp) {
            return Err(self.changed());
        }
        for scale in &self.scales {
            for row in out[start..].chunks_exact_mut(self.width) {
                standardize_row(row, &scale.mean, &scale.std);
            }
        }
        Ok(())
    }

    /// Whether file rows `run` take at most [`READ_BYTES`].
    fn fits_one_read(&self, run: Range<usize>) -> bool {
        let span = self.layout.span(&run, self.width);
        span.end - span.start <= READ_BYTES as u64
    }

    /// Reads file rows `run` and appends them, decoded, to `out`.
    fn read_run(
        &self,
        run: Range<usize>,
        bytes: &mut Vec<u8>,
        out: &mut Vec<f32>,
    ) -> Result<(), DataError> {
        let span = self.layout.span(&run, self.width);
        // At most READ_BYTES, or one row, which loading read whole.
        let len = usize::try_from(span.end - span.start).map_err(|_| self.changed())?;
        bytes.resize(len, 0);
        self.file
            .read_exact_at(bytes, span.start)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => self.changed(),
                _ => crate::read_failed(&self.path, &e),
            })?;
        match &self.layout {
            Layout::Npy { codec, .. } => codec
                .decode(bytes, out)
                .map_err(|e| crate::read_failed(&self.path, &e)),
            // The loader parsed these bytes; rows that no longer parse were rewritten since.
            Layout::Csv(csv) => csv
                .decode(bytes, run.len(), out)
                .ok_or_else(|| self.changed()),
        }
    }

    /// The error for a file that changed after it was loaded.
    fn changed(&self) -> DataError {
        DataError::Invalid(format!(
            "{}: the file changed on disk during training (its size or modification time differs from when it was loaded); restore it, or train again on the new file",
            self.shown
        ))
    }
}

/// A file's size and modification time.
fn stamp_of(file: &File) -> std::io::Result<Stamp> {
    let meta = file.metadata()?;
    Ok((meta.len(), meta.modified().ok()))
}

/// `file` (at `path`) with its size and modification time now, for [`FileRows::new`]: taken
/// before its rows are checked, so that a change while they are read is caught too.
pub(crate) fn stamped(file: File, path: &std::path::Path) -> Result<(File, Stamp), DataError> {
    let stamp = stamp_of(&file).map_err(|e| crate::read_failed(path, &e))?;
    Ok((file, stamp))
}

/// Appends rows `rows` (each `width` values) of the row-major `values` to `out`. Panics if a
/// row is out of range (a caller bug).
fn copy_rows(values: &[f32], rows: &[usize], width: usize, out: &mut Vec<f32>) {
    for &r in rows {
        out.extend_from_slice(&values[r * width..(r + 1) * width]);
    }
}

impl Features {
    /// The values when they are in memory.
    pub fn in_memory(&self) -> Option<&[f32]> {
        match self {
            Features::Memory(values) => Some(values),
            Features::File(_) => None,
        }
    }

    /// Appends the features of `rows` (each `width` values) to `out`. Panics if a row is out
    /// of range (a caller bug).
    pub fn extend_rows(
        &self,
        rows: &[usize],
        width: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), DataError> {
        match self {
            Features::Memory(values) => {
                copy_rows(values, rows, width, out);
                Ok(())
            }
            Features::File(f) => f.read_rows(rows.iter().copied(), out),
        }
    }

    /// Calls `f(first_row, values)` for consecutive chunks of the `rows` rows (each `width`
    /// values), in order: the in-memory values at once, a file's in chunks of about 4 MiB.
    pub fn try_for_each_chunk<E: From<DataError>>(
        &self,
        width: usize,
        mut f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Features::Memory(values) => f(0, values),
            Features::File(file) => {
                let chunk = ((4 << 20) / (4 * width.max(1))).max(1);
                let mut values = Vec::with_capacity(chunk * width);
                let mut start = 0;
                while start < file.len {
                    let end = file.len.min(start + chunk);
                    values.clear();
                    file.read_rows(start..end, &mut values)?;
                    f(start, &values)?;
                    start = end;
                }
                Ok(())
            }
        }
    }

    /// The features of `rows` (each `width` values) as features of their own.
    pub(crate) fn subset(&self, rows: &[usize], width: usize) -> Features {
        match self {
            Features::Memory(values) => {
                let mut out = Vec::with_capacity(rows.len() * width);
                copy_rows(values, rows, width, &mut out);
                Features::Memory(out)
            }
            Features::File(f) => {
                let map: Arc<[usize]> = match &f.rows {
                    Some(outer) => rows.iter().map(|&r| outer[r]).collect(),
                    None => rows.into(),
                };
                Features::File(FileRows {
                    rows: Some(map),
                    len: rows.len(),
                    ..f.clone()
                })
            }
        }
    }

    /// Standardizes every value by `scale` (see [`Standardizer::apply`]): the in-memory values
    /// now, a file's as they are read.
    pub(crate) fn standardize(&mut self, scale: &Standardizer, width: usize) {
        match self {
            Features::Memory(values) => {
                if width == 0 {
                    return;
                }
                for row in values.chunks_exact_mut(width) {
                    standardize_row(row, &scale.mean, &scale.std);
                }
            }
            Features::File(f) => f.scales.push(scale.clone()),
        }
    }
}
