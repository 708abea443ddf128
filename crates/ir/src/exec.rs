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

/// A compiled graph with its own copy of the persistent buffers (parameters and state), which
/// a driver binds to its store through the slot methods: slot `i` is the buffer of
/// `Graph::persistent()[i]`, so names are resolved once, when the executable is bound.
pub trait Executable: Send {
    /// Runs the graph once: computes outputs, then applies every assign. Alone: each
    /// [`Op::SumRanks`](crate::Op::SumRanks) is its operand.
    fn run(&mut self, args: &[Arg<'_>]) -> Result<(), IrError> {
        self.run_summing(args, &mut |_| {})
    }
    /// [`Executable::run`] in a data-parallel run: each [`Op::SumRanks`](crate::Op::SumRanks)
    /// hands its operand's values to `sum_ranks`, which replaces them with their sums over
    /// the ranks, in the order [`Executable::sum_ranks_lengths`] lists.
    fn run_summing(
        &mut self,
        args: &[Arg<'_>],
        sum_ranks: &mut dyn FnMut(&mut [f32]),
    ) -> Result<(), IrError>;
    /// The lengths of the sums a run asks `sum_ranks` for, in the order it asks (what a rank
    /// without samples must still take part in).
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
