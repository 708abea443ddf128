//! Convolution and pooling geometry with PyTorch's formulas: output sizes (`ceil_mode`'s rule
//! that the last window starts inside the input or its left padding, `padding='same'`'s
//! uneven split), the IR windows of convolutions and max poolings, and average poolings as
//! one constant matrix per spatial axis (average pooling is separable: a window's sum is a
//! sum along each axis, and PyTorch's divisor is a product of per-axis counts).
//!
//! Every function here takes one sample's shape `[C, *spatial]` and returns an `Err` message
//! (without the layer's name, which the caller adds) when the layer cannot take it.

use graphc_ir::{AxisWindows, Graph, IrError, NodeId, Window, WindowAxis};
use graphc_spec::{AvgPoolSpec, ConvPadding, ConvSpec, MaxPoolSpec};

/// `4×4`, as messages write spatial sizes.
pub(crate) fn sizes_text(sizes: &[usize]) -> String {
    let parts: Vec<String> = sizes.iter().map(usize::to_string).collect();
    parts.join("×")
}

/// A per-axis argument as messages write it: `5` when every axis has it, else `5×3`.
fn arg_text(values: &[usize]) -> String {
    match values.first() {
        Some(first) if values.iter().all(|v| v == first) => first.to_string(),
        _ => sizes_text(values),
    }
}

/// Splits one sample's `shape` into channels and `dims` spatial sizes, or says what the
/// layer expects (`[N, C, H, W]`) and what it got, batched as PyTorch shows shapes.
pub(crate) fn channels_and_spatial(
    shape: &[usize],
    dims: usize,
    batch: usize,
) -> Result<(usize, &[usize]), String> {
    if shape.len() == dims + 1 {
        return Ok((shape[0], &shape[1..]));
    }
    let expected = if dims == 1 {
        "[N, C, L]"
    } else {
        "[N, C, H, W]"
    };
    let mut batched = vec![batch];
    batched.extend_from_slice(shape);
    Err(format!(
        "expects a {}-d input {expected}, got {batched:?} (set model.input to [C, {}] or add a layer that makes that shape)",
        dims + 2,
        if dims == 1 { "L" } else { "H, W" }
    ))
}

/// The number of windows along one axis, PyTorch's `pooling_output_shape`: windows of
/// `kernel` positions `dilation` apart every `stride`, over `input` plus `pad` on each side;
/// with `ceil_mode` a partial last window counts if it starts inside the input or the left
/// padding. `None` when no window fits.
fn pool_output(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let (input, kernel, stride, pad, dilation) = (
        input as i128,
        kernel as i128,
        stride as i128,
        pad as i128,
        dilation as i128,
    );
    let span = input + 2 * pad - dilation * (kernel - 1) - 1;
    let round_up = if ceil_mode { stride - 1 } else { 0 };
    let mut out = (span + round_up).div_euclid(stride) + 1;
    if ceil_mode && (out - 1) * stride >= input + pad {
        out -= 1;
    }
    usize::try_from(out).ok().filter(|&o| o > 0)
}

/// The padding `(before, after)` of each spatial axis of a convolution: as given, or for
/// `same` the total `dilation·(kernel−1)` with the odd one after (PyTorch's split).
fn conv_padding(conv: &ConvSpec) -> Vec<(usize, usize)> {
    match &conv.padding {
        ConvPadding::Explicit(p) => p.iter().map(|&p| (p, p)).collect(),
        ConvPadding::Same => conv
            .kernel_size
            .iter()
            .zip(&conv.dilation)
            .map(|(&k, &d)| {
                let total = d.saturating_mul(k - 1);
                (total / 2, total - total / 2)
            })
            .collect(),
    }
}

/// The convolution's window on `spatial`, or why the kernel does not fit.
pub(crate) fn conv_window(conv: &ConvSpec, spatial: &[usize]) -> Result<Window, String> {
    let padding = conv_padding(conv);
    let mut axes = Vec::with_capacity(spatial.len());
    let mut padded = Vec::with_capacity(spatial.len());
    let mut output_fits = true;
    for (a, &input) in spatial.iter().enumerate() {
        let (lo, hi) = padding[a];
        let (kernel, stride, dilation) = (conv.kernel_size[a], conv.stride[a], conv.dilation[a]);
        let total = (input as u128) + (lo as u128) + (hi as u128);
        padded.push(total);
        let extent = (dilation as u128) * (kernel as u128 - 1) + 1;
        let output = total
            .checked_sub(extent)
            .map(|span| span / stride as u128 + 1)
            .and_then(|o| usize::try_from(o).ok());
        match output {
            Some(output) => axes.push(WindowAxis {
                input,
                output,
                windows: AxisWindows::Strided {
                    kernel,
                    stride,
                    dilation,
                    pad_lo: lo,
                },
            }),
            None => output_fits = false,
        }
    }
    if !output_fits {
        let dilated = if conv.dilation.iter().any(|&d| d != 1) {
            format!(" dilated by {}", arg_text(&conv.dilation))
        } else {
            String::new()
        };
        let padded: Vec<String> = padded.iter().map(u128::to_string).collect();
        return Err(format!(
            "kernel {}{dilated} is larger than the padded input {}",
            arg_text(&conv.kernel_size),
            padded.join("×")
        ));
    }
    let window = Window { axes };
    window.check()?;
    Ok(window)
}

/// Output sizes of a pooling with PyTorch's rule, or why the input is too small.
fn pool_outputs(
    what: &str,
    spatial: &[usize],
    kernel: &[usize],
    stride: &[usize],
    padding: &[usize],
    dilation: &[usize],
    ceil_mode: bool,
) -> Result<Vec<usize>, String> {
    let outputs: Option<Vec<usize>> = (0..spatial.len())
        .map(|a| {
            pool_output(
                spatial[a],
                kernel[a],
                stride[a],
                padding[a],
                dilation[a],
                ceil_mode,
            )
        })
        .collect();
    outputs.ok_or_else(|| {
        format!(
            "the input {} (padding {}) is too small for a {what} of kernel {}{}",
            sizes_text(spatial),
            arg_text(padding),
            arg_text(kernel),
            if dilation.iter().any(|&d| d != 1) {
                format!(" dilated by {}", arg_text(dilation))
            } else {
                String::new()
            }
        )
    })
}

/// The max pooling's window on `spatial`.
pub(crate) fn max_pool_window(pool: &MaxPoolSpec, spatial: &[usize]) -> Result<Window, String> {
    let outputs = pool_outputs(
        "max pooling",
        spatial,
        &pool.kernel_size,
        &pool.stride,
        &pool.padding,
        &pool.dilation,
        pool.ceil_mode,
    )?;
    let axes = (0..spatial.len())
        .map(|a| WindowAxis {
            input: spatial[a],
            output: outputs[a],
            windows: AxisWindows::Strided {
                kernel: pool.kernel_size[a],
                stride: pool.stride[a],
                dilation: pool.dilation[a],
                pad_lo: pool.padding[a],
            },
        })
        .collect();
    let window = Window { axes };
    window.check()?;
    Ok(window)
}

/// Adaptive output sizes: `None` keeps the input's size, as PyTorch's `None` does.
pub(crate) fn adaptive_outputs(output_size: &[Option<usize>], spatial: &[usize]) -> Vec<usize> {
    output_size
        .iter()
        .zip(spatial)
        .map(|(o, &i)| o.unwrap_or(i))
        .collect()
}

/// The adaptive max pooling's window: output sizes no larger than the input (the IR's
/// adaptive windows need that; PyTorch would repeat input positions).
pub(crate) fn adaptive_max_window(
    output_size: &[Option<usize>],
    spatial: &[usize],
) -> Result<Window, String> {
    let outputs = adaptive_outputs(output_size, spatial);
    if outputs.iter().zip(spatial).any(|(o, i)| o > i) {
        return Err(format!(
            "output_size {} is larger than the input {}; adaptive max pooling here needs an output no larger than its input",
            sizes_text(&outputs),
            sizes_text(spatial)
        ));
    }
    let axes = spatial
        .iter()
        .zip(&outputs)
        .map(|(&input, &output)| WindowAxis {
            input,
            output,
            windows: AxisWindows::Adaptive,
        })
        .collect();
    let window = Window { axes };
    window.check()?;
    Ok(window)
}

/// A pooling along one spatial axis as a matrix: `input × output` values, row-major, where
/// entry `(i, o)` is the weight of input position `i` in output `o`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AxisMatrix {
    /// Input size.
    pub(crate) input: usize,
    /// Output size.
    pub(crate) output: usize,
    /// `input·output` weights, row-major.
    pub(crate) weights: Vec<f32>,
}

impl AxisMatrix {
    /// Each output `o` averages input positions `cells(o)` (a range clipped to the input),
    /// weighted by `1/divisor(o)`.
    fn new(
        input: usize,
        output: usize,
        cells: impl Fn(usize) -> (usize, usize),
        divisor: impl Fn(usize) -> f64,
    ) -> AxisMatrix {
        let mut weights = vec![0f32; input * output];
        for o in 0..output {
            let (start, end) = cells(o);
            let d = divisor(o);
            if d > 0.0 {
                for i in start..end {
                    weights[i * output + o] = (1.0 / d) as f32;
                }
            }
        }
        AxisMatrix {
            input,
            output,
            weights,
        }
    }

    /// True when the matrix leaves the axis as it is.
    fn is_identity(&self) -> bool {
        self.input == self.output
            && (0..self.input).all(|i| {
                (0..self.output).all(|o| self.weights[i * self.output + o] == f32::from(i == o))
            })
    }
}

/// The number of values in `input·output` weights, refused when absurd (a matrix per axis is
/// small for any real image; this keeps a hostile spec from allocating).
const MAX_MATRIX: usize = 1 << 26;

fn matrix_fits(input: usize, output: usize) -> Result<(), String> {
    match input.checked_mul(output) {
        Some(n) if n <= MAX_MATRIX => Ok(()),
        _ => Err(format!(
            "an axis of {input} positions pooled to {output} is too large to build"
        )),
    }
}

/// `nn.AvgPool1d/2d` on `spatial`: output sizes, and one matrix per axis whose entries carry
/// PyTorch's divisor — the window clipped to the input plus padding (`count_include_pad`), or
/// to the input alone, a product over axes; or `divisor_override`, put in the first axis.
pub(crate) fn avg_pool_matrices(
    pool: &AvgPoolSpec,
    spatial: &[usize],
) -> Result<Vec<AxisMatrix>, String> {
    let ones = vec![1; spatial.len()];
    let outputs = pool_outputs(
        "average pooling",
        spatial,
        &pool.kernel_size,
        &pool.stride,
        &pool.padding,
        &ones,
        pool.ceil_mode,
    )?;
    let mut matrices = Vec::with_capacity(spatial.len());
    for (a, (&input, &output)) in spatial.iter().zip(&outputs).enumerate() {
        matrix_fits(input, output)?;
        let (kernel, stride, pad) = (
            pool.kernel_size[a] as i128,
            pool.stride[a] as i128,
            pool.padding[a] as i128,
        );
        let (n, p) = (input as i128, pad);
        // PyTorch's avg_pool: start = o·stride − pad, end = min(start + kernel, input + pad),
        // then both clipped to the input for the sum.
        let window = |o: usize| {
            let start = o as i128 * stride - p;
            let end = (start + kernel).min(n + p);
            (start, end)
        };
        let clip = |(start, end): (i128, i128)| (start.max(0) as usize, end.min(n).max(0) as usize);
        let divisor = |o: usize| -> f64 {
            let (start, end) = window(o);
            let (s, e) = clip((start, end));
            match (pool.divisor_override, a) {
                (Some(d), 0) => d as f64,
                (Some(_), _) => 1.0,
                (None, _) if pool.count_include_pad => (end - start) as f64,
                (None, _) => e.saturating_sub(s) as f64,
            }
        };
        matrices.push(AxisMatrix::new(input, output, |o| clip(window(o)), divisor));
    }
    Ok(matrices)
}

/// `nn.AdaptiveAvgPool1d/2d` on `spatial`: window `o` of each axis covers
/// `floor(o·in/out) .. ceil((o+1)·in/out)` and divides by its length.
pub(crate) fn adaptive_avg_matrices(
    output_size: &[Option<usize>],
    spatial: &[usize],
) -> Result<Vec<AxisMatrix>, String> {
    let outputs = adaptive_outputs(output_size, spatial);
    let mut matrices = Vec::with_capacity(spatial.len());
    for (&input, &output) in spatial.iter().zip(&outputs) {
        matrix_fits(input, output)?;
        let cells = |o: usize| (o * input / output, ((o + 1) * input).div_ceil(output));
        let divisor = |o: usize| {
            let (s, e) = cells(o);
            (e - s) as f64
        };
        matrices.push(AxisMatrix::new(input, output, cells, divisor));
    }
    Ok(matrices)
}

/// Applies `matrices` to the spatial axes of `x` (`[N, C, *spatial]`), one matrix product per
/// axis: the last axis directly, any other moved last by a transpose and back.
pub(crate) fn pool_per_axis(
    graph: &mut Graph,
    x: NodeId,
    matrices: &[AxisMatrix],
) -> Result<NodeId, IrError> {
    let rank = graph.shape(x).len();
    let mut h = x;
    for (a, m) in matrices.iter().enumerate().rev() {
        if m.is_identity() {
            continue;
        }
        let axis = 2 + a;
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(axis, rank - 1);
        let moved = if axis == rank - 1 {
            h
        } else {
            graph.transpose(h, &perm)?
        };
        let shape = graph.shape(moved).to_vec();
        let rows = shape[..rank - 1].iter().product::<usize>();
        let flat = graph.reshape(moved, &[rows, m.input])?;
        let weights = graph.constant(m.weights.clone(), &[m.input, m.output])?;
        let pooled = graph.matmul(flat, weights, false, false)?;
        let mut out_shape = shape;
        out_shape[rank - 1] = m.output;
        let pooled = graph.reshape(pooled, &out_shape)?;
        h = if axis == rank - 1 {
            pooled
        } else {
            graph.transpose(pooled, &perm)?
        };
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_output_follows_pytorchs_ceil_mode_rule() {
        // nn.MaxPool1d(2, stride=2, ceil_mode=True) on length 5 gives 3; on 4 gives 2.
        assert_eq!(pool_output(5, 2, 2, 0, 1, true), Some(3));
        assert_eq!(pool_output(5, 2, 2, 0, 1, false), Some(2));
        assert_eq!(pool_output(4, 2, 2, 0, 1, true), Some(2));
        // kernel 3 stride 2 pad 1 on 6, ceil: (6+2-3+1)/2+1 = 4, but window 3 starts at
        // 3·2−1 = 5 < 6+1, so 4 stays; on 5: ceil((5+2-3)/2)+1 = 3, start 3 < 6: stays.
        assert_eq!(pool_output(6, 3, 2, 1, 1, true), Some(4));
        // kernel 2 stride 3 on 4 with ceil: ceil(2/3)+1 = 2, window 1 starts at 3 < 4.
        assert_eq!(pool_output(4, 2, 3, 0, 1, true), Some(2));
        // kernel 2, stride 2, pad 1 on 2, ceil: ceil(3/2)+1 = 3, but start 4 >= 2+1: 2.
        assert_eq!(pool_output(2, 2, 2, 1, 1, true), Some(2));
        assert_eq!(pool_output(1, 2, 2, 0, 1, false), None);
    }

    #[test]
    fn avg_pool_divisors_are_pytorchs() {
        // nn.AvgPool1d(3, stride=2, padding=1) on length 4: windows [-1,2), [1,4), [3,5)→[3,5);
        // count_include_pad divides by 3, 3 and min(3+3, 4+1) − 3 = 2.
        let pool = AvgPoolSpec {
            kernel_size: vec![3],
            stride: vec![2],
            padding: vec![1],
            ceil_mode: true,
            count_include_pad: true,
            divisor_override: None,
        };
        let m = &avg_pool_matrices(&pool, &[4]).unwrap()[0];
        assert_eq!(m.output, 3);
        let third = 1.0 / 3.0;
        #[rustfmt::skip]
        let expected = vec![
            third, 0.0, 0.0,
            third, third, 0.0,
            0.0, third, 0.0,
            0.0, third, 0.5,
        ];
        assert_eq!(m.weights, expected);
        let exclude = AvgPoolSpec {
            count_include_pad: false,
            ..pool
        };
        let m = &avg_pool_matrices(&exclude, &[4]).unwrap()[0];
        assert_eq!(&m.weights[..3], &[0.5, 0.0, 0.0]);
        assert_eq!(&m.weights[9..], &[0.0, third, 1.0]);
    }

    #[test]
    fn adaptive_windows_overlap_as_pytorchs() {
        let m = &adaptive_avg_matrices(&[Some(3)], &[5]).unwrap()[0];
        // windows [0,2), [1,4), [3,5)
        let third = 1.0 / 3.0;
        #[rustfmt::skip]
        let expected = vec![
            0.5, 0.0, 0.0,
            0.5, third, 0.0,
            0.0, third, 0.0,
            0.0, third, 0.5,
            0.0, 0.0, 0.5,
        ];
        assert_eq!(m.weights, expected);
        assert!(adaptive_avg_matrices(&[None], &[4]).unwrap()[0].is_identity());
    }

    #[test]
    fn conv_that_does_not_fit_names_kernel_and_padded_input() {
        let conv = ConvSpec {
            out_channels: 1,
            kernel_size: vec![5, 5],
            stride: vec![1, 1],
            padding: ConvPadding::Explicit(vec![0, 0]),
            dilation: vec![1, 1],
            groups: 1,
            bias: true,
        };
        assert_eq!(
            conv_window(&conv, &[4, 4]).unwrap_err(),
            "kernel 5 is larger than the padded input 4×4"
        );
        let same = ConvSpec {
            padding: ConvPadding::Same,
            kernel_size: vec![4, 3],
            ..conv
        };
        let w = conv_window(&same, &[4, 4]).unwrap();
        assert_eq!(w.output_shape(), vec![4, 4]);
        // total padding 3 along the first axis: 1 before, 2 after.
        assert_eq!(
            w.axes[0].windows,
            AxisWindows::Strided {
                kernel: 4,
                stride: 1,
                dilation: 1,
                pad_lo: 1
            }
        );
    }
}
