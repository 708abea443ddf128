//! graphc's intermediate representation: a typed DAG of primitive ops on
//! `petgraph`, with shape inference, verification, printing, and the
//! `Backend`/`Executable` interface every executor implements.
//!
//! Architecture invariant: this crate knows nothing of YAML, layers, losses or
//! any concrete backend.

#![forbid(unsafe_code)]

mod bf16;
mod error;
mod exec;
mod graph;
mod infer;
mod op;
mod print;
pub mod random;
mod types;
mod verify;
mod window;

pub use bf16::round_bf16;
pub use error::IrError;
pub use exec::{Arg, Backend, Executable, Ranks};
pub use graph::{Assign, Graph, Node, NodeId, Output};
pub use op::{Access, BinaryOp, CompareOp, Op, ReduceOp, UnaryOp};
pub use types::{DType, TensorType};
pub use window::{AxisWindows, Window, WindowAxis};
