//! The crate's one error type, `DataError`: every message is one line naming the file (and row and column where there is one), what is wrong and how to fix it.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing a data file or checking a data set.
///
/// Each variant's message is a single line meant to be printed as is to the user. Underlying I/O
/// and parser errors are folded into the message text (not exposed as `source()`), so printing an
/// error chain does not repeat them.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read, written or renamed.
    #[error("cannot {action} `{path}`: {detail}; {hint}", path = path.display())]
    Io {
        /// What was being done, e.g. "open training data", "write".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's message.
        detail: String,
        /// How to fix it.
        hint: &'static str,
    },

    /// A problem with a CSV file as a whole (its header, its columns, or no rows).
    #[error("`{path}`: {message}", path = path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A problem with one row of a CSV file (e.g. the wrong number of fields).
    #[error("`{path}` line {line}: {message}", path = path.display())]
    CsvRow {
        /// The CSV file.
        path: PathBuf,
        /// The line the row starts on (the header is line 1, the first data row line 2).
        line: u64,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A problem with one cell of a CSV file (not a number, not finite, not a whole number, empty).
    #[error("`{path}` line {line}, column `{column}`: {message}", path = path.display())]
    CsvCell {
        /// The CSV file.
        path: PathBuf,
        /// The line the row starts on (the header is line 1, the first data row line 2).
        line: u64,
        /// The column's header name.
        column: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A data file or data set that cannot be used (a wrong dtype or shape, a class missing from
    /// the training data, standardization statistics of another width).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// Builds a [`DataError::Io`] from an `std::io::Error`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        err: &std::io::Error,
        hint: &'static str,
    ) -> Self {
        DataError::Io {
            action,
            path: path.into(),
            detail: err.to_string(),
            hint,
        }
    }
}
