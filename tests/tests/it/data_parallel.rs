//! The trainer's data-parallel path without MPI: ranks as threads of this process, summing
//! through shared memory, each a `Trainer` given that `Collective`. Its per-step losses and
//! final parameters must be the single-process run's (relative 1e-5 and 1e-4) — shard steps
//! with the whole batch's loss denominators, one sum per update, the apply step — on golden
//! cases with weighted and ignored classes, accumulation with a partial last batch, clipping
//! by the global norm, Adam and param groups, with shares of uneven size; dropout (masks by
//! global sample index, shares starting inside a Philox block) and the validation metrics
//! (sharded and reduced) likewise. Batch norm's per-rank statistics against PyTorch DDP's
//! numbers; with `train.sync_batch_norm`, statistics summed over ranks give the single
//! process's numbers, on both backends. Features left in their `.npy` or CSV file, each rank
//! reading its shares, give the same numbers too. (`crates/cli`'s `mpi` tests run the same under `mpirun` when built with the
//! feature `mpi`.)

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

use graphc::stages::train::collective::{Collective, Pending};
use graphc::{BackendKind, EpochEvent, Observer, Spec, StepEvent, TrainError, Trainer};

use crate::support::{close, write_npy};

/// What the ranks share: the running sums and a barrier between the phases of a sum, and
/// rank 0's log of its `sum_during`s.
struct Shared {
    sums: Mutex<Vec<f64>>,
    barrier: Barrier,
    starts: Mutex<Vec<(usize, usize)>>,
}

/// Rank `rank` of `size` threads.
struct Threads {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
    /// The last `sum_during`'s sums.
    summed: Vec<Vec<f32>>,
}

/// A `sum_during` of [`Threads`]: a bucket is summed (blocking) when started, so a bucket
/// started before the step completed its values sums the wrong ones.
struct ThreadBuckets<'a> {
    threads: &'a Threads,
    buckets: Vec<Vec<f32>>,
    started: usize,
}

impl Pending for ThreadBuckets<'_> {
    fn bucket(&mut self, bucket: usize) -> &mut [f32] {
        match self.buckets.get_mut(bucket) {
            Some(b) if bucket >= self.started => b,
            _ => &mut [],
        }
    }
    fn start(&mut self, bucket: usize) {
        while self.started <= bucket && self.started < self.buckets.len() {
            self.threads.sum_f32(&mut self.buckets[self.started]);
            self.started += 1;
        }
    }
    fn progress(&mut self) {}
    fn sum(&mut self, values: &mut [f32]) {
        self.threads.sum_f32(values);
    }
}

impl Threads {
    /// Every rank's `values` added up in f64, in rank order (each adds when its turn
    /// comes), and the sums given back to all.
    fn sum_in_f64(&self, mine: Vec<f64>) -> Vec<f64> {
        let shared = &self.shared;
        shared.barrier.wait();
        if self.rank == 0 {
            let mut sums = shared.sums.lock().unwrap();
            sums.clear();
            sums.resize(mine.len(), 0.0);
        }
        for turn in 0..self.size {
            shared.barrier.wait();
            if turn == self.rank {
                let mut sums = shared.sums.lock().unwrap();
                for (s, v) in sums.iter_mut().zip(&mine) {
                    *s += v;
                }
            }
        }
        shared.barrier.wait();
        let sums = shared.sums.lock().unwrap().clone();
        sums
    }

    /// [`Threads::sum_in_f64`] of f32 values, in place.
    fn sum_f32(&self, values: &mut [f32]) {
        let sums = self.sum_in_f64(values.iter().map(|&v| f64::from(v)).collect());
        for (v, s) in values.iter_mut().zip(sums) {
            *v = s as f32;
        }
    }
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum(&mut self, values: &mut [f32]) {
        self.sum_f32(values);
    }
    fn sum_f64(&mut self, values: &mut [f64]) {
        let sums = self.sum_in_f64(values.to_vec());
        values.copy_from_slice(&sums);
    }
    fn sum_during(&mut self, lengths: &[usize], body: &mut dyn FnMut(&mut dyn Pending)) {
        let mut live = ThreadBuckets {
            threads: self,
            buckets: lengths.iter().map(|&len| vec![0.0; len]).collect(),
            started: 0,
        };
        body(&mut live);
        if self.rank == 0 {
            let early = (live.started, lengths.len());
            self.shared.starts.lock().unwrap().push(early);
        }
        live.start(usize::MAX);
        self.summed = live.buckets;
    }
    fn summed(&self, bucket: usize) -> &[f32] {
        self.summed.get(bucket).map_or(&[], Vec::as_slice)
    }
}

/// What a run gives: its step losses, each epoch's validation loss and accuracy (or RMSE),
/// and the final `state_dict` (parameters and running statistics, and the counters).
#[derive(Debug, Clone, PartialEq)]
struct Run {
    losses: Vec<f32>,
    valid: Vec<(f32, Option<f32>)>,
    state: Vec<(String, Vec<f32>)>,
    counters: Vec<(String, i64)>,
    /// Per step of rank 0 on several ranks: the buckets of gradient sums it started before
    /// its step returned (while the run went on), and all its buckets.
    starts: Vec<(usize, usize)>,
}

/// Collects a run's step losses and validation metrics.
#[derive(Default)]
struct Record {
    losses: Vec<f32>,
    valid: Vec<(f32, Option<f32>)>,
}

impl Observer for Record {
    fn on_step(&mut self, e: &StepEvent) -> Result<ControlFlow<()>, TrainError> {
        self.losses.push(e.loss);
        Ok(ControlFlow::Continue(()))
    }
    fn on_epoch(&mut self, e: &EpochEvent) -> Result<ControlFlow<()>, TrainError> {
        if let Some(v) = e.valid {
            self.valid.push((v.loss, v.accuracy.or(v.rmse)));
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// Trains the case's spec on `size` ranks (1: alone); what the run gives, the same on every
/// rank.
fn train(case: &Path, size: usize) -> Run {
    let spec = graphc::parse_spec(&case.join("spec.yaml")).unwrap();
    train_spec(&spec, case, size)
}

/// [`train`] of `spec`, whose files are in `dir`.
fn train_spec(spec: &Spec, dir: &Path, size: usize) -> Run {
    train_spec_on(spec, dir, size, BackendKind::Jit)
}

/// [`train_spec`] on `backend`.
fn train_spec_on(spec: &Spec, dir: &Path, size: usize, backend: BackendKind) -> Run {
    let shared = Arc::new(Shared {
        sums: Mutex::new(Vec::new()),
        barrier: Barrier::new(size),
        starts: Mutex::new(Vec::new()),
    });
    let runs: Vec<_> = (0..size)
        .map(|rank| {
            let spec = spec.clone();
            let dir = dir.to_path_buf();
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let data = graphc::load_data_on(&spec, &dir, size).unwrap();
                let mut trainer: Trainer = graphc::prepare(&spec, &dir, &data, backend).unwrap();
                if size > 1 {
                    let threads = Threads {
                        rank,
                        size,
                        shared,
                        summed: Vec::new(),
                    };
                    trainer.set_collective(Box::new(threads));
                }
                let mut record = Record::default();
                graphc::fit(&mut trainer, &data, &mut record).unwrap();
                let model = trainer.model_state();
                let state = (model.tensors.into_iter())
                    .map(|t| (t.name, t.data))
                    .collect::<Vec<_>>();
                let counters = (model.counters.into_iter())
                    .map(|c| (c.name, c.value))
                    .collect();
                Run {
                    losses: record.losses,
                    valid: record.valid,
                    state,
                    counters,
                    starts: Vec::new(),
                }
            })
        })
        .collect();
    let mut results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    for run in &mut results {
        run.starts.clone_from(&shared.starts.lock().unwrap());
    }
    for other in &results[1..] {
        assert_eq!(other, &results[0], "every rank ends with the same numbers");
    }
    results.swap_remove(0)
}

/// Every difference of `run` from `alone` beyond the tolerances: losses (training
/// and validation) relative 1e-5, parameters and running statistics 1e-4.
fn differences(what: &str, run: &Run, alone: &Run) -> Vec<String> {
    let mut wrong = Vec::new();
    if run.losses.len() != alone.losses.len() || run.valid.len() != alone.valid.len() {
        wrong.push(format!(
            "{what}: {} steps and {} validations, alone {} and {}",
            run.losses.len(),
            run.valid.len(),
            alone.losses.len(),
            alone.valid.len()
        ));
        return wrong;
    }
    if run.counters != alone.counters {
        wrong.push(format!(
            "{what}: counters {:?} vs {:?}",
            run.counters, alone.counters
        ));
    }
    let loss_close = |a: f32, e: f32| close(f64::from(a), f64::from(e), 1e-5, 1e-7);
    for (s, (&a, &e)) in run.losses.iter().zip(&alone.losses).enumerate() {
        if !loss_close(a, e) {
            wrong.push(format!("{what}: step {} loss {a} vs {e}", s + 1));
        }
    }
    for (epoch, (a, e)) in run.valid.iter().zip(&alone.valid).enumerate() {
        let score = match (a.1, e.1) {
            (Some(x), Some(y)) => loss_close(x, y),
            (x, y) => x == y,
        };
        if !loss_close(a.0, e.0) || !score {
            wrong.push(format!(
                "{what}: epoch {} validation {a:?} vs {e:?}",
                epoch + 1
            ));
        }
    }
    for ((name, a), (_, e)) in run.state.iter().zip(&alone.state) {
        for (k, (&a, &e)) in a.iter().zip(e).enumerate() {
            if !close(f64::from(a), f64::from(e), 1e-4, 1e-6) {
                wrong.push(format!("{what}: {name}[{k}] = {a} vs {e}"));
                break;
            }
        }
    }
    wrong
}

/// The case's run on 2 and 3 ranks against its run alone: [`differences`].
fn against_one_process(case: &Path) -> Vec<String> {
    let spec = graphc::parse_spec(&case.join("spec.yaml")).unwrap();
    spec_against_one_process(&case.display().to_string(), &spec, case)
}

/// [`against_one_process`] of `spec`, whose files are in `dir`.
fn spec_against_one_process(what: &str, spec: &Spec, dir: &Path) -> Vec<String> {
    spec_against_one_process_on(what, spec, dir, BackendKind::Jit)
}

/// [`spec_against_one_process`] on `backend`.
fn spec_against_one_process_on(
    what: &str,
    spec: &Spec,
    dir: &Path,
    backend: BackendKind,
) -> Vec<String> {
    let alone = train_spec_on(spec, dir, 1, backend);
    [2, 3]
        .into_iter()
        .flat_map(|size| {
            let run = train_spec_on(spec, dir, size, backend);
            differences(&format!("{what} on {size} ranks"), &run, &alone)
        })
        .collect()
}

#[test]
fn ranks_as_threads_give_the_single_process_numbers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens");
    let cases = [
        "losses/training/cross_entropy_smoothing_weight_ignore",
        "losses/training/nll_weight_ignore",
        "losses/training/bce_with_logits_pos_weight",
        "accumulate_clip/accumulate_3_partial_last",
        "accumulate_clip/accumulate_adam_clip_norm",
        "optimizers/mlp_sgd_groups_momentum",
    ];
    let mut wrong = Vec::new();
    for case in cases {
        wrong.extend(against_one_process(&root.join(case)));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The trainer divides a shard step's loss by the whole batch's denominator from
/// `graphc_nn::mean_denominator`, which restates each loss's mean beside the graph that forms
/// it. This pins the two together: every loss type has a training golden case, and each case
/// on 3 ranks (uneven shares) gives the single-process numbers with `sum`, `mean` and, for
/// `kl_div`, `batchmean`. A new loss without a case, or whose denominator the function gets
/// wrong, fails here.
#[test]
fn every_loss_and_reduction_on_ranks_gives_the_single_process_numbers() {
    use graphc::stages::spec::{LossType, Reduction};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/losses/training");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    let mut covered = Vec::new();
    let mut wrong = Vec::new();
    for case in &cases {
        let spec = graphc::parse_spec(&case.join("spec.yaml")).unwrap();
        let loss = spec.loss.loss_type().expect("a loss golden names a loss");
        covered.push(loss);
        for reduction in [Reduction::Sum, Reduction::Mean, Reduction::BatchMean] {
            let applies = match reduction {
                Reduction::BatchMean => loss == LossType::KlDiv,
                Reduction::Sum | Reduction::Mean => true,
                Reduction::None => false,
            };
            if !applies {
                continue;
            }
            let mut spec = spec.clone();
            *spec.loss.reduction_mut() = reduction;
            let what = format!(
                "{} with {reduction:?}",
                case.file_name().unwrap().to_string_lossy()
            );
            let alone = train_spec(&spec, case, 1);
            let run = train_spec(&spec, case, 3);
            wrong.extend(differences(&format!("{what} on 3 ranks"), &run, &alone));
        }
    }
    let missing: Vec<_> = (LossType::ALL.iter())
        .filter(|t| !covered.contains(t))
        .map(|t| t.name())
        .collect();
    assert!(
        missing.is_empty(),
        "no training golden for {missing:?} in {}",
        root.display()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn gradient_buckets_start_while_the_step_runs_with_the_same_numbers() {
    // 1024 × 1024 weights: 2^20 values, a bucket of their own; the second layer and the
    // first bias are packed together, first, as the backward completes them first. Each
    // bucket is summed when it starts: one started before its values were complete would
    // sum wrong ones. On both backends (the interpreter reports every value at the end of
    // its run).
    let dir = tempfile::tempdir().unwrap();
    let spec = "seed: 0
data:
  train: {synthetic: {kind: blobs, samples: 12, features: 1024, classes: 3}}
  batch_size: 5
model:
  input: [1024]
  layers:
    - {type: linear, out: 1024}
    - {type: relu}
    - {type: linear, out: 3}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
train: {epochs: 2}
";
    std::fs::write(dir.path().join("spec.yaml"), spec).unwrap();
    let mut wrong = against_one_process(dir.path());
    let spec = graphc::parse_spec(&dir.path().join("spec.yaml")).unwrap();
    wrong.extend(spec_against_one_process_on(
        "interp",
        &spec,
        dir.path(),
        BackendKind::Interp,
    ));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Batches 5, 5, 2 a epoch: every step an update whose two gradient buckets both started
    // during the step; the third, of the loss (no running statistics here), after it.
    let run = train(dir.path(), 2);
    assert_eq!(run.starts, vec![(2, 3); 6]);
}

#[test]
fn dropout_on_ranks_draws_the_single_process_masks() {
    // Shares of 8 on 3 ranks are 3, 3 and 2 rows: a dropout over rows of 16, 4 and
    // 8 values starts every share on a Philox block; `dropout_p0_then_default_p`'s rows of
    // 8 too. Validation runs sharded (each case but the 2-d one has a valid set).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/norm_dropout");
    let mut wrong = Vec::new();
    for case in [
        "dropout_mlp_p025_named",
        "dropout1d_conv1d",
        "dropout2d_conv2d_seed_above_2_32",
        "dropout_p0_then_default_p",
    ] {
        wrong.extend(against_one_process(&root.join(case)));
    }
    // Rows of 5 and 3 values: shares start inside Philox blocks (shares of 7 on 3 ranks
    // start at rows 3 and 5: elements 15 and 25, or 9 and 15), and batches of 7 leave a
    // partial last batch.
    let case = root.join("dropout_mlp_p025_named");
    let text = std::fs::read_to_string(case.join("spec.yaml")).unwrap();
    let text = text
        .replace("out: 16", "out: 5")
        .replace("batch_size: 8", "batch_size: 7")
        .replace("  init: {from: init.safetensors}\n", "")
        .replace(
            "    - {type: linear, out: 3}",
            "    - {type: linear, out: 3}\n    - {type: dropout, p: 0.5}",
        );
    assert!(text.contains("out: 5") && text.contains("p: 0.5"), "{text}");
    let spec: Spec = text.parse().unwrap();
    wrong.extend(spec_against_one_process("rows of 5 and 3", &spec, &case));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// PyTorch's numbers for a `tests/goldens/data_parallel` case (`tools/goldens/ddp_batch_norm.py`:
/// DDP over gloo), as a [`Run`], and its rank count.
fn ddp_golden(case: &Path) -> (usize, Run) {
    let text = std::fs::read_to_string(case.join("expected.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        let values = v.as_array().expect("an array").iter();
        values
            .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
            .collect()
    };
    let ranks = expected["ranks"].as_u64().expect("ranks") as usize;
    let valid = floats(&expected["valid_losses"]);
    let final_state = expected["final"].as_object().expect("final");
    let state = final_state
        .iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(name, t)| (name.clone(), floats(&t["data"])))
        .collect();
    let run = Run {
        losses: floats(&expected["losses"]),
        valid: valid.into_iter().map(|v| (v, None)).collect(),
        state,
        counters: Vec::new(),
        starts: Vec::new(),
    };
    (ranks, run)
}

#[test]
fn batch_norm_on_ranks_normalises_each_share_as_pytorch_ddp_does() {
    // Per-rank batch statistics, rank 0's running statistics on every rank: PyTorch DDP's
    // BatchNorm with its default `broadcast_buffers`, on 2 and 3 ranks (`momentum: null`
    // too); validation sharded, with rank 0's statistics.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/data_parallel");
    let mut wrong = Vec::new();
    for case in ["ddp_bn1d_2_ranks", "ddp_bn2d_momentum_null_3_ranks"] {
        let case = root.join(case);
        let (ranks, torch) = ddp_golden(&case);
        let mut run = train(&case, ranks);
        run.counters.clear();
        // The golden records losses only for validation, and tensors by name.
        run.valid.iter_mut().for_each(|v| v.1 = None);
        run.state
            .retain(|(name, _)| torch.state.iter().any(|(n, _)| n == name));
        let mut torch = torch;
        torch
            .state
            .sort_by_key(|(name, _)| run.state.iter().position(|(n, _)| n == name));
        assert_eq!(run.state.len(), torch.state.len(), "{}", case.display());
        wrong.extend(differences(
            &format!("{} against PyTorch DDP", case.display()),
            &run,
            &torch,
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn sync_batch_norm_on_ranks_gives_the_single_process_numbers() {
    // Statistics summed over ranks: every share is normalised with the whole batch's, so 2
    // and 3 ranks give one process's numbers (which the PyTorch goldens pin), running
    // statistics and `num_batches_tracked` included, on both backends. Batches of 8 on 3
    // ranks are shares of 3, 3 and 2; a last batch of 1 leaves two ranks without samples.
    // Validation losses are compared too.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/norm_dropout");
    let cases = [
        ("bn1d_features_after_linear_named", BackendKind::Jit),
        ("bn1d_features_after_linear_named", BackendKind::Interp),
        ("bn2d_momentum_null_adam", BackendKind::Jit),
        ("bn2d_momentum_null_adam", BackendKind::Interp),
        ("bn1d_channels_after_conv1d_last_batch_1", BackendKind::Jit),
        (
            "bn1d_channels_after_conv1d_last_batch_1",
            BackendKind::Interp,
        ),
        ("convnet_bn_dropout_valid", BackendKind::Jit),
        ("accumulate_2_bn1d_dropout", BackendKind::Jit),
        // Validation with batch statistics (no running ones): every rank evaluates all rows.
        ("bn1d_no_affine_no_running_stats", BackendKind::Jit),
        ("bn1d_no_affine_no_running_stats", BackendKind::Interp),
        ("bn2d_no_running_stats", BackendKind::Jit),
    ];
    let mut wrong = Vec::new();
    for (case, backend) in cases {
        let dir = root.join(case);
        let mut spec = graphc::parse_spec(&dir.join("spec.yaml")).unwrap();
        spec.train.sync_batch_norm = true;
        let what = format!("{case} ({backend:?})");
        wrong.extend(spec_against_one_process_on(&what, &spec, &dir, backend));
    }
    // The step's own sums over ranks come first on every rank: no bucket starts during it.
    let dir = root.join(cases[0].0);
    let mut spec = graphc::parse_spec(&dir.join("spec.yaml")).unwrap();
    spec.train.sync_batch_norm = true;
    let starts = train_spec(&spec, &dir, 2).starts;
    assert!(
        !starts.is_empty() && starts.iter().all(|&(early, _)| early == 0),
        "{starts:?}"
    );
    // A graph of nodes with a batch norm on each of two branches (their sums have no order
    // between them but the one every rank's step shares), 1-d and 2-d, momentum null.
    let dir = tempfile::tempdir().unwrap();
    let spec = "seed: 3
data:
  train: {synthetic: {kind: blobs, samples: 23, features: 18, classes: 3}}
  batch_size: 7
model:
  input: [2, 3, 3]
  nodes:
    - {name: conv, type: conv2d, out_channels: 4, kernel_size: 2}
    - {name: left, type: batch_norm2d, inputs: conv}
    - {name: right, type: batch_norm2d, momentum: null, affine: false, inputs: conv}
    - {name: sum, type: add, inputs: [left, right]}
    - {name: flat, type: flatten}
    - {name: fc, type: linear, out: 5}
    - {name: bn, type: batch_norm1d}
    - {name: act, type: relu}
    - {name: out, type: linear, out: 3}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
train: {epochs: 2, sync_batch_norm: true}
";
    let spec: Spec = spec.parse().unwrap();
    for backend in [BackendKind::Jit, BackendKind::Interp] {
        let what = format!("branches ({backend:?})");
        wrong.extend(spec_against_one_process_on(
            &what,
            &spec,
            dir.path(),
            backend,
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn sync_batch_norm_alone_changes_nothing_bit_for_bit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/norm_dropout");
    for case in [
        "bn2d_momentum_null_adam",
        "bn1d_features_after_linear_named",
    ] {
        let dir = root.join(case);
        let mut spec = graphc::parse_spec(&dir.join("spec.yaml")).unwrap();
        let plain = train_spec(&spec, &dir, 1);
        spec.train.sync_batch_norm = true;
        assert_eq!(train_spec(&spec, &dir, 1), plain, "{case}");
    }
}

#[test]
fn sync_batch_norm_refuses_a_whole_batch_of_one_value_per_channel() {
    // A last batch of one sample (27 rows in batches of 13) gives a batch_norm1d after a
    // linear layer one value per channel: one process refuses it when building that batch's
    // step, and so does every rank, although a share alone could not tell.
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("goldens/norm_dropout/bn1d_features_after_linear_named");
    let mut spec = graphc::parse_spec(&case.join("spec.yaml")).unwrap();
    spec.train.sync_batch_norm = true;
    spec.data.batch_size = 13;
    let shared = Arc::new(Shared {
        sums: Mutex::new(Vec::new()),
        barrier: Barrier::new(2),
        starts: Mutex::new(Vec::new()),
    });
    let ranks: Vec<_> = (0..2)
        .map(|rank| {
            let (spec, case, shared) = (spec.clone(), case.clone(), Arc::clone(&shared));
            std::thread::spawn(move || {
                let data = graphc::load_data(&spec, &case).unwrap();
                let mut trainer: Trainer =
                    graphc::prepare(&spec, &case, &data, BackendKind::Jit).unwrap();
                let threads = Threads {
                    rank,
                    size: 2,
                    shared,
                    summed: Vec::new(),
                };
                trainer.set_collective(Box::new(threads));
                let mut record = Record::default();
                graphc::fit(&mut trainer, &data, &mut record)
                    .err()
                    .map(|e| e.to_string())
            })
        })
        .collect();
    for rank in ranks {
        let err = rank.join().unwrap().expect("refused");
        assert!(
            err.contains("bn1") && err.contains("expected more than 1 value per channel"),
            "{err}"
        );
    }
}

/// `.npy` data for the file-backed cases: `n` samples of 6 float64 features (rows of
/// different scales, so standardization matters) and float32 whole-number labels of 3 classes.
fn write_npy_data(dir: &Path, n: usize) {
    let x: Vec<u8> = (0..n * 6)
        .flat_map(|i| {
            let (row, col) = ((i / 6) as f64, (i % 6) as f64);
            ((row * 0.37 + col * 1.3).sin() * (col + 1.0) * 10.0 + col).to_le_bytes()
        })
        .collect();
    write_npy(&dir.join("x.npy"), "<f8", &[n, 6], &x);
    let y: Vec<u8> = (0..n)
        .flat_map(|i| (((i * 7) % 3) as f32).to_le_bytes())
        .collect();
    write_npy(&dir.join("y.npy"), "<f4", &[n], &y);
}

#[test]
fn npy_features_read_from_the_file_by_each_rank_give_the_single_process_numbers() {
    // Shuffled batches of 7 over 3 ranks (shares of 3, 2 and 2, changing every epoch), a
    // drawn validation split (each rank evaluates its share) and standardization fitted in a
    // streaming pass over the file.
    let dir = tempfile::tempdir().unwrap();
    write_npy_data(dir.path(), 43);
    let spec = shuffled_split_spec("{npy: {features: x.npy, target: y.npy}}", 6);
    assert_ranks_leave_features_in_the_file(&spec, dir.path());
    let wrong = spec_against_one_process("npy on ranks", &spec, dir.path());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The file-backed cases' spec: `train` as the training source of `input` features, 3
/// classes, shuffled batches of 7, standardized, a quarter held out.
fn shuffled_split_spec(train: &str, input: usize) -> Spec {
    format!(
        "seed: 3
data:
  train: {train}
  batch_size: 7
  shuffle: true
  standardize: true
  split: 0.25
model:
  input: [{input}]
  layers:
    - {{type: linear, out: 8}}
    - {{type: relu}}
    - {{type: linear, out: 3}}
loss: {{type: cross_entropy}}
optimizer: {{type: adam, lr: 0.01}}
train: {{epochs: 3}}
"
    )
    .parse()
    .unwrap()
}

/// CSV data for the file-backed cases: `n` rows of 5 features of different scales (some
/// cells quoted or padded, a blank line now and then), an unused text column `note`, text
/// labels of 3 classes (one needs quotes) and two float targets `t1`, `t2`.
fn write_csv_data(path: &Path, n: usize, salt: f64) {
    let mut text = String::from("f0,\"f1\",note,f2,label,f3,t1,f4,t2\n");
    for row in 0..n {
        let r = row as f64 + salt;
        let f = |col: f64| (r * 0.37 + col * 1.3).sin() * (col + 1.0) * 10.0 + col;
        let label = ["\"cat, big\"", "dog", "emu"][(row * 7) % 3];
        let t1 = (r * 0.11).cos();
        let t2 = f(0.0) * 0.05 - f(3.0) * 0.02;
        text.push_str(&format!(
            "{},\"{}\",row {row},  {} ,{label},{:e},{t1},\"{}\",{t2}\n",
            f(0.0) as f32,
            f(1.0) as f32,
            f(2.0) as f32,
            f(3.0) as f32,
            f(4.0) as f32
        ));
        if row % 9 == 4 {
            text.push('\n');
        }
    }
    std::fs::write(path, text).unwrap();
}

/// `spec` loaded alone and on 2 ranks: features in memory alone and left in their file
/// (training and validation sets) on ranks, with the same standardization statistics.
fn assert_ranks_leave_features_in_the_file(spec: &Spec, dir: &Path) {
    let alone = graphc::load_data_on(spec, dir, 1).unwrap();
    let ranked = graphc::load_data_on(spec, dir, 2).unwrap();
    let in_memory = |d: &graphc::Dataset| d.features.in_memory().is_some();
    assert!(
        in_memory(&alone.train) && in_memory(alone.valid.as_ref().unwrap()),
        "one process keeps the features in memory"
    );
    assert!(
        !in_memory(&ranked.train) && !in_memory(ranked.valid.as_ref().unwrap()),
        "a rank leaves them in the file"
    );
    assert_eq!(ranked.standardizer, alone.standardizer);
    assert_eq!(ranked.train.targets, alone.train.targets);
}

#[test]
fn csv_features_read_from_the_file_by_each_rank_give_the_single_process_numbers() {
    // As the `.npy` case, with text labels and an unused text column.
    let dir = tempfile::tempdir().unwrap();
    write_csv_data(&dir.path().join("d.csv"), 43, 0.0);
    let train = "{csv: d.csv, target: label, features: [f0, f1, f2, f3, f4]}";
    let spec = shuffled_split_spec(train, 5);
    assert_ranks_leave_features_in_the_file(&spec, dir.path());
    let wrong = spec_against_one_process("csv on ranks", &spec, dir.path());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn csv_features_in_order_with_a_valid_file_give_the_single_process_numbers() {
    // Unshuffled batches of 5 with a partial last one (shares of 2, 2, 1 and, last, 1, 1, 0),
    // two float targets, a validation file of its own, the sample std.
    let dir = tempfile::tempdir().unwrap();
    write_csv_data(&dir.path().join("train.csv"), 23, 0.0);
    write_csv_data(&dir.path().join("valid.csv"), 11, 100.5);
    let spec: Spec = "seed: 8
data:
  train: {csv: train.csv, target: [t1, t2], features: [f4, f0, f2]}
  valid: {csv: valid.csv, target: [t1, t2], features: [f4, f0, f2]}
  batch_size: 5
  standardize: {std: sample}
model:
  input: [3]
  layers:
    - {type: linear, out: 6}
    - {type: tanh}
    - {type: linear, out: 2}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
train: {epochs: 3}
"
    .parse()
    .unwrap();
    assert_ranks_leave_features_in_the_file(&spec, dir.path());
    let wrong = spec_against_one_process("csv in order on ranks", &spec, dir.path());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
