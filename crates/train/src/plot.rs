//! Loss plots: `DIR/loss.svg` (training loss per step, validation loss per epoch) drawn with
//! plotters' SVG backend (the default-on feature `plot`).

use std::path::Path;

use crate::error::TrainError;
use crate::metrics::PlotRun;
use crate::{write_atomic, DataError};
use plotters::prelude::*;

/// Plot size in pixels.
const SIZE: (u32, u32) = (900, 540);
/// Line colours, one per run in turn (matplotlib's "tab10").
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Most training points drawn per run; longer runs are thinned by averaging neighbours, so the
/// file stays small (a point is about 20 bytes of SVG).
const MAX_POINTS: usize = 2000;

/// Draws the runs' losses into an SVG file at `out`, written atomically.
///
/// Each run has one colour. Its per-step training loss is a faint line, and over it a
/// smoothed one (an exponential moving average as TensorBoard draws, debiased at the start,
/// spanning about 1/25 of the run; none for runs under 40 steps, whose line is drawn solid);
/// its validation loss a dashed line with a dot at the end of each epoch. The x axis is
/// "step", the y axis "loss" — on a log scale (and smoothed in log space) when every loss is
/// positive and they span more than a factor of 20, as losses that fall quickly do. A legend
/// names the lines when there is more than one. Runs of more than 2000 steps are drawn with
/// each point the mean of consecutive steps.
pub fn write_loss_plot(out: &Path, runs: &[PlotRun]) -> Result<(), TrainError> {
    write_styled_loss_plot(out, runs, &PlotStyle::default())
}

/// What [`write_styled_loss_plot`] changes from [`write_loss_plot`]'s drawing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlotStyle {
    /// Over each run's training loss, its exponentially weighted moving average for every
    /// β (each in [0, 1)), bias-corrected as the PyTorch chapter draws it:
    /// `v_t = β·v_{t-1} + (1-β)·x_t`, shown as `v_t / (1-β^t)`. With betas, the raw loss is
    /// drawn faint under them instead of the automatic smoothing.
    pub betas: Vec<f64>,
    /// A log-scale y axis when the largest loss exceeds the smallest by more than this
    /// factor (`None`: 20).
    pub log_ratio: Option<f32>,
    /// Text after the title (which runs diverged, in a sweep).
    pub note: Option<String>,
}

/// [`write_loss_plot`] drawn with `style`.
pub fn write_styled_loss_plot(
    out: &Path,
    runs: &[PlotRun],
    style: &PlotStyle,
) -> Result<(), TrainError> {
    let betas = &style.betas;
    if let Some(b) = betas.iter().find(|b| !(0.0..1.0).contains(*b)) {
        return Err(TrainError::Data(format!(
            "--smooth {b}: a smoothing beta must be at least 0 and less than 1"
        )));
    }
    let finite = |points: &[(u64, f32)]| -> Vec<(u64, f32)> {
        points
            .iter()
            .copied()
            .filter(|(_, l)| l.is_finite())
            .collect()
    };
    let mut series: Vec<Lines> = runs
        .iter()
        .map(|r| Lines {
            train: finite(&r.train),
            smooth: None,
            ewa: Vec::new(),
            valid: finite(&r.valid),
        })
        .collect();
    let all = || series.iter().flat_map(|l| l.train.iter().chain(&l.valid));
    if all().next().is_none() {
        return Err(TrainError::Data(format!(
            "nothing to plot into `{}`: the runs have no finite losses",
            out.display()
        )));
    }
    let max_step = all().map(|p| p.0).max().unwrap_or(1).max(1);
    let lo = all().map(|p| p.1).fold(f32::INFINITY, f32::min);
    let hi = all().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
    let log = lo > 0.0 && hi / lo > style.log_ratio.unwrap_or(20.0);
    for lines in &mut series {
        if betas.is_empty() {
            lines.smooth = smooth(&lines.train, log).map(|s| thin(&s, MAX_POINTS));
        }
        lines.ewa = betas
            .iter()
            .map(|&b| (b, thin(&ewa(&lines.train, b), MAX_POINTS)))
            .collect();
        lines.train = thin(&lines.train, MAX_POINTS);
    }
    let several = runs.len() > 1 || runs.iter().any(|r| !r.valid.is_empty()) || !betas.is_empty();

    let mut svg = String::new();
    let result = draw(
        &mut svg,
        runs,
        &series,
        Axes {
            max_step,
            lo,
            hi,
            log,
        },
        several,
        style.note.as_deref(),
    );
    result.map_err(|detail| DataError::Io {
        action: "draw the plot",
        path: out.to_path_buf(),
        detail,
        hint: "report this as a bug",
    })?;
    Ok(write_atomic(out, svg.as_bytes())?)
}

/// One run's points as drawn: finite losses only, training points thinned.
struct Lines {
    train: Vec<(u64, f32)>,
    /// The smoothed training loss, for runs long enough to need it.
    smooth: Option<Vec<(u64, f32)>>,
    /// The bias-corrected moving averages asked for, by β.
    ewa: Vec<(f64, Vec<(u64, f32)>)>,
    valid: Vec<(u64, f32)>,
}

/// The axes' extent.
#[derive(Debug, Clone, Copy)]
struct Axes {
    max_step: u64,
    lo: f32,
    hi: f32,
    log: bool,
}

/// Draws into `svg`; the error is plotters' message.
fn draw(
    svg: &mut String,
    runs: &[PlotRun],
    series: &[Lines],
    axes: Axes,
    legend: bool,
    note: Option<&str>,
) -> Result<(), String> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut caption = match runs {
        [one] => format!("loss — {}", one.label),
        _ => "loss".to_owned(),
    };
    if let Some(note) = note {
        caption = format!("{caption} — {note}");
    }
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(caption, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64);
    let x_range = 0u64..axes.max_step;
    if axes.log {
        let y_range = (f64::from(axes.lo) / 1.15..f64::from(axes.hi) * 1.15).log_scale();
        let chart = builder
            .build_cartesian_2d(x_range, y_range)
            .map_err(|e| e.to_string())?;
        plot_series(chart, runs, series, legend, "loss (log scale)")
    } else {
        let (lo, hi) = (f64::from(axes.lo), f64::from(axes.hi));
        let pad = if hi > lo {
            (hi - lo) * 0.05
        } else {
            lo.abs().max(1.0) * 0.1
        };
        let lo = if lo >= 0.0 {
            (lo - pad).max(0.0)
        } else {
            lo - pad
        };
        let chart = builder
            .build_cartesian_2d(x_range, lo..hi + pad)
            .map_err(|e| e.to_string())?;
        plot_series(chart, runs, series, legend, "loss")
    }
}

/// Draws the mesh, every run's lines and the legend into a built chart.
fn plot_series<'a, Y>(
    mut chart: ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordu64, Y>,
    >,
    runs: &[PlotRun],
    series: &[Lines],
    legend: bool,
    y_desc: &str,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .axis_desc_style(("sans-serif", 20))
        .label_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(err)?;
    let several_runs = runs.len() > 1;
    for (i, (run, lines)) in runs.iter().zip(series).enumerate() {
        let Lines {
            train,
            smooth,
            ewa,
            valid,
        } = lines;
        let colour = COLOURS[i % COLOURS.len()];
        let name = |what: &str| {
            if several_runs {
                format!("{} {what}", run.label)
            } else {
                format!("{what} loss")
            }
        };
        let to_xy = |&(s, l): &(u64, f32)| (s, f64::from(l));
        let solid = colour.stroke_width(2);
        match smooth {
            Some(smooth) => {
                chart
                    .draw_series(LineSeries::new(
                        train.iter().map(to_xy),
                        colour.mix(0.3).stroke_width(1),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series(LineSeries::new(smooth.iter().map(to_xy), solid))
                    .map_err(err)?
                    .label(name("train"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], solid));
            }
            None if !train.is_empty() => {
                let style = if ewa.is_empty() {
                    solid
                } else {
                    colour.mix(0.3).stroke_width(1)
                };
                chart
                    .draw_series(LineSeries::new(train.iter().map(to_xy), style))
                    .map_err(err)?
                    .label(name("train"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            }
            None => {}
        }
        for (j, (beta, points)) in ewa.iter().enumerate() {
            let c = COLOURS[(i + (j + 1) * runs.len()) % COLOURS.len()].stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.iter().map(to_xy), c))
                .map_err(err)?
                .label(format!("{}, β {beta}", name("train")))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c));
        }
        if !valid.is_empty() {
            let dark = RGBColor(
                (colour.0 as f32 * 0.6) as u8,
                (colour.1 as f32 * 0.6) as u8,
                (colour.2 as f32 * 0.6) as u8,
            );
            chart
                .draw_series(DashedLineSeries::new(
                    valid.iter().map(to_xy),
                    8,
                    5,
                    dark.stroke_width(2),
                ))
                .map_err(err)?
                .label(name("valid"))
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (9, 0)], dark.stroke_width(2))
                        + PathElement::new(vec![(15, 0), (24, 0)], dark.stroke_width(2))
                        + Circle::new((12, 0), 3, dark.filled())
                });
            chart
                .draw_series(
                    valid
                        .iter()
                        .map(|p| Circle::new(to_xy(p), 3, dark.filled())),
                )
                .map_err(err)?;
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 17))
            .draw()
            .map_err(err)?;
    }
    chart.plotting_area().present().map_err(err)?;
    Ok(())
}

/// Fewest steps for which the training loss is smoothed.
const SMOOTH_MIN_POINTS: usize = 40;
/// The smoothing spans 1/25 of the run.
const SMOOTH_SPANS_PER_RUN: f64 = 25.0;

/// The debiased exponential moving average of the losses (of their logarithms when `log`),
/// with an effective span of 1/25 of the run; `None` for runs too short to need it.
fn smooth(points: &[(u64, f32)], log: bool) -> Option<Vec<(u64, f32)>> {
    if points.len() < SMOOTH_MIN_POINTS {
        return None;
    }
    let span = points.len() as f64 / SMOOTH_SPANS_PER_RUN;
    let weight = 1.0 - 1.0 / span.max(1.0);
    let (mut ema, mut decay) = (0.0f64, 1.0f64);
    Some(
        points
            .iter()
            .map(|&(step, loss)| {
                let v = if log {
                    f64::from(loss).ln()
                } else {
                    f64::from(loss)
                };
                ema = weight * ema + (1.0 - weight) * v;
                decay *= weight;
                // Dividing by 1 - weight^t removes the pull towards the initial 0.
                let debiased = if decay < 1.0 { ema / (1.0 - decay) } else { v };
                let value = if log { debiased.exp() } else { debiased };
                (step, value as f32)
            })
            .collect(),
    )
}

/// The exponentially weighted moving average of `points` with weight `beta` on the past,
/// bias-corrected: `v_t = β·v_{t-1} + (1-β)·x_t` from `v_0 = 0`, shown as `v_t / (1-β^t)`
/// (`t` counts the points; the first value is the first loss itself).
fn ewa(points: &[(u64, f32)], beta: f64) -> Vec<(u64, f32)> {
    let (mut v, mut power) = (0.0f64, 1.0f64);
    points
        .iter()
        .map(|&(step, x)| {
            v = beta * v + (1.0 - beta) * f64::from(x);
            power *= beta;
            (step, (v / (1.0 - power)) as f32)
        })
        .collect()
}

/// At most `max` points: runs of consecutive points replaced by their mean step and loss.
fn thin(points: &[(u64, f32)], max: usize) -> Vec<(u64, f32)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            let step = c.iter().map(|p| p.0 as f64).sum::<f64>() / n;
            let loss = c.iter().map(|p| f64::from(p.1)).sum::<f64>() / n;
            (step.round() as u64, loss as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_a_debiased_moving_average_and_skips_short_runs() {
        let short: Vec<(u64, f32)> = (1..40).map(|s| (s, 1.0)).collect();
        assert_eq!(smooth(&short, false), None);
        // A constant loss stays constant from the first point on (no pull towards 0).
        let flat: Vec<(u64, f32)> = (1..=100).map(|s| (s, 2.5)).collect();
        let s = smooth(&flat, false).unwrap();
        assert!(s.iter().all(|&(_, v)| (v - 2.5).abs() < 1e-6), "{s:?}");
        assert!(smooth(&flat, true)
            .unwrap()
            .iter()
            .all(|&(_, v)| (v - 2.5).abs() < 1e-5));
        // 100 points: span 4, weight 0.75: second value (w(1-w)a + (1-w)b) / (1 - w²).
        let mut two = flat.clone();
        two[1].1 = 5.0;
        let s = smooth(&two, false).unwrap();
        assert_eq!(s[0], (1, 2.5));
        let expected = (0.75 * 0.25 * 2.5 + 0.25 * 5.0) / (1.0 - 0.5625);
        assert!((s[1].1 - expected).abs() < 1e-6, "{:?}", s[1]);
    }

    #[test]
    fn ewa_is_bias_corrected_as_the_chapter_draws_it() {
        let points = [(1, 4.0), (2, 2.0), (3, 1.0)];
        let e = ewa(&points, 0.9);
        // v1 = 0.4, v2 = 0.36 + 0.2 = 0.56, v3 = 0.504 + 0.1 = 0.604.
        let expected = [4.0, 0.56 / (1.0 - 0.81), 0.604 / (1.0 - 0.729)];
        for ((_, got), want) in e.iter().zip(expected) {
            assert!((f64::from(*got) - want).abs() < 1e-5, "{e:?}");
        }
        // β 0: the raw losses.
        assert_eq!(ewa(&points, 0.0), points.to_vec());
    }

    #[test]
    fn thin_averages_consecutive_points() {
        let points: Vec<(u64, f32)> = (1..=10).map(|s| (s, s as f32)).collect();
        assert_eq!(thin(&points, 20), points);
        assert_eq!(
            thin(&points, 5),
            vec![(2, 1.5), (4, 3.5), (6, 5.5), (8, 7.5), (10, 9.5)]
        );
        assert_eq!(thin(&points, 4).len(), 4);
    }
}
