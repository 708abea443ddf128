//! Matrix products of bfloat16 operands on AVX512_BF16 (`vdpbf16ps`: Zen 4 and 5, Cooper
//! Lake, Sapphire Rapids): `dst = lhs · rhs` with f32 operands converted to bf16 (round to
//! nearest even, `vcvtne2ps2bf16`) while they are packed, products of pairs summed in f32.
//!
//! The plan sends a product here only when both its operands are results of
//! [`graphc_ir::UnaryOp::RoundBf16`]; where nothing else reads such a result, the product reads
//! the unrounded source instead (`graphc_opt::fusion`'s absorbed nodes) and the packing does
//! the rounding. `vcvtne2ps2bf16` rounds as [`graphc_ir::round_bf16`] does, except that it
//! takes subnormal inputs as zero; `vdpbf16ps` treats subnormal operands as zero and flushes
//! subnormal sums anyway (its DAZ/FTZ semantics), so the result is the f32 product of the
//! rounded operands up to the order of the sums and those subnormal values (including the
//! largest subnormals, which `round_bf16` rounds up to the smallest normal).
//!
//! Blocking as in Goto's GEMM, in two phases so threads share the left operand: [`pack_lhs`]
//! packs the whole left operand once (rows split across the team) as `MR`-row strips per `KC`
//! block, then [`gemm_packed`] computes blocks of the result, packing its `KC × NC` panels of
//! the right operand on the thread that uses them, and an `MR × NR` microkernel keeps its 24
//! sums in registers. A packed word is one bf16 pair: `(x[k], x[k+1])` of a left row,
//! `(b[k][j], b[k+1][j])` of a right column, low half first.

use std::arch::x86_64::*;
use std::cell::RefCell;

// Tiles of `pack` are 8 lines or a multiple of 16.
const _: () = assert!(MR == 8 && NR.is_multiple_of(16));

/// Rows of the microkernel's tile: row blocks of a split product start at multiples of this.
pub(crate) const MR: usize = 8;
/// Vectors (of 16 columns) of the microkernel's tile.
const NV: usize = 3;
/// Columns of the microkernel's tile.
const NR: usize = 16 * NV;
/// Most columns per packed panel of the right operand.
const NC: usize = 10 * NR;
/// Pairs of the inner dimension per panel of the right operand: `KC_PANEL · NC · 4` bytes =
/// 480 KiB, inside Zen 4's 1 MiB L2 beside the left strips.
const KC_PANEL: usize = 256;

thread_local! {
    /// Packed right panels of this thread (the team's threads live as long as the process).
    static PACKED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Whether this CPU runs the kernels of this module.
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16")
    })
}

/// One operand: its first element and its column and row strides (in floats).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand {
    /// Element `(0, 0)`.
    pub ptr: *const f32,
    /// Distance between neighbours in a row.
    pub cs: isize,
    /// Distance between neighbours in a column.
    pub rs: isize,
}

/// Words of the packed left operand of an `m × k` product (rows padded to whole strips, an
/// odd `k` to a whole pair); saturates where the sizes would overflow.
pub(crate) fn lhs_words(m: usize, k: usize) -> usize {
    m.next_multiple_of(MR).saturating_mul(k.div_ceil(2))
}

/// Packs rows `r0..r1` of the `m × k` left operand into their strips of the packed operand
/// `out` (`[lhs_words(m, k)]`): for each `KC` block of pairs starting at pair `kp0`, the
/// strips of `MR` rows, strip `t` of the block at word `m_pad · kp0 + t · MR · kpairs`
/// (`m_pad` = `m` rounded up to whole strips, `kpairs` the block's pairs), each
/// `[kpairs][MR]`.
///
/// # Safety
/// [`available`] must be true; `lhs` must hold `m × k` elements at its strides; `out` must
/// hold [`lhs_words`]`(m, k)` words; `r0` must be a multiple of [`MR`] and `r0 ≤ r1 ≤ m`.
/// Calls for disjoint row ranges write disjoint words.
pub(crate) unsafe fn pack_lhs(
    m: usize,
    k: usize,
    lhs: Operand,
    out: *mut u32,
    (r0, r1): (usize, usize),
) {
    if r0 >= r1 {
        return;
    }
    let (m_pad, kp_all) = (m.next_multiple_of(MR), k.div_ceil(2));
    let rows = r1 - r0;
    let mut kp0 = 0;
    while kp0 < kp_all {
        let kpairs = (kp_all - kp0).min(KC_PANEL);
        let (k0, klen) = (2 * kp0, (k - 2 * kp0).min(2 * kpairs));
        // SAFETY: the strips of rows r0..r1 in this block are words m_pad · kp0 + r0 · kpairs
        // onwards, rows.next_multiple_of(MR) · kpairs of them, inside `out` (r1 ≤ m); rows
        // r0..r1 and values k0..k0 + klen lie inside lhs.
        unsafe {
            let strips = std::slice::from_raw_parts_mut(
                out.add(m_pad * kp0 + r0 * kpairs),
                rows.next_multiple_of(MR) * kpairs,
            );
            let at = lhs
                .ptr
                .wrapping_offset(r0 as isize * lhs.rs + k0 as isize * lhs.cs);
            pack(at, (lhs.rs, lhs.cs), (rows, klen), MR, strips);
        }
        kp0 += kpairs;
    }
}

/// Rows `r0..r1`, columns `c0..c1` of `dst = lhs · rhs` (`m × n`, row stride `ldc`, inner
/// dimension `k`), with the left operand packed by [`pack_lhs`] at `a`.
///
/// # Safety
/// [`available`] must be true; `a` must hold the packed strips of rows `r0..r1` of the
/// `m`-row left operand; `rhs` must hold `k × n` elements at its strides; `dst` `m` rows of
/// `n` floats at row stride `ldc`, not overlapping `rhs` or `a`; `r0` must be a multiple of
/// [`MR`], `r0 ≤ r1 ≤ m` and `c0 ≤ c1 ≤ n`.
pub(crate) unsafe fn gemm_packed(
    (m, k): (usize, usize),
    a: *const u32,
    rhs: Operand,
    dst: *mut f32,
    ldc: usize,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
) {
    if r0 >= r1 || c0 >= c1 {
        return;
    }
    PACKED.with(|cell| {
        let b_buf = &mut *cell.borrow_mut();
        let (m_pad, kp_all) = (m.next_multiple_of(MR), k.div_ceil(2));
        let n = c1 - c0;
        // Column panels of equal width (in whole tiles), at most NC.
        let panel = n.div_ceil(n.div_ceil(NC)).next_multiple_of(NR);
        let mut jc = c0;
        while jc < c1 {
            let nc = (c1 - jc).min(panel);
            let tiles_n = nc.div_ceil(NR);
            let mut kp0 = 0;
            while kp0 < kp_all {
                let kpairs = (kp_all - kp0).min(KC_PANEL);
                let (k0, klen) = (2 * kp0, (k - 2 * kp0).min(2 * kpairs));
                b_buf.resize(tiles_n * NR * kpairs, 0);
                // SAFETY: rows k0..k0 + klen and columns jc..jc + nc lie inside rhs (the
                // caller's guarantee); the panel holds tiles_n · NR · kpairs words.
                unsafe {
                    let at = rhs
                        .ptr
                        .wrapping_offset(k0 as isize * rhs.rs + jc as isize * rhs.cs);
                    pack(at, (rhs.cs, rhs.rs), (nc, klen), NR, b_buf);
                }
                let mut i = r0;
                while i < r1 {
                    let rows = (r1 - i).min(MR);
                    for tj in 0..tiles_n {
                        let cols = (nc - tj * NR).min(NR);
                        // SAFETY: the strip of rows i..i + MR in this block holds kpairs · MR
                        // words (i is a multiple of MR below m, see pack_lhs) and the panel's
                        // tile kpairs · NR (padding is zero); the tile of the result is rows ×
                        // cols inside dst.
                        unsafe {
                            kernel(
                                kpairs,
                                a.add(m_pad * kp0 + i * kpairs),
                                b_buf.as_ptr().add(tj * NR * kpairs),
                                dst.add(i * ldc + jc + tj * NR),
                                ldc,
                                kp0 > 0,
                                (rows, cols),
                            )
                        };
                    }
                    i += rows;
                }
                kp0 += kpairs;
            }
            jc += nc;
        }
    });
}

/// Packs `lines` lines of an operand (the right operand's columns, or the left operand's
/// rows) as tiles of `tile` lines (8, or a multiple of 16), each `[kpairs][tile]` pair words,
/// reading `klen` values of `k` along each line from `base`; lines past `lines` and the pair
/// past an odd `klen` are zero. Neighbouring lines are `line_stride` apart, neighbouring
/// values of `k` `k_stride`.
///
/// # Safety
/// As [`gemm_packed`]: every line must hold `klen` values at its strides; `out` must hold
/// `lines.div_ceil(tile) · tile · kpairs` words, `kpairs = klen.div_ceil(2)`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack(
    base: *const f32,
    (line_stride, k_stride): (isize, isize),
    (lines, klen): (usize, usize),
    tile: usize,
    out: &mut [u32],
) {
    let kpairs = klen.div_ceil(2);
    let padded = lines.div_ceil(tile) * tile;
    let at = |line: usize, k: usize| {
        base.wrapping_offset(line as isize * line_stride + k as isize * k_stride)
    };
    // Word (line, p) is out[t · tile · kpairs + p · tile + i] for line = t · tile + i.
    if line_stride == 1 {
        // Lines are neighbours: interleave values k and k + 1 of up to 16 lines at a time,
        // stored as they lie in their tile.
        let chunk = tile.min(16);
        let mask = ((1u32 << chunk) - 1) as __mmask16;
        for t0 in (0..padded).step_by(tile) {
            let strip = &mut out[t0 * kpairs..(t0 + tile) * kpairs];
            for p in 0..kpairs {
                let second = 2 * p + 1 < klen;
                for i in (0..tile).step_by(chunk) {
                    let count = lines.saturating_sub(t0 + i).min(chunk);
                    let words = &mut strip[p * tile + i..p * tile + i + chunk];
                    // SAFETY: `count` lines from t0 + i hold values 2p (and 2p + 1 when below
                    // klen); the masked store writes the `chunk` words of `words`.
                    unsafe {
                        let w = if count == 0 {
                            _mm512_setzero_si512()
                        } else {
                            let l = t0 + i;
                            interleave(at(l, 2 * p), second.then(|| at(l, 2 * p + 1)), count)
                        };
                        _mm512_mask_storeu_epi32(words.as_mut_ptr().cast(), mask, w);
                    }
                }
            }
        }
    } else if k_stride == 1 {
        // Lines run along k (a transposed right operand, a plain left one): 16 lines of 16
        // pair words at a time, converted whole and turned through registers, so each store
        // is a pair's words of neighbouring lines, as they lie in their tile.
        let chunk = tile.min(16);
        let mask = ((1u32 << chunk) - 1) as __mmask16;
        for t0 in (0..padded).step_by(tile) {
            let strip = &mut out[t0 * kpairs..(t0 + tile) * kpairs];
            for i in (0..tile).step_by(chunk) {
                let count = lines.saturating_sub(t0 + i).min(chunk);
                for p0 in (0..kpairs).step_by(16) {
                    let len = (klen - 2 * p0).min(32);
                    let mut rows = [_mm512_setzero_si512(); 16];
                    for (r, row) in rows.iter_mut().enumerate().take(count) {
                        // SAFETY: line t0 + i + r < lines holds values 2p0..2p0 + len.
                        *row = unsafe { line_words(at(t0 + i + r, 2 * p0), len) };
                    }
                    let cols = transpose16(rows);
                    for (w, col) in cols.iter().enumerate().take(kpairs - p0) {
                        let at = (p0 + w) * tile + i;
                        let words = &mut strip[at..at + chunk];
                        // SAFETY: the masked store writes the `chunk` words of `words`.
                        unsafe { _mm512_mask_storeu_epi32(words.as_mut_ptr().cast(), mask, *col) };
                    }
                }
            }
        }
    } else {
        for t0 in (0..padded).step_by(tile) {
            let strip = &mut out[t0 * kpairs..(t0 + tile) * kpairs];
            for i in 0..tile {
                if t0 + i < lines {
                    // SAFETY: line t0 + i holds klen values at stride k_stride; the strip
                    // holds word (p, i) at p · tile + i for every p < kpairs.
                    unsafe { pack_line(at(t0 + i, 0), k_stride, klen, &mut strip[i..], tile) };
                } else {
                    for p in 0..kpairs {
                        strip[p * tile + i] = 0;
                    }
                }
            }
        }
    }
}

/// The bf16 pairs `(x[i], y[i])` of `count` (≤ 16) elements of `x` and of `y` (zero without
/// `y`), as 16 words; words past `count` are zero.
///
/// # Safety
/// `x` and `y` must hold `count` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn interleave(x: *const f32, y: Option<*const f32>, count: usize) -> __m512i {
    let mask = ((1u32 << count) - 1) as __mmask16;
    // SAFETY: the masked loads read `count` floats, which the caller guarantees.
    let (lo, hi) = unsafe {
        let hi = match y {
            Some(y) => _mm512_maskz_loadu_ps(mask, y),
            None => _mm512_setzero_ps(),
        };
        (_mm512_maskz_loadu_ps(mask, x), hi)
    };
    // Lanes 0..16 hold x's bf16 values, 16..32 y's; word i takes lanes i and 16 + i.
    let both = bits(_mm512_cvtne2ps_pbh(hi, lo));
    const INDEX: [u16; 32] = {
        let mut index = [0u16; 32];
        let mut i = 0;
        while i < 16 {
            index[2 * i] = i as u16;
            index[2 * i + 1] = 16 + i as u16;
            i += 1;
        }
        index
    };
    // SAFETY: INDEX holds 64 bytes.
    let index = unsafe { _mm512_loadu_si512(INDEX.as_ptr().cast()) };
    _mm512_permutexvar_epi16(index, both)
}

/// The pair words of `len` (≤ 32) contiguous values from `x`: word `w` holds values `2w` and
/// `2w + 1` (low half first), values past `len` are zero.
///
/// # Safety
/// `x` must hold `len` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn line_words(x: *const f32, len: usize) -> __m512i {
    let (n0, n1) = (len.min(16), len.saturating_sub(16).min(16));
    // SAFETY: the masked loads read values 0..n0 and 16..16 + n1, all below len.
    unsafe {
        let x0 = _mm512_maskz_loadu_ps(((1u32 << n0) - 1) as __mmask16, x);
        let x1 = _mm512_maskz_loadu_ps(((1u32 << n1) - 1) as __mmask16, x.add(16));
        // Lanes 0..16 from x0, 16..32 from x1: word w is the pair at 2w.
        bits(_mm512_cvtne2ps_pbh(x1, x0))
    }
}

/// The transpose of a 16 × 16 matrix of words held as 16 row vectors: 32-bit and 64-bit
/// unpacks transpose the 4 × 4 blocks inside each 128-bit lane, then 128-bit shuffles move
/// the blocks (64 shuffles where storing word by word takes 256 stores).
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    let mut t = [_mm512_setzero_si512(); 16];
    for j in 0..8 {
        t[2 * j] = _mm512_unpacklo_epi32(r[2 * j], r[2 * j + 1]);
        t[2 * j + 1] = _mm512_unpackhi_epi32(r[2 * j], r[2 * j + 1]);
    }
    // u[4j + q], lane L: rows 4j..4j + 4 of column 4L + q.
    let mut u = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        u[4 * j] = _mm512_unpacklo_epi64(t[4 * j], t[4 * j + 2]);
        u[4 * j + 1] = _mm512_unpackhi_epi64(t[4 * j], t[4 * j + 2]);
        u[4 * j + 2] = _mm512_unpacklo_epi64(t[4 * j + 1], t[4 * j + 3]);
        u[4 * j + 3] = _mm512_unpackhi_epi64(t[4 * j + 1], t[4 * j + 3]);
    }
    // Column 4L + q gathers lane L of u[q], u[4 + q], u[8 + q], u[12 + q].
    let mut c = [_mm512_setzero_si512(); 16];
    for q in 0..4 {
        let low01 = _mm512_shuffle_i32x4::<0b01_00_01_00>(u[q], u[4 + q]);
        let low23 = _mm512_shuffle_i32x4::<0b01_00_01_00>(u[8 + q], u[12 + q]);
        let high01 = _mm512_shuffle_i32x4::<0b11_10_11_10>(u[q], u[4 + q]);
        let high23 = _mm512_shuffle_i32x4::<0b11_10_11_10>(u[8 + q], u[12 + q]);
        c[q] = _mm512_shuffle_i32x4::<0b10_00_10_00>(low01, low23);
        c[4 + q] = _mm512_shuffle_i32x4::<0b11_01_11_01>(low01, low23);
        c[8 + q] = _mm512_shuffle_i32x4::<0b10_00_10_00>(high01, high23);
        c[12 + q] = _mm512_shuffle_i32x4::<0b11_01_11_01>(high01, high23);
    }
    c
}

/// Packs `len` elements of a line at `stride` (neither operand's lines nor its `k` values
/// neighbours: no product of the plan, kept for completeness) as `len.div_ceil(2)` pair
/// words, word `p` at `out[p · step]` (the last pair of an odd `len` has a zero high half).
///
/// # Safety
/// The line must hold `len` elements.
unsafe fn pack_line(line: *const f32, stride: isize, len: usize, out: &mut [u32], step: usize) {
    let pairs = len.div_ceil(2);
    for (p, word) in out[..(pairs - 1) * step + 1]
        .iter_mut()
        .step_by(step)
        .enumerate()
    {
        // SAFETY: elements 2p and 2p + 1 (when below len) are on the line.
        let (a, b) = unsafe {
            let a = *line.offset(2 * p as isize * stride);
            let b = if 2 * p + 1 < len {
                *line.offset((2 * p + 1) as isize * stride)
            } else {
                0.0
            };
            (a, b)
        };
        *word = bf16_bits(a) | (bf16_bits(b) << 16);
    }
}

/// The bf16 bits of `x` (as [`graphc_ir::round_bf16`]) in the low half.
fn bf16_bits(x: f32) -> u32 {
    graphc_ir::round_bf16(x).to_bits() >> 16
}

/// A bf16 vector's bits.
#[target_feature(enable = "avx512f,avx512bf16")]
fn bits(v: __m512bh) -> __m512i {
    // SAFETY: both types are 64 bytes of plain bits.
    unsafe { std::mem::transmute::<__m512bh, __m512i>(v) }
}

/// A vector of pair words as bf16 values.
#[target_feature(enable = "avx512f,avx512bf16")]
fn pairs(v: __m512i) -> __m512bh {
    // SAFETY: both types are 64 bytes of plain bits.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

/// One `MR × NR` tile: the sums over `kpairs` pair words of a packed left strip `a`
/// (`[kpairs][MR]`) and right strip `b` (`[kpairs][NR]`), added to the result when
/// `accumulate`, else written; only `rows × cols` of the tile are stored.
///
/// # Safety
/// `a` and `b` must hold `kpairs · MR` and `kpairs · NR` words; `dst` must hold `rows` rows
/// of `cols` floats at row stride `ldc`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn kernel(
    kpairs: usize,
    a: *const u32,
    b: *const u32,
    dst: *mut f32,
    ldc: usize,
    accumulate: bool,
    (rows, cols): (usize, usize),
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for p in 0..kpairs {
        // SAFETY: p < kpairs keeps every read inside the strips.
        unsafe {
            let mut bv = [pairs(_mm512_setzero_si512()); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = pairs(_mm512_loadu_si512(b.add(p * NR + 16 * v).cast()));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = pairs(_mm512_set1_epi32(*a.add(p * MR + r) as i32));
                for (v, sum) in row.iter_mut().enumerate() {
                    *sum = _mm512_dpbf16_ps(*sum, av, bv[v]);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(rows) {
        for (v, &sum) in row.iter().enumerate() {
            let count = cols.saturating_sub(16 * v).min(16);
            if count == 0 {
                break;
            }
            let mask = ((1u32 << count) - 1) as __mmask16;
            // SAFETY: `count` columns from 16v of row r are inside the tile of dst.
            unsafe {
                let out = dst.add(r * ldc + 16 * v);
                let total = if accumulate {
                    _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, out))
                } else {
                    sum
                };
                _mm512_mask_storeu_ps(out, mask, total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 product of the rounded operands, summed in f64.
    fn reference(a: &[f32], b: &[f32], (m, n, k): (usize, usize, usize)) -> Vec<f32> {
        let r = |x: f32| f64::from(graphc_ir::round_bf16(x));
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|p| r(a[i * k + p]) * r(b[p * n + j])).sum();
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    /// `dst = lhs · rhs` as the plan runs it: the left operand packed whole (in two row
    /// pieces when `split`), then the result (in two row and two column pieces when `split`).
    ///
    /// # Safety
    /// As [`gemm_packed`] for the whole product, with `dst` row-major `m × n`.
    unsafe fn product(
        (m, n, k): (usize, usize, usize),
        dst: *mut f32,
        lhs: Operand,
        rhs: Operand,
        split: bool,
    ) {
        let mut a = vec![u32::MAX; lhs_words(m, k)];
        let mid = if split {
            (m / 2).next_multiple_of(MR).min(m)
        } else {
            m
        };
        let cols = if split { n / 2 } else { n };
        // SAFETY: the caller's guarantee; mid is a multiple of MR (or m).
        unsafe {
            pack_lhs(m, k, lhs, a.as_mut_ptr(), (0, mid));
            pack_lhs(m, k, lhs, a.as_mut_ptr(), (mid, m));
            for rows in [(0, mid), (mid, m)] {
                for block in [(0, cols), (cols, n)] {
                    gemm_packed((m, k), a.as_ptr(), rhs, dst, n, rows, block);
                }
            }
        }
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                h as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

        /// Random shapes (edges off the tiles), every layout, whole and split.
        #[test]
        fn random_products_match_the_rounded_operands_product(
            m in 1usize..70,
            n in 1usize..150,
            k in 1usize..600,
        ) {
            check((m, n, k));
        }
    }

    /// Every layout (plain, transposed and spaced operands) and odd sizes past the blocks, against
    /// the rounded operands' product.
    #[test]
    fn products_match_the_rounded_operands_product() {
        for shape in [
            (1, 1, 1),
            (9, 49, 3),
            (17, 100, 1031),
            (130, 490, 520),
            (8, 48, 2),
        ] {
            check(shape);
        }
    }

    /// `(m, n, k)` in every layout, whole and split, against [`reference`].
    fn check((m, n, k): (usize, usize, usize)) {
        if !available() {
            return;
        }
        {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let want = reference(&a, &b, (m, n, k));
            // The transposed copies, read through strides.
            let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
            // Every other float: neither stride is 1.
            let spaced =
                |x: &[f32]| -> Vec<f32> { x.iter().flat_map(|&v| [v, f32::NAN]).collect() };
            let (a2, b2) = (spaced(&a), spaced(&b));
            let lhs = [
                Operand {
                    ptr: a.as_ptr(),
                    cs: 1,
                    rs: k as isize,
                },
                Operand {
                    ptr: a2.as_ptr(),
                    cs: 2,
                    rs: 2 * k as isize,
                },
                Operand {
                    ptr: at.as_ptr(),
                    cs: m as isize,
                    rs: 1,
                },
            ];
            let rhs = [
                Operand {
                    ptr: b.as_ptr(),
                    cs: 1,
                    rs: n as isize,
                },
                Operand {
                    ptr: b2.as_ptr(),
                    cs: 2,
                    rs: 2 * n as isize,
                },
                Operand {
                    ptr: bt.as_ptr(),
                    cs: k as isize,
                    rs: 1,
                },
            ];
            for l in lhs {
                for (r, split) in rhs.into_iter().flat_map(|r| [(r, false), (r, true)]) {
                    let mut c = vec![f32::NAN; m * n];
                    // SAFETY: the CPU has AVX512_BF16; the operands and c hold their sizes.
                    unsafe { product((m, n, k), c.as_mut_ptr(), l, r, split) };
                    for (x, (got, want)) in c.iter().zip(&want).enumerate() {
                        let tol = 1e-5 * (k as f32).sqrt();
                        assert!(
                            (got - want).abs() <= tol,
                            "{m}x{n}x{k} ({}, {}) element {x}: {got} vs {want}",
                            l.rs,
                            r.rs
                        );
                    }
                }
            }
        }
    }
}
