//! Shape and dtype inference: the one rule per op that `verify()` and graph
//! construction both use.

use crate::{DType, IrError, Op, TensorType};

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
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select => same_shape(),
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
        }
    }
}
