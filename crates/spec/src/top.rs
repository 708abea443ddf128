//! The untagged sections: the top level, `data` and its sources, `model` (with `input`,
//! `layers` and `init`) and `train`.

use std::path::PathBuf;

use serde::de::{IgnoredAny, MapAccess, SeqAccess};

use crate::ctx::{shown, Ctx, Path};
use crate::daily::{check_monitor, EarlyStoppingNode, SplitNode, StandardizeNode};
use crate::keys::{KeyTable, Keys};
use crate::layer::{resolve_nodes, LayerListNode, NodeListNode};
use crate::loss::LossNode;
use crate::node::{
    ctx_and_path, list, scalar, to_bool, to_nonempty_string, to_nonneg_f32, to_positive_u64,
    to_positive_usize, to_u64, Node, Problem, Raw, Seed,
};
use crate::objective::{desugar, ParamsNode};
use crate::optim::OptimizerNode;
use crate::sched::{to_choice, SchedulerNode, TrainStepKeys};
use crate::suggest::did_you_mean;
use crate::types::{
    DataSpec, InitSpec, ModelBody, ModelSpec, Precision, SourceSpec, Spec, SplitSpec,
    SyntheticKind, SyntheticSpec, TrainSpec,
};
use crate::vocab::{KeyTables, SourceFormat, Vocabulary};

static TOP_KEYS: KeyTable = KeyTable::plain(&[
    "seed",
    "data",
    "model",
    "loss",
    "params",
    "objective",
    "optimizer",
    "scheduler",
    "train",
]);

static DATA_KEYS: KeyTable = KeyTable::plain(&[
    "train",
    "valid",
    "split",
    "batch_size",
    "shuffle",
    "drop_last",
    "standardize",
]);

static SOURCE_KEYS: KeyTable = KeyTable::plain(&[
    "csv",
    "npy",
    "npz",
    "idx",
    "synthetic",
    "target",
    "features",
]);
static NPY_KEYS: KeyTable = KeyTable::plain(&["features", "target"]);
static IDX_KEYS: KeyTable = KeyTable::plain(&["images", "labels"]);
static SYNTHETIC_KEYS: KeyTable =
    KeyTable::plain(&["kind", "samples", "features", "classes", "noise"]);
static MODEL_KEYS: KeyTable = KeyTable::plain(&["input", "layers", "nodes", "output", "init"]);
static INIT_KEYS: KeyTable = KeyTable::plain(&["from"]);
static TRAIN_KEYS: KeyTable = KeyTable::plain(&[
    "epochs",
    "steps",
    "accumulate",
    "clip_grad_norm",
    "clip_grad_value",
    "checkpoint_every",
    "early_stopping",
    "keep_best",
    "precision",
    "sync_batch_norm",
]);

/// The whole document.
pub(crate) struct SpecNode<'a> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// The root path.
    pub(crate) path: Path,
}

impl<'de> Node<'de> for SpecNode<'_> {
    type Out = Spec;
    ctx_and_path!();
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
        let mut keys = Keys::named(ctx, &self.path, &TOP_KEYS, "the top-level mapping".into());
        let (mut seed, mut data, mut model, mut loss, mut optimizer, mut train) =
            (None, None, None, None, None, None);
        let mut scheduler = None;
        let (mut params, mut objective) = (None, None);
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
                "params" => {
                    let node = ParamsNode {
                        ctx,
                        path: path.clone(),
                    };
                    params = Some((map.next_value_seed(Seed(node))?, path));
                }
                "objective" => {
                    let conv = |raw: &Raw| match raw {
                        Raw::Str(s) => Ok(s.clone()),
                        Raw::Int(_) | Raw::Float(_) => Ok(raw.key_text().unwrap_or_default()),
                        _ => Err(Problem::Type),
                    };
                    let text = map.next_value_seed(scalar(
                        ctx,
                        path.clone(),
                        "an expression over the params (`4 * x^2`)",
                        conv,
                    ))?;
                    objective = Some((text, path));
                }
                "optimizer" => {
                    optimizer = Some(map.next_value_seed(Seed(OptimizerNode { ctx, path }))?)
                }
                "train" => train = Some(map.next_value_seed(Seed(TrainNode { ctx, path }))?),
                "scheduler" => {
                    let node = SchedulerNode {
                        ctx,
                        path,
                        nested: false,
                    };
                    scheduler = map.next_value_seed(Seed(node))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (data, model, loss) = match (params, objective) {
            (None, None) => (
                data.ok_or_else(|| keys.missing("data"))?,
                model.ok_or_else(|| keys.missing("model"))?,
                loss.ok_or_else(|| keys.missing("loss"))?,
            ),
            (Some((params, _)), Some((text, path))) => {
                let given = [
                    ("data", data.is_some()),
                    ("model", model.is_some()),
                    ("loss", loss.is_some()),
                ];
                if let Some((key, _)) = given.iter().find(|(_, given)| *given) {
                    return Err(ctx.fail_at_key(
                        self.path.key(key),
                        format!(
                            "`{key}` does not go with `objective`: an objective spec optimizes its \
                             `params` directly; remove `{key}`, or `params` and `objective`"
                        ),
                    ));
                }
                let parts = desugar(params, text).map_err(|m| ctx.fail_at_key(path, m))?;
                (parts.data, parts.model, parts.loss)
            }
            (Some((_, path)), None) => {
                return Err(ctx.fail_at_key(
                    path,
                    "`params` needs an `objective`: the expression over them to minimize".into(),
                ))
            }
            (None, Some((_, path))) => {
                return Err(ctx.fail_at_key(
                    path,
                    "`objective` needs `params`: the parameters it reads, with initial values \
                     (`params: {x: 2.0}`)"
                        .into(),
                ))
            }
        };
        let spec = Spec {
            seed: seed.unwrap_or(0),
            data,
            model,
            loss,
            optimizer: optimizer.ok_or_else(|| keys.missing("optimizer"))?,
            scheduler,
            train: train.ok_or_else(|| keys.missing("train"))?,
        };
        let has_valid = spec.data.valid.is_some() || spec.data.split.is_some();
        if let Some((path, message)) = check_monitor(&spec.train, has_valid, &spec.loss) {
            return Err(ctx.fail_at_key(path, message));
        }
        Ok(spec)
    }
}

/// `data:`.
struct DataNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for DataNode<'_> {
    type Out = DataSpec;
    ctx_and_path!();
    fn expected(&self) -> String {
        format!("a mapping with keys {}", DATA_KEYS.listing())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &DATA_KEYS);
        let mut train = None;
        let mut valid = None;
        let mut split: Option<(SplitSpec, String)> = None;
        let mut batch_size = 1;
        let (mut shuffle, mut drop_last, mut standardize) = (false, false, None);
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
                "split" => {
                    let value = map.next_value_seed(Seed(SplitNode { ctx, path }))?;
                    split = Some((value, k.written.clone()));
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
                    standardize = map.next_value_seed(Seed(StandardizeNode { ctx, path }))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let (Some((_, written)), Some(_)) = (&split, &valid) {
            return Err(keys.fail_at_key(
                written,
                format!(
                    "{}.{written}: `split` and `valid` are both given; give one: `valid` for a \
                     separate validation set, or `split` to hold out part of `train`",
                    self.path
                ),
            ));
        }
        Ok(DataSpec {
            train: train.ok_or_else(|| keys.missing("train"))?,
            valid,
            batch_size,
            shuffle,
            drop_last,
            standardize,
            split: split.map(|(split, _)| split),
        })
    }
}

impl KeyTables for SourceFormat {
    fn key_table(self) -> &'static KeyTable {
        static CSV: KeyTable = KeyTable::plain(&["csv", "target", "features"]);
        static NPY: KeyTable = KeyTable::plain(&["npy"]);
        static NPZ: KeyTable = KeyTable::plain(&["npz", "features", "target"]);
        static IDX: KeyTable = KeyTable::plain(&["idx"]);
        static SYNTHETIC: KeyTable = KeyTable::plain(&["synthetic"]);
        match self {
            SourceFormat::Csv => &CSV,
            SourceFormat::Npy => &NPY,
            SourceFormat::Npz => &NPZ,
            SourceFormat::Idx => &IDX,
            SourceFormat::Synthetic => &SYNTHETIC,
        }
    }
}

/// `csv, npy, npz, idx, synthetic`: the keys of which a source names exactly one.
fn source_formats() -> String {
    let names: Vec<&str> = SourceFormat::ALL.iter().map(|f| f.name()).collect();
    names.join(", ")
}

/// What a source's format key held, before the source's other keys are checked against it.
enum Format {
    Csv(PathBuf),
    Npy { features: PathBuf, target: PathBuf },
    Npz(PathBuf),
    Idx { images: PathBuf, labels: PathBuf },
    Synthetic(SyntheticSpec),
}

impl Format {
    /// Its entry in the vocabulary.
    fn format(&self) -> SourceFormat {
        match self {
            Format::Csv(_) => SourceFormat::Csv,
            Format::Npy { .. } => SourceFormat::Npy,
            Format::Npz(_) => SourceFormat::Npz,
            Format::Idx { .. } => SourceFormat::Idx,
            Format::Synthetic(_) => SourceFormat::Synthetic,
        }
    }
}

/// A data source: exactly one of `csv`, `npy`, `npz`, `idx`, `synthetic`, with `target` and
/// `features` where the format has them.
struct SourceNode<'a> {
    ctx: &'a Ctx,
    path: Path,
    nullable: bool,
}

impl<'de> Node<'de> for SourceNode<'_> {
    type Out = Option<SourceSpec>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a mapping with one of {csv: PATH, target: NAME or [NAMES], features: [NAMES]}, \
         {npy: {features: PATH, target: PATH}}, {npz: PATH, features: NAME, target: NAME}, \
         {idx: {images: PATH, labels: PATH}}, {synthetic: {kind: KIND, ...}}"
            .into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        match raw {
            Raw::Null if self.nullable => Ok(None),
            _ => Err(Problem::Type),
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &SOURCE_KEYS);
        // Each value with the key as written, so that a key that does not fit the format can
        // be pointed at once the whole mapping is read.
        let mut format: Option<(Format, String)> = None;
        let mut target: Option<(Names, String)> = None;
        let mut features: Option<(Option<Names>, String)> = None;
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            let read = match k.name() {
                "csv" | "npz" => {
                    let expected = if k.name() == "csv" {
                        "a path to a CSV file"
                    } else {
                        "a path to an .npz file"
                    };
                    let p = map.next_value_seed(scalar(ctx, path, expected, to_nonempty_string))?;
                    Some(if k.name() == "csv" {
                        Format::Csv(PathBuf::from(p))
                    } else {
                        Format::Npz(PathBuf::from(p))
                    })
                }
                "npy" => {
                    let (features, target) = map.next_value_seed(Seed(FilePairNode {
                        ctx,
                        path,
                        pair: &NPY_PAIR,
                    }))?;
                    Some(Format::Npy { features, target })
                }
                "idx" => {
                    let (images, labels) = map.next_value_seed(Seed(FilePairNode {
                        ctx,
                        path,
                        pair: &IDX_PAIR,
                    }))?;
                    Some(Format::Idx { images, labels })
                }
                "synthetic" => Some(Format::Synthetic(
                    map.next_value_seed(Seed(SyntheticNode { ctx, path }))?,
                )),
                "target" => {
                    let node = NamesNode {
                        ctx,
                        path,
                        nullable: false,
                    };
                    let names = map.next_value_seed(Seed(node))?;
                    target = names.map(|n| (n, k.written.clone()));
                    None
                }
                "features" => {
                    let node = NamesNode {
                        ctx,
                        path,
                        nullable: true,
                    };
                    features = Some((map.next_value_seed(Seed(node))?, k.written.clone()));
                    None
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
            if let Some(read) = read {
                if let Some((_, first)) = &format {
                    return Err(keys.fail_at_key(
                        &k.written,
                        format!(
                            "{} gives both `{first}` and `{}`; a source is exactly one of {}",
                            self.path,
                            k.written,
                            source_formats()
                        ),
                    ));
                }
                format = Some((read, k.written.clone()));
            }
        }
        let Some((format, _)) = format else {
            return Err(keys.fail_here(format!(
                "{} needs one of the keys {} (where the data comes from), e.g. \
                 {{csv: data.csv, target: y}}",
                self.path,
                source_formats()
            )));
        };
        // `target` and `features` belong only to the formats whose keys list them.
        let valid = format.format().keys();
        let stray = [
            target.as_ref().map(|(_, w)| ("target", w)),
            features.as_ref().map(|(_, w)| ("features", w)),
        ]
        .into_iter()
        .flatten()
        .find(|(key, _)| !valid.contains(key))
        .map(|(_, written)| written.clone());
        let reject_stray = |name: &str, hint: &str| match &stray {
            Some(written) => Err(keys.fail_at_key(
                written,
                format!(
                    "`{written}` does not belong in {} with `{name}`; {hint}",
                    self.path
                ),
            )),
            None => Ok(()),
        };
        let source = match format {
            Format::Csv(path) => {
                let (target, _) = target.ok_or_else(|| keys.missing("target"))?;
                SourceSpec::Csv {
                    path,
                    target: target.into_vec(),
                    features: features.and_then(|(f, _)| f).map(Names::into_vec),
                }
            }
            Format::Npz(path) => {
                let (target, target_key) = target.ok_or_else(|| keys.missing("target"))?;
                let (features, features_key) = match features {
                    Some((Some(f), w)) => (f, w),
                    _ => return Err(keys.missing("features")),
                };
                let one = |names: Names, key: &str| match names {
                    Names::One(n) => Ok(n),
                    Names::Many(mut v) if v.len() == 1 => Ok(v.remove(0)),
                    Names::Many(_) => Err(keys.fail_at_key(
                        key,
                        format!(
                            "{}.{key}: with `npz`, `{key}` is the name of one array in the \
                             archive (the keyword given to np.savez), not a list",
                            self.path
                        ),
                    )),
                };
                SourceSpec::Npz {
                    path,
                    target: one(target, &target_key)?,
                    features: one(features, &features_key)?,
                }
            }
            Format::Npy { features, target } => {
                reject_stray(
                    "npy",
                    "give both files inside it: npy: {features: x.npy, target: y.npy}",
                )?;
                SourceSpec::Npy { features, target }
            }
            Format::Idx { images, labels } => {
                reject_stray(
                    "idx",
                    "the images are the features and the labels the target: \
                     idx: {images: PATH, labels: PATH}",
                )?;
                SourceSpec::Idx { images, labels }
            }
            Format::Synthetic(spec) => {
                reject_stray("synthetic", "a generated data set has no columns to choose")?;
                SourceSpec::Synthetic(spec)
            }
        };
        Ok(Some(source))
    }
}

/// `target:` or `features:` — one name, or a non-empty list of names.
enum Names {
    /// A single name, as `target: y`.
    One(String),
    /// A list, as `features: [a, b]`.
    Many(Vec<String>),
}

impl Names {
    /// The names as a list.
    fn into_vec(self) -> Vec<String> {
        match self {
            Names::One(n) => vec![n],
            Names::Many(v) => v,
        }
    }
}

/// `target: NAME`, `target: [NAMES]`, `features: [NAMES]` (`null` too when `nullable`).
struct NamesNode<'a> {
    ctx: &'a Ctx,
    path: Path,
    nullable: bool,
}

impl<'de> Node<'de> for NamesNode<'_> {
    type Out = Option<Names>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a name or a non-empty list of names (CSV columns, or one array of an npz file)".into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        match raw {
            Raw::Null if self.nullable => Ok(None),
            _ => to_nonempty_string(raw).map(|s| Some(Names::One(s))),
        }
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Out, A::Error> {
        let node = list(
            self.ctx,
            self.path.clone(),
            &<Self as Node<'de>>::expected(&self),
            "a name",
            to_nonempty_string,
        )
        .seed()
        .0;
        Ok(node.seq(seq)?.map(Names::Many))
    }
}

/// The two keys of a mapping of two files: `npy: {features, target}`, `idx: {images, labels}`.
struct FilePair {
    /// The keys, in the order the pair is returned.
    keys: &'static KeyTable,
    /// What a value is, e.g. "a path to an .npy file".
    expected: &'static str,
}

static NPY_PAIR: FilePair = FilePair {
    keys: &NPY_KEYS,
    expected: "a path to an .npy file",
};
static IDX_PAIR: FilePair = FilePair {
    keys: &IDX_KEYS,
    expected: "a path to an IDX file (gzipped or not)",
};

/// A mapping of exactly the two keys of `pair`, each a path.
struct FilePairNode<'a> {
    ctx: &'a Ctx,
    path: Path,
    pair: &'static FilePair,
}

impl<'de> Node<'de> for FilePairNode<'_> {
    type Out = (PathBuf, PathBuf);
    ctx_and_path!();
    fn expected(&self) -> String {
        let k = self.pair.keys.valid;
        format!("a mapping {{{}: PATH, {}: PATH}}", k[0], k[1])
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let names = self.pair.keys.valid;
        let mut keys = Keys::new(ctx, &self.path, self.pair.keys);
        let mut files: [Option<PathBuf>; 2] = [None, None];
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            match names.iter().position(|n| *n == k.name()) {
                Some(i) => {
                    let seed = scalar(ctx, path, self.pair.expected, to_nonempty_string);
                    files[i] = Some(PathBuf::from(map.next_value_seed(seed)?));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let [first, second] = files;
        Ok((
            first.ok_or_else(|| keys.missing(names[0]))?,
            second.ok_or_else(|| keys.missing(names[1]))?,
        ))
    }
}

/// The synthetic generators' names, in the order of [`SYNTHETIC_KINDS`]'s values.
const SYNTHETIC_NAMES: &[&str] = &["blobs", "moons", "spirals", "linear"];
/// The synthetic generators.
const SYNTHETIC_KINDS: &[SyntheticKind] = &[
    SyntheticKind::Blobs,
    SyntheticKind::Moons,
    SyntheticKind::Spirals,
    SyntheticKind::Linear,
];
/// The most values (samples × features) a synthetic set may have: 2^30, 4 GiB of f32.
const SYNTHETIC_MAX_VALUES: u128 = 1 << 30;

/// `synthetic: {kind, samples, features, classes, noise}`.
struct SyntheticNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for SyntheticNode<'_> {
    type Out = SyntheticSpec;
    ctx_and_path!();
    fn expected(&self) -> String {
        format!(
            "a mapping with keys {} (kind: {})",
            SYNTHETIC_KEYS.listing(),
            SYNTHETIC_NAMES.join(", ")
        )
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<SyntheticSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &SYNTHETIC_KEYS);
        let mut kind = None;
        let (mut samples, mut features, mut classes, mut noise) = (None, None, None, None);
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            let written = k.written.clone();
            match k.name() {
                "kind" => {
                    let expected = format!("one of {}", SYNTHETIC_NAMES.join(", "));
                    let conv = |raw: &Raw| match raw {
                        Raw::Str(s) => match SYNTHETIC_NAMES.iter().position(|n| n == s) {
                            Some(i) => Ok(SYNTHETIC_KINDS[i]),
                            None => Err(Problem::Msg(format!(
                                "unknown synthetic kind `{}`{}; valid: {}",
                                shown(s),
                                did_you_mean(s, SYNTHETIC_NAMES),
                                SYNTHETIC_NAMES.join(", ")
                            ))),
                        },
                        _ => Err(Problem::Type),
                    };
                    kind = Some(map.next_value_seed(scalar(ctx, path, &expected, conv))?);
                }
                "samples" | "features" | "classes" => {
                    let seed = scalar(ctx, path, "a positive integer", to_positive_usize);
                    let value = Some((map.next_value_seed(seed)?, written));
                    match k.name() {
                        "samples" => samples = value,
                        "features" => features = value,
                        _ => classes = value,
                    }
                }
                "noise" => {
                    let expected = "a number >= 0 (the noise's standard deviation)";
                    noise =
                        Some(map.next_value_seed(scalar(ctx, path, expected, to_nonneg_f32))?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| keys.missing("kind"))?;
        let name = SYNTHETIC_NAMES[SYNTHETIC_KINDS.iter().position(|k| *k == kind).unwrap_or(0)];
        let at = |(_, written): &(usize, String), message: String| -> A::Error {
            keys.fail_at_key(written, format!("{}.{written}: {message}", self.path))
        };
        let two_d = matches!(kind, SyntheticKind::Moons | SyntheticKind::Spirals);
        if let Some(f) = features.as_ref().filter(|f| two_d && f.0 != 2) {
            return Err(at(
                f,
                format!(
                    "`{name}` is 2-D: features must be 2 (or left out), not {}",
                    f.0
                ),
            ));
        }
        match (kind, &classes) {
            (SyntheticKind::Linear, Some(c)) => {
                return Err(at(
                    c,
                    "`linear` makes a regression target and has no classes; remove `classes`"
                        .into(),
                ))
            }
            (SyntheticKind::Moons, Some(c)) if c.0 != 2 => {
                return Err(at(
                    c,
                    format!(
                        "`moons` has 2 classes: classes must be 2 (or left out), not {}",
                        c.0
                    ),
                ))
            }
            (SyntheticKind::Blobs | SyntheticKind::Spirals, Some(c)) if c.0 < 2 => {
                return Err(at(
                    c,
                    format!("`{name}` needs at least 2 classes, not {}", c.0),
                ))
            }
            _ => {}
        }
        let samples_n = samples.as_ref().map_or(1000, |s| s.0);
        let features_n = features.as_ref().map_or(2, |f| f.0);
        if let Some(c) = classes.as_ref().filter(|c| c.0 > samples_n) {
            return Err(at(
                c,
                format!(
                    "{} classes for {samples_n} samples; every class needs at least one sample, \
                     so use at most {samples_n} classes or more samples",
                    c.0
                ),
            ));
        }
        if (samples_n as u128) * (features_n as u128) > SYNTHETIC_MAX_VALUES {
            let message = format!(
                "{samples_n} samples × {features_n} features is more than 2^30 values \
                 (4 GiB); make the data set smaller"
            );
            return Err(match samples.as_ref().or(features.as_ref()) {
                Some(key) => at(key, message),
                None => keys.fail_here(message),
            });
        }
        let (default_classes, default_noise) = match kind {
            SyntheticKind::Blobs => (3, 1.0),
            SyntheticKind::Moons => (2, 0.1),
            SyntheticKind::Spirals => (3, 0.05),
            SyntheticKind::Linear => (0, 0.1),
        };
        Ok(SyntheticSpec {
            kind,
            samples: samples_n,
            features: features_n,
            classes: classes.map_or(default_classes, |c| c.0),
            noise: noise.unwrap_or(default_noise),
        })
    }
}

/// `model:`.
struct ModelNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for ModelNode<'_> {
    type Out = ModelSpec;
    ctx_and_path!();
    fn expected(&self) -> String {
        format!("a mapping with keys {}", MODEL_KEYS.listing())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModelSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &MODEL_KEYS);
        let (mut input, mut layers, mut init) = (None, None, InitSpec::Default);
        let (mut nodes, mut output) = (None, None);
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
                "layers" => {
                    layers = Some(map.next_value_seed(Seed(LayerListNode { ctx, path }))?);
                }
                "nodes" => {
                    let node = NodeListNode {
                        ctx,
                        path: path.clone(),
                    };
                    nodes = Some((path, map.next_value_seed(Seed(node))?));
                }
                "output" => {
                    let expected = "the name of a node of model.nodes";
                    let seed = scalar(ctx, path.clone(), expected, to_nonempty_string);
                    output = Some((path, map.next_value_seed(seed)?));
                }
                "init" => init = map.next_value_seed(Seed(InitNode { ctx, path }))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let body = match (layers, nodes) {
            (Some(_), Some(_)) => {
                let message = format!(
                    "{}: give `layers` (a chain) or `nodes` (a graph), not both",
                    self.path
                );
                return Err(keys.fail_at_key("nodes", message));
            }
            (Some(layers), None) => {
                if output.is_some() {
                    let message = format!(
                        "{}.output: `output` names a node of model.nodes; with `layers` the output is the last layer's",
                        self.path
                    );
                    return Err(keys.fail_at_key("output", message));
                }
                ModelBody::Layers(layers)
            }
            (None, Some((path, nodes))) => {
                let graph = resolve_nodes(&path, nodes, output)
                    .map_err(|(at, message)| ctx.fail_at_key(at, message))?;
                ModelBody::Nodes(graph)
            }
            (None, None) => return Err(keys.missing("layers")),
        };
        Ok(ModelSpec {
            input: input.ok_or_else(|| keys.missing("input"))?,
            body,
            init,
        })
    }
}

/// `model.init`: `{from: PATH}`, or `null` for PyTorch's default init.
struct InitNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for InitNode<'_> {
    type Out = InitSpec;
    ctx_and_path!();
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
        let mut keys = Keys::new(ctx, &self.path, &INIT_KEYS);
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
    ctx_and_path!();
    fn expected(&self) -> String {
        format!("a mapping with keys {}", TRAIN_KEYS.listing())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<TrainSpec, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(ctx, &self.path, &TRAIN_KEYS);
        let (mut epochs, mut steps) = (None, None);
        let (mut early_stopping, mut keep_best) = (None, false);
        let mut precision = Precision::Fp32;
        let mut sync_batch_norm = false;
        let mut step_keys = TrainStepKeys::default();
        while let Some(k) = keys.next(&mut map)? {
            let path = self.path.key(&k.written);
            let value = match k.name() {
                "epochs" | "steps" => {
                    let expected = "a positive integer";
                    Some(map.next_value_seed(scalar(ctx, path, expected, to_positive_u64))?)
                }
                "early_stopping" => {
                    early_stopping = map.next_value_seed(Seed(EarlyStoppingNode { ctx, path }))?;
                    None
                }
                "keep_best" => {
                    keep_best = map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?;
                    None
                }
                "sync_batch_norm" => {
                    sync_batch_norm =
                        map.next_value_seed(scalar(ctx, path, "a boolean", to_bool))?;
                    None
                }
                "precision" => {
                    let choices = Precision::ALL.map(|p| (p.name(), p));
                    let conv = |raw: &Raw| to_choice(raw, &choices);
                    precision = map.next_value_seed(scalar(ctx, path, "fp32 or bf16", conv))?;
                    None
                }
                name => {
                    if !step_keys.read(&mut map, ctx, path, name)? {
                        map.next_value::<IgnoredAny>()?;
                    }
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
        Ok(TrainSpec {
            epochs,
            steps,
            accumulate: step_keys.accumulate,
            clip_grad_norm: step_keys.clip_grad_norm,
            clip_grad_value: step_keys.clip_grad_value,
            checkpoint_every: step_keys.checkpoint_every,
            early_stopping,
            keep_best,
            precision,
            sync_batch_norm,
        })
    }
}
