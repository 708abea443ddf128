//! Vector kernels for the convolution steps, written once over [`Simd`]
//! (AVX-512's 16 lanes or AVX2's 8) and run through [`Isa::run`], which
//! compiles them with that instruction set. The products are shaped for the
//! steps' small matrices: a channel count (6, 16, 32, 64) on one side, output
//! positions (contiguous in memory) on the other. The `gemm` crate packs both
//! operands and vectorises a 64-row side at every call; on lenet's per-sample
//! products (6 × 784 × 25, 16 × 100 × 150) that cost it 4–10× its
//! arithmetic. Here:
//!
//! - [`bcast`]: `C (+)= A · B` with `B` and `C` row-major along the positions,
//!   vectorised along them (a tile of rows × vectors of accumulators, each
//!   `A` element broadcast): the forward product and the input gradient's.
//! - [`dot`]: `C (+)= Σ_t A_t · B_tᵀ`, both operands' rows contiguous along
//!   the positions and summed over several samples in registers before one
//!   horizontal sum per result: the weight gradient.
//!
//! Neither packs nor allocates. A row tail shorter than a vector is read and
//! written with masked instructions, whose masked-off lanes touch no memory.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// An instruction set the kernels run on: only made by [`Isa::detect`] (or
/// [`Isa::supported`]), so holding one means the CPU has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Isa(Kind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Avx512,
    Avx2,
}

/// Work generic over the vector instruction set (see [`Isa::run`]).
pub(crate) trait Vectorized {
    /// What the work returns.
    type Output;
    /// Does the work with `s`'s instructions. Implementations, and every
    /// generic function they call, are `#[inline(always)]`: then the whole
    /// body is compiled inside [`Isa::run`]'s target-feature function.
    ///
    /// # Safety
    /// The conditions the implementing type documents (the work reads and
    /// writes through the raw pointers it holds).
    unsafe fn run<S: Simd>(self, s: S) -> Self::Output;
}

impl Isa {
    /// The widest instruction set of this CPU the kernels run on, if any:
    /// AVX-512F, else AVX2 with FMA. `GRAPHC_SIMD=avx2` or `=off` narrows the
    /// choice (to measure or test the narrower paths), never widens it.
    pub(crate) fn detect() -> Option<Isa> {
        static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let limit = std::env::var("GRAPHC_SIMD").ok();
            Isa::supported()
                .into_iter()
                .find(|isa| match limit.as_deref() {
                    Some("off") => false,
                    Some("avx2") => isa.0 == Kind::Avx2,
                    _ => true,
                })
        })
    }

    /// Every instruction set of this CPU the kernels run on, widest first.
    pub(crate) fn supported() -> Vec<Isa> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push(Isa(Kind::Avx512));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                out.push(Isa(Kind::Avx2));
            }
        }
        out
    }

    /// Whether a convolution's patch-matrix products and gathers run on
    /// these kernels (else on the `gemm` crate and plain loops): AVX-512
    /// only. With AVX2 on Zen 1 lenet's weight gradients took 1.36 and
    /// 0.70 ms on [`dot`] against 1.07 and 0.50 on the `gemm` crate, and its
    /// other steps were level.
    pub(crate) fn patch_kernels(self) -> bool {
        match self.0 {
            Kind::Avx512 => true,
            Kind::Avx2 => false,
        }
    }

    /// Whether stride-1 2-d convolutions read (or add) their patch rows in
    /// place ([`crate::shifted`]) rather than through a patch matrix: AVX2
    /// only, where it was measured (Zen 1, lenet).
    pub(crate) fn shifted(self) -> bool {
        match self.0 {
            Kind::Avx512 => false,
            Kind::Avx2 => true,
        }
    }

    /// Whether a max-pooling gradient with its forward step's argmaxes
    /// runs on [`MaxPool2x2`] (else the scalar scatter): AVX-512 only. With
    /// AVX2 on Zen 1, lenet's two took 150 and 197 µs on it against 39 and
    /// 94 µs scattered (a window's selects and interleaves cost more than
    /// zeroing the plane and adding one float).
    pub(crate) fn pool_scatter(self) -> bool {
        match self.0 {
            Kind::Avx512 => true,
            Kind::Avx2 => false,
        }
    }

    /// Runs `work` compiled for this instruction set.
    ///
    /// # Safety
    /// As [`Vectorized::run`] for `work`.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(crate) unsafe fn run<W: Vectorized>(self, work: W) -> W::Output {
        /// # Safety
        /// The CPU has AVX-512F; as [`Vectorized::run`] for `work`.
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<W: Vectorized>(work: W) -> W::Output {
            // SAFETY: the caller's guarantee.
            unsafe { work.run(Avx512(())) }
        }
        /// # Safety
        /// The CPU has AVX2 and FMA; as [`Vectorized::run`] for `work`.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<W: Vectorized>(work: W) -> W::Output {
            // SAFETY: the caller's guarantee.
            unsafe { work.run(Avx2(())) }
        }
        match self.0 {
            // SAFETY: an `Isa` is only made for an instruction set the CPU
            // has; the work's conditions are the caller's guarantee.
            Kind::Avx512 => unsafe { avx512(work) },
            // SAFETY: as above.
            Kind::Avx2 => unsafe { avx2(work) },
        }
    }
}

/// A vector instruction set's operations on `f32` lanes. A value of the type
/// is the proof that the CPU has the instructions (only [`Isa::run`] makes
/// one), so the arithmetic is safe; loads and stores take pointers and are
/// not. Masks are bit sets of lanes (bit `i`: lane `i`); masked-off lanes of
/// a load are zero and touch no memory, of a store are not written.
pub(crate) trait Simd: Copy {
    /// Floats per vector.
    const LANES: usize;
    /// Rows of accumulators of a [`bcast`] tile.
    const BCAST_ROWS: usize;
    /// Vectors of accumulators per row of a [`bcast`] tile (at most 4).
    const BCAST_VECS: usize;
    /// Rows (of `A`) of a [`dot`] tile (at most 4).
    const DOT_ROWS: usize;
    /// Columns (rows of `B`) of a [`dot`] tile (at most 4).
    const DOT_COLS: usize;
    /// Whether a [`dot`] tile's whole vectors run in a loop of their own,
    /// before the masked tail (else one loop body picks the mask).
    const DOT_TAIL_APART: bool;
    /// A vector.
    type V: Copy;
    /// Lane indices of two vectors' `2·LANES` lanes, for [`Simd::permute2`].
    type I: Copy;
    /// Zeros.
    fn zero(self) -> Self::V;
    /// `x` in every lane.
    fn splat(self, x: f32) -> Self::V;
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a − b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`, rounded once.
    fn fmadd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The sum of the lanes.
    fn reduce_add(self, v: Self::V) -> f32;
    /// Lane `i` is lane `f(i)` of `a` followed by `b` (`f(i) < 2·LANES`).
    fn indices(self, f: impl Fn(usize) -> usize) -> Self::I;
    /// The lanes `index` picks from `a` followed by `b`.
    fn permute2(self, a: Self::V, index: Self::I, b: Self::V) -> Self::V;
    /// Lanes in `mask` from `b`, the others from `a`.
    fn blend(self, a: Self::V, mask: u32, b: Self::V) -> Self::V;
    /// The lanes in `mask` from `p` onwards.
    ///
    /// # Safety
    /// `p + i` is readable for each lane `i` in `mask`.
    unsafe fn load(self, mask: u32, p: *const f32) -> Self::V;
    /// Stores the lanes in `mask` at `p` onwards.
    ///
    /// # Safety
    /// `p + i` is writable for each lane `i` in `mask`.
    unsafe fn store(self, p: *mut f32, mask: u32, v: Self::V);
    /// A comparison's lanes (AVX-512's mask register, AVX2's vector of
    /// all-ones or zero lanes).
    type M: Copy;
    /// Lanes where `later > best` or `later` is NaN: max pooling's rule for
    /// a later position of a window replacing the best so far.
    fn replaces(self, later: Self::V, best: Self::V) -> Self::M;
    /// Lanes where `a` and `b` hold the same bits.
    fn same_bits(self, a: Self::V, b: Self::V) -> Self::M;
    /// Lanes in `m` from `b`, the others from `a`.
    fn select(self, a: Self::V, m: Self::M, b: Self::V) -> Self::V;
    /// `a + b` of the lanes' bits as `u32`, wrapping.
    fn add_bits(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane `i` holds the bits of `f(i)`.
    fn bits(self, f: impl Fn(usize) -> u32) -> Self::V;
    /// The mask of the first `len` lanes (every lane from `LANES` on).
    #[inline(always)]
    fn lanes(self, len: usize) -> u32 {
        if len >= Self::LANES {
            u32::MAX >> (32 - Self::LANES)
        } else {
            (1u32 << len) - 1
        }
    }
}

/// AVX-512F (the token [`Isa::run`] passes).
#[derive(Clone, Copy)]
pub(crate) struct Avx512(());

/// AVX2 with FMA (the token [`Isa::run`] passes).
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

// SAFETY (every block of both impls): the token exists only inside `Isa::run`'s
// function compiled with the instruction set, on a CPU that has it; the
// pointer operations' lanes are the callers' guarantee.
#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const LANES: usize = 16;
    const BCAST_ROWS: usize = 6;
    const BCAST_VECS: usize = 4;
    const DOT_ROWS: usize = 4;
    const DOT_COLS: usize = 4;
    // Two copies of the body spilled the 16 accumulators to the stack.
    const DOT_TAIL_APART: bool = false;
    type V = __m512;
    type I = __m512i;
    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn fmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        // SAFETY: see the impl.
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn indices(self, f: impl Fn(usize) -> usize) -> __m512i {
        let lanes: [i32; 16] = std::array::from_fn(|i| f(i) as i32);
        // SAFETY: see the impl; 16 i32 read from a 16-element array.
        unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
    }
    #[inline(always)]
    fn permute2(self, a: __m512, index: __m512i, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_permutex2var_ps(a, index, b) }
    }
    #[inline(always)]
    fn blend(self, a: __m512, mask: u32, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_mask_mov_ps(a, mask as u16, b) }
    }
    type M = u16;
    #[inline(always)]
    fn replaces(self, later: __m512, best: __m512) -> u16 {
        // SAFETY: see the impl.
        unsafe {
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(later, best)
                | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(later, later)
        }
    }
    #[inline(always)]
    fn same_bits(self, a: __m512, b: __m512) -> u16 {
        // SAFETY: see the impl.
        unsafe { _mm512_cmpeq_epi32_mask(_mm512_castps_si512(a), _mm512_castps_si512(b)) }
    }
    #[inline(always)]
    fn select(self, a: __m512, m: u16, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_mask_mov_ps(a, m, b) }
    }
    #[inline(always)]
    fn add_bits(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            _mm512_castsi512_ps(_mm512_add_epi32(
                _mm512_castps_si512(a),
                _mm512_castps_si512(b),
            ))
        }
    }
    #[inline(always)]
    fn bits(self, f: impl Fn(usize) -> u32) -> __m512 {
        let lanes: [u32; 16] = std::array::from_fn(f);
        // SAFETY: see the impl; 16 u32 read from a 16-element array.
        unsafe { _mm512_loadu_ps(lanes.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn load(self, mask: u32, p: *const f32) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            if mask as u16 == u16::MAX {
                _mm512_loadu_ps(p)
            } else {
                _mm512_maskz_loadu_ps(mask as u16, p)
            }
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, mask: u32, v: __m512) {
        // SAFETY: see the impl.
        unsafe {
            if mask as u16 == u16::MAX {
                _mm512_storeu_ps(p, v)
            } else {
                _mm512_mask_storeu_ps(p, mask as u16, v)
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// `mask` as a vector of all-ones or zero lanes.
    #[inline(always)]
    fn mask_vec(self, mask: u32) -> __m256i {
        // SAFETY: see `impl Simd for Avx2`.
        unsafe {
            let bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let m = _mm256_and_si256(_mm256_set1_epi32(mask as i32), bit);
            _mm256_cmpeq_epi32(m, bit)
        }
    }
}

/// The first `len` floats at `p` (`len < 8`), zeros after them.
///
/// # Safety
/// AVX is available; `p .. p + len` is readable.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefix(p: *const f32, len: u32) -> __m256 {
    // SAFETY: the caller's guarantee; each load reads only floats < len.
    unsafe {
        let part = |q: *const f32, n: u32| match n {
            0 => _mm_setzero_ps(),
            1 => _mm_load_ss(q),
            2 => _mm_castpd_ps(_mm_load_sd(q.cast())),
            _ => _mm_movelh_ps(_mm_castpd_ps(_mm_load_sd(q.cast())), _mm_load_ss(q.add(2))),
        };
        if len >= 4 {
            _mm256_set_m128(part(p.add(4), len - 4), _mm_loadu_ps(p))
        } else {
            _mm256_zextps128_ps256(part(p, len))
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const LANES: usize = 8;
    // 6 × 2 accumulators, 2 vectors of B and a broadcast: 15 of 16 registers.
    const BCAST_ROWS: usize = 6;
    const BCAST_VECS: usize = 2;
    // 4 × 3 accumulators, 3 vectors of B and one of A (5 % faster than 3 × 3
    // on convnet's Winograd weight gradients, Zen 1).
    const DOT_ROWS: usize = 4;
    const DOT_COLS: usize = 3;
    // The mask picked per vector cost convnet's Winograd weight gradients a
    // quarter of their time on Zen 1 (conv2: 9.4 → 7.0 ms).
    const DOT_TAIL_APART: bool = true;
    type V = __m256;
    /// The lane within either vector, and lanes taken from `b` (sign set).
    type I = (__m256i, __m256);
    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn fmadd(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m256) -> f32 {
        // SAFETY: see the impl.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn indices(self, f: impl Fn(usize) -> usize) -> (__m256i, __m256) {
        let lanes: [i32; 8] = std::array::from_fn(|i| f(i) as i32);
        // SAFETY: see the impl; 8 i32 read from an 8-element array.
        unsafe {
            let i = _mm256_loadu_si256(lanes.as_ptr().cast());
            (i, _mm256_castsi256_ps(_mm256_slli_epi32::<28>(i)))
        }
    }
    #[inline(always)]
    fn permute2(self, a: __m256, (index, from_b): (__m256i, __m256), b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            let (a, b) = (
                _mm256_permutevar8x32_ps(a, index),
                _mm256_permutevar8x32_ps(b, index),
            );
            _mm256_blendv_ps(a, b, from_b)
        }
    }
    #[inline(always)]
    fn blend(self, a: __m256, mask: u32, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_blendv_ps(a, b, _mm256_castsi256_ps(self.mask_vec(mask))) }
    }
    type M = __m256;
    #[inline(always)]
    fn replaces(self, later: __m256, best: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(later, best),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(later, later),
            )
        }
    }
    #[inline(always)]
    fn same_bits(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            _mm256_castsi256_ps(_mm256_cmpeq_epi32(
                _mm256_castps_si256(a),
                _mm256_castps_si256(b),
            ))
        }
    }
    #[inline(always)]
    fn select(self, a: __m256, m: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_blendv_ps(a, b, m) }
    }
    #[inline(always)]
    fn add_bits(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            _mm256_castsi256_ps(_mm256_add_epi32(
                _mm256_castps_si256(a),
                _mm256_castps_si256(b),
            ))
        }
    }
    #[inline(always)]
    fn bits(self, f: impl Fn(usize) -> u32) -> __m256 {
        let lanes: [u32; 8] = std::array::from_fn(f);
        // SAFETY: see the impl; 8 u32 read from an 8-element array.
        unsafe { _mm256_loadu_ps(lanes.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn load(self, mask: u32, p: *const f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            let m = mask as u8;
            // The mask's lanes from its first on (contiguous: 0b0…01…1).
            let run = m.checked_shr(m.trailing_zeros()).unwrap_or(0);
            match m {
                u8::MAX => _mm256_loadu_ps(p),
                0 => _mm256_setzero_ps(),
                // Lanes lo..hi, the masks the kernels use: read as a prefix of
                // p + lo, moved up by lo lanes. (`vmaskmovps` stalled lenet's
                // gathers and col2im on Zen 1: half their time on one load.)
                _ if run & run.wrapping_add(1) == 0 => {
                    let lo = m.trailing_zeros();
                    let v = prefix(p.add(lo as usize), m.count_ones());
                    if lo == 0 {
                        return v;
                    }
                    let up = _mm256_sub_epi32(
                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                        _mm256_set1_epi32(lo as i32),
                    );
                    let v = _mm256_permutevar8x32_ps(v, up);
                    _mm256_and_ps(v, _mm256_castsi256_ps(self.mask_vec(mask)))
                }
                _ => _mm256_maskload_ps(p, self.mask_vec(mask)),
            }
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, mask: u32, v: __m256) {
        // SAFETY: see the impl.
        unsafe {
            match mask as u8 {
                u8::MAX => _mm256_storeu_ps(p, v),
                0 => {}
                // The first `len` lanes: 4, 2 and 1 at a time. (`vmaskmovps`
                // to memory is microcoded on AMD's Zen: lenet's patch rows
                // of 28 and 10 floats end in one each, and with it the
                // gathers took a third of the step on Zen 1.)
                m if m & m.wrapping_add(1) == 0 => {
                    let len = m.count_ones();
                    let (mut q, mut part) = (p, _mm256_castps256_ps128(v));
                    if len >= 4 {
                        _mm_storeu_ps(q, part);
                        (q, part) = (q.add(4), _mm256_extractf128_ps::<1>(v));
                    }
                    if len & 2 != 0 {
                        _mm_store_sd(q.cast(), _mm_castps_pd(part));
                        (q, part) = (q.add(2), _mm_movehl_ps(part, part));
                    }
                    if len & 1 != 0 {
                        _mm_store_ss(q, part);
                    }
                }
                _ => _mm256_maskstore_ps(p, self.mask_vec(mask), v),
            }
        }
    }
}

/// A matrix operand: element `(i, j)` at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<P> {
    pub ptr: P,
    pub rs: usize,
    pub cs: usize,
}

impl<P> Mat<P> {
    /// A row-major matrix with rows `rs` apart.
    pub(crate) fn rows(ptr: P, rs: usize) -> Mat<P> {
        Mat { ptr, rs, cs: 1 }
    }
}

/// A pointer to floats, read-only or writable.
pub(crate) trait Ptr: Copy {
    /// The pointer `n` floats further.
    ///
    /// # Safety
    /// As `pointer::add`: the result is inside the same allocation.
    unsafe fn plus(self, n: usize) -> Self;
}

impl Ptr for *const f32 {
    #[inline(always)]
    unsafe fn plus(self, n: usize) -> Self {
        // SAFETY: the caller's guarantee.
        unsafe { self.add(n) }
    }
}

impl Ptr for *mut f32 {
    #[inline(always)]
    unsafe fn plus(self, n: usize) -> Self {
        // SAFETY: the caller's guarantee.
        unsafe { self.add(n) }
    }
}

/// An operand of [`bcast`] and [`dot`] made of rows of contiguous floats,
/// wherever each starts.
pub(crate) trait Rows: Copy {
    /// The pointer type (`*const f32` to read, `*mut f32` to write).
    type P: Ptr;
    /// Row `l`'s first float.
    ///
    /// # Safety
    /// Row `l` is one of the operand's.
    unsafe fn row(self, l: usize) -> Self::P;
    /// The operand from row `l` on.
    ///
    /// # Safety
    /// Row `l` is one of the operand's.
    unsafe fn skip(self, l: usize) -> Self;
    /// The operand `floats` further along: its later columns, or the same
    /// rows of a later sample.
    ///
    /// # Safety
    /// The shifted rows are inside the allocation of the operand's.
    unsafe fn shift(self, floats: usize) -> Self;
}

/// Rows `rs` apart (`cs` is ignored).
impl<P: Ptr> Rows for Mat<P> {
    type P = P;
    #[inline(always)]
    unsafe fn row(self, l: usize) -> P {
        // SAFETY: the caller's guarantee.
        unsafe { self.ptr.plus(l * self.rs) }
    }
    #[inline(always)]
    unsafe fn skip(self, l: usize) -> Self {
        Mat {
            // SAFETY: the caller's guarantee.
            ptr: unsafe { self.row(l) },
            ..self
        }
    }
    #[inline(always)]
    unsafe fn shift(self, floats: usize) -> Self {
        Mat {
            // SAFETY: the caller's guarantee.
            ptr: unsafe { self.ptr.plus(floats) },
            ..self
        }
    }
}

/// Rows at `ptr + offsets[l]`: a patch matrix's rows where they lie in the
/// input plane, or the input gradient's rows added there ([`crate::shifted`]).
#[derive(Clone, Copy)]
pub(crate) struct Table<'a, P> {
    pub ptr: P,
    pub offsets: &'a [usize],
}

impl<P: Ptr> Rows for Table<'_, P> {
    type P = P;
    #[inline(always)]
    unsafe fn row(self, l: usize) -> P {
        // SAFETY: the caller's guarantee (an offset past the table panics).
        unsafe { self.ptr.plus(self.offsets[l]) }
    }
    #[inline(always)]
    unsafe fn skip(self, l: usize) -> Self {
        Table {
            offsets: &self.offsets[l..],
            ..self
        }
    }
    #[inline(always)]
    unsafe fn shift(self, floats: usize) -> Self {
        Table {
            // SAFETY: the caller's guarantee.
            ptr: unsafe { self.ptr.plus(floats) },
            ..self
        }
    }
}

/// `C[m, n] (+)= A[m, k] · B[k, n]`, `A` at any strides, `B` and `C` rows
/// of contiguous floats; `accumulate` adds to `C`, one row after another (so
/// rows of `C` may overlap each other, at a cost: a row's loads wait for the
/// previous row's stores).
///
/// # Safety
/// Every element `(i, j)` with `i < m`, `j < n` (`l < k`) of `A`, `B` and
/// `C` must be valid memory at its address, and `C` must overlap neither
/// operand.
#[inline(always)]
pub(crate) unsafe fn bcast<S: Simd, B: Rows<P = *const f32>, C: Rows<P = *mut f32>>(
    s: S,
    (m, n, k): (usize, usize, usize),
    a: Mat<*const f32>,
    b: B,
    c: C,
    accumulate: bool,
) {
    let l = S::LANES;
    let mut j = 0;
    while j < n {
        let mut cols = (n - j).min(l * S::BCAST_VECS);
        let vecs = cols.div_ceil(l);
        // Written, not added to: a last block of whole vectors ending at `n`,
        // overlapping the block before (whose columns it computes again, bit
        // for bit), rather than masked lanes (lenet's first layer, 28 columns
        // a row: 504 → 447 µs on one Zen 1 thread).
        if !accumulate && cols < vecs * l && n >= vecs * l {
            (j, cols) = (n - vecs * l, vecs * l);
        }
        let mask = s.lanes(cols - (vecs - 1) * l);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(S::BCAST_ROWS);
            // SAFETY: rows i..i+rows ≤ m and columns j..j+cols ≤ n (the last
            // vector masked to them) of each matrix: the caller's guarantee.
            unsafe {
                let a = Mat {
                    ptr: a.ptr.add(i * a.rs),
                    ..a
                };
                let (b, c) = (b.shift(j), c.skip(i).shift(j));
                macro_rules! go {
                    ($($r:literal),*) => {
                        match (rows, vecs) {
                            $(
                                ($r, 1) => bcast_tile::<S, B, C, $r, 1>(s, k, a, b, c, mask, accumulate),
                                ($r, 2) => bcast_tile::<S, B, C, $r, 2>(s, k, a, b, c, mask, accumulate),
                                ($r, 3) => bcast_tile::<S, B, C, $r, 3>(s, k, a, b, c, mask, accumulate),
                                ($r, _) => bcast_tile::<S, B, C, $r, 4>(s, k, a, b, c, mask, accumulate),
                            )*
                            _ => unreachable!("at most 6 rows"),
                        }
                    };
                }
                go!(1, 2, 3, 4, 5, 6);
            }
            i += rows;
        }
        j += cols;
    }
}

/// One `R × LANES·V` tile of [`bcast`], the last vector of each row masked by `mask`.
///
/// # Safety
/// As [`bcast`] for `R` rows and the tile's columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn bcast_tile<
    S: Simd,
    B: Rows<P = *const f32>,
    C: Rows<P = *mut f32>,
    const R: usize,
    const V: usize,
>(
    s: S,
    k: usize,
    a: Mat<*const f32>,
    b: B,
    c: C,
    mask: u32,
    accumulate: bool,
) {
    let full = s.lanes(S::LANES);
    let mask_of = |v: usize| if v + 1 == V { mask } else { full };
    let mut acc = [[s.zero(); V]; R];
    // SAFETY: l < k, r < R and the tile's columns (masked) are inside the
    // operands: the caller's guarantee.
    unsafe {
        for l in 0..k {
            let bl = b.row(l);
            let mut bv = [s.zero(); V];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = s.load(mask_of(v), bl.add(S::LANES * v));
            }
            let al = a.ptr.add(l * a.cs);
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = s.splat(*al.add(r * a.rs));
                for (acc, bv) in acc.iter_mut().zip(bv) {
                    *acc = s.fmadd(av, bv, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let row = c.row(r);
            for (v, &acc) in acc.iter().enumerate() {
                let (p, m) = (row.add(S::LANES * v), mask_of(v));
                let acc = if accumulate {
                    s.add(s.load(m, p), acc)
                } else {
                    acc
                };
                s.store(p, m, acc);
            }
        }
    }
}

/// `C[i, j] (+)= Σ_{t < samples} Σ_{p < len} A_t[i, p] · B_t[j, p]` for
/// `i < m`, `j < n`: `A_t[i, p]` at `a.ptr + t·a_ts + i·a.rs + p` (`a.cs`
/// is ignored: rows are contiguous), `B_t[j, p]` at `b.row(j) + t·b_ts + p`,
/// `C[i, j]` at `c.ptr + i·c.rs + j·c.cs`.
///
/// # Safety
/// Every element named above must be valid memory, and `C` must overlap
/// neither operand.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot<S: Simd, B: Rows<P = *const f32>>(
    s: S,
    (m, n, len): (usize, usize, usize),
    samples: usize,
    (a, a_ts): (Mat<*const f32>, usize),
    (b, b_ts): (B, usize),
    c: Mat<*mut f32>,
    accumulate: bool,
) {
    let mut j = 0;
    while j < n {
        let cols = (n - j).min(S::DOT_COLS);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(S::DOT_ROWS);
            // SAFETY: rows i..i+rows ≤ m of A and C, rows j..j+cols ≤ n of B
            // and columns of C: the caller's guarantee.
            unsafe {
                let a = Mat {
                    ptr: a.ptr.add(i * a.rs),
                    ..a
                };
                let b = b.skip(j);
                let c = Mat {
                    ptr: c.ptr.add(i * c.rs + j * c.cs),
                    ..c
                };
                let shape = (len, samples, a_ts, b_ts);
                macro_rules! go {
                    ($($r:literal),*) => {
                        match (rows, cols) {
                            $(
                                ($r, 1) => dot_tile::<S, B, $r, 1>(s, shape, a, b, c, accumulate),
                                ($r, 2) => dot_tile::<S, B, $r, 2>(s, shape, a, b, c, accumulate),
                                ($r, 3) => dot_tile::<S, B, $r, 3>(s, shape, a, b, c, accumulate),
                                ($r, _) => dot_tile::<S, B, $r, 4>(s, shape, a, b, c, accumulate),
                            )*
                            _ => unreachable!("at most 4 rows"),
                        }
                    };
                }
                go!(1, 2, 3, 4);
            }
            i += rows;
        }
        j += cols;
    }
}

/// One `R × C` tile of [`dot`]: `(len, samples, a_ts, b_ts)`.
///
/// # Safety
/// As [`dot`] for the tile's rows and columns.
#[inline(always)]
unsafe fn dot_tile<S: Simd, B: Rows<P = *const f32>, const R: usize, const C: usize>(
    s: S,
    (len, samples, a_ts, b_ts): (usize, usize, usize, usize),
    a: Mat<*const f32>,
    b: B,
    c: Mat<*mut f32>,
    accumulate: bool,
) {
    let l = S::LANES;
    let (full, vecs) = (len / l, len.div_ceil(l));
    let (all, tail) = (s.lanes(l), s.lanes(len % l));
    let mut acc = [[s.zero(); C]; R];
    // SAFETY: t < samples, rows r < R, j < C and positions p < len (the
    // tail masked) are inside the operands: the caller's guarantee.
    unsafe {
        for t in 0..samples {
            let (at, bt) = (a.ptr.add(t * a_ts), b.shift(t * b_ts));
            let mut rows = [at; C];
            for (j, row) in rows.iter_mut().enumerate() {
                *row = bt.row(j);
            }
            // B's vectors first, then one A vector per row, the shape of
            // `bcast_tile`'s loop (the other nesting left the accumulators
            // on the stack).
            macro_rules! step {
                ($q:expr, $mask:expr) => {{
                    let at = at.add(l * $q);
                    let mut bv = [s.zero(); C];
                    for (bv, row) in bv.iter_mut().zip(rows) {
                        *bv = s.load($mask, row.add(l * $q));
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let av = s.load($mask, at.add(r * a.rs));
                        for (acc, &bv) in acc.iter_mut().zip(&bv) {
                            *acc = s.fmadd(av, bv, *acc);
                        }
                    }
                }};
            }
            if S::DOT_TAIL_APART {
                for q in 0..full {
                    step!(q, all);
                }
                if vecs > full {
                    step!(full, tail);
                }
            } else {
                for q in 0..vecs {
                    step!(q, if q < full { all } else { tail });
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, &acc) in acc.iter().enumerate() {
                let p = c.ptr.add(r * c.rs + j * c.cs);
                let v = s.reduce_add(acc);
                *p = if accumulate { *p + v } else { v };
            }
        }
    }
}

/// The patch rows of one channel of a 2-d convolution with stride 1 along
/// its inner axis (im2col, `SCATTER = false`: `cols` gets `kernel` rows of
/// `out_sp` floats, zeros where a tap reads padding), or their sum back into
/// the channel's plane (col2im, `SCATTER = true`). One masked vector per `LANES`
/// outputs of a row: the mask keeps the taps inside the input, so padding
/// costs neither a branch nor a read. `axes` are `(outer, inner)`.
///
/// # Safety
/// `x` must hold the channel's `input · input`
/// plane and `cols` its `k_sp · out_sp` patch rows, not overlapping; the
/// axes must be a valid window (`ConvStep::consistent`) with
/// `inner.stride == 1`; to scatter, both kernels at most `MAX_SCATTER_TAPS`
/// (the plane is then overwritten, not added to).
#[inline(always)]
pub(crate) unsafe fn patch_rows_2d<S: Simd, const SCATTER: bool>(
    s: S,
    (outer, inner): (crate::conv::ConvAxis, crate::conv::ConvAxis),
    x: *mut f32,
    cols: *mut f32,
) {
    let (ho, wo, wi) = (outer.output, inner.output, inner.input);
    let out_sp = ho * wo;
    if SCATTER {
        // SAFETY: the caller's guarantee, as `scatter_rows_2d` needs.
        unsafe { scatter_rows_2d(s, (outer, inner), x, cols) };
        return;
    }
    // Per tap: each vector's mask and its lanes inside the input (the same
    // for every output row), for rows of up to CHUNKS vectors.
    const CHUNKS: usize = 16;
    let l = S::LANES;
    let chunks = wo.div_ceil(l);
    for kx in 0..inner.kernel {
        let (xlo, xhi) = inner.inside(kx);
        // Input column of output `ox`: `ox + shift` (in range for ox in xlo..xhi).
        let shift = (kx * inner.dilation) as isize - inner.pad_lo as isize;
        let chunk = |c: usize| {
            let ox0 = l * c;
            let len = (wo - ox0).min(l);
            let (lo, hi) = (xlo.clamp(ox0, ox0 + len), xhi.clamp(ox0, ox0 + len));
            let valid = if hi > lo {
                s.lanes(hi - ox0) & !s.lanes(lo - ox0)
            } else {
                0
            };
            (s.lanes(len), valid)
        };
        let mut masks = [(0u32, 0u32); CHUNKS];
        for (c, m) in masks.iter_mut().enumerate().take(chunks) {
            *m = chunk(c);
        }
        for ky in 0..outer.kernel {
            let (ylo, yhi) = outer.inside(ky);
            // SAFETY: row (ky, kx) of the patch rows (ho · wo floats) and, for
            // oy in ylo..yhi, input row `position(oy, ky)` of the plane; each
            // vector's lanes are masked to outputs < wo and, where the input
            // is read, to xlo..xhi, whose columns are inside the row (masked
            // lanes touch no memory, so `src` may point outside it).
            unsafe {
                let row = cols.add((ky * inner.kernel + kx) * out_sp);
                // (Guarded: a call per tap even for 0 floats showed in perf.)
                if ylo > 0 {
                    std::ptr::write_bytes(row, 0, ylo * wo);
                }
                if yhi < ho {
                    std::ptr::write_bytes(row.add(yhi * wo), 0, (ho - yhi) * wo);
                }
                for oy in ylo..yhi {
                    let out = row.add(oy * wo);
                    let xrow = x.add(outer.position(oy, ky) * wi).wrapping_offset(shift);
                    for c in 0..chunks {
                        let (all, valid) = match masks.get(c) {
                            Some(&m) => m,
                            None => chunk(c),
                        };
                        let v = s.load(valid, xrow.wrapping_add(l * c));
                        s.store(out.add(l * c), all, v);
                    }
                }
            }
        }
    }
}

/// Inner-axis taps [`patch_rows_2d`] handles when scattering.
pub(crate) const MAX_SCATTER_TAPS: usize = 16;

/// col2im of [`patch_rows_2d`], writing (not adding to) every element of the
/// channel's plane: each vector of an input row sum every tap that reads
/// them from the patch rows in registers and are stored once. (Adding tap by
/// tap into memory made every load wait for an overlapping masked store.)
///
/// # Safety
/// As [`patch_rows_2d`].
#[inline(always)]
unsafe fn scatter_rows_2d<S: Simd>(
    s: S,
    (outer, inner): (crate::conv::ConvAxis, crate::conv::ConvAxis),
    x: *mut f32,
    cols: *mut f32,
) {
    let (ho, wo, wi) = (outer.output, inner.output, inner.input);
    let out_sp = ho * wo;
    let kw = inner.kernel;
    // Each tap's output range and input shift, computed once (an i128
    // division each) and outside the loops, where a call would make the
    // accumulator spill to the stack around it.
    let mut taps = [(0isize, 0isize, 0isize); MAX_SCATTER_TAPS];
    for (kx, t) in taps.iter_mut().enumerate().take(kw) {
        let (xlo, xhi) = inner.inside(kx);
        let shift = (kx * inner.dilation) as isize - inner.pad_lo as isize;
        *t = (xlo as isize, xhi as isize, shift);
    }
    let taps = &taps[..kw.min(MAX_SCATTER_TAPS)];
    for iy in 0..outer.input {
        // The (ky, oy) whose tap reads input row iy: iy = oy·stride + ky·dilation − pad.
        let mut reads = [(0usize, 0usize); MAX_SCATTER_TAPS];
        let mut count = 0;
        for ky in 0..outer.kernel.min(MAX_SCATTER_TAPS) {
            let t = (iy + outer.pad_lo) as isize - (ky * outer.dilation) as isize;
            if t >= 0
                && (t as usize).is_multiple_of(outer.stride)
                && (t as usize) / outer.stride < ho
            {
                reads[count] = (ky, t as usize / outer.stride);
                count += 1;
            }
        }
        let reads = &reads[..count];
        // SAFETY: input row iy < input of the plane, its columns masked to
        // < wi; for each (ky, oy) above and tap kx, patch row (ky, kx) at
        // output row oy < ho, lanes masked to the outputs xlo..xhi whose input
        // column `ox + shift` is this lane's (inside the row).
        unsafe {
            let xrow = x.add(iy * wi);
            let mut ix0 = 0;
            while ix0 < wi {
                let len = (wi - ix0).min(S::LANES);
                let mut acc = s.zero();
                for &(ky, oy) in reads {
                    for (kx, &(xlo, xhi, shift)) in taps.iter().enumerate() {
                        // Lane l is input column ix0 + l, output ix0 + l − shift.
                        let first = ix0 as isize - shift;
                        let (lo, hi) = (xlo - first, xhi - first);
                        let (lo, hi) = (lo.clamp(0, len as isize), hi.clamp(0, len as isize));
                        if hi <= lo {
                            continue;
                        }
                        let valid = s.lanes(hi as usize) & !s.lanes(lo as usize);
                        let src = cols
                            .add((ky * kw + kx) * out_sp + oy * wo)
                            .wrapping_offset(first);
                        acc = s.add(acc, s.load(valid, src));
                    }
                }
                s.store(xrow.add(ix0), s.lanes(len), acc);
                ix0 += S::LANES;
            }
        }
    }
}

/// What [`MaxPool2x2`] computes, with its operands (each one plane).
#[derive(Clone, Copy)]
pub(crate) enum Pairs {
    /// `out[o] = v[argmax]` over the windows of `x` (`v: None`: `x` itself,
    /// whose largest value the search holds already); the argmax's plane
    /// index is also written to `index`, if any, one per output.
    Forward {
        x: *const f32,
        v: Option<*const f32>,
        index: Option<*mut u32>,
    },
    /// `out` (the `dx` plane) zeroed, then `0 + dy[o]` at each window's argmax of `x`.
    Grad { x: *const f32, dy: *const f32 },
    /// As `Grad`, each window's argmax read from `index` (a plane index as a
    /// forward step wrote it; one outside its window scatters nothing).
    GradAt { index: *const u32, dy: *const f32 },
}

/// One plane of a 2×2, stride-2 max pooling without padding: `dims` are
/// `(rows, cols, in_rows, in_cols)`, `rows × cols` outputs over an
/// `in_rows × in_cols` plane, `2·rows ≤ in_rows`, `2·cols ≤ in_cols`. A
/// vector of outputs at a time, bit for bit the scalar rule: the four
/// positions in row-major order, the first largest wins, a NaN counts as
/// largest and a later NaN replaces an earlier one. The gradient adds each
/// `dy` element once at most per input (windows do not overlap), as the
/// scalar loop adds it; when the windows cover the plane its stores write
/// every element (`+0` where no window's argmax is), so it zeroes nothing
/// first.
///
/// Work for [`Isa::run`]; its safety conditions: `x` and `v` hold
/// `in_rows · in_cols` floats, `dy` and `index` `rows · cols` entries, `out`
/// `rows · cols` (forward) or `in_rows · in_cols` (gradients), `out` and a
/// written `index` overlapping nothing else; `in_rows · in_cols` fits in `u32`.
#[derive(Clone, Copy)]
pub(crate) struct MaxPool2x2 {
    pub dims: (usize, usize, usize, usize),
    pub pairs: Pairs,
    pub out: *mut f32,
}

impl Vectorized for MaxPool2x2 {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self, s: S) {
        let MaxPool2x2 {
            dims: (rows, cols, in_rows, in_cols),
            pairs,
            out,
        } = self;
        let l = S::LANES;
        let even = s.indices(|i| 2 * i);
        let odd = s.indices(|i| 2 * i + 1);
        let zip_lo = s.indices(|i| i / 2 + l * (i % 2));
        let zip_hi = s.indices(|i| l / 2 + i / 2 + l * (i % 2));
        // Plane indices as u32 lanes (they fit: the caller's guarantee; the
        // arithmetic wraps as u32 would). (Macros, not closures: see `Isa::run`.)
        macro_rules! at {
            ($i:expr) => {
                s.splat(f32::from_bits($i as u32))
            };
        }
        let zero = s.zero();
        let twice = s.bits(|i| 2 * i as u32);
        // A window's positions 0 to 3 lie these distances past its position 0.
        let offsets = [zero, at!(1), at!(in_cols), at!(in_cols + 1)];
        // SAFETY: rows oy < rows read input rows 2·oy, 2·oy + 1 < in_rows; a
        // chunk's lanes are masked to outputs < cols and inputs < 2·cols ≤ in_cols
        // (masked lanes touch no memory); the gradient writes the plane it zeroed.
        unsafe {
            let covered = 2 * rows == in_rows && 2 * cols == in_cols;
            if matches!(pairs, Pairs::Grad { .. } | Pairs::GradAt { .. }) && !covered {
                std::ptr::write_bytes(out, 0, in_rows * in_cols);
            }
            for oy in 0..rows {
                let r0 = 2 * oy * in_cols;
                let r1 = r0 + in_cols;
                let mut ox = 0;
                while ox < cols {
                    // A row at least a vector wide ends in a whole chunk that
                    // overlaps the one before (storing the same values again)
                    // rather than in masked lanes: AVX2's masked moves cost
                    // lenet's first pooling 222 against 167 µs on one Zen 1
                    // thread.
                    if ox + l > cols && cols >= l {
                        ox = cols - l;
                    }
                    let len = (cols - ox).min(l);
                    let m_out = s.lanes(len);
                    let (m_lo, m_hi) = (s.lanes(2 * len), s.lanes((2 * len).saturating_sub(l)));
                    // The even and odd positions of 2·len inputs from p on.
                    macro_rules! split {
                        ($p:expr) => {{
                            let p: *const f32 = $p;
                            let (lo, hi) = (s.load(m_lo, p), s.load(m_hi, p.add(l)));
                            (s.permute2(lo, even, hi), s.permute2(lo, odd, hi))
                        }};
                    }
                    // Each lane's window: its top-left input's plane index.
                    let first = s.add_bits(at!(r0 + 2 * ox), twice);
                    // A window's values in row-major order, each later one
                    // replacing the best so far by the rule: the maximum,
                    // the argmax's offset, and the lanes each later one took
                    // (the last taker is the argmax).
                    macro_rules! search {
                        ($x:expr) => {{
                            let x: *const f32 = $x;
                            let (a, b) = split!(x.add(r0 + 2 * ox));
                            let (c, d) = split!(x.add(r1 + 2 * ox));
                            let t1 = s.replaces(b, a);
                            let best = s.select(a, t1, b);
                            let t2 = s.replaces(c, best);
                            let best = s.select(best, t2, c);
                            let t3 = s.replaces(d, best);
                            let best = s.select(best, t3, d);
                            let offset = s.select(zero, t1, offsets[1]);
                            let offset = s.select(offset, t2, offsets[2]);
                            let offset = s.select(offset, t3, offsets[3]);
                            (best, offset, [t1, t2, t3])
                        }};
                    }
                    let (index, dy) = match pairs {
                        Pairs::Forward { x, v, index } => {
                            let (best, offset, [t1, t2, t3]) = search!(x);
                            let y = match v {
                                // The value taken at the argmax: best holds x's bits there.
                                None => best,
                                Some(v) => {
                                    let (va, vb) = split!(v.add(r0 + 2 * ox));
                                    let (vc, vd) = split!(v.add(r1 + 2 * ox));
                                    let y = s.select(va, t1, vb);
                                    let y = s.select(y, t2, vc);
                                    s.select(y, t3, vd)
                                }
                            };
                            s.store(out.add(oy * cols + ox), m_out, y);
                            if let Some(index) = index {
                                let i = s.add_bits(first, offset);
                                s.store(index.add(oy * cols + ox).cast(), m_out, i);
                            }
                            ox += l;
                            continue;
                        }
                        Pairs::Grad { x, dy } => (s.add_bits(first, search!(x).1), dy),
                        Pairs::GradAt { index, dy } => {
                            (s.load(m_out, index.add(oy * cols + ox).cast()), dy)
                        }
                    };
                    let g = s.load(m_out, dy.add(oy * cols + ox));
                    // `0 + dy` at the argmax (as the scalar loop adds it to a
                    // zero), `+0` elsewhere.
                    let mut put = [zero; 4];
                    for (put, offset) in put.iter_mut().zip(offsets) {
                        let win = s.same_bits(index, s.add_bits(first, offset));
                        *put = s.add(zero, s.select(zero, win, g));
                    }
                    let [ga, gb, gc, gd] = put;
                    for (r, e, o) in [(r0, ga, gb), (r1, gc, gd)] {
                        let p = out.add(r + 2 * ox);
                        s.store(p, m_lo, s.permute2(e, zip_lo, o));
                        s.store(p.add(l), m_hi, s.permute2(e, zip_hi, o));
                    }
                    ox += l;
                }
            }
        }
    }
}
