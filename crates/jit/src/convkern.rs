//! AVX-512 products for the convolution steps, shaped for their small
//! matrices: a channel count (6, 16, 32, 64) on one side, output positions
//! (contiguous in memory) on the other. The `gemm` crate packs both operands
//! and vectorises a 64-row side at every call; on lenet's per-sample products
//! (6 × 784 × 25, 16 × 100 × 150) that cost it 4–10× its arithmetic. Here:
//!
//! - [`bcast`]: `C (+)= A · B` with `B` and `C` row-major along the positions,
//!   vectorised along them (up to 6 rows × 64 columns of accumulators, each
//!   `A` element broadcast): the forward product and the input gradient's.
//! - [`dot`]: `C (+)= Σ_t A_t · B_tᵀ`, both operands' rows contiguous along
//!   the positions and summed over several samples in registers before one
//!   horizontal sum per result (4 × 6 accumulators): the weight gradient.
//!
//! Neither packs nor allocates. A row tail shorter than 16 floats is read and
//! written with masked instructions, whose masked-off lanes touch no memory.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether this CPU runs the kernels (else the steps use the `gemm` crate).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rows of accumulators of a [`bcast`] tile.
const BCAST_ROWS: usize = 6;
/// 16-float vectors of accumulators per row of a [`bcast`] tile.
const BCAST_VECS: usize = 4;
/// Rows (of `A`) of a [`dot`] tile.
const DOT_ROWS: usize = 4;
/// Columns (rows of `B`) of a [`dot`] tile.
const DOT_COLS: usize = 6;

/// A matrix operand: element `(i, j)` at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<P> {
    pub ptr: P,
    pub rs: usize,
    pub cs: usize,
}

/// The mask of the first `len` lanes (all 16 from 16 on).
fn lanes(len: usize) -> u16 {
    if len >= 16 {
        u16::MAX
    } else {
        (1u16 << len) - 1
    }
}

/// `C[m, n] (+)= A[m, k] · B[k, n]`, `B` and `C` with column stride 1
/// (their `cs` is ignored), `A` at any strides; `accumulate` adds to `C`.
///
/// # Safety
/// [`available`] must be true; every element `(i, j)` with `i < m`, `j < n`
/// (`l < k`) of `A`, `B` and `C` must be valid memory at its address, and
/// `C` must overlap neither operand.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn bcast(
    (m, n, k): (usize, usize, usize),
    a: Mat<*const f32>,
    b: Mat<*const f32>,
    c: Mat<*mut f32>,
    accumulate: bool,
) {
    let mut j = 0;
    while j < n {
        let cols = (n - j).min(16 * BCAST_VECS);
        let vecs = cols.div_ceil(16);
        let mask = lanes(cols - (vecs - 1) * 16);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(BCAST_ROWS);
            // SAFETY: rows i..i+rows ≤ m and columns j..j+cols ≤ n (the last
            // vector masked to them) of each matrix: the caller's guarantee.
            unsafe {
                let a = Mat {
                    ptr: a.ptr.add(i * a.rs),
                    ..a
                };
                let b = Mat {
                    ptr: b.ptr.add(j),
                    ..b
                };
                let c = Mat {
                    ptr: c.ptr.add(i * c.rs + j),
                    ..c
                };
                macro_rules! go {
                    ($($r:literal),*) => {
                        match (rows, vecs) {
                            $(
                                ($r, 1) => bcast_tile::<$r, 1>(k, a, b, c, mask, accumulate),
                                ($r, 2) => bcast_tile::<$r, 2>(k, a, b, c, mask, accumulate),
                                ($r, 3) => bcast_tile::<$r, 3>(k, a, b, c, mask, accumulate),
                                ($r, _) => bcast_tile::<$r, 4>(k, a, b, c, mask, accumulate),
                            )*
                            _ => unreachable!("at most {BCAST_ROWS} rows"),
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

/// One `R × 16·V` tile of [`bcast`], the last vector of each row masked by `mask`.
///
/// # Safety
/// As [`bcast`] for `R` rows and the tile's columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn bcast_tile<const R: usize, const V: usize>(
    k: usize,
    a: Mat<*const f32>,
    b: Mat<*const f32>,
    c: Mat<*mut f32>,
    mask: u16,
    accumulate: bool,
) {
    // (A plain function of `v`: no intrinsic inside, so a closure is fine.)
    let mask_of = |v: usize| if v + 1 == V { mask } else { u16::MAX };
    let mut s = [[_mm512_setzero_ps(); V]; R];
    // SAFETY: l < k, r < R and the tile's columns (masked) are inside the
    // operands: the caller's guarantee.
    unsafe {
        for l in 0..k {
            let bl = b.ptr.add(l * b.rs);
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = _mm512_maskz_loadu_ps(mask_of(v), bl.add(16 * v));
            }
            let al = a.ptr.add(l * a.cs);
            for (r, s) in s.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*al.add(r * a.rs));
                for (s, bv) in s.iter_mut().zip(bv) {
                    *s = _mm512_fmadd_ps(av, bv, *s);
                }
            }
        }
        for (r, s) in s.iter().enumerate() {
            let row = c.ptr.add(r * c.rs);
            for (v, &s) in s.iter().enumerate() {
                let (p, m) = (row.add(16 * v), mask_of(v));
                let s = if accumulate {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), s)
                } else {
                    s
                };
                _mm512_mask_storeu_ps(p, m, s);
            }
        }
    }
}

/// `C[i, j] (+)= Σ_{t < samples} Σ_{p < len} A_t[i, p] · B_t[j, p]` for
/// `i < m`, `j < n`: `A_t[i, p]` at `a.ptr + t·a_ts + i·a.rs + p`, `B_t` at
/// `b.ptr + t·b_ts + j·b.rs + p` (the operands' `cs` are ignored: rows are
/// contiguous), `C[i, j]` at `c.ptr + i·c.rs + j·c.cs`.
///
/// # Safety
/// [`available`] must be true; every element named above must be valid
/// memory, and `C` must overlap neither operand.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot(
    (m, n, len): (usize, usize, usize),
    samples: usize,
    (a, a_ts): (Mat<*const f32>, usize),
    (b, b_ts): (Mat<*const f32>, usize),
    c: Mat<*mut f32>,
    accumulate: bool,
) {
    let mut j = 0;
    while j < n {
        let cols = (n - j).min(DOT_COLS);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(DOT_ROWS);
            // SAFETY: rows i..i+rows ≤ m of A and C, rows j..j+cols ≤ n of B
            // and columns of C: the caller's guarantee.
            unsafe {
                let a = Mat {
                    ptr: a.ptr.add(i * a.rs),
                    ..a
                };
                let b = Mat {
                    ptr: b.ptr.add(j * b.rs),
                    ..b
                };
                let c = Mat {
                    ptr: c.ptr.add(i * c.rs + j * c.cs),
                    ..c
                };
                let shape = (len, samples, a_ts, b_ts);
                macro_rules! go {
                    ($($r:literal),*) => {
                        match (rows, cols) {
                            $(
                                ($r, 1) => dot_tile::<$r, 1>(shape, a, b, c, accumulate),
                                ($r, 2) => dot_tile::<$r, 2>(shape, a, b, c, accumulate),
                                ($r, 3) => dot_tile::<$r, 3>(shape, a, b, c, accumulate),
                                ($r, 4) => dot_tile::<$r, 4>(shape, a, b, c, accumulate),
                                ($r, 5) => dot_tile::<$r, 5>(shape, a, b, c, accumulate),
                                ($r, _) => dot_tile::<$r, 6>(shape, a, b, c, accumulate),
                            )*
                            _ => unreachable!("at most {DOT_ROWS} rows"),
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
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dot_tile<const R: usize, const C: usize>(
    (len, samples, a_ts, b_ts): (usize, usize, usize, usize),
    a: Mat<*const f32>,
    b: Mat<*const f32>,
    c: Mat<*mut f32>,
    accumulate: bool,
) {
    let full = len / 16;
    let tail = lanes(len % 16);
    let mut s = [[_mm512_setzero_ps(); C]; R];
    // SAFETY: t < samples, rows r < R, j < C and positions p < len (the
    // tail masked) are inside the operands: the caller's guarantee.
    unsafe {
        // A macro, not a closure: the body must be compiled with AVX-512.
        macro_rules! step {
            ($at:expr, $bt:expr, $mask:expr) => {{
                let (at, bt, mask): (*const f32, *const f32, u16) = ($at, $bt, $mask);
                let mut av = [_mm512_setzero_ps(); R];
                for (r, av) in av.iter_mut().enumerate() {
                    *av = _mm512_maskz_loadu_ps(mask, at.add(r * a.rs));
                }
                for j in 0..C {
                    let bv = _mm512_maskz_loadu_ps(mask, bt.add(j * b.rs));
                    for (s, &av) in s.iter_mut().zip(&av) {
                        s[j] = _mm512_fmadd_ps(av, bv, s[j]);
                    }
                }
            }};
        }
        for t in 0..samples {
            let (at, bt) = (a.ptr.add(t * a_ts), b.ptr.add(t * b_ts));
            for q in 0..full {
                step!(at.add(16 * q), bt.add(16 * q), u16::MAX);
            }
            if len % 16 != 0 {
                step!(at.add(16 * full), bt.add(16 * full), tail);
            }
        }
        for (r, s) in s.iter().enumerate() {
            for (j, &s) in s.iter().enumerate() {
                let p = c.ptr.add(r * c.rs + j * c.cs);
                let v = _mm512_reduce_add_ps(s);
                *p = if accumulate { *p + v } else { v };
            }
        }
    }
}

/// The patch rows of one channel of a 2-d convolution with stride 1 along
/// its inner axis (im2col, `SCATTER = false`: `cols` gets `kernel` rows of
/// `out_sp` floats, zeros where a tap reads padding), or their sum back into
/// the channel's plane (col2im, `SCATTER = true`). One masked vector per 16
/// outputs of a row: the mask keeps the taps inside the input, so padding
/// costs neither a branch nor a read. `axes` are `(outer, inner)`.
///
/// # Safety
/// [`available`] must be true; `x` must hold the channel's `input · input`
/// plane and `cols` its `k_sp · out_sp` patch rows, not overlapping; the
/// axes must be a valid window (`ConvStep::consistent`) with
/// `inner.stride == 1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn patch_rows_2d<const SCATTER: bool>(
    (outer, inner): (crate::conv::ConvAxis, crate::conv::ConvAxis),
    x: *mut f32,
    cols: *mut f32,
) {
    let (ho, wo, wi) = (outer.output, inner.output, inner.input);
    let out_sp = ho * wo;
    for ky in 0..outer.kernel {
        let (ylo, yhi) = outer.inside(ky);
        for kx in 0..inner.kernel {
            let (xlo, xhi) = inner.inside(kx);
            // Input column of output `ox`: `ox + shift` (in range for ox in xlo..xhi).
            let shift = (kx * inner.dilation) as isize - inner.pad_lo as isize;
            // SAFETY: row (ky, kx) of the patch rows and, for oy in ylo..yhi,
            // input row `position(oy, ky)` of the plane; each vector's lanes
            // are masked to outputs < wo and, where the input is read or
            // written, to xlo..xhi, whose columns are inside the row (masked
            // lanes touch no memory, so `src` may point outside it).
            unsafe {
                let row = cols.add((ky * inner.kernel + kx) * out_sp);
                for oy in 0..ho {
                    let out = row.add(oy * wo);
                    let inside = oy >= ylo && oy < yhi;
                    if !inside && SCATTER {
                        continue;
                    }
                    let xrow = if inside {
                        x.add(outer.position(oy, ky) * wi)
                    } else {
                        x
                    };
                    let mut ox0 = 0;
                    while ox0 < wo {
                        let len = (wo - ox0).min(16);
                        let all = lanes(len);
                        let (lo, hi) = (xlo.clamp(ox0, ox0 + len), xhi.clamp(ox0, ox0 + len));
                        let valid = if inside && hi > lo {
                            lanes(hi - ox0) & !lanes(lo - ox0)
                        } else {
                            0
                        };
                        let src = xrow.wrapping_offset(ox0 as isize + shift);
                        let dst = out.add(ox0);
                        if SCATTER {
                            let sum = _mm512_add_ps(
                                _mm512_maskz_loadu_ps(valid, src),
                                _mm512_maskz_loadu_ps(valid, dst),
                            );
                            _mm512_mask_storeu_ps(src, valid, sum);
                        } else {
                            _mm512_mask_storeu_ps(dst, all, _mm512_maskz_loadu_ps(valid, src));
                        }
                        ox0 += 16;
                    }
                }
            }
        }
    }
}
