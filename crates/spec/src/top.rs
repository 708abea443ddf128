//! The untagged sections: the top level, `data` and its sources, `model` (with `input`,
//! `layers` and `init`) and `train`.

use std::path::PathBuf;

use serde::de::{IgnoredAny, MapAccess, SeqAccess};

use crate::ctx::{Ctx, Path};
use crate::keys::{KeyTable, Keys};
use crate::layer::LayerNode;
use crate::loss::LossNode;
use crate::node::{
    list, scalar, to_bool, to_nonempty_string, to_positive_u64, to_positive_usize, to_u64, Node,
    Problem, Raw, Seed,
};
use crate::optim::OptimizerNode;
use crate::types::{DataSpec, InitSpec, LayerSpec, ModelSpec, SourceSpec, Spec, TrainSpec};

static TOP_KEYS: KeyTable = KeyTable {
    valid: &["seed", "data", "model", "loss", "optimizer", "train"],
    aliases: &[],
    unsupported: &[(
        "scheduler",
        "`scheduler` is not supported yet (the learning rate stays constant); remove it",
    )],
};

static DATA_KEYS: KeyTable = KeyTable {
    valid: &[
        "train",
        "valid",
        "batch_size",
        "shuffle",
        "drop_last",
        "standardize",
    ],
    aliases: &[],
    unsupported: &[(
        "split",
        "`split` is not supported yet; give a separate `valid:` source instead",
    )],
};

static SOURCE_KEYS: KeyTable = KeyTable::plain(&["csv", "target", "features"]);
static MODEL_KEYS: KeyTable = KeyTable::plain(&["input", "layers", "init"]);
static INIT_KEYS: KeyTable = KeyTable::plain(&["from"]);
static TRAIN_KEYS: KeyTable = KeyTable::plain(&["epochs", "steps"]);

/// The whole document.
pub(crate) struct SpecNode<'a> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// The root path.
    pub(crate) path: Path,
}

impl<'de> Node<'de> for SpecNode<'_> {
    type Out = Spec;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        format!("a mapping with keys {}", TOP_KEYS.listing())
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Spec, Problem> {
        match raw {
            Raw::Null => Err(Problem::Bare(format!(
                "the spec is empty; expected a mapping with keys {}",
                TOP_KEYS.listing()
            ))),
            _ => Err(Problem::Type),
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Spec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &TOP_KEYS, "the top-level mapping".into());
        let (mut seed, mut data, mut model, mut loss, mut optimizer, mut train) =
            (None, None, None, None, None, None);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "seed" => {
                    seed = Some(map.next_value_seed(scalar(
                        ctx,
                        path,
                        "a non-negative integer",
                        to_u64,
                    ))?)
                }
                "data" => data = Some(map.next_value_seed(Seed(DataNode { ctx, path }))?),
                "model" => model = Some(map.next_value_seed(Seed(ModelNode { ctx, path }))?),
                "loss" => loss = Some(map.next_value_seed(Seed(LossNode { ctx, path }))?),
                "optimizer" => {
                    optimizer = Some(map.next_value_seed(Seed(OptimizerNode { ctx, path }))?)
                }
                "train" => train = Some(map.next_value_seed(Seed(TrainNode { ctx, path }))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Spec {
            seed: seed.unwrap_or(0),
            data: data.ok_or_else(|| keys.missing("data"))?,
            model: model.ok_or_else(|| keys.missing("model"))?,
            loss: loss.ok_or_else(|| keys.missing("loss"))?,
            optimizer: optimizer.ok_or_else(|| keys.missing("optimizer"))?,
            train: train.ok_or_else(|| keys.missing("train"))?,
        })
    }
}

/// `data:`.
struct DataNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for DataNode<'_> {
    type Out = DataSpec;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        format!("a mapping with keys {}", DATA_KEYS.listing())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &DATA_KEYS, self.path.to_string());
        let mut train = None;
        let mut valid = None;
        let mut batch_size = 1;
        let (mut shuffle, mut drop_last, mut standardize) = (false, false, false);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "train" => {
                    let node = SourceNode {
                        ctx,
                        path,
                        nullable: false,
                    };
                    train = map.next_value_seed(Seed(node))?;
                }
                "valid" => {
                    let node = SourceNode {
                        ctx,
                        path,
                        nullable: true,
                    };
                    valid = map.next_value_seed(Seed(node))?;
                }
                "batch_size" => {
                    let expected = "a positive integer";
                    batch_size =
                        map.next_value_seed(scalar(ctx, path, expected, to_positive_usize))?;
                }
                "shuffle" => {
                    shuffle = map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?
                }
                "drop_last" => {
                    drop_last = map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?
                }
                "standardize" => {
                    standardize = map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(DataSpec {
            train: train.ok_or_else(|| keys.missing("train"))?,
            valid,
            batch_size,
            shuffle,
            drop_last,
            standardize,
        })
    }
}

/// A data source: `{csv: PATH, target: NAME or [NAMES], features: [NAMES]}`.
struct SourceNode<'a> {
    ctx: &'a Ctx,
    path: Path,
    nullable: bool,
}

impl<'de> Node<'de> for SourceNode<'_> {
    type Out = Option<SourceSpec>;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        "a mapping {csv: PATH, target: NAME or [NAMES], features: [NAMES]}".into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        match raw {
            Raw::Null if self.nullable => Ok(None),
            _ => Err(Problem::Type),
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &SOURCE_KEYS, self.path.to_string());
        let (mut csv, mut target, mut features) = (None, None, None);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "csv" => {
                    let expected = "a path to a CSV file";
                    let p = map.next_value_seed(scalar(ctx, path, expected, to_nonempty_string))?;
                    csv = Some(PathBuf::from(p));
                }
                "target" => target = Some(map.next_value_seed(Seed(TargetNode { ctx, path }))?),
                "features" => {
                    let seed = list(
                        ctx,
                        path,
                        "a non-empty list of column names",
                        "a column name",
                        to_nonempty_string,
                    );
                    features = map.next_value_seed(seed.nullable().seed())?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(SourceSpec {
            csv: csv.ok_or_else(|| keys.missing("csv"))?,
            target: target.ok_or_else(|| keys.missing("target"))?,
            features,
        }))
    }
}

/// `target: NAME` or `target: [NAMES]`.
struct TargetNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for TargetNode<'_> {
    type Out = Vec<String>;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        "a column name or a non-empty list of column names".into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Vec<String>, Problem> {
        to_nonempty_string(raw).map(|s| vec![s])
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<String>, A::Error> {
        let node = list(
            self.ctx,
            self.path.clone(),
            &<Self as Node<'de>>::expected(&self),
            "a column name",
            to_nonempty_string,
        )
        .seed()
        .0;
        Ok(node.seq(seq)?.unwrap_or_default())
    }
}

/// `model:`.
struct ModelNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for ModelNode<'_> {
    type Out = ModelSpec;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        format!("a mapping with keys {}", MODEL_KEYS.listing())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModelSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &MODEL_KEYS, self.path.to_string());
        let (mut input, mut layers, mut init) = (None, None, InitSpec::Default);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "input" => {
                    let seed = list(
                        ctx,
                        path,
                        "a non-empty list of positive integers (one sample's shape)",
                        "a positive integer",
                        to_positive_usize,
                    );
                    input = map.next_value_seed(seed.seed())?;
                }
                "layers" => layers = Some(map.next_value_seed(Seed(LayersNode { ctx, path }))?),
                "init" => init = map.next_value_seed(Seed(InitNode { ctx, path }))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(ModelSpec {
            input: input.ok_or_else(|| keys.missing("input"))?,
            layers: layers.ok_or_else(|| keys.missing("layers"))?,
            init,
        })
    }
}

/// `model.layers`: a non-empty list of layer mappings with unique names.
struct LayersNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for LayersNode<'_> {
    type Out = Vec<LayerSpec>;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        "a non-empty list of layers such as {type: linear, out: 16}".into()
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<LayerSpec>, A::Error> {
        let mut layers = Vec::new();
        let mut names = Vec::new();
        loop {
            let node = LayerNode {
                ctx: self.ctx,
                path: self.path.index(layers.len()),
                index: layers.len(),
                names: &mut names,
            };
            match seq.next_element_seed(Seed(node))? {
                Some(layer) => layers.push(layer),
                None => break,
            }
        }
        if layers.is_empty() {
            let msg = format!("must not be empty; expected {}", self.expected());
            return Err(self.fail(&Raw::Seq, Problem::Msg(msg)));
        }
        Ok(layers)
    }
}

/// `model.init`: `{from: PATH}`, or `null` for PyTorch's default init.
struct InitNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for InitNode<'_> {
    type Out = InitSpec;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        "a mapping {from: PATH} (a safetensors file)".into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<InitSpec, Problem> {
        match raw {
            Raw::Null => Ok(InitSpec::Default),
            _ => Err(Problem::Type),
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<InitSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &INIT_KEYS, self.path.to_string());
        let mut from = None;
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match k.name() {
                "from" => {
                    let expected = "a path to a safetensors file";
                    let p = map.next_value_seed(scalar(ctx, path, expected, to_nonempty_string))?;
                    from = Some(PathBuf::from(p));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(InitSpec::From(from.ok_or_else(|| keys.missing("from"))?))
    }
}

/// `train:`.
struct TrainNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for TrainNode<'_> {
    type Out = TrainSpec;
    fn ctx(&self) -> &Ctx {
        self.ctx
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn expected(&self) -> String {
        format!("a mapping with keys {}", TRAIN_KEYS.listing())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<TrainSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &TRAIN_KEYS, self.path.to_string());
        let (mut epochs, mut steps) = (None, None);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            let value = match k.name() {
                "epochs" | "steps" => {
                    let expected = "a positive integer";
                    Some(map.next_value_seed(scalar(ctx, path, expected, to_positive_u64))?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
            match k.name() {
                "epochs" => epochs = value,
                "steps" => steps = value,
                _ => {}
            }
        }
        if epochs.is_none() && steps.is_none() {
            return Err(keys.fail_here(format!(
                "{} needs `epochs` or `steps` (or both, whichever ends first); neither is given",
                self.path
            )));
        }
        Ok(TrainSpec { epochs, steps })
    }
}
