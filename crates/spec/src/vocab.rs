//! The closed vocabularies of a spec: layer, loss, optimizer and scheduler types and data
//! source formats, each one enum with `ALL`, an exhaustive `name()` and its valid keys.
//!
//! Every dispatch on a vocabulary is an exhaustive `match` on its enum (no `_ =>` fallback), so
//! adding a variant is a compile error at every site that must handle it — the parser's key
//! table and builder here, the graph builder and the memory estimate in graphc-nn.

use std::fmt;

use crate::keys::KeyTable;

/// One closed vocabulary of names written in a spec (`type: linear`, `csv: PATH`).
pub trait Vocabulary: Copy + Eq + fmt::Debug + 'static {
    /// Every entry, in the order messages list them.
    const ALL: &'static [Self];

    /// The snake_case name written in a spec (`linear`, `cross_entropy`, `csv`).
    fn name(self) -> &'static str;

    /// PyTorch's class name (`Linear`, `CrossEntropyLoss`), accepted as an alias where the
    /// vocabulary has one; otherwise the snake_case name again.
    fn torch_name(self) -> &'static str;

    /// The keys a mapping of this type may hold, in the order messages list them.
    fn keys(self) -> &'static [&'static str];

    /// The entry written `name` (snake_case or PyTorch's class name).
    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name() == name || t.torch_name() == name)
    }
}

/// Declares a vocabulary enum whose `ALL` and names come from one list, so that neither can
/// miss a variant; `keys()` is written out per vocabulary as an exhaustive `match`.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => ($snake:literal, $torch:literal), )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every entry, in the order messages list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The snake_case name written in a spec.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $snake,)*
                }
            }

            /// PyTorch's class name.
            pub const fn torch_name(self) -> &'static str {
                match self {
                    $($name::$variant => $torch,)*
                }
            }
        }

        impl Vocabulary for $name {
            const ALL: &'static [Self] = $name::ALL;
            fn name(self) -> &'static str {
                $name::name(self)
            }
            fn torch_name(self) -> &'static str {
                $name::torch_name(self)
            }
            fn keys(self) -> &'static [&'static str] {
                self.key_table().valid
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

vocabulary! {
    /// The layer types of `model.layers`: PyTorch's modules.
    pub enum LayerType {
        /// `nn.Linear`.
        Linear => ("linear", "Linear"),
        /// `nn.ReLU`.
        Relu => ("relu", "ReLU"),
        /// `nn.Sigmoid`.
        Sigmoid => ("sigmoid", "Sigmoid"),
        /// `nn.Tanh`.
        Tanh => ("tanh", "Tanh"),
        /// `nn.Softmax`.
        Softmax => ("softmax", "Softmax"),
        /// `nn.LogSoftmax`.
        LogSoftmax => ("log_softmax", "LogSoftmax"),
        /// `nn.Conv1d`.
        Conv1d => ("conv1d", "Conv1d"),
        /// `nn.Conv2d`.
        Conv2d => ("conv2d", "Conv2d"),
        /// `nn.MaxPool1d`.
        MaxPool1d => ("max_pool1d", "MaxPool1d"),
        /// `nn.MaxPool2d`.
        MaxPool2d => ("max_pool2d", "MaxPool2d"),
        /// `nn.AvgPool1d`.
        AvgPool1d => ("avg_pool1d", "AvgPool1d"),
        /// `nn.AvgPool2d`.
        AvgPool2d => ("avg_pool2d", "AvgPool2d"),
        /// `nn.AdaptiveAvgPool1d`.
        AdaptiveAvgPool1d => ("adaptive_avg_pool1d", "AdaptiveAvgPool1d"),
        /// `nn.AdaptiveAvgPool2d`.
        AdaptiveAvgPool2d => ("adaptive_avg_pool2d", "AdaptiveAvgPool2d"),
        /// `nn.AdaptiveMaxPool2d`.
        AdaptiveMaxPool2d => ("adaptive_max_pool2d", "AdaptiveMaxPool2d"),
        /// `nn.Flatten`.
        Flatten => ("flatten", "Flatten"),
        /// `nn.BatchNorm1d`.
        BatchNorm1d => ("batch_norm1d", "BatchNorm1d"),
        /// `nn.BatchNorm2d`.
        BatchNorm2d => ("batch_norm2d", "BatchNorm2d"),
        /// `nn.LayerNorm`.
        LayerNorm => ("layer_norm", "LayerNorm"),
        /// `nn.GroupNorm`.
        GroupNorm => ("group_norm", "GroupNorm"),
        /// `nn.Embedding`.
        Embedding => ("embedding", "Embedding"),
        /// `nn.Dropout`.
        Dropout => ("dropout", "Dropout"),
        /// `nn.Dropout1d`.
        Dropout1d => ("dropout1d", "Dropout1d"),
        /// `nn.Dropout2d`.
        Dropout2d => ("dropout2d", "Dropout2d"),
        /// `nn.Identity`.
        Identity => ("identity", "Identity"),
        /// `nn.LeakyReLU`.
        LeakyRelu => ("leaky_relu", "LeakyReLU"),
        /// `nn.ELU`.
        Elu => ("elu", "ELU"),
        /// `nn.SELU`.
        Selu => ("selu", "SELU"),
        /// `nn.CELU`.
        Celu => ("celu", "CELU"),
        /// `nn.GELU`.
        Gelu => ("gelu", "GELU"),
        /// `nn.SiLU`.
        Silu => ("silu", "SiLU"),
        /// `nn.Mish`.
        Mish => ("mish", "Mish"),
        /// `nn.Softplus`.
        Softplus => ("softplus", "Softplus"),
        /// `nn.Hardtanh`.
        Hardtanh => ("hardtanh", "Hardtanh"),
        /// `nn.ReLU6`.
        Relu6 => ("relu6", "ReLU6"),
        /// `nn.Hardsigmoid`.
        Hardsigmoid => ("hardsigmoid", "Hardsigmoid"),
        /// `nn.Hardswish`.
        Hardswish => ("hardswish", "Hardswish"),
        /// `nn.LogSigmoid`.
        LogSigmoid => ("logsigmoid", "LogSigmoid"),
        /// `nn.Softsign`.
        Softsign => ("softsign", "Softsign"),
        /// `nn.Tanhshrink`.
        Tanhshrink => ("tanhshrink", "Tanhshrink"),
        /// `nn.PReLU`.
        Prelu => ("prelu", "PReLU"),
        /// `nn.Sequential`, nested.
        Sequential => ("sequential", "Sequential"),
        /// `body(x) + shortcut(x)`.
        Residual => ("residual", "residual"),
        /// `torch.add` of node outputs.
        Add => ("add", "add"),
        /// `torch.sub` of two node outputs.
        Sub => ("sub", "sub"),
        /// `torch.mul` of node outputs.
        Mul => ("mul", "mul"),
        /// `torch.cat` of node outputs.
        Concat => ("concat", "cat"),
        /// `torch.mean`.
        Mean => ("mean", "mean"),
        /// `torch.sum`.
        Sum => ("sum", "sum"),
        /// `torch.reshape` of each sample.
        Reshape => ("reshape", "reshape"),
    }
}

vocabulary! {
    /// The schemes of a layer's `init: {weight: INIT, bias: INIT}`: `torch.nn.init`'s
    /// functions, written without the trailing underscore (PyTorch's name is the alias).
    pub enum InitType {
        /// `uniform_`.
        Uniform => ("uniform", "uniform_"),
        /// `normal_`.
        Normal => ("normal", "normal_"),
        /// `trunc_normal_`.
        TruncNormal => ("trunc_normal", "trunc_normal_"),
        /// `constant_`.
        Constant => ("constant", "constant_"),
        /// `zeros_`.
        Zeros => ("zeros", "zeros_"),
        /// `ones_`.
        Ones => ("ones", "ones_"),
        /// `eye_`.
        Eye => ("eye", "eye_"),
        /// `xavier_uniform_`.
        XavierUniform => ("xavier_uniform", "xavier_uniform_"),
        /// `xavier_normal_`.
        XavierNormal => ("xavier_normal", "xavier_normal_"),
        /// `kaiming_uniform_`.
        KaimingUniform => ("kaiming_uniform", "kaiming_uniform_"),
        /// `kaiming_normal_`.
        KaimingNormal => ("kaiming_normal", "kaiming_normal_"),
        /// `orthogonal_`.
        Orthogonal => ("orthogonal", "orthogonal_"),
    }
}

vocabulary! {
    /// The loss types of `loss:`: the `torch.nn` loss classes.
    pub enum LossType {
        /// `nn.CrossEntropyLoss`.
        CrossEntropy => ("cross_entropy", "CrossEntropyLoss"),
        /// `nn.NLLLoss`.
        Nll => ("nll", "NLLLoss"),
        /// `nn.BCELoss`.
        Bce => ("bce", "BCELoss"),
        /// `nn.BCEWithLogitsLoss`.
        BceWithLogits => ("bce_with_logits", "BCEWithLogitsLoss"),
        /// `nn.MSELoss`.
        Mse => ("mse", "MSELoss"),
        /// `nn.L1Loss`.
        L1 => ("l1", "L1Loss"),
        /// `nn.SmoothL1Loss`.
        SmoothL1 => ("smooth_l1", "SmoothL1Loss"),
        /// `nn.HuberLoss`.
        Huber => ("huber", "HuberLoss"),
        /// `nn.KLDivLoss`.
        KlDiv => ("kl_div", "KLDivLoss"),
        /// `nn.PoissonNLLLoss`.
        PoissonNll => ("poisson_nll", "PoissonNLLLoss"),
        /// `nn.SoftMarginLoss`.
        SoftMargin => ("soft_margin", "SoftMarginLoss"),
        /// `nn.MultiLabelSoftMarginLoss`.
        MultiLabelSoftMargin => ("multilabel_soft_margin", "MultiLabelSoftMarginLoss"),
        /// `nn.MultiMarginLoss`.
        MultiMargin => ("multi_margin", "MultiMarginLoss"),
    }
}

vocabulary! {
    /// The optimizer types of `optimizer:`: the `torch.optim` classes.
    pub enum OptimizerType {
        /// `optim.SGD`.
        Sgd => ("sgd", "SGD"),
        /// `optim.Adam`.
        Adam => ("adam", "Adam"),
        /// `optim.AdamW`.
        AdamW => ("adamw", "AdamW"),
        /// `optim.RMSprop`.
        RmsProp => ("rmsprop", "RMSprop"),
        /// `optim.Adagrad`.
        Adagrad => ("adagrad", "Adagrad"),
        /// `optim.Adadelta`.
        Adadelta => ("adadelta", "Adadelta"),
        /// `optim.Adamax`.
        Adamax => ("adamax", "Adamax"),
        /// `optim.NAdam`.
        NAdam => ("nadam", "NAdam"),
        /// `optim.RAdam`.
        RAdam => ("radam", "RAdam"),
    }
}

vocabulary! {
    /// The scheduler types of `scheduler:`: the `torch.optim.lr_scheduler` classes.
    pub enum SchedulerType {
        /// `StepLR`.
        StepLr => ("step_lr", "StepLR"),
        /// `MultiStepLR`.
        MultiStepLr => ("multi_step_lr", "MultiStepLR"),
        /// `ExponentialLR`.
        ExponentialLr => ("exponential_lr", "ExponentialLR"),
        /// `CosineAnnealingLR`.
        CosineAnnealingLr => ("cosine_annealing_lr", "CosineAnnealingLR"),
        /// `CosineAnnealingWarmRestarts`.
        CosineAnnealingWarmRestarts =>
            ("cosine_annealing_warm_restarts", "CosineAnnealingWarmRestarts"),
        /// `LinearLR`.
        LinearLr => ("linear_lr", "LinearLR"),
        /// `ConstantLR`.
        ConstantLr => ("constant_lr", "ConstantLR"),
        /// `OneCycleLR`.
        OneCycleLr => ("one_cycle_lr", "OneCycleLR"),
        /// `ReduceLROnPlateau`.
        ReduceLrOnPlateau => ("reduce_lr_on_plateau", "ReduceLROnPlateau"),
        /// `SequentialLR`.
        SequentialLr => ("sequential_lr", "SequentialLR"),
    }
}

vocabulary! {
    /// The formats of a data source: the key that names where the data comes from.
    pub enum SourceFormat {
        /// `csv: PATH` with `target` and `features`.
        Csv => ("csv", "csv"),
        /// `npy: {features, target}`.
        Npy => ("npy", "npy"),
        /// `npz: PATH` with `features` and `target` array names.
        Npz => ("npz", "npz"),
        /// `idx: {images, labels}`.
        Idx => ("idx", "idx"),
        /// `synthetic: {kind, ...}`.
        Synthetic => ("synthetic", "synthetic"),
    }
}

/// Implemented where each vocabulary's key tables live (layer.rs, loss.rs, ...).
pub(crate) trait KeyTables {
    /// The key table of this type.
    fn key_table(self) -> &'static KeyTable;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_are_unique<T: Vocabulary>() {
        for (i, a) in T::ALL.iter().enumerate() {
            for b in &T::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
            assert_eq!(T::parse(a.name()), Some(*a));
            assert_eq!(T::parse(a.torch_name()), Some(*a));
            assert!(!a.keys().is_empty(), "{a:?} lists no keys");
        }
    }

    #[test]
    fn every_vocabulary_parses_its_own_names_back() {
        names_are_unique::<LayerType>();
        names_are_unique::<InitType>();
        names_are_unique::<LossType>();
        names_are_unique::<OptimizerType>();
        names_are_unique::<SchedulerType>();
        names_are_unique::<SourceFormat>();
    }
}
