//! Stride-1 2-d convolutions without a patch matrix: the forward step and the
//! two gradients on [`crate::convkern`]'s kernels, reading the input (or
//! adding the input gradient) where it lies.
//!
//! Lay the input out in a plane `Wp = Wo + (kw − 1)·dw` floats wide and
//! `Hp = Ho + (kh − 1)·dh` rows high, its padding written as zeros, and the
//! outputs `Wp` apart too ("wide": output `(oy, ox)` at `q = oy·Wp + ox`, the
//! columns `Wo..Wp` of each row junk, `Q = (Ho − 1)·Wp + Wo` positions). Then
//! row `c·k + (ky, kx)` of the patch matrix, over the wide positions, is the
//! plane's floats from `c·P + ky·dh·Wp + kx·dw` on (`P` a channel's plane): a
//! table of offsets ([`crate::convkern::Table`]) stands for the gathered copy.
//!
//! - Forward: `y_wide [og, Q] = W_g [og, kk] · rows [kk, Q]` on
//!   [`crate::convkern::bcast`], then `y`'s rows cut out of the wide ones; or
//!   one product per output row, straight into `y`, where that fills no more
//!   vectors (convnet's first layer: 128 against 136 vectors a channel, and
//!   no copy).
//! - Weight gradient: `dw_g [og, kk] (+)= Σ_t dy_wide_t [og, Q] · rows_tᵀ` on
//!   [`crate::convkern::dot`] over a tile of samples, with `dy` spread to the
//!   wide layout and zeros in the junk columns (adding `0 · x`: nothing, unless
//!   the input holds an infinity or NaN, which the forward step has already
//!   carried into the loss).
//!
//! - Input gradient: the forward product's transpose, each row of
//!   `Wᵀ_g [kk, og] · dy_wide [og, Q]` added into the plane where the row
//!   would have been read (the same table, its rows ordered tap-major so that
//!   the rows of one product tile are different channels' and never overlap;
//!   the weights are rearranged once per group), then the plane's inside cut
//!   out as `dx`. This is col2im without the patch matrix.
//!
//! The input is copied into the plane (or `dx` cut out of it) unless it is
//! that plane already (no padding before it and rows `Wp` wide); the wide rows
//! are `y` or `dy` itself when `Wp = Wo`.

#[cfg(target_arch = "x86_64")]
use crate::conv::{copy_row, ConvStep};
use crate::conv::{ConvAxis, ConvKind};
#[cfg(target_arch = "x86_64")]
use crate::convkern::{Mat, Rows, Simd, Table};

/// Input channels per group an input gradient needs for the shifted form:
/// the rows of a [`crate::convkern::bcast`] tile (at most 6 with either
/// instruction set) are then different channels' and never overlap. With
/// fewer, a tile's rows overlap and each waits for the stores of the one
/// before (Zen 1: lenet's 1 → 6 layer 1.06 → 1.20 ms, convnet's 3 → 32
/// layer 1.78 → 1.86 ms; lenet's 6 → 16 layer 1.59 → 1.19 ms).
const MIN_GRAD_CHANNELS: usize = 6;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(
    crate::convkern::Avx2::BCAST_ROWS <= MIN_GRAD_CHANNELS
        && crate::convkern::Avx512::BCAST_ROWS <= MIN_GRAD_CHANNELS
);

/// A convolution's shifted form: the plane, the wide outputs and the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shifted {
    /// Input `(rows, cols)`.
    input: (usize, usize),
    /// Outputs `(rows, cols)`.
    output: (usize, usize),
    /// Padding before the input `(rows, cols)`.
    pad: (usize, usize),
    /// The plane `(Hp, Wp)`.
    plane: (usize, usize),
    /// Floats between two channels' planes: `Hp·Wp` copied, the input's
    /// plane in place.
    channel: usize,
    /// Wide output positions `Q`.
    wide: usize,
    /// Plane offset of each patch-matrix row: row `c·k + tap`, for the input
    /// gradient row `tap·cg + c` (`kk` of them).
    offsets: Vec<usize>,
    /// Floats of one sample's planes (0 in place: `cg·channel` otherwise,
    /// never 0).
    planes: usize,
    /// Floats of one sample's wide rows (0 when they are `y` or `dy`).
    wides: usize,
}

impl Shifted {
    /// The shifted form of a convolution of `kind` over `axes` with `cg`
    /// input and `og` output channels per group, if the window has two axes
    /// with stride 1 (and an input gradient [`MIN_GRAD_CHANNELS`]); `None`
    /// otherwise or when a size overflows.
    pub(crate) fn new(
        kind: ConvKind,
        axes: &[ConvAxis],
        (cg, og): (usize, usize),
    ) -> Option<Shifted> {
        let [a0, a1] = axes else { return None };
        if kind == ConvKind::InputGrad && cg < MIN_GRAD_CHANNELS {
            return None;
        }
        if a0.stride != 1 || a1.stride != 1 {
            return None;
        }
        let span = |a: &ConvAxis| (a.kernel - 1).checked_mul(a.dilation);
        let plane = (
            a0.output.checked_add(span(a0)?)?,
            a1.output.checked_add(span(a1)?)?,
        );
        let copy = a0.pad_lo != 0 || a1.pad_lo != 0 || plane.1 != a1.input || plane.0 > a0.input;
        let channel = if copy {
            plane.0.checked_mul(plane.1)?
        } else {
            a0.input.checked_mul(a1.input)?
        };
        let wide = a0
            .output
            .checked_sub(1)?
            .checked_mul(plane.1)?
            .checked_add(a1.output)?;
        let k_sp = a0.kernel.checked_mul(a1.kernel)?;
        let kk = cg.checked_mul(k_sp)?;
        let mut offsets = vec![0; kk];
        for c in 0..cg {
            for tap in 0..k_sp {
                let (ky, kx) = (tap / a1.kernel, tap % a1.kernel);
                let off = c
                    .checked_mul(channel)?
                    .checked_add(ky.checked_mul(a0.dilation)?.checked_mul(plane.1)?)?
                    .checked_add(kx.checked_mul(a1.dilation)?)?;
                let row = match kind {
                    ConvKind::Forward | ConvKind::WeightGrad => c * k_sp + tap,
                    ConvKind::InputGrad => tap * cg + c,
                };
                offsets[row] = off;
            }
        }
        let planes = if copy { cg.checked_mul(channel)? } else { 0 };
        let wides = if plane.1 == a1.output {
            0
        } else {
            og.checked_mul(wide)?
        };
        Some(Shifted {
            input: (a0.input, a1.input),
            output: (a0.output, a1.output),
            pad: (a0.pad_lo, a1.pad_lo),
            plane,
            channel,
            wide,
            offsets,
            planes,
            wides,
        })
    }

    /// Floats of scratch one sample needs: its planes and wide rows.
    pub(crate) fn sample_floats(&self) -> Option<usize> {
        self.planes.checked_add(self.wides)
    }

    /// Floats of scratch a piece needs besides its samples' (`tile` of
    /// them): the input gradient's rearranged weights, `kk · og`.
    pub(crate) fn piece_floats(&self, kind: ConvKind, og: usize) -> Option<usize> {
        match kind {
            ConvKind::Forward | ConvKind::WeightGrad => Some(0),
            ConvKind::InputGrad => self.offsets.len().checked_mul(og),
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Shifted {
    /// Whether the input is copied into the plane (else it is the plane).
    fn copied(&self) -> bool {
        self.planes != 0
    }

    /// Copies one sample's channel group at `x` (`cg` planes of the input)
    /// into `planes`, padding as zeros.
    ///
    /// # Safety
    /// `x` holds `cg` input planes and `planes` `cg · Hp · Wp` floats, apart.
    #[inline(always)]
    unsafe fn fill_planes(&self, cg: usize, x: *const f32, planes: *mut f32) {
        let ((h, w), (hp, wp), (pt, pl)) = (self.input, self.plane, self.pad);
        // Input rows and columns inside the plane.
        let rows = h.min(hp.saturating_sub(pt));
        let cols = w.min(wp.saturating_sub(pl));
        // SAFETY: the planes are `cg · channel` floats; plane rows pt + iy < hp
        // and columns pl + ix < wp hold input row iy < h, column ix < w.
        unsafe {
            std::ptr::write_bytes(planes, 0, cg * self.channel);
            for c in 0..cg {
                let (src, dst) = (x.add(c * h * w), planes.add(c * self.channel));
                for iy in 0..rows {
                    let (src, dst) = (src.add(iy * w), dst.add((pt + iy) * wp + pl));
                    std::ptr::copy_nonoverlapping(src, dst, cols);
                }
            }
        }
    }

    /// Cuts one sample's channel group of the input gradient out of
    /// `planes` into `dx` (`cg` planes of the input), zeros where the plane
    /// does not reach.
    ///
    /// # Safety
    /// `planes` holds `cg · Hp · Wp` floats and `dx` `cg` input planes, apart.
    unsafe fn cut_planes(&self, cg: usize, planes: *const f32, dx: *mut f32) {
        let ((h, w), (hp, wp), (pt, pl)) = (self.input, self.plane, self.pad);
        let rows = h.min(hp.saturating_sub(pt));
        let cols = w.min(wp.saturating_sub(pl));
        // SAFETY: as `fill_planes`, the other way.
        unsafe {
            if rows < h || cols < w {
                std::ptr::write_bytes(dx, 0, cg * h * w);
            }
            for c in 0..cg {
                let (src, dst) = (planes.add(c * self.channel), dx.add(c * h * w));
                for iy in 0..rows {
                    let (src, dst) = (src.add((pt + iy) * wp + pl), dst.add(iy * w));
                    std::ptr::copy_nonoverlapping(src, dst, cols);
                }
            }
        }
    }

    /// Vectors of `S` a forward step's products fill output row by output
    /// row (against `Q / LANES` over the wide rows).
    fn row_vectors<S: Simd>(&self) -> usize {
        self.output.0 * self.output.1.div_ceil(S::LANES)
    }

    /// Spreads `og` output planes at `dy` into wide rows at `wide`, zeros in
    /// the junk columns (`SPREAD`; zeroed whole first), or cuts the output
    /// planes out of the wide rows (`!SPREAD`).
    ///
    /// # Safety
    /// `dy` holds `og` output planes and `wide` `og · Q` floats, apart.
    unsafe fn rows<const SPREAD: bool>(&self, og: usize, dy: *mut f32, wide: *mut f32) {
        let ((ho, wo), wp) = (self.output, self.plane.1);
        // SAFETY: channel o < og, output row oy < ho: `wo` floats at `oy·wo`
        // of its plane and at `oy·wp` of its wide row; the wide rows are
        // `og · Q` floats.
        unsafe {
            if SPREAD {
                std::ptr::write_bytes(wide, 0, og * self.wide);
            }
            for o in 0..og {
                let (plane, wide) = (dy.add(o * ho * wo), wide.add(o * self.wide));
                for oy in 0..ho {
                    let out = std::slice::from_raw_parts_mut(plane.add(oy * wo), wo);
                    let row = std::slice::from_raw_parts_mut(wide.add(oy * wp), wo);
                    if SPREAD {
                        copy_row(row, out);
                    } else {
                        copy_row(out, row);
                    }
                }
            }
        }
    }

    /// Samples `lo..hi` of `step` (whose `shifted` is `self`) with `scratch`
    /// (`step.tile` samples' planes, then their wide rows, then the input
    /// gradient's weights); a weight gradient sums into `dw`.
    ///
    /// # Safety
    /// As [`ConvStep::run`] for the arena at `base`; `lo ≤ hi ≤ n`; `scratch`
    /// is this piece's, `tile · sample_floats() + piece_floats()` floats;
    /// `dw` holds the weight gradient's floats, apart from the rest.
    #[inline(always)]
    pub(crate) unsafe fn samples<S: Simd>(
        &self,
        s: S,
        step: &ConvStep,
        base: *mut f32,
        scratch: *mut f32,
        dw: *mut f32,
        (lo, hi): (usize, usize),
    ) {
        use crate::convkern::{bcast, dot};
        let sz = &step.sizes;
        let (cg, og, kk, in_sp, out_sp) = (sz.cg, sz.og, sz.kk, sz.in_sp, sz.out_sp);
        let q = self.wide;
        // SAFETY: the caller's guarantee: samples < n and groups < G address
        // one group's block of x, y and w; the scratch holds `tile` samples'
        // planes (`planes` floats each) and then their wide rows (`wides`).
        unsafe {
            let x_of = |n: usize, g: usize| base.add(step.x + (n * step.c + g * cg) * in_sp);
            let y_of = |n: usize, g: usize| base.add(step.y + (n * step.o + g * og) * out_sp);
            let w_of = |g: usize| base.add(step.w + g * og * kk).cast_const();
            let planes = scratch;
            let wides = scratch.add(step.tile * self.planes);
            // The plane of sample n (the t-th of its tile), filled.
            let plane = |n: usize, g: usize, t: usize| {
                if self.copied() {
                    let p = planes.add(t * self.planes);
                    self.fill_planes(cg, x_of(n, g), p);
                    p.cast_const()
                } else {
                    x_of(n, g).cast_const()
                }
            };
            match step.kind {
                ConvKind::Forward => {
                    let (ho, wo) = self.output;
                    let by_rows =
                        self.wides != 0 && self.row_vectors::<S>() <= q.div_ceil(S::LANES);
                    for n in lo..hi {
                        for g in 0..step.groups {
                            let rows = Table {
                                ptr: plane(n, g, 0),
                                offsets: &self.offsets,
                            };
                            let w = Mat::rows(w_of(g), kk);
                            if by_rows {
                                for oy in 0..ho {
                                    let dst = Mat::rows(y_of(n, g).add(oy * wo), out_sp);
                                    let rows = rows.shift(oy * self.plane.1);
                                    bcast(s, (og, wo, kk), w, rows, dst, false);
                                }
                                continue;
                            }
                            let dst = if self.wides == 0 { y_of(n, g) } else { wides };
                            bcast(s, (og, q, kk), w, rows, Mat::rows(dst, q), false);
                            if self.wides != 0 {
                                self.rows::<false>(og, y_of(n, g), wides);
                            }
                        }
                    }
                }
                ConvKind::WeightGrad => {
                    let mut t0 = lo;
                    while t0 < hi {
                        let t1 = (t0 + step.tile).min(hi);
                        for g in 0..step.groups {
                            for n in t0..t1 {
                                // Fills the plane; `b` below reads them all.
                                plane(n, g, n - t0);
                                if self.wides != 0 {
                                    let wide = wides.add((n - t0) * self.wides);
                                    self.rows::<true>(og, y_of(n, g), wide);
                                }
                            }
                            let b = if self.copied() {
                                (planes.cast_const(), self.planes)
                            } else {
                                (x_of(t0, g).cast_const(), step.c * in_sp)
                            };
                            let a = if self.wides == 0 {
                                (y_of(t0, g).cast_const(), step.o * out_sp)
                            } else {
                                (wides.cast_const(), self.wides)
                            };
                            let rows = Table {
                                ptr: b.0,
                                offsets: &self.offsets,
                            };
                            let dst = Mat::rows(dw.add(g * og * kk), kk);
                            let (a, b) = ((Mat::rows(a.0, q), a.1), (rows, b.1));
                            dot(s, (og, kk, q), t1 - t0, a, b, dst, t0 > lo);
                        }
                        t0 = t1;
                    }
                }
                ConvKind::InputGrad => {
                    let k_sp = kk / cg;
                    let wt = wides.add(step.tile * self.wides);
                    for g in 0..step.groups {
                        // Wᵀ_g, rows `tap·cg + c` as the table's.
                        let w = w_of(g);
                        for o in 0..og {
                            for c in 0..cg {
                                for tap in 0..k_sp {
                                    *wt.add((tap * cg + c) * og + o) =
                                        *w.add(o * kk + c * k_sp + tap);
                                }
                            }
                        }
                        for n in lo..hi {
                            let dst = if self.copied() { planes } else { x_of(n, g) };
                            std::ptr::write_bytes(dst, 0, cg * self.channel);
                            let dy = if self.wides == 0 {
                                y_of(n, g)
                            } else {
                                self.rows::<true>(og, y_of(n, g), wides);
                                wides
                            };
                            let rows = Table {
                                ptr: dst,
                                offsets: &self.offsets,
                            };
                            let (wt, dy) = (
                                Mat::rows(wt.cast_const(), og),
                                Mat::rows(dy.cast_const(), q),
                            );
                            bcast(s, (kk, q, og), wt, dy, rows, true);
                            if self.copied() {
                                self.cut_planes(cg, planes, x_of(n, g));
                            }
                        }
                    }
                }
            }
        }
    }
}
