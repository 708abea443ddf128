//! The windowed ops (convolution, its two gradients, max pooling and its
//! gradient) as plain loops over [`Taps`]: every (output position, kernel
//! position, input position) triple of a window that lands inside the input.
//! Padding is simply never visited: zero for a convolution, never the largest
//! element for max pooling.

use graphc_ir::{TensorType, Window};

use crate::eval::Scalar;

/// One in-bounds position of a window: where it is in the kernel and in the
/// input, each as a row-major index into its spatial plane.
#[derive(Debug, Clone, Copy)]
struct Tap {
    kernel: usize,
    input: usize,
}

/// For every output position (row-major over the window's output sizes), its
/// in-bounds taps in row-major order of the input (the last axis fastest),
/// which is the order PyTorch's pooling kernels visit a window in.
struct Taps {
    per_output: Vec<Vec<Tap>>,
    input_plane: usize,
    output_plane: usize,
    kernel_plane: usize,
}

impl Taps {
    fn new(window: &Window) -> Taps {
        // Per axis and output position, the in-bounds (kernel, input) coordinates.
        let axes: Vec<Vec<Vec<(usize, usize)>>> = window
            .axes
            .iter()
            .map(|axis| {
                (0..axis.output)
                    .map(|o| {
                        let (start, len, step) = axis.window(o);
                        (0..len)
                            .filter_map(|k| {
                                let p = start + (k * step) as isize;
                                usize::try_from(p)
                                    .ok()
                                    .filter(|&p| p < axis.input)
                                    .map(|p| (k, p))
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let output_shape = window.output_shape();
        let input_shape = window.input_shape();
        let kernel_shape: Vec<usize> = window.axes.iter().map(|a| a.max_len()).collect();
        let output_plane = output_shape.iter().product();
        let mut per_output = Vec::with_capacity(output_plane);
        for flat in 0..output_plane {
            // Cartesian product of the axes' taps, the last axis fastest.
            let mut taps = vec![Tap {
                kernel: 0,
                input: 0,
            }];
            for (a, o) in unflatten(flat, &output_shape).into_iter().enumerate() {
                let mut next = Vec::with_capacity(taps.len() * axes[a][o].len());
                for t in &taps {
                    for &(k, p) in &axes[a][o] {
                        next.push(Tap {
                            kernel: t.kernel * kernel_shape[a] + k,
                            input: t.input * input_shape[a] + p,
                        });
                    }
                }
                taps = next;
            }
            per_output.push(taps);
        }
        Taps {
            per_output,
            input_plane: input_shape.iter().product(),
            output_plane,
            kernel_plane: kernel_shape.iter().product(),
        }
    }
}

/// The coordinates of row-major index `flat` in `shape`.
fn unflatten(flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut coords = vec![0; shape.len()];
    let mut rest = flat;
    for (c, &size) in coords.iter_mut().zip(shape).rev() {
        *c = rest % size;
        rest /= size;
    }
    coords
}

/// Batch, channels (of the `[N, C, *spatial]` operand) and the channel groups
/// of a convolution: `(n, c, o, groups)` read from the shapes.
struct Channels {
    batch: usize,
    /// Input channels per group.
    c_per_group: usize,
    /// Output channels per group.
    o_per_group: usize,
    groups: usize,
}

impl Channels {
    /// From `x`'s or `dx`'s `[N, C, ..]` and `w`'s `[O, C/groups, ..]`.
    fn new(batched: &TensorType, weight: &TensorType, groups: usize) -> Channels {
        Channels {
            batch: batched.shape[0],
            c_per_group: weight.shape[1],
            o_per_group: weight.shape[0] / groups,
            groups,
        }
    }

    fn c(&self) -> usize {
        self.c_per_group * self.groups
    }

    fn o(&self) -> usize {
        self.o_per_group * self.groups
    }

    /// Every `(n, g, oc, ic)`: batch, group, output channel and input channel
    /// (both as indices over all channels) and the weight's input channel.
    fn each(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        for n in 0..self.batch {
            for g in 0..self.groups {
                for j in 0..self.o_per_group {
                    for i in 0..self.c_per_group {
                        f(n, g * self.o_per_group + j, g * self.c_per_group + i, i);
                    }
                }
            }
        }
    }
}

/// `y[n, oc, o] = Σ_{ic in oc's group, taps (k, i) of o} x[n, ic, i] · w[oc, ic', k]`:
/// `torch.nn.functional.conv1d/conv2d` without bias, zero padding.
pub fn conv<T: Scalar>(
    x: &[T],
    xt: &TensorType,
    w: &[T],
    wt: &TensorType,
    window: &Window,
    groups: usize,
) -> Vec<T> {
    let taps = Taps::new(window);
    let ch = Channels::new(xt, wt, groups);
    let mut y = vec![T::zero(); ch.batch * ch.o() * taps.output_plane];
    ch.each(|n, oc, ic, icw| {
        let x_plane = &x[(n * ch.c() + ic) * taps.input_plane..][..taps.input_plane];
        let w_plane = &w[(oc * ch.c_per_group + icw) * taps.kernel_plane..][..taps.kernel_plane];
        let y_plane = &mut y[(n * ch.o() + oc) * taps.output_plane..][..taps.output_plane];
        for (out, window_taps) in y_plane.iter_mut().zip(&taps.per_output) {
            for t in window_taps {
                *out = *out + x_plane[t.input] * w_plane[t.kernel];
            }
        }
    });
    y
}

/// `dx[n, ic, i] = Σ_{oc in ic's group, (o, k) whose tap is i} dy[n, oc, o] · w[oc, ic', k]`:
/// the adjoint of [`conv`] in `x` (a transposed convolution).
pub fn conv_input_grad<T: Scalar>(
    dy: &[T],
    w: &[T],
    wt: &TensorType,
    result: &TensorType,
    window: &Window,
    groups: usize,
) -> Vec<T> {
    let taps = Taps::new(window);
    let ch = Channels::new(result, wt, groups);
    let mut dx = vec![T::zero(); ch.batch * ch.c() * taps.input_plane];
    ch.each(|n, oc, ic, icw| {
        let dy_plane = &dy[(n * ch.o() + oc) * taps.output_plane..][..taps.output_plane];
        let w_plane = &w[(oc * ch.c_per_group + icw) * taps.kernel_plane..][..taps.kernel_plane];
        let dx_plane = &mut dx[(n * ch.c() + ic) * taps.input_plane..][..taps.input_plane];
        for (&g, window_taps) in dy_plane.iter().zip(&taps.per_output) {
            for t in window_taps {
                dx_plane[t.input] = dx_plane[t.input] + g * w_plane[t.kernel];
            }
        }
    });
    dx
}

/// `dw[oc, ic', k] = Σ_{n, o, tap (k, i) of o} x[n, ic, i] · dy[n, oc, o]`:
/// the adjoint of [`conv`] in `w`.
pub fn conv_weight_grad<T: Scalar>(
    x: &[T],
    dy: &[T],
    result: &TensorType,
    xt: &TensorType,
    window: &Window,
    groups: usize,
) -> Vec<T> {
    let taps = Taps::new(window);
    let ch = Channels::new(xt, result, groups);
    let mut dw = vec![T::zero(); ch.o() * ch.c_per_group * taps.kernel_plane];
    ch.each(|n, oc, ic, icw| {
        let x_plane = &x[(n * ch.c() + ic) * taps.input_plane..][..taps.input_plane];
        let dy_plane = &dy[(n * ch.o() + oc) * taps.output_plane..][..taps.output_plane];
        let dw_plane =
            &mut dw[(oc * ch.c_per_group + icw) * taps.kernel_plane..][..taps.kernel_plane];
        for (&g, window_taps) in dy_plane.iter().zip(&taps.per_output) {
            for t in window_taps {
                dw_plane[t.kernel] = dw_plane[t.kernel] + x_plane[t.input] * g;
            }
        }
    });
    dw
}

/// The input index of each window's argmax in one `[*spatial]` plane of `x`,
/// as PyTorch's CPU max-pool kernels choose it: start at the window's first
/// in-bounds position with a running maximum of -inf, and move to a later
/// position when its value is greater than the running maximum or is NaN.
/// So ties go to the first, a NaN beats everything and the last NaN wins, and
/// a window of -inf keeps its first position.
fn argmaxes<T: Scalar>(x_plane: &[T], taps: &Taps) -> Vec<usize> {
    taps.per_output
        .iter()
        .map(|window_taps| {
            let mut best = window_taps.first().map_or(0, |t| t.input);
            let mut max = T::neg_infinity();
            for t in window_taps {
                let v = x_plane[t.input];
                if v > max || v.is_nan() {
                    max = v;
                    best = t.input;
                }
            }
            best
        })
        .collect()
}

/// `y[n, c, o] = v[n, c, argmax of x over window o]` (see [`argmaxes`]).
pub fn max_pool<T: Scalar>(x: &[T], v: &[T], xt: &TensorType, window: &Window) -> Vec<T> {
    let taps = Taps::new(window);
    let planes = xt.shape[0] * xt.shape[1];
    let mut y = Vec::with_capacity(planes * taps.output_plane);
    for p in 0..planes {
        let x_plane = &x[p * taps.input_plane..][..taps.input_plane];
        let v_plane = &v[p * taps.input_plane..][..taps.input_plane];
        y.extend(argmaxes(x_plane, &taps).into_iter().map(|i| v_plane[i]));
    }
    y
}

/// `dx[n, c, i] = Σ_{o whose argmax of x is i} dy[n, c, o]`: the adjoint of
/// [`max_pool`] in `v`, accumulating where windows overlap.
pub fn max_pool_grad<T: Scalar>(x: &[T], dy: &[T], xt: &TensorType, window: &Window) -> Vec<T> {
    let taps = Taps::new(window);
    let planes = xt.shape[0] * xt.shape[1];
    let mut dx = vec![T::zero(); planes * taps.input_plane];
    for p in 0..planes {
        let x_plane = &x[p * taps.input_plane..][..taps.input_plane];
        let dy_plane = &dy[p * taps.output_plane..][..taps.output_plane];
        let dx_plane = &mut dx[p * taps.input_plane..][..taps.input_plane];
        for (&g, i) in dy_plane.iter().zip(argmaxes(x_plane, &taps)) {
            dx_plane[i] = dx_plane[i] + g;
        }
    }
    dx
}
