//! Tensor types: element type and static shape.

use std::fmt;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: every value the model computes.
    F32,
    /// 64-bit integer: class indices fed as inputs.
    I64,
}

/// Static shape and element type of one node's output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Dimensions, outermost first; empty for a scalar.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
}

impl TensorType {
    /// An f32 tensor of the given shape.
    pub fn f32(shape: &[usize]) -> TensorType {
        TensorType {
            shape: shape.to_vec(),
            dtype: DType::F32,
        }
    }

    /// An i64 tensor of the given shape.
    pub fn i64(shape: &[usize]) -> TensorType {
        TensorType {
            shape: shape.to_vec(),
            dtype: DType::I64,
        }
    }

    /// The f32 scalar type (shape `[]`).
    pub fn scalar() -> TensorType {
        TensorType::f32(&[])
    }

    /// Number of elements, or `None` when the product of the dimensions
    /// overflows `usize` (a backend sizing memory reports that as an error).
    pub fn checked_numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Number of elements.
    ///
    /// # Panics
    /// When the product overflows `usize`, rather than wrapping to a wrong
    /// size; code that sizes memory uses [`TensorType::checked_numel`].
    pub fn numel(&self) -> usize {
        self.checked_numel()
            .unwrap_or_else(|| panic!("the element count of {self} overflows usize"))
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
        })
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_element_count_that_overflows_is_none_not_wrapped() {
        assert_eq!(TensorType::f32(&[3, 4]).checked_numel(), Some(12));
        assert_eq!(TensorType::f32(&[]).checked_numel(), Some(1));
        assert_eq!(TensorType::f32(&[1 << 40, 1 << 40]).checked_numel(), None);
        assert_eq!(
            TensorType::f32(&[0, usize::MAX, 2]).checked_numel(),
            Some(0)
        );
    }
}
