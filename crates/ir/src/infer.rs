//! Shape and dtype inference: the one rule per op that `verify()` and graph
//! construction both use.

use crate::{AxisWindows, DType, IrError, Op, TensorType, Window};

impl Op {
    /// The output type of this (non-leaf) op applied to operands of these types.
    pub fn infer(&self, operands: &[&TensorType]) -> Result<TensorType, IrError> {
        let name = self.mnemonic();
        if operands.len() != self.arity() {
            return Err(IrError::ty(
                &name,
                format!("takes {} operands, got {}", self.arity(), operands.len()),
            ));
        }
        let all_f32 = || -> Result<(), IrError> {
            match operands.iter().find(|t| t.dtype != DType::F32) {
                Some(t) => Err(IrError::ty(&name, format!("expects f32 operands, got {t}"))),
                None => Ok(()),
            }
        };
        let same_shape = || -> Result<TensorType, IrError> {
            all_f32()?;
            let first = operands[0];
            match operands.iter().find(|t| t.shape != first.shape) {
                Some(t) => Err(IrError::ty(
                    &name,
                    format!("operands must have equal shapes, got {first} and {t}"),
                )),
                None => Ok(first.clone()),
            }
        };
        match self {
            Op::Input(_)
            | Op::Param(_)
            | Op::State(_)
            | Op::Hyper(_)
            | Op::Fill(_)
            | Op::Constant(_) => Err(IrError::ty(&name, "a leaf has no inferred type")),
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::SumRanks => {
                same_shape()
            }
            Op::Reduce { axes, .. } => {
                all_f32()?;
                let t = operands[0];
                if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= t.rank()) {
                    return Err(IrError::ty(
                        &name,
                        format!("axes {axes:?} must be sorted, distinct and < rank of {t}"),
                    ));
                }
                let mut shape = t.shape.clone();
                for &a in axes {
                    shape[a] = 1;
                }
                Ok(TensorType::f32(&shape))
            }
            Op::Broadcast(shape) => {
                all_f32()?;
                let t = operands[0];
                let fits = t.rank() == shape.len()
                    && t.shape
                        .iter()
                        .zip(shape)
                        .all(|(&from, &to)| from == to || from == 1);
                if !fits {
                    return Err(IrError::ty(
                        &name,
                        format!("cannot broadcast {t} to {shape:?} (same rank, size-1 axes only)"),
                    ));
                }
                Ok(TensorType::f32(shape))
            }
            Op::Reshape(shape) => {
                let t = operands[0];
                if shape.iter().product::<usize>() != t.numel() {
                    return Err(IrError::ty(
                        &name,
                        format!("cannot reshape {t} to {shape:?}"),
                    ));
                }
                Ok(TensorType {
                    shape: shape.clone(),
                    dtype: t.dtype,
                })
            }
            Op::Transpose(perm) => {
                all_f32()?;
                let t = operands[0];
                let mut seen = vec![false; t.rank()];
                let valid = perm.len() == t.rank()
                    && perm
                        .iter()
                        .all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
                if !valid {
                    return Err(IrError::ty(
                        &name,
                        format!("{perm:?} is not a permutation of the axes of {t}"),
                    ));
                }
                let shape: Vec<usize> = perm.iter().map(|&p| t.shape[p]).collect();
                Ok(TensorType::f32(&shape))
            }
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            } => {
                all_f32()?;
                let (a, b) = (operands[0], operands[1]);
                if a.rank() != 2 || b.rank() != 2 {
                    return Err(IrError::ty(
                        &name,
                        format!("expects matrices, got {a} and {b}"),
                    ));
                }
                let (m, ka) = if *transpose_lhs {
                    (a.shape[1], a.shape[0])
                } else {
                    (a.shape[0], a.shape[1])
                };
                let (kb, n) = if *transpose_rhs {
                    (b.shape[1], b.shape[0])
                } else {
                    (b.shape[0], b.shape[1])
                };
                if ka != kb {
                    return Err(IrError::ty(
                        &name,
                        format!("inner dimensions differ: {a} · {b} ({ka} vs {kb})"),
                    ));
                }
                Ok(TensorType::f32(&[m, n]))
            }
            Op::OneHot(classes) => {
                let t = operands[0];
                if t.dtype != DType::I64 {
                    return Err(IrError::ty(&name, format!("expects i64 indices, got {t}")));
                }
                let mut shape = t.shape.clone();
                shape.push(*classes);
                Ok(TensorType::f32(&shape))
            }
            Op::RandomUniform { shape, .. } => {
                let step = operands[0];
                if step.dtype != DType::I64 || !matches!(step.checked_numel(), Some(1 | 2)) {
                    return Err(IrError::ty(
                        &name,
                        format!(
                            "expects an i64 step counter of one element (or two: step, first row), got {step}"
                        ),
                    ));
                }
                let out = TensorType::f32(shape);
                let fits = out
                    .checked_numel()
                    .and_then(|n| u64::try_from(n).ok())
                    .is_some_and(|n| n <= crate::random::RANDOM_MAX_ELEMENTS);
                if !fits {
                    return Err(IrError::ty(
                        &name,
                        format!(
                            "{out} has more than {} elements (element blocks must fit 32 bits)",
                            crate::random::RANDOM_MAX_ELEMENTS
                        ),
                    ));
                }
                Ok(out)
            }
            Op::Conv { window, groups } => {
                all_f32()?;
                let (x, w) = (operands[0], operands[1]);
                let (n, c) = batched(&name, "x", x, window, Side::Input)?;
                let (o, c_per_group) = conv_weight(&name, w, window, *groups)?;
                check_channels(&name, c, o, c_per_group, *groups)?;
                Ok(TensorType::f32(&nc(n, o, &window.output_shape())))
            }
            Op::ConvInputGrad { window, groups } => {
                all_f32()?;
                let (dy, w) = (operands[0], operands[1]);
                let (n, o) = batched(&name, "dy", dy, window, Side::Output)?;
                let (wo, c_per_group) = conv_weight(&name, w, window, *groups)?;
                if wo != o {
                    return Err(IrError::ty(
                        &name,
                        format!("dy has {o} channels, the weight {w} has {wo}"),
                    ));
                }
                let c = checked_channels(&name, c_per_group, *groups)?;
                Ok(TensorType::f32(&nc(n, c, &window.input_shape())))
            }
            Op::ConvWeightGrad { window, groups } => {
                all_f32()?;
                let (x, dy) = (operands[0], operands[1]);
                let (n, c) = batched(&name, "x", x, window, Side::Input)?;
                let (ny, o) = batched(&name, "dy", dy, window, Side::Output)?;
                if n != ny {
                    return Err(IrError::ty(
                        &name,
                        format!("x {x} and dy {dy} differ in batch size"),
                    ));
                }
                let kernel = conv_kernel(&name, window)?;
                if *groups == 0 || !c.is_multiple_of(*groups) {
                    return Err(IrError::ty(
                        &name,
                        format!("groups {groups} must divide the {c} input channels"),
                    ));
                }
                check_channels(&name, c, o, c / groups, *groups)?;
                Ok(TensorType::f32(&nc(o, c / groups, &kernel)))
            }
            Op::MaxPool(window) => {
                all_f32()?;
                let (x, v) = (operands[0], operands[1]);
                let (n, c) = batched(&name, "x", x, window, Side::Input)?;
                if v.shape != x.shape {
                    return Err(IrError::ty(
                        &name,
                        format!("x {x} and v {v} must have equal shapes"),
                    ));
                }
                pool_windows_touch_input(&name, window)?;
                Ok(TensorType::f32(&nc(n, c, &window.output_shape())))
            }
            Op::MaxPoolGrad(window) => {
                all_f32()?;
                let (x, dy) = (operands[0], operands[1]);
                let (n, c) = batched(&name, "x", x, window, Side::Input)?;
                if batched(&name, "dy", dy, window, Side::Output)? != (n, c) {
                    return Err(IrError::ty(
                        &name,
                        format!("x {x} and dy {dy} differ in batch size or channels"),
                    ));
                }
                pool_windows_touch_input(&name, window)?;
                Ok(x.clone())
            }
        }
    }
}

/// Which spatial sizes of a window a batched operand must have.
#[derive(Clone, Copy)]
enum Side {
    Input,
    Output,
}

/// `[n, c, *spatial]` as one shape.
fn nc(n: usize, c: usize, spatial: &[usize]) -> Vec<usize> {
    let mut shape = vec![n, c];
    shape.extend_from_slice(spatial);
    shape
}

/// Checks that `t` is `[N, C, *spatial]` with the window's input or output
/// spatial sizes (and the window itself), and returns `(N, C)`.
fn batched(
    op: &str,
    what: &str,
    t: &TensorType,
    window: &Window,
    side: Side,
) -> Result<(usize, usize), IrError> {
    window.check().map_err(|message| IrError::ty(op, message))?;
    let spatial = match side {
        Side::Input => window.input_shape(),
        Side::Output => window.output_shape(),
    };
    if t.rank() != spatial.len() + 2 || t.shape[2..] != spatial[..] {
        return Err(IrError::ty(
            op,
            format!(
                "{what} {t} must be [N, C, {}]",
                spatial
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok((t.shape[0], t.shape[1]))
}

/// A convolution's kernel sizes: its window must be strided on every axis.
fn conv_kernel(op: &str, window: &Window) -> Result<Vec<usize>, IrError> {
    window
        .kernel_shape()
        .ok_or_else(|| IrError::ty(op, "a convolution's windows must be strided, not adaptive"))
}

/// Checks a convolution weight `[O, C/groups, *kernel]` against the window
/// and returns `(O, C/groups)`.
fn conv_weight(
    op: &str,
    w: &TensorType,
    window: &Window,
    groups: usize,
) -> Result<(usize, usize), IrError> {
    let kernel = conv_kernel(op, window)?;
    if w.rank() != kernel.len() + 2 || w.shape[2..] != kernel[..] {
        return Err(IrError::ty(
            op,
            format!("the weight {w} must be [O, C/groups, {kernel:?}]"),
        ));
    }
    if groups == 0 || !w.shape[0].is_multiple_of(groups) {
        return Err(IrError::ty(
            op,
            format!(
                "groups {groups} must divide the {} output channels",
                w.shape[0]
            ),
        ));
    }
    Ok((w.shape[0], w.shape[1]))
}

/// `c_per_group · groups`, checked.
fn checked_channels(op: &str, c_per_group: usize, groups: usize) -> Result<usize, IrError> {
    c_per_group
        .checked_mul(groups)
        .ok_or_else(|| IrError::ty(op, "the channel count overflows"))
}

/// The input has `c = c_per_group · groups` channels and `groups` divides `o`.
fn check_channels(
    op: &str,
    c: usize,
    o: usize,
    c_per_group: usize,
    groups: usize,
) -> Result<(), IrError> {
    if groups == 0 || !o.is_multiple_of(groups) || checked_channels(op, c_per_group, groups)? != c {
        return Err(IrError::ty(
            op,
            format!(
                "{c} input and {o} output channels do not fit {groups} groups of {c_per_group} input channels"
            ),
        ));
    }
    Ok(())
}

/// Every pooling window holds at least one input position, so the argmax
/// exists. PyTorch's limit of padding to half the kernel guarantees it only
/// without dilation: `max_pool1d` of a length-1 input with kernel 2,
/// dilation 2 and padding 1 reads positions -1 and 1, and PyTorch (2.15, CPU)
/// returns -inf with index 1, past the plane, whose gradient then lands in
/// the next plane or outside the tensor. Such windows are refused here.
fn pool_windows_touch_input(op: &str, window: &Window) -> Result<(), IrError> {
    for (i, axis) in window.axes.iter().enumerate() {
        let touches = match axis.windows {
            AxisWindows::Adaptive => true,
            AxisWindows::Strided { .. } => (0..axis.output).all(|o| {
                let (start, len, step) = axis.window(o);
                (0..len).any(|k| {
                    let p = start + (k * step) as isize;
                    p >= 0 && (p as usize) < axis.input
                })
            }),
        };
        if !touches {
            return Err(IrError::ty(
                op,
                format!("spatial axis {i}: a window lies wholly in the padding"),
            ));
        }
    }
    Ok(())
}
