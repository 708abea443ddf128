//! The typed training spec: what a YAML spec means once parsed and checked.
//!
//! Names follow SPEC.md and PyTorch's keyword arguments; every optional field
//! already holds PyTorch's default after parsing, so later stages never guess.

use std::path::PathBuf;

use crate::expr::Expr;

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
    /// How the learning rate (and momentum) change during training; `None` keeps them constant.
    pub scheduler: Option<SchedulerSpec>,
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
    /// `standardize:` z-score features with the training set's statistics, with the standard
    /// deviation it names; `None` leaves the features as they are.
    pub standardize: Option<StdKind>,
    /// `split:` the part of the training data held out as the validation set; never given
    /// together with `valid`.
    pub split: Option<SplitSpec>,
}

/// Which standard deviation `standardize` divides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdKind {
    /// The population std (ddof 0, sklearn's `StandardScaler`, `X.std(0, unbiased=False)`);
    /// `standardize: true`.
    Population,
    /// The sample std (ddof 1, PyTorch's default `X.std(0)`); `standardize: {std: sample}`.
    Sample,
}

impl StdKind {
    /// The name the spec and `standardize.json` use: `population` or `sample`.
    pub fn name(self) -> &'static str {
        match self {
            StdKind::Population => "population",
            StdKind::Sample => "sample",
        }
    }
}

/// `data.split`: which rows of the training data are held out as the validation set.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitSpec {
    /// `split: 0.2` or `split: {fraction: 0.2, seed: 3}`: `ceil(fraction × n)` rows drawn at
    /// random, `fraction` in `(0, 1)`.
    Fraction {
        /// The fraction held out.
        fraction: f32,
        /// The seed of the draw; `None` draws from the spec's `seed`.
        seed: Option<u64>,
    },
    /// `split: {file: split.json}`: the held-out rows a run's `split.json` lists (path relative
    /// to the spec file).
    File(PathBuf),
}

/// One data source: exactly one of `csv`, `npy`, `npz`, `idx` or `synthetic`.
///
/// Paths are as written in the spec (relative to the spec file).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// `{csv: PATH, target: NAME or [NAMES], features: [NAMES]}`: a CSV file with a header row.
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// Target column name(s).
        target: Vec<String>,
        /// Feature columns; `None` means every column that is not a target.
        features: Option<Vec<String>>,
    },
    /// `{npy: {features: PATH, target: PATH}}`: two NumPy `.npy` files, one row per sample each.
    Npy {
        /// The features array, shape `(samples, ...)`.
        features: PathBuf,
        /// The target array, shape `(samples,)` or `(samples, width)`.
        target: PathBuf,
    },
    /// `{npz: PATH, features: NAME, target: NAME}`: two arrays of one NumPy `.npz` archive.
    Npz {
        /// The `.npz` file (as written by `np.savez` or `np.savez_compressed`).
        path: PathBuf,
        /// The name of the features array in the archive (the keyword given to `np.savez`).
        features: String,
        /// The name of the target array in the archive.
        target: String,
    },
    /// `{idx: {images: PATH, labels: PATH}}`: the IDX format of MNIST, gzipped or not.
    Idx {
        /// The items (features) file, e.g. `train-images-idx3-ubyte.gz`.
        images: PathBuf,
        /// The labels (targets) file, e.g. `train-labels-idx1-ubyte.gz`.
        labels: PathBuf,
    },
    /// `{synthetic: {kind, samples, features, classes, noise}}`: generated from `seed`.
    Synthetic(SyntheticSpec),
    /// An objective spec's data (never written in a spec): one sample whose one feature and
    /// one target are 0, read by nothing; every step is one epoch of it.
    Objective,
}

/// A built-in synthetic data set, generated from the spec's `seed`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Which generator.
    pub kind: SyntheticKind,
    /// Number of samples (> 0).
    pub samples: usize,
    /// Features per sample (2 for `moons` and `spirals`).
    pub features: usize,
    /// Number of classes (0 for `linear`, which is regression; 2 for `moons`).
    pub classes: usize,
    /// Standard deviation of the Gaussian noise (>= 0).
    pub noise: f32,
}

/// The synthetic generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticKind {
    /// Gaussian clusters around random centres (sklearn's `make_blobs`); class labels.
    Blobs,
    /// Two interleaving half circles in 2-D (sklearn's `make_moons`); class labels.
    Moons,
    /// Interleaved spiral arms in 2-D, one per class; class labels.
    Spirals,
    /// `y = x·w + b + noise` with random `w`, `b`; a float target (regression).
    Linear,
}

/// `model:` — a sequential stack of layers, or a graph of named nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Shape of one sample's features.
    pub input: Vec<usize>,
    /// What the model computes from its input.
    pub body: ModelBody,
    /// Where the initial parameters come from.
    pub init: InitSpec,
}

impl ModelSpec {
    /// The objective, when the spec is an objective spec.
    pub fn objective(&self) -> Option<&ObjectiveSpec> {
        match &self.body {
            ModelBody::Objective(objective) => Some(objective),
            ModelBody::Layers(_) | ModelBody::Nodes(_) => None,
        }
    }

    /// `model.layers`, when the model is a chain of layers.
    pub fn layers(&self) -> Option<&[LayerSpec]> {
        match &self.body {
            ModelBody::Layers(layers) => Some(layers),
            ModelBody::Nodes(_) | ModelBody::Objective(_) => None,
        }
    }
}

/// `model.layers` or `model.nodes`: exactly one of them is given.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelBody {
    /// `model.layers`: applied in order, like `torch.nn.Sequential`.
    Layers(Vec<LayerSpec>),
    /// `model.nodes`: a graph of named nodes.
    Nodes(NodeGraph),
    /// An objective spec's `params` and `objective`: the model is the expression, which reads
    /// no input; its output (one value per sample of the one-sample data) is the loss.
    Objective(ObjectiveSpec),
}

/// `params` and `objective`: parameters optimized directly, and the expression over them
/// that is minimized.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveSpec {
    /// The parameters in the order written.
    pub params: Vec<ObjectiveParam>,
    /// The expression as written.
    pub text: String,
    /// The expression parsed over `params` (parameter `i` is `params[i]`).
    pub expr: Expr,
}

/// One entry of `params`: `x: 2.0` (a scalar) or `w: [1, 2]` (a vector).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveParam {
    /// Its name in the expression, `metrics.jsonl` and `model.safetensors`.
    pub name: String,
    /// The initial value: one number for a scalar, the elements of a vector.
    pub init: Vec<f32>,
    /// Whether it was written as a list (a vector, even of one element).
    pub vector: bool,
}

impl ObjectiveParam {
    /// Its shape: `[]` for a scalar (a 0-d tensor), `[n]` for a vector.
    pub fn shape(&self) -> Vec<usize> {
        if self.vector {
            vec![self.init.len()]
        } else {
            Vec::new()
        }
    }
}

/// `model.nodes` and `model.output`, with every input resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeGraph {
    /// The nodes in the order listed; each reads only the model's input and earlier nodes.
    pub nodes: Vec<NodeSpec>,
    /// The position of the model's output in `nodes` (`model.output`, or the last node).
    pub output: usize,
}

/// One entry of `model.nodes`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// The layer or combinator; its `name` is always given (dots allowed).
    pub layer: LayerSpec,
    /// What it reads, in order.
    pub inputs: Vec<NodeInput>,
}

/// An input of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeInput {
    /// The model's input (`input`).
    Model,
    /// The output of the node at this position of `model.nodes` (always an earlier one).
    Node(usize),
}

/// One entry of `model.layers`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// `name:` if given; parameters are then named `NAME.weight`, else `INDEX.weight`.
    pub name: Option<String>,
    /// What the layer computes.
    pub kind: LayerKind,
    /// The input size PyTorch's constructor takes and graphc infers, when the spec gives it:
    /// `in_features` of `linear`, `in_channels` of a convolution, `num_features` of a batch
    /// norm, `num_channels` of a group norm. Building the model checks it against the inferred
    /// size.
    pub declared_input: Option<usize>,
    /// `init:`, the schemes that replace PyTorch's default init of its `weight` and `bias`.
    pub init: LayerInit,
    /// `requires_grad:` (true); false freezes the layer's parameters: no gradient, no
    /// optimizer state, no update.
    pub requires_grad: bool,
}

/// A layer's `init: {weight: INIT, bias: INIT}`; a tensor left out keeps PyTorch's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerInit {
    /// The scheme of the layer's `weight`.
    pub weight: Option<InitScheme>,
    /// The scheme of the layer's `bias`.
    pub bias: Option<InitScheme>,
}

/// One of `torch.nn.init`'s schemes with its keyword arguments (PyTorch's defaults after
/// parsing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitScheme {
    /// `uniform_(a, b)`: U(a, b), `a <= b` (0, 1).
    Uniform {
        /// The lower bound.
        a: f64,
        /// The upper bound.
        b: f64,
    },
    /// `normal_(mean, std)`: N(mean, std²) (0, 1).
    Normal {
        /// The mean.
        mean: f64,
        /// The standard deviation, `>= 0`.
        std: f64,
    },
    /// `trunc_normal_(mean, std, a, b)`: N(mean, std²) restricted to `[a, b]` (0, 1, -2, 2).
    TruncNormal {
        /// The mean.
        mean: f64,
        /// The standard deviation of the untruncated normal, `> 0`.
        std: f64,
        /// The lower cut-off.
        a: f64,
        /// The upper cut-off, above `a`.
        b: f64,
    },
    /// `constant_(val)`.
    Constant {
        /// Every element's value.
        val: f64,
    },
    /// `zeros_`.
    Zeros,
    /// `ones_`.
    Ones,
    /// `eye_`: the identity of a 2-d tensor (ones where row = column).
    Eye,
    /// `xavier_uniform_(gain)`: U(±gain·√(6/(fan_in+fan_out))) (gain 1).
    XavierUniform {
        /// The scale.
        gain: f64,
    },
    /// `xavier_normal_(gain)`: N(0, gain²·2/(fan_in+fan_out)) (gain 1).
    XavierNormal {
        /// The scale.
        gain: f64,
    },
    /// `kaiming_uniform_(a, mode, nonlinearity)`: U(±gain·√(3/fan)).
    KaimingUniform(Kaiming),
    /// `kaiming_normal_(a, mode, nonlinearity)`: N(0, gain²/fan).
    KaimingNormal(Kaiming),
    /// `orthogonal_(gain)`: a (semi-)orthogonal matrix times gain (gain 1).
    Orthogonal {
        /// The scale.
        gain: f64,
    },
}

/// The arguments of `kaiming_uniform_` and `kaiming_normal_`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kaiming {
    /// The negative slope of the rectifier after the layer, for `leaky_relu` (0).
    pub a: f64,
    /// Which fan keeps the variance (`fan_in`).
    pub mode: FanMode,
    /// The nonlinearity whose gain scales the draws (`leaky_relu`).
    pub nonlinearity: Nonlinearity,
}

/// `mode` of the Kaiming schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Keeps the variance of the forward pass's activations.
    FanIn,
    /// Keeps the variance of the backward pass's gradients.
    FanOut,
}

impl FanMode {
    /// Every mode, in the order messages list them.
    pub const ALL: &'static [FanMode] = &[FanMode::FanIn, FanMode::FanOut];

    /// The name written in a spec.
    pub const fn name(self) -> &'static str {
        match self {
            FanMode::FanIn => "fan_in",
            FanMode::FanOut => "fan_out",
        }
    }
}

/// `torch.nn.init.calculate_gain`'s nonlinearities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonlinearity {
    /// Gain 1.
    Linear,
    /// Gain 1.
    Conv1d,
    /// Gain 1.
    Conv2d,
    /// Gain 1.
    Conv3d,
    /// Gain 1.
    ConvTranspose1d,
    /// Gain 1.
    ConvTranspose2d,
    /// Gain 1.
    ConvTranspose3d,
    /// Gain 1.
    Sigmoid,
    /// Gain 5/3.
    Tanh,
    /// Gain √2.
    Relu,
    /// Gain √(2/(1 + slope²)).
    LeakyRelu,
    /// Gain 3/4.
    Selu,
}

impl Nonlinearity {
    /// Every nonlinearity, in `calculate_gain`'s order.
    pub const ALL: &'static [Nonlinearity] = &[
        Nonlinearity::Linear,
        Nonlinearity::Conv1d,
        Nonlinearity::Conv2d,
        Nonlinearity::Conv3d,
        Nonlinearity::ConvTranspose1d,
        Nonlinearity::ConvTranspose2d,
        Nonlinearity::ConvTranspose3d,
        Nonlinearity::Sigmoid,
        Nonlinearity::Tanh,
        Nonlinearity::Relu,
        Nonlinearity::LeakyRelu,
        Nonlinearity::Selu,
    ];

    /// The name written in a spec, as `calculate_gain` takes it.
    pub const fn name(self) -> &'static str {
        match self {
            Nonlinearity::Linear => "linear",
            Nonlinearity::Conv1d => "conv1d",
            Nonlinearity::Conv2d => "conv2d",
            Nonlinearity::Conv3d => "conv3d",
            Nonlinearity::ConvTranspose1d => "conv_transpose1d",
            Nonlinearity::ConvTranspose2d => "conv_transpose2d",
            Nonlinearity::ConvTranspose3d => "conv_transpose3d",
            Nonlinearity::Sigmoid => "sigmoid",
            Nonlinearity::Tanh => "tanh",
            Nonlinearity::Relu => "relu",
            Nonlinearity::LeakyRelu => "leaky_relu",
            Nonlinearity::Selu => "selu",
        }
    }
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
    /// `nn.Conv1d`; `in_channels` is inferred from the input.
    Conv1d(ConvSpec),
    /// `nn.Conv2d`; `in_channels` is inferred from the input.
    Conv2d(ConvSpec),
    /// `nn.MaxPool1d`.
    MaxPool1d(MaxPoolSpec),
    /// `nn.MaxPool2d`.
    MaxPool2d(MaxPoolSpec),
    /// `nn.AvgPool1d`.
    AvgPool1d(AvgPoolSpec),
    /// `nn.AvgPool2d`.
    AvgPool2d(AvgPoolSpec),
    /// `nn.AdaptiveAvgPool1d(output_size)`.
    AdaptiveAvgPool1d {
        /// Output size per spatial axis; `None` keeps the input's size there.
        output_size: Vec<Option<usize>>,
    },
    /// `nn.AdaptiveAvgPool2d(output_size)`.
    AdaptiveAvgPool2d {
        /// Output size per spatial axis; `None` keeps the input's size there.
        output_size: Vec<Option<usize>>,
    },
    /// `nn.AdaptiveMaxPool2d(output_size)`.
    AdaptiveMaxPool2d {
        /// Output size per spatial axis; `None` keeps the input's size there.
        output_size: Vec<Option<usize>>,
    },
    /// `nn.Flatten(start_dim, end_dim)`: dims of the batched tensor, negative from the end.
    Flatten {
        /// First dim merged (1 by default: the batch axis stays).
        start_dim: i64,
        /// Last dim merged (-1 by default).
        end_dim: i64,
    },
    /// `nn.BatchNorm1d` on `[C]` or `[C, L]` per sample; `num_features` is inferred.
    BatchNorm1d(BatchNormSpec),
    /// `nn.BatchNorm2d` on `[C, H, W]` per sample; `num_features` is inferred.
    BatchNorm2d(BatchNormSpec),
    /// `nn.Dropout(p)`: each element zeroed with probability `p` in training.
    Dropout {
        /// The probability of zeroing, in `[0, 1]` (0.5).
        p: f64,
    },
    /// `nn.Dropout1d(p)`: whole channels of `[C, L]` zeroed.
    Dropout1d {
        /// The probability of zeroing a channel, in `[0, 1]` (0.5).
        p: f64,
    },
    /// `nn.Dropout2d(p)`: whole channels of `[C, H, W]` (or `[C, L]`) zeroed.
    Dropout2d {
        /// The probability of zeroing a channel, in `[0, 1]` (0.5).
        p: f64,
    },
    /// `nn.LayerNorm`: each sample normalised over its trailing `normalized_shape` axes.
    LayerNorm(LayerNormSpec),
    /// `nn.GroupNorm` on `[C, *]` per sample; `num_channels` is inferred.
    GroupNorm(GroupNormSpec),
    /// `nn.Embedding`: each input feature, a class index, replaced by a row of `weight`.
    Embedding(EmbeddingSpec),
    /// An elementwise activation without parameters (`identity`, `gelu`, `hardtanh`, ...).
    Activation(Activation),
    /// `nn.PReLU(num_parameters, init)`: `x` where `x > 0`, else `weight · x`, with a learned
    /// `weight` of `num_parameters` values, one per channel (axis 1 of the batched input)
    /// when there are more than one.
    Prelu {
        /// The number of slopes: 1, or the input's channels (1).
        num_parameters: usize,
        /// Every slope's initial value (0.25).
        init: f64,
    },
    /// `nn.Sequential` nested in the model: its layers applied in order, their parameters
    /// named `BLOCK.INDEX.weight`.
    Sequential(Vec<LayerSpec>),
    /// `body(x) + shortcut(x)`, a residual block: parameters `BLOCK.body.I.weight` and
    /// `BLOCK.shortcut.I.weight`.
    Residual {
        /// The body's layers (non-empty).
        body: Vec<LayerSpec>,
        /// The shortcut's layers; `None` is the identity.
        shortcut: Option<Vec<LayerSpec>>,
    },
    /// A combinator of node outputs (`add`, `concat`, ...), or of one input (`mean`,
    /// `reshape`).
    Combine(Combinator),
}

/// The combinators of `model.nodes`. Dims index the batched tensor, as in PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub enum Combinator {
    /// `torch.add` of 2 or more inputs, with broadcasting.
    Add,
    /// `torch.sub` of exactly 2 inputs, with broadcasting.
    Sub,
    /// `torch.mul` of 2 or more inputs, with broadcasting.
    Mul,
    /// `torch.cat` of 2 or more inputs along `dim` (1).
    Concat {
        /// The axis joined (negative from the end).
        dim: i64,
    },
    /// `torch.mean` over `dim`.
    Mean(Reduce),
    /// `torch.sum` over `dim`.
    Sum(Reduce),
    /// `torch.reshape` of each sample to `shape` (one `-1` allowed, inferred).
    Reshape {
        /// One sample's new shape: positive sizes and at most one -1.
        shape: Vec<i64>,
    },
}

/// The arguments of `mean` and `sum`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduce {
    /// The axes reduced (negative from the end), in the order written.
    pub dim: Vec<i64>,
    /// Whether reduced axes stay with size 1 (false).
    pub keepdim: bool,
}

/// The elementwise activations of `torch.nn` without learned parameters (besides `relu`,
/// `sigmoid` and `tanh`, which are layers of their own), with PyTorch's arguments and
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `nn.Identity`.
    Identity,
    /// `nn.LeakyReLU(negative_slope)`.
    LeakyRelu {
        /// The slope below zero (0.01).
        negative_slope: f64,
    },
    /// `nn.ELU(alpha)`.
    Elu {
        /// The scale of the negative part (1).
        alpha: f64,
    },
    /// `nn.SELU`.
    Selu,
    /// `nn.CELU(alpha)`.
    Celu {
        /// The scale of the negative part (1); not 0.
        alpha: f64,
    },
    /// `nn.GELU(approximate)`.
    Gelu {
        /// `none` (the exact erf form) or `tanh`.
        approximate: GeluApproximate,
    },
    /// `nn.SiLU`.
    Silu,
    /// `nn.Mish`.
    Mish,
    /// `nn.Softplus(beta, threshold)`.
    Softplus {
        /// The sharpness (1); not 0.
        beta: f64,
        /// Above `x · beta > threshold` the layer is the identity (20).
        threshold: f64,
    },
    /// `nn.Hardtanh(min_val, max_val)`.
    Hardtanh {
        /// The lower bound (-1).
        min_val: f64,
        /// The upper bound (1), above `min_val`.
        max_val: f64,
    },
    /// `nn.ReLU6`: `hardtanh(0, 6)`.
    Relu6,
    /// `nn.Hardsigmoid`.
    Hardsigmoid,
    /// `nn.Hardswish`.
    Hardswish,
    /// `nn.LogSigmoid`.
    LogSigmoid,
    /// `nn.Softsign`.
    Softsign,
    /// `nn.Tanhshrink`.
    Tanhshrink,
}

/// `nn.GELU`'s `approximate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluApproximate {
    /// `x · Φ(x)` with the exact normal CDF (through erf).
    None,
    /// `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`.
    Tanh,
}

/// The arguments of `nn.BatchNorm1d`/`nn.BatchNorm2d`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormSpec {
    /// Added to the variance before its square root (1e-5).
    pub eps: f64,
    /// The running statistics' update weight (0.1); `None` (`momentum: null`): the cumulative
    /// average, weight `1 / num_batches_tracked`.
    pub momentum: Option<f64>,
    /// Whether the layer has a learned `weight` and `bias` (true).
    pub affine: bool,
    /// Whether it keeps running statistics for evaluation (true); without them it normalises
    /// with the batch's statistics in evaluation too, and has no buffers.
    pub track_running_stats: bool,
}

/// The arguments of `nn.LayerNorm`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormSpec {
    /// The trailing axes normalised over, which must end one sample's shape; `None` (PyTorch has
    /// no default; graphc's is) for the last axis of the input.
    pub normalized_shape: Option<Vec<usize>>,
    /// Added to the variance before its square root (1e-5).
    pub eps: f64,
    /// Whether the layer has a learned `weight` (and `bias`) of `normalized_shape` (true).
    pub elementwise_affine: bool,
    /// Whether an affine layer has a `bias` (true).
    pub bias: bool,
}

/// The arguments of `nn.GroupNorm`; `num_channels` is the input's channels (a declared
/// `num_channels` is checked against them).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupNormSpec {
    /// The number of channel groups, each normalised on its own; divides the channels.
    pub num_groups: usize,
    /// Added to the variance before its square root (1e-5).
    pub eps: f64,
    /// Whether the layer has a learned per-channel `weight` and `bias` (true).
    pub affine: bool,
}

/// The arguments of `nn.Embedding`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingSpec {
    /// The number of rows of `weight`: input values are indices in `[0, num_embeddings)`.
    pub num_embeddings: usize,
    /// The size of each row.
    pub embedding_dim: usize,
    /// The row that gets no gradient (and starts at zero), resolved as PyTorch does: a
    /// negative `padding_idx` counts from the end. `None`: every row learns.
    pub padding_idx: Option<usize>,
}

/// `padding=` of a convolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvPadding {
    /// Zeros before and after each spatial axis (`padding=0` and `'valid'` are all zeros).
    Explicit(Vec<usize>),
    /// `'same'`: the output has the input's size (stride 1 only); where the total padding
    /// `dilation·(kernel−1)` is odd, the extra zero goes after the input, as PyTorch's.
    Same,
}

/// The arguments of `nn.Conv1d`/`nn.Conv2d`; every per-axis list has one entry per
/// spatial axis (an int in the spec applies to every axis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvSpec {
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size per spatial axis.
    pub kernel_size: Vec<usize>,
    /// Stride per spatial axis (1).
    pub stride: Vec<usize>,
    /// Zero padding (0).
    pub padding: ConvPadding,
    /// Dilation per spatial axis (1).
    pub dilation: Vec<usize>,
    /// Channel groups (1); divides `out_channels` and the input's channels.
    pub groups: usize,
    /// Whether a learned bias is added (true).
    pub bias: bool,
}

/// The arguments of `nn.MaxPool1d`/`nn.MaxPool2d`, per spatial axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPoolSpec {
    /// Window size.
    pub kernel_size: Vec<usize>,
    /// Stride (`kernel_size` by default).
    pub stride: Vec<usize>,
    /// Implicit padding on both sides, at most half the kernel (0); it never wins the max.
    pub padding: Vec<usize>,
    /// Distance between window positions (1).
    pub dilation: Vec<usize>,
    /// Round the output size up instead of down (false).
    pub ceil_mode: bool,
}

/// The arguments of `nn.AvgPool1d`/`nn.AvgPool2d`, per spatial axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvgPoolSpec {
    /// Window size.
    pub kernel_size: Vec<usize>,
    /// Stride (`kernel_size` by default).
    pub stride: Vec<usize>,
    /// Zero padding on both sides, at most half the kernel (0).
    pub padding: Vec<usize>,
    /// Round the output size up instead of down (false).
    pub ceil_mode: bool,
    /// Count padded zeros in the divisor (true).
    pub count_include_pad: bool,
    /// Divide every window by this instead (2-d only; none).
    pub divisor_override: Option<usize>,
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
    /// Per-sample (or per-element) losses: inspection only, training needs a scalar.
    None,
    /// Sum over samples.
    Sum,
    /// Mean over samples (weighted mean where the loss has class weights).
    Mean,
    /// `kl_div` only: the sum divided by the batch size (PyTorch's `batchmean`).
    BatchMean,
}

/// `loss:`: one variant per `torch.nn` loss class, with its keyword arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum LossSpec {
    /// `nn.MSELoss`.
    Mse {
        /// How per-element losses are combined.
        reduction: Reduction,
    },
    /// `nn.L1Loss`.
    L1 {
        /// How per-element losses are combined.
        reduction: Reduction,
    },
    /// `nn.SmoothL1Loss`: quadratic below `beta`, linear above.
    SmoothL1 {
        /// Where the loss turns linear (>= 0; 0 is `l1`).
        beta: f32,
        /// How per-element losses are combined.
        reduction: Reduction,
    },
    /// `nn.HuberLoss`: `delta` × `smooth_l1` with `beta = delta`.
    Huber {
        /// Where the loss turns linear (> 0).
        delta: f32,
        /// How per-element losses are combined.
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
    /// `nn.NLLLoss`: the input holds log-probabilities.
    Nll {
        /// Per-class weights.
        weight: Option<Vec<f32>>,
        /// Target class index that contributes nothing.
        ignore_index: i64,
        /// How per-sample losses are combined.
        reduction: Reduction,
    },
    /// `nn.BCELoss`: the input holds probabilities; logs are clamped at -100.
    Bce {
        /// Per-element rescaling weights (one, or one per output column).
        weight: Option<Vec<f32>>,
        /// How per-element losses are combined.
        reduction: Reduction,
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
    /// `nn.KLDivLoss`: the input holds log-probabilities.
    KlDiv {
        /// The target holds log-probabilities too.
        log_target: bool,
        /// How per-element losses are combined (`batchmean` divides the sum by the batch size).
        reduction: Reduction,
    },
    /// `nn.PoissonNLLLoss`.
    PoissonNll {
        /// The input is the log of the rate (`exp(input) - target · input`).
        log_input: bool,
        /// Add the Stirling approximation term `t·log t - t + ½·log(2πt)` (for targets > 1).
        full: bool,
        /// Added to the rate before its log when `log_input` is false.
        eps: f32,
        /// How per-element losses are combined.
        reduction: Reduction,
    },
    /// `nn.SoftMarginLoss`: `log(1 + exp(-y·x))` with targets ±1.
    SoftMargin {
        /// How per-element losses are combined.
        reduction: Reduction,
    },
    /// `nn.MultiLabelSoftMarginLoss`: per-sample mean over classes of logistic losses.
    MultiLabelSoftMargin {
        /// Per-class weights.
        weight: Option<Vec<f32>>,
        /// How per-sample losses are combined.
        reduction: Reduction,
    },
    /// `nn.MultiMarginLoss`: multi-class hinge loss on class indices.
    MultiMargin {
        /// The hinge's exponent: 1 or 2.
        p: u32,
        /// The margin.
        margin: f32,
        /// Per-class weights (scale a sample's loss by its target class's weight).
        weight: Option<Vec<f32>>,
        /// How per-sample losses are combined.
        reduction: Reduction,
    },
    /// An objective spec's loss (never written in a spec): the model's output itself, the
    /// objective's value; `reduction` combines the one sample's value (`none` keeps it).
    Objective {
        /// How per-sample values are combined.
        reduction: Reduction,
    },
}

/// The `reduction` field of whichever loss `$loss` is (by reference, as `$loss` is borrowed).
macro_rules! reduction_field {
    ($loss:expr) => {
        match $loss {
            LossSpec::CrossEntropy { reduction, .. }
            | LossSpec::Nll { reduction, .. }
            | LossSpec::Bce { reduction, .. }
            | LossSpec::BceWithLogits { reduction, .. }
            | LossSpec::Mse { reduction }
            | LossSpec::L1 { reduction }
            | LossSpec::SmoothL1 { reduction, .. }
            | LossSpec::Huber { reduction, .. }
            | LossSpec::KlDiv { reduction, .. }
            | LossSpec::PoissonNll { reduction, .. }
            | LossSpec::SoftMargin { reduction }
            | LossSpec::MultiLabelSoftMargin { reduction, .. }
            | LossSpec::MultiMargin { reduction, .. }
            | LossSpec::Objective { reduction } => reduction,
        }
    };
}

impl LossSpec {
    /// How the loss combines its per-element losses.
    pub fn reduction(&self) -> Reduction {
        *reduction_field!(self)
    }

    /// The loss's `reduction`, to change it (evaluation asks for per-sample losses).
    pub fn reduction_mut(&mut self) -> &mut Reduction {
        reduction_field!(self)
    }
}

/// `optimizer:` — hyperparameters that apply to every parameter unless a group overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSpec {
    /// The algorithm and its default hyperparameters (PyTorch's `defaults`).
    pub kind: OptimizerKind,
    /// `param_groups`: first matching pattern wins.
    pub param_groups: Vec<ParamGroupSpec>,
}

/// The optimizer algorithms, `torch.optim`'s classes. Floats are `f64` like PyTorch's Python
/// floats: derived scalars (`1 - beta`, bias corrections) are computed in `f64` and only then
/// rounded to the `f32` the update runs in, as PyTorch does.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerKind {
    /// `torch.optim.SGD`.
    Sgd(SgdSpec),
    /// `torch.optim.Adam`.
    Adam(AdamSpec),
    /// `torch.optim.AdamW`: Adam with `decoupled_weight_decay` always on.
    AdamW(AdamSpec),
    /// `torch.optim.RMSprop`.
    RmsProp(RmsPropSpec),
    /// `torch.optim.Adagrad`.
    Adagrad(AdagradSpec),
    /// `torch.optim.Adadelta`.
    Adadelta(AdadeltaSpec),
    /// `torch.optim.Adamax`.
    Adamax(AdamaxSpec),
    /// `torch.optim.NAdam`.
    NAdam(NAdamSpec),
    /// `torch.optim.RAdam`.
    RAdam(RAdamSpec),
}

/// `torch.optim.SGD`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SgdSpec {
    /// Learning rate (>= 0).
    pub lr: f64,
    /// Momentum factor (>= 0).
    pub momentum: f64,
    /// Dampening for momentum.
    pub dampening: f64,
    /// L2 penalty (>= 0).
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening == 0).
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// `torch.optim.Adam`'s and `torch.optim.AdamW`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamSpec {
    /// Learning rate (>= 0).
    pub lr: f64,
    /// Decay rates of the first and second moment averages, each in `[0, 1)`.
    pub betas: (f64, f64),
    /// Added to the denominator (>= 0).
    pub eps: f64,
    /// Weight decay (>= 0): an L2 term in the gradient, or decoupled (AdamW).
    pub weight_decay: f64,
    /// Normalise by the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
    /// Decay the weights directly (`p *= 1 - lr * weight_decay`) instead of through the gradient.
    pub decoupled_weight_decay: bool,
}

/// `torch.optim.RMSprop`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RmsPropSpec {
    /// Learning rate (>= 0).
    pub lr: f64,
    /// Smoothing constant of the squared-gradient average (>= 0).
    pub alpha: f64,
    /// Added to the denominator (>= 0).
    pub eps: f64,
    /// L2 penalty (>= 0).
    pub weight_decay: f64,
    /// Momentum factor (>= 0).
    pub momentum: f64,
    /// Normalise by the estimated variance instead of the raw second moment.
    pub centered: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// `torch.optim.Adagrad`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct AdagradSpec {
    /// Learning rate (>= 0).
    pub lr: f64,
    /// Learning-rate decay per step (>= 0).
    pub lr_decay: f64,
    /// L2 penalty (>= 0).
    pub weight_decay: f64,
    /// Starting value of the squared-gradient sum (>= 0).
    pub initial_accumulator_value: f64,
    /// Added to the denominator (>= 0).
    pub eps: f64,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// `torch.optim.Adadelta`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct AdadeltaSpec {
    /// Scale of the delta (>= 0).
    pub lr: f64,
    /// Decay rate of the running averages, in `[0, 1]`.
    pub rho: f64,
    /// Added inside the square roots (>= 0).
    pub eps: f64,
    /// L2 penalty (>= 0).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// `torch.optim.Adamax`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamaxSpec {
    /// Learning rate (>= 0).
    pub lr: f64,
    /// Decay rates of the first moment and of the infinity norm, each in `[0, 1)`.
    pub betas: (f64, f64),
    /// Added to the infinity norm's candidate (>= 0).
    pub eps: f64,
    /// L2 penalty (>= 0).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// `torch.optim.NAdam`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct NAdamSpec {
    /// Learning rate (>= 0).
    pub lr: f64,
    /// Decay rates of the first and second moment averages, each in `[0, 1)`.
    pub betas: (f64, f64),
    /// Added to the denominator (>= 0).
    pub eps: f64,
    /// Weight decay (>= 0).
    pub weight_decay: f64,
    /// Momentum decay `psi` of the momentum schedule (>= 0).
    pub momentum_decay: f64,
    /// Decay the weights directly, as AdamW does (NAdamW).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// `torch.optim.RAdam`'s hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RAdamSpec {
    /// Learning rate (>= 0).
    pub lr: f64,
    /// Decay rates of the first and second moment averages, each in `[0, 1)`.
    pub betas: (f64, f64),
    /// Added to the denominator (>= 0).
    pub eps: f64,
    /// Weight decay (>= 0).
    pub weight_decay: f64,
    /// Decay the weights directly, as AdamW does (RAdamW).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// One hyperparameter value as PyTorch's `param_group` dict holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HyperValue {
    /// A float (`lr`, `eps`, ...).
    Float(f64),
    /// A flag (`nesterov`, `amsgrad`, ...).
    Bool(bool),
    /// A pair (`betas`).
    Pair(f64, f64),
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
    /// Batches whose gradients are summed before one update (>= 1; 1 updates every batch).
    pub accumulate: usize,
    /// `torch.nn.utils.clip_grad_norm_` on the (summed) gradients before each update.
    pub clip_grad_norm: Option<ClipGradNorm>,
    /// `torch.nn.utils.clip_grad_value_`'s `clip_value` (> 0), applied before norm clipping.
    pub clip_grad_value: Option<f64>,
    /// Write `checkpoint/` every this many epochs (it is always written at the end).
    pub checkpoint_every: Option<u64>,
    /// `early_stopping:` stop when the monitored metric stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// `keep_best: true` writes `best.safetensors`, the parameters at the best monitored epoch
    /// (monitored as `early_stopping` says, else its defaults).
    pub keep_best: bool,
    /// `precision:` the number format of matrix products and convolutions (default `fp32`).
    pub precision: Precision,
    /// `sync_batch_norm: true`: with several data-parallel ranks, batch norm's batch
    /// statistics are reduced across ranks (`nn.SyncBatchNorm`); by default each rank
    /// normalises with its own share's (PyTorch DDP's `BatchNorm`). One process: no effect.
    pub sync_batch_norm: bool,
}

/// `train.precision`: the operands of matrix products and convolutions, as
/// `torch.autocast("cpu", dtype=torch.bfloat16)` casts them; everything else stays f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Every value and operation in f32 (the default).
    #[default]
    Fp32,
    /// Products and convolutions (forward and backward) take operands rounded to bfloat16
    /// (nearest, ties to even) and accumulate and return f32.
    Bf16,
}

impl Precision {
    /// Every precision, in the order the spec lists them.
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Bf16];

    /// The spec's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// `train.early_stopping`: PyTorch Lightning's `EarlyStopping(monitor, mode, patience,
/// min_delta)`, checked after every epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// What is watched (default `valid_loss`).
    pub monitor: Monitor,
    /// Whether smaller (`min`, the default) or larger values are better.
    pub mode: PlateauMode,
    /// Epochs without improvement before training stops (default 3).
    pub patience: u64,
    /// How much the metric must improve to count (default 0.0), as Lightning reads it.
    pub min_delta: f64,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping {
            monitor: Monitor::ValidLoss,
            mode: PlateauMode::Min,
            patience: 3,
            min_delta: 0.0,
        }
    }
}

/// An epoch metric that early stopping and `keep_best` watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// The validation set's loss after the epoch.
    ValidLoss,
    /// The validation set's accuracy after the epoch (classification losses only).
    ValidAccuracy,
    /// The epoch's mean training loss.
    TrainLoss,
}

impl Monitor {
    /// Every monitor, in the order the spec lists them.
    pub const ALL: [Monitor; 3] = [
        Monitor::ValidLoss,
        Monitor::ValidAccuracy,
        Monitor::TrainLoss,
    ];

    /// The spec's name (also the key in `metrics.jsonl`).
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValidLoss => "valid_loss",
            Monitor::ValidAccuracy => "valid_accuracy",
            Monitor::TrainLoss => "train_loss",
        }
    }

    /// Whether the metric needs a validation set.
    pub fn needs_valid(self) -> bool {
        match self {
            Monitor::ValidLoss | Monitor::ValidAccuracy => true,
            Monitor::TrainLoss => false,
        }
    }
}

/// `train.clip_grad_norm`: `clip_grad_norm_(parameters, max_norm, norm_type)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipGradNorm {
    /// Largest total norm the gradients keep (>= 0).
    pub max_norm: f64,
    /// The p of the p-norm (> 0), or `f64::INFINITY` for the largest absolute value.
    pub norm_type: f64,
}

/// `scheduler:` — a `torch.optim.lr_scheduler` class and when it is stepped.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerSpec {
    /// The schedule.
    pub kind: SchedulerKind,
    /// Stepped after every epoch or after every update.
    pub interval: Interval,
}

/// When a scheduler's `step()` is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// After each epoch (after validation), PyTorch's usual loop; the default except for `one_cycle_lr`.
    Epoch,
    /// After each update (`optimizer.step()`); the default for `one_cycle_lr`.
    Step,
}

/// A scheduler argument that is one value for every param group or a list with one per group.
#[derive(Debug, Clone, PartialEq)]
pub enum PerGroup {
    /// The same value for every group.
    All(f64),
    /// One value per param group, in PyTorch's `param_groups` order.
    Each(Vec<f64>),
}

/// `ReduceLROnPlateau(mode=)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateauMode {
    /// The metric should decrease.
    Min,
    /// The metric should increase.
    Max,
}

/// `ReduceLROnPlateau(threshold_mode=)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMode {
    /// A relative margin: `best * (1 ∓ threshold)`.
    Rel,
    /// An absolute margin: `best ∓ threshold`.
    Abs,
}

/// `OneCycleLR(anneal_strategy=)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnealStrategy {
    /// Cosine annealing.
    Cos,
    /// Linear annealing.
    Linear,
}

/// The `torch.optim.lr_scheduler` classes, with PyTorch's arguments (floats are Python floats).
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerKind {
    /// `StepLR(step_size, gamma=0.1)`.
    StepLr {
        /// Period of decay (> 0).
        step_size: u64,
        /// Multiplicative factor.
        gamma: f64,
    },
    /// `MultiStepLR(milestones, gamma=0.1)`.
    MultiStepLr {
        /// Epoch indices of the decays (a repeated index decays that many times).
        milestones: Vec<u64>,
        /// Multiplicative factor.
        gamma: f64,
    },
    /// `ExponentialLR(gamma)`.
    ExponentialLr {
        /// Multiplicative factor per step.
        gamma: f64,
    },
    /// `CosineAnnealingLR(T_max, eta_min=0)`.
    CosineAnnealingLr {
        /// Half period (> 0).
        t_max: u64,
        /// Minimum learning rate.
        eta_min: f64,
    },
    /// `CosineAnnealingWarmRestarts(T_0, T_mult=1, eta_min=0)`.
    CosineAnnealingWarmRestarts {
        /// Steps until the first restart (> 0).
        t_0: u64,
        /// Growth factor of the period after each restart (>= 1).
        t_mult: u64,
        /// Minimum learning rate.
        eta_min: f64,
    },
    /// `LinearLR(start_factor=1/3, end_factor=1.0, total_iters=5)`.
    LinearLr {
        /// Factor at step 0, in (0, 1].
        start_factor: f64,
        /// Factor from `total_iters` on, in [0, 1].
        end_factor: f64,
        /// Steps of the ramp (> 0).
        total_iters: u64,
    },
    /// `ConstantLR(factor=1/3, total_iters=5)`.
    ConstantLr {
        /// Factor until `total_iters`, in [0, 1].
        factor: f64,
        /// Steps the factor applies.
        total_iters: u64,
    },
    /// `OneCycleLR(max_lr, total_steps | epochs and steps_per_epoch, ...)`.
    OneCycleLr {
        /// Peak learning rate per group.
        max_lr: PerGroup,
        /// Steps in the cycle: `total_steps`, or `epochs * steps_per_epoch`.
        total_steps: u64,
        /// Fraction of the cycle spent increasing the learning rate, in [0, 1].
        pct_start: f64,
        /// Cosine or linear annealing.
        anneal_strategy: AnnealStrategy,
        /// Cycle momentum (or Adam's beta1) inversely to the learning rate.
        cycle_momentum: bool,
        /// Lower momentum bound per group.
        base_momentum: PerGroup,
        /// Upper momentum bound per group.
        max_momentum: PerGroup,
        /// `initial_lr = max_lr / div_factor`.
        div_factor: f64,
        /// `min_lr = initial_lr / final_div_factor`.
        final_div_factor: f64,
        /// Three phases (the original paper) instead of fastai's two.
        three_phase: bool,
    },
    /// `ReduceLROnPlateau(mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps)`.
    ReduceLrOnPlateau {
        /// Whether the metric should decrease or increase.
        mode: PlateauMode,
        /// `new_lr = lr * factor` (< 1).
        factor: f64,
        /// Epochs without improvement tolerated.
        patience: u64,
        /// Margin an improvement must exceed.
        threshold: f64,
        /// Relative or absolute margin.
        threshold_mode: ThresholdMode,
        /// Epochs to wait after a reduction.
        cooldown: u64,
        /// Lower bound of the learning rate per group.
        min_lr: PerGroup,
        /// Reductions smaller than this are skipped.
        eps: f64,
    },
    /// `SequentialLR(schedulers, milestones)`: each scheduler in turn, switching at the milestones.
    SequentialLr {
        /// The schedulers (not `reduce_lr_on_plateau`, not nested `sequential_lr`).
        schedulers: Vec<SchedulerKind>,
        /// Steps at which the next scheduler takes over (one fewer than `schedulers`).
        milestones: Vec<u64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_reduction_is_read_and_replaced() {
        let mut loss = LossSpec::Huber {
            delta: 1.0,
            reduction: Reduction::Sum,
        };
        assert_eq!(loss.reduction(), Reduction::Sum);
        *loss.reduction_mut() = Reduction::None;
        assert_eq!(loss.reduction(), Reduction::None);
    }
}
