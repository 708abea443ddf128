//! `Collective`: what data-parallel training needs of the processes it runs in — which rank
//! this is, how many there are, a sum over all of them, and ending them all — behind one
//! trait, so the trainer has one code path. [`Solo`] is the single process (nothing to sum);
//! with the cargo feature `mpi`, [`World::start`] gives MPI's `MPI_COMM_WORLD` when the process
//! was started by `mpirun` (or `srun`) with more than one rank. MPI is touched nowhere else.

/// The processes training together. Every rank calls the collective operations in the same
/// order with buffers of the same length.
pub trait Collective {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// How many processes train together.
    fn size(&self) -> usize;
    /// Replaces `values` on every rank with their elementwise sums over all ranks.
    fn sum(&mut self, values: &mut [f32]);
    /// [`Collective::sum`] for f64 (metrics summed over ranks).
    fn sum_f64(&mut self, values: &mut [f64]);
    /// Sums buckets of `lengths` values over the ranks while `body` runs. `body` fills each
    /// bucket ([`Pending::bucket`]) and starts its sum ([`Pending::start`]), buckets in order,
    /// and computes on while the sums travel. When `body` returns, buckets it did not start
    /// are started with what they hold, every sum is complete, and [`Collective::summed`]
    /// reads them.
    fn sum_during(&mut self, lengths: &[usize], body: &mut dyn FnMut(&mut dyn Pending));
    /// Bucket `bucket`'s sums from the last [`Collective::sum_during`].
    fn summed(&self, bucket: usize) -> &[f32];
}

/// The buckets of a [`Collective::sum_during`] while its body runs.
pub trait Pending {
    /// Bucket `bucket` to fill; empty once started.
    fn bucket(&mut self, bucket: usize) -> &mut [f32];
    /// Starts the sums of every bucket up to and including `bucket` not yet started.
    fn start(&mut self, bucket: usize);
    /// Lets the sums under way move on (MPI progresses them only inside its calls).
    fn progress(&mut self);
    /// [`Collective::sum`] while buckets are pending (every rank makes the same calls in
    /// the same order, starts included).
    fn sum(&mut self, values: &mut [f32]);
}

/// The buckets of [`Collective::sum_during`], grown to the lengths asked for, never shrunk
/// (a step's buckets are the same every step).
#[derive(Debug, Default)]
struct Buckets {
    buffers: Vec<Vec<f32>>,
    lengths: Vec<usize>,
}

impl Buckets {
    /// Makes room for buckets of `lengths`.
    fn resize(&mut self, lengths: &[usize]) {
        if self.buffers.len() < lengths.len() {
            self.buffers.resize_with(lengths.len(), Vec::new);
        }
        for (buffer, &len) in self.buffers.iter_mut().zip(lengths) {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        self.lengths.clear();
        self.lengths.extend_from_slice(lengths);
    }

    /// The buckets, each its length.
    fn slices(&mut self) -> impl Iterator<Item = &mut [f32]> {
        (self.buffers.iter_mut())
            .zip(&self.lengths)
            .map(|(b, &len)| &mut b[..len])
    }

    /// Bucket `bucket`.
    fn get(&self, bucket: usize) -> &[f32] {
        self.buffers
            .get(bucket)
            .zip(self.lengths.get(bucket))
            .map_or(&[], |(b, &len)| &b[..len])
    }
}

/// One process's buckets: its sums are what it holds.
struct Alone<'a> {
    buckets: Vec<&'a mut [f32]>,
}

impl Pending for Alone<'_> {
    fn bucket(&mut self, bucket: usize) -> &mut [f32] {
        self.buckets.get_mut(bucket).map_or(&mut [], |b| &mut **b)
    }
    fn start(&mut self, _bucket: usize) {}
    fn progress(&mut self) {}
    fn sum(&mut self, _values: &mut [f32]) {}
}

/// One process alone: rank 0 of 1; sums are the values themselves.
#[derive(Debug, Default)]
pub struct Solo {
    buckets: Buckets,
}

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&mut self, _values: &mut [f32]) {}
    fn sum_f64(&mut self, _values: &mut [f64]) {}
    fn sum_during(&mut self, lengths: &[usize], body: &mut dyn FnMut(&mut dyn Pending)) {
        self.buckets.resize(lengths);
        body(&mut Alone {
            buckets: self.buckets.slices().collect(),
        });
    }
    fn summed(&self, bucket: usize) -> &[f32] {
        self.buckets.get(bucket)
    }
}

/// The first and last row (`start..end`) of rank `rank`'s share of a batch of `samples` split
/// over `size` ranks: contiguous, in the batch's order, sizes differing by at most one (the
/// first `samples % size` ranks take one more). A rank may get none.
pub fn share(samples: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let size = size.max(1);
    let (base, extra) = (samples / size, samples % size);
    let start = rank * base + rank.min(extra);
    let len = base + usize::from(rank < extra);
    start..start + len
}

/// The number of ranks the launcher started, from the environment Open MPI
/// (`OMPI_COMM_WORLD_SIZE`), MPICH and Slurm's PMI (`PMI_SIZE`) give every rank; `None` when
/// none says so (a plain start).
pub fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|key| std::env::var(key).ok()?.trim().parse().ok())
}

/// Whether this process reports a run: it was not started by a launcher, or it is rank 0
/// (`OMPI_COMM_WORLD_RANK`, `PMI_RANK`).
pub fn reports() -> bool {
    ["OMPI_COMM_WORLD_RANK", "PMI_RANK"]
        .iter()
        .find_map(|key| std::env::var(key).ok()?.trim().parse::<usize>().ok())
        .is_none_or(|rank| rank == 0)
}

/// The processes this one trains with, and what keeps MPI running while they do: made once
/// per process by [`World::start`], dropped (`MPI_Finalize`) after training.
pub struct World {
    rank: usize,
    size: usize,
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

impl World {
    /// MPI's world when started by a launcher with more than one rank, else one process
    /// alone. Errors (one line) when a launcher started several ranks but this binary was
    /// built without the feature `mpi`, or MPI cannot start.
    pub fn start() -> Result<World, String> {
        let ranks = launched_ranks().unwrap_or(1);
        if ranks <= 1 {
            return Ok(World {
                rank: 0,
                size: 1,
                #[cfg(feature = "mpi")]
                _universe: None,
            });
        }
        Self::start_mpi(ranks)
    }

    #[cfg(not(feature = "mpi"))]
    fn start_mpi(ranks: usize) -> Result<World, String> {
        Err(format!(
            "started as one of {ranks} MPI ranks, but this graphc was built without MPI support: build it with `cargo build --release -p graphc-cli --features mpi` (needs libopenmpi-dev), or run it without mpirun"
        ))
    }

    #[cfg(feature = "mpi")]
    fn start_mpi(_ranks: usize) -> Result<World, String> {
        use mpi::topology::Communicator;
        let universe = mpi::initialize().ok_or("MPI could not be initialized (MPI_Init failed)")?;
        let world = universe.world();
        Ok(World {
            rank: usize::try_from(world.rank()).unwrap_or(0),
            size: usize::try_from(world.size()).unwrap_or(1),
            _universe: Some(universe),
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// How many processes train together.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The collective operations over these processes.
    pub fn collective(&self) -> Box<dyn Collective + Send> {
        if self.size <= 1 {
            return Box::new(Solo::default());
        }
        #[cfg(feature = "mpi")]
        return Box::new(mpi_impl::Mpi::new(self.rank, self.size));
        #[cfg(not(feature = "mpi"))]
        Box::new(Solo::default())
    }

    /// Ends every rank with exit status `code`, this one having printed why (`MPI_Abort`;
    /// alone, a plain exit).
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if self._universe.is_some() {
            use mpi::topology::Communicator;
            mpi::topology::SimpleCommunicator::world().abort(code)
        }
        std::process::exit(code)
    }
}

#[cfg(feature = "mpi")]
mod mpi_impl {
    use mpi::collective::{CommunicatorCollectives, SystemOperation};
    use mpi::request::{LocalScope, Request};
    use mpi::topology::SimpleCommunicator;

    use super::{Buckets, Pending};

    /// `MPI_COMM_WORLD` (a handle made per call: it owns nothing), with the receive buffers
    /// of its sums (the `mpi` crate has no in-place all-reduce; reusing them keeps a step from
    /// allocating).
    pub(super) struct Mpi {
        rank: usize,
        size: usize,
        scratch: Vec<f32>,
        scratch_f64: Vec<f64>,
        /// [`super::Collective::sum_during`]'s buckets, and where their sums arrive.
        sends: Buckets,
        sums: Buckets,
    }

    impl Mpi {
        pub(super) fn new(rank: usize, size: usize) -> Mpi {
            Mpi {
                rank,
                size,
                scratch: Vec::new(),
                scratch_f64: Vec::new(),
                sends: Buckets::default(),
                sums: Buckets::default(),
            }
        }
    }

    /// A [`super::Collective::sum_during`] under way: the buckets not yet started, and one
    /// non-blocking all-reduce (`MPI_Iallreduce`) per started bucket.
    struct Live<'a, 's> {
        world: &'a SimpleCommunicator,
        /// The receive buffer of blocking sums (as [`Mpi`]'s).
        scratch: &'a mut Vec<f32>,
        scope: &'s LocalScope<'a>,
        sends: Vec<&'a mut [f32]>,
        sums: Vec<Option<&'a mut [f32]>>,
        requests: Vec<Option<Request<'a, [f32], &'s LocalScope<'a>>>>,
    }

    impl Pending for Live<'_, '_> {
        fn bucket(&mut self, bucket: usize) -> &mut [f32] {
            self.sends.get_mut(bucket).map_or(&mut [], |b| &mut **b)
        }
        fn start(&mut self, bucket: usize) {
            while self.requests.len() <= bucket {
                let i = self.requests.len();
                let Some(sum) = self.sums.get_mut(i).and_then(Option::take) else {
                    break;
                };
                // The bucket, filled, is read by MPI until the request completes.
                let send: &[f32] = self
                    .sends
                    .get_mut(i)
                    .map(std::mem::take)
                    .unwrap_or_default();
                self.requests
                    .push(Some(self.world.immediate_all_reduce_into(
                        self.scope,
                        send,
                        sum,
                        SystemOperation::sum(),
                    )));
            }
        }
        fn sum(&mut self, values: &mut [f32]) {
            all_reduce(self.world, self.scratch, values);
        }
        fn progress(&mut self) {
            // Testing the oldest request under way moves every one on.
            if let Some(slot) = self.requests.iter_mut().find(|r| r.is_some()) {
                if let Some(request) = slot.take() {
                    *slot = request.test().err();
                }
            }
        }
    }

    /// Replaces `values` with their sums over `world`, received into `scratch`: grown, never
    /// cleared (the all-reduce overwrites what it receives into, and zeroing a 25 MB scratch
    /// every step cost a pass over it).
    fn all_reduce(world: &SimpleCommunicator, scratch: &mut Vec<f32>, values: &mut [f32]) {
        if scratch.len() < values.len() {
            scratch.resize(values.len(), 0.0);
        }
        let received = &mut scratch[..values.len()];
        world.all_reduce_into(&values[..], &mut received[..], SystemOperation::sum());
        values.copy_from_slice(received);
    }

    impl super::Collective for Mpi {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn sum(&mut self, values: &mut [f32]) {
            all_reduce(&SimpleCommunicator::world(), &mut self.scratch, values);
        }
        fn sum_f64(&mut self, values: &mut [f64]) {
            self.scratch_f64.clear();
            self.scratch_f64.resize(values.len(), 0.0);
            SimpleCommunicator::world().all_reduce_into(
                &values[..],
                &mut self.scratch_f64[..],
                SystemOperation::sum(),
            );
            values.copy_from_slice(&self.scratch_f64);
        }
        fn sum_during(&mut self, lengths: &[usize], body: &mut dyn FnMut(&mut dyn Pending)) {
            self.sends.resize(lengths);
            self.sums.resize(lengths);
            let world = SimpleCommunicator::world();
            let (sends, sums) = (&mut self.sends, &mut self.sums);
            mpi::request::scope(|scope| {
                let mut live = Live {
                    world: &world,
                    scratch: &mut self.scratch,
                    scope,
                    sends: sends.slices().collect(),
                    sums: sums.slices().map(Some).collect(),
                    requests: Vec::with_capacity(lengths.len()),
                };
                body(&mut live);
                live.start(usize::MAX);
                for request in live.requests.drain(..).flatten() {
                    request.wait_without_status();
                }
            });
        }
        fn summed(&self, bucket: usize) -> &[f32] {
            self.sums.get(bucket)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_are_contiguous_in_order_and_differ_by_at_most_one() {
        assert_eq!(share(10, 0, 3), 0..4);
        assert_eq!(share(10, 1, 3), 4..7);
        assert_eq!(share(10, 2, 3), 7..10);
        assert_eq!(share(2, 2, 3), 2..2);
        for samples in 0..20 {
            for size in 1..6 {
                let mut next = 0;
                for rank in 0..size {
                    let s = share(samples, rank, size);
                    assert_eq!(s.start, next);
                    assert!(s.len() == samples / size || s.len() == samples / size + 1);
                    next = s.end;
                }
                assert_eq!(next, samples);
            }
        }
    }
}
