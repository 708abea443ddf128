//! Matrix products through the `gemm` crate: transposes are strides, never
//! copies; big products use the rayon pool, thin ones stay on one thread.

use gemm::Parallelism;

/// Smallest `m·n·k` worth splitting across threads (`tests/gemm_threads.rs`,
/// 2 shared cores: up to 16 M multiply-adds, ~70 µs on one thread, rayon was
/// 5–70 % slower; FACTS.md measures ~1.9× for the 256×2048×2048 products).
const PARALLEL_MIN_MACS: usize = 1 << 24;
/// Thinner sides than this run single-threaded (FACTS: threads slow down `n` or `k` ≈ 10).
const PARALLEL_MIN_SIDE: usize = 16;

/// One `dst = lhs · rhs` with resolved arena offsets (in floats) and strides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GemmCall {
    /// Rows of the result.
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// Inner dimension (at least 1).
    pub k: usize,
    /// Row-major `m × n` result.
    pub dst: usize,
    /// Left operand.
    pub lhs: usize,
    /// Left operand column stride.
    pub lhs_cs: isize,
    /// Left operand row stride.
    pub lhs_rs: isize,
    /// Right operand.
    pub rhs: usize,
    /// Right operand column stride.
    pub rhs_cs: isize,
    /// Right operand row stride.
    pub rhs_rs: isize,
    /// Run on the rayon pool.
    pub parallel: bool,
}

impl GemmCall {
    /// `op(a) · op(b)` for row-major `a` (`a_shape`) and `b` (`b_shape`), transposed as asked.
    pub(crate) fn new(
        (a, a_shape, transpose_a): (usize, [usize; 2], bool),
        (b, b_shape, transpose_b): (usize, [usize; 2], bool),
        dst: usize,
    ) -> GemmCall {
        let [p, q] = a_shape;
        let [r, s] = b_shape;
        let (m, k, lhs_cs, lhs_rs) = if transpose_a {
            (q, p, q as isize, 1)
        } else {
            (p, q, 1, q as isize)
        };
        let (n, rhs_cs, rhs_rs) = if transpose_b {
            (r, s as isize, 1)
        } else {
            (s, 1, s as isize)
        };
        let parallel = m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS
            && m.min(n).min(k) > PARALLEL_MIN_SIDE
            && rayon::current_num_threads() > 1;
        GemmCall {
            m,
            n,
            k,
            dst,
            lhs: a,
            lhs_cs,
            lhs_rs,
            rhs: b,
            rhs_cs,
            rhs_rs,
            parallel,
        }
    }

    /// Runs the product on the arena at `base`.
    ///
    /// # Safety
    /// `base` must point to an arena holding every operand and the result at
    /// the offsets and strides of `self`, with the result not overlapping either operand.
    pub(crate) unsafe fn run(&self, base: *mut f32) {
        let parallelism = if self.parallel {
            Parallelism::Rayon(0)
        } else {
            Parallelism::None
        };
        // SAFETY: the caller guarantees the offsets and strides stay inside the
        // arena and that `dst` does not overlap the operands.
        unsafe {
            gemm::gemm(
                self.m,
                self.n,
                self.k,
                base.add(self.dst),
                1,
                self.n as isize,
                false,
                base.add(self.lhs).cast_const(),
                self.lhs_cs,
                self.lhs_rs,
                base.add(self.rhs).cast_const(),
                self.rhs_cs,
                self.rhs_rs,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}
