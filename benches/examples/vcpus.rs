//! Whether this VM's vCPUs compute independently right now:
//! `cargo run --release -p graphc-benches --example vcpus [SECONDS]`.
//!
//! Runs a compute-bound loop (eight independent multiply-add chains, nothing shared,
//! nothing in memory) on one thread, then on every vCPU at once, each for
//! SECONDS (default 1), and prints one JSON line: the rate of one thread alone,
//! the mean rate per thread when all run, their ratio (about 1 when each vCPU
//! has a core of its own, about 1/2 when two share one core's arithmetic units or
//! its time), and the share of time the hypervisor reports as stolen
//! (`/proc/stat`'s steal column) during each phase. benches/README.md ("Threads
//! on these VMs") uses it to tell the VM's states apart.

use std::time::{Duration, Instant};

/// Iterations of the loop per timing check.
const CHUNK: u64 = 1 << 20;

/// Multiply-add-chain iterations per second on this thread for `span` (a multiply and an add,
/// not `mul_add`, which without the `fma` target feature is a library call).
fn spin(span: Duration) -> f64 {
    let mut acc = [1.0f32, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7];
    let (mul, add) = (
        std::hint::black_box(0.999_999f32),
        std::hint::black_box(1e-7f32),
    );
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < span {
        for _ in 0..CHUNK {
            for a in &mut acc {
                *a = *a * mul + add;
            }
        }
        done += CHUNK;
    }
    std::hint::black_box(acc);
    done as f64 / start.elapsed().as_secs_f64()
}

/// (steal, total) jiffies over all CPUs from /proc/stat's first line.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    Some((*fields.get(7)?, fields.iter().sum()))
}

/// Runs `phase` and returns its result with the share of CPU time stolen meanwhile
/// (`null` where /proc/stat is unreadable).
fn with_steal<T>(phase: impl FnOnce() -> T) -> (T, Option<f64>) {
    let before = cpu_jiffies();
    let out = phase();
    let share = match (before, cpu_jiffies()) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => Some((s1 - s0) as f64 / (t1 - t0) as f64),
        _ => None,
    };
    (out, share)
}

fn main() {
    let seconds: f64 = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 1.0,
        Some(Ok(s)) if s > 0.0 && s <= 600.0 => s,
        Some(_) => {
            eprintln!("error: SECONDS must be a number in (0, 600]");
            std::process::exit(2);
        }
    };
    let span = Duration::from_secs_f64(seconds);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (alone, steal_alone) = with_steal(|| spin(span));
    let (together, steal_together) = with_steal(|| {
        let rates: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| spin(span))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0.0))
                .collect()
        });
        rates.iter().sum::<f64>() / threads as f64
    });
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let json = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    println!(
        "{{\"threads\": {threads}, \"alone_per_s\": {alone:.4e}, \"together_per_thread_per_s\": \
         {together:.4e}, \"ratio\": {:.3}, \"steal_alone\": {}, \"steal_together\": {}, \
         \"load\": \"{}\"}}",
        together / alone,
        json(steal_alone),
        json(steal_together),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
