//! The trainer's data-parallel path without MPI: ranks as threads of this process, summing
//! through shared memory, each a `Trainer` given that `Collective`. Its per-step losses and
//! final parameters must be the single-process run's (relative 1e-5 and 1e-4) — shard steps
//! with the whole batch's loss denominators, one sum per update, the apply step — on golden
//! cases with weighted and ignored classes, accumulation with a partial last batch, clipping
//! by the global norm, Adam and param groups, with shares of uneven size. (`crates/cli`'s
//! `mpi` tests run the same under `mpirun` when built with the feature `mpi`.)

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

use graphc::stages::train::collective::Collective;
use graphc::{BackendKind, StepEvent, Trainer};

use crate::support::close;

/// What the ranks share: the running sums and a barrier between the phases of a sum.
struct Shared {
    sums: Mutex<Vec<f64>>,
    barrier: Barrier,
}

/// Rank `rank` of `size` threads.
struct Threads {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
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
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum(&mut self, values: &mut [f32]) {
        let sums = self.sum_in_f64(values.iter().map(|&v| f64::from(v)).collect());
        for (v, s) in values.iter_mut().zip(sums) {
            *v = s as f32;
        }
    }
    fn sum_f64(&mut self, values: &mut [f64]) {
        let sums = self.sum_in_f64(values.to_vec());
        values.copy_from_slice(&sums);
    }
}

/// Trains the case's spec on `size` ranks (1: alone); its step losses and final parameters.
fn train(case: &Path, size: usize) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    let spec = graphc::parse_spec(&case.join("spec.yaml")).unwrap();
    let shared = Arc::new(Shared {
        sums: Mutex::new(Vec::new()),
        barrier: Barrier::new(size),
    });
    let runs: Vec<_> = (0..size)
        .map(|rank| {
            let spec = spec.clone();
            let case = case.to_path_buf();
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let data = graphc::load_data(&spec, &case).unwrap();
                let mut trainer: Trainer =
                    graphc::prepare(&spec, &case, &data, BackendKind::Jit).unwrap();
                if size > 1 {
                    let threads = Threads { rank, size, shared };
                    trainer.set_collective(Box::new(threads)).unwrap();
                }
                let mut losses = Vec::new();
                let mut observe = |e: &StepEvent| {
                    losses.push(e.loss);
                    ControlFlow::Continue(())
                };
                graphc::fit(&mut trainer, &data, &mut observe).unwrap();
                let params = trainer
                    .params()
                    .into_iter()
                    .map(|t| (t.name, t.data))
                    .collect::<Vec<_>>();
                (losses, params)
            })
        })
        .collect();
    let mut results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    for other in &results[1..] {
        assert_eq!(other, &results[0], "every rank ends with the same numbers");
    }
    results.swap_remove(0)
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
    for case in cases {
        same_numbers_on_2_and_3_ranks(&root.join(case));
    }
}

#[test]
fn a_gradient_larger_than_a_bucket_is_summed_in_place_with_the_same_numbers() {
    // 1024 × 1024 weights: 2^20 values, a bucket of their own; the bias, the second layer and
    // the loss are packed together.
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
    same_numbers_on_2_and_3_ranks(dir.path());
}

/// Trains `case` (a directory with its `spec.yaml`) as one process and as 2 and 3 ranks, and
/// checks the per-step losses and final parameters agree.
fn same_numbers_on_2_and_3_ranks(case: &Path) {
    let (losses, params) = train(case, 1);
    for size in [2, 3] {
        let (l, p) = train(case, size);
        let what = format!("{} on {size} ranks", case.display());
        assert_eq!(l.len(), losses.len(), "{what}: steps");
        assert_eq!(p.len(), params.len(), "{what}: parameters");
        for (s, (&a, &e)) in l.iter().zip(&losses).enumerate() {
            assert!(
                close(f64::from(a), f64::from(e), 1e-5, 1e-7),
                "{what}: step {} loss {a} vs {e}",
                s + 1
            );
        }
        for ((name, a), (_, e)) in p.iter().zip(&params) {
            for (k, (&a, &e)) in a.iter().zip(e).enumerate() {
                assert!(
                    close(f64::from(a), f64::from(e), 1e-4, 1e-6),
                    "{what}: {name}[{k}] = {a} vs {e}"
                );
            }
        }
    }
}
