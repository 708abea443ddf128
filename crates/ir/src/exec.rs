//! The interface between a compiled step and whoever runs it: the interpreter
//! and the JIT implement it alike, so tests run both on one graph and compare.

use crate::{Graph, IrError};

/// One argument of a run, in `Graph::arguments()` order; a `Hyper` is a one-element `F32`.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// f32 data, row-major.
    F32(&'a [f32]),
    /// i64 data (class indices), row-major.
    I64(&'a [i64]),
}

/// Something that turns a verified graph into an [`Executable`].
pub trait Backend {
    /// Short name for messages and benchmarks (`interp`, `jit`).
    fn name(&self) -> &'static str;
    /// Prepares `graph` for repeated execution. Persistent buffers start at zero.
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, IrError>;
}

/// What a run of a data-parallel step asks of the processes it trains with, and tells them
/// while it runs (so the gradient sums of late layers can travel while the backward of early
/// ones computes). A closure `FnMut(&mut [f32])` is the sum alone.
pub trait Ranks {
    /// Replaces `values` (an [`Op::SumRanks`](crate::Op::SumRanks)'s operand) with their
    /// elementwise sums over the ranks.
    fn sum(&mut self, values: &mut [f32]);
    /// Persistent buffer `slot` (as in [`Executable::slot`]) has its new value of this run,
    /// `values`: called once per assign and run, as soon as the value is computed (before the
    /// run ends, and before the buffer itself holds it). Nothing by default.
    fn assigned(&mut self, slot: usize, values: &[f32]) {
        let _ = (slot, values);
    }
    /// Called between the steps of a run: time for communication under way to move on.
    /// Nothing by default.
    fn progress(&mut self) {}
}

impl<F: FnMut(&mut [f32])> Ranks for F {
    fn sum(&mut self, values: &mut [f32]) {
        self(values)
    }
}

/// A compiled graph with its own copy of the persistent buffers (parameters and state), which
/// a driver binds to its store through the slot methods: slot `i` is the buffer of
/// `Graph::persistent()[i]`, so names are resolved once, when the executable is bound.
pub trait Executable: Send {
    /// Runs the graph once: computes outputs, then applies every assign. Alone: each
    /// [`Op::SumRanks`](crate::Op::SumRanks) is its operand.
    fn run(&mut self, args: &[Arg<'_>]) -> Result<(), IrError> {
        self.run_summing(args, &mut |_: &mut [f32]| {})
    }
    /// [`Executable::run`] in a data-parallel run: each [`Op::SumRanks`](crate::Op::SumRanks)
    /// hands its operand's values to [`Ranks::sum`], in the order
    /// [`Executable::sum_ranks_lengths`] lists; each assigned buffer's new value goes to
    /// [`Ranks::assigned`] as soon as it is computed, and [`Ranks::progress`] is called between
    /// the run's steps.
    fn run_summing(&mut self, args: &[Arg<'_>], ranks: &mut dyn Ranks) -> Result<(), IrError>;
    /// The lengths of the sums a run asks [`Ranks::sum`] for, in the order it asks (what a
    /// rank without samples must still take part in).
    fn sum_ranks_lengths(&self) -> Vec<usize>;
    /// The value of output `index` from the last run (row-major f32).
    fn output(&self, index: usize) -> &[f32];
    /// The current value of persistent buffer `slot` (an index into `Graph::persistent()`).
    fn slot(&self, slot: usize) -> &[f32];
    /// Overwrites persistent buffer `slot`; data of another length is an error.
    fn write_slot(&mut self, slot: usize, data: &[f32]) -> Result<(), IrError>;
    /// Persistent buffer `slot`, to change in place.
    fn slot_mut(&mut self, slot: usize) -> &mut [f32];
    /// The current value of the persistent buffer named `name`.
    fn read(&self, name: &str) -> Option<&[f32]>;
    /// Overwrites the persistent buffer named `name`.
    fn write(&mut self, name: &str, data: &[f32]) -> Result<(), IrError>;
}
