//! `optimizer:`: a `type:`-tagged mapping (`sgd`) with its `param_groups`, merged and checked
//! as `torch.optim` does.

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};

use crate::ctx::{Ctx, Path};
use crate::keys::{KeyTable, Keys, TypeNode, TypeTable};
use crate::node::{list, scalar, to_bool, to_f32, to_nonempty_string, to_nonneg_f32, Node, Seed};
use crate::types::{OptimizerKind, OptimizerSpec, ParamGroupSpec, SgdSpec};

static OPTIMIZER_TYPES: TypeTable = TypeTable {
    what: "optimizer",
    names: &[("sgd", "SGD")],
};

static SGD_KEYS: KeyTable = KeyTable::plain(&[
    "type",
    "lr",
    "momentum",
    "dampening",
    "weight_decay",
    "nesterov",
    "maximize",
    "param_groups",
]);
/// Every optimizer's keys (only SGD for now).
static UNION_KEYS: &KeyTable = &SGD_KEYS;
/// Keys of one param group: `params` plus the hyperparameters.
static GROUP_KEYS: KeyTable = KeyTable::plain(&[
    "params",
    "lr",
    "momentum",
    "dampening",
    "weight_decay",
    "nesterov",
    "maximize",
]);

/// `torch.optim.SGD`'s defaults (PyTorch 2.x: `lr=1e-3`).
const SGD_DEFAULTS: SgdSpec = SgdSpec {
    lr: 1e-3,
    momentum: 0.0,
    dampening: 0.0,
    weight_decay: 0.0,
    nesterov: false,
    maximize: false,
};

/// SGD hyperparameters given in one mapping (the optimizer or a group).
#[derive(Debug, Clone, Copy, Default)]
struct SgdGiven {
    lr: Option<f32>,
    momentum: Option<f32>,
    dampening: Option<f32>,
    weight_decay: Option<f32>,
    nesterov: Option<bool>,
    maximize: Option<bool>,
}

impl SgdGiven {
    /// `base` with the given values applied.
    fn over(&self, base: &SgdSpec) -> SgdSpec {
        SgdSpec {
            lr: self.lr.unwrap_or(base.lr),
            momentum: self.momentum.unwrap_or(base.momentum),
            dampening: self.dampening.unwrap_or(base.dampening),
            weight_decay: self.weight_decay.unwrap_or(base.weight_decay),
            nesterov: self.nesterov.unwrap_or(base.nesterov),
            maximize: self.maximize.unwrap_or(base.maximize),
        }
    }

    /// Reads the value of hyperparameter `name` (returns false for other keys).
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
        ctx: &Ctx,
        path: Path,
        name: &str,
    ) -> Result<bool, A::Error> {
        match name {
            "lr" => {
                let expected = "a learning rate >= 0";
                self.lr = Some(map.next_value_seed(scalar(ctx, path, expected, to_nonneg_f32))?);
            }
            "momentum" => {
                let expected = "a momentum >= 0";
                self.momentum =
                    Some(map.next_value_seed(scalar(ctx, path, expected, to_nonneg_f32))?);
            }
            "dampening" => {
                self.dampening = Some(map.next_value_seed(scalar(ctx, path, "a number", to_f32))?);
            }
            "weight_decay" => {
                let expected = "a weight_decay >= 0";
                self.weight_decay =
                    Some(map.next_value_seed(scalar(ctx, path, expected, to_nonneg_f32))?);
            }
            "nesterov" => {
                self.nesterov =
                    Some(map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?);
            }
            "maximize" => {
                self.maximize =
                    Some(map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// PyTorch's nesterov check on the merged values `s`; the key of this mapping to blame.
    fn nesterov_offender(&self, s: &SgdSpec) -> Option<&'static str> {
        if !s.nesterov || (s.momentum > 0.0 && s.dampening == 0.0) {
            return None;
        }
        Some(if self.nesterov.is_some() {
            "nesterov"
        } else if self.momentum.is_some() && s.momentum <= 0.0 {
            "momentum"
        } else if self.dampening.is_some() && s.dampening != 0.0 {
            "dampening"
        } else {
            "params"
        })
    }
}

/// The nesterov error message, at key `key_path`.
fn nesterov_message(key_path: &Path, s: &SgdSpec) -> String {
    format!(
        "{key_path}: nesterov momentum requires momentum > 0 and dampening == 0 \
         (here momentum = {:?}, dampening = {:?})",
        s.momentum, s.dampening
    )
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
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        format!(
            "an optimizer mapping such as {{type: sgd, lr: 0.1}}; optimizer types: {}",
            OPTIMIZER_TYPES.listing()
        )
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<OptimizerSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::tagged(ctx, &self.path, UNION_KEYS);
        let mut kind = None;
        let mut given = SgdGiven::default();
        let mut groups = Vec::new();
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "type" => {
                    let node = TypeNode {
                        ctx,
                        path,
                        table: &OPTIMIZER_TYPES,
                        location: String::new(),
                    };
                    let t = map.next_value_seed(Seed(node))?;
                    keys.set_type(&SGD_KEYS, OPTIMIZER_TYPES.names[t].0)?;
                    kind = Some(t);
                }
                "param_groups" => groups = map.next_value_seed(Seed(GroupsNode { ctx, path }))?,
                name => {
                    if !given.read(&mut map, ctx, path, name)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        if kind.is_none() {
            return Err(OPTIMIZER_TYPES.missing(&keys));
        }
        let base = given.over(&SGD_DEFAULTS);
        if let Some(key) = given.nesterov_offender(&base) {
            let msg = nesterov_message(&self.path.key(key), &base);
            return Err(keys.fail_at_key(key, msg));
        }
        let param_groups = groups
            .into_iter()
            .map(|g| g.merge(ctx, &base))
            .collect::<Result<Vec<_>, A::Error>>()?;
        Ok(OptimizerSpec {
            kind: OptimizerKind::Sgd(base),
            param_groups,
        })
    }
}

/// One group as written, merged once the optimizer's own values are known.
struct GroupGiven {
    path: Path,
    params: Vec<String>,
    given: SgdGiven,
}

impl GroupGiven {
    /// The group with the optimizer's values under its own, checked like the optimizer's.
    fn merge<E: de::Error>(self, ctx: &Ctx, base: &SgdSpec) -> Result<ParamGroupSpec, E> {
        let merged = self.given.over(base);
        if let Some(key) = self.given.nesterov_offender(&merged) {
            let key_path = self.path.key(key);
            let msg = nesterov_message(&key_path, &merged);
            return Err(ctx.fail_at_key(key_path, msg));
        }
        Ok(ParamGroupSpec {
            params: self.params,
            kind: OptimizerKind::Sgd(merged),
        })
    }
}

/// `optimizer.param_groups`: a list of groups (may be empty).
struct GroupsNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for GroupsNode<'_> {
    type Out = Vec<GroupGiven>;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        "a list of param groups such as {params: [\"0.*\"], lr: 0.01}".into()
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<GroupGiven>, A::Error> {
        let mut groups = Vec::new();
        loop {
            let node = GroupNode {
                ctx: self.ctx,
                path: self.path.index(groups.len()),
            };
            match seq.next_element_seed(Seed(node))? {
                Some(g) => groups.push(g),
                None => break,
            }
        }
        Ok(groups)
    }
}

/// `optimizer.param_groups[i]`.
struct GroupNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for GroupNode<'_> {
    type Out = GroupGiven;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        format!("a param group mapping with keys {}", GROUP_KEYS.listing())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<GroupGiven, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &GROUP_KEYS, self.path.to_string());
        let mut params = None;
        let mut given = SgdGiven::default();
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
                    if !given.read(&mut map, ctx, path, name)? {
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
