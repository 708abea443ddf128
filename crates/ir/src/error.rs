//! The crate's one error type: ill-typed graphs and bad executor calls.

use thiserror::Error;

/// What can go wrong while building, verifying or executing a graph.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum IrError {
    /// An op was given operands whose types it does not accept.
    #[error("{op}: {message}")]
    Type {
        /// The op's name.
        op: String,
        /// What does not fit.
        message: String,
    },
    /// `verify()` found a broken invariant.
    #[error("invalid graph at {node}: {message}")]
    Invalid {
        /// The node, as printed (`%12`), or `graph`.
        node: String,
        /// The broken invariant.
        message: String,
    },
    /// An executor was called with arguments that do not fit the graph.
    #[error("bad argument: {0}")]
    Argument(String),
    /// A backend could not compile the graph.
    #[error("compile error: {0}")]
    Compile(String),
}

impl IrError {
    pub(crate) fn ty(op: &str, message: impl Into<String>) -> IrError {
        IrError::Type {
            op: op.to_string(),
            message: message.into(),
        }
    }
}
