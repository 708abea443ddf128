//! What summing a training step's gradients over MPI ranks costs on this machine, as one flat
//! all-reduce and in buckets of several sizes (issue 16, "buckets sized by measurement"):
//!
//! ```text
//! cargo build --release -p graphc-benches --features mpi --example allreduce
//! mpirun -n 2 --bind-to none target/release/examples/allreduce specs/bench/mlp_l.yaml specs/bench/convnet.yaml
//! ```
//!
//! For each spec, the gradients of its trained parameters (what the data-parallel step sums,
//! plus the loss) are summed through the trainer's own `Collective` `REPS` times per bucket
//! size; rank 0 prints the median and the fastest time of a whole sum in milliseconds.

use std::path::Path;
use std::time::Instant;

use graphc::stages::train::collective::World;
use graphc::stages::train::{load_data, prepare};
use graphc::BackendKind;
use graphc_benches::Result;

const REPS: usize = 15;

fn main() -> Result<()> {
    let world = World::start()?;
    let mut collective = world.collective();
    let rank0 = world.rank() == 0;
    if rank0 {
        println!(
            "{} ranks; milliseconds a sum, median (fastest) of {REPS}",
            world.size()
        );
        println!("| workload | floats | bucket (floats) | calls | ms a sum |");
        println!("|---|---:|---:|---:|---:|");
    }
    for path in std::env::args().skip(1) {
        let path = Path::new(&path);
        let spec = graphc::parse_spec(path)?;
        let data = load_data(&spec, path.parent().unwrap_or(Path::new(".")))?;
        let trainer = prepare(&spec, Path::new("."), &data, BackendKind::Jit.backend())?;
        let floats = 1 + trainer
            .param_info()
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.shape.iter().product::<usize>())
            .sum::<usize>();
        let mut values = vec![1.0f32; floats];
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let smaller = [4 << 20, 1 << 20, 256 << 10, 64 << 10, 16 << 10];
        for bucket in std::iter::once(floats).chain(smaller.into_iter().filter(|&b| b < floats)) {
            let mut times = Vec::with_capacity(REPS);
            for _ in 0..=REPS {
                // A small sum first lines the ranks up, so a time is the sum's, not a wait.
                collective.sum(&mut [0.0]);
                let start = Instant::now();
                for chunk in values.chunks_mut(bucket) {
                    collective.sum(chunk);
                }
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            times.remove(0);
            times.sort_by(f64::total_cmp);
            if rank0 {
                println!(
                    "| {name} | {floats} | {bucket} | {} | {:.2} ({:.2}) |",
                    floats.div_ceil(bucket),
                    times[REPS / 2],
                    times[0]
                );
            }
        }
    }
    Ok(())
}
