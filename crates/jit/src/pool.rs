//! Max pooling that carries its argmax, and its gradient, as steps of their
//! own: plain loops over each `(sample, channel)` plane, planes split across
//! the [`team`]. The argmax rule is the interpreter's (PyTorch's pooling
//! index): the window's in-bounds positions in row-major order, the first
//! largest wins, a NaN counts as largest and a later NaN replaces an earlier
//! one; padding never wins. The gradient zeroes its planes and adds each
//! `dy` element at its window's argmax in output order, so both results are
//! bit for bit the interpreter's.
//!
//! A forward step may also write each window's argmax (its plane index, as
//! `u32` bits in an f32 slot) to an index buffer, and a gradient step of the
//! same window over the same `x` then scatters through those indices instead
//! of searching `x` again: the gradient reads a quarter of a 2×2 pooling's
//! input, and `x` need not be kept until the backward pass (`plan.rs` pairs
//! the two). Scattering in output order through the same argmaxes keeps
//! the gradient bit for bit.

use std::fmt;
use std::slice::ChunksExactMut;

use graphc_ir::Window;

use crate::conv::{even_piece, Base};
use crate::convkern::Isa;
#[cfg(target_arch = "x86_64")]
use crate::convkern::{MaxPool2x2, Pairs};
use crate::team;

/// Spatial axes a pooling step handles (PyTorch pools up to 3-d).
pub(crate) const MAX_AXES: usize = 4;

/// Smallest step (window elements over all planes) split across threads.
const PARALLEL_MIN_READS: usize = 1 << 16;

/// The in-bounds positions of one window along one axis:
/// `first + i·step` for `i` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// First in-bounds input position.
    pub first: usize,
    /// In-bounds positions (at least 1).
    pub count: usize,
    /// Distance between positions.
    pub step: usize,
}

/// A max-pooling step (or its gradient) with resolved arena offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolStep {
    /// `MaxPoolGrad` (else `MaxPool`).
    pub grad: bool,
    /// Planes: batch × channels.
    pub planes: usize,
    /// Input sizes per axis.
    pub input: Vec<usize>,
    /// Output sizes per axis.
    pub output: Vec<usize>,
    /// Per axis, per output position: the window's in-bounds positions.
    pub spans: Vec<Vec<Span>>,
    /// Input floats per plane.
    pub in_sp: usize,
    /// Output floats per plane.
    pub out_sp: usize,
    /// Input floats between neighbouring positions per axis.
    x_strides: Vec<usize>,
    /// Pieces the planes are split in (1 ≤ pieces ≤ planes).
    pub pieces: usize,
    /// Two axes of 2×2 windows at stride 2 without padding (every span
    /// `{2·o, 2, 1}`): [`MaxPool2x2`] on `isa`, else [`pairs_plane`].
    pub pairs: bool,
    /// The instruction set [`MaxPool2x2`] runs on (`pairs` steps only; `None`:
    /// the plain loops).
    pub isa: Option<Isa>,
    /// Offset of `x` (`[N, C, *input]`).
    pub x: usize,
    /// Offset of `v` (`[N, C, *input]`), or of `dy` (`[N, C, *output]`) for the gradient.
    pub v: usize,
    /// Offset of the result: `[N, C, *output]`, or `dx` (`[N, C, *input]`).
    pub out: usize,
    /// Offset of the argmax indices (`[N, C, *output]`, each a plane index as
    /// `u32` bits): written by a forward step, read by a gradient step in place
    /// of searching `x` (which it then does not read).
    pub index: Option<usize>,
}

/// Whether `spans` are 2-d windows of 2 × 2 at stride 2 from the plane's
/// start, every one whole ([`PoolStep::pairs`]).
fn two_by_two(spans: &[Vec<Span>]) -> bool {
    spans.len() == 2
        && spans.iter().all(|axis| {
            (axis.iter().enumerate()).all(|(o, s)| {
                *s == Span {
                    first: 2 * o,
                    count: 2,
                    step: 1,
                }
            })
        })
}

impl PoolStep {
    /// The step over `window` for `planes` planes, at offset 0 everywhere;
    /// `None` when a size overflows, a window holds no input position or there
    /// are more than [`MAX_AXES`] axes.
    pub(crate) fn new(
        grad: bool,
        window: &Window,
        planes: usize,
        threads: usize,
    ) -> Option<PoolStep> {
        if window.check().is_err() || window.axes.len() > MAX_AXES {
            return None;
        }
        let mut spans = Vec::with_capacity(window.axes.len());
        let mut reads = 1usize;
        for a in &window.axes {
            let axis: Vec<Span> = (0..a.output)
                .map(|o| {
                    let (start, len, step) = a.window(o);
                    let (start, step_i) = (start as i128, step as i128);
                    let k_lo = if start < 0 {
                        (-start + step_i - 1) / step_i
                    } else {
                        0
                    };
                    let k_hi = ((a.input as i128 - start + step_i - 1) / step_i).min(len as i128);
                    (k_hi > k_lo).then(|| Span {
                        first: (start + k_lo * step_i) as usize,
                        count: (k_hi - k_lo) as usize,
                        step,
                    })
                })
                .collect::<Option<_>>()?;
            let widest = axis.iter().map(|s| s.count).max().unwrap_or(0);
            reads = reads.checked_mul(a.output)?.checked_mul(widest)?;
            spans.push(axis);
        }
        let input = window.input_shape();
        let output = window.output_shape();
        let product = |v: &[usize]| v.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
        let (in_sp, out_sp) = (product(&input)?, product(&output)?);
        let mut x_strides = vec![1usize; input.len()];
        for a in (0..input.len().saturating_sub(1)).rev() {
            x_strides[a] = x_strides[a + 1].checked_mul(input[a + 1])?;
        }
        planes.checked_mul(in_sp)?;
        let reads = reads.checked_mul(planes)?;
        let pieces = if threads < 2 || reads < PARALLEL_MIN_READS || planes == 0 {
            1
        } else {
            threads.min(planes)
        };
        let pairs = two_by_two(&spans);
        let isa = if pairs { Isa::detect() } else { None };
        Some(PoolStep {
            grad,
            planes,
            input,
            output,
            spans,
            in_sp,
            out_sp,
            x_strides,
            pieces,
            pairs,
            isa,
            x: 0,
            v: 0,
            out: 0,
            index: None,
        })
    }

    /// Floats of the index buffer (one per output).
    pub(crate) fn index_len(&self) -> Option<usize> {
        self.planes.checked_mul(self.out_sp)
    }

    /// Floats of each buffer: `(x, v or dy, result)`.
    pub(crate) fn lens(&self) -> Option<(usize, usize, usize)> {
        let input = self.planes.checked_mul(self.in_sp)?;
        let output = self.planes.checked_mul(self.out_sp)?;
        Some(if self.grad {
            (input, output, input)
        } else {
            (input, input, output)
        })
    }

    /// Whether the spans, sizes and strides fit the shapes (for
    /// `Plan::validate`: the routine indexes by them).
    pub(crate) fn consistent(&self) -> bool {
        let d = self.input.len();
        let product = |v: &[usize]| v.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
        let mut strides = vec![1usize; d];
        for a in (0..d.saturating_sub(1)).rev() {
            match strides[a + 1].checked_mul(self.input[a + 1]) {
                Some(s) => strides[a] = s,
                None => return false,
            }
        }
        (1..=MAX_AXES).contains(&d)
            && self.output.len() == d
            && self.spans.len() == d
            && product(&self.input) == Some(self.in_sp)
            && (self.index.is_none() || u32::try_from(self.in_sp).is_ok())
            && product(&self.output) == Some(self.out_sp)
            && strides == self.x_strides
            && (1..=self.planes.max(1)).contains(&self.pieces)
            && self.lens().is_some()
            && (!self.pairs || two_by_two(&self.spans))
            && (self.pairs || self.isa.is_none())
            && self.spans.iter().enumerate().all(|(a, axis)| {
                axis.len() == self.output[a]
                    && axis.iter().all(|s| {
                        s.count >= 1
                            && (s.count - 1)
                                .checked_mul(s.step)
                                .and_then(|e| e.checked_add(s.first))
                                .is_some_and(|last| last < self.input[a])
                    })
            })
    }

    /// Runs the step on the arena at `base`.
    ///
    /// # Safety
    /// `base` must point to an arena holding the three buffers at their
    /// offsets with [`Self::lens`] floats (`x` unread by a gradient with
    /// indices) and the index buffer, if any, with [`Self::index_len`], the
    /// result overlapping no operand and a written index buffer nothing, and
    /// the step must be [`Self::consistent`] (all checked by `Plan::validate`).
    pub(crate) unsafe fn run(&self, base: *mut f32) {
        let shared = Base(base);
        let job = |piece: usize| {
            let b = shared;
            let (lo, hi) = even_piece(self.planes, self.pieces, piece);
            for p in lo..hi {
                // SAFETY: the caller's guarantee; plane p < planes, and pieces
                // write disjoint planes.
                unsafe { self.plane(b.0, p) }
            }
        };
        if self.pieces <= 1 {
            job(0);
        } else {
            team::run(self.pieces, &job);
        }
    }

    /// One plane.
    ///
    /// # Safety
    /// As [`Self::run`], with `p < planes`.
    unsafe fn plane(&self, base: *mut f32, p: usize) {
        let d = self.input.len();
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) =
            (self.isa).filter(|isa| !(self.grad && self.index.is_some()) || isa.pool_scatter())
        {
            // SAFETY: plane p of each buffer lies inside it (the caller's
            // guarantee; a gradient with indices reads no `x`); `isa` is set
            // for `pairs` steps only (checked by `consistent`): 2×2 windows at
            // stride 2 inside the plane, 2·output ≤ input; a plane with
            // indices fits in u32 (`consistent`).
            unsafe {
                let dims = (self.output[0], self.output[1], self.input[0], self.input[1]);
                let index = self
                    .index
                    .map(|i| base.add(i + p * self.out_sp).cast::<u32>());
                let x = || base.add(self.x + p * self.in_sp).cast_const();
                let (pairs, out) = if self.grad {
                    let dy = base.add(self.v + p * self.out_sp).cast_const();
                    let pairs = match index {
                        Some(index) => Pairs::GradAt {
                            index: index.cast_const(),
                            dy,
                        },
                        None => Pairs::Grad { x: x(), dy },
                    };
                    (pairs, base.add(self.out + p * self.in_sp))
                } else {
                    // Pooling x itself: the search's maxima are the values.
                    let v =
                        (self.v != self.x).then(|| base.add(self.v + p * self.in_sp).cast_const());
                    (
                        Pairs::Forward { x: x(), v, index },
                        base.add(self.out + p * self.out_sp),
                    )
                };
                isa.run(MaxPool2x2 { dims, pairs, out });
            }
            return;
        }
        if let (true, Some(index)) = (self.grad, self.index) {
            // SAFETY: plane p of each buffer lies inside it; a scattered index
            // is checked against the plane before the write.
            unsafe {
                let idx = base.add(index + p * self.out_sp).cast_const().cast::<u32>();
                let dy = base.add(self.v + p * self.out_sp).cast_const();
                let dx = base.add(self.out + p * self.in_sp);
                std::ptr::write_bytes(dx, 0, self.in_sp);
                for o in 0..self.out_sp {
                    let i = *idx.add(o) as usize;
                    debug_assert!(i < self.in_sp, "argmax {i} outside its plane");
                    if i < self.in_sp {
                        *dx.add(i) += *dy.add(o);
                    }
                }
            }
            return;
        }
        if self.pairs {
            // SAFETY: the caller's guarantee; not a gradient with indices.
            unsafe { self.pairs_portable(base, p) };
            return;
        }
        if d <= 2 {
            // SAFETY: the caller's guarantee.
            unsafe { self.plane_2d(base, p) };
            return;
        }
        // SAFETY: plane p of each buffer (the index buffer included, one
        // entry per output) lies inside it; `argmax` returns an in-plane input
        // index (every span is inside its axis) and `o` stays below `out_sp`.
        unsafe {
            let x = base.add(self.x + p * self.in_sp).cast_const();
            let mut windows = [Span {
                first: 0,
                count: 1,
                step: 1,
            }; MAX_AXES];
            let mut at = [0usize; MAX_AXES];
            if self.grad {
                let dy = base.add(self.v + p * self.out_sp).cast_const();
                let dx = base.add(self.out + p * self.in_sp);
                std::ptr::write_bytes(dx, 0, self.in_sp);
                for o in 0..self.out_sp {
                    for a in 0..d {
                        windows[a] = self.spans[a][at[a]];
                    }
                    let i = self.argmax(x, &windows[..d]);
                    *dx.add(i) += *dy.add(o);
                    self.advance(&mut at[..d]);
                }
            } else {
                let v = base.add(self.v + p * self.in_sp).cast_const();
                let y = base.add(self.out + p * self.out_sp);
                let index = self
                    .index
                    .map(|i| base.add(i + p * self.out_sp).cast::<u32>());
                for o in 0..self.out_sp {
                    for a in 0..d {
                        windows[a] = self.spans[a][at[a]];
                    }
                    let i = self.argmax(x, &windows[..d]);
                    *y.add(o) = *v.add(i);
                    if let Some(index) = index {
                        // in_sp fits in u32 (`consistent`).
                        *index.add(o) = i as u32;
                    }
                    self.advance(&mut at[..d]);
                }
            }
        }
    }

    /// [`Self::plane`] for one or two axes (a 1-d plane as one row): the same
    /// windows in the same order, with the two loops written out (the general
    /// walk cost 40 ns per output of lenet's 2×2 pooling).
    ///
    /// # Safety
    /// As [`Self::plane`], with at most 2 axes.
    unsafe fn plane_2d(&self, base: *mut f32, p: usize) {
        const ONE: [Span; 1] = [Span {
            first: 0,
            count: 1,
            step: 1,
        }];
        let d = self.input.len();
        let (rows, cols, row_stride) = if d == 2 {
            (&self.spans[0][..], &self.spans[1][..], self.x_strides[0])
        } else {
            (&ONE[..], &self.spans[0][..], 0)
        };
        // SAFETY: plane p of each buffer (the index buffer included, one
        // entry per output) lies inside it; every span lies inside its axis,
        // so `first + i·step` of a row span times the row stride plus that of
        // a column span is an in-plane input index; `o` stays below `out_sp`
        // (rows × cols outputs).
        unsafe {
            let x = base.add(self.x + p * self.in_sp).cast_const();
            let argmax = |r: &Span, c: &Span| {
                let mut best = f32::NEG_INFINITY;
                let mut best_i = usize::MAX;
                for ri in 0..r.count {
                    let row = (r.first + ri * r.step) * row_stride;
                    for ci in 0..c.count {
                        let i = row + c.first + ci * c.step;
                        let v = *x.add(i);
                        if best_i == usize::MAX || v > best || v.is_nan() {
                            best = v;
                            best_i = i;
                        }
                    }
                }
                best_i
            };
            let mut o = 0;
            if self.grad {
                let dy = base.add(self.v + p * self.out_sp).cast_const();
                let dx = base.add(self.out + p * self.in_sp);
                std::ptr::write_bytes(dx, 0, self.in_sp);
                for r in rows {
                    for c in cols {
                        *dx.add(argmax(r, c)) += *dy.add(o);
                        o += 1;
                    }
                }
            } else {
                let v = base.add(self.v + p * self.in_sp).cast_const();
                let y = base.add(self.out + p * self.out_sp);
                let index = self
                    .index
                    .map(|i| base.add(i + p * self.out_sp).cast::<u32>());
                for r in rows {
                    for c in cols {
                        let i = argmax(r, c);
                        *y.add(o) = *v.add(i);
                        if let Some(index) = index {
                            // in_sp fits in u32 (`consistent`).
                            *index.add(o) = i as u32;
                        }
                        o += 1;
                    }
                }
            }
        }
    }

    /// [`Self::plane`] for 2×2 windows at stride 2 ([`Self::pairs`]) without
    /// the vector kernels: the plane's buffers as slices for [`pairs_plane`].
    /// (A gradient with indices scatters through them in `plane`: the scalar
    /// scatter ran lenet's in 2–3 ns an output, selects per window 4× slower.)
    ///
    /// # Safety
    /// As [`Self::plane`], with `pairs` set, and not a gradient with indices
    /// (whose `x` may be gone).
    unsafe fn pairs_portable(&self, base: *mut f32, p: usize) {
        use std::slice::{from_raw_parts, from_raw_parts_mut};
        let dims = Pairs2x2 {
            rows: self.output[0],
            cols: self.output[1],
            in_rows: self.input[0],
            in_cols: self.input[1],
        };
        let (in_sp, out_sp) = (self.in_sp, self.out_sp);
        // SAFETY: plane p of each buffer lies inside it and the written one
        // (result, or a forward step's index buffer) overlaps none of the
        // others (the caller's guarantee; a gradient with indices reads no
        // `x`, and a forward step of `x` itself reads no `v`); the index
        // buffer holds u32 bits in f32 slots of the same size and alignment.
        unsafe {
            let plane = |at: usize, len: usize| from_raw_parts(base.add(at + p * len), len);
            let plane_mut = |at: usize, len: usize| from_raw_parts_mut(base.add(at + p * len), len);
            let op = match self.grad {
                true => PairsOp::Grad {
                    x: plane(self.x, in_sp),
                    dy: plane(self.v, out_sp),
                    dx: plane_mut(self.out, in_sp),
                },
                false => PairsOp::Forward {
                    x: plane(self.x, in_sp),
                    v: (self.v != self.x).then(|| plane(self.v, in_sp)),
                    y: plane_mut(self.out, out_sp),
                    index: self.index.map(|i| {
                        from_raw_parts_mut(base.add(i + p * out_sp).cast::<u32>(), out_sp)
                    }),
                },
            };
            pairs_plane(dims, op);
        }
    }

    /// The next output position in row-major order (wrapping to all zeros).
    fn advance(&self, at: &mut [usize]) {
        for a in (0..at.len()).rev() {
            at[a] += 1;
            if at[a] < self.output[a] {
                return;
            }
            at[a] = 0;
        }
    }

    /// The plane index of the window's argmax: its positions in row-major
    /// order, the first largest, a NaN counting as largest and a later NaN
    /// replacing an earlier one.
    ///
    /// # Safety
    /// `x` holds a plane; every span lies inside its axis.
    unsafe fn argmax(&self, x: *const f32, windows: &[Span]) -> usize {
        let d = windows.len();
        let inner = windows[d - 1];
        let mut at = [0usize; MAX_AXES];
        let mut best = f32::NEG_INFINITY;
        let mut best_i = usize::MAX;
        loop {
            let mut offset = 0;
            for a in 0..d - 1 {
                let w = windows[a];
                offset += (w.first + at[a] * w.step) * self.x_strides[a];
            }
            let mut i = offset + inner.first;
            for _ in 0..inner.count {
                // SAFETY: i is an in-bounds position of the window in this plane.
                let v = unsafe { *x.add(i) };
                if best_i == usize::MAX || v > best || v.is_nan() {
                    best = v;
                    best_i = i;
                }
                i += inner.step;
            }
            let mut a = d - 1;
            loop {
                if a == 0 {
                    return best_i;
                }
                a -= 1;
                at[a] += 1;
                if at[a] < windows[a].count {
                    break;
                }
                at[a] = 0;
            }
        }
    }
}

/// The plane of a 2×2, stride-2 pooling without padding: `rows × cols`
/// windows over `in_rows × in_cols` inputs (`2·rows ≤ in_rows`, `2·cols ≤ in_cols`).
#[derive(Debug, Clone, Copy)]
struct Pairs2x2 {
    rows: usize,
    cols: usize,
    in_rows: usize,
    in_cols: usize,
}

/// What [`pairs_plane`] computes, on one plane of each buffer.
enum PairsOp<'a> {
    /// `y[o] = v[argmax]` (`v: None`: `x` itself), and the argmax's plane
    /// index in `index`, if any.
    Forward {
        x: &'a [f32],
        v: Option<&'a [f32]>,
        y: &'a mut [f32],
        index: Option<&'a mut [u32]>,
    },
    /// `dx` zeroed, then `0 + dy[o]` at each window's argmax of `x`.
    Grad {
        x: &'a [f32],
        dy: &'a [f32],
        dx: &'a mut [f32],
    },
}

/// The argmax of a window's four values `x` in row-major order (0 to 3),
/// with `v` at it: the first largest, a NaN counting as largest and a later
/// NaN replacing an earlier one (`PoolStep::argmax`'s rule); as selects.
#[inline(always)]
fn pick(x: [f32; 4], v: [f32; 4]) -> (f32, u32) {
    let (mut best, mut value, mut at) = (x[0], v[0], 0);
    for k in 1..4 {
        let take = (x[k] > best) | x[k].is_nan();
        best = if take { x[k] } else { best };
        value = if take { v[k] } else { value };
        at = if take { k as u32 } else { at };
    }
    (value, at)
}

/// One plane of a 2×2, stride-2 max pooling without padding without the
/// vector kernels ([`MaxPool2x2`]), with its results bit for bit:
/// straight-line selects per window over a row pair. (The general loops of
/// [`PoolStep::plane_2d`] ran lenet's first pooling, 75,264 windows with
/// their argmaxes, in 1.5–2.2 ms on a Zen 1; this in 0.39–0.80 ms.)
fn pairs_plane(dims: Pairs2x2, op: PairsOp<'_>) {
    let Pairs2x2 {
        rows,
        cols,
        in_rows,
        in_cols,
    } = dims;
    // The inputs of the windows of output row oy: two rows of 2·cols.
    fn row_pair(x: &[f32], oy: usize, (cols, in_cols): (usize, usize)) -> (&[f32], &[f32]) {
        let r0 = 2 * oy * in_cols;
        (
            &x[r0..r0 + 2 * cols],
            &x[r0 + in_cols..r0 + in_cols + 2 * cols],
        )
    }
    let row_pair = |x, oy| row_pair(x, oy, (cols, in_cols));
    // Plane offset of a window's position 0..4 from its position 0 (a plane
    // fits in u32 wherever indices are kept: `PoolStep::consistent`).
    let step = |at: u32| (at & 1) + (at >> 1) * in_cols as u32;
    // The gradient's stores write every input of a window; those outside
    // all windows (an odd last row or column) are zeroed first.
    let covered = 2 * rows == in_rows && 2 * cols == in_cols;
    // The gradient's two rows of output row oy's windows, in pairs.
    fn grad_rows(
        dx: &mut [f32],
        oy: usize,
        (cols, in_cols): (usize, usize),
    ) -> (ChunksExactMut<'_, f32>, ChunksExactMut<'_, f32>) {
        let r0 = 2 * oy * in_cols;
        let (d0, d1) = dx[r0..r0 + 2 * in_cols].split_at_mut(in_cols);
        (
            d0[..2 * cols].chunks_exact_mut(2),
            d1[..2 * cols].chunks_exact_mut(2),
        )
    }
    match op {
        PairsOp::Forward { x, v, y, mut index } => {
            for oy in 0..rows {
                let (x0, x1) = row_pair(x, oy);
                let windows = x0.chunks_exact(2).zip(x1.chunks_exact(2));
                let y_row = &mut y[oy * cols..(oy + 1) * cols];
                let first = (2 * oy * in_cols) as u32;
                let mut index_row = index
                    .as_deref_mut()
                    .map(|i| &mut i[oy * cols..(oy + 1) * cols]);
                match (v, index_row.as_deref_mut()) {
                    // Pooling x itself: the search's maxima are the values.
                    (None, None) => {
                        for ((p, q), y) in windows.zip(y_row) {
                            let x = [p[0], p[1], q[0], q[1]];
                            *y = pick(x, x).0;
                        }
                    }
                    (None, Some(index_row)) => {
                        let outputs = y_row.iter_mut().zip(index_row);
                        for (ox, ((p, q), (y, i))) in windows.zip(outputs).enumerate() {
                            let x = [p[0], p[1], q[0], q[1]];
                            let (value, at) = pick(x, x);
                            *y = value;
                            *i = first + 2 * ox as u32 + step(at);
                        }
                    }
                    (Some(v), _) => {
                        let (v0, v1) = row_pair(v, oy);
                        let values = v0.chunks_exact(2).zip(v1.chunks_exact(2));
                        for (ox, (((p, q), (s, t)), y)) in
                            windows.zip(values).zip(y_row).enumerate()
                        {
                            let (value, at) =
                                pick([p[0], p[1], q[0], q[1]], [s[0], s[1], t[0], t[1]]);
                            *y = value;
                            if let Some(index_row) = index_row.as_deref_mut() {
                                index_row[ox] = first + 2 * ox as u32 + step(at);
                            }
                        }
                    }
                }
            }
        }
        PairsOp::Grad { x, dy, dx } => {
            if !covered {
                dx.fill(0.0);
            }
            for oy in 0..rows {
                let (x0, x1) = row_pair(x, oy);
                let windows = x0.chunks_exact(2).zip(x1.chunks_exact(2));
                let (d0, d1) = grad_rows(dx, oy, (cols, in_cols));
                let dy_row = &dy[oy * cols..(oy + 1) * cols];
                for ((((p, q), g), e), f) in windows.zip(dy_row).zip(d0).zip(d1) {
                    let x = [p[0], p[1], q[0], q[1]];
                    put(pick(x, x).1, *g, e, f);
                }
            }
        }
    }
}

/// A window's gradient: `0 + g` at its argmax `at` (0..4 in row-major
/// order over the upper pair `e` and the lower `f`), +0 elsewhere.
#[inline(always)]
fn put(at: u32, g: f32, e: &mut [f32], f: &mut [f32]) {
    let g = 0.0 + g;
    let z = |k: u32| if at == k { g } else { 0.0 };
    (e[0], e[1], f[0], f[1]) = (z(0), z(1), z(2), z(3));
}

impl fmt::Display for PoolStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} planes {:?}->{:?}, x {} {} {} {} {}{}, {} pieces",
            if self.grad {
                "max pool grad"
            } else {
                "max pool"
            },
            self.planes,
            self.input,
            self.output,
            self.x,
            if self.grad { "dy" } else { "v" },
            self.v,
            if self.grad { "dx" } else { "y" },
            self.out,
            match self.index {
                Some(i) if self.grad => format!(", argmax from {i}"),
                Some(i) => format!(", argmax to {i}"),
                None => String::new(),
            },
            self.pieces
        )
    }
}

#[cfg(test)]
mod tests {
    use graphc_ir::{AxisWindows, WindowAxis};

    use super::*;
    use crate::conv::tests::axis;

    /// The argmax of each window by the definition: positions from
    /// `WindowAxis::window` in row-major order, padding skipped.
    fn reference_argmax(window: &Window, plane: &[f32]) -> Vec<usize> {
        let d = window.axes.len();
        let out: Vec<usize> = window.output_shape();
        let total: usize = out.iter().product();
        let mut result = Vec::new();
        for flat in 0..total {
            let mut o = vec![0; d];
            let mut r = flat;
            for a in (0..d).rev() {
                o[a] = r % out[a];
                r /= out[a];
            }
            let lists: Vec<Vec<usize>> = (0..d)
                .map(|a| {
                    let ax = &window.axes[a];
                    let (start, len, step) = ax.window(o[a]);
                    (0..len)
                        .map(|k| start + (k * step) as isize)
                        .filter(|&p| p >= 0 && (p as usize) < ax.input)
                        .map(|p| p as usize)
                        .collect()
                })
                .collect();
            let mut best: Option<(f32, usize)> = None;
            let mut idx = vec![0; d];
            'scan: loop {
                let mut i = 0;
                for a in 0..d {
                    i = i * window.axes[a].input + lists[a][idx[a]];
                }
                let v = plane[i];
                best = match best {
                    Some((b, _)) if !(v > b || v.is_nan()) => best,
                    _ => Some((v, i)),
                };
                for a in (0..d).rev() {
                    idx[a] += 1;
                    if idx[a] < lists[a].len() {
                        continue 'scan;
                    }
                    idx[a] = 0;
                }
                break;
            }
            result.push(best.unwrap().1);
        }
        result
    }

    fn check(window: &Window, planes: usize) {
        let input: usize = window.input_shape().iter().product();
        let output: usize = window.output_shape().iter().product();
        // Few distinct values (ties), NaNs and infinities.
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            1.0,
            1.0,
            2.0,
        ];
        // Every path of a `pairs` step: each instruction set of the CPU, and the plain loops.
        let paths: Vec<Option<Isa>> = Isa::supported()
            .into_iter()
            .map(Some)
            .chain([None])
            .collect();
        for (threads, isa) in [1, 2]
            .into_iter()
            .flat_map(|t| paths.iter().map(move |&i| (t, i)))
        {
            let new = |grad| {
                let mut step = PoolStep::new(grad, window, planes, threads).unwrap();
                if step.pairs {
                    step.isa = isa;
                }
                step
            };
            for grad in [false, true] {
                let mut step = new(grad);
                if threads == 2 && planes >= 2 {
                    step.pieces = 2;
                }
                assert!(step.consistent());
                let (x_len, v_len, out_len) = step.lens().unwrap();
                let x: Vec<f32> = (0..x_len)
                    .map(|i| specials[(i * 7 + i / 3) % specials.len()])
                    .collect();
                let v: Vec<f32> = (0..v_len).map(|i| i as f32 * 0.5 + 0.25).collect();
                let mut arena = x.clone();
                arena.extend(&v);
                arena.extend(vec![f32::NAN; out_len]);
                (step.x, step.v, step.out) = (0, x_len, x_len + v_len);
                // SAFETY: the arena holds x, v and the result one after another.
                unsafe { step.run(arena.as_mut_ptr()) };
                let mut expected = vec![0.0f32; out_len];
                for p in 0..planes {
                    let arg = reference_argmax(window, &x[p * input..(p + 1) * input]);
                    for (o, &i) in arg.iter().enumerate() {
                        if grad {
                            expected[p * input + i] += v[p * output + o];
                        } else {
                            expected[p * output + o] = v[p * input + i];
                        }
                    }
                }
                let got = &arena[x_len + v_len..];
                let bits = |s: &[f32]| s.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(got), bits(&expected), "{step} on {isa:?}");
            }
            // The forward pooling of x itself writes its argmaxes; the gradient
            // scatters through them with x overwritten (it must not search it).
            let (mut forward, mut grad) = (new(false), new(true));
            if threads == 2 && planes >= 2 {
                (forward.pieces, grad.pieces) = (2, 2);
            }
            let (x_len, _, y_len) = forward.lens().unwrap();
            let index_len = forward.index_len().unwrap();
            let x: Vec<f32> = (0..x_len)
                .map(|i| specials[(i * 5 + i / 2) % specials.len()])
                .collect();
            let dy: Vec<f32> = (0..y_len).map(|i| i as f32 * 0.5 - 3.25).collect();
            // x, y, the indices, dy, dx.
            let mut arena = x.clone();
            let (y_at, index_at, dy_at) = (x_len, x_len + y_len, x_len + y_len + index_len);
            let dx_at = dy_at + y_len;
            arena.extend(vec![f32::NAN; y_len + index_len]);
            arena.extend(&dy);
            arena.extend(vec![f32::NAN; x_len]);
            (forward.x, forward.v, forward.out, forward.index) = (0, 0, y_at, Some(index_at));
            (grad.x, grad.v, grad.out, grad.index) = (usize::MAX, dy_at, dx_at, Some(index_at));
            assert!(forward.consistent() && grad.consistent());
            // SAFETY: the arena holds every buffer at its offset; the gradient
            // with indices reads no x.
            unsafe { forward.run(arena.as_mut_ptr()) };
            arena[..x_len].fill(f32::NAN);
            // SAFETY: as above.
            unsafe { grad.run(arena.as_mut_ptr()) };
            let mut want_y = vec![0.0f32; y_len];
            let mut want_dx = vec![0.0f32; x_len];
            for p in 0..planes {
                let arg = reference_argmax(window, &x[p * input..(p + 1) * input]);
                for (o, &i) in arg.iter().enumerate() {
                    want_y[p * output + o] = x[p * input + i];
                    want_dx[p * input + i] += dy[p * output + o];
                }
            }
            let bits = |s: &[f32]| s.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&arena[y_at..index_at]),
                bits(&want_y),
                "{forward} on {isa:?}"
            );
            assert_eq!(bits(&arena[dx_at..]), bits(&want_dx), "{grad} on {isa:?}");
            // The forward pooling of x itself without indices.
            forward.index = None;
            arena[..x_len].copy_from_slice(&x);
            arena[y_at..index_at].fill(f32::NAN);
            // SAFETY: as above.
            unsafe { forward.run(arena.as_mut_ptr()) };
            assert_eq!(
                bits(&arena[y_at..index_at]),
                bits(&want_y),
                "{forward} on {isa:?}"
            );
        }
    }

    #[test]
    fn argmax_and_gradient_match_the_definition_bit_for_bit() {
        let w = |axes| Window { axes };
        check(&w(vec![axis(9, 3, 2, 1, (1, 1))]), 3);
        check(&w(vec![axis(10, 2, 2, 2, (1, 0))]), 2);
        check(
            &w(vec![axis(8, 2, 2, 1, (0, 0)), axis(8, 2, 2, 1, (0, 0))]),
            4,
        );
        // 2×2 at stride 2 over odd sizes (the last row and column unread) and
        // rows of more than 16 outputs: the vector kernel's masks.
        check(
            &w(vec![axis(5, 2, 2, 1, (0, 0)), axis(37, 2, 2, 1, (0, 0))]),
            3,
        );
        // lenet's two poolings: rows of 14 and 5 outputs (a whole vector
        // and a tail, or a tail alone).
        check(
            &w(vec![axis(28, 2, 2, 1, (0, 0)), axis(28, 2, 2, 1, (0, 0))]),
            3,
        );
        check(
            &w(vec![axis(10, 2, 2, 1, (0, 0)), axis(10, 2, 2, 1, (0, 0))]),
            5,
        );
        // Overlapping windows (the gradient adds twice), ceil-mode-like far padding.
        check(
            &w(vec![axis(7, 3, 2, 1, (1, 2)), axis(6, 3, 1, 2, (2, 1))]),
            3,
        );
        let adaptive = |input, output| WindowAxis {
            input,
            output,
            windows: AxisWindows::Adaptive,
        };
        check(&w(vec![adaptive(7, 3), adaptive(5, 5)]), 2);
        check(&w(vec![adaptive(10, 4)]), 3);
    }

    #[test]
    fn a_later_nan_replaces_an_earlier_one_and_ties_keep_the_first() {
        let window = Window {
            axes: vec![WindowAxis {
                input: 6,
                output: 1,
                windows: AxisWindows::Adaptive,
            }],
        };
        let mut step = PoolStep::new(false, &window, 1, 1).unwrap();
        for (x, want) in [
            ([1.0, 3.0, 3.0, f32::NAN, 0.0, f32::NAN], 5.0),
            ([1.0, 3.0, 3.0, 2.0, 0.0, -1.0], 1.0),
            ([f32::NEG_INFINITY; 6], 0.0),
            ([f32::NAN, 9.0, 1.0, 2.0, 0.0, -1.0], 0.0),
        ] {
            let mut arena = x.to_vec();
            arena.extend([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0]);
            (step.x, step.v, step.out) = (0, 6, 12);
            // SAFETY: the arena holds x, v and the one-element result.
            unsafe { step.run(arena.as_mut_ptr()) };
            assert_eq!(arena[12], want, "{x:?}");
        }
    }
}
