//! `optimizer:`: a `type:`-tagged mapping (`sgd`, `adam`, ... or PyTorch's class names) with
//! its `param_groups`, merged and checked as the `torch.optim` constructors do, and the
//! `param_group`-style accessors of [`OptimizerKind`].

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};

use crate::ctx::{shown, Ctx, Path};
use crate::keys::{KeyTable, Keys, TypeTable};
use crate::node::{
    ctx_and_path, list, read_seq, scalar, to_bool, to_f64, to_nonempty_string, to_nonneg_f64,
    valid_if, Node, Problem, Raw, ScalarNode, Seed,
};
use crate::suggest::suggest;
use crate::types::{
    AdadeltaSpec, AdagradSpec, AdamSpec, AdamaxSpec, HyperValue, NAdamSpec, OptimizerKind,
    OptimizerSpec, ParamGroupSpec, RAdamSpec, RmsPropSpec, SgdSpec,
};
use crate::vocab::{KeyTables, OptimizerType};

static OPTIMIZER_TYPES: TypeTable<OptimizerType> = TypeTable {
    what: "optimizer",
    example: "an optimizer mapping such as {type: sgd, lr: 0.1}",
    say_where: false,
    types: std::marker::PhantomData,
};

/// PyTorch keyword arguments that pick one of PyTorch's implementations of the same update.
static IMPLEMENTATION_SWITCHES: &[(&str, &str)] = &[
    (
        "foreach",
        "`foreach` picks one of PyTorch's implementations of the same update; graphc compiles \
         its own, so remove it",
    ),
    (
        "fused",
        "`fused` picks one of PyTorch's implementations of the same update; graphc compiles \
         its own, so remove it",
    ),
    (
        "capturable",
        "`capturable` is about CUDA graphs in PyTorch; graphc's update is always compiled, so \
         remove it",
    ),
    (
        "differentiable",
        "`differentiable` (autograd through the optimizer step) is not supported; remove it",
    ),
];

/// A key table of the optimizer mapping or of a group, with the implementation switches.
macro_rules! table {
    ($($key:literal),* $(,)?) => {
        KeyTable {
            valid: &[$($key),*],
            aliases: &[],
            unsupported: IMPLEMENTATION_SWITCHES,
        }
    };
}

/// The key tables of every optimizer type, from its hyperparameters.
/// The two key tables of every optimizer type, from its hyperparameters: an exhaustive `match`
/// on [`OptimizerType`], so a new type does not compile without its row.
macro_rules! tables {
    ($($t:ident: [$($key:literal),*]),* $(,)?) => {
        impl KeyTables for OptimizerType {
            /// Keys of `optimizer:`: `type`, the hyperparameters, `param_groups`.
            fn key_table(self) -> &'static KeyTable {
                match self {
                    $(OptimizerType::$t => {
                        static KEYS: KeyTable = table!("type", $($key,)* "param_groups");
                        &KEYS
                    })*
                }
            }
        }

        /// Keys of one param group of type `t`: `params` plus the hyperparameters.
        fn group_keys(t: OptimizerType) -> &'static KeyTable {
            match t {
                $(OptimizerType::$t => {
                    static KEYS: KeyTable = table!("params", $($key),*);
                    &KEYS
                })*
            }
        }
    };
}

// The hyperparameters of each type, in PyTorch's signature order.
tables! {
    Sgd: ["lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"],
    Adam: ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"],
    AdamW: ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"],
    RmsProp: ["lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"],
    Adagrad: ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"],
    Adadelta: ["lr", "rho", "eps", "weight_decay", "maximize"],
    Adamax: ["lr", "betas", "eps", "weight_decay", "maximize"],
    NAdam: ["lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay",
        "maximize"],
    RAdam: ["lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"],
}

/// A table with `first`, every optimizer's hyperparameters (in order of first use above),
/// then `last`: for the keys of a mapping read before `type:`.
macro_rules! every_hyperparameter {
    ($first:literal $(, $last:literal)?) => {
        table!(
            $first,
            "lr",
            "momentum",
            "dampening",
            "weight_decay",
            "nesterov",
            "maximize",
            "betas",
            "eps",
            "amsgrad",
            "decoupled_weight_decay",
            "alpha",
            "centered",
            "lr_decay",
            "initial_accumulator_value",
            "rho",
            "momentum_decay"
            $(, $last)?
        )
    };
}

/// Every optimizer's keys, for the keys read before `type:`.
static UNION_KEYS: KeyTable = every_hyperparameter!("type", "param_groups");

/// Every optimizer's group keys, for groups read before `type:` (checked again once it is known).
static UNION_GROUP_KEYS: KeyTable = every_hyperparameter!("params");

/// A number in `[0, 1)` (a beta).
fn to_beta(raw: &Raw) -> Result<f64, Problem> {
    valid_if(to_f64(raw)?, |x| (0.0..1.0).contains(&x))
}

/// A number in `[0, 1]` (Adadelta's rho).
fn to_unit(raw: &Raw) -> Result<f64, Problem> {
    valid_if(to_f64(raw)?, |x| (0.0..=1.0).contains(&x))
}

/// Hyperparameters given in one mapping (the optimizer or a group), any optimizer's.
#[derive(Debug, Clone, Default)]
struct Given {
    lr: Option<f64>,
    momentum: Option<f64>,
    dampening: Option<f64>,
    weight_decay: Option<f64>,
    nesterov: Option<bool>,
    maximize: Option<bool>,
    betas: Option<(f64, f64)>,
    eps: Option<f64>,
    amsgrad: Option<bool>,
    decoupled_weight_decay: Option<bool>,
    alpha: Option<f64>,
    centered: Option<bool>,
    lr_decay: Option<f64>,
    initial_accumulator_value: Option<f64>,
    rho: Option<f64>,
    momentum_decay: Option<f64>,
    /// `(canonical, as written)` of every key read, in order.
    keys: Vec<(&'static str, String)>,
}

/// `self.field` if given, else `base.field`.
macro_rules! over {
    ($self:ident, $base:ident: $($f:ident),*) => {
        Given {
            $($f: $self.$f.or($base.$f),)*
            keys: $self.keys.clone(),
        }
    };
}

impl Given {
    /// `base` with this mapping's values on top (the keys are this mapping's).
    fn over(&self, base: &Given) -> Given {
        over!(self, base: lr, momentum, dampening, weight_decay, nesterov, maximize, betas, eps,
            amsgrad, decoupled_weight_decay, alpha, centered, lr_decay,
            initial_accumulator_value, rho, momentum_decay)
    }

    /// Reads the value of hyperparameter `name` (returns false for other keys).
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
        ctx: &Ctx,
        path: Path,
        name: &'static str,
        written: &str,
    ) -> Result<bool, A::Error> {
        let num =
            |map: &mut A, path: Path, expected: &str, conv: fn(&Raw) -> Result<f64, Problem>| {
                map.next_value_seed(scalar(ctx, path, expected, conv))
            };
        let flag =
            |map: &mut A, path: Path| map.next_value_seed(scalar(ctx, path, "a boolean", to_bool));
        match name {
            "lr" => self.lr = Some(num(map, path, "a learning rate >= 0", to_nonneg_f64)?),
            "momentum" => self.momentum = Some(num(map, path, "a momentum >= 0", to_nonneg_f64)?),
            "dampening" => self.dampening = Some(num(map, path, "a number", to_f64)?),
            "weight_decay" => {
                self.weight_decay = Some(num(map, path, "a weight_decay >= 0", to_nonneg_f64)?)
            }
            "eps" => self.eps = Some(num(map, path, "an eps >= 0", to_nonneg_f64)?),
            "alpha" => self.alpha = Some(num(map, path, "an alpha >= 0", to_nonneg_f64)?),
            "lr_decay" => self.lr_decay = Some(num(map, path, "an lr_decay >= 0", to_nonneg_f64)?),
            "initial_accumulator_value" => {
                let expected = "an initial_accumulator_value >= 0";
                self.initial_accumulator_value = Some(num(map, path, expected, to_nonneg_f64)?)
            }
            "rho" => self.rho = Some(num(map, path, "a rho in [0, 1]", to_unit)?),
            "momentum_decay" => {
                let expected = "a momentum_decay >= 0";
                self.momentum_decay = Some(num(map, path, expected, to_nonneg_f64)?)
            }
            "betas" => self.betas = Some(map.next_value_seed(Seed(BetasNode { ctx, path }))?),
            "nesterov" => self.nesterov = Some(flag(map, path)?),
            "maximize" => self.maximize = Some(flag(map, path)?),
            "amsgrad" => self.amsgrad = Some(flag(map, path)?),
            "centered" => self.centered = Some(flag(map, path)?),
            "decoupled_weight_decay" => self.decoupled_weight_decay = Some(flag(map, path)?),
            _ => return Ok(false),
        }
        self.keys.push((name, written.to_owned()));
        Ok(true)
    }

    /// The hyperparameters of optimizer type `t`: the given values over PyTorch's defaults.
    fn build(&self, t: OptimizerType) -> OptimizerKind {
        let lr = |default| self.lr.unwrap_or(default);
        let betas = self.betas.unwrap_or((0.9, 0.999));
        let eps = |default| self.eps.unwrap_or(default);
        let wd = |default| self.weight_decay.unwrap_or(default);
        let maximize = self.maximize.unwrap_or(false);
        let decoupled = self.decoupled_weight_decay.unwrap_or(false);
        let adam = |wd_default, decoupled| AdamSpec {
            lr: lr(1e-3),
            betas,
            eps: eps(1e-8),
            weight_decay: wd(wd_default),
            amsgrad: self.amsgrad.unwrap_or(false),
            maximize,
            decoupled_weight_decay: decoupled,
        };
        match t {
            OptimizerType::Adam => OptimizerKind::Adam(adam(0.0, decoupled)),
            OptimizerType::AdamW => OptimizerKind::AdamW(adam(1e-2, true)),
            OptimizerType::RmsProp => OptimizerKind::RmsProp(RmsPropSpec {
                lr: lr(1e-2),
                alpha: self.alpha.unwrap_or(0.99),
                eps: eps(1e-8),
                weight_decay: wd(0.0),
                momentum: self.momentum.unwrap_or(0.0),
                centered: self.centered.unwrap_or(false),
                maximize,
            }),
            OptimizerType::Adagrad => OptimizerKind::Adagrad(AdagradSpec {
                lr: lr(1e-2),
                lr_decay: self.lr_decay.unwrap_or(0.0),
                weight_decay: wd(0.0),
                initial_accumulator_value: self.initial_accumulator_value.unwrap_or(0.0),
                eps: eps(1e-10),
                maximize,
            }),
            OptimizerType::Adadelta => OptimizerKind::Adadelta(AdadeltaSpec {
                lr: lr(1.0),
                rho: self.rho.unwrap_or(0.9),
                eps: eps(1e-6),
                weight_decay: wd(0.0),
                maximize,
            }),
            OptimizerType::Adamax => OptimizerKind::Adamax(AdamaxSpec {
                lr: lr(2e-3),
                betas,
                eps: eps(1e-8),
                weight_decay: wd(0.0),
                maximize,
            }),
            OptimizerType::NAdam => OptimizerKind::NAdam(NAdamSpec {
                lr: lr(2e-3),
                betas,
                eps: eps(1e-8),
                weight_decay: wd(0.0),
                momentum_decay: self.momentum_decay.unwrap_or(4e-3),
                decoupled_weight_decay: decoupled,
                maximize,
            }),
            OptimizerType::RAdam => OptimizerKind::RAdam(RAdamSpec {
                lr: lr(1e-3),
                betas,
                eps: eps(1e-8),
                weight_decay: wd(0.0),
                decoupled_weight_decay: decoupled,
                maximize,
            }),
            // PyTorch 2.x: `lr=1e-3`.
            OptimizerType::Sgd => OptimizerKind::Sgd(SgdSpec {
                lr: lr(1e-3),
                momentum: self.momentum.unwrap_or(0.0),
                dampening: self.dampening.unwrap_or(0.0),
                weight_decay: wd(0.0),
                nesterov: self.nesterov.unwrap_or(false),
                maximize,
            }),
        }
    }

    /// Whether this mapping wrote key `name`.
    fn has(&self, name: &str) -> bool {
        self.keys.iter().any(|(k, _)| *k == name)
    }

    /// How this mapping wrote key `name` (for positions), if it did.
    fn written(&self, name: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, w)| w.as_str())
    }

    /// PyTorch's SGD nesterov check on the merged values `s`; the key of this mapping to blame
    /// (as written), or `None` when the merged values are fine. `fallback` is blamed when the
    /// problem comes only from inherited values.
    fn nesterov_offender<'s>(&'s self, s: &SgdSpec, fallback: &'s str) -> Option<&'s str> {
        if !s.nesterov || (s.momentum > 0.0 && s.dampening == 0.0) {
            return None;
        }
        let key = if self.has("nesterov") {
            "nesterov"
        } else if self.has("momentum") && s.momentum <= 0.0 {
            "momentum"
        } else if self.has("dampening") && s.dampening != 0.0 {
            "dampening"
        } else {
            return Some(fallback);
        };
        self.written(key)
    }

    /// The optimizer-wide checks PyTorch makes on combinations of values (only SGD's
    /// nesterov rule; single values are checked as they are read). `mapping` is the path of
    /// the mapping, `fallback` its key to blame for problems that come only from inherited values.
    fn check<E: de::Error>(
        &self,
        ctx: &Ctx,
        kind: &OptimizerKind,
        mapping: &Path,
        fallback: &str,
    ) -> Result<(), E> {
        if let OptimizerKind::Sgd(s) = kind {
            if let Some(key) = self.nesterov_offender(s, fallback) {
                let key_path = mapping.key(key);
                let msg = format!(
                    "{key_path}: nesterov momentum requires momentum > 0 and dampening == 0 \
                     (here momentum = {:?}, dampening = {:?})",
                    s.momentum, s.dampening
                );
                return Err(ctx.fail_at_key(key_path, msg));
            }
        }
        Ok(())
    }
}

/// `betas`: two numbers in `[0, 1)`.
struct BetasNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for BetasNode<'_> {
    type Out = (f64, f64);
    ctx_and_path!();
    fn expected(&self) -> String {
        "a list of two betas in [0, 1), such as [0.9, 0.999]".into()
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(f64, f64), A::Error> {
        let out = read_seq(seq, |i| {
            Seed(ScalarNode {
                ctx: self.ctx,
                path: self.path.index(i),
                expected: "a beta in [0, 1)".to_owned(),
                conv: to_beta,
            })
        })?;
        match out[..] {
            [b1, b2] => Ok((b1, b2)),
            _ => {
                let msg = format!("has {} values; expected {}", out.len(), self.expected());
                Err(self.fail(&Raw::Seq, Problem::Msg(msg)))
            }
        }
    }
}

/// `optimizer:`.
pub(crate) struct OptimizerNode<'a> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// `optimizer`.
    pub(crate) path: Path,
}

impl<'de> Node<'de> for OptimizerNode<'_> {
    type Out = OptimizerSpec;
    ctx_and_path!();
    fn expected(&self) -> String {
        OPTIMIZER_TYPES.expected()
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<OptimizerSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::tagged(ctx, &self.path, &UNION_KEYS);
        let mut kind = None;
        let mut given = Given::default();
        let mut groups = Vec::new();
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "type" => {
                    let t = keys.read_type(&mut map, &OPTIMIZER_TYPES, &k.written)?;
                    keys.set_type(t.key_table(), t.name())?;
                    kind = Some(t);
                }
                "param_groups" => {
                    let node = GroupsNode { ctx, path, kind };
                    groups = map.next_value_seed(Seed(node))?;
                }
                name => {
                    if !given.read(&mut map, ctx, path, name, &k.written)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        let Some(t) = kind else {
            return Err(OPTIMIZER_TYPES.missing(&keys));
        };
        let base = given.build(t);
        given.check(ctx, &base, &self.path, "type")?;
        let param_groups = groups
            .into_iter()
            .map(|g| g.merge(ctx, t, &given))
            .collect::<Result<Vec<_>, A::Error>>()?;
        Ok(OptimizerSpec {
            kind: base,
            param_groups,
        })
    }
}

/// One group as written, merged once the optimizer's own values are known.
struct GroupGiven {
    path: Path,
    params: Vec<String>,
    given: Given,
}

impl GroupGiven {
    /// The group with the optimizer's values under its own, checked like the optimizer's.
    fn merge<E: de::Error>(
        self,
        ctx: &Ctx,
        t: OptimizerType,
        top: &Given,
    ) -> Result<ParamGroupSpec, E> {
        let table = group_keys(t);
        for (name, written) in &self.given.keys {
            if !table.valid.contains(name) {
                let msg = unknown_group_key(written, &self.path, table, t);
                return Err(ctx.fail_at_key(self.path.key(written), msg));
            }
        }
        let kind = self.given.over(top).build(t);
        self.given.check(ctx, &kind, &self.path, "params")?;
        Ok(ParamGroupSpec {
            params: self.params,
            kind,
        })
    }
}

/// The unknown-key message for a group key that the optimizer type (known only after the
/// group was read) does not take.
fn unknown_group_key(key: &str, path: &Path, table: &KeyTable, t: OptimizerType) -> String {
    let dym = match suggest(key, table.valid) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => ";".to_owned(),
    };
    format!(
        "unknown key `{}` in {path} ({} param group){dym} valid keys: {}",
        shown(key),
        t.name(),
        table.listing()
    )
}

/// `optimizer.param_groups`: a list of groups (may be empty).
struct GroupsNode<'a> {
    ctx: &'a Ctx,
    path: Path,
    /// The optimizer type when already read.
    kind: Option<OptimizerType>,
}

impl<'de> Node<'de> for GroupsNode<'_> {
    type Out = Vec<GroupGiven>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a list of param groups such as {params: [\"0.*\"], lr: 0.01}".into()
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<GroupGiven>, A::Error> {
        read_seq(seq, |i| {
            Seed(GroupNode {
                ctx: self.ctx,
                path: self.path.index(i),
                kind: self.kind,
            })
        })
    }
}

/// `optimizer.param_groups[i]`.
struct GroupNode<'a> {
    ctx: &'a Ctx,
    path: Path,
    kind: Option<OptimizerType>,
}

impl<'de> Node<'de> for GroupNode<'_> {
    type Out = GroupGiven;
    ctx_and_path!();
    fn expected(&self) -> String {
        let table = self.kind.map_or(&UNION_GROUP_KEYS, |t| group_keys(t));
        format!("a param group mapping with keys {}", table.listing())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<GroupGiven, A::Error> {
        let ctx = self.ctx;
        let table = self.kind.map_or(&UNION_GROUP_KEYS, |t| group_keys(t));
        let mut keys = Keys::new(ctx, &self.path, table);
        let mut params = None;
        let mut given = Given::default();
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "params" => {
                    let seed = list(
                        ctx,
                        path,
                        "a non-empty list of parameter name patterns such as \"0.*\"",
                        "a parameter name pattern",
                        to_nonempty_string,
                    );
                    params = map.next_value_seed(seed.seed())?;
                }
                name => {
                    if !given.read(&mut map, ctx, path, name, &k.written)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        Ok(GroupGiven {
            params: params.ok_or_else(|| keys.missing("params"))?,
            path: self.path,
            given,
        })
    }
}

impl OptimizerKind {
    /// The snake_case `type:` name (`sgd`, `adamw`).
    pub fn type_name(&self) -> &'static str {
        self.optimizer_type().name()
    }

    /// PyTorch's class name (`SGD`, `AdamW`).
    pub fn class_name(&self) -> &'static str {
        self.optimizer_type().torch_name()
    }

    /// This optimizer's entry in the vocabulary.
    pub fn optimizer_type(&self) -> OptimizerType {
        match self {
            OptimizerKind::Sgd(_) => OptimizerType::Sgd,
            OptimizerKind::Adam(_) => OptimizerType::Adam,
            OptimizerKind::AdamW(_) => OptimizerType::AdamW,
            OptimizerKind::RmsProp(_) => OptimizerType::RmsProp,
            OptimizerKind::Adagrad(_) => OptimizerType::Adagrad,
            OptimizerKind::Adadelta(_) => OptimizerType::Adadelta,
            OptimizerKind::Adamax(_) => OptimizerType::Adamax,
            OptimizerKind::NAdam(_) => OptimizerType::NAdam,
            OptimizerKind::RAdam(_) => OptimizerType::RAdam,
        }
    }

    /// The learning rate (`param_group["lr"]`).
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerKind::Sgd(s) => s.lr,
            OptimizerKind::Adam(s) | OptimizerKind::AdamW(s) => s.lr,
            OptimizerKind::RmsProp(s) => s.lr,
            OptimizerKind::Adagrad(s) => s.lr,
            OptimizerKind::Adadelta(s) => s.lr,
            OptimizerKind::Adamax(s) => s.lr,
            OptimizerKind::NAdam(s) => s.lr,
            OptimizerKind::RAdam(s) => s.lr,
        }
    }

    /// Sets the learning rate, as a scheduler does.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            OptimizerKind::Sgd(s) => s.lr = lr,
            OptimizerKind::Adam(s) | OptimizerKind::AdamW(s) => s.lr = lr,
            OptimizerKind::RmsProp(s) => s.lr = lr,
            OptimizerKind::Adagrad(s) => s.lr = lr,
            OptimizerKind::Adadelta(s) => s.lr = lr,
            OptimizerKind::Adamax(s) => s.lr = lr,
            OptimizerKind::NAdam(s) => s.lr = lr,
            OptimizerKind::RAdam(s) => s.lr = lr,
        }
    }

    /// `param_group["momentum"]` of the optimizers that have one (SGD, RMSprop).
    pub fn momentum(&self) -> Option<f64> {
        match self {
            OptimizerKind::Sgd(s) => Some(s.momentum),
            OptimizerKind::RmsProp(s) => Some(s.momentum),
            OptimizerKind::Adam(_)
            | OptimizerKind::AdamW(_)
            | OptimizerKind::Adagrad(_)
            | OptimizerKind::Adadelta(_)
            | OptimizerKind::Adamax(_)
            | OptimizerKind::NAdam(_)
            | OptimizerKind::RAdam(_) => None,
        }
    }

    /// Sets `momentum` (what OneCycleLR cycles for SGD and RMSprop); false when there is none.
    pub fn set_momentum(&mut self, momentum: f64) -> bool {
        match self {
            OptimizerKind::Sgd(s) => s.momentum = momentum,
            OptimizerKind::RmsProp(s) => s.momentum = momentum,
            OptimizerKind::Adam(_)
            | OptimizerKind::AdamW(_)
            | OptimizerKind::Adagrad(_)
            | OptimizerKind::Adadelta(_)
            | OptimizerKind::Adamax(_)
            | OptimizerKind::NAdam(_)
            | OptimizerKind::RAdam(_) => return false,
        }
        true
    }

    /// `param_group["betas"]` of the Adam family.
    pub fn betas(&self) -> Option<(f64, f64)> {
        match self {
            OptimizerKind::Adam(s) | OptimizerKind::AdamW(s) => Some(s.betas),
            OptimizerKind::Adamax(s) => Some(s.betas),
            OptimizerKind::NAdam(s) => Some(s.betas),
            OptimizerKind::RAdam(s) => Some(s.betas),
            OptimizerKind::Sgd(_)
            | OptimizerKind::RmsProp(_)
            | OptimizerKind::Adagrad(_)
            | OptimizerKind::Adadelta(_) => None,
        }
    }

    /// Sets `betas` (OneCycleLR cycles the first); false when the optimizer has none.
    pub fn set_betas(&mut self, betas: (f64, f64)) -> bool {
        match self {
            OptimizerKind::Adam(s) | OptimizerKind::AdamW(s) => s.betas = betas,
            OptimizerKind::Adamax(s) => s.betas = betas,
            OptimizerKind::NAdam(s) => s.betas = betas,
            OptimizerKind::RAdam(s) => s.betas = betas,
            OptimizerKind::Sgd(_)
            | OptimizerKind::RmsProp(_)
            | OptimizerKind::Adagrad(_)
            | OptimizerKind::Adadelta(_) => return false,
        }
        true
    }

    /// Whether the objective is maximized.
    pub fn maximize(&self) -> bool {
        match self {
            OptimizerKind::Sgd(s) => s.maximize,
            OptimizerKind::Adam(s) | OptimizerKind::AdamW(s) => s.maximize,
            OptimizerKind::RmsProp(s) => s.maximize,
            OptimizerKind::Adagrad(s) => s.maximize,
            OptimizerKind::Adadelta(s) => s.maximize,
            OptimizerKind::Adamax(s) => s.maximize,
            OptimizerKind::NAdam(s) => s.maximize,
            OptimizerKind::RAdam(s) => s.maximize,
        }
    }

    /// The hyperparameters as PyTorch's `param_group` dict lists them (its implementation
    /// switches such as `foreach` left out), in PyTorch's order.
    pub fn hyperparameters(&self) -> Vec<(&'static str, HyperValue)> {
        use HyperValue::{Bool, Float};
        // `(name, Make(s.name))` for each `name Make`: the keys are the field names.
        macro_rules! listed {
            ($s:ident: $($field:ident $make:ident),*) => {
                vec![$((stringify!($field), $make($s.$field))),*]
            };
        }
        hyper_fields!(self, s => listed)
    }

    /// Sets the hyperparameter `name` (a key of [`OptimizerKind::hyperparameters`]) to
    /// `value`, as PyTorch's `load_state_dict` replaces a param group's values; false when
    /// the optimizer has no such key or `value` is of another kind.
    pub fn set_hyperparameter(&mut self, name: &str, value: HyperValue) -> bool {
        // The field `name` names, set when `value` converts to its type.
        macro_rules! assigned {
            ($s:ident: $($field:ident $make:ident),*) => {
                match name {
                    $(stringify!($field) => match FromHyper::from_hyper(value) {
                        Some(v) => {
                            $s.$field = v;
                            true
                        }
                        None => false,
                    },)*
                    _ => false,
                }
            };
        }
        hyper_fields!(self, s => assigned)
    }
}

/// Calls `$m!(s: field Kind, ...)` with the hyperparameter fields of the optimizer `$kind`
/// holds, in PyTorch's `param_group` order: the one list that reading and setting them share.
macro_rules! hyper_fields {
    ($kind:expr, $s:ident => $m:ident) => {
        match $kind {
            OptimizerKind::Sgd($s) => $m!($s: lr Float, momentum Float, dampening Float,
                weight_decay Float, nesterov Bool, maximize Bool),
            OptimizerKind::Adam($s) | OptimizerKind::AdamW($s) => $m!($s: lr Float, betas pair,
                eps Float, weight_decay Float, amsgrad Bool, maximize Bool,
                decoupled_weight_decay Bool),
            OptimizerKind::RmsProp($s) => $m!($s: lr Float, momentum Float, alpha Float,
                eps Float, centered Bool, weight_decay Float, maximize Bool),
            OptimizerKind::Adagrad($s) => $m!($s: lr Float, lr_decay Float, eps Float,
                weight_decay Float, initial_accumulator_value Float, maximize Bool),
            OptimizerKind::Adadelta($s) => $m!($s: lr Float, rho Float, eps Float,
                weight_decay Float, maximize Bool),
            OptimizerKind::Adamax($s) => $m!($s: lr Float, betas pair, eps Float,
                weight_decay Float, maximize Bool),
            OptimizerKind::NAdam($s) => $m!($s: lr Float, betas pair, eps Float,
                weight_decay Float, momentum_decay Float, decoupled_weight_decay Bool,
                maximize Bool),
            OptimizerKind::RAdam($s) => $m!($s: lr Float, betas pair, eps Float,
                weight_decay Float, maximize Bool, decoupled_weight_decay Bool),
        }
    };
}
use hyper_fields;

/// `betas` as a hyperparameter value.
fn pair(b: (f64, f64)) -> HyperValue {
    HyperValue::Pair(b.0, b.1)
}

/// A hyperparameter's value as its field's type.
trait FromHyper: Sized {
    fn from_hyper(value: HyperValue) -> Option<Self>;
}

impl FromHyper for f64 {
    fn from_hyper(value: HyperValue) -> Option<f64> {
        match value {
            HyperValue::Float(x) => Some(x),
            HyperValue::Bool(_) | HyperValue::Pair(..) => None,
        }
    }
}

impl FromHyper for bool {
    fn from_hyper(value: HyperValue) -> Option<bool> {
        match value {
            HyperValue::Bool(b) => Some(b),
            HyperValue::Float(_) | HyperValue::Pair(..) => None,
        }
    }
}

impl FromHyper for (f64, f64) {
    fn from_hyper(value: HyperValue) -> Option<(f64, f64)> {
        match value {
            HyperValue::Pair(a, b) => Some((a, b)),
            HyperValue::Float(_) | HyperValue::Bool(_) => None,
        }
    }
}
