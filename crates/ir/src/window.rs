//! Window geometry shared by the convolution and max-pooling ops.
//!
//! These ops work on tensors laid out `[N, C, *spatial]` (PyTorch's NCL/NCHW).
//! Along each spatial axis, output position `o` reads a window of input
//! positions `start(o) + k·step` for `k in 0..len(o)`; a position outside
//! `[0, input)` is padding: zero for a convolution, never the largest element
//! for max pooling.

use std::fmt;

/// How the windows along one spatial axis are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AxisWindows {
    /// PyTorch's convolution and pooling windows: window `o` starts at
    /// `o·stride − pad_lo` and covers `kernel` positions `dilation` apart.
    /// Padding on the far side is implied by `output` (so `ceil_mode`'s extra
    /// window and `padding='same'`'s uneven split need nothing more).
    Strided {
        /// Positions in a window.
        kernel: usize,
        /// Distance between the starts of neighbouring windows.
        stride: usize,
        /// Distance between neighbouring positions of a window.
        dilation: usize,
        /// Padding before the first input position.
        pad_lo: usize,
    },
    /// PyTorch's adaptive pooling: window `o` covers positions
    /// `floor(o·input/output) .. ceil((o+1)·input/output)`.
    Adaptive,
}

/// The windows along one spatial axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowAxis {
    /// Size of the input along this axis.
    pub input: usize,
    /// Number of windows (the output's size along this axis).
    pub output: usize,
    /// Where the windows lie.
    pub windows: AxisWindows,
}

/// The windows of a convolution or pooling, one entry per spatial axis.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Window {
    /// Spatial axes, outermost first (`[H, W]` for 2-d).
    pub axes: Vec<WindowAxis>,
}

impl WindowAxis {
    /// Window `o` as `(start, len, step)`: it covers input positions
    /// `start + k·step` for `k in 0..len` (some of them may be padding).
    /// `o` must be below `output`, and the axis must have passed
    /// [`Window::check`].
    pub fn window(&self, o: usize) -> (isize, usize, usize) {
        match self.windows {
            AxisWindows::Strided {
                kernel,
                stride,
                dilation,
                pad_lo,
            } => ((o * stride) as isize - pad_lo as isize, kernel, dilation),
            AxisWindows::Adaptive => {
                let start = o * self.input / self.output;
                let end = ((o + 1) * self.input).div_ceil(self.output);
                (start as isize, end - start, 1)
            }
        }
    }

    /// The largest number of positions in one window.
    pub fn max_len(&self) -> usize {
        (0..self.output)
            .map(|o| self.window(o).1)
            .max()
            .unwrap_or(0)
    }
}

impl Window {
    /// Input spatial sizes.
    pub fn input_shape(&self) -> Vec<usize> {
        self.axes.iter().map(|a| a.input).collect()
    }

    /// Output spatial sizes.
    pub fn output_shape(&self) -> Vec<usize> {
        self.axes.iter().map(|a| a.output).collect()
    }

    /// Kernel sizes, when every axis is strided (a convolution's window).
    pub fn kernel_shape(&self) -> Option<Vec<usize>> {
        self.axes
            .iter()
            .map(|a| match a.windows {
                AxisWindows::Strided { kernel, .. } => Some(kernel),
                AxisWindows::Adaptive => None,
            })
            .collect()
    }

    /// Checks the geometry: at least one spatial axis, every size, kernel,
    /// stride and dilation positive, an adaptive axis no larger than its
    /// input, and every position of every window representable (`isize`), so
    /// that [`WindowAxis::window`] cannot overflow.
    pub fn check(&self) -> Result<(), String> {
        if self.axes.is_empty() {
            return Err("a window needs at least one spatial axis".into());
        }
        for (i, a) in self.axes.iter().enumerate() {
            if a.input == 0 || a.output == 0 {
                return Err(format!(
                    "spatial axis {i}: input {} and output {} must be positive",
                    a.input, a.output
                ));
            }
            match a.windows {
                AxisWindows::Strided {
                    kernel,
                    stride,
                    dilation,
                    pad_lo,
                } => {
                    if kernel == 0 || stride == 0 || dilation == 0 {
                        return Err(format!(
                            "spatial axis {i}: kernel {kernel}, stride {stride} and dilation {dilation} must be positive"
                        ));
                    }
                    let last = (a.output - 1)
                        .checked_mul(stride)
                        .and_then(|s| (kernel - 1).checked_mul(dilation)?.checked_add(s))
                        .filter(|&end| end <= isize::MAX as usize && pad_lo <= isize::MAX as usize);
                    if last.is_none() {
                        return Err(format!("spatial axis {i}: the windows overflow"));
                    }
                }
                AxisWindows::Adaptive => {
                    if a.output > a.input || a.input.checked_mul(a.output + 1).is_none() {
                        return Err(format!(
                            "spatial axis {i}: adaptive output {} must not exceed the input {}",
                            a.output, a.input
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.axes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}->{}", a.input, a.output)?;
            match a.windows {
                AxisWindows::Strided {
                    kernel,
                    stride,
                    dilation,
                    pad_lo,
                } => write!(f, ":k{kernel}s{stride}d{dilation}p{pad_lo}")?,
                AxisWindows::Adaptive => f.write_str(":adaptive")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strided(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        pad_lo: usize,
    ) -> WindowAxis {
        WindowAxis {
            input,
            output,
            windows: AxisWindows::Strided {
                kernel,
                stride,
                dilation: 1,
                pad_lo,
            },
        }
    }

    #[test]
    fn strided_windows_start_at_stride_steps_less_the_padding() {
        let a = strided(5, 3, 3, 2, 1);
        assert_eq!(a.window(0), (-1, 3, 1));
        assert_eq!(a.window(2), (3, 3, 1));
        assert_eq!(a.max_len(), 3);
    }

    #[test]
    fn adaptive_windows_are_pytorchs() {
        // torch.nn.AdaptiveMaxPool1d(3) on length 5: [0,2), [1,4), [3,5)
        let a = WindowAxis {
            input: 5,
            output: 3,
            windows: AxisWindows::Adaptive,
        };
        assert_eq!(
            (0..3).map(|o| a.window(o)).collect::<Vec<_>>(),
            vec![(0, 2, 1), (1, 3, 1), (3, 2, 1)]
        );
        assert_eq!(a.max_len(), 3);
    }

    #[test]
    fn bad_geometry_is_refused() {
        let ok = Window {
            axes: vec![strided(5, 3, 3, 2, 1)],
        };
        assert!(ok.check().is_ok());
        assert!(Window { axes: vec![] }.check().is_err());
        assert!(Window {
            axes: vec![strided(5, 3, 0, 2, 1)]
        }
        .check()
        .is_err());
        assert!(Window {
            axes: vec![strided(5, usize::MAX, 3, 2, 1)]
        }
        .check()
        .is_err());
        let too_many = WindowAxis {
            input: 2,
            output: 3,
            windows: AxisWindows::Adaptive,
        };
        assert!(Window {
            axes: vec![too_many]
        }
        .check()
        .is_err());
    }
}
