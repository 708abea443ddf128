//! The normalizations and the layers that behave differently in training and evaluation,
//! PyTorch's `model.train()` and `model.eval()`: batch norm and the dropouts, and layer and
//! group norm (which behave the same in both), as compositions of primitives. [`Mode`] says
//! which behaviour a graph gets.
//!
//! Batch norm in training mode normalises with the batch's statistics over every axis but the
//! channels, both sums in one pass over the input: the plain `E[x²] - E[x]²` loses every digit
//! in f32 when the mean is large against the spread, so the values are shifted by the running
//! mean first (see [`batch_norm`]). The running statistics are persistent `State` leaves assigned at the
//! end of the step, PyTorch's `momentum·batch + (1 - momentum)·running` with the unbiased
//! variance; `momentum: null` takes the cumulative-average weight `1/num_batches_tracked`, a
//! runtime hyper the trainer computes from its counter. In evaluation mode it normalises with
//! the running statistics (or, without them, the batch's, as PyTorch does).
//!
//! Dropout draws `u` in [0, 1) from `Op::RandomUniform` keyed by the run's seed, the layer's
//! index as the stream and the training forward's index as the step (the step's `forward`
//! input), so both backends and a resumed run draw the same masks (a data-parallel rank's
//! share passes its first row too, and draws the whole batch's mask of its rows); it keeps where `u >= p`
//! and divides the 0/1 mask by `1 - p` in f32, `input * noise`, as PyTorch's
//! `noise.bernoulli_(1 - p).div_(1 - p)`. The channel variants draw one value per sample and
//! channel.

use graphc_ir::{BinaryOp, CompareOp, Graph, IrError, NodeId, ReduceOp, UnaryOp};
use graphc_spec::{BatchNormSpec, GroupNormSpec, LayerKind, LayerNormSpec, ModelSpec};

use crate::topology::entries;
use crate::Hyper;

/// Which behaviour the layers of a graph have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `model.train()`: batch statistics, running statistics updated, dropout active.
    Train {
        /// The step's i64 `[1]` input numbering this training forward (0 for the run's first),
        /// present when a dropout layer draws (see [`draws_random`](crate::draws_random)); in
        /// a shard step `[2]`, the share's first row after it (`Op::RandomUniform`'s offset).
        forward: Option<NodeId>,
        /// The run's seed, dropout's Philox key.
        seed: u64,
        /// Batch norm's statistics are summed over the ranks of a data-parallel run
        /// (`train.sync_batch_norm` in a shard step, `Op::SumRanks`), so a share is normalised
        /// with the whole batch's.
        sum_ranks: bool,
    },
    /// `model.eval()`: running statistics, dropout off.
    Eval,
}

/// A batch norm's leaves in the graph.
pub(crate) struct BatchNormLeaves {
    /// `weight` and `bias` when `affine`.
    pub(crate) affine: Option<(NodeId, NodeId)>,
    /// Its running statistics when `track_running_stats`.
    pub(crate) running: Option<Running>,
}

/// A batch norm's running statistics: `running_mean` and `running_var` leaves, and the
/// position of its `num_batches_tracked` among the model's counters.
#[derive(Clone, Copy)]
pub(crate) struct Running {
    pub(crate) mean: NodeId,
    pub(crate) var: NodeId,
    pub(crate) counter: usize,
}

/// `nn.BatchNorm1d/2d` on `h` `[N, C, *spatial]`; `prefix` names its hyper node (`1.momentum`:
/// the layer's, where `Hyper::name` would only number it), which goes to `hypers`. `Err(message)` for
/// a batch with one value per channel where batch statistics are needed (PyTorch's "Expected
/// more than 1 value per channel when training").
pub(crate) fn batch_norm(
    graph: &mut Graph,
    h: NodeId,
    spec: &BatchNormSpec,
    leaves: &BatchNormLeaves,
    mode: Mode,
    prefix: &str,
    hypers: &mut Vec<Hyper>,
) -> Result<Result<NodeId, String>, IrError> {
    let shape = graph.shape(h).to_vec();
    let count: usize = shape.iter().product::<usize>() / shape[1];
    let v = ChannelView::of(&shape);
    let h = graph.reshape(h, &v.view)?;
    let eps = graph.fill(spec.eps as f32, &v.stat);
    // `y = source·α + β` per channel, PyTorch's form: α = weight/√(var + ε), β = bias - center·α,
    // where `source - center` is the centred input. In training the source is `d` (below),
    // which the backward pass then needs alone: it keeps one activation, as PyTorch does.
    let (source, center, var) = match (mode, leaves.running) {
        (Mode::Eval, Some(running)) => {
            let mean = graph.reshape(running.mean, &v.stat)?;
            let var = graph.reshape(running.var, &v.stat)?;
            (h, mean, var)
        }
        (Mode::Train { .. }, _) | (Mode::Eval, None) => {
            let sum_ranks = matches!(
                mode,
                Mode::Train {
                    sum_ranks: true,
                    ..
                }
            );
            // Summed over ranks, a share of one value per channel is normal; PyTorch's check
            // is on the whole batch's count (the trainer makes it).
            if count == 1 && !sum_ranks {
                // The message `check_batch_norm_counts` gives too.
                return Ok(Err(format!(
                    "expected more than 1 value per channel when training, got input size {shape:?}"
                )));
            }
            // One pass over the input for both sums, shifted by the running mean (or 0):
            // with `d = x - K`, `mean = K + Σd/n` and `var = Σd²/n - (Σd/n)²`, whose rounding
            // error is about `ε·(1 + (mean - K)²/var)` relative to the variance — small once
            // the running mean follows the batches, and never negative (clamped at 0). Summed
            // over ranks, `K` is the same on every rank (their running means agree), so the
            // ranks' sums add up to the whole batch's, and so does the count `n`.
            let n = if sum_ranks {
                let share = graph.fill(count as f32, &[1, 1, 1, 1]);
                let n = graph.sum_ranks(share)?;
                graph.broadcast(n, &v.stat)?
            } else {
                graph.fill(count as f32, &v.stat)
            };
            let shift = match leaves.running {
                Some(running) => graph.reshape(running.mean, &v.stat)?,
                None => graph.fill(0.0, &v.stat),
            };
            let shift_b = v.broadcast(graph, shift)?;
            let d = graph.binary(BinaryOp::Sub, h, shift_b)?;
            let d2 = graph.binary(BinaryOp::Mul, d, d)?;
            let mut sum = v.sum(graph, d)?;
            let mut square_sum = v.sum(graph, d2)?;
            if sum_ranks {
                sum = graph.sum_ranks(sum)?;
                square_sum = graph.sum_ranks(square_sum)?;
            }
            let m1 = graph.binary(BinaryOp::Div, sum, n)?;
            let m2 = graph.binary(BinaryOp::Div, square_sum, n)?;
            let m1_sq = graph.binary(BinaryOp::Mul, m1, m1)?;
            let var = graph.binary(BinaryOp::Sub, m2, m1_sq)?;
            let zero = graph.fill(0.0, &v.stat);
            let var = graph.binary(BinaryOp::Max, var, zero)?;
            if let (Mode::Train { .. }, Some(running)) = (mode, leaves.running) {
                let mean = graph.binary(BinaryOp::Add, shift, m1)?;
                // The unbiased variance's factor `n / (n - 1)`, of the whole batch's count.
                let bessel = if sum_ranks {
                    let one = graph.fill(1.0, &v.stat);
                    let n_less = graph.binary(BinaryOp::Sub, n, one)?;
                    graph.binary(BinaryOp::Div, n, n_less)?
                } else {
                    let bessel = count as f64 / (count - 1) as f64;
                    graph.fill(bessel as f32, &v.stat)
                };
                let stats = BatchStats { mean, var, bessel };
                update_running(graph, spec, running, stats, prefix, hypers)?;
            }
            (d, m1, var)
        }
    };
    let var = graph.binary(BinaryOp::Add, var, eps)?;
    let std = graph.unary(UnaryOp::Sqrt, var)?;
    let one = graph.fill(1.0, &v.stat);
    let mut alpha = graph.binary(BinaryOp::Div, one, std)?;
    if let Some((weight, _)) = leaves.affine {
        let weight = graph.reshape(weight, &v.stat)?;
        alpha = graph.binary(BinaryOp::Mul, alpha, weight)?;
    }
    let center_alpha = graph.binary(BinaryOp::Mul, center, alpha)?;
    let beta = match leaves.affine {
        Some((_, bias)) => {
            let bias = graph.reshape(bias, &v.stat)?;
            graph.binary(BinaryOp::Sub, bias, center_alpha)?
        }
        None => graph.unary(UnaryOp::Neg, center_alpha)?,
    };
    let alpha = v.broadcast(graph, alpha)?;
    let beta = v.broadcast(graph, beta)?;
    let y = graph.binary(BinaryOp::Mul, source, alpha)?;
    let y = graph.binary(BinaryOp::Add, y, beta)?;
    Ok(Ok(graph.reshape(y, &shape)?))
}

/// `nn.LayerNorm` on `h` `[N, *, *normalized_shape]`, with its `weight` and `bias` leaves when
/// it has them (`normalized_shape` checked by `describe_model`).
pub(crate) fn layer_norm(
    graph: &mut Graph,
    h: NodeId,
    spec: &LayerNormSpec,
    affine: (Option<NodeId>, Option<NodeId>),
) -> Result<NodeId, IrError> {
    let shape = graph.shape(h).to_vec();
    let axes = spec.normalized_shape.as_ref().map_or(1, Vec::len);
    let split = shape.len() - axes;
    let row: usize = shape[split..].iter().product();
    let y = normalize_rows(graph, h, row, spec.eps)?;
    let y = graph.reshape(y, &shape)?;
    // weight and bias have the normalized shape: [1, .., 1, *normalized_shape] repeated.
    let mut view = vec![1; split];
    view.extend_from_slice(&shape[split..]);
    scale_and_shift(graph, y, affine, &view)
}

/// `nn.GroupNorm` on `h` `[N, C, *spatial]`: each sample's channels in `num_groups` groups of
/// consecutive channels, each group normalised over its channels and positions, then the
/// per-channel `weight` and `bias` when `affine`.
pub(crate) fn group_norm(
    graph: &mut Graph,
    h: NodeId,
    spec: &GroupNormSpec,
    affine: (Option<NodeId>, Option<NodeId>),
) -> Result<NodeId, IrError> {
    let shape = graph.shape(h).to_vec();
    let (batch, channels) = (shape[0], shape[1]);
    let positions: usize = shape[2..].iter().product();
    // [N, C, P] row-major is [N, G, C/G · P]: a group's values are one row.
    let row = channels / spec.num_groups * positions;
    let y = normalize_rows(graph, h, row, spec.eps)?;
    let y = graph.reshape(y, &[batch, channels, positions])?;
    let y = scale_and_shift(graph, y, affine, &[1, channels, 1])?;
    graph.reshape(y, &shape)
}

/// `y · weight + bias` (either may be absent), each leaf viewed as `view` and repeated over
/// `y`'s shape.
fn scale_and_shift(
    graph: &mut Graph,
    mut y: NodeId,
    (weight, bias): (Option<NodeId>, Option<NodeId>),
    view: &[usize],
) -> Result<NodeId, IrError> {
    let shape = graph.shape(y).to_vec();
    for (leaf, op) in [(weight, BinaryOp::Mul), (bias, BinaryOp::Add)] {
        if let Some(leaf) = leaf {
            let leaf = graph.reshape(leaf, view)?;
            let leaf = graph.broadcast(leaf, &shape)?;
            y = graph.binary(op, y, leaf)?;
        }
    }
    Ok(y)
}

/// `(x - mean) / √(var + ε)` over each row of `row` consecutive values of `x`, with the biased
/// variance, as PyTorch's layer and group norm; the result is in [`ChannelView`]'s view of
/// `[1, rows, row]`. Two passes: the mean, then the centred squares. Batch norm's one pass
/// shifts by the running mean, which these layers do not have; unshifted, `E[x²] - E[x]²`
/// loses every digit when a row's mean is large against its spread (PyTorch's CPU kernels
/// are as accurate as two passes), while the centred form's error stays about `ε` relative.
fn normalize_rows(graph: &mut Graph, x: NodeId, row: usize, eps: f64) -> Result<NodeId, IrError> {
    let numel: usize = graph.shape(x).iter().product();
    let v = ChannelView::of(&[1, numel / row, row]);
    let x = graph.reshape(x, &v.view)?;
    let n = graph.fill(row as f32, &v.stat);
    let sum = v.sum(graph, x)?;
    let mean = graph.binary(BinaryOp::Div, sum, n)?;
    let mean = v.broadcast(graph, mean)?;
    let d = graph.binary(BinaryOp::Sub, x, mean)?;
    let d2 = graph.binary(BinaryOp::Mul, d, d)?;
    let square_sum = v.sum(graph, d2)?;
    let var = graph.binary(BinaryOp::Div, square_sum, n)?;
    let eps = graph.fill(eps as f32, &v.stat);
    let var = graph.binary(BinaryOp::Add, var, eps)?;
    let std = graph.unary(UnaryOp::Sqrt, var)?;
    let one = graph.fill(1.0, &v.stat);
    let rstd = graph.binary(BinaryOp::Div, one, std)?;
    let rstd = v.broadcast(graph, rstd)?;
    graph.binary(BinaryOp::Mul, d, rstd)
}

/// A batch norm's input (or a convolution's output, for its bias) `[N, C, *spatial]` viewed as
/// `[N, C, P/k, k]` (`P` the positions; `k` dividing it: the largest of 128, 64, 32, 16 that
/// divides the last axis or is whole rows of it, else the most whole rows up to 128 lanes, a
/// multiple of 4, else the largest of 128, …, 4, else 1), so a per-channel sum is a sum over
/// `[0, 2]` into
/// `k` lanes, then over the lanes: the JIT adds a row's terms one by one in order, and `k`
/// independent sums run several times faster than one chain through every position. Statistics
/// broadcast back in the same two steps, so their gradients (autodiff's sums over the
/// broadcast axes) take the same form.
pub(crate) struct ChannelView {
    /// `[N, C, P/k, k]`.
    pub(crate) view: Vec<usize>,
    /// `[1, C, 1, k]`.
    lanes: Vec<usize>,
    /// `[1, C, 1, 1]`.
    stat: Vec<usize>,
}

impl ChannelView {
    pub(crate) fn of(shape: &[usize]) -> ChannelView {
        let (batch, channels) = (shape[0], shape[1]);
        let positions: usize = shape[2..].iter().product();
        // Lanes that nest with the rows of the last axis (`k` divides the row or is whole
        // rows) let the JIT fuse the ops on both sides of the view into one kernel.
        let row = if shape.len() > 2 {
            shape[shape.len() - 1]
        } else {
            1
        };
        let nests = |k: &usize| row.is_multiple_of(*k) || k.is_multiple_of(row);
        let divides = |k: &usize| positions.is_multiple_of(*k);
        let rows = (1..=128 / row.max(1)).rev().map(|m| m * row);
        let k = [128, 64, 32, 16]
            .into_iter()
            .filter(nests)
            .chain(rows.filter(|k| k.is_multiple_of(4)))
            .chain([128, 64, 32, 16, 8, 4])
            .find(divides)
            .unwrap_or(1);
        ChannelView {
            view: vec![batch, channels, positions / k, k],
            lanes: vec![1, channels, 1, k],
            stat: vec![1, channels, 1, 1],
        }
    }

    /// The per-channel sum of `x` (in the view), `[1, C, 1, 1]`.
    fn sum(&self, graph: &mut Graph, x: NodeId) -> Result<NodeId, IrError> {
        let lanes = graph.reduce(ReduceOp::Sum, x, &[0, 2])?;
        graph.reduce(ReduceOp::Sum, lanes, &[3])
    }

    /// A per-channel value (`[C]` or `[1, C, 1, 1]`) repeated over the view.
    pub(crate) fn broadcast(&self, graph: &mut Graph, x: NodeId) -> Result<NodeId, IrError> {
        let x = graph.reshape(x, &self.stat)?;
        let x = graph.broadcast(x, &self.lanes)?;
        graph.broadcast(x, &self.view)
    }
}

/// A batch's per-channel statistics, `[1, C, 1, 1]`.
struct BatchStats {
    mean: NodeId,
    /// The biased variance.
    var: NodeId,
    /// `n / (n - 1)`, `n` the values per channel: the unbiased variance's factor.
    bessel: NodeId,
}

/// Assigns PyTorch's running-statistics update: `running_mean ← m·mean + (1-m)·running_mean`,
/// `running_var ← m·unbiased_var + (1-m)·running_var`, `m` the momentum or, for `null`, the
/// runtime hyper `1/num_batches_tracked`.
fn update_running(
    graph: &mut Graph,
    spec: &BatchNormSpec,
    running: Running,
    stats: BatchStats,
    prefix: &str,
    hypers: &mut Vec<Hyper>,
) -> Result<(), IrError> {
    let c = graph.shape(running.mean).to_vec();
    let (m, keep) = match spec.momentum {
        Some(m) => (graph.fill(m as f32, &c), graph.fill((1.0 - m) as f32, &c)),
        None => {
            let m = graph.hyper(&format!("{prefix}.momentum"));
            hypers.push(Hyper::CumulativeAverage {
                counter: running.counter,
            });
            let m = graph.broadcast_to(m, &c)?;
            let one = graph.fill(1.0, &c);
            (m, graph.binary(BinaryOp::Sub, one, m)?)
        }
    };
    let mean = graph.reshape(stats.mean, &c)?;
    let var = graph.reshape(stats.var, &c)?;
    let bessel = graph.reshape(stats.bessel, &c)?;
    let var = graph.binary(BinaryOp::Mul, var, bessel)?;
    for (running, batch) in [(running.mean, mean), (running.var, var)] {
        let new = graph.binary(BinaryOp::Mul, m, batch)?;
        let old = graph.binary(BinaryOp::Mul, keep, running)?;
        let value = graph.binary(BinaryOp::Add, new, old)?;
        graph.add_assign(running, value)?;
    }
    Ok(())
}

/// `nn.Dropout(p)` (`channels: false`) or `nn.Dropout1d/2d(p)` (`channels: true`, one draw per
/// sample and channel) on `h`, the layer at `index` of `model.layers`.
pub(crate) fn dropout(
    graph: &mut Graph,
    h: NodeId,
    p: f64,
    channels: bool,
    index: usize,
    mode: Mode,
) -> Result<NodeId, IrError> {
    let Mode::Train { forward, seed, .. } = mode else {
        return Ok(h);
    };
    let shape = graph.shape(h).to_vec();
    if p == 0.0 {
        return Ok(h);
    }
    if p == 1.0 {
        // PyTorch's `input * zeros`: NaN stays NaN.
        let zero = graph.fill(0.0, &shape);
        return graph.binary(BinaryOp::Mul, h, zero);
    }
    let forward = forward.expect("a training graph whose dropout draws has a forward input");
    let draw_shape = if channels {
        shape[..2].to_vec()
    } else {
        shape.clone()
    };
    let stream = u32::try_from(index).expect("a spec of at most 16 MiB has fewer than 2^32 layers");
    let u = graph.random_uniform(forward, seed, stream, &draw_shape)?;
    let p_fill = graph.fill(p as f32, &draw_shape);
    let keep = graph.compare(CompareOp::Ge, u, p_fill)?;
    let scale = graph.fill((1.0 - p) as f32, &draw_shape);
    let mut noise = graph.binary(BinaryOp::Div, keep, scale)?;
    if channels {
        let mut view = draw_shape;
        view.resize(shape.len(), 1);
        noise = graph.reshape(noise, &view)?;
        noise = graph.broadcast(noise, &shape)?;
    }
    graph.binary(BinaryOp::Mul, h, noise)
}

/// Whether a training graph of `model` draws random values (a dropout with `0 < p < 1` that
/// the output depends on), and so takes the `forward` input.
pub fn draws_random(model: &ModelSpec) -> bool {
    entries(model)
        .0
        .iter()
        .filter(|e| e.reaches_output)
        .filter_map(|e| dropout_p(&e.layer.kind))
        .any(|p| p > 0.0 && p < 1.0)
}

/// Whether `model` has a batch norm that its output depends on (whose training statistics
/// are its batch's, which data parallelism splits).
pub fn has_batch_norm(model: &ModelSpec) -> bool {
    use graphc_spec::LayerType;
    let norms = [LayerType::BatchNorm1d, LayerType::BatchNorm2d];
    entries(model)
        .0
        .iter()
        .filter(|e| e.reaches_output)
        .any(|e| norms.contains(&e.layer.kind.layer_type()))
}

/// Whether `model` in evaluation mode still normalises with batch statistics: a batch norm
/// with `track_running_stats: false` (PyTorch's `model.eval()` then uses the batch's), so a
/// validation split into shares or chunks changes its numbers.
pub fn evaluates_with_batch_statistics(model: &ModelSpec) -> bool {
    entries(model)
        .0
        .iter()
        .filter(|e| e.reaches_output)
        .any(|e| {
            matches!(
                &e.layer.kind,
                LayerKind::BatchNorm1d(b) | LayerKind::BatchNorm2d(b) if !b.track_running_stats
            )
        })
}

/// Checks that no batch norm of `model` sees one value per channel in a training batch of
/// `batch` samples (PyTorch's "expected more than 1 value per channel when training"): the
/// check a step graph makes, for a data-parallel run whose shares sum their statistics
/// (`train.sync_batch_norm`), where a share of one value is fine but the whole batch's is not.
pub fn check_batch_norm_counts(model: &ModelSpec, batch: usize) -> Result<(), crate::NnError> {
    use graphc_spec::LayerType;
    let norms = [LayerType::BatchNorm1d, LayerType::BatchNorm2d];
    for info in crate::describe_model(model, batch)? {
        let positions: usize = info.output.iter().skip(1).product();
        if norms.contains(&info.layer_type) && info.reaches_output && batch * positions == 1 {
            let mut shape = vec![batch];
            shape.extend_from_slice(&info.output);
            return Err(info.error(format!(
                "expected more than 1 value per channel when training, got input size {shape:?}"
            )));
        }
    }
    Ok(())
}

/// A dropout layer's `p`; `None` for every other layer.
fn dropout_p(kind: &LayerKind) -> Option<f64> {
    match kind {
        LayerKind::Dropout { p } | LayerKind::Dropout1d { p } | LayerKind::Dropout2d { p } => {
            Some(*p)
        }
        LayerKind::Linear { .. }
        | LayerKind::Relu
        | LayerKind::Sigmoid
        | LayerKind::Tanh
        | LayerKind::Softmax { .. }
        | LayerKind::LogSoftmax { .. }
        | LayerKind::Conv1d(_)
        | LayerKind::Conv2d(_)
        | LayerKind::MaxPool1d(_)
        | LayerKind::MaxPool2d(_)
        | LayerKind::AvgPool1d(_)
        | LayerKind::AvgPool2d(_)
        | LayerKind::AdaptiveAvgPool1d { .. }
        | LayerKind::AdaptiveAvgPool2d { .. }
        | LayerKind::AdaptiveMaxPool2d { .. }
        | LayerKind::Flatten { .. }
        | LayerKind::BatchNorm1d(_)
        | LayerKind::BatchNorm2d(_)
        | LayerKind::LayerNorm(_)
        | LayerKind::GroupNorm(_)
        | LayerKind::Embedding(_)
        | LayerKind::Activation(_)
        | LayerKind::Prelu { .. }
        | LayerKind::Sequential(_)
        | LayerKind::Residual { .. }
        | LayerKind::Combine(_) => None,
    }
}
