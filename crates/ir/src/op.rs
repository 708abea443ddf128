//! The closed set of primitive ops. Every concern (type inference, autodiff,
//! interpretation, lowering) is one exhaustive `match` on [`Op`] in its own
//! module, so adding an op is a compile error until each handles it.

use std::fmt;

use crate::Window;

/// Declares `ALL` for a fieldless op enum from one list of its variants, and
/// checks at compile time that the list is complete and in order: the list
/// also forms an exhaustive `match`, so leaving a variant out is a compile
/// error, and entry `i` must be the variant declared `i`th, so none is listed
/// twice. The per-op tests iterate `ALL`, so a new op is tested from the
/// moment it exists.
macro_rules! op_table {
    ($op:ident { $($variant:ident),+ $(,)? }) => {
        impl $op {
            /// Every variant once, in declaration order: the table that drives
            /// the per-op tests (gradients, JIT against interpreter, accuracy).
            pub const ALL: &'static [$op] = &[$($op::$variant),+];
        }

        const _: () = {
            const fn listed(op: $op) {
                match op {
                    $($op::$variant)|+ => {}
                }
            }
            listed($op::ALL[0]);
            let mut i = 0;
            while i < $op::ALL.len() {
                assert!($op::ALL[i] as usize == i, "ALL lists the variants in declaration order");
                i += 1;
            }
        };
    };
}

/// Elementwise functions of one f32 operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `e^x`
    Exp,
    /// natural logarithm
    Log,
    /// `ln(1 + x)`, accurate for small `x`
    Log1p,
    /// `sqrt(x)`
    Sqrt,
    /// `|x|`
    Abs,
    /// `tanh(x)`
    Tanh,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `sin(x)` (radians)
    Sin,
    /// `cos(x)` (radians)
    Cos,
    /// `max(x, 0)` as PyTorch's `relu` (`clamp_min`): `+0` where `x < 0`, else `x` itself, so
    /// NaN and `-0` pass. Its gradient reads the result, as PyTorch's `threshold_backward` does:
    /// `g` where `!(y <= 0)`, else 0 — so a backward pass keeps the output, which the next
    /// layer keeps anyway, not the input.
    Relu,
    /// `x` itself, with no gradient (JAX's `stop_gradient`): lets a composite
    /// attach PyTorch's own backward formula as `v(sg x) + (x - sg x) · sg(dv)`.
    StopGradient,
    /// `x` rounded to the nearest bfloat16 (ties to even), kept as an f32: the operand
    /// rounding of `train.precision: bf16` (`torch.autocast`'s cast of a product's operands).
    /// NaN gives the quiet NaN `0x7FC0_0000` (as `c10::BFloat16`), infinities stay, finite
    /// values past bf16's largest round to infinity. Its gradient passes `g` through
    /// unchanged (the straight-through rule of autocast's cast); see [`crate::round_bf16`].
    RoundBf16,
}

op_table!(UnaryOp {
    Neg,
    Exp,
    Log,
    Log1p,
    Sqrt,
    Abs,
    Tanh,
    Sigmoid,
    Sin,
    Cos,
    Relu,
    StopGradient,
    RoundBf16
});

/// Elementwise functions of two f32 operands of equal shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `max(a, b)` as `torch.maximum`: NaN when either operand is NaN (the NaN's payload is
    /// unspecified), else the larger operand, with `+0` above `-0` (IEEE 754-2019
    /// `maximum`). PyTorch's own choice between `+0` and `-0` depends on where the element
    /// lies in the tensor (its vector loop returns the second operand of equal ones, its
    /// scalar tail the first), so graphc fixes the IEEE order, and every backend gives it
    /// bit for bit. Gradient: `g` to the larger, `g/2` to each on a tie (`-0 == +0` is a
    /// tie), `g` to both where either is NaN — torch.maximum's backward formula.
    Max,
    /// `min(a, b)` as `torch.minimum`: NaN when either operand is NaN, else the smaller,
    /// with `-0` below `+0` (IEEE 754-2019 `minimum`); gradient as [`BinaryOp::Max`]'s,
    /// mirrored.
    Min,
}

op_table!(BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min
});

/// Elementwise comparisons; the result is an f32 mask of 1.0 (true) and 0.0 (false).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
}

op_table!(CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne
});

/// Reductions over axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum of the elements.
    Sum,
    /// Largest element, as `torch.amax`: NaN when any reduced element is NaN (payload
    /// unspecified), else the largest, with `+0` above `-0` ([`BinaryOp::Max`] folded over
    /// the elements, so the result does not depend on the order of the folding). Gradient:
    /// torch.amax's `g / count · (x == max)`, `count` the number of maxima; a NaN maximum
    /// has no element equal to it, so its gradient is NaN (0 · g/0).
    Max,
}

op_table!(ReduceOp { Sum, Max });

/// One primitive operation. Leaves (`Input`, `Param`, `State`, `Hyper`,
/// `Fill`, `Constant`) take their type from the node; all other ops infer it
/// from their operands.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Per-step data (features, targets), bound by position at each run.
    Input(String),
    /// A trainable parameter, persistent across steps.
    Param(String),
    /// An optimizer buffer, persistent across steps.
    State(String),
    /// A runtime f32 scalar (learning rate, step count), bound at each run.
    Hyper(String),
    /// Every element equal to one value.
    Fill(f32),
    /// A literal tensor, row-major.
    Constant(Vec<f32>),
    /// Elementwise function of one operand.
    Unary(UnaryOp),
    /// Elementwise function of two equally shaped operands.
    Binary(BinaryOp),
    /// Elementwise comparison of two equally shaped operands, as a 0/1 mask.
    Compare(CompareOp),
    /// `select(mask, a, b)`: `a` where `mask != 0`, else `b`; all three equally shaped.
    Select,
    /// Reduction over `axes`, which are kept with size 1.
    Reduce {
        /// Sum or max.
        op: ReduceOp,
        /// Sorted, distinct axes to reduce.
        axes: Vec<usize>,
    },
    /// Repeats size-1 axes up to `shape` (same rank as the operand).
    Broadcast(Vec<usize>),
    /// Same elements, row-major, another shape of equal size.
    Reshape(Vec<usize>),
    /// Permutes axes: output axis `i` is operand axis `perm[i]`.
    Transpose(Vec<usize>),
    /// 2-D matrix product `op(a) · op(b)`, where `op` transposes when asked.
    MatMul {
        /// Use `aᵀ` instead of `a`.
        transpose_lhs: bool,
        /// Use `bᵀ` instead of `b`.
        transpose_rhs: bool,
    },
    /// i64 class indices `[..]` to an f32 one-hot `[.., classes]`; an index
    /// outside `[0, classes)` gives a row of zeros.
    OneHot(usize),
    /// Cross-correlation, as `torch.nn.functional.conv1d/conv2d` without bias:
    /// operands `x [N, C, *input]` and `w [O, C/groups, *kernel]`, result
    /// `[N, O, *output]` (sizes from `window`, whose axes are all strided);
    /// padding reads zero. Output channel `o` sees input channels
    /// `g·C/groups .. (g+1)·C/groups` for `g = o / (O/groups)`.
    Conv {
        /// Where each output position reads the input.
        window: Window,
        /// Channel groups; divides both `C` and `O`.
        groups: usize,
    },
    /// The gradient of [`Op::Conv`] with respect to its input (a transposed
    /// convolution): operands `dy [N, O, *output]` and `w [O, C/groups, *kernel]`,
    /// result `[N, C, *input]`.
    ConvInputGrad {
        /// The forward convolution's window.
        window: Window,
        /// The forward convolution's groups.
        groups: usize,
    },
    /// The gradient of [`Op::Conv`] with respect to its weight: operands
    /// `x [N, C, *input]` and `dy [N, O, *output]`, result `[O, C/groups, *kernel]`.
    ConvWeightGrad {
        /// The forward convolution's window.
        window: Window,
        /// The forward convolution's groups.
        groups: usize,
    },
    /// Max pooling that carries its argmax: operands `x` and `v`, both
    /// `[N, C, *input]`; result `[N, C, *output]` holds, for each window, `v`
    /// at the position where `x` is largest. That position is PyTorch's
    /// pooling index: the first largest, except that a NaN counts as largest
    /// and a later NaN replaces an earlier one (PyTorch's CPU kernels start
    /// at the first in-bounds position with a running max of -inf and move on
    /// `v > max || isnan(v)`, so a window of -inf keeps its first position);
    /// padding never wins, and every window holds at least one input
    /// position (the type rule refuses a window wholly in the padding,
    /// where PyTorch returns an index out of range). Max pooling itself is
    /// `max_pool(x, x)`; its gradient is [`Op::MaxPoolGrad`].
    MaxPool(Window),
    /// The adjoint of [`Op::MaxPool`] in `v`: operands `x [N, C, *input]` and
    /// `dy [N, C, *output]`, result `[N, C, *input]`: zero, plus each element
    /// of `dy` added at its window's argmax of `x` (as in [`Op::MaxPool`]).
    MaxPoolGrad(Window),
    /// Uniform f32 values in [0, 1) drawn by Philox4x32-10 from the run's
    /// `seed`, a `stream` (one per dropout layer) and the step counter, its
    /// one operand (an i64 tensor, so any step count is exact): one element
    /// `[t]`, or two `[t, r]`, where `r` is a first row: the result is then
    /// rows `r..` of a draw whose axis 0 is longer, so the shares of a batch
    /// split by rows draw exactly the whole batch's values (data-parallel
    /// dropout). Element `i` is global element `g = r·(len / shape[0]) + i`
    /// (`r = 0` with one element), which uses element block `g / 4` of the
    /// counter (layout in [`crate::random`]). Equal operands give equal
    /// values; it has no gradient.
    RandomUniform {
        /// The Philox key: the run's seed.
        seed: u64,
        /// Counter word 1: separates independent draws at the same step.
        stream: u32,
        /// The result's shape (at most [`crate::random::RANDOM_MAX_ELEMENTS`] elements).
        shape: Vec<usize>,
    },
    /// The elementwise sum of its f32 operand over the ranks of a data-parallel
    /// run (`train.sync_batch_norm`'s per-channel sums): the same shape, and in
    /// one process the operand itself. The executing caller supplies the sum
    /// (`Executable::run_summing`); every rank runs the same step graph, so
    /// every rank calls it in the same order with the same lengths. Its
    /// gradient is itself: each rank's loss term reads the global sum, so the
    /// adjoint of one rank's part is the sum of every rank's adjoints.
    SumRanks,
}

/// How an op reads its operands. Fusion and the JIT's planning derive from
/// this one description where an op's operands must live (in a register of a
/// fused loop, or in memory), whether it can join a fused loop, and whether a
/// result may be written over an operand in place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Access {
    /// No operands; the value has memory of its own (bound each step,
    /// persistent, or a literal).
    Leaf,
    /// No operands; every element equals this value.
    Uniform(f32),
    /// Result element `i` reads element `i` of every operand (all of the result's shape).
    Elementwise,
    /// The operand's value unchanged, same shape: may share its memory or register.
    Identity,
    /// The operand's elements in the same row-major order under another
    /// shape: shares its memory.
    Reinterpret,
    /// Each result element reads the operand at a position of its own (a
    /// strided view: broadcast, transpose), so the operand is read from memory.
    View,
    /// Each operand element accumulates into one result element (a reduction over axes).
    Reduction,
    /// Result `(i, j)` sums the products of row `i` of the left operand and
    /// column `j` of the right one (a matrix product; transposes are strides).
    Contraction {
        /// The left operand is read transposed.
        transpose_lhs: bool,
        /// The right operand is read transposed.
        transpose_rhs: bool,
    },
    /// The operand's values choose which result elements are set (one-hot of
    /// class indices), so it runs as a kernel of its own.
    Indexed,
    /// Each result element reads a window of positions of each operand
    /// (convolution, max pooling and their gradients), so the operands are
    /// read from memory and the op runs as a step of its own.
    Windowed,
    /// Each result element is a function of its own index and of scalar
    /// operands read from memory (random bits from a counter). Such a value
    /// could be computed inside a fused loop from the loop index; today it
    /// runs as a step of its own.
    Generated,
    /// The result is the operand summed over the processes of a run, by the
    /// caller during the step: the operand is read from memory and the op runs
    /// as a step of its own.
    Collective,
}

impl Op {
    /// How the op reads its operands (see [`Access`]).
    pub fn access(&self) -> Access {
        match self {
            Op::Input(_) | Op::Param(_) | Op::State(_) | Op::Hyper(_) | Op::Constant(_) => {
                Access::Leaf
            }
            Op::Fill(value) => Access::Uniform(*value),
            Op::Unary(UnaryOp::StopGradient) => Access::Identity,
            Op::Unary(
                UnaryOp::Neg
                | UnaryOp::Exp
                | UnaryOp::Log
                | UnaryOp::Log1p
                | UnaryOp::Sqrt
                | UnaryOp::Abs
                | UnaryOp::Tanh
                | UnaryOp::Sigmoid
                | UnaryOp::Sin
                | UnaryOp::Cos
                | UnaryOp::Relu
                | UnaryOp::RoundBf16,
            )
            | Op::Binary(_)
            | Op::Compare(_)
            | Op::Select => Access::Elementwise,
            Op::Reshape(_) => Access::Reinterpret,
            Op::Broadcast(_) | Op::Transpose(_) => Access::View,
            Op::Reduce { .. } => Access::Reduction,
            &Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            } => Access::Contraction {
                transpose_lhs,
                transpose_rhs,
            },
            Op::OneHot(_) => Access::Indexed,
            Op::Conv { .. }
            | Op::ConvInputGrad { .. }
            | Op::ConvWeightGrad { .. }
            | Op::MaxPool(_)
            | Op::MaxPoolGrad(_) => Access::Windowed,
            Op::RandomUniform { .. } => Access::Generated,
            Op::SumRanks => Access::Collective,
        }
    }

    /// Number of operands the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input(_)
            | Op::Param(_)
            | Op::State(_)
            | Op::Hyper(_)
            | Op::Fill(_)
            | Op::Constant(_) => 0,
            Op::Unary(_)
            | Op::Reduce { .. }
            | Op::Broadcast(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::OneHot(_)
            | Op::RandomUniform { .. }
            | Op::SumRanks => 1,
            Op::Binary(_)
            | Op::Compare(_)
            | Op::MatMul { .. }
            | Op::Conv { .. }
            | Op::ConvInputGrad { .. }
            | Op::ConvWeightGrad { .. }
            | Op::MaxPool(_)
            | Op::MaxPoolGrad(_) => 2,
            Op::Select => 3,
        }
    }

    /// True for ops without operands.
    pub fn is_leaf(&self) -> bool {
        self.arity() == 0
    }

    /// True for leaves whose value lives across steps (parameters and optimizer state).
    pub fn is_persistent(&self) -> bool {
        matches!(self, Op::Param(_) | Op::State(_))
    }

    /// The name of a named leaf.
    pub fn leaf_name(&self) -> Option<&str> {
        match self {
            Op::Input(n) | Op::Param(n) | Op::State(n) | Op::Hyper(n) => Some(n),
            _ => None,
        }
    }

    /// A short lowercase name for printing and messages.
    pub fn mnemonic(&self) -> String {
        match self {
            Op::Input(_) => "input".into(),
            Op::Param(_) => "param".into(),
            Op::State(_) => "state".into(),
            Op::Hyper(_) => "hyper".into(),
            Op::Fill(_) => "fill".into(),
            Op::Constant(_) => "constant".into(),
            Op::Unary(u) => format!("{u:?}").to_lowercase(),
            Op::Binary(b) => format!("{b:?}").to_lowercase(),
            Op::Compare(c) => format!("{c:?}").to_lowercase(),
            Op::Select => "select".into(),
            Op::Reduce { op, .. } => format!("reduce_{op:?}").to_lowercase(),
            Op::Broadcast(_) => "broadcast".into(),
            Op::Reshape(_) => "reshape".into(),
            Op::Transpose(_) => "transpose".into(),
            Op::MatMul { .. } => "matmul".into(),
            Op::OneHot(_) => "one_hot".into(),
            Op::Conv { .. } => "conv".into(),
            Op::ConvInputGrad { .. } => "conv_input_grad".into(),
            Op::ConvWeightGrad { .. } => "conv_weight_grad".into(),
            Op::MaxPool(_) => "max_pool".into(),
            Op::MaxPoolGrad(_) => "max_pool_grad".into(),
            Op::RandomUniform { .. } => "random_uniform".into(),
            Op::SumRanks => "sum_ranks".into(),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mnemonic())?;
        match self {
            Op::Input(n) | Op::Param(n) | Op::State(n) | Op::Hyper(n) => write!(f, " {n:?}"),
            Op::Fill(v) => write!(f, " {v}"),
            Op::Constant(d) if d.len() <= 8 => write!(f, " {d:?}"),
            Op::Constant(d) => write!(f, " [{} values]", d.len()),
            Op::Reduce { axes, .. } => write!(f, " axes={axes:?}"),
            Op::Broadcast(s) | Op::Reshape(s) => write!(f, " {s:?}"),
            Op::Transpose(p) => write!(f, " perm={p:?}"),
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            } => write!(
                f,
                "{}{}",
                if *transpose_lhs { " lhsT" } else { "" },
                if *transpose_rhs { " rhsT" } else { "" }
            ),
            Op::OneHot(c) => write!(f, " classes={c}"),
            Op::Conv { window, groups }
            | Op::ConvInputGrad { window, groups }
            | Op::ConvWeightGrad { window, groups } => write!(f, " {window} groups={groups}"),
            Op::MaxPool(window) | Op::MaxPoolGrad(window) => write!(f, " {window}"),
            Op::RandomUniform {
                seed,
                stream,
                shape,
            } => write!(f, " seed={seed} stream={stream} {shape:?}"),
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::SumRanks => Ok(()),
        }
    }
}
