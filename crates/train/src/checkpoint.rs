//! `DIR/checkpoint/`: what `graphc train SPEC --resume DIR/checkpoint` needs to continue as
//! if never stopped, written atomically.
//!
//! | file | content |
//! |---|---|
//! | `model.safetensors` | the model's `state_dict`: parameters, buffers, `num_batches_tracked` |
//! | `optimizer.safetensors` | the optimizer state, named `PARAM.KEY` (`0.weight.exp_avg`) |
//! | `accumulated.safetensors` | gradient sums of a pending accumulation (only when there is one) |
//! | `best.safetensors` | `train.keep_best`'s parameters at the best monitored epoch (only once there is one) |
//! | `state.json` | the optimizer's `defaults` and `param_groups` (current hyperparameters and parameter names), the step count, the scheduler state, the number of training forwards (dropout's counter), the loop position (epoch, batch) and what the batch order derives from (seed, shuffle) |
//!
//! The files go to a temporary sibling directory first (each fsynced, `state.json` last), which
//! then replaces the old checkpoint by two renames; a crash between the renames leaves a
//! complete checkpoint under a hidden name, which [`resolve`] puts back. So a crash never
//! leaves a half-written checkpoint.
//!
//! The shuffled order of epoch `e` is `epoch_order(samples, shuffle, seed, e)`, a function of
//! the seed and the epoch only, so the position in the epoch is all the RNG state there is.

use std::fs;
use std::path::{Path, PathBuf};

use graphc_nn::sched::{SchedulerKeys, SchedulerState};
use graphc_spec::{HyperValue, OptimizerKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::run::BEST_FILE;
use crate::trainer::{GroupState, OptimizerState, TrainerState};
use crate::weights::StateDict;
use crate::{read_safetensors, read_state_dict, write_atomic, write_safetensors};
use crate::{write_state_dict, TrainError};

/// The checkpoint directory's name inside a run's output directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// What `state.json`'s `format` says.
const FORMAT: &str = "graphc-checkpoint";
/// The layout version of `state.json`.
const VERSION: u64 = 1;
/// The largest `state.json` read: it holds hyperparameters, parameter names and counts, a few
/// KiB for any model (a bound before reading, not a format rule).
pub const MAX_STATE_FILE: u64 = 16 << 20;

/// The text of `dir/state.json`, read only if it is a regular file of at most
/// [`MAX_STATE_FILE`] bytes.
pub fn read_state_text(dir: &Path) -> Result<String, TrainError> {
    Ok(graphc_data::read_text_bounded(
        &dir.join("state.json"),
        "checkpoint's state.json",
        MAX_STATE_FILE,
    )?)
}

/// Where a run stands, besides the trainer's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs finished.
    pub epoch: u64,
    /// Batches of the next epoch already trained on.
    pub batch: u64,
    /// Sum of those batches' losses (the epoch's mean loss needs it).
    pub epoch_loss_sum: f64,
    /// Sum of the losses of the batches in the pending accumulation.
    pub pending_loss_sum: f64,
    /// The loss of the last update, if there was one.
    pub last_loss: Option<f32>,
    /// The length of `metrics.jsonl` at the checkpoint; a resumed run cuts it back to this.
    pub metrics_bytes: u64,
    /// Early stopping's and `keep_best`'s watch of the monitored metric, when the spec has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorState>,
}

/// Where the watch of `train.early_stopping`'s metric stands (Lightning's `EarlyStopping`
/// state: `wait_count`, `best_score`, `stopped_epoch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitorState {
    /// The best value so far and its epoch; `None` before the first finite value.
    pub best: Option<(u64, f32)>,
    /// Epochs since the last improvement.
    pub wait: u64,
    /// The epoch at which early stopping ended training, once it has.
    pub stopped_at: Option<u64>,
}

/// What the batches are made from; a resumed run must have the same, or its batch position
/// would mean other batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchOrder {
    /// `seed`, from which every epoch's shuffle is drawn.
    pub seed: u64,
    /// `data.shuffle`.
    pub shuffle: bool,
    /// Training samples.
    pub samples: usize,
    /// `data.batch_size`.
    pub batch_size: usize,
    /// `data.drop_last`.
    pub drop_last: bool,
    /// `train.accumulate`.
    pub accumulate: usize,
}

impl BatchOrder {
    /// The first field in which `self` (the checkpoint's) and `spec` differ, as a message.
    pub fn difference(&self, spec: &BatchOrder) -> Option<String> {
        let fields = [
            ("seed", self.seed.to_string(), spec.seed.to_string()),
            (
                "data.shuffle",
                self.shuffle.to_string(),
                spec.shuffle.to_string(),
            ),
            (
                "the number of training samples",
                self.samples.to_string(),
                spec.samples.to_string(),
            ),
            (
                "data.batch_size",
                self.batch_size.to_string(),
                spec.batch_size.to_string(),
            ),
            (
                "data.drop_last",
                self.drop_last.to_string(),
                spec.drop_last.to_string(),
            ),
            (
                "train.accumulate",
                self.accumulate.to_string(),
                spec.accumulate.to_string(),
            ),
        ];
        fields
            .into_iter()
            .find(|(_, a, b)| a != b)
            .map(|(name, a, b)| {
                format!(
                    "{name} is {a} in the checkpoint and {b} in the spec; the batches would differ"
                )
            })
    }
}

/// A checkpoint as read back, before it is checked against a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The trainer's state.
    pub state: TrainerState,
    /// The loop position.
    pub progress: Progress,
    /// What the batches are made from.
    pub order: BatchOrder,
    /// `best.safetensors`, when the checkpoint has one.
    pub best: Option<StateDict>,
}

fn bad(dir: &Path, message: String) -> TrainError {
    TrainError::Checkpoint {
        what: format!("checkpoint `{}`", dir.display()),
        message,
    }
}

/// A value in `DIR/state.json` out of its range: names the file, the key and the value.
fn bad_value(dir: &Path, key: &str, value: impl std::fmt::Display, expected: &str) -> TrainError {
    TrainError::Checkpoint {
        what: format!("checkpoint `{}`", dir.join("state.json").display()),
        message: format!(
            "{key} is {value}, expected {expected}; the file was changed or damaged: resume from an intact checkpoint or train anew"
        ),
    }
}

/// Checks the hyperparameters a checkpoint sets (those a scheduler may change; every other one
/// must equal the spec's, which the spec crate checked) with the spec's ranges, and the
/// scheduler's keys (`initial_lr`, `max_lr`, ...) as learning rates and momenta (`>= 0`).
fn check_group(dir: &Path, i: usize, group: &GroupState) -> Result<(), TrainError> {
    let key = |k: &str| format!("optimizer.param_groups[{i}].{k}");
    let lr = group.hypers.lr();
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(bad_value(dir, &key("lr"), lr, "a learning rate >= 0"));
    }
    if let Some(m) = group.hypers.momentum() {
        if !(m.is_finite() && m >= 0.0) {
            return Err(bad_value(dir, &key("momentum"), m, "a momentum >= 0"));
        }
    }
    if let Some((b1, _)) = group.hypers.betas() {
        if !(0.0..1.0).contains(&b1) {
            return Err(bad_value(dir, &key("betas[0]"), b1, "a beta in [0, 1)"));
        }
    }
    let k = &group.keys;
    for (name, v) in [
        ("initial_lr", k.initial_lr),
        ("max_lr", k.max_lr),
        ("min_lr", k.min_lr),
        ("max_momentum", k.max_momentum),
        ("base_momentum", k.base_momentum),
    ] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(bad_value(dir, &key(name), v, "a number >= 0"));
        }
    }
    Ok(())
}

impl Checkpoint {
    /// Checks the loop position against the spec's lengths: `progress.epoch` at most the
    /// spec's `train.epochs`, `progress.batch` at most the batches of an epoch, and
    /// `optimizer.step` and `optimizer.pending_batches` the updates and pending batches that
    /// position means (`batches` a epoch, `accumulate` batches an update). `dir` is the
    /// checkpoint directory, named in the message.
    pub fn check_position(
        &self,
        dir: &Path,
        epochs: Option<u64>,
        batches: u64,
    ) -> Result<(), TrainError> {
        let p = &self.progress;
        let opt = &self.state.optimizer;
        if let Some(epochs) = epochs.filter(|&e| p.epoch > e) {
            let expected = format!("at most the spec's train.epochs, {epochs}");
            return Err(bad_value(dir, "progress.epoch", p.epoch, &expected));
        }
        if p.batch > batches {
            let expected = format!("at most the {batches} batches of an epoch");
            return Err(bad_value(dir, "progress.batch", p.batch, &expected));
        }
        let accumulate = self.order.accumulate.max(1) as u64;
        let per_epoch = batches.div_ceil(accumulate);
        let (updates, pending) = if p.batch == batches {
            (per_epoch, 0)
        } else {
            (p.batch / accumulate, p.batch % accumulate)
        };
        let step = p
            .epoch
            .checked_mul(per_epoch)
            .and_then(|s| s.checked_add(updates));
        if step != Some(opt.step) {
            let expected = match step {
                Some(s) => format!("{s} ({} epochs and {} batches done)", p.epoch, p.batch),
                None => "a count that fits the position".to_owned(),
            };
            return Err(bad_value(dir, "optimizer.step", opt.step, &expected));
        }
        if opt.pending_batches as u64 != pending {
            let expected = format!("{pending} ({} batches into the epoch)", p.batch);
            return Err(bad_value(
                dir,
                "optimizer.pending_batches",
                opt.pending_batches,
                &expected,
            ));
        }
        Ok(())
    }
}

fn io(dir: &Path, action: &'static str, e: &std::io::Error) -> TrainError {
    TrainError::io(
        action,
        dir,
        e,
        "check that the output directory is writable",
    )
}

/// A hyperparameter as JSON, as PyTorch's `param_group` holds it (`betas` as a pair).
fn hyper_json(v: &HyperValue) -> Value {
    match v {
        HyperValue::Float(x) => json!(x),
        HyperValue::Bool(b) => json!(b),
        HyperValue::Pair(a, b) => json!([a, b]),
    }
}

/// A param group dict: hyperparameters, scheduler keys, then `params`.
fn group_json(hypers: &OptimizerKind, keys: &SchedulerKeys, params: Option<&[String]>) -> Value {
    let mut map = Map::new();
    for (name, v) in hypers.hyperparameters() {
        map.insert(name.to_owned(), hyper_json(&v));
    }
    if let Ok(Value::Object(extra)) = serde_json::to_value(keys) {
        map.extend(extra);
    }
    if let Some(params) = params {
        map.insert("params".into(), json!(params));
    }
    Value::Object(map)
}

/// Writes the checkpoint to `dir` atomically (see the module header).
pub fn write(
    dir: &Path,
    state: &TrainerState,
    progress: &Progress,
    order: &BatchOrder,
) -> Result<(), TrainError> {
    write_with_best(dir, state, progress, order, None)
}

/// Something that writes a file at the path it is given.
pub type WriteFile<'a> = &'a dyn Fn(&Path) -> Result<(), TrainError>;

/// [`write`], with `best.safetensors` (`train.keep_best`'s parameters at the best epoch, as
/// `best` writes them) among the checkpoint's files when `best` is given.
pub fn write_with_best(
    dir: &Path,
    state: &TrainerState,
    progress: &Progress,
    order: &BatchOrder,
    best: Option<WriteFile<'_>>,
) -> Result<(), TrainError> {
    let (parent, name) = split(dir)?;
    fs::create_dir_all(&parent).map_err(|e| io(&parent, "create directory", &e))?;
    let temp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if temp.exists() {
        fs::remove_dir_all(&temp).map_err(|e| io(&temp, "remove", &e))?;
    }
    fs::create_dir_all(&temp).map_err(|e| io(&temp, "create directory", &e))?;

    let model = &state.model;
    write_state_dict(
        &temp.join("model.safetensors"),
        &model.tensors,
        &model.counters,
    )?;
    if let Some(best) = best {
        best(&temp.join(BEST_FILE))?;
    }
    let opt = &state.optimizer;
    write_safetensors(&temp.join("optimizer.safetensors"), &opt.state)?;
    if opt.pending_batches > 0 {
        write_safetensors(&temp.join("accumulated.safetensors"), &opt.accumulated)?;
    }
    let groups: Vec<Value> = opt
        .param_groups
        .iter()
        .map(|g| group_json(&g.hypers, &g.keys, Some(&g.params)))
        .collect();
    let scheduler = match &state.scheduler {
        Some(s) => serde_json::to_value(s).map_err(|e| bad(dir, e.to_string()))?,
        None => Value::Null,
    };
    let json = json!({
        "format": FORMAT,
        "version": VERSION,
        "optimizer": {
            "type": opt.defaults.type_name(),
            "class": opt.defaults.class_name(),
            "defaults": group_json(&opt.defaults, &SchedulerKeys::default(), None),
            "param_groups": groups,
            "step": opt.step,
            "pending_batches": opt.pending_batches,
        },
        "scheduler": scheduler,
        "forwards": state.forwards,
        "progress": progress,
        "batch_order": order,
    });
    let mut text = serde_json::to_string_pretty(&json).map_err(|e| bad(dir, e.to_string()))?;
    text.push('\n');
    write_atomic(&temp.join("state.json"), text.as_bytes())?;
    sync_dir(&temp);

    if dir.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if old.exists() {
            fs::remove_dir_all(&old).map_err(|e| io(&old, "remove", &e))?;
        }
        fs::rename(dir, &old).map_err(|e| io(dir, "rename", &e))?;
        fs::rename(&temp, dir).map_err(|e| io(dir, "rename", &e))?;
        sync_dir(&parent);
        fs::remove_dir_all(&old).map_err(|e| io(&old, "remove", &e))?;
    } else {
        fs::rename(&temp, dir).map_err(|e| io(dir, "rename", &e))?;
    }
    sync_dir(&parent);
    remove_leftovers(&parent, &name);
    Ok(())
}

/// `(parent directory, file name)` of a checkpoint directory path.
fn split(dir: &Path) -> Result<(PathBuf, String), TrainError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| bad(dir, "the path does not name a directory".into()))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// Temporary and replaced checkpoints left by crashed writers (never the live one).
fn leftovers(parent: &Path, name: &str) -> Vec<(PathBuf, bool)> {
    let (temp, old) = (format!(".{name}.tmp-"), format!(".{name}.old-"));
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            if file.starts_with(&temp) {
                Some((e.path(), true))
            } else if file.starts_with(&old) {
                Some((e.path(), false))
            } else {
                None
            }
        })
        .collect()
}

fn remove_leftovers(parent: &Path, name: &str) {
    for (path, _) in leftovers(parent, name) {
        let _ = fs::remove_dir_all(path);
    }
}

/// Flushes directory entries (renames) to disk; best effort, where supported.
fn sync_dir(dir: &Path) {
    if cfg!(unix) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// The checkpoint at `dir`, completing a replacement a crash interrupted: when `dir` has no
/// `state.json` but a complete new (or the previous) checkpoint waits under its hidden
/// name, that one is moved to `dir`.
pub fn resolve(dir: &Path) -> Result<PathBuf, TrainError> {
    if dir.join("state.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let (parent, name) = split(dir)?;
    let mut complete: Vec<(PathBuf, bool)> = leftovers(&parent, &name)
        .into_iter()
        .filter(|(p, _)| p.join("state.json").is_file())
        .collect();
    // A complete new checkpoint is newer than the one it was replacing.
    complete.sort_by_key(|(_, is_new)| !is_new);
    if let Some((found, _)) = complete.into_iter().next() {
        if !dir.exists() {
            fs::rename(&found, dir).map_err(|e| io(dir, "rename", &e))?;
            return Ok(dir.to_path_buf());
        }
    }
    Err(bad(
        dir,
        "there is no checkpoint here (no state.json); give the `checkpoint` directory a \
         previous `graphc train` wrote into its output directory"
            .into(),
    ))
}

/// PyTorch's `optimizer.load_state_dict` rule applied to `spec` before a resume: every
/// hyperparameter of a saved param group replaces the spec's value for that group (found by
/// the group's parameter names, as `optimizer.param_groups` patterns place them). Returns one
/// warning line per value that differs from the spec's — `lr` compared with the `initial_lr`
/// a scheduler recorded, and neither `lr` nor `momentum`/`betas` compared where OneCycleLR
/// sets them. A checkpoint that cannot be read is left to [`read`] to report.
pub fn adopt_hypers(dir: &Path, spec: &mut graphc_spec::Spec) -> Vec<String> {
    let Ok(dir) = resolve(dir) else {
        return Vec::new();
    };
    let Ok(json) = read_state_text(&dir).and_then(|text| {
        serde_json::from_str::<Value>(&text).map_err(|e| bad(&dir, e.to_string()))
    }) else {
        return Vec::new();
    };
    let Some(saved_groups) = json["optimizer"]["param_groups"].as_array() else {
        return Vec::new();
    };
    let scheduled = spec.scheduler.is_some();
    let mut warnings = Vec::new();
    for saved in saved_groups {
        let Some(first) = saved["params"]
            .as_array()
            .and_then(|p| p.first())
            .and_then(Value::as_str)
        else {
            continue;
        };
        let Ok(found) = graphc_nn::group_of_names(&spec.optimizer, &[first]) else {
            continue;
        };
        let g = found[0];
        let keys: SchedulerKeys = serde_json::from_value(saved.clone()).unwrap_or_default();
        let top = g == spec.optimizer.param_groups.len();
        let settings = match spec.optimizer.param_groups.get_mut(g) {
            Some(group) => &mut group.kind,
            None => &mut spec.optimizer.kind,
        };
        for (name, ours) in settings.hyperparameters() {
            let Some(v) = saved.get(name) else { continue };
            let theirs = hyper_from_json(&ours, v);
            // A value that is not a finite number is left for `read` to refuse.
            let finite = |x: f64| x.is_finite();
            let Some(theirs) = theirs.filter(|v| match *v {
                HyperValue::Float(x) => finite(x),
                HyperValue::Pair(x, y) => finite(x) && finite(y),
                HyperValue::Bool(_) => true,
            }) else {
                continue;
            };
            // What the checkpoint says the spec gave, where a scheduler moved the value since.
            let given = match name {
                "lr" if keys.max_lr.is_some() => None,
                "lr" => match keys.initial_lr {
                    Some(initial) => Some(HyperValue::Float(initial)),
                    None if scheduled => None,
                    None => Some(theirs),
                },
                "momentum" | "betas" if keys.max_momentum.is_some() => None,
                _ => Some(theirs),
            };
            if let Some(given) = given.filter(|&given| given != ours) {
                let key = if top {
                    format!("optimizer.{name}")
                } else {
                    format!("optimizer.param_groups[{g}].{name}")
                };
                warnings.push(format!(
                    "warning: resuming with {key} {} from the checkpoint, not the spec's {}: a resumed optimizer keeps its saved hyperparameters, as PyTorch's load_state_dict does",
                    hyper_json(&given),
                    hyper_json(&ours)
                ));
            }
            // The learning rate, and what OneCycleLR cycles, are set from the checkpoint
            // when it is read, past the scheduler's construction.
            match name {
                "lr" => {}
                "momentum" | "betas" if keys.max_momentum.is_some() => {}
                _ => {
                    settings.set_hyperparameter(name, theirs);
                }
            }
        }
    }
    warnings
}

/// Reads the checkpoint at `dir` (after [`resolve`]) for a spec whose optimizer settings are
/// `defaults` and whose groups that hold parameters have the settings `groups`, in order:
/// hyperparameters a scheduler may change (`lr`, `momentum`, `betas`) are taken from the
/// checkpoint, every other one must be equal.
pub fn read(
    dir: &Path,
    defaults: &OptimizerKind,
    groups: &[OptimizerKind],
) -> Result<Checkpoint, TrainError> {
    let dir = resolve(dir)?;
    let dir = dir.as_path();
    let text = read_state_text(dir)?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| bad(dir, format!("state.json is not valid JSON: {e}")))?;
    if json["format"] != FORMAT {
        return Err(bad(dir, "state.json is not a graphc checkpoint".into()));
    }
    if json["version"] != VERSION {
        return Err(bad(
            dir,
            format!(
                "state.json has version {}, this graphc reads version {VERSION}",
                json["version"]
            ),
        ));
    }
    let field = |v: &Value, what: &str| -> Result<Value, TrainError> {
        match v {
            Value::Null => Err(bad(dir, format!("state.json has no {what}"))),
            v => Ok(v.clone()),
        }
    };
    fn parse<T: serde::de::DeserializeOwned>(
        dir: &Path,
        v: Value,
        what: &str,
    ) -> Result<T, TrainError> {
        serde_json::from_value(v).map_err(|e| bad(dir, format!("state.json {what}: {e}")))
    }
    let progress: Progress = parse(dir, field(&json["progress"], "progress")?, "progress")?;
    // Absent from checkpoints written before dropout existed, which drew nothing.
    let forwards = match &json["forwards"] {
        Value::Null => 0,
        v => v.as_u64().ok_or_else(|| {
            bad_value(
                dir,
                "forwards",
                v,
                "a count of training forwards (an integer >= 0)",
            )
        })?,
    };
    let order: BatchOrder = parse(
        dir,
        field(&json["batch_order"], "batch_order")?,
        "batch_order",
    )?;
    let scheduler: Option<SchedulerState> = match &json["scheduler"] {
        Value::Null => None,
        v => Some(parse(dir, v.clone(), "scheduler")?),
    };

    let opt = &json["optimizer"];
    let type_name = opt["type"].as_str().unwrap_or("?");
    if type_name != defaults.type_name() {
        return Err(bad(
            dir,
            format!(
                "it was written by the {type_name} optimizer, the spec's optimizer is {}",
                defaults.type_name()
            ),
        ));
    }
    let saved_groups = opt["param_groups"]
        .as_array()
        .ok_or_else(|| bad(dir, "state.json has no optimizer.param_groups".into()))?;
    if saved_groups.len() != groups.len() {
        return Err(bad(
            dir,
            format!(
                "it has {} param groups, the spec makes {}",
                saved_groups.len(),
                groups.len()
            ),
        ));
    }
    let mut param_groups = Vec::with_capacity(groups.len());
    for (i, (saved, base)) in saved_groups.iter().zip(groups).enumerate() {
        let group =
            group_from_json(saved, base).map_err(|m| bad(dir, format!("param group {i}: {m}")))?;
        check_group(dir, i, &group)?;
        param_groups.push(group);
    }
    let defaults = defaults.clone();
    let step = opt["step"]
        .as_u64()
        .ok_or_else(|| bad(dir, "state.json has no optimizer.step".into()))?;
    let pending_batches = match opt["pending_batches"].as_u64() {
        Some(n) if n < order.accumulate.max(1) as u64 => n as usize,
        None if opt["pending_batches"].is_null() => 0,
        _ => {
            let expected = format!("fewer than train.accumulate ({})", order.accumulate);
            return Err(bad_value(
                dir,
                "optimizer.pending_batches",
                &opt["pending_batches"],
                &expected,
            ));
        }
    };
    let accumulated = if pending_batches > 0 {
        read_safetensors(&dir.join("accumulated.safetensors"))?
    } else {
        Vec::new()
    };
    Ok(Checkpoint {
        state: TrainerState {
            model: read_state_dict(&dir.join("model.safetensors"))?,
            forwards,
            optimizer: OptimizerState {
                defaults,
                param_groups,
                state: read_safetensors(&dir.join("optimizer.safetensors"))?,
                step,
                pending_batches,
                accumulated,
            },
            scheduler,
        },
        best: {
            let path = dir.join(BEST_FILE);
            match path.is_file() {
                true => Some(read_state_dict(&path)?),
                false => None,
            }
        },
        progress,
        order,
    })
}

/// A saved hyperparameter as the kind of value `ours` is; `None` when it is not one.
fn hyper_from_json(ours: &HyperValue, v: &Value) -> Option<HyperValue> {
    match (ours, v) {
        (HyperValue::Float(_), v) => v.as_f64().map(HyperValue::Float),
        (HyperValue::Bool(_), v) => v.as_bool().map(HyperValue::Bool),
        (HyperValue::Pair(..), Value::Array(a)) if a.len() == 2 => a[0]
            .as_f64()
            .zip(a[1].as_f64())
            .map(|(x, y)| HyperValue::Pair(x, y)),
        _ => None,
    }
}

/// One saved param group onto the spec's settings `base`.
fn group_from_json(saved: &Value, base: &OptimizerKind) -> Result<GroupState, String> {
    let map = saved.as_object().ok_or("not a mapping")?;
    let mut hypers = base.clone();
    for (name, ours) in base.hyperparameters() {
        let Some(v) = map.get(name) else {
            return Err(format!("{name} is missing"));
        };
        let theirs = hyper_from_json(&ours, v)
            .ok_or_else(|| format!("{name} has an unreadable value {v}"))?;
        match (name, theirs) {
            ("lr", HyperValue::Float(lr)) => hypers.set_lr(lr),
            ("momentum", HyperValue::Float(m)) => {
                hypers.set_momentum(m);
            }
            ("betas", HyperValue::Pair(b1, b2)) => {
                if let HyperValue::Pair(_, ours2) = ours {
                    if ours2 != b2 {
                        return Err(format!(
                            "betas[1] is {b2:?} in the checkpoint, {ours2:?} in the spec"
                        ));
                    }
                }
                hypers.set_betas((b1, b2));
            }
            (_, theirs) if theirs != ours => {
                return Err(format!(
                    "{name} is {} in the checkpoint, {} in the spec",
                    hyper_json(&theirs),
                    hyper_json(&ours)
                ))
            }
            _ => {}
        }
    }
    let keys: SchedulerKeys =
        serde_json::from_value(saved.clone()).map_err(|e| format!("scheduler keys: {e}"))?;
    let params = map
        .get("params")
        .and_then(Value::as_array)
        .ok_or("params is missing")?
        .iter()
        .map(|p| {
            p.as_str()
                .map(str::to_owned)
                .ok_or("params holds a non-name")
        })
        .collect::<Result<Vec<String>, _>>()?;
    Ok(GroupState {
        params,
        hypers,
        keys,
    })
}
