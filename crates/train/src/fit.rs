//! `fit`: the one training loop — epochs of batches in the spec's order, gradient
//! accumulation flushed at each epoch's end, divergence and all-ignored batches stopped with
//! an error, validation and the scheduler's metric per epoch, checkpoints every
//! `train.checkpoint_every` epochs — reporting to an [`Observer`] that may stop it early.
//!
//! `graphc train` composes its output files and progress display as observers; a library
//! user passes a closure, and gets the same numbers.

use std::ops::ControlFlow;

use graphc_nn::Task;
use graphc_spec::{OptimizerKind, Reduction};

use crate::checkpoint::Progress;
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
}

/// How a [`fit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitEnd {
    /// The last epoch started.
    pub epochs: u64,
    /// True when an observer stopped the run before the spec's end.
    pub stopped_early: bool,
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
            train.gather(rows, &mut features, &mut targets);
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
            let loss = trainer.step_batch(&features, &targets, update)?;
            if !loss.is_finite() {
                return Err(non_finite_loss(first_step, step, epoch, loss, lr));
            }
            if let Some(output) = trainer.last_output() {
                tally.add(task, output, &targets, rows.len());
            }
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
                };
                if observer.on_step(&event)?.is_break() {
                    // The position stays inside the epoch (after its last batch, a resumed
                    // run validates and steps the scheduler, as this one would have).
                    progress.epoch = epoch - 1;
                    return Ok(FitEnd {
                        epochs: epoch,
                        stopped_early: true,
                    });
                }
            }
        }
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
        if spec
            .train
            .checkpoint_every
            .is_some_and(|every| epoch.is_multiple_of(every))
        {
            observer.on_checkpoint(trainer, progress)?;
        }
        if flow.is_break() {
            return Ok(FitEnd {
                epochs: epoch,
                stopped_early: true,
            });
        }
    }
    Ok(FitEnd {
        epochs: epoch,
        stopped_early: false,
    })
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
