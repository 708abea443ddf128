//! `graphc inspect CHECKPOINT`: prints a checkpoint's optimizer as PyTorch's
//! `optimizer.state_dict()` shows it — `defaults`, `param_groups` with their hyperparameters
//! and parameters (indices, and the names they stand for), `state` keys with shapes and a few
//! values, the step count — then the scheduler's state and the loop position.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use graphc::stages::train::checkpoint::read_state_text;
use graphc::stages::train::read_safetensors;
use graphc::NamedTensor;
use serde_json::Value;

/// Values of a tensor shown before `...`.
const SHOWN: usize = 4;

/// Prints the checkpoint at `dir`.
pub fn inspect(dir: &Path) -> Result<()> {
    crate::out(&render(dir)?)
}

/// The text [`inspect`] prints.
pub fn render(dir: &Path) -> Result<String> {
    let state_path = dir.join("state.json");
    if !state_path.is_file() {
        bail!(
            "`{}` is not a checkpoint (no state.json); give the `checkpoint` directory `graphc train` writes into its output directory",
            dir.display()
        );
    }
    let text = read_state_text(dir)?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not valid JSON", state_path.display()))?;
    if json["format"] != "graphc-checkpoint" {
        bail!("`{}` is not a graphc checkpoint", state_path.display());
    }
    let tensors = read_safetensors(&dir.join("optimizer.safetensors"))?;
    let opt = &json["optimizer"];
    let type_name = opt["type"].as_str().unwrap_or("?");
    let step = opt["step"].as_u64().unwrap_or(0);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "optimizer: {type_name} (torch.optim.{}), step {step}",
        opt["class"].as_str().unwrap_or(type_name)
    );
    let _ = writeln!(out, "defaults: {}", py_dict(&opt["defaults"], &[]));

    // PyTorch numbers parameters across the groups, in order.
    let groups = opt["param_groups"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    let _ = writeln!(out, "param_groups:");
    for (g, group) in groups.iter().enumerate() {
        let params: Vec<String> = group["params"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let indices: Vec<String> = (names.len()..names.len() + params.len())
            .map(|i| i.to_string())
            .collect();
        let _ = writeln!(
            out,
            "  [{g}] {}",
            py_dict(group, &[("params", format!("[{}]", indices.join(", ")))])
        );
        let named: Vec<String> = indices
            .iter()
            .zip(&params)
            .map(|(i, n)| format!("{i} = {n}"))
            .collect();
        let _ = writeln!(out, "      params: {}", named.join(", "));
        names.extend(params);
    }

    let _ = writeln!(out, "state:");
    // SGD keeps no per-parameter `step`; every other torch.optim class does.
    let per_param_step = type_name != "sgd";
    let mut any = false;
    for (i, name) in names.iter().enumerate() {
        // State keys (`momentum_buffer`, `exp_avg`) have no dot: `PARAM.KEY`.
        let prefix = format!("{name}.");
        let mut mine: Vec<&NamedTensor> = tensors
            .iter()
            .filter(|t| t.name.rsplit_once('.').map(|(p, _)| p) == Some(name.as_str()))
            .collect();
        if mine.is_empty() && !per_param_step {
            continue;
        }
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        any = true;
        let _ = write!(out, "  {i} ({name}):");
        if per_param_step {
            let _ = write!(out, " 'step': {step}.0");
        }
        let _ = writeln!(out);
        for t in mine {
            let _ = writeln!(
                out,
                "      '{}': shape {}, {}",
                &t.name[prefix.len()..],
                graphc::stages::spec::shown_list(&t.shape),
                values(&t.data)
            );
        }
    }
    if !any {
        let _ = writeln!(
            out,
            "  (empty: {type_name} keeps no state with these settings)"
        );
    }
    let pending = opt["pending_batches"].as_u64().unwrap_or(0);
    if pending > 0 {
        let _ = writeln!(
            out,
            "pending: gradients of {pending} batches summed, not yet applied"
        );
    }

    match &json["scheduler"] {
        Value::Null => {
            let _ = writeln!(out, "scheduler: none");
        }
        s => {
            let _ = writeln!(out, "scheduler: {}", scheduler(s));
        }
    }
    let p = &json["progress"];
    let order = &json["batch_order"];
    let _ = writeln!(
        out,
        "position: {} epochs done, {} batches into epoch {}; batches of {} from {} samples, shuffle {} from seed {}",
        p["epoch"],
        p["batch"],
        p["epoch"].as_u64().unwrap_or(0) + 1,
        order["batch_size"],
        order["samples"],
        order["shuffle"],
        order["seed"]
    );
    Ok(out)
}

/// A JSON value as Python prints it (`True`, `0.1`, `(0.9, 0.999)` for pairs, `'text'`).
fn py(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(x)) => format!("{x:?}"),
            _ => n.to_string(),
        },
        Value::String(s) => format!("'{s}'"),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(_) => py_dict(v, &[]),
    }
}

/// Keys a scheduler adds to a param group, printed after the optimizer's own.
const SCHEDULER_KEYS: &[&str] = &[
    "initial_lr",
    "max_lr",
    "min_lr",
    "max_momentum",
    "base_momentum",
];

/// A param group (or `defaults`) as a Python dict, in PyTorch's order: `lr` first, the
/// other hyperparameters, the keys schedulers add, `params` last; `replace` overrides some
/// keys' text. `betas` is a tuple.
fn py_dict(v: &Value, replace: &[(&str, String)]) -> String {
    let Some(map) = v.as_object() else {
        return py(v);
    };
    let rank = |k: &str| match k {
        "lr" => 0,
        "params" => 3,
        k if SCHEDULER_KEYS.contains(&k) => 2,
        _ => 1,
    };
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by_key(|(k, _)| rank(k));
    let parts: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| {
            let text = match (replace.iter().find(|(key, _)| key == k), v) {
                (Some((_, t)), _) => t.clone(),
                (None, Value::Array(pair)) if k == "betas" && pair.len() == 2 => {
                    format!("({}, {})", py(&pair[0]), py(&pair[1]))
                }
                (None, v) => py(v),
            };
            format!("'{k}': {text}")
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// A scheduler state: its type and PyTorch's attribute names.
fn scheduler(s: &Value) -> String {
    let mut fields = vec![format!("'type': {}", py(&s["type"]))];
    let core = &s["core"];
    let plain = !matches!(
        s["type"].as_str(),
        Some("sequential_lr" | "reduce_lr_on_plateau")
    );
    for (key, ours) in [
        ("last_epoch", "last_epoch"),
        ("_step_count", "step_count"),
        ("base_lrs", "base_lrs"),
        ("_last_lr", "last_lr"),
    ] {
        let meaningful = plain || matches!(key, "last_epoch" | "_last_lr");
        if meaningful && !core[ours].is_null() {
            fields.push(format!("'{key}': {}", py(&core[ours])));
        }
    }
    if let Some(extra) = s["extra"].as_object() {
        for (k, v) in extra.iter().filter(|(k, _)| *k != "kind") {
            let key = match k.as_str() {
                "t_i" => "T_i",
                "t_cur" => "T_cur",
                other => other,
            };
            fields.push(format!("'{key}': {}", py(v)));
        }
    }
    if let Some(children) = s["children"].as_array() {
        let inner: Vec<String> = children.iter().map(scheduler).collect();
        fields.push(format!("'_schedulers': [{}]", inner.join(", ")));
    }
    format!("{{{}}}", fields.join(", "))
}

/// The first few values of a tensor.
fn values(data: &[f32]) -> String {
    let shown: Vec<String> = data.iter().take(SHOWN).map(|v| format!("{v}")).collect();
    let more = if data.len() > SHOWN { ", ..." } else { "" };
    format!("[{}{more}]", shown.join(", "))
}
