//! Shared helpers of the benchmarks and timing examples: load a workload spec
//! with its first batch, time training steps through the trainer, and build a
//! bare JIT executable of the step (parameters initialized, a few steps
//! trained) for per-kernel profiles. Criterion benches live in benches/benches/.

#![forbid(unsafe_code)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use graphc::stages::ir::{Arg, Executable};
use graphc::stages::jit::{compile_with, JitExecutable, Options};
use graphc::stages::train::{load_data, prepare, BatchTargets, SpecData};
use graphc::stages::{nn, opt};
use graphc::{BackendKind, Spec};

/// Errors of the helpers.
pub type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// A spec with its data and first batch.
pub struct Workload {
    /// File stem (`mlp_m`).
    pub name: String,
    /// The spec file.
    pub path: PathBuf,
    /// The parsed spec.
    pub spec: Spec,
    /// Its data.
    pub data: SpecData,
    /// Rows in the first batch.
    pub batch: usize,
    /// Features of the first batch.
    pub x: Vec<f32>,
    /// Targets of the first batch.
    pub y: BatchTargets,
}

/// Loads `path` and gathers its first batch.
pub fn load(path: &Path) -> Result<Workload> {
    let spec = graphc::parse_spec(path)?;
    let data = load_data(&spec, path.parent().unwrap_or(Path::new(".")))?;
    let batch = spec.data.batch_size.min(data.train.len());
    let rows: Vec<usize> = (0..batch).collect();
    let (mut x, mut y) = (Vec::new(), BatchTargets::Floats(Vec::new()));
    data.train.gather(&rows, &mut x, &mut y)?;
    Ok(Workload {
        name: path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        path: path.to_path_buf(),
        spec,
        data,
        batch,
        x,
        y,
    })
}

/// Training steps per second through the trainer (as `graphc bench` runs
/// them), timed for at least `min_seconds` after one untimed step.
pub fn steps_per_second(w: &Workload, kind: BackendKind, min_seconds: f64) -> Result<f64> {
    let base = w.path.parent().unwrap_or(Path::new("."));
    let mut trainer = prepare(&w.spec, base, &w.data, kind.backend())?;
    trainer.step(&w.x, &w.y)?;
    let (mut steps, start) = (0u64, Instant::now());
    let mut round = 1u64;
    loop {
        for _ in 0..round {
            trainer.step(&w.x, &w.y)?;
        }
        steps += round;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= min_seconds {
            return Ok(steps as f64 / elapsed);
        }
        round = (round * 2).min(1 << 16);
    }
}

/// Seconds to build, optimize and JIT-compile the workload's training step.
pub fn compile_seconds(w: &Workload) -> Result<f64> {
    let start = Instant::now();
    let mut step = nn::build_step(&w.spec, w.batch, w.data.layout)?;
    opt::optimize(&mut step.graph)?;
    drop(compile_with(&step.graph, &Options::default())?);
    Ok(start.elapsed().as_secs_f64())
}

/// The workload's step as a bare JIT executable, with its arguments besides the batch.
pub struct JitStep {
    /// The executable, parameters initialized and `warm` steps trained.
    pub exe: JitExecutable,
    /// The next training forward's index when the step takes it (dropout), else empty.
    pub forward: Vec<i64>,
    /// Hyper values for the next step.
    pub hypers: Vec<f32>,
}

impl JitStep {
    /// Compiles `w`'s step, initializes it as the trainer does and trains
    /// `warm` steps on the first batch (so state such as Adam's moments is realistic).
    pub fn new(w: &Workload, warm: u64) -> Result<JitStep> {
        let mut step = nn::build_step(&w.spec, w.batch, w.data.layout)?;
        opt::optimize(&mut step.graph)?;
        let mut exe = compile_with(&step.graph, &Options::default())?;
        for leaves in [&step.params, &step.buffers] {
            for (p, v) in leaves.iter().zip(nn::default_init(leaves, w.spec.seed)) {
                exe.write(&p.name, &v)?;
            }
        }
        for ((name, shape), &init) in step.state.iter().zip(&step.state_init) {
            exe.write(name, &vec![init; shape.iter().product()])?;
        }
        let groups = nn::initial_groups(&w.spec.optimizer);
        // Update `count` (1-based) is training forward `count - 1`.
        let hypers_at = |count: u64| -> Vec<f32> {
            let counts = vec![count as i64 - 1; step.counters.len()];
            let group = |g: usize| groups.get(g);
            step.hypers
                .iter()
                .map(|&h| nn::hyper_value_by(h, group, count, &counts))
                .collect()
        };
        let forward_at = |count: u64| -> Vec<i64> {
            if step.forward {
                vec![count as i64 - 1]
            } else {
                Vec::new()
            }
        };
        for count in 1..=warm {
            exe.run(&arguments(w, &forward_at(count), &hypers_at(count)))?;
        }
        Ok(JitStep {
            exe,
            forward: forward_at(warm + 1),
            hypers: hypers_at(warm + 1),
        })
    }
}

/// A step's arguments: `w`'s first batch, the forward's index (`forward` empty when the step
/// takes none), then the hypers.
pub fn arguments<'a>(w: &'a Workload, forward: &'a [i64], hypers: &'a [f32]) -> Vec<Arg<'a>> {
    let targets = match &w.y {
        BatchTargets::Classes(v) => Arg::I64(v),
        BatchTargets::Floats(v) => Arg::F32(v),
    };
    let mut args = vec![Arg::F32(&w.x), targets];
    if !forward.is_empty() {
        args.push(Arg::I64(forward));
    }
    args.extend(hypers.iter().map(std::slice::from_ref).map(Arg::F32));
    args
}
