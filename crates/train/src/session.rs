//! The `Session`: the one place where a spec's programs (training step, accumulating step,
//! evaluation) are built, optimized and compiled, and the store of every persistent buffer —
//! parameters, optimizer state, gradient sums — outside the executables, by typed id.
//!
//! An executable keeps its own copy of the buffers it uses (the JIT's arena holds them where
//! its kernels update them in place). Every buffer has a version, bumped when a run assigns it
//! or a caller overwrites it, and one holder of its newest value (the store or an executable);
//! running a program first copies into it, slot by slot and straight from that holder, only
//! the buffers it holds an older version of — names are resolved once, when a program is
//! compiled. So switching between programs copies what changed since, not every buffer.

use std::collections::HashMap;

use graphc_ir::{Arg, Backend, Executable, Graph, IrError, Ranks};
use graphc_nn::{
    build_accumulate_step, build_apply_step, build_eval, build_shard_step, build_step, StepGraph,
    TargetLayout,
};
use graphc_spec::{Reduction, Spec};

use crate::TrainError;

/// A persistent buffer of a [`Session`]'s store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferId(u32);

impl BufferId {
    /// Its position in the store.
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// Which program a compiled step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Forward, backward, (accumulated and clipped gradients), update.
    Update,
    /// Forward, backward, gradients added to the accumulation buffers.
    Accumulate,
    /// One rank's share of a batch in data-parallel training: forward, backward (the loss's
    /// mean over the whole batch's denominator), gradients added to the accumulation buffers.
    Shard,
    /// Data-parallel training's update from the accumulation buffers (summed over ranks):
    /// clipping, the optimizer, the buffers zeroed. Batch size 0: it reads no batch.
    Apply,
    /// Forward and loss only.
    Eval,
    /// Forward and the loss with `reduction: none` (one loss per sample or element).
    PerSample,
}

/// One program compiled for one batch size, bound to the store.
pub(crate) struct Program {
    /// Samples per run.
    pub(crate) batch: usize,
    /// What it computes.
    pub(crate) kind: Kind,
    /// The graph it was compiled from, with the positions of its outputs and hypers.
    pub(crate) step: StepGraph,
    /// Its executable in the store.
    exe: usize,
}

/// A spec's programs on one backend and the store of their persistent buffers.
pub struct Session {
    spec: Spec,
    backend: Box<dyn Backend>,
    layout: TargetLayout,
    store: Store,
    programs: Vec<Program>,
}

impl Session {
    /// A session for `spec` on `backend` with targets laid out as `layout`; nothing compiled
    /// yet. A spec whose training step cannot fit in memory is refused here, before anything
    /// is allocated, whichever entry point builds the session.
    pub fn new(
        spec: Spec,
        backend: Box<dyn Backend>,
        layout: TargetLayout,
    ) -> Result<Session, TrainError> {
        crate::run::check_size(&spec)?;
        Ok(Session {
            spec,
            store: Store::new(backend.name()),
            backend,
            layout,
            programs: Vec::new(),
        })
    }

    /// The spec this session compiles.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Builds, optimizes and compiles the training step for batches of `batch` (what
    /// `graphc bench` times as the compile).
    pub fn compile_step(&mut self, batch: usize) -> Result<(), TrainError> {
        self.program(batch, Kind::Update).map(drop)
    }

    /// The index of the `kind` program for batches of `batch`, compiled on first use.
    pub(crate) fn program(&mut self, batch: usize, kind: Kind) -> Result<usize, TrainError> {
        if let Some(i) = self
            .programs
            .iter()
            .position(|p| p.batch == batch && p.kind == kind)
        {
            return Ok(i);
        }
        let mut step = match kind {
            Kind::Update => build_step(&self.spec, batch, self.layout)?,
            Kind::Accumulate => build_accumulate_step(&self.spec, batch, self.layout)?,
            Kind::Shard => build_shard_step(&self.spec, batch, self.layout)?,
            Kind::Apply => {
                let params = match self.programs.first() {
                    Some(p) => p.step.params.clone(),
                    None => build_step(&self.spec, self.spec.data.batch_size, self.layout)?.params,
                };
                build_apply_step(&self.spec, &params)?
            }
            Kind::Eval => build_eval(&self.spec, batch, self.layout)?,
            Kind::PerSample => {
                let mut spec = self.spec.clone();
                *spec.loss.reduction_mut() = Reduction::None;
                build_eval(&spec, batch, self.layout)?
            }
        };
        let exe = compile_graph(self.backend.as_ref(), &mut step.graph)
            .map_err(|e| self.store.backend_error(e))?;
        let exe = self.store.add(exe, &step.graph);
        self.programs.push(Program {
            batch,
            kind,
            step,
            exe,
        });
        Ok(self.programs.len() - 1)
    }

    /// Program `index`, compiled earlier.
    pub(crate) fn get(&self, index: usize) -> &Program {
        &self.programs[index]
    }

    /// The executable of program `index`, with the outputs of its last run.
    pub(crate) fn exe(&self, index: usize) -> &dyn Executable {
        self.store.exe(self.programs[index].exe)
    }

    /// Binds program `index` and runs it once on `args`, with `ranks` hearing its sums over
    /// ranks and assigns (`Executable::run_summing`).
    pub(crate) fn run(
        &mut self,
        index: usize,
        args: &[Arg<'_>],
        ranks: &mut dyn Ranks,
    ) -> Result<(), TrainError> {
        self.store.run(self.programs[index].exe, args, ranks)
    }

    /// The buffer of each slot of program `index`'s executable (the `slot` of
    /// [`Ranks::assigned`]).
    pub(crate) fn slots(&self, index: usize) -> &[BufferId] {
        &self.store.exes[self.programs[index].exe].slots
    }

    /// The id of the buffer named `name` (`0.weight`, `0.weight.exp_avg`), if a compiled
    /// program uses it.
    pub fn id(&self, name: &str) -> Option<BufferId> {
        self.store.id(name)
    }

    /// The current value of buffer `id`.
    pub fn value(&self, id: BufferId) -> &[f32] {
        self.store.value(id)
    }

    /// Overwrites buffer `id`; data of another length is an error naming the buffer.
    pub fn set_value(&mut self, id: BufferId, data: &[f32]) -> Result<(), TrainError> {
        self.store.set_value(id, data)
    }

    /// Buffer `id` to change in place, where its newest value is (no copy).
    pub(crate) fn value_mut(&mut self, id: BufferId) -> &mut [f32] {
        self.store.value_mut(id)
    }
}

/// Persistent buffers by typed id, outside the executables that use them, and those
/// executables: the part of a [`Session`] that also serves programs built from no spec (the
/// tutorial [`crate::Optimizer`]'s update).
pub(crate) struct Store {
    /// The backend's name, for errors.
    backend: &'static str,
    /// Each buffer's `state_dict`-style name (`0.weight`, `0.weight.momentum_buffer`).
    names: Vec<String>,
    /// Each buffer's value when [`Holder::Store`] holds its newest.
    values: Vec<Vec<f32>>,
    /// Each buffer's newest version: 0 (all zeros, as buffers and executables start) until a
    /// run assigns it or a caller overwrites it.
    latest: Vec<u64>,
    /// Where each buffer's newest value is (others may hold it too).
    newest: Vec<Holder>,
    /// Buffer ids by name, used when an executable is added and by name-based accessors.
    ids: HashMap<String, BufferId>,
    exes: Vec<Bound>,
}

/// Where a buffer's newest value is.
#[derive(Debug, Clone, Copy)]
enum Holder {
    /// The store's own copy.
    Store,
    /// Slot `.1` of executable `.0`.
    Exe(usize, usize),
}

/// An executable and the store buffer of each of its slots.
struct Bound {
    exe: Box<dyn Executable>,
    /// The store buffer of each executable slot (`Graph::persistent()` order); no buffer
    /// twice, as a graph names each persistent leaf once.
    slots: Vec<BufferId>,
    /// Whether a run assigns each slot.
    assigned: Vec<bool>,
    /// The version of its buffer each slot holds.
    versions: Vec<u64>,
}

impl Store {
    /// An empty store for executables of the backend named `backend`.
    pub(crate) fn new(backend: &'static str) -> Store {
        Store {
            backend,
            names: Vec::new(),
            values: Vec::new(),
            latest: Vec::new(),
            newest: Vec::new(),
            ids: HashMap::new(),
            exes: Vec::new(),
        }
    }

    /// The error for a failure inside the backend.
    pub(crate) fn backend_error(&self, source: IrError) -> TrainError {
        TrainError::Backend {
            backend: self.backend,
            source,
        }
    }

    /// Adds `exe`, compiled from `graph`, bound to the buffers its persistent leaves name
    /// (added to the store at zero, as executables start, where new). Returns its index.
    pub(crate) fn add(&mut self, exe: Box<dyn Executable>, graph: &Graph) -> usize {
        let mut slots = Vec::new();
        let mut assigned = Vec::new();
        for node in graph.persistent() {
            let name = graph.node(node).op.leaf_name().unwrap_or_default();
            let len = graph.node(node).ty.numel();
            slots.push(self.buffer(name, len));
            assigned.push(graph.assigns().iter().any(|a| a.target == node));
        }
        let versions = vec![0; slots.len()];
        self.exes.push(Bound {
            exe,
            slots,
            assigned,
            versions,
        });
        self.exes.len() - 1
    }

    /// The id of buffer `name`, added to the store at zero if new.
    fn buffer(&mut self, name: &str, len: usize) -> BufferId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = BufferId(u32::try_from(self.names.len()).expect("fewer than 2^32 buffers"));
        self.names.push(name.to_owned());
        self.values.push(vec![0.0; len]);
        self.latest.push(0);
        self.newest.push(Holder::Store);
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// Executable `index`, with the outputs of its last run.
    pub(crate) fn exe(&self, index: usize) -> &dyn Executable {
        self.exes[index].exe.as_ref()
    }

    /// Makes executable `index` hold the newest value of every buffer it uses, copying each
    /// one it holds an older version of from where the newest is.
    fn bind(&mut self, index: usize) -> Result<(), TrainError> {
        for slot in 0..self.exes[index].slots.len() {
            let id = self.exes[index].slots[slot].index();
            let latest = self.latest[id];
            if self.exes[index].versions[slot] == latest {
                continue;
            }
            let result = match self.newest[id] {
                Holder::Store => self.exes[index].exe.write_slot(slot, &self.values[id]),
                // Another executable: `index` holds an older version, so it is not the holder.
                Holder::Exe(from, from_slot) => {
                    let (source, target) = source_and_target(&mut self.exes, from, index);
                    target.exe.write_slot(slot, source.exe.slot(from_slot))
                }
            };
            result.map_err(|source| self.backend_error(source))?;
            self.exes[index].versions[slot] = latest;
        }
        Ok(())
    }

    /// Brings executable `index` up to date and runs it once on `args`; the buffers it assigns
    /// then have their newest value there.
    pub(crate) fn run(
        &mut self,
        index: usize,
        args: &[Arg<'_>],
        ranks: &mut dyn Ranks,
    ) -> Result<(), TrainError> {
        self.bind(index)?;
        let result = self.exes[index].exe.run_summing(args, ranks);
        result.map_err(|e| self.backend_error(e))?;
        let bound = &mut self.exes[index];
        for (slot, id) in bound.slots.iter().enumerate() {
            if bound.assigned[slot] {
                self.latest[id.index()] += 1;
                bound.versions[slot] = self.latest[id.index()];
                self.newest[id.index()] = Holder::Exe(index, slot);
            }
        }
        Ok(())
    }

    /// The id of the buffer named `name`, if an added executable uses it.
    pub(crate) fn id(&self, name: &str) -> Option<BufferId> {
        self.ids.get(name).copied()
    }

    /// The current value of buffer `id`.
    pub(crate) fn value(&self, id: BufferId) -> &[f32] {
        match self.newest[id.index()] {
            Holder::Store => &self.values[id.index()],
            Holder::Exe(exe, slot) => self.exes[exe].exe.slot(slot),
        }
    }

    /// Buffer `id` to change in place where its newest value is; the others holding it are
    /// out of date from here on.
    pub(crate) fn value_mut(&mut self, id: BufferId) -> &mut [f32] {
        self.latest[id.index()] += 1;
        match self.newest[id.index()] {
            Holder::Store => &mut self.values[id.index()],
            Holder::Exe(exe, slot) => {
                let bound = &mut self.exes[exe];
                bound.versions[slot] = self.latest[id.index()];
                bound.exe.slot_mut(slot)
            }
        }
    }

    /// Overwrites buffer `id`; data of another length is an error naming the buffer.
    pub(crate) fn set_value(&mut self, id: BufferId, data: &[f32]) -> Result<(), TrainError> {
        let len = self.values[id.index()].len();
        if len != data.len() {
            return Err(TrainError::Data(format!(
                "`{}` holds {len} values, got {}",
                self.names[id.index()],
                data.len()
            )));
        }
        self.value_mut(id).copy_from_slice(data);
        Ok(())
    }
}

/// Executable `from` to read and executable `to` to write, two different ones.
fn source_and_target(exes: &mut [Bound], from: usize, to: usize) -> (&Bound, &mut Bound) {
    if from < to {
        let (head, tail) = exes.split_at_mut(to);
        (&head[from], &mut tail[0])
    } else {
        let (head, tail) = exes.split_at_mut(from);
        (&tail[0], &mut head[to])
    }
}

/// Optimizes `graph` and compiles it on `backend`: the one compile path of every program a
/// spec, a loss or an optimizer walkthrough runs.
pub fn compile_graph(
    backend: &dyn Backend,
    graph: &mut graphc_ir::Graph,
) -> Result<Box<dyn Executable>, IrError> {
    graphc_opt::optimize(graph)?;
    backend.compile(graph)
}

/// The training step of `spec` for batches of `batch`, optimized as the session compiles it
/// (what `graphc graph` prints).
pub fn optimized_step(
    spec: &Spec,
    batch: usize,
    layout: TargetLayout,
) -> Result<StepGraph, TrainError> {
    let mut step = build_step(spec, batch, layout)?;
    graphc_opt::optimize(&mut step.graph).map_err(|source| TrainError::Backend {
        backend: "optimizer",
        source,
    })?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use graphc_interp::Interp;
    use graphc_ir::{BinaryOp, Graph, IrError};

    use graphc_ir::{Backend, NodeId};

    use super::*;

    /// An executable that counts the slots written into it.
    struct Counting {
        inner: Box<dyn Executable>,
        writes: Arc<AtomicUsize>,
    }

    impl Executable for Counting {
        fn run_summing(&mut self, args: &[Arg<'_>], ranks: &mut dyn Ranks) -> Result<(), IrError> {
            self.inner.run_summing(args, ranks)
        }
        fn sum_ranks_lengths(&self) -> Vec<usize> {
            self.inner.sum_ranks_lengths()
        }
        fn output(&self, index: usize) -> &[f32] {
            self.inner.output(index)
        }
        fn slot(&self, slot: usize) -> &[f32] {
            self.inner.slot(slot)
        }
        fn write_slot(&mut self, slot: usize, data: &[f32]) -> Result<(), IrError> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.inner.write_slot(slot, data)
        }
        fn slot_mut(&mut self, slot: usize) -> &mut [f32] {
            self.inner.slot_mut(slot)
        }
        fn read(&self, name: &str) -> Option<&[f32]> {
            self.inner.read(name)
        }
        fn write(&mut self, name: &str, data: &[f32]) -> Result<(), IrError> {
            self.inner.write(name, data)
        }
    }

    /// Adds to `store` the program `build` makes over the parameter `w` (two values) and, if
    /// `with_g`, the state `g` (two values), counting its slot writes in `writes`.
    fn add(
        store: &mut Store,
        writes: &Arc<AtomicUsize>,
        with_g: bool,
        build: impl FnOnce(&mut Graph, NodeId, Option<NodeId>) -> Result<(), IrError>,
    ) -> usize {
        let mut graph = Graph::new();
        let w = graph.param("w", &[2]);
        let g = with_g.then(|| graph.state("g", &[2]));
        build(&mut graph, w, g).unwrap();
        let inner = Interp.compile(&graph).unwrap();
        let exe = Box::new(Counting {
            inner,
            writes: Arc::clone(writes),
        });
        store.add(exe, &graph)
    }

    #[test]
    fn programs_get_the_newest_buffers_and_only_the_changed_ones_are_copied() {
        let mut store = Store::new("interp");
        let writes = Arc::new(AtomicUsize::new(0));
        // `g += w`, as a shard step adds gradients; `w -= g, g = 0`, as an apply step updates;
        // an evaluation reading `w` and writing nothing.
        let step = add(&mut store, &writes, true, |graph, w, g| {
            let g = g.unwrap();
            let sum = graph.binary(BinaryOp::Add, g, w)?;
            graph.add_assign(g, sum)
        });
        let apply = add(&mut store, &writes, true, |graph, w, g| {
            let g = g.unwrap();
            let updated = graph.binary(BinaryOp::Sub, w, g)?;
            let zero = graph.fill(0.0, &[2]);
            graph.add_assign(w, updated)?;
            graph.add_assign(g, zero)
        });
        let eval = add(&mut store, &writes, false, |graph, w, _| {
            let twice = graph.binary(BinaryOp::Add, w, w)?;
            graph.add_output("twice", twice);
            Ok(())
        });
        let (w, g) = (store.id("w").unwrap(), store.id("g").unwrap());
        let run = |store: &mut Store, index: usize, copies: usize| {
            writes.store(0, Ordering::Relaxed);
            store.run(index, &[], &mut |_: &mut [f32]| {}).unwrap();
            assert_eq!(writes.load(Ordering::Relaxed), copies, "program {index}");
        };

        store.set_value(w, &[1.0, 2.0]).unwrap();
        run(&mut store, step, 1); // w from the store; g is still zero, as the program starts.
        assert_eq!(store.value(g), [1.0, 2.0]);
        store.value_mut(g)[0] = 10.0; // in place, where the step left it (as an all-reduce)
        run(&mut store, apply, 2); // w from the store, g from the step
        assert_eq!(
            (store.value(w), store.value(g)),
            (&[-9.0, 0.0][..], &[0.0, 0.0][..])
        );
        run(&mut store, eval, 1); // w from apply
        assert_eq!(store.exe(eval).output(0), [-18.0, 0.0]);
        run(&mut store, eval, 0); // nothing changed since
        run(&mut store, step, 2); // w and g from apply
        assert_eq!(store.value(g), [-9.0, 0.0]);
        run(&mut store, eval, 0); // eval's w is still the newest: the step only wrote g
        run(&mut store, apply, 1); // g from the step; apply wrote w last
        assert_eq!(store.value(w), [0.0, 0.0]);
        store.set_value(w, &[5.0, 5.0]).unwrap();
        run(&mut store, eval, 1);
        assert_eq!(store.exe(eval).output(0), [10.0, 10.0]);
    }
}
