//! Optimizers as update subgraphs in the step's IR, with `torch.optim`'s exact single-tensor
//! (`foreach=False`) formulas: the assignment of parameters to param groups, the optimizer
//! state each parameter keeps (named like PyTorch's `optimizer.state` keys) and its initial
//! value, the runtime hyperparameters of the update and their per-step values, and an
//! update-only graph whose gradients are inputs. One module per `torch.optim` class.
//!
//! Runtime hyperparameters: everything a scheduler may change (the learning rate, SGD's and
//! RMSprop's momentum, the betas) and everything that depends on the step count is a
//! [`Hyper`] argument, so a schedule never recompiles the step. Scalars that PyTorch computes
//! in Python floats (`1 - beta1 ** step`, `lr / bias_correction1`, NAdam's momentum cache,
//! RAdam's rectification) are computed on the host in `f64` by [`hyper_value`] and rounded
//! to `f32` once, exactly where PyTorch hands a Python float to an `f32` kernel. The other
//! hyperparameters (eps, weight_decay, alpha, rho, ...) are compile-time constants, rounded
//! from their `f64` value the same way.

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod nadam;
mod radam;
mod rmsprop;
mod sgd;

use graphc_ir::{BinaryOp, CompareOp, Graph, NodeId, TensorType, UnaryOp};
use graphc_spec::{OptimizerKind, OptimizerSpec};

use crate::{NnError, ParamInfo};

/// A runtime scalar of the step, bound at every run (in `StepGraph::hypers` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hyper {
    /// The learning rate of a parameter group (numbered as [`group_of`] does).
    Lr {
        /// The group.
        group: usize,
    },
    /// The 1-based count of this update, for first-step terms.
    Step,
    /// A per-group scalar computed on the host from the group's current hyperparameters and
    /// the step count (see [`GroupScalar`] for each formula).
    Group {
        /// The group.
        group: usize,
        /// Which scalar.
        scalar: GroupScalar,
    },
    /// A batch norm's cumulative-average weight (`momentum: null`) at this training forward:
    /// `1 / num_batches_tracked` after the forward adds one to it.
    CumulativeAverage {
        /// Its `num_batches_tracked` among the model's counters.
        counter: usize,
    },
}

/// The per-group runtime scalars besides the learning rate. `t` is the 1-based step, `lr`,
/// `β1`, `β2`, `μ` the group's current values; every formula is evaluated in `f64` as
/// PyTorch's Python code does, then rounded to `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupScalar {
    /// `μ`, the momentum of SGD and RMSprop.
    Momentum,
    /// `1 - β1`, the `lerp` weight of the first moment.
    OneMinusBeta1,
    /// `β2`.
    Beta2,
    /// `1 - β2`.
    OneMinusBeta2,
    /// `lr / (1 - β1^t)`: Adam's `step_size`, Adamax's `clr`.
    StepSize,
    /// `1 - β1^t`.
    BiasCorrection1,
    /// `1 - β2^t`.
    BiasCorrection2,
    /// `(1 - β2^t) ** 0.5`.
    BiasCorrection2Sqrt,
    /// `1 - lr · weight_decay`, the factor of decoupled weight decay.
    DecayFactor,
    /// Adagrad's `clr = lr / (1 + (t - 1) · lr_decay)`.
    AdagradLr,
    /// NAdam's `μ_t = β1 (1 - ½ · 0.96^(t · momentum_decay))`.
    NadamMu,
    /// NAdam's `μ_{t+1}`.
    NadamMuNext,
    /// NAdam's `-lr (1 - μ_t)`, the gradient term's numerator.
    NadamGradScale,
    /// NAdam's `-lr μ_{t+1}`, the first moment term's numerator.
    NadamAvgScale,
    /// RAdam's rectification `r_t` (0 when `ρ_t <= 5`).
    RadamRect,
    /// 1 when RAdam rectifies this step (`ρ_t > 5`), else 0.
    RadamRectified,
}

impl GroupScalar {
    /// The stem of the hyper's name in the graph (`step_size` in `step_size.0`).
    pub fn name(self) -> &'static str {
        match self {
            GroupScalar::Momentum => "momentum",
            GroupScalar::OneMinusBeta1 => "one_minus_beta1",
            GroupScalar::Beta2 => "beta2",
            GroupScalar::OneMinusBeta2 => "one_minus_beta2",
            GroupScalar::StepSize => "step_size",
            GroupScalar::BiasCorrection1 => "bias_correction1",
            GroupScalar::BiasCorrection2 => "bias_correction2",
            GroupScalar::BiasCorrection2Sqrt => "bias_correction2_sqrt",
            GroupScalar::DecayFactor => "decay_factor",
            GroupScalar::AdagradLr => "clr",
            GroupScalar::NadamMu => "mu",
            GroupScalar::NadamMuNext => "mu_next",
            GroupScalar::NadamGradScale => "grad_scale",
            GroupScalar::NadamAvgScale => "avg_scale",
            GroupScalar::RadamRect => "rect",
            GroupScalar::RadamRectified => "rectified",
        }
    }
}

impl Hyper {
    /// The name of the `Hyper` node: `lr.0`, `step`, `step_size.1`.
    pub fn name(self) -> String {
        match self {
            Hyper::Lr { group } => format!("lr.{group}"),
            Hyper::Step => "step".to_owned(),
            Hyper::Group { group, scalar } => format!("{}.{group}", scalar.name()),
            Hyper::CumulativeAverage { counter } => format!("cumulative_average.{counter}"),
        }
    }
}

/// The value of `hyper` for update number `step` (1-based) when the param groups' current
/// hyperparameters are `groups` (indexed as [`group_of`] numbers groups: `param_groups`,
/// then the top-level settings), in a graph without counters. A group index out of range
/// gives NaN.
pub fn hyper_value(hyper: Hyper, groups: &[OptimizerKind], step: u64) -> f32 {
    hyper_value_by(hyper, |g| groups.get(g), step, &[])
}

/// [`hyper_value`] with the groups' current hyperparameters looked up by `group(index)`, for
/// callers that keep them inside their own structures, and the model's `num_batches_tracked`
/// counters before this forward, `counts`. A counter out of range gives NaN.
pub fn hyper_value_by<'a>(
    hyper: Hyper,
    group: impl Fn(usize) -> Option<&'a OptimizerKind>,
    step: u64,
    counts: &[i64],
) -> f32 {
    let t = step as f64;
    let value = match hyper {
        Hyper::Step => Some(t),
        // PyTorch: `num_batches_tracked.add_(1)`, then `1.0 / float(num_batches_tracked)`.
        Hyper::CumulativeAverage { counter } => {
            counts.get(counter).map(|&n| 1.0 / (n as f64 + 1.0))
        }
        Hyper::Lr { group: g } => group(g).map(OptimizerKind::lr),
        Hyper::Group { group: g, scalar } => group(g).map(|kind| group_scalar(kind, scalar, t)),
    };
    value.map_or(f32::NAN, |v| v as f32)
}

/// [`GroupScalar`]'s formulas, in `f64`, written as PyTorch writes them.
fn group_scalar(kind: &OptimizerKind, scalar: GroupScalar, t: f64) -> f64 {
    let lr = kind.lr();
    let (beta1, beta2) = kind.betas().unwrap_or((0.0, 0.0));
    let bias_correction1 = 1.0 - beta1.powf(t);
    let bias_correction2 = 1.0 - beta2.powf(t);
    match scalar {
        GroupScalar::Momentum => kind.momentum().unwrap_or(0.0),
        GroupScalar::OneMinusBeta1 => 1.0 - beta1,
        GroupScalar::Beta2 => beta2,
        GroupScalar::OneMinusBeta2 => 1.0 - beta2,
        GroupScalar::StepSize => lr / bias_correction1,
        GroupScalar::BiasCorrection1 => bias_correction1,
        GroupScalar::BiasCorrection2 => bias_correction2,
        GroupScalar::BiasCorrection2Sqrt => bias_correction2.powf(0.5),
        GroupScalar::DecayFactor => 1.0 - lr * weight_decay(kind),
        GroupScalar::AdagradLr => match kind {
            OptimizerKind::Adagrad(s) => lr / (1.0 + (t - 1.0) * s.lr_decay),
            OptimizerKind::Sgd(_)
            | OptimizerKind::Adam(_)
            | OptimizerKind::AdamW(_)
            | OptimizerKind::RmsProp(_)
            | OptimizerKind::Adadelta(_)
            | OptimizerKind::Adamax(_)
            | OptimizerKind::NAdam(_)
            | OptimizerKind::RAdam(_) => lr,
        },
        GroupScalar::NadamMu => nadam::mu(kind, t),
        GroupScalar::NadamMuNext => nadam::mu(kind, t + 1.0),
        GroupScalar::NadamGradScale => -lr * (1.0 - nadam::mu(kind, t)),
        GroupScalar::NadamAvgScale => -lr * nadam::mu(kind, t + 1.0),
        GroupScalar::RadamRect => radam::rect(beta2, t).unwrap_or(0.0),
        GroupScalar::RadamRectified => f64::from(u8::from(radam::rect(beta2, t).is_some())),
    }
}

/// The weight decay of any optimizer.
fn weight_decay(kind: &OptimizerKind) -> f64 {
    match kind {
        OptimizerKind::Sgd(s) => s.weight_decay,
        OptimizerKind::Adam(s) | OptimizerKind::AdamW(s) => s.weight_decay,
        OptimizerKind::RmsProp(s) => s.weight_decay,
        OptimizerKind::Adagrad(s) => s.weight_decay,
        OptimizerKind::Adadelta(s) => s.weight_decay,
        OptimizerKind::Adamax(s) => s.weight_decay,
        OptimizerKind::NAdam(s) => s.weight_decay,
        OptimizerKind::RAdam(s) => s.weight_decay,
    }
}

/// The group of each parameter: `i` for `param_groups[i]` (the first whose
/// pattern matches), `param_groups.len()` for the top-level defaults. A
/// pattern that matches no parameter is an error.
pub fn group_of(spec: &OptimizerSpec, params: &[ParamInfo]) -> Result<Vec<usize>, NnError> {
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    group_of_names(spec, &names)
}

/// [`group_of`] for parameters given by their `state_dict` names.
pub fn group_of_names(spec: &OptimizerSpec, names: &[&str]) -> Result<Vec<usize>, NnError> {
    let patterns: Vec<Vec<glob::Pattern>> = spec
        .param_groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            group
                .params
                .iter()
                .map(|p| {
                    glob::Pattern::new(p).map_err(|e| {
                        NnError::Optimizer(format!("param_groups[{g}]: bad pattern {p:?}: {e}"))
                    })
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    for (g, group) in patterns.iter().enumerate() {
        for p in group {
            if !names.iter().any(|name| p.matches(name)) {
                return Err(NnError::Optimizer(format!(
                    "param_groups[{g}]: pattern {:?} matches no parameter; parameters are {}",
                    p.as_str(),
                    graphc_spec::shown_items(names)
                )));
            }
        }
    }
    Ok(names
        .iter()
        .map(|name| {
            patterns
                .iter()
                .position(|group| group.iter().any(|p| p.matches(name)))
                .unwrap_or(patterns.len())
        })
        .collect())
}

/// The settings of group `group` as [`group_of`] numbers them.
pub fn group_settings(spec: &OptimizerSpec, group: usize) -> &OptimizerKind {
    spec.param_groups
        .get(group)
        .map(|g| &g.kind)
        .unwrap_or(&spec.kind)
}

/// The settings of every group, as [`group_of`] numbers them: PyTorch's `param_groups`
/// hyperparameters at the start, what the host keeps and a scheduler changes.
pub fn initial_groups(spec: &OptimizerSpec) -> Vec<OptimizerKind> {
    (0..=spec.param_groups.len())
        .map(|g| group_settings(spec, g).clone())
        .collect()
}

/// One optimizer state buffer of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct StateBuffer {
    /// PyTorch's `optimizer.state` key prefixed by the parameter: `0.weight.exp_avg`.
    pub name: String,
    /// The buffer's shape (the parameter's, or `[]` for a per-parameter scalar).
    pub shape: Vec<usize>,
    /// The value every element holds before the first step (PyTorch's state init).
    pub init: f32,
}

/// The state buffers the update keeps for a parameter, with their initial values:
/// `momentum_buffer` (SGD with momentum, RMSprop with momentum), `exp_avg`, `exp_avg_sq`,
/// `max_exp_avg_sq` (Adam/AdamW with amsgrad), `square_avg`, `grad_avg` (centered RMSprop),
/// `sum` (Adagrad, starting at `initial_accumulator_value`), `acc_delta` (Adadelta),
/// `exp_inf` (Adamax), `mu_product` (NAdam, a scalar starting at 1). PyTorch's per-parameter
/// `step` is the step count every update shares ([`Hyper::Step`]), not a buffer.
pub fn state_init(kind: &OptimizerKind, param: &ParamInfo) -> Vec<StateBuffer> {
    let buffer = |key: &str, init: f64| StateBuffer {
        name: format!("{}.{key}", param.name),
        shape: param.shape.clone(),
        init: init as f32,
    };
    match kind {
        OptimizerKind::Sgd(s) if s.momentum != 0.0 => vec![buffer("momentum_buffer", 0.0)],
        OptimizerKind::Sgd(_) => Vec::new(),
        OptimizerKind::Adam(s) | OptimizerKind::AdamW(s) => {
            let mut v = vec![buffer("exp_avg", 0.0), buffer("exp_avg_sq", 0.0)];
            if s.amsgrad {
                v.push(buffer("max_exp_avg_sq", 0.0));
            }
            v
        }
        OptimizerKind::RmsProp(s) => {
            let mut v = vec![buffer("square_avg", 0.0)];
            if s.momentum > 0.0 {
                v.push(buffer("momentum_buffer", 0.0));
            }
            if s.centered {
                v.push(buffer("grad_avg", 0.0));
            }
            v
        }
        OptimizerKind::Adagrad(s) => vec![buffer("sum", s.initial_accumulator_value)],
        OptimizerKind::Adadelta(_) => vec![buffer("square_avg", 0.0), buffer("acc_delta", 0.0)],
        OptimizerKind::Adamax(_) => vec![buffer("exp_avg", 0.0), buffer("exp_inf", 0.0)],
        OptimizerKind::NAdam(_) => vec![
            StateBuffer {
                shape: Vec::new(),
                ..buffer("mu_product", 1.0)
            },
            buffer("exp_avg", 0.0),
            buffer("exp_avg_sq", 0.0),
        ],
        OptimizerKind::RAdam(_) => vec![buffer("exp_avg", 0.0), buffer("exp_avg_sq", 0.0)],
    }
}

/// The names and shapes of [`state_init`]'s buffers.
pub fn state_names(kind: &OptimizerKind, param: &ParamInfo) -> Vec<(String, Vec<usize>)> {
    state_init(kind, param)
        .into_iter()
        .map(|b| (b.name, b.shape))
        .collect()
}

/// What the update added to a graph, for whoever runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateParts {
    /// The hypers the update reads, in the order they were added as graph arguments.
    pub hypers: Vec<Hyper>,
    /// Parameter group of each parameter.
    pub groups: Vec<usize>,
    /// Every trainable parameter's state buffers, parameters in order.
    pub state: Vec<StateBuffer>,
}

/// Adds the update of every trainable parameter to `graph` (`Assign`s to the parameters and
/// their state) given its gradient node (`grads`: one per trainable parameter, in order), and
/// the hypers it reads as new arguments. Every parameter belongs to a group, but a frozen one
/// (`requires_grad: false`) has no gradient, so, as in PyTorch, no state and no update.
pub fn build_update(
    graph: &mut Graph,
    spec: &OptimizerSpec,
    params: &[ParamInfo],
    grads: &[NodeId],
) -> Result<UpdateParts, NnError> {
    let trainable = params.iter().filter(|p| p.trainable).count();
    if grads.len() != trainable {
        return Err(NnError::Optimizer(format!(
            "{} gradients for {trainable} trainable parameters",
            grads.len()
        )));
    }
    let groups = group_of(spec, params)?;
    let mut hypers = Vec::new();
    let mut state = Vec::new();
    let trained = params.iter().zip(&groups).filter(|(p, _)| p.trainable);
    for ((param, &group), &grad) in trained.zip(grads) {
        let kind = group_settings(spec, group);
        let mut u = ParamUpdate {
            graph: &mut *graph,
            hypers: &mut hypers,
            param,
            grad,
            group,
        };
        match kind {
            OptimizerKind::Sgd(s) => sgd::update(&mut u, s)?,
            OptimizerKind::Adam(s) | OptimizerKind::AdamW(s) => adam::update(&mut u, s)?,
            OptimizerKind::RmsProp(s) => rmsprop::update(&mut u, s)?,
            OptimizerKind::Adagrad(s) => adagrad::update(&mut u, s)?,
            OptimizerKind::Adadelta(s) => adadelta::update(&mut u, s)?,
            OptimizerKind::Adamax(s) => adamax::update(&mut u, s)?,
            OptimizerKind::NAdam(s) => nadam::update(&mut u, s)?,
            OptimizerKind::RAdam(s) => radam::update(&mut u, s)?,
        }
        state.extend(state_init(kind, param));
    }
    Ok(UpdateParts {
        hypers: hypers.into_iter().map(|(h, _)| h).collect(),
        groups,
        state,
    })
}

/// A graph that only applies the optimizer: its arguments are one gradient input per
/// parameter (named `grad.NAME`, parameter order), then `hypers`; it assigns the updated
/// parameters and state. PyTorch's "set `.grad`, call `step()`" as one compiled program.
#[derive(Debug, Clone)]
pub struct UpdateGraph {
    /// The graph.
    pub graph: Graph,
    /// The parameters, in argument order of their gradients.
    pub params: Vec<ParamInfo>,
    /// The hypers after the gradients, in argument order.
    pub hypers: Vec<Hyper>,
    /// Parameter group of each parameter.
    pub groups: Vec<usize>,
    /// Every parameter's state buffers.
    pub state: Vec<StateBuffer>,
}

/// The update-only graph for parameters given by `(name, shape)`.
pub fn build_update_graph(
    spec: &OptimizerSpec,
    params: &[(String, Vec<usize>)],
) -> Result<UpdateGraph, NnError> {
    let mut graph = Graph::new();
    let infos: Vec<ParamInfo> = params
        .iter()
        .map(|(name, shape)| ParamInfo {
            name: name.clone(),
            shape: shape.clone(),
            init: crate::DefaultInit::Uniform {
                fan_in: shape.get(1).copied().unwrap_or(1),
            },
            scheme: None,
            trainable: true,
            node: graph.param(name, shape),
        })
        .collect();
    let grads: Vec<NodeId> = infos
        .iter()
        .map(|p| graph.input(&format!("grad.{}", p.name), TensorType::f32(&p.shape)))
        .collect();
    let parts = build_update(&mut graph, spec, &infos, &grads)?;
    Ok(UpdateGraph {
        graph,
        params: infos,
        hypers: parts.hypers,
        groups: parts.groups,
        state: parts.state,
    })
}

/// One parameter's update being built: graph helpers shaped like PyTorch's tensor methods.
pub(crate) struct ParamUpdate<'a> {
    graph: &'a mut Graph,
    hypers: &'a mut Vec<(Hyper, NodeId)>,
    param: &'a ParamInfo,
    grad: NodeId,
    group: usize,
}

impl ParamUpdate<'_> {
    /// The parameter's shape.
    fn shape(&self) -> Vec<usize> {
        self.param.shape.clone()
    }

    /// The `Param` node.
    fn param(&self) -> NodeId {
        self.param.node
    }

    /// The scalar hyper `h`, added as an argument the first time it is asked for.
    fn hyper(&mut self, h: Hyper) -> NodeId {
        if let Some((_, node)) = self.hypers.iter().find(|(known, _)| *known == h) {
            return *node;
        }
        let node = self.graph.hyper(&h.name());
        self.hypers.push((h, node));
        node
    }

    /// This group's scalar `s` (a `[]` node).
    fn scalar(&mut self, s: GroupScalar) -> NodeId {
        let group = self.group;
        self.hyper(Hyper::Group { group, scalar: s })
    }

    /// This group's learning rate (a `[]` node).
    fn lr(&mut self) -> NodeId {
        let group = self.group;
        self.hyper(Hyper::Lr { group })
    }

    /// `x` broadcast to the parameter's shape.
    fn full(&mut self, x: NodeId) -> Result<NodeId, NnError> {
        let shape = self.shape();
        Ok(self.graph.broadcast_to(x, &shape)?)
    }

    /// A constant of `shape`: a Python float rounded to f32, as PyTorch's kernels take scalars.
    fn constant(&mut self, value: f64, shape: &[usize]) -> NodeId {
        self.graph.fill(value as f32, shape)
    }

    /// [`Self::constant`] shaped like `x` (a `[]` scalar or a parameter-shaped tensor).
    fn constant_like(&mut self, x: NodeId, value: f64) -> NodeId {
        let shape = self.graph.shape(x).to_vec();
        self.constant(value, &shape)
    }

    /// The state buffer `NAME.key` of this parameter (shape from [`state_init`]).
    fn state(&mut self, key: &str, shape: &[usize]) -> NodeId {
        let name = format!("{}.{key}", self.param.name);
        self.graph.state(&name, shape)
    }

    /// Elementwise `a op b`; either side may be a `[]` scalar, broadcast to the other's shape.
    fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, NnError> {
        let (a, b) = self.same_shape(a, b)?;
        Ok(self.graph.binary(op, a, b)?)
    }

    fn same_shape(&mut self, a: NodeId, b: NodeId) -> Result<(NodeId, NodeId), NnError> {
        let (sa, sb) = (self.graph.shape(a).to_vec(), self.graph.shape(b).to_vec());
        Ok(if sa == sb {
            (a, b)
        } else if sa.is_empty() {
            (self.graph.broadcast_to(a, &sb)?, b)
        } else {
            (a, self.graph.broadcast_to(b, &sa)?)
        })
    }

    fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, NnError> {
        self.binary(BinaryOp::Add, a, b)
    }

    fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, NnError> {
        self.binary(BinaryOp::Sub, a, b)
    }

    fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, NnError> {
        self.binary(BinaryOp::Mul, a, b)
    }

    fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, NnError> {
        self.binary(BinaryOp::Div, a, b)
    }

    fn max(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, NnError> {
        self.binary(BinaryOp::Max, a, b)
    }

    fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId, NnError> {
        Ok(self.graph.unary(op, x)?)
    }

    /// `x * value` for a compile-time Python float `value`.
    fn mul_const(&mut self, x: NodeId, value: f64) -> Result<NodeId, NnError> {
        let c = self.constant_like(x, value);
        self.mul(x, c)
    }

    /// `x + value` for a compile-time Python float `value`.
    fn add_const(&mut self, x: NodeId, value: f64) -> Result<NodeId, NnError> {
        let c = self.constant_like(x, value);
        self.add(x, c)
    }

    /// `value - x` for a compile-time Python float `value`.
    fn rsub_const(&mut self, value: f64, x: NodeId) -> Result<NodeId, NnError> {
        let c = self.constant_like(x, value);
        self.sub(c, x)
    }

    /// The gradient as every torch.optim update starts: negated under `maximize`, plus
    /// `weight_decay · p` (`grad.add(param, alpha=weight_decay)`) when the decay is not zero.
    fn grad_with_decay(&mut self, maximize: bool, weight_decay: f64) -> Result<NodeId, NnError> {
        let mut g = self.grad;
        if maximize {
            g = self.unary(UnaryOp::Neg, g)?;
        }
        if weight_decay != 0.0 {
            let p = self.param();
            let decay = self.mul_const(p, weight_decay)?;
            g = self.add(g, decay)?;
        }
        Ok(g)
    }

    /// `tensor.addcmul(t1, t2, value)`: `tensor + value · t1 · t2`, in PyTorch's order.
    fn addcmul(
        &mut self,
        tensor: NodeId,
        value: NodeId,
        t1: NodeId,
        t2: NodeId,
    ) -> Result<NodeId, NnError> {
        let scaled = self.mul(value, t1)?;
        let product = self.mul(scaled, t2)?;
        self.add(tensor, product)
    }

    /// `tensor.addcdiv(t1, t2, value)`: `tensor + value · t1 / t2`, in PyTorch's order.
    fn addcdiv(
        &mut self,
        tensor: NodeId,
        value: NodeId,
        t1: NodeId,
        t2: NodeId,
    ) -> Result<NodeId, NnError> {
        let scaled = self.mul(value, t1)?;
        let quotient = self.div(scaled, t2)?;
        self.add(tensor, quotient)
    }

    /// `start.lerp(end, weight)` for a runtime scalar weight, with ATen's two formulas:
    /// `start + w (end - start)` when `|w| < 0.5`, else `end - (end - start)(1 - w)`.
    fn lerp(&mut self, start: NodeId, end: NodeId, weight: NodeId) -> Result<NodeId, NnError> {
        let diff = self.sub(end, start)?;
        let small = self.mul(weight, diff)?;
        let small = self.add(start, small)?;
        let rest = self.rsub_const(1.0, weight)?;
        let large = self.mul(diff, rest)?;
        let large = self.sub(end, large)?;
        let abs = self.unary(UnaryOp::Abs, weight)?;
        let half = self.constant(0.5, &[]);
        let is_small = self.graph.compare(CompareOp::Lt, abs, half)?;
        let is_small = self.full(is_small)?;
        Ok(self.graph.select(is_small, small, large)?)
    }

    /// `start.lerp(end, weight)` for a compile-time Python float weight.
    fn lerp_const(&mut self, start: NodeId, end: NodeId, weight: f64) -> Result<NodeId, NnError> {
        let w = weight as f32;
        let diff = self.sub(end, start)?;
        if w.abs() < 0.5 {
            let step = self.mul_const(diff, weight)?;
            self.add(start, step)
        } else {
            let step = self.mul_const(diff, f64::from(1.0 - w))?;
            self.sub(end, step)
        }
    }

    /// `p.mul_(1 - lr * weight_decay)`: decoupled weight decay, when the decay is not zero.
    fn decoupled_decay(&mut self, p: NodeId, weight_decay: f64) -> Result<NodeId, NnError> {
        if weight_decay == 0.0 {
            return Ok(p);
        }
        let factor = self.scalar(GroupScalar::DecayFactor);
        self.mul(p, factor)
    }

    /// The parameter and gradient an Adam-family update starts from: the parameter decayed
    /// first (`p.mul_(1 - lr·λ)`) with `decoupled_weight_decay`, else `λ·p` added to the gradient.
    fn param_and_grad(
        &mut self,
        maximize: bool,
        weight_decay: f64,
        decoupled: bool,
    ) -> Result<(NodeId, NodeId), NnError> {
        let p = self.param();
        if decoupled {
            let p = self.decoupled_decay(p, weight_decay)?;
            Ok((p, self.grad_with_decay(maximize, 0.0)?))
        } else {
            Ok((p, self.grad_with_decay(maximize, weight_decay)?))
        }
    }

    /// Adam's moments, updated and assigned: `m ← m.lerp(g, 1-β1)`, `v ← β2·v + (1-β2)·g·g`
    /// (state `exp_avg`, `exp_avg_sq`). Returns the new `(m, v)`.
    fn adam_moments(&mut self, g: NodeId) -> Result<(NodeId, NodeId), NnError> {
        let shape = self.shape();
        let exp_avg = self.state("exp_avg", &shape);
        let exp_avg_sq = self.state("exp_avg_sq", &shape);
        let w1 = self.scalar(GroupScalar::OneMinusBeta1);
        let new_avg = self.lerp(exp_avg, g, w1)?;
        let beta2 = self.scalar(GroupScalar::Beta2);
        let w2 = self.scalar(GroupScalar::OneMinusBeta2);
        let kept = self.mul(exp_avg_sq, beta2)?;
        let new_avg_sq = self.addcmul(kept, w2, g, g)?;
        self.assign(exp_avg, new_avg)?;
        self.assign(exp_avg_sq, new_avg_sq)?;
        Ok((new_avg, new_avg_sq))
    }

    /// Writes `value` into `target` at the end of the step.
    fn assign(&mut self, target: NodeId, value: NodeId) -> Result<(), NnError> {
        Ok(self.graph.add_assign(target, value)?)
    }
}
