//! The crate's one error type, `TrainError`: every message is one line naming the file (and row and column where there is one), what is wrong and how to fix it.

use std::path::PathBuf;

use graphc_data::DataError;

/// Everything that can go wrong while loading data, reading or writing weights, or training.
///
/// Each variant's message is a single line meant to be printed as is to the user. Underlying I/O
/// and parser errors are folded into the message text (not exposed as `source()`), so printing an
/// error chain does not repeat them.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A data file that cannot be read or used, or any file that cannot be opened, read, written
    /// or renamed: graphc-data's [`DataError`], whose message is shown as is.
    #[error(transparent)]
    DataFile(#[from] DataError),

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
    #[error("{0}{hint}", hint = model_hint(.0))]
    Model(graphc_nn::NnError),

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

    /// Weights (initial, or given to `eval` and `predict`) that do not fit the model.
    #[error("`{path}`: {message}; use weights saved for this spec's model (`graphc check SPEC` lists its parameters)", path = path.display())]
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

    /// Loaded weights, optimizer state or gradient sums holding NaN or an infinity.
    #[error(
        "{origin}: {kind} \"{tensor}\" holds {value} at {index:?}; graphc loads only finite values"
    )]
    NonFinite {
        /// Where the tensors came from: `init.from PATH`, `--weights PATH`, `checkpoint `DIR``.
        origin: String,
        /// What the tensor is: `tensor`, `parameter`, `optimizer state`, `accumulated gradient`.
        kind: &'static str,
        /// Its `state_dict` name.
        tensor: String,
        /// The first value that is not finite.
        value: f32,
        /// Its index, one coordinate per axis.
        index: Vec<usize>,
    },

    /// The loss was NaN or infinite before any update of this training: the weights it
    /// started from, all finite, give a non-finite loss on this batch, so no learning rate is
    /// to blame.
    #[error("the loss is {loss} at step {step} (epoch {epoch}), before any update: the finite weights training started from give a non-finite loss on this batch; check the data for extreme values (`standardize: true` scales features), the initial weights' magnitudes, and that the model's outputs suit the loss")]
    NonFiniteStart {
        /// The 1-based step the batch belongs to.
        step: u64,
        /// Its epoch.
        epoch: u64,
        /// The loss value.
        loss: f32,
    },

    /// The loss became NaN or infinite after updates from finite weights.
    #[error("training diverged at step {step} (epoch {epoch}): the loss is {loss}; lower the learning rate (optimizer.lr {shown} → try {smaller}), or check the data for extreme values (`standardize: true` scales features)", shown = short(*lr), smaller = short(*lr / 10.0))]
    Diverged {
        /// The 1-based step whose loss was not finite.
        step: u64,
        /// Its epoch.
        epoch: u64,
        /// The loss value.
        loss: f32,
        /// The learning rate that step used.
        lr: f64,
    },

    /// A batch whose every target is `ignore_index`: its mean loss is 0/0 (NaN, as in PyTorch).
    #[error("epoch {epoch}, batch {batch} (step {step}): every target of the batch is ignore_index ({ignore_index}), so its mean loss is NaN (0/0, as in PyTorch); it holds {rows}; drop those rows, set `shuffle: true`, or use a larger batch_size")]
    AllIgnored {
        /// The 1-based epoch.
        epoch: u64,
        /// The 1-based batch within the epoch.
        batch: u64,
        /// The 1-based step the batch belongs to.
        step: u64,
        /// The loss's `ignore_index`.
        ignore_index: i64,
        /// Where the batch's rows are, e.g. "`data.csv` lines 2, 3".
        rows: String,
    },

    /// The spec's model and batch need more memory than graphc allows for one step.
    #[error("the training step needs about {size} (parameters, gradients, optimizer state and the activations of a batch of {batch}; the largest part is {what}), more than the {limit} of memory graphc may use; make the layer narrower or the batch_size smaller", size = show_bytes(*bytes), limit = show_bytes(*limit))]
    TooLarge {
        /// The layer (or "the model") that makes it too large.
        what: String,
        /// The estimated bytes.
        bytes: u128,
        /// The batch size counted.
        batch: usize,
        /// The limit in bytes.
        limit: u128,
    },

    /// Standard output or standard error could not be written.
    /// Data-parallel training cannot start or go on: no MPI in this build, MPI failing, or a
    /// spec feature not supported across ranks.
    #[error("{0}")]
    Parallel(String),

    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
}

impl From<graphc_nn::NnError> for TrainError {
    fn from(e: graphc_nn::NnError) -> Self {
        TrainError::Model(e)
    }
}

/// How to fix a model error whose message does not say it already (its own advice follows a
/// "; "): change the layer, or fit the loss to the outputs and targets.
fn model_hint(e: &graphc_nn::NnError) -> &'static str {
    let text = e.to_string();
    match e {
        _ if text.contains("; ") => "",
        graphc_nn::NnError::Layer { .. } => {
            "; change the layer or model.input (`graphc check SPEC` prints every layer's output shape)"
        }
        graphc_nn::NnError::Loss { .. } => {
            "; make the last layer's outputs and the data's target columns fit the loss (docs/spec.md lists what each loss takes)"
        }
        _ => "",
    }
}

/// A number as a short decimal (`0.01`), or in exponent form when very large or small (`1e29`).
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    if (1e-4..1e6).contains(&x.abs()) {
        let text = format!("{x:.10}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.to_owned()
    } else {
        let text = format!("{x:.6e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => {
                let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
                format!("{mantissa}e{exponent}")
            }
            None => text,
        }
    }
}

/// Bytes as a short human size: `1.5 GiB`, `14.6 TiB`.
pub(crate) fn show_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl TrainError {
    /// The error is a write to a standard stream whose reader went away (a closed pipe).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, TrainError::Console(e) if e.is_broken_pipe())
    }

    /// Builds a [`DataError::Io`] from an `std::io::Error`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        err: &std::io::Error,
        hint: &'static str,
    ) -> Self {
        DataError::io(action, path, err, hint).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rates_are_shown_short_in_divergence_advice() {
        assert_eq!(short(0.1), "0.1");
        assert_eq!(short(0.1 / 10.0), "0.01");
        assert_eq!(short(1e30 / 10.0), "1e29");
        assert_eq!(short(3e-5), "3e-5");
        assert_eq!(short(2.5e-7), "2.5e-7");
        assert_eq!(short(0.0), "0");
    }

    #[test]
    fn byte_counts_are_shown_in_binary_units() {
        assert_eq!(show_bytes(512), "512 bytes");
        assert_eq!(show_bytes(3 << 29), "1.5 GiB");
        assert_eq!(show_bytes(64_000_000_000_000), "58.2 TiB");
    }
}
