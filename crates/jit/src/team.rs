//! A fork-join team for splitting one kernel or GEMM across cores at
//! microsecond cost. Helper threads spin on a shared word for a while after
//! each job (then park), so a step's back-to-back parallel pieces never pay a
//! thread wake-up: the rayon pool parks its workers between jobs, and waking
//! one cost ~20 µs per `join` on the 2-vCPU machines this was tuned on, more
//! than a whole mlp_s kernel.
//!
//! Pieces are claimed, not assigned: the poster runs pieces too and takes
//! every piece no helper has claimed yet, so a helper that is descheduled (a
//! busy machine) delays nobody unless it is in the middle of a piece.
//!
//! One process-wide team; a job posted while another thread holds the team
//! runs all of its pieces on the caller instead (same result, no waiting).

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper waits for the next job, spinning then yielding, before parking.
const LINGER: Duration = Duration::from_millis(2);
/// Spins between checks of the clock (and yields) while waiting.
const SPINS: u32 = 256;
/// A poster that waits for a helper's piece longer than this plus twice the
/// time its own pieces took (a helper descheduled mid-piece: the machine is
/// busy; pieces of one job normally end within 2× of each other)…
const STALL: Duration = Duration::from_micros(50);
/// …runs every job on its own thread for a while before trying again: 2 ms
/// after a lone stall, doubling with each stall that follows within
/// [`STALL_MEMORY`] of the previous one, up to 100 ms. A machine under steady
/// load so costs a stall now and then rather than one per job, and a lone
/// preemption (another process taking a vCPU for one time slice, a few times
/// a second on these VMs) does not cost 100 ms of one-thread steps: with a
/// fixed 100 ms, mlp_m's mean step was 588-605 µs against a 515-525 µs
/// median (a quarter of its steps ran on one thread); with 3-10 ms, 522-539.
const BACKOFF_MIN: Duration = Duration::from_millis(2);
/// See [`BACKOFF_MIN`].
const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// See [`BACKOFF_MIN`].
const STALL_MEMORY: Duration = Duration::from_millis(500);

/// A job: called once per piece with the piece index.
type Job<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// `epoch << 32 | pieces << 16 | bit set of pieces claimed`; a new epoch posts a job.
    state: AtomicU64,
    /// Pieces of the current job finished.
    completed: AtomicUsize,
    /// Helpers parked (or about to park).
    sleepers: AtomicUsize,
    /// A piece panicked.
    panicked: AtomicBool,
    /// Until when (ns after `origin`) jobs run serially after a stall.
    serial_until: AtomicU64,
    /// How long the last stall made jobs run serially (ns).
    backoff: AtomicU64,
    /// When the last stall was (ns after `origin`).
    last_stall: AtomicU64,
    /// Time origin of `serial_until`.
    origin: Instant,
    /// The current job, valid while a piece of its epoch is claimed and not completed.
    job: UnsafeCell<Option<Job<'static>>>,
}

// SAFETY: `job` is written only by the thread holding the team's lock, before
// the store (SeqCst) of the epoch that publishes it, and after every piece of
// the previous epoch completed. A helper reads it only after claiming a piece
// of the current epoch by compare-and-swap, and the poster does not return
// (nor write `job` again) until that piece has completed.
unsafe impl Sync for Shared {}

/// The helper threads; the caller of [`run`] works too.
struct Team {
    shared: &'static Shared,
    helpers: Vec<Thread>,
}

fn team() -> &'static Mutex<Team> {
    static TEAM: OnceLock<Mutex<Team>> = OnceLock::new();
    TEAM.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            state: AtomicU64::new(0),
            completed: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            serial_until: AtomicU64::new(0),
            backoff: AtomicU64::new(0),
            last_stall: AtomicU64::new(0),
            origin: Instant::now(),
            job: UnsafeCell::new(None),
        }));
        let helpers = (1..threads())
            .filter_map(|i| {
                std::thread::Builder::new()
                    .name(format!("graphc-jit-{i}"))
                    .spawn(move || helper(shared, i))
                    .ok()
                    .map(|h| h.thread().clone())
            })
            .collect();
        Mutex::new(Team { shared, helpers })
    })
}

/// The `i`-th of `pieces` ranges covering `0..len`, cut at multiples of 16
/// (the GEMM microkernels' widths). GEMMs and kernels cut the same way, so a
/// kernel that reads a split product's result mostly reads the block that
/// the same thread wrote (the first piece goes to the poster, which claims
/// first): moving a block between the cores cost more than the kernel on the
/// 2-vCPU machines this was tuned on.
pub(crate) fn piece(len: usize, pieces: usize, i: usize) -> (usize, usize) {
    const ALIGN: usize = 16;
    let per = len.div_ceil(pieces.max(1)).div_ceil(ALIGN) * ALIGN;
    ((i * per).min(len), ((i + 1) * per).min(len))
}

/// Threads a step may use: `GRAPHC_THREADS` if set (at least 1), else the
/// available parallelism.
pub(crate) fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("GRAPHC_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, 16)
    })
}

thread_local! {
    /// Whether jobs posted from this thread run all their pieces on it (see [`with_serial`]).
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every job this thread posts run on this thread alone when `serial`: the
/// same pieces in the same order, so the same numbers.
pub(crate) fn with_serial<R>(serial: bool, f: impl FnOnce() -> R) -> R {
    let before = SERIAL.replace(serial);
    let result = f();
    SERIAL.set(before);
    result
}

/// Whether a step chooses between its threads and one by measuring ([`Chooser`]): with two
/// or more threads, unless `GRAPHC_THREADS` fixes the number.
pub(crate) fn adaptive() -> bool {
    threads() >= 2 && std::env::var_os("GRAPHC_THREADS").is_none()
}

/// Runs a [`Chooser`] does not time at first: a process's first parallel steps ran 2-3×
/// slower than its later ones (the helper's first touch of its pages and caches).
const WARMUP: u64 = 3;
/// Runs of each kind a [`Chooser`] times before it chooses.
const PROBE: usize = 5;
/// How long a [`Chooser`]'s choice stands before it measures again.
const REPROBE: Duration = Duration::from_secs(2);

/// Chooses, for one executable's steps, whether their parallel pieces use the team or run
/// on the calling thread alone, by timing both. On the 2-vCPU VMs this was written on the
/// two vCPUs are sometimes far apart (benches/README.md, "Threads on these VMs"): convnet's
/// step then ran 22 steps/s on two threads and 28 on one, and 40 on two when they were
/// close, minutes apart in one process. After [`WARMUP`] untimed runs, it times [`PROBE`]
/// parallel runs, then as many serial ones (in blocks: a serial run right after a parallel
/// one shares its core with the helper still spinning for the next job), keeps the kind
/// with the lower median, and measures again after [`REPROBE`], twice as long after each
/// probe that confirms the choice (up to 32×), since the two states last minutes. Which
/// thread runs a piece never changes its result.
#[derive(Debug)]
pub(crate) struct Chooser {
    /// Runs made since the chooser was made (the first [`WARMUP`] are not timed).
    runs: u64,
    /// Probe runs timed so far, parallel and serial.
    times: [Vec<f64>; 2],
    /// The kind chosen, and when; `None` while probing.
    chosen: Option<(bool, Instant)>,
    /// The kind of the run in progress.
    current: bool,
    /// How long a choice stands: [`REPROBE`] times 1, 2, 4, … 32.
    reprobe: Duration,
    /// The shortest `reprobe`.
    base: Duration,
    /// The choice before the probe in progress.
    previous: Option<bool>,
}

impl Chooser {
    pub(crate) fn new() -> Chooser {
        Chooser::with_reprobe(REPROBE)
    }

    fn with_reprobe(reprobe: Duration) -> Chooser {
        Chooser {
            runs: 0,
            times: [Vec::new(), Vec::new()],
            chosen: None,
            current: false,
            reprobe,
            base: reprobe,
            previous: None,
        }
    }

    /// Whether the next run goes serial.
    pub(crate) fn next(&mut self) -> bool {
        if let Some((serial, since)) = self.chosen {
            if since.elapsed() < self.reprobe {
                self.current = serial;
                return serial;
            }
            self.times = [Vec::new(), Vec::new()];
            self.previous = Some(serial);
            self.chosen = None;
        }
        // Parallel runs first, then serial ones.
        self.current = self.times[0].len() >= PROBE;
        self.current
    }

    /// Records how long the run [`Chooser::next`] chose took.
    pub(crate) fn record(&mut self, seconds: f64) {
        self.runs += 1;
        if self.runs <= WARMUP || self.chosen.is_some() {
            return;
        }
        self.times[usize::from(self.current)].push(seconds);
        if self.times[1].len() == PROBE {
            let [parallel, serial] = self.times.each_mut().map(|t| {
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            });
            let choice = serial < parallel;
            self.reprobe = match self.previous {
                Some(previous) if previous == choice => (self.reprobe * 2).min(self.base * 32),
                Some(_) | None => self.base,
            };
            self.chosen = Some((choice, Instant::now()));
        }
    }

    /// The kind chosen, if any (for tests).
    #[cfg(test)]
    fn chosen(&self) -> Option<bool> {
        self.chosen.map(|(serial, _)| serial)
    }
}

/// Claims a piece of epoch `epoch` for thread `me` (0 = the poster): its own
/// piece `me` if still free, else the next free one after it, if that epoch
/// is current and has one left.
fn claim(shared: &Shared, epoch: u64, me: usize) -> Option<usize> {
    let mut state = shared.state.load(Ordering::SeqCst);
    loop {
        let taken = state & 0xffff;
        let pieces = ((state >> 16) & 0xffff) as usize;
        if state >> 32 != epoch {
            return None;
        }
        let i = (0..pieces)
            .map(|d| (me + d) % pieces)
            .find(|&i| taken & (1 << i) == 0)?;
        match shared.state.compare_exchange_weak(
            state,
            state | 1 << i,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => return Some(i),
            Err(now) => state = now,
        }
    }
}

/// Runs piece `i` of the current job and counts it as completed.
fn work(shared: &Shared, i: usize) {
    // SAFETY: piece `i` of the current epoch is claimed and not completed, so
    // the poster keeps the job it wrote before publishing the epoch alive.
    let job = unsafe { *shared.job.get() };
    if let Some(job) = job {
        if catch_unwind(AssertUnwindSafe(|| job(i))).is_err() {
            shared.panicked.store(true, Ordering::SeqCst);
        }
    }
    shared.completed.fetch_add(1, Ordering::SeqCst);
}

fn helper(shared: &'static Shared, me: usize) {
    let mut seen = 0u64;
    loop {
        let since = Instant::now();
        let mut spins = 0u32;
        let epoch = loop {
            let e = shared.state.load(Ordering::SeqCst) >> 32;
            if e != seen {
                break e;
            }
            spins += 1;
            if spins.is_multiple_of(SPINS) {
                if since.elapsed() > LINGER {
                    shared.sleepers.fetch_add(1, Ordering::SeqCst);
                    if shared.state.load(Ordering::SeqCst) >> 32 == seen {
                        std::thread::park();
                    }
                    shared.sleepers.fetch_sub(1, Ordering::SeqCst);
                } else if spins > 16 * SPINS {
                    std::thread::yield_now();
                }
            }
            std::hint::spin_loop();
        };
        seen = epoch;
        while let Some(i) = claim(shared, epoch, me) {
            work(shared, i);
        }
    }
}

/// Runs `job(0)`, …, `job(pieces - 1)`, spread over the caller and the team,
/// and returns when all are done. When the team is busy, or `pieces` is not
/// in `2..=16`, every piece runs on the caller.
pub(crate) fn run(pieces: usize, job: &(dyn Fn(usize) + Sync)) {
    let serial = |job: &(dyn Fn(usize) + Sync)| (0..pieces).for_each(job);
    if SERIAL.get() {
        return serial(job);
    }
    let team = match team().try_lock() {
        Ok(t) if pieces > 1 && !t.helpers.is_empty() && pieces <= 16 => t,
        _ => return serial(job),
    };
    let shared = team.shared;
    let now = shared.origin.elapsed().as_nanos() as u64;
    if now < shared.serial_until.load(Ordering::Relaxed) {
        return serial(job);
    }
    // SAFETY: the lifetime is extended only until every piece of this epoch
    // has completed, which this function waits for before returning.
    let job: Job<'static> = unsafe { std::mem::transmute::<Job<'_>, Job<'static>>(job) };
    // SAFETY: every piece of the previous epoch completed, so no helper reads
    // `job` until the new epoch is published below.
    unsafe { *shared.job.get() = Some(job) };
    shared.completed.store(0, Ordering::SeqCst);
    let epoch = ((shared.state.load(Ordering::SeqCst) >> 32) + 1) & 0xffff_ffff;
    shared
        .state
        .store(epoch << 32 | (pieces as u64) << 16, Ordering::SeqCst);
    // Waking a parked helper takes tens of µs: that is no sign of a busy machine.
    let woke = shared.sleepers.load(Ordering::SeqCst) > 0;
    if woke {
        for t in &team.helpers {
            t.unpark();
        }
    }
    let started = Instant::now();
    while let Some(i) = claim(shared, epoch, 0) {
        work(shared, i);
    }
    let stall = STALL + 2 * started.elapsed();
    let mut spins = 0u32;
    let mut waiting: Option<Instant> = None;
    let mut stalled = false;
    while shared.completed.load(Ordering::SeqCst) < pieces {
        spins += 1;
        if spins.is_multiple_of(SPINS) {
            let since = *waiting.get_or_insert_with(Instant::now);
            if !woke && !stalled && since.elapsed() > stall {
                stalled = true;
                back_off(shared);
            }
            std::thread::yield_now();
        }
        std::hint::spin_loop();
    }
    // SAFETY: every piece completed; helpers claim nothing more of this epoch.
    unsafe { *shared.job.get() = None };
    if shared.panicked.swap(false, Ordering::SeqCst) {
        panic!("a parallel piece of a JIT step panicked");
    }
}

/// After a stall: jobs run serially for the backoff (see [`BACKOFF_MIN`]).
/// Only the thread holding the team calls this.
fn back_off(shared: &Shared) {
    let nanos = |d: Duration| d.as_nanos() as u64;
    let now = nanos(shared.origin.elapsed());
    let since_last = now.saturating_sub(shared.last_stall.load(Ordering::Relaxed));
    let backoff = if since_last > nanos(STALL_MEMORY) {
        nanos(BACKOFF_MIN)
    } else {
        let doubled = 2 * shared.backoff.load(Ordering::Relaxed);
        doubled.clamp(nanos(BACKOFF_MIN), nanos(BACKOFF_MAX))
    };
    shared.backoff.store(backoff, Ordering::Relaxed);
    shared.last_stall.store(now, Ordering::Relaxed);
    shared.serial_until.store(now + backoff, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a chooser runs that take `parallel` or `serial` seconds by kind; returns the
    /// kinds it ran, in order.
    fn feed(chooser: &mut Chooser, runs: usize, parallel: f64, serial: f64) -> Vec<bool> {
        (0..runs)
            .map(|_| {
                let kind = chooser.next();
                chooser.record(if kind { serial } else { parallel });
                kind
            })
            .collect()
    }

    #[test]
    fn the_chooser_keeps_the_faster_kind_after_alternating_probes() {
        let mut c = Chooser::with_reprobe(Duration::from_secs(3600));
        // Untimed first runs, then five parallel runs and five serial ones.
        let kinds = feed(&mut c, WARMUP as usize + 2 * PROBE, 2.0, 1.0);
        let expected: Vec<bool> = std::iter::repeat_n(false, WARMUP as usize)
            .chain((0..2 * PROBE).map(|i| i >= PROBE))
            .collect();
        assert_eq!(kinds, expected);
        assert_eq!(c.chosen(), Some(true));
        assert!(feed(&mut c, 20, 2.0, 1.0).iter().all(|&serial| serial));
        let mut c = Chooser::with_reprobe(Duration::from_secs(3600));
        feed(&mut c, WARMUP as usize + 2 * PROBE, 1.0, 2.0);
        assert_eq!(c.chosen(), Some(false));
        assert!(feed(&mut c, 20, 1.0, 2.0).iter().all(|&serial| !serial));
    }

    #[test]
    fn the_chooser_measures_again_when_its_choice_is_old() {
        let mut c = Chooser::with_reprobe(Duration::ZERO);
        feed(&mut c, WARMUP as usize + 2 * PROBE, 1.0, 2.0);
        assert_eq!(c.chosen(), Some(false));
        // The machine changed: serial is now faster, and the next probe finds it.
        feed(&mut c, 2 * PROBE, 3.0, 2.0);
        assert_eq!(c.chosen(), Some(true));
        // A choice confirmed stands twice as long, up to 32 times; a new one starts again.
        let mut c = Chooser::with_reprobe(Duration::from_nanos(1));
        feed(&mut c, WARMUP as usize + 2 * PROBE, 1.0, 2.0);
        assert_eq!(c.reprobe, Duration::from_nanos(1));
        for _ in 0..7 {
            feed(&mut c, 2 * PROBE, 1.0, 2.0);
        }
        assert_eq!(c.reprobe, Duration::from_nanos(32));
        feed(&mut c, 2 * PROBE, 3.0, 2.0);
        assert_eq!(
            (c.chosen(), c.reprobe),
            (Some(true), Duration::from_nanos(1))
        );
    }

    #[test]
    fn a_serial_thread_runs_every_piece_itself() {
        let me = std::thread::current().id();
        let others = AtomicUsize::new(0);
        let seen = Mutex::new(Vec::new());
        with_serial(true, || {
            run(4, &|i| {
                seen.lock().unwrap().push(i);
                if std::thread::current().id() != me {
                    others.fetch_add(1, Ordering::SeqCst);
                }
            })
        });
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(others.load(Ordering::SeqCst), 0);
        assert!(!SERIAL.get(), "the setting ends with the closure");
    }

    #[test]
    fn run_calls_every_piece_exactly_once() {
        for pieces in [1, 2, 3, 7] {
            let hits: Vec<AtomicUsize> = (0..pieces).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                run(pieces, &|i| {
                    hits[i].fetch_add(1, Ordering::SeqCst);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::SeqCst) == 50));
        }
    }

    #[test]
    fn concurrent_posters_all_finish() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        run(2, &|i| {
                            total.fetch_add(i + 1, Ordering::SeqCst);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::SeqCst), 4 * 200 * 3);
    }
}
