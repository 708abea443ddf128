//! The crate's one error type: a spec that cannot become a graph.

use thiserror::Error;

/// Why a spec could not be turned into a graph; messages name the layer or loss.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum NnError {
    /// A layer cannot take the shape it is given.
    #[error("{path} ({layer}): {message}")]
    Layer {
        /// Its key path in the spec: `model.layers[2]`, `model.nodes[0]`.
        path: String,
        /// The layer's type (and name when it has one).
        layer: String,
        /// What does not fit.
        message: String,
    },
    /// The loss does not fit the model output or the targets.
    #[error("loss ({loss}): {message}")]
    Loss {
        /// The loss type.
        loss: &'static str,
        /// What does not fit.
        message: String,
    },
    /// The optimizer settings do not fit the model.
    #[error("optimizer: {0}")]
    Optimizer(String),
    /// The scheduler settings do not fit the optimizer, or it was stepped past its end.
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// The model description itself is unusable.
    #[error("model: {0}")]
    Model(String),
    /// Building the graph failed inside the IR (a bug, reported rather than hidden).
    #[error("internal graph error: {0}")]
    Ir(#[from] graphc_ir::IrError),
    /// Differentiating the graph failed (a bug, reported rather than hidden).
    #[error("internal autodiff error: {0}")]
    Autodiff(#[from] graphc_autodiff::AutodiffError),
}
