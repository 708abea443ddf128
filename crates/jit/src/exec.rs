//! The compiled step: owns the generated code, the arena and the plan's
//! steps, checks arguments, and runs the steps in order. A step is one
//! [`Step`] of the plan, run as it is: a `match` on it is the only dispatch.

use cranelift_entity::PrimaryMap;
use cranelift_jit::JITModule;
use graphc_ir::{Arg, DType, Executable, IrError, Ranks};

use crate::arena::Arena;
use crate::codegen::KernelFn;
use crate::conv::ConvStep;
use crate::plan::{ConvId, KernelId, PoolId, Step};
use crate::pool::PoolStep;
use crate::team;

/// Where one argument goes.
#[derive(Debug, Clone)]
pub(crate) struct ArgSlot {
    /// Leaf name, for messages.
    pub name: String,
    /// Expected element type.
    pub dtype: DType,
    /// Expected element count.
    pub len: usize,
    /// Offset in the arena (f32) or the index buffer (i64).
    pub offset: usize,
}

/// Owns a module's code memory and frees it on drop.
pub(crate) struct Code(Option<JITModule>);

impl Code {
    /// Takes ownership of `module`'s code.
    pub(crate) fn new(module: JITModule) -> Code {
        Code(Some(module))
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(module) = self.0.take() {
            // SAFETY: `Code` lives in the executable next to the only copies of
            // the function pointers; both go away together, so no generated
            // function runs or is called after this.
            unsafe { module.free_memory() };
        }
    }
}

/// Arena base pointer shared by the pieces of a split kernel.
#[derive(Clone, Copy)]
struct Shared(*mut f32, *const i64);

// SAFETY: a split kernel's pieces write disjoint elements (row pieces of a
// kernel without reductions, column pieces of one whose stores and reductions
// move along columns: invariant 7 of `Plan::validate`) and otherwise only read,
// so sharing the base pointers between threads is race-free.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// A graph compiled by the JIT, with its persistent buffers.
pub struct JitExecutable {
    pub(crate) _code: Code,
    pub(crate) arena: Arena,
    /// Scratch for GEMM operand copies (outside the arena; in huge pages like it).
    pub(crate) scratch: Arena,
    pub(crate) ints: Vec<i64>,
    pub(crate) args: Vec<ArgSlot>,
    /// Entry points of the generated kernels the steps call.
    pub(crate) kernels: PrimaryMap<KernelId, KernelFn>,
    /// The convolution steps' descriptions.
    pub(crate) convs: PrimaryMap<ConvId, ConvStep>,
    /// The max-pooling steps' descriptions.
    pub(crate) pools: PrimaryMap<PoolId, PoolStep>,
    /// The plan's steps (validated in debug builds by `Plan::validate`).
    pub(crate) steps: Vec<Step>,
    /// (src, dst, len) copies after the step (non-overlapping).
    pub(crate) end: Vec<(usize, usize, usize)>,
    /// When and where each assign's value is complete (`Ranks::assigned`), in that order.
    pub(crate) assigned: Vec<crate::plan::Assigned>,
    pub(crate) outputs: Vec<(usize, usize)>,
    pub(crate) persistent: Vec<(String, usize, usize)>,
    pub(crate) stats: crate::Stats,
    /// Whether the steps' parallel pieces use the team, chosen by timing both
    /// (`None`: one thread, or `GRAPHC_THREADS` decides).
    pub(crate) chooser: Option<crate::team::Chooser>,
}

impl JitExecutable {
    /// What the compiler produced for this graph.
    pub fn stats(&self) -> crate::Stats {
        self.stats
    }

    /// Checks every argument against the graph's before anything runs.
    fn check(&self, args: &[Arg<'_>]) -> Result<(), IrError> {
        if args.len() != self.args.len() {
            return Err(IrError::Argument(format!(
                "the graph takes {} arguments, got {}",
                self.args.len(),
                args.len()
            )));
        }
        for (slot, arg) in self.args.iter().zip(args) {
            let (dtype, len) = match arg {
                Arg::F32(d) => (DType::F32, d.len()),
                Arg::I64(d) => (DType::I64, d.len()),
            };
            if dtype != slot.dtype || len != slot.len {
                return Err(IrError::Argument(format!(
                    "{:?} takes {} {} values, got {len} {dtype} values",
                    slot.name, slot.len, slot.dtype
                )));
            }
        }
        Ok(())
    }

    /// Runs plan step `step_index`, with `ranks` summing its `Step::SumRanks`.
    fn execute(&mut self, step_index: usize, ranks: &mut dyn Ranks) {
        match self.steps[step_index] {
            Step::Kernel {
                kernel, hi, chunks, ..
            } => {
                let f = self.kernels[kernel];
                let shared = Shared(self.arena.as_mut_ptr(), self.ints.as_ptr());
                if chunks <= 1 {
                    // SAFETY: the kernel was generated from the plan for this arena
                    // (at least `arena_len` floats, asserted at construction) and
                    // index buffer (`ints_len` entries); `Plan::validate` proves
                    // every access of the kernel over `0..hi` lies inside them.
                    unsafe { f(shared.0, shared.1, 0, hi as i64) };
                } else {
                    team::run(chunks, &|c| {
                        let s = shared;
                        let (lo, hi) = team::piece(hi, chunks, c);
                        // SAFETY: as above (`piece` stays inside `0..hi`); pieces
                        // cover disjoint row ranges of a kernel without reductions,
                        // or disjoint column ranges of one whose reductions run down
                        // columns (`Plan::validate` checks both), or disjoint element
                        // blocks of a random kernel, so no two pieces write the same
                        // element.
                        unsafe { f(s.0, s.1, lo as i64, hi as i64) };
                    });
                }
            }
            Step::Gemm(call) => {
                let base = self.arena.as_mut_ptr();
                // SAFETY: `Plan::validate` proves both operands' and the result's
                // extents (from these offsets and strides) lie inside the arena,
                // which covers `arena_len` floats, and that the result overlaps
                // neither operand; the scratch buffer was sized for the largest
                // copy of any step and is not in the arena.
                unsafe { call.run(base, self.scratch.as_mut_slice()) };
            }
            Step::Conv(id) => {
                let base = self.arena.as_mut_ptr();
                // SAFETY: `Plan::validate` proves the step consistent with its
                // shapes, its three buffers and its scratch region inside the
                // arena (which covers `arena_len` floats), and the buffer it
                // writes overlapping neither the others nor the scratch, and the
                // scratch overlapping none of them.
                unsafe { self.convs[id].run(base) };
            }
            Step::Pool(id) => {
                let base = self.arena.as_mut_ptr();
                // SAFETY: `Plan::validate` proves the step consistent with its
                // shapes (every window inside its plane), its buffers inside the
                // arena and its result overlapping neither operand.
                unsafe { self.pools[id].run(base) };
            }
            Step::Fill { offset, len, value } => {
                self.arena.as_mut_slice()[offset..offset + len].fill(value);
            }
            Step::SumRanks { from, to, len } => {
                let arena = self.arena.as_mut_slice();
                arena.copy_within(from..from + len, to);
                ranks.sum(&mut arena[to..to + len]);
            }
        }
    }
}

impl JitExecutable {
    /// Runs the step `reps` times and returns, per plan step, a label and the
    /// mean seconds it took (for benchmarks and tuning).
    pub fn profile(
        &mut self,
        args: &[Arg<'_>],
        reps: usize,
    ) -> Result<Vec<(String, f64)>, IrError> {
        self.run(args)?;
        let mut times = vec![0.0f64; self.steps.len()];
        for _ in 0..reps {
            for (i, t) in times.iter_mut().enumerate() {
                let start = std::time::Instant::now();
                self.execute(i, &mut |_: &mut [f32]| {});
                *t += start.elapsed().as_secs_f64();
            }
        }
        Ok(self
            .steps
            .iter()
            .zip(times)
            .map(|(s, t)| (s.to_string(), t / reps.max(1) as f64))
            .collect())
    }
}

/// Where a step's time goes, as medians of back-to-back runs (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTimes {
    /// The whole step, as `run` does it (arguments copied in, every plan
    /// step, end-of-step copies).
    pub step: f64,
    /// The step's GEMM calls alone, back to back, with the same threading
    /// and operand copies.
    pub gemms: f64,
    /// The step's generated kernels and fills alone, back to back.
    pub kernels: f64,
}

impl JitExecutable {
    /// Times whole steps, their GEMMs alone and their kernels alone,
    /// alternating `reps` times after one warm-up step (for benchmarks: the
    /// rest of a step, `step - gemms - kernels`, is argument and end-of-step
    /// copying and dispatch).
    pub fn time_parts(&mut self, args: &[Arg<'_>], reps: usize) -> Result<StepTimes, IrError> {
        let start = std::time::Instant::now();
        self.run(args)?;
        // Time enough steps per sample that the clock's resolution does not matter.
        let inner = (20e-6 / start.elapsed().as_secs_f64().max(1e-9)).ceil() as usize;
        let inner = inner.clamp(1, 10_000);
        let (gemms, kernels): (Vec<usize>, Vec<usize>) = (0..self.steps.len())
            .partition(|&i| matches!(self.steps[i], Step::Gemm(_) | Step::Conv(_)));
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..reps.max(1) {
            let start = std::time::Instant::now();
            for _ in 0..inner {
                self.run(args)?;
            }
            times[0].push(start.elapsed().as_secs_f64() / inner as f64);
            for (part, steps) in [(1, &gemms), (2, &kernels)] {
                let start = std::time::Instant::now();
                for _ in 0..inner {
                    for &i in steps {
                        self.execute(i, &mut |_: &mut [f32]| {});
                    }
                }
                times[part].push(start.elapsed().as_secs_f64() / inner as f64);
            }
        }
        let [step, gemms, kernels] = times.map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        });
        Ok(StepTimes {
            step,
            gemms,
            kernels,
        })
    }
}

impl Executable for JitExecutable {
    fn run_summing(&mut self, args: &[Arg<'_>], ranks: &mut dyn Ranks) -> Result<(), IrError> {
        self.check(args)?;
        for (slot, arg) in self.args.iter().zip(args) {
            match arg {
                Arg::F32(d) => {
                    self.arena.as_mut_slice()[slot.offset..slot.offset + d.len()].copy_from_slice(d)
                }
                Arg::I64(d) => self.ints[slot.offset..slot.offset + d.len()].copy_from_slice(d),
            }
        }
        let serial = self.chooser.as_mut().is_some_and(|c| c.next());
        let started = std::time::Instant::now();
        // Each assign is reported once its value is complete: `assigned` is in that order,
        // `next` the first not yet reported.
        let mut next = 0;
        let report =
            |this: &Self, ranks: &mut dyn Ranks, after: Option<usize>, next: &mut usize| {
                while let Some(a) = this.assigned.get(*next).filter(|a| a.after == after) {
                    ranks.assigned(a.slot, &this.arena.as_slice()[a.offset..a.offset + a.len]);
                    *next += 1;
                }
            };
        crate::team::with_serial(serial, || {
            report(self, ranks, Some(0), &mut next);
            for i in 0..self.steps.len() {
                self.execute(i, ranks);
                report(self, ranks, Some(i + 1), &mut next);
                ranks.progress();
            }
        });
        if let Some(chooser) = &mut self.chooser {
            chooser.record(started.elapsed().as_secs_f64());
        }
        let arena = self.arena.as_mut_slice();
        for &(src, dst, len) in &self.end {
            arena.copy_within(src..src + len, dst);
        }
        report(self, ranks, None, &mut next);
        Ok(())
    }

    fn sum_ranks_lengths(&self) -> Vec<usize> {
        (self.steps.iter())
            .filter_map(|step| match *step {
                Step::SumRanks { len, .. } => Some(len),
                Step::Kernel { .. }
                | Step::Gemm(_)
                | Step::Conv(_)
                | Step::Pool(_)
                | Step::Fill { .. } => None,
            })
            .collect()
    }

    fn output(&self, index: usize) -> &[f32] {
        let (offset, len) = self.outputs[index];
        &self.arena.as_slice()[offset..offset + len]
    }

    fn slot(&self, slot: usize) -> &[f32] {
        let (_, offset, len) = self.persistent[slot];
        &self.arena.as_slice()[offset..offset + len]
    }

    fn slot_mut(&mut self, slot: usize) -> &mut [f32] {
        let (_, offset, len) = self.persistent[slot];
        &mut self.arena.as_mut_slice()[offset..offset + len]
    }

    fn write_slot(&mut self, slot: usize, data: &[f32]) -> Result<(), IrError> {
        let (ref name, offset, len) = self.persistent[slot];
        if data.len() != len {
            return Err(IrError::Argument(format!(
                "{name} holds {len} values, got {}",
                data.len()
            )));
        }
        self.arena.as_mut_slice()[offset..offset + len].copy_from_slice(data);
        Ok(())
    }

    fn read(&self, name: &str) -> Option<&[f32]> {
        let (_, offset, len) = self.persistent.iter().find(|(n, _, _)| n == name)?;
        Some(&self.arena.as_slice()[*offset..*offset + *len])
    }

    fn write(&mut self, name: &str, data: &[f32]) -> Result<(), IrError> {
        let Some(&(_, offset, len)) = self.persistent.iter().find(|(n, _, _)| n == name) else {
            return Err(IrError::Argument(format!(
                "no parameter or state named {name:?}"
            )));
        };
        if data.len() != len {
            return Err(IrError::Argument(format!(
                "{name} holds {len} values, got {}",
                data.len()
            )));
        }
        self.arena.as_mut_slice()[offset..offset + len].copy_from_slice(data);
        Ok(())
    }
}
