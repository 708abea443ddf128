//! Winograd F(2×2, 3×3) for the 2-d, 3×3, stride-1, dilation-1 convolutions
//! and their two gradients on CPUs with [`crate::convkern`]'s vector kernels
//! (AVX-512 or AVX2): 16 multiplies per 2×2 outputs and channel pair instead
//! of 36.
//!
//! All three products are one correlation of a source plane with a 3×3
//! kernel, `dst[i][j] = Σ_{a,b} src[i + oy + a][j + ox + b] · g[a][b]` (the
//! source zero outside itself): the forward pass with `x` as source and
//! `oy = −pad`; the input gradient with `dy` as source, the kernel flipped and
//! its channels swapped, and `oy = pad − 2`. The destination is cut in 2×2
//! tiles; tile `t` reads the 4×4 source patch `d` at its origin, and with
//! Lavin and Gray's matrices (`BT`, `G`, `AT` below)
//!
//! - `V[ξ][c][t] = (Bᵀ d B)[ξ]` (input transform, a vector of tiles at a
//!   time: the source rows are first split into even and odd columns, so a
//!   tile's four columns are four unaligned loads),
//! - `U[ξ][k][c] = (G g G^T)[ξ]` (kernel transform, once per step),
//! - `M[ξ] = U[ξ] · V[ξ]`, 16 products `[K × C] · [C × tiles]` on
//!   [`crate::convkern::bcast`],
//! - the tile's outputs `Aᵀ M A` (output transform, interleaved back into rows).
//!
//! The weight gradient differentiates that: with `Ŷ = A dy Aᵀ` per tile (`dy`
//! its 2×2 outputs' gradient), `∂L/∂U[ξ][k][c] = Σ_tiles Ŷ[ξ][k][t] · V[ξ][c][t]`
//! (16 products summed over the tiles of several samples on
//! [`crate::convkern::dot`]) and `∂L/∂g = Gᵀ (∂L/∂U) G`.
//!
//! Every coefficient is 0, ±1 or ±½: on values whose sums are exact (a grid
//! of multiples of a power of two, small enough) the results are the exact
//! ones, as a GEMM's are. Rounding otherwise: docs/architecture.md gives the
//! bound the tests use.

#[cfg(target_arch = "x86_64")]
use crate::conv::{even_piece, Base};
use crate::conv::{ConvAxis, ConvKind};
#[cfg(target_arch = "x86_64")]
use crate::convkern::{Simd, Vectorized};

/// Whether 3×3 convolutions may run in the Winograd domain: unless
/// `GRAPHC_WINOGRAD=0` (to measure or compare against the patch-matrix path).
pub(crate) fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("GRAPHC_WINOGRAD").as_deref() != Ok("0"))
}

/// Output channels per group a convolution needs to run in the Winograd
/// domain (the rows of its forward products). With fewer, the golden
/// `tests/goldens/cnn/lenet_mixed` (a 4 → 6 channel layer trained with Adam)
/// drifted past its tolerance (rtol 1e-3 on the weights: Adam turns the
/// different rounding of near-zero gradients into whole steps), and the
/// transforms cost more per product.
const MIN_OUT_CHANNELS: usize = 8;

/// Input channels per group a forward step or input gradient needs to run in
/// the Winograd domain: with fewer, its products are tiny and the output
/// channels' transforms dominate (convnet's first layer, 3 → 32 channels, on
/// Zen 1: forward 1.28–1.33 ms against the patch matrix's 0.90). Its weight
/// gradient keeps the form (1.12 against 1.31 ms on the `gemm` crate) unless
/// the shifted form runs it (`ConvStep::new`).
pub(crate) const MIN_IN_CHANNELS: usize = 8;

/// Floats of one piece's weight-gradient tile (transformed inputs and output
/// gradients of several samples) at most, unless one sample needs more. The
/// dot products sum over all the tile's tiles before their horizontal sums:
/// at 2^17 (one sample of convnet's 64-channel layers, 64 tiles) those took
/// conv3's and conv4's weight gradients 3.3 and 6.25 ms on Zen 1, at 2^19
/// (4–5 samples) 2.5 and 4.7. convnet's arena stays 7.40 M floats (its peak
/// is elsewhere; at 2^20 it grows to 9.63 M), under issue 12's 11.25 M.
const WEIGHT_TILE_FLOATS: usize = 1 << 19;

/// Floats of a cache line.
const LINE: usize = 16;

/// `len` floats rounded up to whole cache lines, plus `extra` floats. The 16
/// planes `V[ξ]` (and `M[ξ]`, `Ŷ[ξ]`) are one such length apart, with one
/// extra line: convnet's planes are multiples of 4 KiB (`32 · 256` floats), so
/// the transforms' 16 stores (or loads) of one tile vector all hit the same
/// L1 set, 16 ways into an 8-way cache.
fn line_pad(len: usize, extra: usize) -> Option<usize> {
    len.checked_next_multiple_of(LINE)?.checked_add(extra)
}

/// `G` (4 × 3): the kernel transform `U = G g Gᵀ`.
#[cfg(target_arch = "x86_64")]
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// A convolution's Winograd form: the correlation's planes and tiles, and the
/// scratch layout. `k` is the destination's channels per group, `c` the
/// source's (for the weight gradient: `k` those of `dy`, `c` those of `x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Winograd {
    /// Source plane `(rows, cols)`.
    src: (usize, usize),
    /// Destination plane `(rows, cols)` (for the weight gradient: `dy`'s).
    dst: (usize, usize),
    /// Source position of destination `(0, 0)`'s first tap.
    off: (isize, isize),
    /// Tiles `(rows, cols)`: `ceil(dst / 2)`.
    tiles: (usize, usize),
    /// Destination channels per group.
    k: usize,
    /// Source channels per group.
    c: usize,
    /// Channel groups.
    groups: usize,
    /// Samples a weight gradient transforms at once (1 otherwise).
    samples: usize,
    /// Floats from the split columns to `V` (the split columns' floats,
    /// rounded up to a cache line).
    split_room: usize,
    /// Floats between `V[ξ]` and `V[ξ + 1]`: see [`line_pad`].
    vs: usize,
    /// Floats between `M[ξ]` (or `Ŷ[ξ]`) and the next.
    ms: usize,
    /// Floats of the transformed kernels shared by the pieces (0 for the
    /// weight gradient).
    shared: usize,
    /// Floats of one piece's scratch.
    piece: usize,
}

impl Winograd {
    /// The Winograd form of a convolution of `kind` over `axes` with `cg`
    /// input and `og` output channels per group in `groups` groups, if the
    /// window is 2-d, 3×3, with stride and dilation 1 and at least
    /// [`MIN_OUT_CHANNELS`] output channels per group (and, unless a weight
    /// gradient, [`MIN_IN_CHANNELS`] input channels); `None` otherwise or
    /// when a size overflows.
    pub(crate) fn new(
        kind: ConvKind,
        axes: &[ConvAxis],
        (cg, og, groups): (usize, usize, usize),
        n: usize,
    ) -> Option<Winograd> {
        let [a0, a1] = axes else { return None };
        let few_inputs = match kind {
            ConvKind::Forward | ConvKind::InputGrad => cg < MIN_IN_CHANNELS,
            ConvKind::WeightGrad => false,
        };
        if og < MIN_OUT_CHANNELS || few_inputs {
            return None;
        }
        if [a0, a1]
            .iter()
            .any(|a| a.kernel != 3 || a.stride != 1 || a.dilation != 1)
        {
            return None;
        }
        let pad = |a: &ConvAxis| isize::try_from(a.pad_lo).ok();
        let (src, dst, off, k, c) = match kind {
            ConvKind::Forward | ConvKind::WeightGrad => (
                (a0.input, a1.input),
                (a0.output, a1.output),
                (-pad(a0)?, -pad(a1)?),
                og,
                cg,
            ),
            ConvKind::InputGrad => (
                (a0.output, a1.output),
                (a0.input, a1.input),
                (pad(a0)? - 2, pad(a1)? - 2),
                cg,
                og,
            ),
        };
        let tiles = (dst.0.div_ceil(2), dst.1.div_ceil(2));
        let t = tiles.0.checked_mul(tiles.1)?;
        // Even and odd columns of the source rows one channel's tiles read.
        let split = tiles
            .0
            .checked_mul(2)?
            .checked_add(2)?
            .checked_mul(tiles.1.checked_add(1)?)?
            .checked_mul(2)?;
        let kc = 16usize.checked_mul(k)?.checked_mul(c)?;
        let kernels = kc.checked_mul(groups)?;
        let per_sample = 16usize.checked_mul(k.checked_add(c)?)?.checked_mul(t)?;
        let samples = match kind {
            ConvKind::Forward | ConvKind::InputGrad => 1,
            ConvKind::WeightGrad => (WEIGHT_TILE_FLOATS / per_sample.max(1)).clamp(1, n.max(1)),
        };
        // Tiles of one transformed channel (of `samples` samples).
        let row = t.checked_mul(samples)?;
        let (split_room, vs, ms) = (
            line_pad(split, 0)?,
            line_pad(c.checked_mul(row)?, LINE)?,
            line_pad(k.checked_mul(row)?, LINE)?,
        );
        let tiles_len = 16usize.checked_mul(vs.checked_add(ms)?)?;
        let own = split_room.checked_add(tiles_len)?;
        let (shared, piece) = match kind {
            ConvKind::Forward | ConvKind::InputGrad => (kernels, own),
            ConvKind::WeightGrad => (0, kernels.checked_add(own)?),
        };
        Some(Winograd {
            src,
            dst,
            off,
            tiles,
            k,
            c,
            groups,
            samples,
            split_room,
            vs,
            ms,
            shared,
            piece,
        })
    }

    /// Floats of scratch for `pieces` pieces.
    pub(crate) fn scratch(&self, pieces: usize) -> Option<usize> {
        self.piece.checked_mul(pieces)?.checked_add(self.shared)
    }
}

/// `G g Gᵀ`, row-major 4 × 4.
#[cfg(target_arch = "x86_64")]
fn kernel_transform(g: &[[f32; 3]; 3]) -> [f32; 16] {
    let mut t = [[0.0f32; 3]; 4];
    for (i, t) in t.iter_mut().enumerate() {
        for (b, t) in t.iter_mut().enumerate() {
            *t = G[i][0] * g[0][b] + G[i][1] * g[1][b] + G[i][2] * g[2][b];
        }
    }
    let mut u = [0.0f32; 16];
    for (i, t) in t.iter().enumerate() {
        for (j, g) in G.iter().enumerate() {
            u[4 * i + j] = t[0] * g[0] + t[1] * g[1] + t[2] * g[2];
        }
    }
    u
}

/// `Gᵀ m G`, the gradient of [`kernel_transform`]: row-major 3 × 3.
#[cfg(target_arch = "x86_64")]
fn kernel_gradient(m: &[f32; 16]) -> [f32; 9] {
    let mut t = [[0.0f32; 4]; 3];
    for (a, t) in t.iter_mut().enumerate() {
        for (j, t) in t.iter_mut().enumerate() {
            *t = G[0][a] * m[j] + G[1][a] * m[4 + j] + G[2][a] * m[8 + j] + G[3][a] * m[12 + j];
        }
    }
    let mut out = [0.0f32; 9];
    for (a, t) in t.iter().enumerate() {
        for b in 0..3 {
            out[3 * a + b] = t[0] * G[0][b] + t[1] * G[1][b] + t[2] * G[2][b] + t[3] * G[3][b];
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
impl Winograd {
    /// Tiles per sample.
    fn tile_count(&self) -> usize {
        self.tiles.0 * self.tiles.1
    }

    /// Whether two rows of tiles share a vector of `lanes` (rows of at most
    /// half a vector, as a 16×16 plane's 8 tiles in 16 lanes: one row alone
    /// would leave half the lanes idle).
    fn paired(&self, lanes: usize) -> bool {
        2 * self.tiles.1 <= lanes
    }

    /// Vectors of `lanes` tiles per channel: [`Self::tile_vec`]'s range.
    fn tile_vecs(&self, lanes: usize) -> usize {
        let (th, tw) = self.tiles;
        if self.paired(lanes) {
            th.div_ceil(2)
        } else {
            th * tw.div_ceil(lanes)
        }
    }

    /// Vector `i` of a channel's tiles, `i < tile_vecs(lanes)`.
    fn tile_vec(&self, lanes: usize, i: usize) -> TileVec {
        let (th, tw) = self.tiles;
        if self.paired(lanes) {
            let ty = 2 * i;
            let next = if ty + 1 < th { tw } else { 0 };
            TileVec {
                ty,
                tx0: 0,
                first: tw,
                next,
            }
        } else {
            let per_row = tw.div_ceil(lanes);
            let (ty, tx0) = (i / per_row, lanes * (i % per_row));
            TileVec {
                ty,
                tx0,
                first: (tw - tx0).min(lanes),
                next: 0,
            }
        }
    }

    /// Runs `step` (whose `winograd` is `self`) on the arena at `base`.
    ///
    /// # Safety
    /// As [`crate::conv::ConvStep::run`]; `step.isa` is set.
    pub(crate) unsafe fn run(&self, step: &crate::conv::ConvStep, base: *mut f32) {
        let Some(isa) = step.isa else {
            unreachable!("a Winograd form is made only with an instruction set")
        };
        if step.kind != ConvKind::WeightGrad {
            // SAFETY: the caller's guarantee: the weight and the scratch's
            // shared part are inside the arena.
            unsafe { self.kernels(step, base) };
        }
        let shared = Base(base);
        let job = |piece: usize| {
            let (lo, hi) = even_piece(step.n, step.pieces, piece);
            // SAFETY: the caller's guarantee; pieces cover disjoint samples
            // and use their own scratch.
            unsafe {
                isa.run(Samples {
                    form: self,
                    step,
                    base: shared,
                    piece,
                    range: (lo, hi),
                })
            }
        };
        if step.pieces <= 1 {
            job(0);
        } else {
            crate::team::run(step.pieces, &job);
        }
        if step.kind == ConvKind::WeightGrad {
            // SAFETY: the pieces' sums and the weight gradient are inside the
            // arena, apart (the caller's guarantee).
            unsafe { self.weight_gradient(step, base) };
        }
    }

    /// The piece's scratch.
    ///
    /// # Safety
    /// `piece < step.pieces` and the scratch inside the arena at `base`.
    unsafe fn piece_scratch(
        &self,
        step: &crate::conv::ConvStep,
        base: *mut f32,
        piece: usize,
    ) -> *mut f32 {
        // SAFETY: the caller's guarantee.
        unsafe { base.add(step.scratch + self.shared + piece * self.piece) }
    }

    /// The transformed kernels `U[g][ξ][k][c]` into the scratch's shared part.
    ///
    /// # Safety
    /// As [`Self::run`], for a forward step or an input gradient.
    unsafe fn kernels(&self, step: &crate::conv::ConvStep, base: *mut f32) {
        let (og, cg) = (step.sizes.og, step.sizes.cg);
        let (k, c) = (self.k, self.c);
        // SAFETY: g < groups, kd < k, cs < c index w's `[O, C/G, 3, 3]` floats
        // and the shared part's groups · 16 · k · c floats.
        unsafe {
            let w = base.add(step.w).cast_const();
            let u = base.add(step.scratch);
            for g in 0..self.groups {
                for kd in 0..k {
                    for cs in 0..c {
                        let mut gk = [[0.0f32; 3]; 3];
                        for (a, row) in gk.iter_mut().enumerate() {
                            for (b, v) in row.iter_mut().enumerate() {
                                *v = match step.kind {
                                    ConvKind::Forward => {
                                        *w.add(((g * og + kd) * cg + cs) * 9 + 3 * a + b)
                                    }
                                    ConvKind::InputGrad | ConvKind::WeightGrad => {
                                        *w.add(((g * og + cs) * cg + kd) * 9 + 3 * (2 - a) + 2 - b)
                                    }
                                };
                            }
                        }
                        for (xi, &v) in kernel_transform(&gk).iter().enumerate() {
                            *u.add(((g * 16 + xi) * k + kd) * c + cs) = v;
                        }
                    }
                }
            }
        }
    }

    /// The pieces' sums of `∂L/∂U` added up and transformed into the weight
    /// gradient.
    ///
    /// # Safety
    /// As [`Self::run`], for a weight gradient, after every piece ran.
    unsafe fn weight_gradient(&self, step: &crate::conv::ConvStep, base: *mut f32) {
        let (k, c) = (self.k, self.c);
        let len = self.groups * 16 * k * c;
        // SAFETY: each piece's sums are its scratch's first `len` floats; the
        // weight gradient holds groups · k · c · 9 floats.
        unsafe {
            let sums = self.piece_scratch(step, base, 0);
            for p in 1..step.pieces {
                let other = self.piece_scratch(step, base, p);
                for i in 0..len {
                    *sums.add(i) += *other.add(i);
                }
            }
            let dw = base.add(step.w);
            for g in 0..self.groups {
                for kd in 0..k {
                    for cs in 0..c {
                        let m: [f32; 16] =
                            std::array::from_fn(|xi| *sums.add(((g * 16 + xi) * k + kd) * c + cs));
                        let out = dw.add(((g * k + kd) * c + cs) * 9);
                        for (i, v) in kernel_gradient(&m).into_iter().enumerate() {
                            *out.add(i) = v;
                        }
                    }
                }
            }
        }
    }
}

/// One piece's samples of a Winograd step: `range` with piece `piece`'s
/// scratch (run by [`crate::convkern::Isa::run`]). Running it needs what
/// [`Winograd::run`] needs (the arena at `base`, `step` consistent with
/// `form`), `range` within the samples and a piece of its own.
#[cfg(target_arch = "x86_64")]
struct Samples<'a> {
    form: &'a Winograd,
    step: &'a crate::conv::ConvStep,
    base: Base,
    piece: usize,
    range: (usize, usize),
}

#[cfg(target_arch = "x86_64")]
impl Vectorized for Samples<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self, s: S) {
        use crate::convkern::{bcast, dot, Mat};
        let Samples {
            form: w,
            step,
            base,
            piece,
            range: (lo, hi),
        } = self;
        let base = base.0;
        let sz = &step.sizes;
        let (cg, og, in_sp, out_sp) = (sz.cg, sz.og, sz.in_sp, sz.out_sp);
        let (k, c, t) = (w.k, w.c, w.tile_count());
        // SAFETY: the caller's guarantee (the type's: the arena as
        // `ConvStep::run`, `lo ≤ hi ≤ n`, a piece of its own): samples < n,
        // groups < G and channels below their counts address planes inside x
        // and y; the piece's scratch holds (weight gradient) the sums, then
        // the split columns, `V` and `M` or `Ŷ`, as `new` sized them.
        unsafe {
            let x_of = |n: usize, g: usize, ch: usize| {
                base.add(step.x + (n * step.c + g * cg + ch) * in_sp)
            };
            let y_of = |n: usize, g: usize, ch: usize| {
                base.add(step.y + (n * step.o + g * og + ch) * out_sp)
            };
            let scratch = w.piece_scratch(step, base, piece);
            match step.kind {
                ConvKind::Forward | ConvKind::InputGrad => {
                    let split = scratch;
                    let v = split.add(w.split_room);
                    let m = v.add(16 * w.vs);
                    let u = base.add(step.scratch).cast_const();
                    let forward = step.kind == ConvKind::Forward;
                    for n in lo..hi {
                        for g in 0..w.groups {
                            for ch in 0..c {
                                let src = if forward {
                                    x_of(n, g, ch)
                                } else {
                                    y_of(n, g, ch)
                                };
                                w.split_plane(s, src, split);
                                w.input_tiles(s, split, v.add(ch * t), w.vs);
                            }
                            for xi in 0..16 {
                                let a = Mat::rows(u.add((g * 16 + xi) * k * c), c);
                                let b = Mat::rows(v.add(xi * w.vs).cast_const(), t);
                                let dst = Mat::rows(m.add(xi * w.ms), t);
                                bcast(s, (k, t, c), a, b, dst, false);
                            }
                            for kd in 0..k {
                                let dst = if forward {
                                    y_of(n, g, kd)
                                } else {
                                    x_of(n, g, kd)
                                };
                                w.output_tiles(s, m.add(kd * t), w.ms, dst);
                            }
                        }
                    }
                }
                ConvKind::WeightGrad => {
                    let sums = scratch;
                    let split = sums.add(w.groups * 16 * k * c);
                    let v = split.add(w.split_room);
                    let row = w.samples * t;
                    let yh = v.add(16 * w.vs);
                    if lo == hi {
                        std::ptr::write_bytes(sums, 0, w.groups * 16 * k * c);
                    }
                    let mut t0 = lo;
                    while t0 < hi {
                        let t1 = (t0 + w.samples).min(hi);
                        for g in 0..w.groups {
                            for n in t0..t1 {
                                let at = (n - t0) * t;
                                for ch in 0..c {
                                    w.split_plane(s, x_of(n, g, ch), split);
                                    w.input_tiles(s, split, v.add(ch * row + at), w.vs);
                                }
                                for kd in 0..k {
                                    w.gradient_tiles(
                                        s,
                                        y_of(n, g, kd),
                                        yh.add(kd * row + at),
                                        w.ms,
                                    );
                                }
                            }
                            let len = (t1 - t0) * t;
                            for xi in 0..16 {
                                let a = Mat::rows(yh.add(xi * w.ms).cast_const(), row);
                                let b = Mat::rows(v.add(xi * w.vs).cast_const(), row);
                                let dst = Mat::rows(sums.add((g * 16 + xi) * k * c), c);
                                dot(s, (k, c, len), 1, (a, 0), (b, 0), dst, t0 > lo);
                            }
                        }
                        t0 = t1;
                    }
                }
            }
        }
    }
}

/// One vector of a channel's tiles: lanes `0..first` are tiles `(ty, tx0 +
/// lane)`, lanes `first..first + next` tiles `(ty + 1, lane − first)` (`next`
/// is 0 unless [`Winograd::paired`]). Tile indices `ty·tw + tx0 + lane` are
/// consecutive over both parts, as tx0 is 0 when rows are paired.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct TileVec {
    ty: usize,
    tx0: usize,
    first: usize,
    next: usize,
}

#[cfg(target_arch = "x86_64")]
impl TileVec {
    /// Whether every lane holds a tile of the vector's first row.
    #[inline(always)]
    fn full<S: Simd>(&self) -> bool {
        self.first == S::LANES && self.next == 0
    }

    /// The lanes holding tiles.
    #[inline(always)]
    fn mask<S: Simd>(&self, s: S) -> u32 {
        s.lanes(self.first + self.next)
    }

    /// Lanes `0..first` from `p`, lanes `first..first + next` from `p + row`
    /// onwards (the next tile row's element at the same place), zeros elsewhere.
    ///
    /// # Safety
    /// `p + lane` for lanes `< first` and `p + row + lane` for lanes `< next`
    /// are readable (the other lanes touch no memory).
    #[inline(always)]
    unsafe fn load<S: Simd>(&self, s: S, p: *const f32, row: usize) -> S::V {
        // SAFETY: the caller's guarantee; masked lanes read nothing, so the
        // second load's pointer, `first` floats before the next row's first
        // element, is only offset, never read, outside it.
        unsafe {
            let v = s.load(s.lanes(self.first), p);
            if self.next == 0 {
                return v;
            }
            let upper = self.mask(s) & !s.lanes(self.first);
            let w = s.load(upper, p.wrapping_add(row).wrapping_sub(self.first));
            s.blend(v, upper, w)
        }
    }
}

/// Output column pairs `(y0, y1)` of lanes `from..` of `y0` and `y1`,
/// interleaved. (Functions, not closures, for these index vectors: a closure
/// is compiled without the instruction set.)
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn zip<S: Simd>(s: S, from: usize) -> S::I {
    s.indices(|i| from + (i / 2) + S::LANES * (i % 2))
}

/// The even (`odd` 0) or odd (`odd` 1) columns of `a` followed by `b`: lanes
/// `< from` from `a`, the rest from `b`'s start.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn unzip<S: Simd>(s: S, from: usize, odd: usize) -> S::I {
    s.indices(|i| {
        if i < from {
            2 * i + odd
        } else {
            S::LANES + 2 * (i - from) + odd
        }
    })
}

/// The lanes in `mask` of row `r` of the plane `p` (`rows × cols`) from
/// column `col` on; zeros if the row is past the plane.
///
/// # Safety
/// `p` holds the plane; the lanes in `mask` are columns `< cols`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn plane_row<S: Simd>(
    s: S,
    p: *const f32,
    (rows, cols): (usize, usize),
    r: usize,
    col: usize,
    mask: u32,
) -> S::V {
    if r < rows {
        // SAFETY: the caller's guarantee; masked lanes touch no memory.
        unsafe { s.load(mask, p.wrapping_add(r * cols + col)) }
    } else {
        s.zero()
    }
}

#[cfg(target_arch = "x86_64")]
impl Winograd {
    /// The even and odd columns of the source rows one channel's tiles read:
    /// row `r` (source row `r + oy`, zeros outside) at `split + r·L` (even)
    /// and `split + (R + r)·L` (odd), `R = 2·tile rows + 2` rows of `L = tile
    /// cols + 1` floats; column `q` is source column `q + ox`.
    ///
    /// # Safety
    /// `src` holds the source plane, `split` the even and odd columns' floats.
    #[inline(always)]
    unsafe fn split_plane<S: Simd>(&self, s: S, src: *const f32, split: *mut f32) {
        let n = S::LANES;
        let (rows, l) = (2 * self.tiles.0 + 2, self.tiles.1 + 1);
        let (sr, sc) = (self.src.0 as isize, self.src.1 as isize);
        let (even, odd) = (s.indices(|i| 2 * i), s.indices(|i| 2 * i + 1));
        let wide = 2 * n as isize;
        for r in 0..rows {
            let y = r as isize + self.off.0;
            // SAFETY: rows r < R of both halves; source row y inside the
            // plane; the loads' lanes masked to source columns 0..sc (masked
            // lanes touch no memory), the stores' to columns < L.
            unsafe {
                let (e, o) = (split.add(r * l), split.add((rows + r) * l));
                if y < 0 || y >= sr {
                    std::ptr::write_bytes(e, 0, l);
                    std::ptr::write_bytes(o, 0, l);
                    continue;
                }
                let srow = src.add(y as usize * self.src.1);
                let mut t0 = 0;
                while t0 < l {
                    let first = self.off.1 + 2 * t0 as isize;
                    let (lo, hi) = ((-first).clamp(0, wide), (sc - first).clamp(0, wide));
                    // Bits lo..hi of the 2·LANES source columns (at most 32).
                    let valid: u32 = if hi > lo {
                        let upto = |b: isize| if b >= 32 { u32::MAX } else { (1u32 << b) - 1 };
                        upto(hi) & !upto(lo)
                    } else {
                        0
                    };
                    let p = srow.wrapping_offset(first);
                    let a = s.load(valid & s.lanes(n), p);
                    let b = s.load(valid >> n, p.wrapping_add(n));
                    let store = s.lanes(l - t0);
                    s.store(e.add(t0), store, s.permute2(a, even, b));
                    s.store(o.add(t0), store, s.permute2(a, odd, b));
                    t0 += n;
                }
            }
        }
    }

    /// `V = Bᵀ d B` of every tile of one channel from its split columns: `V[ξ]`
    /// at `v + ξ·stride`, tile `ty·TW + tx`.
    ///
    /// # Safety
    /// `split` as [`Self::split_plane`] left it; `v + ξ·stride` holds the
    /// channel's tiles for each ξ < 16.
    #[inline(always)]
    unsafe fn input_tiles<S: Simd>(&self, s: S, split: *const f32, v: *mut f32, stride: usize) {
        for i in 0..self.tile_vecs(S::LANES) {
            let tv = self.tile_vec(S::LANES, i);
            // SAFETY: the caller's guarantee, for this vector's tiles.
            unsafe {
                if tv.full::<S>() {
                    self.input_vec::<S, true>(s, tv, split, v, stride);
                } else {
                    self.input_vec::<S, false>(s, tv, split, v, stride);
                }
            }
        }
    }

    /// [`Self::input_tiles`] of one vector of tiles; `FULL`: every lane holds
    /// a tile of one row ([`TileVec::full`]), so no load or store is masked.
    /// One row of `Bᵀ d` at a time from its two rows of `d`, then its four
    /// elements of `V` (every vector of `d` and `Bᵀ d` at once would take all
    /// 16 of AVX2's registers and spill).
    ///
    /// # Safety
    /// As [`Self::input_tiles`], `tv` one of its vectors.
    #[inline(always)]
    unsafe fn input_vec<S: Simd, const FULL: bool>(
        &self,
        s: S,
        tv: TileVec,
        split: *const f32,
        v: *mut f32,
        stride: usize,
    ) {
        let (th, tw) = self.tiles;
        let (rows, l) = (2 * th + 2, tw + 1);
        let mask = if FULL { s.lanes(S::LANES) } else { tv.mask(s) };
        // SAFETY: rows 2ty + i (+ 2 for the next tile row's lanes) < R and
        // columns tx0 + lane (+ 1) ≤ tw < L for the lanes holding tiles;
        // V's tiles ty·tw + tx0 + lane < th·tw.
        unsafe {
            // Column j of row i of d: the even or odd split column tx0 + j/2.
            // (Macros, not closures: a closure is compiled without the
            // instruction set, and its intrinsics become calls.)
            macro_rules! d {
                ($i:expr, $j:expr) => {{
                    let (i, j): (usize, usize) = ($i, $j);
                    let half = if j % 2 == 0 { 0 } else { rows };
                    let p = split.add((half + 2 * tv.ty + i) * l + tv.tx0 + j / 2);
                    if FULL {
                        s.load(mask, p)
                    } else {
                        tv.load(s, p, 2 * l)
                    }
                }};
            }
            let out = v.add(tv.ty * tw + tv.tx0);
            for a in 0..4 {
                // Row a of Bᵀ d: d0 − d2, d1 + d2, d2 − d1, d1 − d3.
                let mut b = [s.zero(); 4];
                for (j, b) in b.iter_mut().enumerate() {
                    *b = match a {
                        0 => s.sub(d!(0, j), d!(2, j)),
                        1 => s.add(d!(1, j), d!(2, j)),
                        2 => s.sub(d!(2, j), d!(1, j)),
                        _ => s.sub(d!(1, j), d!(3, j)),
                    };
                }
                let row = [
                    s.sub(b[0], b[2]),
                    s.add(b[1], b[2]),
                    s.sub(b[2], b[1]),
                    s.sub(b[1], b[3]),
                ];
                for (j, r) in row.into_iter().enumerate() {
                    s.store(out.add((4 * a + j) * stride), mask, r);
                }
            }
        }
    }

    /// One destination channel's outputs `Aᵀ M A` from its `M[ξ]` at
    /// `m + ξ·stride`, interleaved into the rows of the plane `dst` (every
    /// element written).
    ///
    /// # Safety
    /// `m + ξ·stride` holds the channel's tiles for each ξ < 16; `dst` the
    /// destination plane.
    #[inline(always)]
    unsafe fn output_tiles<S: Simd>(&self, s: S, m: *const f32, stride: usize, dst: *mut f32) {
        let n = S::LANES;
        let (tw, dc) = (self.tiles.1, self.dst.1);
        let zip = [zip(s, 0), zip(s, n / 2), zip(s, tw)];
        for i in 0..self.tile_vecs(n) {
            let tv = self.tile_vec(n, i);
            // SAFETY: the caller's guarantee, for this vector's tiles.
            unsafe {
                if tv.full::<S>() && dc - 2 * tv.tx0 >= 2 * n {
                    self.output_vec::<S, true>(s, tv, (m, stride), dst, zip);
                } else {
                    self.output_vec::<S, false>(s, tv, (m, stride), dst, zip);
                }
            }
        }
    }

    /// [`Self::output_tiles`] of one vector of tiles; `FULL`: every lane holds
    /// a tile of one row and each of its rows' two vectors of outputs is
    /// whole, so no load or store is masked. `zip`: the interleaving indices
    /// of lanes 0, LANES/2 and the tile row's width on.
    ///
    /// # Safety
    /// As [`Self::output_tiles`], `tv` one of its vectors.
    #[inline(always)]
    unsafe fn output_vec<S: Simd, const FULL: bool>(
        &self,
        s: S,
        tv: TileVec,
        (m, stride): (*const f32, usize),
        dst: *mut f32,
        [zip_lo, zip_hi, zip_next]: [S::I; 3],
    ) {
        let n = S::LANES;
        let (tw, (dr, dc)) = (self.tiles.1, self.dst);
        let all = s.lanes(n);
        let mask = if FULL { all } else { tv.mask(s) };
        // SAFETY: tiles ty·tw + tx0 + lane < th·tw of each M[ξ] for the
        // lanes holding tiles; destination rows checked against dr and
        // columns masked to < dc.
        unsafe {
            let at = m.add(tv.ty * tw + tv.tx0);
            // Aᵀ M: rows m0 + m1 + m2, m1 − m2 − m3, a column at a time
            // (all 16 vectors of M at once would spill AVX2's registers).
            let mut r2 = [[s.zero(); 4]; 2];
            let [top, bottom] = &mut r2;
            for (j, (top, bottom)) in top.iter_mut().zip(bottom).enumerate() {
                let q = [j, 4 + j, 8 + j, 12 + j].map(|xi| at.add(xi * stride));
                let (q0, q1) = (s.load(mask, q[0]), s.load(mask, q[1]));
                let (q2, q3) = (s.load(mask, q[2]), s.load(mask, q[3]));
                *top = s.add(s.add(q0, q1), q2);
                *bottom = s.sub(s.sub(q1, q2), q3);
            }
            let col = 2 * tv.tx0;
            let count = dc - col;
            let (lo, hi) = if FULL {
                (all, all)
            } else {
                (s.lanes(count), s.lanes(count.saturating_sub(n)))
            };
            for (i, r2) in r2.iter().enumerate() {
                let y0 = s.add(s.add(r2[0], r2[1]), r2[2]);
                let y1 = s.sub(s.sub(r2[1], r2[2]), r2[3]);
                let r = 2 * tv.ty + i;
                if r < dr {
                    let p = dst.add(r * dc + col);
                    s.store(p, lo, s.permute2(y0, zip_lo, y1));
                    s.store(p.wrapping_add(n), hi, s.permute2(y0, zip_hi, y1));
                }
                // The next tile row's lanes (rows paired: col 0, dc ≤ LANES).
                let r = r + 2;
                if !FULL && tv.next > 0 && r < dr {
                    let p = dst.add(r * dc);
                    s.store(p, s.lanes(dc), s.permute2(y0, zip_next, y1));
                }
            }
        }
    }

    /// `Ŷ = A e Aᵀ` of every tile of one channel of `dy` (`e` the tile's 2×2
    /// gradients, zeros past the plane): `Ŷ[ξ]` at `yh + ξ·stride`.
    ///
    /// # Safety
    /// `dy` holds the destination plane; `yh + ξ·stride` the channel's tiles
    /// for each ξ < 16.
    #[inline(always)]
    unsafe fn gradient_tiles<S: Simd>(&self, s: S, dy: *const f32, yh: *mut f32, stride: usize) {
        let n = S::LANES;
        let (tw, (dr, dc)) = (self.tiles.1, self.dst);
        // `from` LANES/2 continues a row of 2·LANES floats.
        let from = if self.paired(n) { tw } else { n / 2 };
        let (even, odd) = (unzip(s, from, 0), unzip(s, from, 1));
        let zero = s.zero();
        for i in 0..self.tile_vecs(n) {
            let tv = self.tile_vec(n, i);
            // SAFETY: rows checked against dr and columns masked to < dc of
            // the plane (masked lanes touch no memory); tiles ty·tw + tx0 +
            // lane < th·tw of Ŷ for the lanes holding tiles.
            unsafe {
                let col = 2 * tv.tx0;
                let count = dc - col;
                let mut e = [[zero; 2]; 2];
                for (i, e) in e.iter_mut().enumerate() {
                    let r = 2 * tv.ty + i;
                    let a = plane_row(s, dy, (dr, dc), r, col, s.lanes(count));
                    let b = if tv.next > 0 {
                        plane_row(s, dy, (dr, dc), r + 2, 0, s.lanes(dc))
                    } else {
                        let rest = s.lanes(count.saturating_sub(n));
                        plane_row(s, dy, (dr, dc), r, col + n, rest)
                    };
                    *e = [s.permute2(a, even, b), s.permute2(a, odd, b)];
                }
                // A e: rows e0, e0 + e1, e0 − e1, −e1; then the same on columns.
                let f = [
                    e[0],
                    [s.add(e[0][0], e[1][0]), s.add(e[0][1], e[1][1])],
                    [s.sub(e[0][0], e[1][0]), s.sub(e[0][1], e[1][1])],
                    [s.sub(zero, e[1][0]), s.sub(zero, e[1][1])],
                ];
                let out = yh.add(tv.ty * tw + tv.tx0);
                for (i, f) in f.iter().enumerate() {
                    let row = [
                        f[0],
                        s.add(f[0], f[1]),
                        s.sub(f[0], f[1]),
                        s.sub(zero, f[1]),
                    ];
                    for (j, r) in row.into_iter().enumerate() {
                        s.store(out.add((4 * i + j) * stride), tv.mask(s), r);
                    }
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// A forward form over `rows × cols` outputs (pad 1, 8 channels).
    fn form(rows: usize, cols: usize) -> Winograd {
        let axis = |n: usize| ConvAxis {
            input: n,
            output: n,
            kernel: 3,
            stride: 1,
            dilation: 1,
            pad_lo: 1,
        };
        Winograd::new(ConvKind::Forward, &[axis(rows), axis(cols)], (8, 8, 1), 1).unwrap()
    }

    /// Every tile is in exactly one lane of one vector, at its index `ty·tw +
    /// tx` from the vector's first tile; rows of up to half a vector of tiles
    /// share vectors (16 lanes: AVX-512, 8: AVX2).
    #[test]
    fn the_tile_vectors_cover_every_tile_once() {
        for (rows, cols) in [
            (1, 1),
            (3, 5),
            (7, 8),
            (16, 16),
            (15, 16),
            (17, 16),
            (32, 32),
            (9, 40),
            (40, 33),
            (6, 18),
        ] {
            for lanes in [16, 8] {
                let w = form(rows, cols);
                let (th, tw) = w.tiles;
                let mut seen = vec![0u32; th * tw];
                for i in 0..w.tile_vecs(lanes) {
                    let tv = w.tile_vec(lanes, i);
                    let start = tv.ty * tw + tv.tx0;
                    for lane in 0..tv.first + tv.next {
                        let (ty, tx) = if lane < tv.first {
                            (tv.ty, tv.tx0 + lane)
                        } else {
                            (tv.ty + 1, lane - tv.first)
                        };
                        assert!(ty < th && tx < tw, "{rows}×{cols}: lane {lane} of {tv:?}");
                        assert_eq!(ty * tw + tx, start + lane, "{rows}×{cols}: {tv:?}");
                        seen[start + lane] += 1;
                    }
                    assert!(tv.first + tv.next <= lanes);
                    assert_eq!(tv.next > 0, w.paired(lanes) && tv.ty + 1 < th);
                }
                assert!(seen.iter().all(|&s| s == 1), "{rows}×{cols}: {seen:?}");
                assert_eq!(w.paired(lanes), 2 * tw <= lanes);
            }
        }
    }
}
