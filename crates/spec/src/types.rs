//! The typed training spec: what a YAML spec means once parsed and checked.
//!
//! Names follow SPEC.md and PyTorch's keyword arguments; every optional field
//! already holds PyTorch's default after parsing, so later stages never guess.

use std::path::PathBuf;

/// A whole training spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Seed for init, shuffling and dropout.
    pub seed: u64,
    /// Where the data comes from and how it is batched.
    pub data: DataSpec,
    /// The network.
    pub model: ModelSpec,
    /// The training objective.
    pub loss: LossSpec,
    /// How parameters are updated.
    pub optimizer: OptimizerSpec,
    /// How long to train.
    pub train: TrainSpec,
}

/// `data:` — sources, batching and preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpec {
    /// Training set.
    pub train: SourceSpec,
    /// Optional validation set.
    pub valid: Option<SourceSpec>,
    /// Samples per step (> 0).
    pub batch_size: usize,
    /// Reshuffle the training set every epoch from `seed`.
    pub shuffle: bool,
    /// Drop a last partial batch instead of running it as a smaller step.
    pub drop_last: bool,
    /// Z-score features with the training set's statistics.
    pub standardize: bool,
}

/// One data source: a CSV file for now.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    /// Path to the CSV file, as written in the spec (relative to the spec file).
    pub csv: PathBuf,
    /// Target column name(s).
    pub target: Vec<String>,
    /// Feature columns; `None` means every column that is not a target.
    pub features: Option<Vec<String>>,
}

/// `model:` — a sequential stack of layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Shape of one sample's features.
    pub input: Vec<usize>,
    /// Layers applied in order, like `torch.nn.Sequential`.
    pub layers: Vec<LayerSpec>,
    /// Where the initial parameters come from.
    pub init: InitSpec,
}

/// One entry of `model.layers`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// `name:` if given; parameters are then named `NAME.weight`, else `INDEX.weight`.
    pub name: Option<String>,
    /// What the layer computes.
    pub kind: LayerKind,
}

/// The layer vocabulary, PyTorch's modules.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    /// `nn.Linear(in, out, bias)`; `in` is inferred from the previous layer.
    Linear {
        /// Output features (`out_features`).
        out: usize,
        /// Whether the layer adds a learned bias.
        bias: bool,
    },
    /// `nn.ReLU`.
    Relu,
    /// `nn.Sigmoid`.
    Sigmoid,
    /// `nn.Tanh`.
    Tanh,
    /// `nn.Softmax(dim)`; `dim` indexes the batched tensor as in PyTorch (negative from the end), -1 by default.
    Softmax {
        /// The axis normalised over.
        dim: i64,
    },
    /// `nn.LogSoftmax(dim)`.
    LogSoftmax {
        /// The axis normalised over.
        dim: i64,
    },
}

/// `model.init`.
#[derive(Debug, Clone, PartialEq)]
pub enum InitSpec {
    /// PyTorch's default init of each layer, drawn from `seed`.
    Default,
    /// Load a safetensors file with `state_dict` names (path relative to the spec file).
    From(PathBuf),
}

/// `reduction=` of every torch.nn loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Per-sample losses (inspection only; training needs a scalar).
    None,
    /// Sum over samples.
    Sum,
    /// Mean over samples (weighted mean where the loss has class weights).
    Mean,
}

/// `loss:`.
#[derive(Debug, Clone, PartialEq)]
pub enum LossSpec {
    /// `nn.MSELoss`.
    Mse {
        /// How per-sample losses are combined.
        reduction: Reduction,
    },
    /// `nn.CrossEntropyLoss`.
    CrossEntropy {
        /// Per-class weights.
        weight: Option<Vec<f32>>,
        /// Target class index that contributes nothing.
        ignore_index: i64,
        /// How per-sample losses are combined.
        reduction: Reduction,
        /// Label smoothing amount in `[0, 1]`.
        label_smoothing: f32,
    },
    /// `nn.BCEWithLogitsLoss`.
    BceWithLogits {
        /// Per-element rescaling weights.
        weight: Option<Vec<f32>>,
        /// Weights of positive examples, one per class.
        pos_weight: Option<Vec<f32>>,
        /// How per-sample losses are combined.
        reduction: Reduction,
    },
}

/// `optimizer:` — hyperparameters that apply to every parameter unless a group overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSpec {
    /// The algorithm and its default hyperparameters (PyTorch's `defaults`).
    pub kind: OptimizerKind,
    /// `param_groups`: first matching pattern wins.
    pub param_groups: Vec<ParamGroupSpec>,
}

/// The optimizer algorithms.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerKind {
    /// `torch.optim.SGD`.
    Sgd(SgdSpec),
}

/// `torch.optim.SGD`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SgdSpec {
    /// Learning rate (>= 0).
    pub lr: f32,
    /// Momentum factor (>= 0).
    pub momentum: f32,
    /// Dampening for momentum.
    pub dampening: f32,
    /// L2 penalty (>= 0).
    pub weight_decay: f32,
    /// Nesterov momentum (needs momentum > 0 and dampening == 0).
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// One entry of `optimizer.param_groups`: glob patterns and overridden hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroupSpec {
    /// Glob patterns over parameter names (`*` any run of characters, `?` one character).
    pub params: Vec<String>,
    /// The group's hyperparameters: the top-level ones with this group's overrides applied.
    pub kind: OptimizerKind,
}

/// `train:`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSpec {
    /// Number of epochs, if bounded by epochs.
    pub epochs: Option<u64>,
    /// Number of update steps, if bounded by steps; with both, whichever ends first.
    pub steps: Option<u64>,
}
