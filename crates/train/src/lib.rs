//! Training runtime: data loading and batching, safetensors weights I/O, the
//! `Trainer` that steps a compiled spec, and the run loop of `graphc train`.
//!
//! Architecture invariant: this crate drives steps through the `Backend` and
//! `Executable` traits and never looks inside one.

pub mod data;
pub mod error;
pub mod run;
pub mod trainer;
pub mod weights;

pub use data::{
    batch_ranges, csv_line, epoch_order, load_csv, BatchTargets, Dataset, Standardizer, TargetKind,
    Targets,
};
pub use error::TrainError;
pub use run::{load_data, prepare, train, RunOptions, SpecData, Summary};
pub use trainer::{Evaluation, Trainer};
pub use weights::{read_safetensors, write_atomic, write_safetensors, NamedTensor};
