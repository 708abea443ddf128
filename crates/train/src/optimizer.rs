//! `Optimizer`: a `torch.optim` optimizer on its own, without a model or data — set each
//! parameter's gradient, `step()`, read the parameters and the state — for the experiments of
//! an optimizer tutorial. It runs graphc-nn's update-only graph (`build_update_graph`) on a
//! backend, so the update is the very subgraph a training step fuses; the parameters and the
//! state live in the same kind of store as a [`crate::Session`]'s.

use graphc_ir::{Arg, Backend, IrError};
use graphc_nn::sched::SchedulerKeys;
use graphc_nn::{build_update_graph, hyper_value, initial_groups, UpdateGraph};
use graphc_spec::{shown_list, OptimizerKind, OptimizerSpec};

use crate::session::Store;
use crate::trainer::{GroupState, OptimizerState};
use crate::{NamedTensor, TrainError};

/// An optimizer over named parameters, stepped on gradients set by hand.
pub struct Optimizer {
    spec: OptimizerSpec,
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
        let shapes: Vec<(String, Vec<usize>)> = params
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone()))
            .collect();
        let mut update = build_update_graph(&spec, &shapes)?;
        let mut store = Store::new(backend.name());
        let exe = crate::session::compile_graph(backend.as_ref(), &mut update.graph)
            .map_err(|e| store.backend_error(e))?;
        store.add(exe, &update.graph, true);
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
        Ok(Optimizer {
            groups: initial_groups(&spec),
            grads: params.iter().map(|p| vec![0.0; p.data.len()]).collect(),
            spec,
            update,
            store,
            step_count: 0,
        })
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
        self.store.run(0, &args)?;
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
        let mut live: Vec<usize> = self.update.groups.clone();
        live.sort_unstable();
        live.dedup();
        let param_groups = live
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
            .map(|b| NamedTensor {
                name: b.name.clone(),
                shape: b.shape.clone(),
                data: self.read(&b.name).map(<[f32]>::to_vec).unwrap_or_default(),
            })
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
