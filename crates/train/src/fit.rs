//! `fit`: the one training loop — epochs of batches in the spec's order, gradient
//! accumulation flushed at each epoch's end, divergence and all-ignored batches stopped with
//! an error, validation and the scheduler's metric per epoch, early stopping and the best
//! epoch (`train.early_stopping`, `train.keep_best`), checkpoints every
//! `train.checkpoint_every` epochs — reporting to an [`Observer`] that may stop it early.
//!
//! `graphc train` composes its output files and progress display as observers; a library
//! user passes a closure, and gets the same numbers.

use std::ops::ControlFlow;

use graphc_nn::Task;
use graphc_spec::{EarlyStopping, Monitor, OptimizerKind, PlateauMode, Reduction};

use crate::checkpoint::{MonitorState, Progress};
use crate::trainer::Tally;
use crate::{batch_ranges, epoch_order, BatchTargets, Dataset, Evaluation, TrainError, Trainer};

/// One optimizer update, as `metrics.jsonl` records it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepEvent {
    /// Updates done, this one included.
    pub step: u64,
    /// The epoch it belongs to (from 1).
    pub epoch: u64,
    /// The mean loss of the batches the update summed (one batch without accumulation).
    pub loss: f32,
    /// The learning rate of the group `metrics.jsonl` shows (the top-level group when it
    /// holds parameters, else the first that does), as the update used it.
    pub lr: f64,
    /// Every group's learning rate, when there are several.
    pub lrs: Option<Vec<f64>>,
    /// An objective spec's scalar parameters (in `params` order) with the values the update's
    /// loss was computed at; empty for other specs.
    pub values: Vec<(String, f32)>,
}

/// One finished (or, when `train.steps` ends it, cut) epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochEvent {
    /// The epoch (from 1).
    pub epoch: u64,
    /// The mean training loss of its batches, and their running accuracy or RMSE.
    pub train: Evaluation,
    /// The validation set's loss and scores, when the spec has one.
    pub valid: Option<Evaluation>,
    /// False when `train.steps` ended the run inside this epoch.
    pub finished: bool,
}

/// What watches a [`fit`]: every hook may fail (a file write) or stop the run early.
pub trait Observer {
    /// After each optimizer update.
    fn on_step(&mut self, event: &StepEvent) -> Result<ControlFlow<()>, TrainError> {
        let _ = event;
        Ok(ControlFlow::Continue(()))
    }

    /// After each epoch, once validation ran and before the scheduler steps.
    fn on_epoch(&mut self, event: &EpochEvent) -> Result<ControlFlow<()>, TrainError> {
        let _ = event;
        Ok(ControlFlow::Continue(()))
    }

    /// At the end of every `train.checkpoint_every`-th epoch, with what a checkpoint holds.
    fn on_checkpoint(&mut self, trainer: &Trainer, progress: &Progress) -> Result<(), TrainError> {
        let _ = (trainer, progress);
        Ok(())
    }

    /// After an epoch whose monitored metric improved on the best so far (with
    /// `train.early_stopping` or `train.keep_best`), with the trainer at that epoch's end.
    fn on_best(&mut self, trainer: &Trainer, best: &Best) -> Result<(), TrainError> {
        let _ = (trainer, best);
        Ok(())
    }
}

/// The best epoch of the monitored metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Best {
    /// The metric watched.
    pub monitor: Monitor,
    /// The epoch (from 1).
    pub epoch: u64,
    /// The metric's value after it.
    pub value: f32,
}

/// Why a [`fit`] ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// `train.epochs` epochs were done.
    Epochs,
    /// `train.steps` updates were done.
    Steps,
    /// Early stopping ended training after `epoch`: the monitored metric did not improve for
    /// `patience` epochs, or was not finite. `best` is the best epoch, when there was one.
    EarlyStopping {
        /// The epoch after which training stopped.
        epoch: u64,
        /// The best epoch and value.
        best: Option<Best>,
    },
    /// An observer stopped the run.
    Observer,
}

/// A closure observes the steps: `fit(&mut t, &data, &mut |s: &StepEvent| { ... })`.
impl<F: FnMut(&StepEvent) -> ControlFlow<()>> Observer for F {
    fn on_step(&mut self, event: &StepEvent) -> Result<ControlFlow<()>, TrainError> {
        Ok(self(event))
    }
}

/// Observers composed: each hook runs in order, and any of them stopping stops the run.
impl<const N: usize> Observer for [&mut dyn Observer; N] {
    fn on_step(&mut self, event: &StepEvent) -> Result<ControlFlow<()>, TrainError> {
        let mut flow = ControlFlow::Continue(());
        for o in self.iter_mut() {
            if o.on_step(event)?.is_break() {
                flow = ControlFlow::Break(());
            }
        }
        Ok(flow)
    }

    fn on_epoch(&mut self, event: &EpochEvent) -> Result<ControlFlow<()>, TrainError> {
        let mut flow = ControlFlow::Continue(());
        for o in self.iter_mut() {
            if o.on_epoch(event)?.is_break() {
                flow = ControlFlow::Break(());
            }
        }
        Ok(flow)
    }

    fn on_checkpoint(&mut self, trainer: &Trainer, progress: &Progress) -> Result<(), TrainError> {
        self.iter_mut()
            .try_for_each(|o| o.on_checkpoint(trainer, progress))
    }

    fn on_best(&mut self, trainer: &Trainer, best: &Best) -> Result<(), TrainError> {
        self.iter_mut().try_for_each(|o| o.on_best(trainer, best))
    }
}

/// How a [`fit`] ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitEnd {
    /// The last epoch started.
    pub epochs: u64,
    /// True when an observer stopped the run before the spec's end.
    pub stopped_early: bool,
    /// Why the run ended.
    pub stop: Stop,
}

/// Trains `trainer` on `train` (validating on `valid` after each epoch) from `progress` (a
/// fresh [`Progress::default`], or a checkpoint's) to the end the spec sets — `train.epochs`
/// and `train.steps` — or until `observer` stops it. `progress` is left where training
/// stopped, as a checkpoint records it.
pub fn fit(
    trainer: &mut Trainer,
    train: &Dataset,
    valid: Option<&Dataset>,
    progress: &mut Progress,
    observer: &mut dyn Observer,
) -> Result<FitEnd, TrainError> {
    let spec = trainer.spec().clone();
    let n = train.len();
    let metrics_group = lr_group(trainer);
    let many_groups = trainer.live_groups().len() > 1;
    let batches = batch_ranges(n, spec.data.batch_size, spec.data.drop_last);
    let batch_count = batches.len();
    let accumulate = spec.train.accumulate.max(1);
    let mut features = Vec::new();
    let mut targets = BatchTargets::Floats(Vec::new());
    let max_steps = spec.train.steps.unwrap_or(u64::MAX);
    let max_epochs = spec.train.epochs.unwrap_or(u64::MAX);
    let task = trainer.task();
    let all_ignored_is_nan = match task {
        Task::MultiClass {
            ignore_index: Some(i),
        } if spec.loss.reduction() == Reduction::Mean => Some(i),
        _ => None,
    };
    // Weights set by hand (`Trainer::set_param`) have not been through the loads' check.
    trainer.check_finite("the weights training started from")?;
    // The step count before this run's first update: a loss computed before it comes from
    // the weights training started from, not from anything this run's updates did.
    let first_step = trainer.step_count();
    let mut epoch = progress.epoch;
    // Batches of the pending accumulation (their losses make the update's loss).
    let mut pending = trainer.pending_batches();
    // The scalar parameters each step's values are recorded for (an objective's).
    let traced: Vec<String> = trainer
        .spec()
        .model
        .objective()
        .map(|o| {
            o.params
                .iter()
                .filter(|p| !p.vector)
                .map(|p| p.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut values = Vec::new();
    let watch = watched(&spec.train);
    if watch.is_some() && progress.monitor.is_none() {
        progress.monitor = Some(MonitorState::default());
    }
    // A resumed run that early stopping had already ended trains no further.
    if let Some(stopped) = early_stopped(progress, watch) {
        return Ok(FitEnd {
            epochs: epoch,
            stopped_early: false,
            stop: stopped,
        });
    }
    while epoch < max_epochs && trainer.step_count() < max_steps {
        epoch += 1;
        if batch_count == 0 {
            return Err(TrainError::Data(format!(
                "epoch {epoch} has no batch: {n} samples with batch_size {} and drop_last; lower batch_size or set drop_last: false",
                spec.data.batch_size
            )));
        }
        let visit = epoch_order(n, spec.data.shuffle, spec.seed, epoch - 1);
        let first = progress.batch as usize;
        // Running accuracy or squared error of this epoch's batches (from this process on).
        let mut tally = Tally::default();
        for (b, range) in batches.clone().enumerate().skip(first) {
            if trainer.step_count() >= max_steps {
                break;
            }
            let rows = &visit[range];
            // This rank's share of the features (all on one process), the whole batch's targets.
            let share = trainer.share_of(rows.len());
            train.gather_share(rows, share, &mut features, &mut targets)?;
            let update = pending + 1 >= accumulate || b + 1 == batch_count;
            let step = trainer.step_count() + 1;
            if let (Some(ignore_index), BatchTargets::Classes(y)) = (all_ignored_is_nan, &targets) {
                if y.iter().all(|&t| t == ignore_index) {
                    return Err(TrainError::AllIgnored {
                        epoch,
                        batch: b as u64 + 1,
                        step,
                        ignore_index,
                        rows: row_list(train, rows),
                    });
                }
            }
            // The learning rates this batch is stepped with (an update may step the scheduler).
            let lr = metrics_group
                .and_then(|g| trainer.group(g))
                .map_or(f64::NAN, OptimizerKind::lr);
            let lrs = (update && many_groups).then(|| trainer.lrs());
            if pending == 0 {
                values = traced
                    .iter()
                    .map(|name| (name.clone(), trainer.param(name).map_or(f32::NAN, |v| v[0])))
                    .collect();
            }
            let loss = trainer.step_share(rows.len(), &features, &targets, update)?;
            if !loss.is_finite() {
                return Err(non_finite_loss(first_step, step, epoch, loss, lr));
            }
            trainer.tally_last(&mut tally, &targets);
            progress.batch = b as u64 + 1;
            progress.epoch_loss_sum += f64::from(loss);
            progress.pending_loss_sum += f64::from(loss);
            pending += 1;
            if update {
                let loss = (progress.pending_loss_sum / pending as f64) as f32;
                progress.last_loss = Some(loss);
                progress.pending_loss_sum = 0.0;
                pending = 0;
                let event = StepEvent {
                    step: trainer.step_count(),
                    epoch,
                    loss,
                    lr,
                    lrs,
                    values: std::mem::take(&mut values),
                };
                if observer.on_step(&event)?.is_break() {
                    // The position stays inside the epoch (after its last batch, a resumed
                    // run validates and steps the scheduler, as this one would have).
                    progress.epoch = epoch - 1;
                    return Ok(FitEnd {
                        epochs: epoch,
                        stopped_early: true,
                        stop: Stop::Observer,
                    });
                }
            }
        }
        tally.sum_over(trainer.collective());
        let finished = progress.batch as usize == batch_count;
        let mean_loss = progress.epoch_loss_sum / progress.batch.max(1) as f64;
        let valid_eval = match valid {
            Some(valid) => Some(trainer.evaluate(valid)?),
            None => None,
        };
        let event = EpochEvent {
            epoch,
            train: tally.evaluation(task, mean_loss as f32),
            valid: valid_eval,
            finished,
        };
        let flow = observer.on_epoch(&event)?;
        if !finished {
            // Stopped by train.steps inside the epoch: the position stays inside it.
            progress.epoch = epoch - 1;
            break;
        }
        let metric = valid_eval.map_or(mean_loss, |e| f64::from(e.loss));
        trainer.end_epoch(metric)?;
        progress.epoch = epoch;
        progress.batch = 0;
        progress.epoch_loss_sum = 0.0;
        if let (Some((stopping, stops)), Some(state)) = (watch, progress.monitor.as_mut()) {
            let value = match stopping.monitor {
                Monitor::ValidLoss => valid_eval.map_or(f32::NAN, |e| e.loss),
                Monitor::ValidAccuracy => valid_eval.and_then(|e| e.accuracy).unwrap_or(f32::NAN),
                Monitor::TrainLoss => mean_loss as f32,
            };
            match watch_epoch(&stopping, state, epoch, value) {
                Watched::Improved => {
                    let best = Best {
                        monitor: stopping.monitor,
                        epoch,
                        value,
                    };
                    observer.on_best(trainer, &best)?;
                }
                Watched::Stop if stops => state.stopped_at = Some(epoch),
                Watched::Stop | Watched::Waiting => {}
            }
        }
        if spec
            .train
            .checkpoint_every
            .is_some_and(|every| epoch.is_multiple_of(every))
        {
            observer.on_checkpoint(trainer, progress)?;
        }
        if let Some(stopped) = early_stopped(progress, watch) {
            return Ok(FitEnd {
                epochs: epoch,
                stopped_early: false,
                stop: stopped,
            });
        }
        if flow.is_break() {
            return Ok(FitEnd {
                epochs: epoch,
                stopped_early: true,
                stop: Stop::Observer,
            });
        }
    }
    let stop = if trainer.step_count() >= max_steps {
        Stop::Steps
    } else {
        Stop::Epochs
    };
    Ok(FitEnd {
        epochs: epoch,
        stopped_early: false,
        stop,
    })
}

/// What the run watches after each epoch, and whether it stops on it: `train.early_stopping`
/// (stops), or `train.keep_best` alone with early stopping's default monitor (never stops).
fn watched(train: &graphc_spec::TrainSpec) -> Option<(EarlyStopping, bool)> {
    match (train.early_stopping, train.keep_best) {
        (Some(s), _) => Some((s, true)),
        (None, true) => Some((EarlyStopping::default(), false)),
        (None, false) => None,
    }
}

/// The end early stopping put to the run, when it has.
fn early_stopped(progress: &Progress, watch: Option<(EarlyStopping, bool)>) -> Option<Stop> {
    let (stopping, _) = watch?;
    let state = progress.monitor?;
    let epoch = state.stopped_at?;
    Some(Stop::EarlyStopping {
        epoch,
        best: state.best.map(|(epoch, value)| Best {
            monitor: stopping.monitor,
            epoch,
            value,
        }),
    })
}

/// What one epoch's value of the monitored metric did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    /// It improved on the best (which it now is).
    Improved,
    /// No improvement, with patience left.
    Waiting,
    /// Not finite, or no improvement for `patience` epochs.
    Stop,
}

/// Lightning's `EarlyStopping._evaluate_stopping_criteria` (with `check_finite`): a value that
/// is not finite stops; else `min_delta` counts against the value (`value + min_delta < best`
/// in `min` mode, `value - min_delta > best` in `max` mode, in f32 as Lightning's tensors
/// compute it, the first finite value always improving on the infinite start), an
/// improvement resets the wait, and `patience` epochs without one stop.
fn watch_epoch(
    stopping: &EarlyStopping,
    state: &mut MonitorState,
    epoch: u64,
    value: f32,
) -> Watched {
    if !value.is_finite() {
        return Watched::Stop;
    }
    let delta = stopping.min_delta as f32;
    let improved = match (stopping.mode, state.best) {
        (_, None) => true,
        (PlateauMode::Min, Some((_, best))) => value + delta < best,
        (PlateauMode::Max, Some((_, best))) => value - delta > best,
    };
    if improved {
        state.best = Some((epoch, value));
        state.wait = 0;
        return Watched::Improved;
    }
    state.wait += 1;
    if state.wait >= stopping.patience {
        Watched::Stop
    } else {
        Watched::Waiting
    }
}

/// The error for a non-finite `loss` of a batch of `step`: divergence, with advice on the
/// learning rate, only when an update of this run came before the batch (`step` is past
/// `first_step + 1`). Before that the loss came from the weights training started from,
/// which `fit` checked were finite, so no learning rate is to blame.
fn non_finite_loss(first_step: u64, step: u64, epoch: u64, loss: f32, lr: f64) -> TrainError {
    if step > first_step.saturating_add(1) {
        TrainError::Diverged {
            step,
            epoch,
            loss,
            lr,
        }
    } else {
        TrainError::NonFiniteStart { step, epoch, loss }
    }
}

/// The rows of a batch for a message: the first three locations and how many there are.
fn row_list(data: &Dataset, rows: &[usize]) -> String {
    let mut shown: Vec<String> = rows.iter().take(3).map(|&r| data.row_location(r)).collect();
    if rows.len() > 3 {
        shown.push(format!("… ({} rows)", rows.len()));
    }
    shown.join(", ")
}

/// The group whose learning rate `metrics.jsonl`'s `lr` shows, by `param_groups` index (see
/// [`Trainer::group`]): the top-level group when it holds parameters, else the first group
/// that does; `None` when no group holds parameters.
fn lr_group(trainer: &Trainer) -> Option<usize> {
    let top = trainer.spec().optimizer.param_groups.len();
    let live = trainer.live_groups();
    if live.contains(&top) {
        Some(top)
    } else {
        live.first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The epochs a run of `values` (one per epoch) trains before early stopping ends it,
    /// and the best epoch.
    fn run(stopping: EarlyStopping, values: &[f32]) -> (Option<u64>, Option<(u64, f32)>) {
        let mut state = MonitorState::default();
        for (i, &v) in values.iter().enumerate() {
            let epoch = i as u64 + 1;
            if watch_epoch(&stopping, &mut state, epoch, v) == Watched::Stop {
                return (Some(epoch), state.best);
            }
        }
        (None, state.best)
    }

    #[test]
    fn early_stopping_follows_lightnings_rule() {
        let min = EarlyStopping {
            patience: 2,
            ..EarlyStopping::default()
        };
        // Equal is no improvement; the second epoch without one stops.
        assert_eq!(
            run(min, &[1.0, 0.5, 0.5, 0.6, 0.1]),
            (Some(4), Some((2, 0.5)))
        );
        // min_delta: 0.4 → 0.35 improves by less than 0.1, so it does not count.
        let delta = EarlyStopping {
            min_delta: 0.1,
            ..min
        };
        assert_eq!(run(delta, &[0.4, 0.35, 0.34]), (Some(3), Some((1, 0.4))));
        assert_eq!(run(delta, &[0.4, 0.29, 0.2]), (None, Some((2, 0.29))));
        // mode max with min_delta: larger by more than min_delta improves.
        let max = EarlyStopping {
            mode: PlateauMode::Max,
            min_delta: 0.05,
            patience: 1,
            ..min
        };
        assert_eq!(run(max, &[0.5, 0.6, 0.62]), (Some(3), Some((2, 0.6))));
        // patience 0 stops at the first epoch without improvement; a NaN stops at once.
        let zero = EarlyStopping { patience: 0, ..min };
        assert_eq!(run(zero, &[1.0, 2.0]), (Some(2), Some((1, 1.0))));
        assert_eq!(run(min, &[f32::NAN]), (Some(1), None));
        assert_eq!(run(min, &[1.0, f32::INFINITY]), (Some(2), Some((1, 1.0))));
    }
}
