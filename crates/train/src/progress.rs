//! What `graphc train` shows while it runs: a progress bar with steps/s and ETA on a terminal,
//! one plain line per epoch otherwise, nothing when quiet; and the per-epoch summary table at
//! the end. All of it goes to standard error, so standard output keeps the one summary line.
//! Lines and the table are written through [`crate::console`], so a standard error that cannot
//! be written stops the run with an error; the bar (drawn only on a terminal) is indicatif's.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[cfg(feature = "progress-bar")]
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::console::{self, ConsoleError, Stream};
use crate::Evaluation;

/// The live bar: indicatif's, with the default-on feature `progress-bar`.
#[cfg(feature = "progress-bar")]
type Bar = ProgressBar;

/// Without the feature `progress-bar` there is no bar: this type has no values, and a
/// terminal gets plain lines.
#[cfg(not(feature = "progress-bar"))]
enum Bar {}

#[cfg(not(feature = "progress-bar"))]
impl Bar {
    fn set_position(&self, _: u64) {
        match *self {}
    }
    fn set_message(&self, _: String) {
        match *self {}
    }
    fn println(&self, _: String) {
        match *self {}
    }
    fn finish_and_clear(&self) {
        match *self {}
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live bar (steps, steps/s, ETA, epoch and loss), with each epoch's line printed above it.
    Bar,
    /// One line per epoch, for logs and pipes.
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// `Quiet` when asked, a bar when standard error is a terminal (and the feature
    /// `progress-bar` is on), plain lines otherwise.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if cfg!(feature = "progress-bar") && std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// One epoch's running metrics: the training batches as they were stepped, and the
/// validation set after the epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRow {
    /// The 1-based epoch.
    pub epoch: u64,
    /// Mean of the epoch's batch losses (PyTorch's usual `running_loss / len(loader)`), with
    /// accuracy or RMSE of the outputs each batch had before its update.
    pub train: Evaluation,
    /// The validation set's loss and accuracy or RMSE after the epoch, when there is one.
    pub valid: Option<Evaluation>,
}

/// The progress display of one run.
pub struct Reporter {
    mode: Mode,
    bar: Option<Bar>,
    epochs: Option<u64>,
    log: EpochLog,
    last_message: Instant,
}

/// How often the bar's loss text is refreshed.
const MESSAGE_EVERY: Duration = Duration::from_millis(100);

impl Reporter {
    /// A display for a run of `total_steps` updates (`None` when unknown) of which `done`
    /// are done (a resumed run), over `epochs` epochs when the spec sets them.
    pub fn new(mode: Mode, total_steps: Option<u64>, done: u64, epochs: Option<u64>) -> Reporter {
        let bar = if mode == Mode::Bar {
            new_bar(total_steps, done)
        } else {
            None
        };
        Reporter {
            mode,
            bar,
            epochs,
            log: EpochLog::default(),
            last_message: Instant::now() - MESSAGE_EVERY,
        }
    }

    /// One update done: `step` updates so far, in `epoch`, with this update's `loss`.
    pub fn step(&mut self, step: u64, epoch: u64, loss: f32) {
        let Some(bar) = &self.bar else {
            return;
        };
        bar.set_position(step);
        if self.last_message.elapsed() >= MESSAGE_EVERY {
            self.last_message = Instant::now();
            bar.set_message(format!(
                "epoch {} · loss {loss:.4}",
                epoch_of(epoch, self.epochs)
            ));
        }
    }

    /// An epoch ended: its line is printed (above the bar on a terminal) and kept for the table.
    pub fn epoch(&mut self, row: EpochRow) -> Result<(), ConsoleError> {
        if self.mode == Mode::Quiet {
            return Ok(());
        }
        let line = epoch_line(&row, self.epochs);
        self.log.push(row);
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.println(line),
            (None, Mode::Lines) => console::println(Stream::Stderr, &line)?,
            _ => {}
        }
        Ok(())
    }

    /// The run ended: the bar is removed and the per-epoch table printed (unless quiet).
    pub fn finish(mut self) -> Result<(), ConsoleError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode != Mode::Quiet && self.log.count > 0 {
            console::print(Stream::Stderr, &self.log.table())?;
        }
        Ok(())
    }
}

impl Drop for Reporter {
    /// A run that stops with an error leaves no half-drawn bar above its message.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A bar at `done` of `total_steps` (`None` when unknown), drawn on standard error.
#[cfg(feature = "progress-bar")]
fn new_bar(total_steps: Option<u64>, done: u64) -> Option<Bar> {
    let bar = ProgressBar::with_draw_target(total_steps, ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(bar_style(total_steps.is_some()));
    bar.set_position(done);
    Some(bar)
}

/// No bar without the feature `progress-bar`.
#[cfg(not(feature = "progress-bar"))]
fn new_bar(_: Option<u64>, _: u64) -> Option<Bar> {
    None
}

/// The bar: spinner, epoch and loss, bar, steps done of all, steps/s, ETA.
#[cfg(feature = "progress-bar")]
fn bar_style(known_length: bool) -> ProgressStyle {
    let template = if known_length {
        "{spinner:.green} {msg}  [{wide_bar:.cyan/blue}] {pos}/{len} steps · {rate} · ETA {eta}"
    } else {
        "{spinner:.green} {msg}  {pos} steps · {rate} · {elapsed}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", rate(state.per_sec()));
            },
        )
        .progress_chars("=> ")
}

/// Steps per second as the bar shows it: `1234 steps/s`, `12.5 steps/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() {
        "- steps/s".into()
    } else if per_sec >= 100.0 {
        format!("{per_sec:.0} steps/s")
    } else {
        format!("{per_sec:.1} steps/s")
    }
}

/// `3/30`, or `3` when the number of epochs is not set.
fn epoch_of(epoch: u64, epochs: Option<u64>) -> String {
    match epochs {
        Some(e) => format!("{epoch}/{e}"),
        None => epoch.to_string(),
    }
}

/// An accuracy (`92.0%`) or RMSE (`RMSE 0.1234`) after a loss, for an epoch line.
fn quality(e: &Evaluation) -> String {
    let mut text = format!("loss {:.4}", e.loss);
    if let Some(a) = e.accuracy {
        text += &format!(", accuracy {:.1}%", a * 100.0);
    }
    if let Some(r) = e.rmse {
        text += &format!(", RMSE {r:.4}");
    }
    text
}

/// An epoch's line: `epoch 3/30: train loss 0.2345, accuracy 92.0% | valid loss 0.2500,
/// accuracy 90.0%`.
pub fn epoch_line(row: &EpochRow, epochs: Option<u64>) -> String {
    let mut line = format!(
        "epoch {}: train {}",
        epoch_of(row.epoch, epochs),
        quality(&row.train)
    );
    if let Some(v) = &row.valid {
        line += &format!(" | valid {}", quality(v));
    }
    line
}

/// Most rows the table shows; longer runs show evenly spaced epochs and the last one.
const MAX_TABLE_ROWS: usize = 30;

/// The epochs the table will show, kept as they are reported in memory that does not grow
/// with the run (a run of a million one-batch epochs would otherwise keep a million rows):
/// the first epoch and every `stride`-th, the stride doubling whenever more than
/// [`MAX_TABLE_ROWS`] are kept, and the last.
#[derive(Debug, Default)]
struct EpochLog {
    /// Epochs reported.
    count: usize,
    /// Every `stride`-th epoch is kept (1 until there are too many).
    stride: usize,
    /// The kept epochs with their 1-based position among those reported.
    kept: Vec<(usize, EpochRow)>,
    /// The last epoch reported.
    last: Option<EpochRow>,
}

impl EpochLog {
    fn push(&mut self, row: EpochRow) {
        self.stride = self.stride.max(1);
        self.count += 1;
        let position = self.count;
        if position == 1 || position.is_multiple_of(self.stride) {
            self.kept.push((position, row));
        }
        while self.kept.len() > MAX_TABLE_ROWS {
            self.stride *= 2;
            let stride = self.stride;
            self.kept
                .retain(|&(p, _)| p == 1 || p.is_multiple_of(stride));
        }
        self.last = Some(row);
    }

    /// The rows shown: those kept and the last.
    fn shown(&self) -> Vec<EpochRow> {
        let mut rows: Vec<EpochRow> = self.kept.iter().map(|&(_, r)| r).collect();
        if self.kept.last().map(|&(p, _)| p) != Some(self.count) {
            rows.extend(self.last);
        }
        rows
    }

    /// The table of [`table`] for the epochs reported.
    fn table(&self) -> String {
        let mut text = table_of(&self.shown());
        if self.stride > 1 {
            text += &format!(
                "(every {} epochs of {} shown, and the last)\n",
                self.stride, self.count
            );
        }
        text
    }
}

/// The per-epoch summary table: epoch, train loss, train accuracy or RMSE, and the same for
/// the validation set when there is one. Runs of more than 30 epochs show the first, every
/// k-th epoch (k a power of two) and the last, with a note saying so.
pub fn table(rows: &[EpochRow]) -> String {
    let mut log = EpochLog::default();
    for &row in rows {
        log.push(row);
    }
    log.table()
}

/// The table of exactly `rows`.
fn table_of(rows: &[EpochRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    // An objective's loss is all there is: no accuracy or RMSE column.
    let metric = match (first.train.accuracy, first.train.rmse) {
        (_, Some(_)) => Some("RMSE"),
        (Some(_), None) => Some("acc"),
        (None, None) => None,
    };
    let valid = rows.iter().any(|r| r.valid.is_some());
    let mut headers = vec!["epoch".to_owned(), "train loss".to_owned()];
    headers.extend(metric.map(|m| format!("train {m}")));
    if valid {
        headers.push("valid loss".into());
        headers.extend(metric.map(|m| format!("valid {m}")));
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.epoch.to_string(), loss_cell(r.train.loss)];
            cells.extend(metric.map(|_| metric_cell(&r.train)));
            if valid {
                match &r.valid {
                    Some(v) => {
                        cells.push(loss_cell(v.loss));
                        cells.extend(metric.map(|_| metric_cell(v)));
                    }
                    None => {
                        cells.push("-".to_owned());
                        cells.extend(metric.map(|_| "-".to_owned()));
                    }
                }
            }
            cells
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .chain(std::iter::once(headers[c].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String]| -> String {
        let parts: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, &w)| format!("{v:>w$}"))
            .collect();
        format!("{}\n", parts.join("  "))
    };
    let mut out = line(&headers);
    for row in &cells {
        out += &line(row);
    }
    out
}

fn loss_cell(loss: f32) -> String {
    format!("{loss:.4}")
}

fn metric_cell(e: &Evaluation) -> String {
    match (e.accuracy, e.rmse) {
        (Some(a), _) if a.is_finite() => format!("{:.1}%", a * 100.0),
        (_, Some(r)) if r.is_finite() => format!("{r:.4}"),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(loss: f32, accuracy: Option<f32>, rmse: Option<f32>) -> Evaluation {
        Evaluation {
            loss,
            accuracy,
            rmse,
        }
    }

    #[test]
    fn epoch_line_shows_train_and_valid_loss_with_accuracy() {
        let row = EpochRow {
            epoch: 3,
            train: eval(0.23456, Some(0.92), None),
            valid: Some(eval(0.25, Some(0.9), None)),
        };
        assert_eq!(
            epoch_line(&row, Some(30)),
            "epoch 3/30: train loss 0.2346, accuracy 92.0% | valid loss 0.2500, accuracy 90.0%"
        );
        let regression = EpochRow {
            epoch: 7,
            train: eval(1.5, None, Some(1.25)),
            valid: None,
        };
        assert_eq!(
            epoch_line(&regression, None),
            "epoch 7: train loss 1.5000, RMSE 1.2500"
        );
    }

    #[test]
    fn table_aligns_columns_and_dashes_missing_validation() {
        let rows = [
            EpochRow {
                epoch: 1,
                train: eval(1.0986, Some(0.3333), None),
                valid: Some(eval(1.05, Some(0.5), None)),
            },
            EpochRow {
                epoch: 10,
                train: eval(0.05, Some(1.0), None),
                valid: None,
            },
        ];
        assert_eq!(
            table(&rows),
            "epoch  train loss  train acc  valid loss  valid acc\n\
             \x20   1      1.0986      33.3%      1.0500      50.0%\n\
             \x20  10      0.0500     100.0%           -          -\n"
        );
    }

    #[test]
    fn long_tables_show_every_kth_epoch_and_the_last() {
        let rows: Vec<EpochRow> = (1..=95)
            .map(|e| EpochRow {
                epoch: e,
                train: eval(1.0 / e as f32, None, Some(0.5)),
                valid: None,
            })
            .collect();
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "epoch  train loss  train RMSE");
        let epochs: Vec<u64> = lines[1..lines.len() - 1]
            .iter()
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(epochs.first(), Some(&1));
        assert_eq!(epochs.last(), Some(&95));
        assert!(epochs.len() <= MAX_TABLE_ROWS + 2, "{epochs:?}");
        assert!(epochs.windows(2).all(|w| w[1] - w[0] <= 4), "{epochs:?}");
        assert_eq!(
            lines.last(),
            Some(&"(every 4 epochs of 95 shown, and the last)")
        );
    }

    #[test]
    fn the_epoch_log_of_a_million_epochs_keeps_a_table_not_a_million_rows() {
        let mut log = EpochLog::default();
        for e in 1..=1_000_000 {
            log.push(EpochRow {
                epoch: e,
                train: eval(1.0, None, Some(0.5)),
                valid: None,
            });
            assert!(log.kept.len() <= MAX_TABLE_ROWS, "epoch {e}");
        }
        assert_eq!(log.stride, 1 << 16);
        let text = log.table();
        assert!(text.lines().count() <= MAX_TABLE_ROWS + 3, "{text}");
        assert!(text.contains("\n1000000  "), "the last epoch: {text}");
        assert!(
            text.ends_with("(every 65536 epochs of 1000000 shown, and the last)\n"),
            "{text}"
        );
    }

    #[test]
    fn rate_keeps_three_significant_figures_or_whole_steps() {
        assert_eq!(rate(12345.6), "12346 steps/s");
        assert_eq!(rate(12.34), "12.3 steps/s");
        assert_eq!(rate(f64::NAN), "- steps/s");
    }
}
