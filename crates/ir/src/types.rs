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

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
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
