//! Training runtime: safetensors weights I/O, the `Trainer` that steps a compiled spec, and the
//! run loop of `graphc train`; data loading and batching come from graphc-data (re-exported).
//!
//! Architecture invariant: this crate drives steps through the `Backend` and
//! `Executable` traits and never looks inside one.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod collective;
pub mod console;
pub mod error;
pub mod fit;
pub mod inference;
pub mod metrics;
pub mod optimizer;
#[cfg(feature = "plot")]
pub mod plot;
pub mod progress;
pub mod run;
mod rundir;
pub mod session;
pub mod trainer;
pub mod weights;

pub use error::TrainError;
pub use fit::{fit, Best, EpochEvent, FitEnd, Observer, StepEvent, Stop};
/// The data crate, for `graphc_train::data::...` paths.
pub use graphc_data as data;
pub use graphc_data::{
    batch_ranges, csv_line, epoch_order, load_csv, load_sets, load_source, load_split_sets,
    read_labels_json, split_dataset, write_atomic, write_labels_json, BatchTargets, DataError,
    Dataset, SplitRecord, Standardizer, TargetKind, Targets,
};
pub use inference::{read_features_csv, write_text, EvalData, Labelled, Model, Probability};
pub use metrics::{read_metrics, PlotRun};
pub use optimizer::Optimizer;
#[cfg(feature = "plot")]
pub use plot::{write_loss_plot, write_styled_loss_plot, PlotStyle};
pub use run::{
    check_size, load_data, load_data_on, prepare, resume, train, train_or_resume, LastEpoch,
    RunOptions, SpecData, Summary, LABELS_FILE, MODEL_FILE, PLOT_FILE, STANDARDIZE_FILE,
};
pub use session::{compile_graph, optimized_step, BufferId, Session};
pub use trainer::{Evaluation, GroupState, OptimizerState, Tally, Trainer, TrainerState};
pub use weights::{
    read_safetensors, read_state_dict, write_safetensors, write_state_dict, write_state_dict_with,
    Counter, NamedTensor, StateDict,
};
