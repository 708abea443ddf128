//! Matrix products: tiny ones as plain loops, thin ones with a transposed
//! right operand as dot products, the rest through the `gemm` crate with
//! transposes as strides, except that a large product with a transposed right
//! operand copies that operand transposed first (the `gemm` crate packs a
//! transposed right operand slowly: 130–270 GFLOP/s against ~400 without, on
//! two threads); products worth it are split in column (or row) blocks across
//! the [`team`].

use std::fmt;

use gemm::Parallelism;

use crate::team::{self, piece};

/// Smallest `m·n·k` worth splitting across threads. On the 2-vCPU VMs this
/// was tuned on, a block written by one core and read by the other can cost
/// more than computing it (the hypervisor may place the vCPUs on different
/// L3 domains): mlp_s's 0.5 M-MAC products split ran the step 8 % faster in
/// one session and 2× slower in another, so they stay on one thread.
const PARALLEL_MIN_MACS: usize = 1 << 21;
/// Products with at least this many multiply-adds are cut into twice as many
/// blocks as threads, if the blocks keep at least [`BALANCE_MIN_COLS`]
/// columns (mlp_l's 256×2048×2048 products gained 5–7 %; 2048×1024×256 in
/// 256-column blocks lost 8 %).
const BALANCE_MIN_MACS: usize = 1 << 28;
/// See [`BALANCE_MIN_MACS`].
const BALANCE_MIN_COLS: usize = 512;
/// Split by columns when there are at least this many, else by rows (thin
/// `n = 10` products split by rows ran 1.9× faster, by columns not at all).
const SPLIT_N_MIN: usize = 128;
/// Block sizes of a split are multiples of this (the microkernels' widths).
const BLOCK: usize = 16;
/// A transposed right operand is copied to a scratch buffer first when the
/// product has at least this many rows and the operand this many rows and
/// columns; each column block copies the operand rows it needs, then
/// multiplies (256×2048×2048 on two threads: 5.6 ms with the copy, 7.5 ms
/// without; 128×256×784 was faster without, 121 µs against 143).
const COPY_MIN_M: usize = 256;
/// See [`COPY_MIN_M`].
const COPY_MIN_SIDE: usize = 512;
/// Floats of padding after each row of the scratch copy of a transposed right operand: rows
/// `n` floats apart (a power of two in mlp_l) put the eight rows a tile writes in one L1
/// set. A 2048 × 2048 copy on one thread (Zen 4, loaded machine, best of 15): 5.7–12.7 ms
/// with 4 KiB pages and no padding, 3.4–3.5 in huge pages, 2.5–2.6 in huge pages padded.
const COPY_PAD: usize = 16;

/// Products of at most this many multiply-adds run as plain loops: the
/// `gemm` crate's dispatch alone cost 0.15–0.35 µs on logreg's 100×1×2 and
/// 1×2×100 products, a third of the whole step.
const LOOP_MAX_MACS: usize = 4096;

/// A product whose right operand is transposed (rows of both operands
/// contiguous along `k`) with at most this many columns and an inner
/// dimension of at most [`DOTS_MAX_K`] runs as dot products in 2 × 4 blocks
/// (the `gemm` crate ran 128×10×256 in 8.7 µs, dot products in 5.5 and
/// mlp_s's 64×10×128 in 1.6 against 2.4; at 256×10×2048 the crate was
/// faster again: 86 µs against 117).
const DOTS_MAX_N: usize = 16;
/// See [`DOTS_MAX_N`].
const DOTS_MAX_K: usize = 1024;

/// Products of bf16-rounded operands with fewer multiply-adds run in f32 on the rounded
/// values: mlp_m's (at most 26 M) ran its bf16 step at 452 steps/s on the bf16 kernels
/// against 751 in fp32 (Zen 4, 2 vCPUs); mlp_l's large ones (≥ 537 M) gain 1.6–2×.
const BF16_MIN_MACS: usize = 1 << 26;

/// How a product is spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Plain loops on the calling thread.
    Loop,
    /// One dot product per result element, rows split over this many pieces.
    Dots(usize),
    /// One call on the calling thread.
    One,
    /// Row blocks of the result, one per piece.
    Rows(usize),
    /// Column blocks of the result, one per piece.
    Cols(usize),
}

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
    /// Threading.
    pub split: Split,
    /// Copy the (transposed, `n × k` row-major) right operand to scratch as
    /// `k × n` row-major before the product.
    pub copy_rhs: bool,
    /// Run on `bf16gemm`'s kernels (a CPU with AVX512_BF16): both operands are rounded to
    /// bf16 while packed (either already rounded, or the unrounded sources of rounding
    /// nodes the product absorbs); the left operand is packed whole into the scratch
    /// space first, then the blocks are computed; transposes are read by the packing.
    pub bf16: bool,
}

/// Raw pointers shared by the pieces of a split product.
#[derive(Clone, Copy)]
struct Ptrs(*mut f32, *mut f32);

// SAFETY: the pieces of a split product write disjoint blocks of the result
// (or of the scratch copy) and only read everything else.
unsafe impl Send for Ptrs {}
// SAFETY: as above.
unsafe impl Sync for Ptrs {}

impl GemmCall {
    /// `op(a) · op(b)` for row-major `a` (`a_shape`) and `b` (`b_shape`), transposed as asked;
    /// `bf16_operands` when both hold values rounded to bf16.
    pub(crate) fn new(
        (a, a_shape, transpose_a): (usize, [usize; 2], bool),
        (b, b_shape, transpose_b): (usize, [usize; 2], bool),
        dst: usize,
        bf16_operands: bool,
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
        let threads = team::threads();
        let macs = m.saturating_mul(n).saturating_mul(k);
        let split = if macs <= LOOP_MAX_MACS {
            Split::Loop
        } else if transpose_b && !transpose_a && n <= DOTS_MAX_N && (16..=DOTS_MAX_K).contains(&k) {
            let pieces = if threads < 2 || macs < PARALLEL_MIN_MACS {
                1
            } else {
                threads.min(m.div_ceil(BLOCK))
            };
            Split::Dots(pieces)
        } else if threads < 2 || macs < PARALLEL_MIN_MACS {
            Split::One
        } else if n >= SPLIT_N_MIN {
            // Large products in more blocks than threads: a thread that finishes
            // early takes another (pieces of one product ran up to 2× apart).
            let balance = macs >= BALANCE_MIN_MACS && n >= 2 * threads * BALANCE_MIN_COLS;
            let pieces = if balance { 2 * threads } else { threads };
            Split::Cols(pieces.min(n / BLOCK))
        } else if m >= 2 * BLOCK {
            Split::Rows(threads.min(m / BLOCK))
        } else {
            Split::One
        };
        let bf16 = bf16_operands
            && bf16_kernels()
            && macs >= BF16_MIN_MACS
            && matches!(split, Split::One | Split::Rows(_) | Split::Cols(_));
        let copy_rhs =
            !bf16 && transpose_b && m >= COPY_MIN_M && n >= COPY_MIN_SIDE && k >= COPY_MIN_SIDE;
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
            split,
            copy_rhs,
            bf16,
        }
    }

    /// Floats of scratch space the product needs (for a bf16 product, as many as the words
    /// of its packed left operand).
    pub(crate) fn scratch(&self) -> usize {
        if self.bf16 {
            bf16_lhs_words(self.m, self.k)
        } else if self.copy_rhs {
            self.k.saturating_mul(self.copy_ld())
        } else {
            0
        }
    }

    /// Runs the product on the arena at `base`, with `scratch` holding at
    /// least [`GemmCall::scratch`] floats.
    ///
    /// # Safety
    /// `base` must point to an arena holding every operand and the result at
    /// the offsets and strides of `self`, with the result not overlapping
    /// either operand, and `scratch` must not overlap the arena.
    pub(crate) unsafe fn run(&self, base: *mut f32, scratch: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.bf16 {
            // SAFETY: the caller's guarantee, and scratch holds `self.scratch()` floats.
            unsafe { self.run_bf16(base, scratch) };
            return;
        }
        let mut call = *self;
        let mut rhs_base = base;
        if self.copy_rhs {
            assert!(
                scratch.len() >= self.scratch(),
                "a copied operand without its scratch"
            );
            call.rhs = 0;
            call.rhs_cs = 1;
            call.rhs_rs = self.copy_ld() as isize;
            rhs_base = scratch.as_mut_ptr();
        }
        // The copied operand is n × k row-major: row j of it is column j of
        // op(b), so the columns c0..c1 of the result need its rows c0..c1.
        let (n, k, at, ld) = (self.n, self.k, self.rhs, self.copy_ld());
        let copy = |p: Ptrs, (c0, c1): (usize, usize)| {
            if self.copy_rhs {
                // SAFETY: rows c0..c1 of the n × k operand are inside the arena;
                // they land in columns c0..c1 of the k rows (`ld` apart) of the scratch.
                unsafe { transpose(p.0.add(at), p.1, (n, k), ld, (c0, c1)) };
            }
        };
        let ptrs = Ptrs(base, rhs_base);
        match self.split {
            // SAFETY: the caller's guarantee covers the whole product.
            Split::Loop => unsafe { call.small(base, rhs_base) },
            Split::Dots(pieces) => team::run(pieces, &|i| {
                let p = ptrs;
                // SAFETY: as above; pieces write disjoint row blocks.
                unsafe { call.dots(p.0, piece(call.m, pieces, i)) }
            }),
            Split::One => {
                copy(ptrs, (0, n));
                // SAFETY: as above.
                unsafe { call.block(base, rhs_base, (0, call.m), (0, call.n)) }
            }
            Split::Rows(pieces) => {
                team::run(pieces, &|i| copy(ptrs, piece(n, pieces, i)));
                team::run(pieces, &|i| {
                    let p = ptrs;
                    // SAFETY: as above; pieces write disjoint row blocks.
                    unsafe { call.block(p.0, p.1, piece(call.m, pieces, i), (0, call.n)) }
                })
            }
            // Each piece copies the operand columns its block needs, then
            // multiplies while they are in its cache.
            Split::Cols(pieces) => team::run(pieces, &|i| {
                let p = ptrs;
                let cols = piece(call.n, pieces, i);
                copy(p, cols);
                // SAFETY: as above; pieces write disjoint column blocks (of the
                // result and of the scratch copy).
                unsafe { call.block(p.0, p.1, (0, call.m), cols) }
            }),
        }
    }

    /// Row stride of the scratch copy of a transposed right operand.
    fn copy_ld(&self) -> usize {
        self.n.next_multiple_of(BLOCK).saturating_add(COPY_PAD)
    }

    /// The whole product as plain loops. Each result element sums its
    /// products in `k` order from `0.0`, exactly as the interpreter does,
    /// when `k < 16`; longer sums run in four interleaved partial sums
    /// (logreg's 1×2×100 weight gradient: a 100-long chain of dependent adds
    /// was 0.17 µs of a 0.9 µs step).
    ///
    /// # Safety
    /// As [`GemmCall::run`].
    unsafe fn small(&self, base: *mut f32, rhs_base: *mut f32) {
        let (a_step, b_step) = (self.lhs_cs, self.rhs_rs);
        for i in 0..self.m {
            for j in 0..self.n {
                // SAFETY: i < m, j < n and every p < k keep both reads inside the
                // operands, which the caller guarantees are in the arena.
                unsafe {
                    let mut a = base.add(self.lhs).offset(i as isize * self.lhs_rs);
                    let mut b = rhs_base.add(self.rhs).offset(j as isize * self.rhs_cs);
                    let mut next = || {
                        let t = *a * *b;
                        a = a.wrapping_offset(a_step);
                        b = b.wrapping_offset(b_step);
                        t
                    };
                    let mut acc = 0.0f32;
                    let mut p = 0;
                    if self.k >= 16 {
                        let mut part = [0.0f32; 4];
                        while p + 4 <= self.k {
                            for s in part.iter_mut() {
                                *s += next();
                            }
                            p += 4;
                        }
                        acc = (part[0] + part[1]) + (part[2] + part[3]);
                    }
                    while p < self.k {
                        acc += next();
                        p += 1;
                    }
                    *base.add(self.dst + i * self.n + j) = acc;
                }
            }
        }
    }

    /// Rows `r0..r1` of the result as dot products of contiguous rows of the
    /// left operand and of the (transposed) right operand, in blocks of two
    /// left rows by four right rows (each right-operand load feeds two sums).
    ///
    /// # Safety
    /// As [`GemmCall::run`]; `lhs_cs` and `rhs_rs` must be 1.
    unsafe fn dots(&self, base: *mut f32, (r0, r1): (usize, usize)) {
        let mut i = r0;
        while i < r1 {
            let rows = (r1 - i).min(2);
            let mut j = 0;
            while j < self.n {
                let group = (self.n - j).min(4);
                // SAFETY: rows i..i + rows of the left operand and rows j..j + group
                // of the right one hold k contiguous floats inside the arena (the
                // caller's guarantee); a short block repeats its last row, and only
                // rows i..i + rows, columns j..j + group of the result are written.
                unsafe {
                    let lhs = |r: usize| {
                        base.add(self.lhs)
                            .offset((i + r.min(rows - 1)) as isize * self.lhs_rs)
                            .cast_const()
                    };
                    let rhs = |r: usize| {
                        base.add(self.rhs)
                            .offset((j + r.min(group - 1)) as isize * self.rhs_cs)
                            .cast_const()
                    };
                    let sums = dot2x4([lhs(0), lhs(1)], [rhs(0), rhs(1), rhs(2), rhs(3)], self.k);
                    for (r, row) in sums.iter().take(rows).enumerate() {
                        let out = base.add(self.dst + (i + r) * self.n + j);
                        for (c, &v) in row.iter().take(group).enumerate() {
                            *out.add(c) = v;
                        }
                    }
                }
                j += group;
            }
            i += rows;
        }
    }

    /// The product on `bf16gemm`'s kernels: the left operand packed once into `scratch` (by
    /// row pieces), then the result's blocks, each thread packing the right operand's
    /// panels of its own columns.
    ///
    /// # Safety
    /// As [`GemmCall::run`], with `self.bf16` set (only where `bf16gemm::available()`).
    #[cfg(target_arch = "x86_64")]
    unsafe fn run_bf16(&self, base: *mut f32, scratch: &mut [f32]) {
        use crate::bf16gemm::{gemm_packed, pack_lhs, Operand};
        let (m, n, k) = (self.m, self.n, self.k);
        let words = bf16_lhs_words(m, k);
        assert!(scratch.len() >= words, "bf16 product without its scratch");
        // The packed words live in the f32 scratch (same size and alignment).
        let ptrs = Ptrs(base, scratch.as_mut_ptr());
        // Operand `at` with its strides; pointers are made per piece from the shared `Ptrs`.
        let operand = |p: Ptrs, at: usize, (cs, rs): (isize, isize)| Operand {
            ptr: p.0.wrapping_add(at).cast_const(),
            cs,
            rs,
        };
        // Row ranges start at multiples of 16 (`team::piece`), so of bf16gemm's MR; pieces
        // pack disjoint strips and write disjoint blocks of the result.
        let pack = |p: Ptrs, rows: (usize, usize)| {
            let lhs = operand(p, self.lhs, (self.lhs_cs, self.lhs_rs));
            // SAFETY: `bf16` implies the CPU has AVX512_BF16; the caller guarantees the left
            // operand lies inside the arena; scratch holds `words` words.
            unsafe { pack_lhs(m, k, lhs, p.1.cast::<u32>(), rows) }
        };
        let compute = |p: Ptrs, rows: (usize, usize), cols: (usize, usize)| {
            let rhs = operand(p, self.rhs, (self.rhs_cs, self.rhs_rs));
            // SAFETY: as above; the packed strips of `rows` were written before, and the
            // result (inside the arena, apart from the operands) is not the scratch.
            unsafe {
                gemm_packed(
                    (m, k),
                    p.1.cast::<u32>().cast_const(),
                    rhs,
                    p.0.add(self.dst),
                    n,
                    rows,
                    cols,
                )
            }
        };
        match self.split {
            Split::Loop | Split::Dots(_) | Split::One => {
                pack(ptrs, (0, m));
                compute(ptrs, (0, m), (0, n));
            }
            Split::Rows(pieces) => team::run(pieces, &|i| {
                let rows = piece(m, pieces, i);
                pack(ptrs, rows);
                compute(ptrs, rows, (0, n));
            }),
            Split::Cols(pieces) => {
                team::run(pieces, &|i| pack(ptrs, piece(m, pieces, i)));
                team::run(pieces, &|i| compute(ptrs, (0, m), piece(n, pieces, i)));
            }
        }
    }

    /// Rows `r0..r1`, columns `c0..c1` of the result on this thread, with the
    /// right operand read from `rhs_base` (the arena or the scratch copy).
    ///
    /// # Safety
    /// As [`GemmCall::run`]; the block must be inside the result.
    unsafe fn block(
        &self,
        base: *mut f32,
        rhs_base: *mut f32,
        (r0, r1): (usize, usize),
        (c0, c1): (usize, usize),
    ) {
        if r0 >= r1 || c0 >= c1 {
            return;
        }
        // SAFETY: the caller guarantees the offsets and strides stay inside the
        // arena (or the scratch copy) and that `dst` does not overlap the operands.
        unsafe {
            gemm::gemm(
                r1 - r0,
                c1 - c0,
                self.k,
                base.add(self.dst + r0 * self.n + c0),
                1,
                self.n as isize,
                false,
                base.add(self.lhs)
                    .offset(r0 as isize * self.lhs_rs)
                    .cast_const(),
                self.lhs_cs,
                self.lhs_rs,
                rhs_base
                    .add(self.rhs)
                    .offset(c0 as isize * self.rhs_cs)
                    .cast_const(),
                self.rhs_cs,
                self.rhs_rs,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    }
}

impl fmt::Display for GemmCall {
    /// `m×n×k`, transposes (`T` where an operand is read by its row stride 1),
    /// where each operand lies with its (column, row) strides, and the threading.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}x{} {}{} dst {} lhs {} ({}, {}) rhs {} ({}, {}), ",
            self.m,
            self.n,
            self.k,
            if self.lhs_rs == 1 { 'T' } else { 'N' },
            if self.rhs_rs == 1 { 'T' } else { 'N' },
            self.dst,
            self.lhs,
            self.lhs_cs,
            self.lhs_rs,
            self.rhs,
            self.rhs_cs,
            self.rhs_rs,
        )?;
        match self.split {
            Split::Loop => f.write_str("plain loops")?,
            Split::Dots(p) => write!(f, "dot products, {p} row blocks")?,
            Split::One => f.write_str("1 thread")?,
            Split::Rows(p) => write!(f, "{p} row blocks")?,
            Split::Cols(p) => write!(f, "{p} column blocks")?,
        }
        if self.copy_rhs {
            f.write_str(", rhs copied")?;
        }
        if self.bf16 {
            f.write_str(", bf16")?;
        }
        Ok(())
    }
}

/// Words of a bf16 product's packed left operand (0 where there are no bf16 kernels).
fn bf16_lhs_words(m: usize, k: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        crate::bf16gemm::lhs_words(m, k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, k);
        0
    }
}

// Split pieces start at multiples of BLOCK: bf16gemm packs its left operand in strips of MR.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(BLOCK.is_multiple_of(crate::bf16gemm::MR));

/// Whether products of bf16-rounded operands run on `bf16gemm`'s kernels here.
pub(crate) fn bf16_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::bf16gemm::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The eight dot products of `a[0]`, `a[1]` with `b[0..4]`, each of `k` floats.
///
/// # Safety
/// Every pointer must hold `k` floats.
unsafe fn dot2x4(a: [*const f32; 2], b: [*const f32; 4], k: usize) -> [[f32; 4]; 2] {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *AVX512.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f")) {
            // SAFETY: the CPU supports AVX-512F; the caller guarantees the lengths.
            return unsafe { dot2x4_avx512(a, b, k) };
        }
    }
    a.map(|a| {
        b.map(|b| {
            let mut acc = [0.0f32; 8];
            let mut p = 0;
            while p + 8 <= k {
                for (l, x) in acc.iter_mut().enumerate() {
                    // SAFETY: p + l < k.
                    *x += unsafe { *a.add(p + l) * *b.add(p + l) };
                }
                p += 8;
            }
            let mut s = acc.iter().sum::<f32>();
            while p < k {
                // SAFETY: p < k.
                s += unsafe { *a.add(p) * *b.add(p) };
                p += 1;
            }
            s
        })
    })
}

/// [`dot2x4`] in 512-bit registers: six loads feed eight fused multiply-adds.
///
/// # Safety
/// The CPU must support AVX-512F; every pointer must hold `k` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot2x4_avx512(a: [*const f32; 2], b: [*const f32; 4], k: usize) -> [[f32; 4]; 2] {
    use std::arch::x86_64::*;
    // SAFETY: full loads start below k - 15 and the masked tail stays below k,
    // inside every operand.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 4]; 2];
        let mut p = 0;
        while p < k {
            let mask: __mmask16 = if k - p >= 16 {
                0xffff
            } else {
                ((1u32 << (k - p)) - 1) as u16
            };
            let x = a.map(|a| _mm512_maskz_loadu_ps(mask, a.add(p)));
            for (c, &row) in b.iter().enumerate() {
                let y = _mm512_maskz_loadu_ps(mask, row.add(p));
                for r in 0..2 {
                    acc[r][c] = _mm512_fmadd_ps(x[r], y, acc[r][c]);
                }
            }
            p += 16;
        }
        acc.map(|row| {
            let mut sums = [0.0f32; 4];
            _mm_storeu_ps(sums.as_mut_ptr(), sum_lanes(row));
            sums
        })
    }
}

/// The lane sums of four 512-bit vectors, as one 128-bit vector: pairs are
/// interleaved and added, then the four 128-bit quarters (15 instructions
/// where four separate horizontal sums take about 32).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_lanes(v: [std::arch::x86_64::__m512; 4]) -> std::arch::x86_64::__m128 {
    use std::arch::x86_64::*;
    // Per 128-bit quarter: (v0[0]+v0[2], v1[0]+v1[2], v0[1]+v0[3], v1[1]+v1[3]).
    let pair = |a, b| _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    let (t0, t1) = (pair(v[0], v[1]), pair(v[2], v[3]));
    // Per quarter: (v0, v1, v2, v3) partial sums.
    let t = _mm512_add_ps(
        _mm512_shuffle_ps::<0b01_00_01_00>(t0, t1),
        _mm512_shuffle_ps::<0b11_10_11_10>(t0, t1),
    );
    let low = _mm_add_ps(_mm512_castps512_ps128(t), _mm512_extractf32x4_ps::<1>(t));
    let high = _mm_add_ps(
        _mm512_extractf32x4_ps::<2>(t),
        _mm512_extractf32x4_ps::<3>(t),
    );
    _mm_add_ps(low, high)
}

/// Writes rows `r0..r1` of the `rows × cols` row-major `src` as columns of
/// the `cols` rows of `dst`, `ld ≥ rows` floats apart, in 8 × 8 tiles through
/// registers (16 × 16 tiles of power-of-two-strided rows overflow an L1 set:
/// 2048 × 2048 took 1.8 ms on two threads against 1.05 ms in 8 × 8 tiles).
///
/// # Safety
/// `src` must hold `rows × cols` floats and `dst` `cols × ld`, not overlapping.
pub(crate) unsafe fn transpose(
    src: *const f32,
    dst: *mut f32,
    (rows, cols): (usize, usize),
    ld: usize,
    (r0, r1): (usize, usize),
) {
    debug_assert!(ld >= rows);
    const TILE: usize = 8;
    let mut rb = r0;
    while rb < r1 {
        let re = (rb + TILE).min(r1);
        let mut cb = 0;
        while cb < cols {
            let ce = (cb + TILE).min(cols);
            if re - rb == TILE && ce - cb == TILE {
                let mut tile = [[0.0f32; TILE]; TILE];
                for (r, row) in tile.iter_mut().enumerate() {
                    for (c, v) in row.iter_mut().enumerate() {
                        // SAFETY: rb + r < rows and cb + c < cols.
                        *v = unsafe { *src.add((rb + r) * cols + cb + c) };
                    }
                }
                for c in 0..TILE {
                    for (r, row) in tile.iter().enumerate() {
                        // SAFETY: cb + c < cols and rb + r < rows.
                        unsafe { *dst.add((cb + c) * ld + rb + r) = row[c] };
                    }
                }
            } else {
                for c in cb..ce {
                    for r in rb..re {
                        // SAFETY: r < rows and c < cols, so both indices are in bounds.
                        unsafe { *dst.add(c * ld + r) = *src.add(r * cols + c) };
                    }
                }
            }
            cb = ce;
        }
        rb = re;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_range_in_aligned_blocks() {
        for (len, pieces) in [(10, 2), (256, 2), (2048, 3), (17, 4)] {
            let ranges: Vec<_> = (0..pieces).map(|i| piece(len, pieces, i)).collect();
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[pieces - 1].1, len);
            for w in ranges.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert!(w[0].1 % BLOCK == 0 || w[0].1 == len);
            }
        }
    }

    #[test]
    fn transpose_writes_every_element_once() {
        let (rows, cols) = (37, 21);
        let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        for ld in [rows, rows + 16] {
            let mut dst = vec![-1.0f32; cols * ld];
            // SAFETY: src holds rows × cols floats, dst cols × ld.
            unsafe {
                transpose(src.as_ptr(), dst.as_mut_ptr(), (rows, cols), ld, (0, 20));
                transpose(src.as_ptr(), dst.as_mut_ptr(), (rows, cols), ld, (20, rows));
            }
            for c in 0..cols {
                for r in 0..ld {
                    let want = if r < rows { src[r * cols + c] } else { -1.0 };
                    assert_eq!(dst[c * ld + r], want, "ld {ld}");
                }
            }
        }
    }
}
