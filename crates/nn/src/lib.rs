//! The PyTorch vocabulary as graph builders: layers and their default init,
//! losses, optimizers, and the assembly of a whole training step
//! (forward → loss → backward → update) as one IR graph.
//!
//! Architecture invariant: this crate builds graphs and never executes them.

#![forbid(unsafe_code)]

mod activation;
mod clip;
mod embedding;
mod error;
mod init;
mod layers;
mod loss;
mod norm;
mod objective;
mod optim;
pub mod sched;
mod spatial;
mod step;
mod topology;

pub use clip::{accumulator_name, accumulators};
pub use embedding::input_embedding;
pub use error::NnError;
pub use init::{calculate_gain, check_scheme, default_init, fans, kaiming_std, xavier_std};
pub use layers::{
    build_model, describe_model, saturating_numel, DefaultInit, LayerInfo, ModelGraph, ParamInfo,
    TensorDecl,
};
pub use loss::{
    build_loss, build_loss_graph, check_loss_data, mean_denominator, task_of, LossGraph,
    LossTargets, TargetLayout, Task,
};
pub use norm::{
    check_batch_norm_counts, draws_random, evaluates_with_batch_statistics, has_batch_norm, Mode,
};
pub use optim::{
    build_update, build_update_graph, group_of, group_of_names, group_settings, hyper_value,
    hyper_value_by, initial_groups, state_init, state_names, GroupScalar, Hyper, StateBuffer,
    UpdateGraph, UpdateParts,
};
pub use step::{
    build_accumulate_step, build_apply_step, build_eval, build_shard_step, build_step, initial_lr,
    natural_layout, StepGraph,
};
pub use topology::{all_layers, Source};
