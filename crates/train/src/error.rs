//! The crate's one error type, `TrainError`: every message is one line naming the file (and row and column where there is one), what is wrong and how to fix it.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, reading or writing weights, or training.
///
/// Each variant's message is a single line meant to be printed as is to the user. Underlying I/O
/// and parser errors are folded into the message text (not exposed as `source()`), so printing an
/// error chain does not repeat them.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
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

    /// A safetensors file that cannot be parsed, holds an unsupported dtype, or tensors that cannot be written.
    #[error("`{path}`: {message}", path = path.display())]
    Safetensors {
        /// The safetensors file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The spec could not be read or is invalid.
    #[error(transparent)]
    Spec(#[from] graphc_spec::SpecError),

    /// The spec cannot become a graph (shapes that do not fit, a bad optimizer setting).
    #[error(transparent)]
    Model(#[from] graphc_nn::NnError),

    /// A backend refused or failed to run a graph.
    #[error("{backend} backend: {source}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// What went wrong.
        source: graphc_ir::IrError,
    },

    /// Data that does not fit the model or the loss (a class index out of range, a wrong width).
    #[error("{0}")]
    Data(String),

    /// Initial weights that do not fit the model.
    #[error("`{path}`: {message}", path = path.display())]
    Init {
        /// The safetensors file.
        path: PathBuf,
        /// The missing, extra or misshapen tensor.
        message: String,
    },

    /// A checkpoint or state dict that cannot be read, or does not fit the spec.
    #[error("{what}: {message}")]
    Checkpoint {
        /// `checkpoint `DIR`` or `state_dict`.
        what: String,
        /// What differs or is broken, and how to fix it.
        message: String,
    },

    /// The loss became NaN or infinite.
    #[error("training diverged at step {step} (epoch {epoch}): the loss is {loss}; {hint}")]
    Diverged {
        /// The 1-based step whose loss was not finite.
        step: u64,
        /// Its epoch.
        epoch: u64,
        /// The loss value.
        loss: f32,
        /// What to try.
        hint: &'static str,
    },
}

impl TrainError {
    /// Builds an [`TrainError::Io`] from an `std::io::Error`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        err: &std::io::Error,
        hint: &'static str,
    ) -> Self {
        TrainError::Io {
            action,
            path: path.into(),
            detail: err.to_string(),
            hint,
        }
    }
}
