//! Convolution and its two gradients as steps of their own. Per sample and
//! channel group, the input's patch matrix (im2col: `[C/G·k, out]`, row
//! `c·k + tap`, column the output position) is gathered into an arena region
//! that the planner reserves for this step alone, then one `gemm` product
//! runs on it: `W_g · patches` for the forward pass, `dy_g · patchesᵀ`
//! accumulated over samples for the weight gradient; the input gradient
//! multiplies `W_gᵀ · dy_g` into that region and adds it back to the input's
//! positions (col2im). A 1×1 convolution with stride 1 and no padding uses
//! the activations themselves as the patch matrix.
//!
//! Samples are split across the [`team`] in contiguous ranges, each piece with
//! its own patch region; pieces of a weight gradient sum into their own
//! partial result (the first into the result itself), added up at the end.
//! Products reassociate their sums, as every GEMM of the JIT does.

use std::fmt;

use gemm::Parallelism;
use graphc_ir::{AxisWindows, Window};

use crate::shifted::Shifted;
use crate::team;
use crate::winograd::Winograd;

/// Smallest product (multiply-adds over the whole step) split across threads.
const PARALLEL_MIN_MACS: usize = 1 << 21;
/// A weight gradient with at least this many output channels per group
/// multiplies by a transposed copy of the patch matrix (see [`ConvStep::new`]);
/// with fewer the copy cost more than it saved (lenet's 6 and 16 channels:
/// 0.76 → 1.6 ms and 1.8 → 2.0 ms; convnet's 32 and 64: 73 → 15 ms, 25 → 14 ms).
const TRANSPOSE_MIN_OG: usize = 32;
/// With the vector kernels, a weight gradient gathers the patch matrices of
/// this many floats' worth of samples at a time (at least one sample), then
/// sums their products in registers (see [`crate::convkern::dot`]).
const PATCH_TILE_FLOATS: usize = 1 << 17;

/// The form [`ConvStep::on`] tries for a step with an instruction set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The Winograd domain ([`crate::winograd`]).
    Winograd,
    /// Rows read in place ([`crate::shifted`]).
    Shifted,
    /// The patch matrix.
    Patches,
}

/// Which of the three products a [`ConvStep`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvKind {
    /// `y = conv(x, w)`: reads `x`, `w`, writes `y`.
    Forward,
    /// `x = conv_input_grad(y, w)`: reads `y` (dy), `w`, writes `x` (dx).
    InputGrad,
    /// `w = conv_weight_grad(x, y)`: reads `x`, `y` (dy), writes `w` (dw).
    WeightGrad,
}

/// One spatial axis of a convolution (PyTorch's strided windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvAxis {
    /// Input size.
    pub input: usize,
    /// Output size.
    pub output: usize,
    /// Taps.
    pub kernel: usize,
    /// Distance between windows.
    pub stride: usize,
    /// Distance between taps.
    pub dilation: usize,
    /// Padding before the first input position.
    pub pad_lo: usize,
}

impl ConvAxis {
    /// The outputs `lo..hi` whose tap `k` reads an input position rather than
    /// padding (`o·stride + k·dilation − pad_lo` in `0..input`; increasing in
    /// `o`, so those outputs are one range). In i128: no overflow.
    pub(crate) fn inside(&self, k: usize) -> (usize, usize) {
        let s = self.stride as i128;
        let shift = (k as i128) * (self.dilation as i128) - self.pad_lo as i128;
        // o·s + shift ≥ 0  ⇔  o ≥ ceil(−shift / s);  o·s + shift < input  ⇔  o < ceil((input − shift) / s)
        // (Stride 1 skips the division: an i128 division is a library call, and
        // im2col asks this per tap and plane, 3 % of lenet's step in perf.)
        let ceil_div = |a: i128| match a {
            ..=0 => 0,
            _ if s == 1 => a,
            _ => (a + s - 1) / s,
        };
        let hi = ceil_div(self.input as i128 - shift).min(self.output as i128);
        let lo = ceil_div(-shift).min(hi);
        (lo as usize, hi as usize)
    }

    /// The input position of output `o`'s tap `k`, for `o` in [`Self::inside`]`(k)`.
    pub(crate) fn position(&self, o: usize, k: usize) -> usize {
        o * self.stride + k * self.dilation - self.pad_lo
    }
}

/// Strides of the walk over one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AxisStrides {
    /// Patch-matrix floats between neighbouring taps (`Π kernel after · out`).
    row: usize,
    /// Patch-matrix columns between neighbouring outputs (`Π output after`).
    col: usize,
    /// Input floats between neighbouring positions (`Π input after`).
    x: usize,
}

/// Sizes of a convolution, every one computed with checked arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvSizes {
    /// Input channels per group.
    pub cg: usize,
    /// Output channels per group.
    pub og: usize,
    /// Input positions per channel.
    pub in_sp: usize,
    /// Output positions per channel.
    pub out_sp: usize,
    /// Taps per channel.
    pub k_sp: usize,
    /// Rows of the patch matrix: `cg · k_sp`.
    pub kk: usize,
    /// Floats of `x` (`[N, C, *input]`).
    pub x_len: usize,
    /// Floats of `w` (`[O, C/G, *kernel]`).
    pub w_len: usize,
    /// Floats of `y` (`[N, O, *output]`).
    pub y_len: usize,
    /// Floats of one piece's patch matrices, or of its planes and wide rows
    /// in the shifted form (0 when the input is used directly).
    pub patch: usize,
    /// Floats of scratch the step needs.
    pub scratch_len: usize,
}

/// A convolution step with resolved arena offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvStep {
    /// Which product.
    pub kind: ConvKind,
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub o: usize,
    /// Channel groups.
    pub groups: usize,
    /// Spatial axes, outermost first.
    pub axes: Vec<ConvAxis>,
    /// The walk's strides per axis (derived from `axes`).
    strides: Vec<AxisStrides>,
    /// Sizes (derived).
    pub sizes: ConvSizes,
    /// 1×1, stride 1, no padding: the input is its own patch matrix.
    pub direct: bool,
    /// A weight gradient that copies the patch matrix transposed after it.
    pub transposed: bool,
    /// The instruction set of [`crate::convkern`]'s kernels the products and
    /// gathers run on (`None`: the `gemm` crate and plain loops).
    pub isa: Option<crate::convkern::Isa>,
    /// Samples whose patch matrices a weight gradient gathers at once (1 for
    /// the other kinds and without `isa`).
    pub tile: usize,
    /// The Winograd form the step runs in ([`crate::winograd`]), if any.
    pub winograd: Option<Winograd>,
    /// The shifted form the step runs in ([`crate::shifted`]), if any.
    pub shifted: Option<Shifted>,
    /// Pieces the samples are split in (1 ≤ pieces ≤ n).
    pub pieces: usize,
    /// Offset of `x` (`[N, C, *input]`).
    pub x: usize,
    /// Offset of `w` (`[O, C/G, *kernel]`).
    pub w: usize,
    /// Offset of `y` (`[N, O, *output]`).
    pub y: usize,
    /// Offset of the scratch region (`sizes.scratch_len` floats).
    pub scratch: usize,
}

/// Floats of scratch a step needs with `pieces` pieces: the Winograd form's,
/// or a patch matrix (`patch` floats) per piece and, for a weight gradient,
/// a partial sum (`w_len` floats) per piece after the first.
pub(crate) fn scratch_needed(
    kind: ConvKind,
    winograd: Option<&Winograd>,
    patch: usize,
    w_len: usize,
    pieces: usize,
) -> Option<usize> {
    if let Some(w) = winograd {
        return w.scratch(pieces);
    }
    let partials = match kind {
        ConvKind::WeightGrad => w_len.checked_mul(pieces.saturating_sub(1))?,
        ConvKind::Forward | ConvKind::InputGrad => 0,
    };
    patch.checked_mul(pieces)?.checked_add(partials)
}

/// `(i·len/pieces, (i+1)·len/pieces)`: contiguous, non-empty when `pieces ≤ len`.
pub(crate) fn even_piece(len: usize, pieces: usize, i: usize) -> (usize, usize) {
    let at = |j: usize| (j as u128 * len as u128 / pieces.max(1) as u128) as usize;
    (at(i), at(i + 1))
}

impl ConvStep {
    /// The step for `kind` over `window` (strided on every axis) with `n`
    /// samples, `c` input and `o` output channels in `groups` groups, at
    /// offset 0 everywhere; `None` when a size overflows or the geometry is
    /// not a convolution's (`threads`: pieces it may use). With this CPU's
    /// vector kernels ([`crate::convkern::Isa::detect`]), the first form the
    /// step has of: the Winograd domain (3×3 windows with stride and
    /// dilation 1), the shifted form (2-d windows with stride 1, where
    /// [`Isa::shifted`]; before the Winograd domain for a weight gradient
    /// with fewer than [`crate::winograd::MIN_IN_CHANNELS`] input channels
    /// per group: convnet's 3 → 32 layer took 1.64 against 2.26 ms on Zen 1),
    /// the patch matrix on the vector kernels where [`Isa::patch_kernels`];
    /// else the patch matrix on the `gemm` crate and plain loops.
    ///
    /// [`Isa::patch_kernels`]: crate::convkern::Isa::patch_kernels
    /// [`Isa::shifted`]: crate::convkern::Isa::shifted
    pub(crate) fn new(
        kind: ConvKind,
        window: &Window,
        dims: (usize, usize, usize, usize),
        threads: usize,
    ) -> Option<ConvStep> {
        let plain = || ConvStep::on(kind, window, dims, threads, None, Form::Patches);
        let Some(isa) = crate::convkern::Isa::detect() else {
            return plain();
        };
        let mut forms = Vec::new();
        if crate::winograd::enabled() {
            forms.push(Form::Winograd);
        }
        if isa.shifted() {
            let few_inputs =
                dims.1.checked_div(dims.3).unwrap_or(0) < crate::winograd::MIN_IN_CHANNELS;
            let first = kind == ConvKind::WeightGrad && few_inputs;
            forms.insert(if first { 0 } else { forms.len() }, Form::Shifted);
        }
        for form in forms {
            let step = ConvStep::on(kind, window, dims, threads, Some(isa), form)?;
            let taken = match form {
                Form::Winograd => step.winograd.is_some(),
                Form::Shifted => step.shifted.is_some(),
                Form::Patches => true,
            };
            if taken {
                return Some(step);
            }
        }
        if isa.patch_kernels() {
            ConvStep::on(kind, window, dims, threads, Some(isa), Form::Patches)
        } else {
            plain()
        }
    }

    /// [`Self::new`] on instruction set `isa` (`None`: the `gemm` crate and
    /// plain loops), in `form` where the step has it (with an instruction set
    /// only), else on the patch matrix.
    fn on(
        kind: ConvKind,
        window: &Window,
        (n, c, o, groups): (usize, usize, usize, usize),
        threads: usize,
        isa: Option<crate::convkern::Isa>,
        form: Form,
    ) -> Option<ConvStep> {
        let axes: Vec<ConvAxis> = window
            .axes
            .iter()
            .map(|a| match a.windows {
                AxisWindows::Strided {
                    kernel,
                    stride,
                    dilation,
                    pad_lo,
                } => Some(ConvAxis {
                    input: a.input,
                    output: a.output,
                    kernel,
                    stride,
                    dilation,
                    pad_lo,
                }),
                AxisWindows::Adaptive => None,
            })
            .collect::<Option<_>>()?;
        if window.check().is_err() || groups == 0 || n == 0 || c % groups != 0 || o % groups != 0 {
            return None;
        }
        let product = |f: fn(&ConvAxis) -> usize| {
            axes.iter().try_fold(1usize, |acc, a| acc.checked_mul(f(a)))
        };
        let (in_sp, out_sp, k_sp) = (
            product(|a| a.input)?,
            product(|a| a.output)?,
            product(|a| a.kernel)?,
        );
        let (cg, og) = (c / groups, o / groups);
        let kk = cg.checked_mul(k_sp)?;
        let direct = axes
            .iter()
            .all(|a| a.kernel == 1 && a.stride == 1 && a.pad_lo == 0 && a.input == a.output);
        let macs = n.checked_mul(o)?.checked_mul(out_sp)?.checked_mul(kk)?;
        let pieces = if threads < 2 || macs < PARALLEL_MIN_MACS {
            1
        } else {
            threads.min(n)
        };
        let simd = isa.is_some();
        let winograd = match form {
            Form::Winograd if simd && !direct => Winograd::new(kind, &axes, (cg, og, groups), n),
            Form::Winograd | Form::Shifted | Form::Patches => None,
        };
        let shifted = match form {
            Form::Shifted if simd && !direct => Shifted::new(kind, &axes, (cg, og)),
            Form::Winograd | Form::Shifted | Form::Patches => None,
        };
        // A weight gradient also keeps the patch matrix transposed: the `gemm`
        // crate multiplies by a transposed right operand several times slower
        // (FACTS.md; convnet's 32×288×1024 products ran 4× slower than the
        // forward ones), and the copy costs a fraction of the product.
        let transposed = !simd
            && !direct
            && og >= TRANSPOSE_MIN_OG
            && match kind {
                ConvKind::WeightGrad => true,
                ConvKind::Forward | ConvKind::InputGrad => false,
            };
        let copies = if transposed { 2 } else { 1 };
        // Floats of one sample's patch matrix, or of its shifted planes, and
        // of the piece's rearranged weights.
        let (one, weights) = match &shifted {
            Some(form) => (form.sample_floats()?, form.piece_floats(kind, og)?),
            None => (kk.checked_mul(out_sp)?, 0),
        };
        let tile = if simd && kind == ConvKind::WeightGrad && !direct {
            (PATCH_TILE_FLOATS / one.max(1)).clamp(1, n)
        } else {
            1
        };
        let patch = if direct || winograd.is_some() {
            0
        } else {
            one.checked_mul(copies)?
                .checked_mul(tile)?
                .checked_add(weights)?
        };
        let w_len = o.checked_mul(kk)?;
        let scratch_len = scratch_needed(kind, winograd.as_ref(), patch, w_len, pieces)?;
        let mut strides = Vec::with_capacity(axes.len());
        let (mut row, mut col, mut x) = (out_sp, 1usize, 1usize);
        for a in axes.iter().rev() {
            strides.push(AxisStrides { row, col, x });
            row = row.checked_mul(a.kernel)?;
            col = col.checked_mul(a.output)?;
            x = x.checked_mul(a.input)?;
        }
        strides.reverse();
        let sizes = ConvSizes {
            cg,
            og,
            in_sp,
            out_sp,
            k_sp,
            kk,
            x_len: n.checked_mul(c)?.checked_mul(in_sp)?,
            w_len,
            y_len: n.checked_mul(o)?.checked_mul(out_sp)?,
            patch,
            scratch_len,
        };
        Some(ConvStep {
            kind,
            n,
            c,
            o,
            groups,
            axes,
            strides,
            sizes,
            direct,
            transposed,
            isa,
            tile,
            winograd,
            shifted,
            pieces,
            x: 0,
            w: 0,
            y: 0,
            scratch: 0,
        })
    }

    /// Whether the sizes and strides are the ones `axes` and the channel
    /// counts give (for `Plan::validate`: the routines index by them).
    pub(crate) fn consistent(&self) -> bool {
        let window = Window {
            axes: self
                .axes
                .iter()
                .map(|a| graphc_ir::WindowAxis {
                    input: a.input,
                    output: a.output,
                    windows: AxisWindows::Strided {
                        kernel: a.kernel,
                        stride: a.stride,
                        dilation: a.dilation,
                        pad_lo: a.pad_lo,
                    },
                })
                .collect(),
        };
        let dims = (self.n, self.c, self.o, self.groups);
        let Some(fresh) = ConvStep::new(self.kind, &window, dims, 1) else {
            return false;
        };
        let s = &self.sizes;
        let needed = scratch_needed(
            self.kind,
            self.winograd.as_ref(),
            s.patch,
            s.w_len,
            self.pieces,
        );
        ConvSizes {
            scratch_len: s.scratch_len,
            ..fresh.sizes
        } == *s
            && fresh.strides == self.strides
            && fresh.direct == self.direct
            && fresh.transposed == self.transposed
            && fresh.isa == self.isa
            && fresh.tile == self.tile
            && fresh.winograd == self.winograd
            && fresh.shifted == self.shifted
            && (1..=self.n).contains(&self.pieces)
            && needed.is_some_and(|needed| needed <= s.scratch_len)
    }

    /// The buffers the step reads and the one it writes, as `(offset, len)`.
    pub(crate) fn buffers(&self) -> ([(usize, usize); 2], (usize, usize)) {
        let s = &self.sizes;
        let (x, w, y) = ((self.x, s.x_len), (self.w, s.w_len), (self.y, s.y_len));
        match self.kind {
            ConvKind::Forward => ([x, w], y),
            ConvKind::InputGrad => ([y, w], x),
            ConvKind::WeightGrad => ([x, y], w),
        }
    }

    /// Runs the step on the arena at `base`.
    ///
    /// # Safety
    /// `base` must point to an arena holding `x`, `w`, `y` (`sizes.x_len`,
    /// `w_len`, `y_len` floats at their offsets) and the scratch region, with
    /// the written buffer overlapping none of the others and the scratch
    /// overlapping none of them, and the step must be [`Self::consistent`]
    /// (both checked by `Plan::validate`).
    pub(crate) unsafe fn run(&self, base: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        if let Some(w) = &self.winograd {
            // SAFETY: the caller's guarantee; `winograd` is set only with
            // `isa`, and `consistent` recomputes both.
            unsafe { w.run(self, base) };
            return;
        }
        let shared = Base(base);
        let job = |piece: usize| {
            let b = shared;
            let (lo, hi) = even_piece(self.n, self.pieces, piece);
            // SAFETY: the caller's guarantee; pieces cover disjoint samples, so
            // they write disjoint parts of y or dx, their own patch regions and
            // their own partial weight gradients.
            unsafe { self.samples(b.0, piece, lo, hi) }
        };
        if self.pieces <= 1 {
            job(0);
        } else {
            team::run(self.pieces, &job);
        }
        if self.kind == ConvKind::WeightGrad && self.pieces > 1 {
            let s = &self.sizes;
            // SAFETY: the result and the partials (after the patch regions) are
            // inside the arena and do not overlap (the caller's guarantee).
            unsafe {
                let dw = base.add(self.w);
                for p in 1..self.pieces {
                    let part = base.add(self.partial(p));
                    for i in 0..s.w_len {
                        *dw.add(i) += *part.add(i);
                    }
                }
            }
        }
    }

    /// Offset of piece `p`'s partial weight gradient (`p ≥ 1`).
    fn partial(&self, p: usize) -> usize {
        self.scratch + self.pieces * self.sizes.patch + (p - 1) * self.sizes.w_len
    }

    /// Where piece `piece` sums its weight gradient: the result itself for piece 0, its
    /// partial sum for the others.
    fn weight_grad_offset(&self, piece: usize) -> usize {
        if piece == 0 {
            self.w
        } else {
            self.partial(piece)
        }
    }

    /// Samples `lo..hi` on this thread, with piece `piece`'s scratch.
    ///
    /// # Safety
    /// As [`Self::run`], with `lo ≤ hi ≤ n`.
    unsafe fn samples(&self, base: *mut f32, piece: usize, lo: usize, hi: usize) {
        let s = &self.sizes;
        let (cg, og, kk, in_sp, out_sp) = (s.cg, s.og, s.kk, s.in_sp, s.out_sp);
        // SAFETY: every pointer below stays inside its buffer: sample n < N,
        // group g < G, and the products' extents are those of one group's
        // block of x, y or w (rows × row stride); the patch region of this
        // piece holds kk × out_sp floats (twice that for a weight gradient,
        // whose transposed copy follows the patch matrix).
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if let Some(isa) = self.isa {
                isa.run(VectorSamples {
                    step: self,
                    base: Base(base),
                    piece,
                    range: (lo, hi),
                });
                return;
            }
            let patches = base.add(self.scratch + piece * s.patch);
            let x_of = |n: usize, g: usize| base.add(self.x + (n * self.c + g * cg) * in_sp);
            let y_of = |n: usize, g: usize| base.add(self.y + (n * self.o + g * og) * out_sp);
            let w_of = |g: usize| base.add(self.w + g * og * kk);
            match self.kind {
                ConvKind::Forward => {
                    for n in lo..hi {
                        for g in 0..self.groups {
                            // y_gᵀ [out, og] = patchesᵀ [out, kk] · W_gᵀ [kk, og]:
                            // the positions are the product's rows, the long side
                            // the `gemm` crate's kernels vectorise.
                            let lhs = (self.patch_matrix(x_of(n, g), patches), out_sp, 1);
                            let dst = (y_of(n, g), out_sp, 1, false);
                            product((out_sp, og, kk), dst, lhs, (w_of(g), kk, 1));
                        }
                    }
                }
                ConvKind::InputGrad => {
                    for n in lo..hi {
                        if !self.direct {
                            std::ptr::write_bytes(x_of(n, 0), 0, self.c * in_sp);
                        }
                        for g in 0..self.groups {
                            let cols = if self.direct { x_of(n, g) } else { patches };
                            // colsᵀ [out, kk] = dy_gᵀ [out, og] · W_g [og, kk]
                            let lhs = (y_of(n, g).cast_const(), out_sp, 1);
                            let rhs = (w_of(g).cast_const(), 1, kk);
                            product((out_sp, kk, og), (cols, out_sp, 1, false), lhs, rhs);
                            self.add_patch_matrix(x_of(n, g), cols);
                        }
                    }
                }
                ConvKind::WeightGrad => {
                    let dw = base.add(self.weight_grad_offset(piece));
                    for n in lo..hi {
                        for g in 0..self.groups {
                            let p = self.patch_matrix(x_of(n, g), patches);
                            // dw_gᵀ [kk, og] (+)= patches [kk, out] · dy_gᵀ [out, og],
                            // or from patchesᵀ copied row-major after the patch matrix.
                            let lhs = if self.transposed {
                                let t = patches.add(kk * out_sp);
                                crate::gemm::transpose(p, t, (kk, out_sp), kk, (0, kk));
                                (t.cast_const(), kk, 1)
                            } else {
                                (p, 1, out_sp)
                            };
                            let dst = (dw.add(g * og * kk), kk, 1, n > lo);
                            let rhs = (y_of(n, g).cast_const(), out_sp, 1);
                            product((kk, og, out_sp), dst, lhs, rhs);
                        }
                    }
                }
            }
        }
    }

    /// The patch matrix of one sample's channel group at `x`: `x` itself for a
    /// direct convolution, else gathered into `patches`.
    ///
    /// # Safety
    /// `x` holds `cg · in_sp` floats and `patches` `kk · out_sp`, not overlapping.
    unsafe fn patch_matrix(&self, x: *mut f32, patches: *mut f32) -> *const f32 {
        if self.direct {
            return x.cast_const();
        }
        let s = &self.sizes;
        for ci in 0..s.cg {
            // SAFETY: channel ci's input plane and patch rows are inside both buffers.
            unsafe {
                let cols = patches.add(ci * s.k_sp * s.out_sp);
                self.channel_rows::<false>(x.add(ci * s.in_sp), cols);
            }
        }
        patches.cast_const()
    }

    /// The adjoint of [`Self::patch_matrix`] (col2im): adds the patch matrix
    /// `cols` back into one sample's channel group at `x`, zeroed before; nothing
    /// for a direct convolution, whose product wrote `x` itself.
    ///
    /// # Safety
    /// `x` holds `cg · in_sp` floats and `cols` `kk · out_sp`, not overlapping.
    unsafe fn add_patch_matrix(&self, x: *mut f32, cols: *mut f32) {
        if self.direct {
            return;
        }
        let s = &self.sizes;
        for ci in 0..s.cg {
            // SAFETY: channel ci's input plane and patch rows are inside both buffers.
            unsafe {
                let rows = cols.add(ci * s.k_sp * s.out_sp);
                self.channel_rows::<true>(x.add(ci * s.in_sp), rows);
            }
        }
    }

    /// Gathers one channel's patch rows from its plane `x` into `cols`
    /// (`SCATTER = false`) or adds them back into the zeroed plane (the vector
    /// path overwrites it with the sums). A 2-d window with an inner stride of
    /// 1 runs [`crate::convkern::patch_rows_2d`] with the vector kernels, else
    /// [`Self::gather_2d`] / [`Self::scatter_2d`]; other windows [`Self::walk`].
    ///
    /// # Safety
    /// `x` holds one channel's plane (`in_sp` floats), `cols` its `k_sp · out_sp`
    /// patch rows, not overlapping; the step is [`Self::consistent`].
    unsafe fn channel_rows<const SCATTER: bool>(&self, x: *mut f32, cols: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = self.isa {
            if self.axes.len() == 2
                && self.axes[1].stride == 1
                && (!SCATTER
                    || self
                        .axes
                        .iter()
                        .all(|a| a.kernel <= crate::convkern::MAX_SCATTER_TAPS))
            {
                // SAFETY: a 2-d window with an inner stride of 1 (a
                // scatter's kernels within the bound); the plane and the
                // patch rows are the caller's guarantee.
                unsafe {
                    isa.run(PatchRows::<SCATTER> {
                        axes: (self.axes[0], self.axes[1]),
                        x,
                        cols,
                    })
                };
                return;
            }
        }
        if self.axes.len() == 2 && self.axes[1].stride == 1 {
            let (in_sp, rows) = (self.sizes.in_sp, self.sizes.k_sp * self.sizes.out_sp);
            // SAFETY: the caller's guarantee: the plane and the patch rows are
            // `in_sp` and `k_sp · out_sp` floats, not overlapping, and this
            // thread alone touches them (its sample's plane, its piece's rows).
            unsafe {
                use std::slice::{from_raw_parts, from_raw_parts_mut};
                if SCATTER {
                    self.scatter_2d(from_raw_parts_mut(x, in_sp), from_raw_parts(cols, rows));
                } else {
                    self.gather_2d(from_raw_parts(x, in_sp), from_raw_parts_mut(cols, rows));
                }
            }
            return;
        }
        // SAFETY: the caller's guarantee: the walk starts at axis 0 with the
        // plane's first float and the first patch row.
        unsafe { self.walk::<SCATTER>(0, x, cols, true) }
    }

    /// Each patch-row block of a 2-d window with an inner stride of 1, with
    /// the rows that read the plane: `(tap block, (rows ylo..yhi, outputs
    /// lo..hi), start)`, where output row `oy`'s outputs `lo..hi` read the
    /// plane from `start(oy)` on (no rows when the inner tap reads padding only).
    fn taps_2d<'a, T>(
        &self,
        cols: impl Iterator<Item = T> + 'a,
    ) -> impl Iterator<Item = (T, (usize, usize, usize, usize), impl Fn(usize) -> usize)> + 'a {
        let (outer, inner) = (self.axes[0], self.axes[1]);
        cols.enumerate().map(move |(tap, block)| {
            let (ky, kx) = (tap / inner.kernel, tap % inner.kernel);
            let (ylo, yhi) = outer.inside(ky);
            let (lo, hi) = inner.inside(kx);
            let yhi = if hi > lo { yhi } else { ylo };
            let start = move |oy| outer.position(oy, ky) * inner.input + inner.position(lo, kx);
            (block, (ylo, yhi, lo, hi), start)
        })
    }

    /// [`Self::channel_rows`]' gather for a 2-d window with an inner stride of
    /// 1 (without AVX-512): per tap and output row one copy of the row's
    /// inputs, zeros around it. (The general walk paid its recursion and
    /// three library calls per row.)
    fn gather_2d(&self, x: &[f32], cols: &mut [f32]) {
        let wo = self.axes[1].output;
        for (block, (ylo, yhi, lo, hi), start) in
            self.taps_2d(cols.chunks_exact_mut(self.sizes.out_sp))
        {
            block[..ylo * wo].fill(0.0);
            block[yhi * wo..].fill(0.0);
            for oy in ylo..yhi {
                let row = &mut block[oy * wo..(oy + 1) * wo];
                if lo > 0 {
                    row[..lo].fill(0.0);
                }
                copy_row(&mut row[lo..hi], &x[start(oy)..][..hi - lo]);
                if hi < wo {
                    row[hi..].fill(0.0);
                }
            }
        }
    }

    /// The adjoint of [`Self::gather_2d`]: adds each patch row back into the
    /// zeroed plane, taps in the walk's order (each input sums its terms in
    /// the same order: bit for bit the walk's result).
    fn scatter_2d(&self, x: &mut [f32], cols: &[f32]) {
        let wo = self.axes[1].output;
        for (block, (ylo, yhi, lo, hi), start) in self.taps_2d(cols.chunks_exact(self.sizes.out_sp))
        {
            for oy in ylo..yhi {
                let src = &block[oy * wo + lo..oy * wo + hi];
                for (d, s) in x[start(oy)..][..hi - lo].iter_mut().zip(src) {
                    *d += *s;
                }
            }
        }
    }

    /// Gathers (`SCATTER = false`) the patch rows of one input channel from
    /// axis `a` on, or adds them back (`SCATTER = true`): `x` points at the
    /// input position chosen by the outer axes, `cols` at the patch element of
    /// the outer taps and outputs; `inside` is false when an outer position is
    /// padding (the rows get zeros, or nothing is added).
    ///
    /// # Safety
    /// `x` and `cols` must address one channel's plane and patch rows at the
    /// outer axes' positions (walk from axis 0 with the plane's first float).
    unsafe fn walk<const SCATTER: bool>(
        &self,
        a: usize,
        x: *mut f32,
        cols: *mut f32,
        inside: bool,
    ) {
        let ax = self.axes[a];
        let st = self.strides[a];
        let last = a + 1 == self.axes.len();
        for k in 0..ax.kernel {
            let (lo, hi) = if inside { ax.inside(k) } else { (0, 0) };
            // SAFETY: tap k < kernel and outputs < output stay inside the patch
            // rows; positions come from `inside`, so they are in 0..input.
            unsafe {
                let row = cols.add(k * st.row);
                if last {
                    if !SCATTER {
                        std::ptr::write_bytes(row, 0, lo);
                        std::ptr::write_bytes(row.add(hi), 0, ax.output - hi);
                    }
                    if hi > lo {
                        let first = x.add(ax.position(lo, k));
                        let (dst, len) = (row.add(lo), hi - lo);
                        match (SCATTER, ax.stride) {
                            (false, 1) => std::ptr::copy_nonoverlapping(first, dst, len),
                            (false, s) => {
                                for i in 0..len {
                                    *dst.add(i) = *first.add(i * s);
                                }
                            }
                            (true, s) => {
                                for i in 0..len {
                                    *first.add(i * s) += *dst.add(i);
                                }
                            }
                        }
                    }
                } else {
                    for o in 0..ax.output {
                        let valid = o >= lo && o < hi;
                        if valid || !SCATTER {
                            let xo = if valid {
                                x.add(ax.position(o, k) * st.x)
                            } else {
                                x
                            };
                            self.walk::<SCATTER>(a + 1, xo, row.add(o * st.col), valid);
                        }
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` (same lengths) in moves of 8 or 4 floats, the
/// last one overlapping the one before: a patch row is short (lenet's are 10
/// to 28 floats), and a library call per row cost more than its copy (so did
/// the shifted form's `memcpy` per output row: lenet conv2's forward 1,040
/// against 1,018 µs, its weight gradient 1,090 against 1,030, Zen 1).
pub(crate) fn copy_row(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let mut part = |at: usize, len: usize| dst[at..at + len].copy_from_slice(&src[at..at + len]);
    match n {
        8.. => {
            for at in (0..n - 8).step_by(8) {
                part(at, 8);
            }
            part(n - 8, 8);
        }
        4..8 => {
            part(0, 4);
            part(n - 4, 4);
        }
        _ => {
            for at in 0..n {
                part(at, 1);
            }
        }
    }
}

/// Arena base shared by the pieces of a step.
#[derive(Clone, Copy)]
pub(crate) struct Base(pub *mut f32);

// SAFETY: the pieces of a convolution or pooling step write disjoint parts of
// the arena (their samples or planes, their own scratch) and only read the rest.
unsafe impl Send for Base {}
// SAFETY: as above.
unsafe impl Sync for Base {}

/// `dst (+)= lhs · rhs` on this thread: `(m, n, k)`, `dst` as (pointer, column
/// stride, row stride, accumulate), each operand as (pointer, column stride,
/// row stride).
///
/// # Safety
/// Every operand and the result must lie in memory at those strides; the
/// result must not overlap either operand.
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    (dst, dst_cs, dst_rs, accumulate): (*mut f32, usize, usize, bool),
    (lhs, lhs_cs, lhs_rs): (*const f32, usize, usize),
    (rhs, rhs_cs, rhs_rs): (*const f32, usize, usize),
) {
    // SAFETY: the caller's guarantee.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// [`ConvStep::samples`] on [`crate::convkern`]'s kernels: samples `range`
/// with piece `piece`'s scratch (run by [`crate::convkern::Isa::run`]).
/// Running it needs what [`ConvStep::samples`] needs: the arena at `base`,
/// a consistent step, `range` within its samples, and a piece of its own.
#[cfg(target_arch = "x86_64")]
struct VectorSamples<'a> {
    step: &'a ConvStep,
    base: Base,
    piece: usize,
    range: (usize, usize),
}

#[cfg(target_arch = "x86_64")]
impl crate::convkern::Vectorized for VectorSamples<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: crate::convkern::Simd>(self, simd: S) {
        use crate::convkern::{bcast, dot, Mat};
        let VectorSamples {
            step: this,
            base,
            piece,
            range: (lo, hi),
        } = self;
        let base = base.0;
        let s = &this.sizes;
        let (cg, og, kk, in_sp, out_sp) = (s.cg, s.og, s.kk, s.in_sp, s.out_sp);
        let rows = |ptr: *mut f32, rs: usize| Mat {
            ptr: ptr.cast_const(),
            rs,
            cs: 1,
        };
        // SAFETY: the caller's guarantee (the type's: the arena, the
        // consistent step, `lo ≤ hi ≤ n`, a piece of its own): every pointer
        // stays inside its buffer (sample < N, group < G, one group's block of
        // x, y or w), and this piece's patch region holds `tile` patch
        // matrices of kk × out_sp floats one after another.
        unsafe {
            let patches = base.add(this.scratch + piece * s.patch);
            if let Some(form) = &this.shifted {
                let dw = match this.kind {
                    ConvKind::WeightGrad => base.add(this.weight_grad_offset(piece)),
                    ConvKind::Forward | ConvKind::InputGrad => std::ptr::null_mut(),
                };
                form.samples(simd, this, base, patches, dw, (lo, hi));
                return;
            }
            let x_of = |n: usize, g: usize| base.add(this.x + (n * this.c + g * cg) * in_sp);
            let y_of = |n: usize, g: usize| base.add(this.y + (n * this.o + g * og) * out_sp);
            let w_of = |g: usize| base.add(this.w + g * og * kk);
            match this.kind {
                ConvKind::Forward => {
                    for n in lo..hi {
                        for g in 0..this.groups {
                            // y_g [og, out] = W_g [og, kk] · patches [kk, out]
                            let p = this.patch_matrix(x_of(n, g), patches).cast_mut();
                            let dst = Mat {
                                ptr: y_of(n, g),
                                rs: out_sp,
                                cs: 1,
                            };
                            let (w, p) = (rows(w_of(g), kk), rows(p, out_sp));
                            bcast(simd, (og, out_sp, kk), w, p, dst, false);
                        }
                    }
                }
                ConvKind::InputGrad => {
                    for n in lo..hi {
                        if !this.direct {
                            std::ptr::write_bytes(x_of(n, 0), 0, this.c * in_sp);
                        }
                        for g in 0..this.groups {
                            let cols = if this.direct { x_of(n, g) } else { patches };
                            // cols [kk, out] = W_gᵀ [kk, og] · dy_g [og, out]
                            let wt = Mat {
                                ptr: w_of(g).cast_const(),
                                rs: 1,
                                cs: kk,
                            };
                            let dst = Mat {
                                ptr: cols,
                                rs: out_sp,
                                cs: 1,
                            };
                            bcast(
                                simd,
                                (kk, out_sp, og),
                                wt,
                                rows(y_of(n, g), out_sp),
                                dst,
                                false,
                            );
                            this.add_patch_matrix(x_of(n, g), cols);
                        }
                    }
                }
                ConvKind::WeightGrad => {
                    let dw = base.add(this.weight_grad_offset(piece));
                    let mut t0 = lo;
                    while t0 < hi {
                        // The direct form reads every sample's x in place.
                        let t1 = if this.direct {
                            hi
                        } else {
                            (t0 + this.tile).min(hi)
                        };
                        for g in 0..this.groups {
                            let (p, p_ts) = if this.direct {
                                (x_of(t0, g), this.c * in_sp)
                            } else {
                                for t in t0..t1 {
                                    let dst = patches.add((t - t0) * kk * out_sp);
                                    this.patch_matrix(x_of(t, g), dst);
                                }
                                (patches, kk * out_sp)
                            };
                            // dw_g [og, kk] (+)= Σ_t dy_t,g [og, out] · patches_tᵀ [out, kk]
                            let dst = Mat {
                                ptr: dw.add(g * og * kk),
                                rs: kk,
                                cs: 1,
                            };
                            let dy = (rows(y_of(t0, g), out_sp), this.o * out_sp);
                            let p = (rows(p, out_sp), p_ts);
                            dot(simd, (og, kk, out_sp), t1 - t0, dy, p, dst, t0 > lo);
                        }
                        t0 = t1;
                    }
                }
            }
        }
    }
}

/// One channel's [`crate::convkern::patch_rows_2d`] (run by
/// [`crate::convkern::Isa::run`]). Running it needs what `patch_rows_2d`
/// needs: the plane at `x`, the patch rows at `cols`, a 2-d window with an
/// inner stride of 1 (a scatter's kernels within the bound).
#[cfg(target_arch = "x86_64")]
struct PatchRows<const SCATTER: bool> {
    axes: (ConvAxis, ConvAxis),
    x: *mut f32,
    cols: *mut f32,
}

#[cfg(target_arch = "x86_64")]
impl<const SCATTER: bool> crate::convkern::Vectorized for PatchRows<SCATTER> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: crate::convkern::Simd>(self, s: S) {
        // SAFETY: the caller's guarantee (the type's conditions).
        unsafe { crate::convkern::patch_rows_2d::<S, SCATTER>(s, self.axes, self.x, self.cols) }
    }
}

impl fmt::Display for ConvStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ConvKind::Forward => "conv",
            ConvKind::InputGrad => "conv input grad",
            ConvKind::WeightGrad => "conv weight grad",
        };
        write!(
            f,
            "{kind} n{} c{} o{} groups {}",
            self.n, self.c, self.o, self.groups
        )?;
        for a in &self.axes {
            write!(
                f,
                " {}->{}:k{}s{}d{}p{}",
                a.input, a.output, a.kernel, a.stride, a.dilation, a.pad_lo
            )?;
        }
        write!(
            f,
            ", x {} w {} y {} scratch {} ({}), {} pieces{}",
            self.x,
            self.w,
            self.y,
            self.scratch,
            self.sizes.scratch_len,
            self.pieces,
            if self.direct { ", direct" } else { "" }
        )?;
        if self.winograd.is_some() {
            write!(f, ", winograd")?;
        }
        if self.shifted.is_some() {
            write!(f, ", shifted")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use graphc_ir::WindowAxis;

    use super::*;

    /// A strided axis.
    pub(crate) fn axis(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pad: (usize, usize),
    ) -> WindowAxis {
        let span = (kernel - 1) * dilation + 1;
        WindowAxis {
            input,
            output: (input + pad.0 + pad.1 - span) / stride + 1,
            windows: AxisWindows::Strided {
                kernel,
                stride,
                dilation,
                pad_lo: pad.0,
            },
        }
    }

    /// Row-major multi-index of flat `i` in `dims`.
    fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
        let mut at = vec![0; dims.len()];
        for (a, &d) in dims.iter().enumerate().rev() {
            at[a] = i % d;
            i /= d;
        }
        at
    }

    /// The written buffer of `step` by the definition, summed in f64.
    fn reference(step: &ConvStep, x: &[f32], w: &[f32], y: &[f32]) -> Vec<f64> {
        let s = &step.sizes;
        let mut out = vec![
            0.0f64;
            match step.kind {
                ConvKind::Forward => s.y_len,
                ConvKind::InputGrad => s.x_len,
                ConvKind::WeightGrad => s.w_len,
            }
        ];
        let kernel: Vec<usize> = step.axes.iter().map(|a| a.kernel).collect();
        let output: Vec<usize> = step.axes.iter().map(|a| a.output).collect();
        for n in 0..step.n {
            for o in 0..step.o {
                let g = o / s.og;
                for p in 0..s.out_sp {
                    let op = unravel(p, &output);
                    for ci in 0..s.cg {
                        for k in 0..s.k_sp {
                            let kp = unravel(k, &kernel);
                            let mut xi = 0usize;
                            let mut inside = true;
                            for (a, ax) in step.axes.iter().enumerate() {
                                let pos = (op[a] * ax.stride + kp[a] * ax.dilation) as isize
                                    - ax.pad_lo as isize;
                                inside &= pos >= 0 && (pos as usize) < ax.input;
                                xi = xi * ax.input + pos.max(0) as usize;
                            }
                            if !inside {
                                continue;
                            }
                            let xi = (n * step.c + g * s.cg + ci) * s.in_sp + xi;
                            let wi = (o * s.cg + ci) * s.k_sp + k;
                            let yi = (n * step.o + o) * s.out_sp + p;
                            let (xv, wv, yv) = (x[xi] as f64, w[wi] as f64, y[yi] as f64);
                            match step.kind {
                                ConvKind::Forward => out[yi] += xv * wv,
                                ConvKind::InputGrad => out[xi] += yv * wv,
                                ConvKind::WeightGrad => out[wi] += yv * xv,
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn noise(i: usize, seed: u64) -> f32 {
        let mut z = (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z ^= z >> 31;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 29;
        (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// The step on every path this CPU can take: with each instruction set
    /// it has (narrower ones are what other CPUs or `GRAPHC_SIMD` take) in
    /// the Winograd domain and in the shifted form where the step has them
    /// (the shifted form with AVX-512 too, though `new` keeps it to AVX2),
    /// and on the patch matrix (as with `GRAPHC_WINOGRAD=0`, and with AVX2
    /// though `new` keeps it off the vector kernels); then on the `gemm` crate.
    /// One piece each.
    fn paths(kind: ConvKind, window: &Window, dims: (usize, usize, usize, usize)) -> Vec<ConvStep> {
        let on = |isa, form| ConvStep::on(kind, window, dims, 1, isa, form).unwrap();
        let mut out = Vec::new();
        for isa in crate::convkern::Isa::supported() {
            let step = on(Some(isa), Form::Winograd);
            if step.winograd.is_some() {
                out.push(step);
            }
            let step = on(Some(isa), Form::Shifted);
            if step.shifted.is_some() {
                out.push(step);
            }
            out.push(on(Some(isa), Form::Patches));
        }
        out.push(on(None, Form::Patches));
        out
    }

    /// Runs every kind of `window` with `dims` on 1 and 2 pieces, on each of
    /// [`paths`], against the definition.
    fn check(window: &Window, dims: (usize, usize, usize, usize)) {
        for kind in [ConvKind::Forward, ConvKind::InputGrad, ConvKind::WeightGrad] {
            for threads in [1, 2] {
                // Force a split whatever the size, and its scratch.
                let split = |mut step: ConvStep| {
                    if threads == 2 && step.n >= 2 {
                        step.pieces = 2;
                        let s = step.sizes;
                        step.sizes.scratch_len =
                            scratch_needed(kind, step.winograd.as_ref(), s.patch, s.w_len, 2)
                                .unwrap();
                    }
                    step
                };
                let step = split(ConvStep::new(kind, window, dims, 1).unwrap());
                assert!(step.consistent(), "{step}");
                for step in paths(kind, window, dims) {
                    run_against_definition(split(step));
                }
            }
        }
    }

    /// Runs `step` on noise in [-1, 1] (from `seed`): the definition's
    /// values of the written buffer, and the step's.
    fn run_on_noise(mut step: ConvStep, seed: u64) -> (ConvStep, Vec<f64>, Vec<f32>) {
        let s = step.sizes;
        step.x = 0;
        step.w = s.x_len;
        step.y = s.x_len + s.w_len;
        step.scratch = step.y + s.y_len;
        let mut arena: Vec<f32> = (0..step.scratch + s.scratch_len)
            .map(|i| noise(i, seed))
            .collect();
        let (x, w) = (arena[..s.x_len].to_vec(), arena[step.w..step.y].to_vec());
        let y = arena[step.y..step.scratch].to_vec();
        let expected = reference(&step, &x, &w, &y);
        // SAFETY: the arena holds the three buffers and the scratch, one
        // after another.
        unsafe { step.run(arena.as_mut_ptr()) };
        let (offset, len) = step.buffers().1;
        (step, expected, arena[offset..offset + len].to_vec())
    }

    /// Runs `step` on noise against [`reference`].
    fn run_against_definition(step: ConvStep) {
        let (step, expected, got) = run_on_noise(step, 7);
        for (i, (&e, &got)) in expected.iter().zip(&got).enumerate() {
            let got = got as f64;
            assert!(
                (got - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "{step}: element {i}: {got} vs {e}"
            );
        }
    }

    #[test]
    fn every_kind_matches_the_definition_in_one_and_two_dimensions() {
        let w = |axes| Window { axes };
        // 1-d: padding, stride, dilation, groups.
        check(&w(vec![axis(9, 3, 1, 1, (1, 1))]), (2, 2, 3, 1));
        check(&w(vec![axis(11, 3, 2, 2, (2, 0))]), (3, 4, 6, 2));
        // Uneven padding through `output`, as padding='same' or ceil_mode.
        check(&w(vec![axis(8, 4, 1, 1, (1, 2))]), (2, 3, 2, 1));
        // 2-d, LeNet-like and strided, dilated, grouped.
        check(
            &w(vec![axis(8, 5, 1, 1, (2, 2)), axis(7, 5, 1, 1, (2, 2))]),
            (2, 1, 3, 1),
        );
        check(
            &w(vec![axis(9, 3, 2, 1, (1, 0)), axis(6, 2, 1, 2, (0, 1))]),
            (3, 4, 4, 2),
        );
        // 1×1: the input is its own patch matrix.
        check(
            &w(vec![axis(5, 1, 1, 1, (0, 0)), axis(3, 1, 1, 1, (0, 0))]),
            (2, 6, 9, 3),
        );
        // Enough output channels for the weight gradient's transposed copy.
        check(
            &w(vec![axis(6, 3, 1, 1, (1, 1)), axis(5, 2, 2, 1, (0, 1))]),
            (2, 4, 64, 2),
        );
        // 3×3, stride 1 (the Winograd form with the vector kernels): odd sizes, padding 0,
        // 1, 2 and uneven, more than 16 tiles along a row, groups.
        check(
            &w(vec![axis(9, 3, 1, 1, (1, 1)), axis(8, 3, 1, 1, (1, 1))]),
            (3, 8, 8, 1),
        );
        check(
            &w(vec![axis(7, 3, 1, 1, (0, 2)), axis(35, 3, 1, 1, (2, 0))]),
            (2, 16, 18, 2),
        );
        check(
            &w(vec![axis(3, 3, 1, 1, (0, 0)), axis(4, 3, 1, 1, (2, 1))]),
            (3, 8, 8, 1),
        );
        // Stride 1 in 2-d (the shifted form with the AVX2 kernels): dilated
        // with uneven padding and groups; a one-tap inner axis, whose wide rows
        // are y's own, padded and not; no padding, the input its own plane.
        check(
            &w(vec![axis(9, 3, 1, 2, (2, 1)), axis(10, 2, 1, 3, (0, 3))]),
            (2, 12, 6, 2),
        );
        check(
            &w(vec![axis(6, 3, 1, 1, (1, 1)), axis(5, 1, 1, 1, (0, 0))]),
            (2, 7, 4, 1),
        );
        check(
            &w(vec![axis(6, 3, 1, 1, (0, 0)), axis(5, 1, 1, 1, (0, 0))]),
            (3, 2, 3, 1),
        );
        check(
            &w(vec![axis(7, 2, 1, 1, (0, 0)), axis(6, 3, 1, 1, (0, 0))]),
            (2, 3, 5, 1),
        );
        // A kernel wider than the input with padding.
        check(&w(vec![axis(2, 4, 1, 1, (2, 1))]), (1, 1, 2, 1));
    }

    #[test]
    fn the_rows_of_a_2d_window_are_the_walks_bit_for_bit() {
        let w = |axes| Window { axes };
        for window in [
            // LeNet's first layer (rows of 7 to 9 floats), strided and dilated
            // rows, and inner taps that read padding only (kernel 4 over 2 inputs).
            w(vec![axis(9, 5, 1, 1, (2, 2)), axis(9, 5, 1, 1, (2, 2))]),
            w(vec![axis(9, 3, 2, 1, (1, 0)), axis(8, 2, 1, 2, (0, 1))]),
            w(vec![axis(5, 3, 1, 1, (0, 0)), axis(2, 4, 1, 1, (2, 1))]),
            // Rows of 19 to 21 floats: moves of 8 and an overlapping last one.
            w(vec![axis(4, 3, 1, 1, (1, 1)), axis(21, 3, 1, 1, (1, 1))]),
        ] {
            let step = ConvStep::new(ConvKind::InputGrad, &window, (1, 1, 1, 1), 1).unwrap();
            let s = step.sizes;
            let plane: Vec<f32> = (0..s.in_sp).map(|i| noise(i, 3)).collect();
            let rows: Vec<f32> = (0..s.k_sp * s.out_sp).map(|i| noise(i, 5)).collect();
            let (mut walked, mut gathered) =
                (vec![f32::NAN; rows.len()], vec![f32::NAN; rows.len()]);
            let (mut added, mut scattered) = (vec![0.0; s.in_sp], vec![0.0; s.in_sp]);
            // SAFETY: `plane` and the rows are one channel's, as the walk
            // needs; the gather only reads the plane, the scatter the rows.
            unsafe {
                step.walk::<false>(0, plane.as_ptr().cast_mut(), walked.as_mut_ptr(), true);
                step.walk::<true>(0, added.as_mut_ptr(), rows.as_ptr().cast_mut(), true);
            }
            step.gather_2d(&plane, &mut gathered);
            step.scatter_2d(&mut scattered, &rows);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&gathered), bits(&walked), "{step}");
            assert_eq!(bits(&scattered), bits(&added), "{step}");
        }
    }

    #[test]
    fn only_taps_inside_the_input_are_read() {
        let a = ConvAxis {
            input: 5,
            output: 3,
            kernel: 3,
            stride: 2,
            dilation: 1,
            pad_lo: 1,
        };
        // Positions o·2 + k − 1: tap 0 reads −1, 1, 3; tap 2 reads 1, 3, 5.
        assert_eq!(a.inside(0), (1, 3));
        assert_eq!(a.inside(1), (0, 3));
        assert_eq!(a.inside(2), (0, 2));
        assert_eq!(a.position(1, 0), 1);
    }

    /// The largest absolute error of `step` on noise in [-1, 1] against the
    /// f64 definition.
    fn max_error(step: ConvStep) -> f64 {
        let (_, expected, got) = run_on_noise(step, 11);
        expected
            .iter()
            .zip(&got)
            .map(|(&e, &got)| (got as f64 - e).abs())
            .fold(0.0, f64::max)
    }

    /// A convnet-like layer (16 → 16 channels, 16×16, pad 1, two samples;
    /// the f64 definition is slow in debug builds): the Winograd form's error
    /// against the f64 definition within the bound of docs/architecture.md,
    /// printed next to the patch matrix's (`--nocapture`).
    #[test]
    fn the_winograd_error_on_convnet_like_shapes_is_within_its_bound() {
        let window = Window {
            axes: vec![axis(16, 3, 1, 1, (1, 1)), axis(16, 3, 1, 1, (1, 1))],
        };
        let gamma = |k: usize| {
            let ku = k as f64 * f64::powi(2.0, -24);
            ku / (1.0 - ku)
        };
        let (n, c) = (2, 16);
        let tiles = n * 8 * 8;
        for (kind, bound) in [
            (ConvKind::Forward, gamma(c + 11) * 64.0 * c as f64),
            (ConvKind::InputGrad, gamma(c + 11) * 64.0 * c as f64),
            (ConvKind::WeightGrad, gamma(tiles + 9) * 36.0 * tiles as f64),
        ] {
            let (forms, patches): (Vec<_>, Vec<_>) = paths(kind, &window, (n, c, c, 1))
                .into_iter()
                .partition(|s| s.winograd.is_some());
            let direct = max_error(patches[0].clone());
            for form in forms {
                let isa = form.isa;
                let wino = max_error(form);
                println!(
                    "{kind:?} ({isa:?}): Winograd {wino:.3e}, patch matrix {direct:.3e}, bound {bound:.3e}"
                );
                assert!(wino <= bound, "{kind:?}: {wino} over the bound {bound}");
            }
        }
    }

    #[test]
    fn three_by_three_windows_with_stride_one_run_in_the_winograd_domain_with_vector_kernels() {
        let square = Window {
            axes: vec![axis(9, 3, 1, 1, (1, 1)), axis(8, 3, 1, 1, (1, 1))],
        };
        let possible = crate::convkern::Isa::detect().is_some() && crate::winograd::enabled();
        for kind in [ConvKind::Forward, ConvKind::InputGrad, ConvKind::WeightGrad] {
            let step = ConvStep::new(kind, &square, (3, 8, 8, 1), 1).unwrap();
            assert_eq!(step.winograd.is_some(), possible, "{step}");
            // Too few output channels, or a stride of 2: not the Winograd domain.
            let few = ConvStep::new(kind, &square, (3, 8, 7, 1), 1).unwrap();
            assert!(few.winograd.is_none());
            let strided = Window {
                axes: vec![axis(9, 3, 2, 1, (1, 1)), axis(8, 3, 1, 1, (1, 1))],
            };
            let step = ConvStep::new(kind, &strided, (3, 8, 8, 1), 1).unwrap();
            assert!(step.winograd.is_none());
            // Too few input channels: not the Winograd domain, but for a
            // weight gradient without the shifted form.
            let narrow = ConvStep::new(kind, &square, (3, 7, 8, 1), 1).unwrap();
            let shifted = crate::convkern::Isa::detect().is_some_and(|isa| isa.shifted());
            let kept = possible && kind == ConvKind::WeightGrad && !shifted;
            assert_eq!(narrow.winograd.is_some(), kept, "{narrow}");
            assert_eq!(narrow.shifted.is_some(), shifted, "{narrow}");
            // An input gradient with fewer channels than a product tile's rows:
            // not the shifted form.
            let few = ConvStep::new(kind, &square, (3, 5, 8, 1), 1).unwrap();
            let few_shifted = shifted && kind != ConvKind::InputGrad;
            assert_eq!(few.shifted.is_some(), few_shifted, "{few}");
        }
    }

    #[test]
    fn a_direct_convolution_needs_no_scratch() {
        let window = Window {
            axes: vec![axis(6, 1, 1, 1, (0, 0))],
        };
        let step = ConvStep::new(ConvKind::Forward, &window, (2, 3, 4, 1), 1).unwrap();
        assert!(step.direct);
        assert_eq!(step.sizes.scratch_len, 0);
        let strided = Window {
            axes: vec![axis(6, 1, 2, 1, (0, 0))],
        };
        let step = ConvStep::new(ConvKind::Forward, &strided, (2, 3, 4, 1), 1).unwrap();
        assert!(!step.direct);
        assert_eq!(step.sizes.scratch_len, 3 * 3);
    }
}
