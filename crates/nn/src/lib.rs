//! The PyTorch vocabulary as graph builders: layers and their default init,
//! losses, optimizers, and the assembly of a whole training step
//! (forward → loss → backward → update) as one IR graph.
//!
//! Architecture invariant: this crate builds graphs and never executes them.

mod error;
mod init;
mod layers;
mod loss;
mod optim;
mod step;

pub use error::NnError;
pub use init::default_init;
pub use layers::{build_model, layer_type, ModelGraph, ParamInfo};
pub use loss::{build_loss, task_of, TargetLayout, Task};
pub use optim::group_settings;
pub use optim::{build_update, group_of, state_names};
pub use step::{build_eval, build_step, initial_lr, natural_layout, Hyper, StepGraph};
