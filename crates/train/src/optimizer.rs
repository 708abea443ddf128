//! `Optimizer`: a `torch.optim` optimizer on its own, without a model or data — set each
//! parameter's gradient, `step()`, read the parameters and the state — for the experiments of
//! an optimizer tutorial. It runs graphc-nn's update-only graph (`build_update_graph`) on a
//! backend, so the update is the very subgraph a training step fuses; the parameters and the
//! state live in the same kind of store as a [`crate::Session`]'s.

use graphc_ir::{Arg, Backend, IrError};
use graphc_nn::sched::SchedulerKeys;
use graphc_nn::{build_update_graph, hyper_value, initial_groups, UpdateGraph};
use graphc_spec::{shown_list, OptimizerKind, OptimizerSpec, ParamGroupSpec};

use crate::session::Store;
use crate::trainer::{GroupState, OptimizerState};
use crate::{NamedTensor, TrainError};

/// An optimizer over named parameters, stepped on gradients set by hand.
pub struct Optimizer {
    spec: OptimizerSpec,
    /// What compiles the update (again when a group is added).
    backend: Box<dyn Backend>,
    update: UpdateGraph,
    /// The parameters and state, and the one executable that updates them.
    store: Store,
    /// One gradient per parameter, in parameter order (zero until set).
    grads: Vec<Vec<f32>>,
    /// Each group's current hyperparameters, as `group_of` numbers groups.
    groups: Vec<OptimizerKind>,
    step_count: u64,
}

impl Optimizer {
    /// An optimizer for `params` (their names, shapes and initial values), with the state
    /// at PyTorch's initial values; `spec.param_groups` patterns match the names.
    pub fn new(
        spec: OptimizerSpec,
        params: &[NamedTensor],
        backend: Box<dyn Backend>,
    ) -> Result<Optimizer, TrainError> {
        let (update, store) = compile(&spec, params, backend.as_ref())?;
        Ok(Optimizer {
            groups: initial_groups(&spec),
            grads: params.iter().map(|p| vec![0.0; p.data.len()]).collect(),
            spec,
            backend,
            update,
            store,
            step_count: 0,
        })
    }

    /// PyTorch's `optimizer.defaults`: the settings a group gets unless it overrides them.
    pub fn defaults(&self) -> &OptimizerKind {
        &self.spec.kind
    }

    /// PyTorch's `optimizer.add_param_group({"params": ..., **settings})`: `params` (new
    /// names, with their values) join as a new group with `settings` (the same algorithm as
    /// the defaults; start from [`Optimizer::defaults`] and change what differs). The other
    /// parameters keep their values, state and group settings; the update is compiled again.
    pub fn add_param_group(
        &mut self,
        params: &[NamedTensor],
        settings: OptimizerKind,
    ) -> Result<(), TrainError> {
        if settings.optimizer_type() != self.spec.kind.optimizer_type() {
            return Err(TrainError::Data(format!(
                "add_param_group: a {} group cannot join a {} optimizer",
                settings.class_name(),
                self.spec.kind.class_name()
            )));
        }
        for p in params {
            if self.index(&p.name).is_ok() {
                return Err(TrainError::Data(format!(
                    "add_param_group: `{}` is in a group already (PyTorch: some parameters appear in more than one parameter group)",
                    p.name
                )));
            }
            if p.name.contains(['*', '?']) {
                return Err(TrainError::Data(format!(
                    "add_param_group: `{}` has a glob character; name it without `*` or `?`",
                    p.name
                )));
            }
        }
        let added = self.spec.param_groups.len();
        let mut spec = self.spec.clone();
        spec.param_groups.push(ParamGroupSpec {
            params: params.iter().map(|p| p.name.clone()).collect(),
            kind: settings.clone(),
        });
        let mut all: Vec<NamedTensor> = self
            .update
            .params
            .iter()
            .map(|p| self.tensor(&p.name, &p.shape))
            .collect();
        all.extend(params.iter().cloned());
        let (update, mut store) = compile(&spec, &all, self.backend.as_ref())?;
        // First matching pattern wins: an earlier group's pattern may claim a new name.
        let old = self.update.params.len();
        if let Some(i) = (old..all.len()).find(|&i| update.groups[i] != added) {
            return Err(TrainError::Data(format!(
                "add_param_group: `{}` matches the pattern of parameter group {}; rename it",
                all[i].name, update.groups[i]
            )));
        }
        for b in &self.update.state {
            let (Some(from), Some(to)) = (self.store.id(&b.name), store.id(&b.name)) else {
                continue;
            };
            let values = self.store.value(from).to_vec();
            store.set_value(to, &values)?;
        }
        self.groups.insert(added, settings);
        self.grads
            .extend(params.iter().map(|p| vec![0.0; p.data.len()]));
        self.spec = spec;
        self.update = update;
        self.store = store;
        Ok(())
    }

    /// PyTorch's `optimizer.load_state_dict(state)`: each group's settings, the state buffers
    /// and the step count from `state` (made by [`Optimizer::state_dict`] of an optimizer
    /// with the same parameters in the same groups). The parameters are not part of it.
    pub fn load_state_dict(&mut self, state: &OptimizerState) -> Result<(), TrainError> {
        let mine = self.state_dict();
        let names = |s: &OptimizerState| -> Vec<Vec<String>> {
            s.param_groups.iter().map(|g| g.params.clone()).collect()
        };
        if names(&mine) != names(state) {
            return Err(TrainError::Data(format!(
                "load_state_dict: the state's parameter groups {:?} are not this optimizer's {:?}",
                names(state),
                names(&mine)
            )));
        }
        if state.state.len() != mine.state.len() {
            return Err(TrainError::Data(format!(
                "load_state_dict: {} state buffers, this optimizer keeps {}",
                state.state.len(),
                mine.state.len()
            )));
        }
        for (t, want) in state.state.iter().zip(&mine.state) {
            if t.name != want.name || t.data.len() != want.data.len() {
                return Err(TrainError::Data(format!(
                    "load_state_dict: state `{}` ({} values) does not fit `{}` ({} values)",
                    t.name,
                    t.data.len(),
                    want.name,
                    want.data.len()
                )));
            }
        }
        let live = self.live_groups();
        for (&g, group) in live.iter().zip(&state.param_groups) {
            if group.hypers.optimizer_type() != self.groups[g].optimizer_type() {
                return Err(TrainError::Data(format!(
                    "load_state_dict: a {} state for a {} optimizer",
                    group.hypers.class_name(),
                    self.groups[g].class_name()
                )));
            }
        }
        // Checked: nothing below fails halfway (the buffers exist, with these lengths).
        for (&g, group) in live.iter().zip(&state.param_groups) {
            self.groups[g] = group.hypers.clone();
        }
        for t in &state.state {
            let id = self.store.id(&t.name).ok_or_else(|| {
                TrainError::Data(format!("load_state_dict: no state buffer `{}`", t.name))
            })?;
            self.store.set_value(id, &t.data)?;
        }
        self.step_count = state.step;
        Ok(())
    }

    /// The groups that hold parameters, in `state_dict` order.
    fn live_groups(&self) -> Vec<usize> {
        let mut live: Vec<usize> = self.update.groups.clone();
        live.sort_unstable();
        live.dedup();
        live
    }

    /// The store's buffer `name` as a named tensor of `shape` (empty if the update lacks it).
    fn tensor(&self, name: &str, shape: &[usize]) -> NamedTensor {
        NamedTensor {
            name: name.to_owned(),
            shape: shape.to_vec(),
            data: self.read(name).map(<[f32]>::to_vec).unwrap_or_default(),
        }
    }

    /// The current value of the store's buffer `name`, if the update uses it.
    fn read(&self, name: &str) -> Option<&[f32]> {
        self.store.id(name).map(|id| self.store.value(id))
    }

    fn index(&self, name: &str) -> Result<usize, TrainError> {
        self.update
            .params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.update.params.iter().map(|p| p.name.as_str()).collect();
                TrainError::Data(format!(
                    "no parameter `{name}`; the parameters are {}",
                    graphc_spec::shown_items(&names)
                ))
            })
    }

    /// Sets a parameter's gradient (`p.grad = ...`) for the next [`Optimizer::step`].
    pub fn set_grad(&mut self, name: &str, grad: &[f32]) -> Result<(), TrainError> {
        let i = self.index(name)?;
        if grad.len() != self.grads[i].len() {
            return Err(TrainError::Data(format!(
                "the gradient of `{name}` needs {} values (shape {}), got {}",
                self.grads[i].len(),
                shown_list(&self.update.params[i].shape),
                grad.len()
            )));
        }
        self.grads[i].copy_from_slice(grad);
        Ok(())
    }

    /// Every gradient back to zero. (PyTorch's `zero_grad()` sets them to `None`, which
    /// skips those parameters; here every parameter is updated, with a zero gradient.)
    pub fn zero_grad(&mut self) {
        for g in &mut self.grads {
            g.fill(0.0);
        }
    }

    /// One update of every parameter with the gradients set (`optimizer.step()`).
    pub fn step(&mut self) -> Result<(), TrainError> {
        let hypers: Vec<f32> = self
            .update
            .hypers
            .iter()
            .map(|&h| hyper_value(h, &self.groups, self.step_count + 1))
            .collect();
        let mut args: Vec<Arg<'_>> = self.grads.iter().map(|g| Arg::F32(g)).collect();
        args.extend(hypers.iter().map(std::slice::from_ref).map(Arg::F32));
        self.store.run(0, &args, &mut |_: &mut [f32]| {})?;
        self.step_count += 1;
        Ok(())
    }

    /// A parameter's current value.
    pub fn param(&self, name: &str) -> Option<&[f32]> {
        self.read(name)
    }

    /// A parameter's optimizer state by PyTorch's key (`momentum_buffer`, `exp_avg`, ...).
    pub fn state(&self, param: &str, key: &str) -> Option<&[f32]> {
        self.read(&format!("{param}.{key}"))
    }

    /// Updates done so far.
    pub fn step_count(&self) -> u64 {
        self.step_count
    }

    /// The current hyperparameters of group `group` (`param_groups` index; the top-level
    /// settings are `param_groups.len()`).
    pub fn group(&self, group: usize) -> Option<&OptimizerKind> {
        self.groups.get(group)
    }

    /// Sets the learning rate of a group for the next steps (`param_group["lr"] = lr`).
    pub fn set_lr(&mut self, group: usize, lr: f64) -> Result<(), TrainError> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| TrainError::Data(format!("no parameter group {group}")))?;
        g.set_lr(lr);
        Ok(())
    }

    /// PyTorch's `optimizer.state_dict()`: defaults, the groups that hold parameters with
    /// their current hyperparameters, the state buffers, the step count.
    pub fn state_dict(&self) -> OptimizerState {
        let param_groups = self
            .live_groups()
            .iter()
            .map(|&g| GroupState {
                params: self
                    .update
                    .params
                    .iter()
                    .zip(&self.update.groups)
                    .filter(|(_, &pg)| pg == g)
                    .map(|(p, _)| p.name.clone())
                    .collect(),
                hypers: self.groups[g].clone(),
                keys: SchedulerKeys::default(),
            })
            .collect();
        let state = self
            .update
            .state
            .iter()
            .map(|b| self.tensor(&b.name, &b.shape))
            .collect();
        OptimizerState {
            defaults: self.spec.kind.clone(),
            param_groups,
            state,
            step: self.step_count,
            pending_batches: 0,
            accumulated: Vec::new(),
        }
    }
}

/// The update graph of `spec` over `params`, compiled on `backend` into a store holding the
/// parameters' values and the state at PyTorch's initial values.
fn compile(
    spec: &OptimizerSpec,
    params: &[NamedTensor],
    backend: &dyn Backend,
) -> Result<(UpdateGraph, Store), TrainError> {
    let shapes: Vec<(String, Vec<usize>)> = params
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone()))
        .collect();
    let mut update = build_update_graph(spec, &shapes)?;
    let mut store = Store::new(backend.name());
    let exe = crate::session::compile_graph(backend, &mut update.graph)
        .map_err(|e| store.backend_error(e))?;
    store.add(exe, &update.graph);
    let initial = params
        .iter()
        .map(|p| (p.name.as_str(), p.data.clone()))
        .chain(update.state.iter().map(|b| {
            let len = b.shape.iter().product();
            (b.name.as_str(), vec![b.init; len])
        }));
    for (name, values) in initial {
        let id = store.id(name).ok_or_else(|| {
            store.backend_error(IrError::Argument(format!(
                "the update has no buffer `{name}`"
            )))
        })?;
        store.set_value(id, &values)?;
    }
    Ok((update, store))
}
