//! Where a data set's feature values live: in memory, or in an uncompressed C-order `.npy`
//! file from which each gather reads just the rows it needs (positioned reads, no mmap), so a
//! rank of data-parallel training holds no more than the batches it steps.
//!
//! Both forms give the same values: the file form decodes elements as the in-memory loader
//! does and applies standardization with the same f64 arithmetic ([`crate::standardize`]).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

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

/// Feature rows kept in a `.npy` file: row `i` of the data set is file row `rows[i]` (or `i`),
/// decoded to `f32` and standardized by `scales`, in order.
#[derive(Debug, Clone)]
pub struct FileRows {
    file: Arc<File>,
    /// The file's name as messages show it ("`x.npy`").
    shown: String,
    path: PathBuf,
    /// Where the array's data starts.
    offset: u64,
    codec: Codec,
    /// Values per row.
    width: usize,
    /// The data set's rows as file rows; `None` when they are the file's rows in order.
    rows: Option<Arc<[usize]>>,
    /// The number of rows (the file's, when `rows` is `None`).
    len: usize,
    /// Standardizations applied, in order.
    scales: Vec<Standardizer>,
    /// The file's size and modification time when it was checked at load time.
    stamp: (u64, Option<SystemTime>),
}

impl PartialEq for FileRows {
    fn eq(&self, other: &FileRows) -> bool {
        self.path == other.path
            && self.offset == other.offset
            && self.codec == other.codec
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
    /// The rows of `file` (`shown` in messages, at `path`): `len` rows of `width` values
    /// starting at byte `offset`, each element decoded by `codec`.
    pub(crate) fn new(
        file: File,
        (shown, path): (String, PathBuf),
        offset: u64,
        codec: Codec,
        (len, width): (usize, usize),
    ) -> Result<FileRows, DataError> {
        let stamp = stamp_of(&file).map_err(|e| crate::read_failed(&path, &e))?;
        Ok(FileRows {
            file: Arc::new(file),
            shown,
            path,
            offset,
            codec,
            width,
            rows: None,
            len,
            scales: Vec::new(),
            stamp,
        })
    }

    /// Appends the features of data-set rows `rows` to `out`, read from the file.
    fn read_rows(
        &self,
        rows: impl Iterator<Item = usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), DataError> {
        let row_bytes = self.width * self.codec.size();
        let mut bytes = Vec::new();
        let start = out.len();
        // Runs of consecutive file rows, each read at once (up to READ_BYTES).
        let mut run: Option<Range<usize>> = None;
        for row in rows {
            let file_row = match &self.rows {
                Some(map) => map[row],
                None => row,
            };
            run = match run {
                Some(r) if r.end == file_row && (r.len() + 1) * row_bytes <= READ_BYTES => {
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

    /// Reads file rows `run` and appends them, decoded, to `out`.
    fn read_run(
        &self,
        run: Range<usize>,
        bytes: &mut Vec<u8>,
        out: &mut Vec<f32>,
    ) -> Result<(), DataError> {
        let row_bytes = self.width * self.codec.size();
        bytes.resize(run.len() * row_bytes, 0);
        let at = self.offset + (run.start as u64) * row_bytes as u64;
        self.file
            .read_exact_at(bytes, at)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => self.changed(),
                _ => crate::read_failed(&self.path, &e),
            })?;
        self.codec
            .decode(bytes, out)
            .map_err(|e| crate::read_failed(&self.path, &e))
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
fn stamp_of(file: &File) -> std::io::Result<(u64, Option<SystemTime>)> {
    let meta = file.metadata()?;
    Ok((meta.len(), meta.modified().ok()))
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
                for &r in rows {
                    out.extend_from_slice(&values[r * width..(r + 1) * width]);
                }
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
                for &r in rows {
                    out.extend_from_slice(&values[r * width..(r + 1) * width]);
                }
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
