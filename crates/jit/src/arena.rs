//! The step's memory: one 64-byte-aligned f32 arena that holds every tensor
//! of a step (parameters, state, inputs, constants, intermediates, outputs).

/// Floats per 64-byte line; every slot starts on a line and spans whole lines.
pub(crate) const LINE: usize = 16;

/// A zeroed f32 buffer whose first float sits on a 64-byte boundary and that
/// never reallocates, so pointers into it stay valid for the executable's life.
pub(crate) struct Arena {
    data: Vec<f32>,
    start: usize,
    len: usize,
}

impl Arena {
    /// An arena of at least `len` floats, all zero. `vec![0.0; n]` comes from
    /// `calloc`, so a large arena costs no page writes until first touched
    /// (an over-aligned zeroed allocation would memset it all up front).
    pub(crate) fn new(len: usize) -> Arena {
        let len = len.div_ceil(LINE).max(1) * LINE;
        let data = vec![0.0f32; len + LINE - 1];
        let misalignment = (data.as_ptr() as usize / std::mem::size_of::<f32>()) % LINE;
        let start = (LINE - misalignment) % LINE;
        Arena { data, start, len }
    }

    /// The whole arena as floats.
    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.data[self.start..self.start + self.len]
    }

    /// The whole arena as mutable floats.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[self.start..self.start + self.len]
    }

    /// Base pointer handed to generated code and the GEMM (64-byte aligned).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.as_mut_slice().as_mut_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_base_is_64_byte_aligned_and_zero() {
        for len in [1, 15, 16, 1000, 1 << 20] {
            let mut a = Arena::new(len);
            assert_eq!(a.as_mut_ptr() as usize % 64, 0);
            assert!(a.as_slice().len() >= len);
            assert!(a.as_slice().iter().all(|&x| x == 0.0));
        }
    }
}
