//! The `Session`: the one place where a spec's programs (training step, accumulating step,
//! evaluation) are built, optimized and compiled, and the store of every persistent buffer —
//! parameters, optimizer state, gradient sums — outside the executables, by typed id.
//!
//! An executable keeps its own copy of the buffers it uses (the JIT's arena holds them where
//! its kernels update them in place). The session binds one executable at a time: switching
//! copies the buffers the previous one may have changed into the store and the store into the
//! next one, slot by slot — names are resolved once, when a program is compiled.

use std::collections::HashMap;

use graphc_ir::{Arg, Backend, Executable, Graph, IrError};
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

impl Kind {
    /// Whether running the program changes persistent buffers (its assigns).
    fn writes(self) -> bool {
        match self {
            Kind::Update | Kind::Accumulate | Kind::Shard | Kind::Apply => true,
            Kind::Eval | Kind::PerSample => false,
        }
    }
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
        let exe = self.store.add(exe, &step.graph, kind.writes());
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

    /// Binds program `index` and runs it once on `args`.
    pub(crate) fn run(&mut self, index: usize, args: &[Arg<'_>]) -> Result<(), TrainError> {
        self.store.run(self.programs[index].exe, args)
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
}

/// Persistent buffers by typed id, outside the executables that use them, and those
/// executables: the part of a [`Session`] that also serves programs built from no spec (the
/// tutorial [`crate::Optimizer`]'s update).
pub(crate) struct Store {
    /// The backend's name, for errors.
    backend: &'static str,
    /// Each buffer's `state_dict`-style name (`0.weight`, `0.weight.momentum_buffer`).
    names: Vec<String>,
    /// Each buffer's value when no bound executable holds a newer one.
    values: Vec<Vec<f32>>,
    /// Buffer ids by name, used when an executable is added and by name-based accessors.
    ids: HashMap<String, BufferId>,
    exes: Vec<Bound>,
    /// The executable whose copies of its buffers are the newest values.
    bound: Option<usize>,
}

/// An executable and the store buffer of each of its slots.
struct Bound {
    exe: Box<dyn Executable>,
    /// The store buffer of each executable slot (`Graph::persistent()` order).
    slots: Vec<BufferId>,
    /// Whether running it changes its buffers (it has assigns).
    writes: bool,
}

impl Bound {
    /// The executable's slot holding `id`, if it uses that buffer.
    fn slot_of(&self, id: BufferId) -> Option<usize> {
        self.slots.iter().position(|&s| s == id)
    }
}

impl Store {
    /// An empty store for executables of the backend named `backend`.
    pub(crate) fn new(backend: &'static str) -> Store {
        Store {
            backend,
            names: Vec::new(),
            values: Vec::new(),
            ids: HashMap::new(),
            exes: Vec::new(),
            bound: None,
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
    /// (added to the store at zero, as executables start, where new); `writes` says whether
    /// running it changes them. Returns its index.
    pub(crate) fn add(&mut self, exe: Box<dyn Executable>, graph: &Graph, writes: bool) -> usize {
        let mut slots = Vec::new();
        for node in graph.persistent() {
            let name = graph.node(node).op.leaf_name().unwrap_or_default();
            let len = graph.node(node).ty.numel();
            slots.push(self.buffer(name, len));
        }
        self.exes.push(Bound { exe, slots, writes });
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
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// Executable `index`, with the outputs of its last run.
    pub(crate) fn exe(&self, index: usize) -> &dyn Executable {
        self.exes[index].exe.as_ref()
    }

    /// Makes executable `index` hold the newest value of every buffer it uses: the buffers
    /// the previously bound one may have changed go to the store, then the store to it.
    fn bind(&mut self, index: usize) -> Result<(), TrainError> {
        if self.bound == Some(index) {
            return Ok(());
        }
        if let Some(previous) = self.bound.take() {
            let bound = &self.exes[previous];
            if bound.writes {
                for (slot, id) in bound.slots.iter().enumerate() {
                    self.values[id.index()].copy_from_slice(bound.exe.slot(slot));
                }
            }
        }
        let bound = &mut self.exes[index];
        for (slot, id) in bound.slots.iter().enumerate() {
            let result = bound.exe.write_slot(slot, &self.values[id.index()]);
            result.map_err(|source| TrainError::Backend {
                backend: self.backend,
                source,
            })?;
        }
        self.bound = Some(index);
        Ok(())
    }

    /// Binds executable `index` and runs it once on `args`.
    pub(crate) fn run(&mut self, index: usize, args: &[Arg<'_>]) -> Result<(), TrainError> {
        self.bind(index)?;
        let result = self.exes[index].exe.run(args);
        result.map_err(|e| self.backend_error(e))
    }

    /// The id of the buffer named `name`, if an added executable uses it.
    pub(crate) fn id(&self, name: &str) -> Option<BufferId> {
        self.ids.get(name).copied()
    }

    /// The current value of buffer `id`.
    pub(crate) fn value(&self, id: BufferId) -> &[f32] {
        if let Some(bound) = self.bound.map(|b| &self.exes[b]) {
            if let Some(slot) = bound.slot_of(id) {
                return bound.exe.slot(slot);
            }
        }
        &self.values[id.index()]
    }

    /// Overwrites buffer `id`; data of another length is an error naming the buffer.
    pub(crate) fn set_value(&mut self, id: BufferId, data: &[f32]) -> Result<(), TrainError> {
        let stored = &mut self.values[id.index()];
        if stored.len() != data.len() {
            return Err(TrainError::Data(format!(
                "`{}` holds {} values, got {}",
                self.names[id.index()],
                stored.len(),
                data.len()
            )));
        }
        stored.copy_from_slice(data);
        if let Some(b) = self.bound {
            let bound = &mut self.exes[b];
            if let Some(slot) = bound.slot_of(id) {
                let result = bound.exe.write_slot(slot, data);
                result.map_err(|source| TrainError::Backend {
                    backend: self.backend,
                    source,
                })?;
            }
        }
        Ok(())
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
