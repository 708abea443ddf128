//! `--set KEY=VALUE`: a spec key overridden by its dotted path, the value read as YAML.
//!
//! The spec file is parsed on its own first, so its errors keep their line and column. Then
//! each override is applied in turn to the document (a missing key is added; a number
//! indexes a list) and the result parsed again: an error then is the override's, named by
//! it (`--set optimizer.lrr=0.1: unknown key ...`, with the valid keys the parser lists).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde_yaml::Value;

use crate::{parse_str, Spec, SpecError};

/// One `--set KEY=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted path as written (`optimizer.lr`, `model.layers.0.out`).
    pub key: String,
    /// The value as written.
    pub text: String,
    /// The value read as YAML.
    pub value: Value,
}

impl FromStr for Override {
    type Err = String;

    /// `KEY=VALUE`: KEY a dotted path of non-empty parts, VALUE one YAML value.
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((key, text)) = s.split_once('=') else {
            return Err(format!("`{s}` is not KEY=VALUE (e.g. optimizer.lr=0.05)"));
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!(
                "`{key}` is not a dotted path of keys (e.g. optimizer.lr or model.layers.0.out)"
            ));
        }
        let value = serde_yaml::from_str::<Value>(text)
            .map_err(|e| format!("the value of {key} is not YAML: {e}"))?;
        Ok(Override {
            key: key.to_owned(),
            text: text.to_owned(),
            value,
        })
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.text)
    }
}

/// `text` (the spec at `origin`) with `overrides` applied, parsed.
pub fn parse_str_with(
    text: &str,
    origin: &Path,
    overrides: &[Override],
) -> Result<Spec, SpecError> {
    let spec = parse_str(text, origin)?;
    if overrides.is_empty() {
        return Ok(spec);
    }
    let fail = |o: &Override, message: &str| {
        SpecError::new(origin, None, &format!("--set {o}: {message}"))
    };
    // The file parsed, so it is one YAML mapping.
    let mut doc: Value = serde_yaml::from_str(text.strip_prefix('\u{feff}').unwrap_or(text))
        .map_err(|e| SpecError::new(origin, None, &e.to_string()))?;
    let mut spec = spec;
    for o in overrides {
        set(&mut doc, o).map_err(|m| fail(o, &m))?;
        let edited = serde_yaml::to_string(&doc).map_err(|e| fail(o, &e.to_string()))?;
        spec = parse_str(&edited, origin).map_err(|e| fail(o, e.message()))?;
    }
    Ok(spec)
}

/// Sets `o.key` in `doc` to `o.value`, adding missing mapping keys on the way.
fn set(doc: &mut Value, o: &Override) -> Result<(), String> {
    let parts: Vec<&str> = o.key.split('.').collect();
    let mut node = doc;
    for (i, part) in parts.iter().enumerate() {
        let here = if i == 0 {
            "the spec".to_owned()
        } else {
            parts[..i].join(".")
        };
        let last = i + 1 == parts.len();
        node = match node {
            Value::Mapping(map) => {
                let key = Value::String((*part).to_owned());
                if !map.contains_key(&key) {
                    let fresh = if last {
                        Value::Null
                    } else {
                        Value::Mapping(Default::default())
                    };
                    map.insert(key.clone(), fresh);
                }
                map.get_mut(&key).expect("inserted above")
            }
            Value::Sequence(items) => {
                let len = items.len();
                let index = part.parse::<usize>().ok().filter(|&k| k < len);
                let Some(index) = index else {
                    return Err(format!(
                        "{here} is a list of {len}, so the part after it is an index 0 to {}, not `{part}`",
                        len.saturating_sub(1)
                    ));
                };
                &mut items[index]
            }
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                return Err(format!(
                    "{here} is a single value, not a mapping with a key `{part}`"
                ));
            }
            Value::Tagged(_) => {
                return Err(format!("{here} is a tagged value, which specs never hold"))
            }
        };
    }
    *node = o.value.clone();
    Ok(())
}

/// The spec file at `path` with `overrides` applied, parsed.
pub fn parse_file_with(path: &Path, overrides: &[Override]) -> Result<Spec, SpecError> {
    let text = crate::read_spec_file(path)?;
    parse_str_with(&text, path, overrides)
}

/// One `graphc sweep --set KEY=VALUES`: the overrides of `KEY` to try, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepAxis {
    /// The dotted path.
    pub key: String,
    /// One override per value.
    pub values: Vec<Override>,
}

/// Most values one axis may list.
const MAX_SWEEP_VALUES: usize = 10_000;

impl FromStr for SweepAxis {
    type Err = String;

    /// `KEY=VALUES`: a YAML list (`[0.01, 0.03]`), `linspace(A,B,N)` or `logspace(A,B,N)`
    /// (NumPy's: `N` values from `A` to `B`, or from `10^A` to `10^B`), or one value.
    fn from_str(s: &str) -> Result<Self, String> {
        let one: Override = s.parse()?;
        let text = one.text.trim();
        let texts: Vec<String> = if let Some(args) = call(text, "linspace") {
            spaced(&one.key, args, "linspace")?
                .into_iter()
                .map(number_text)
                .collect()
        } else if let Some(args) = call(text, "logspace") {
            spaced(&one.key, args, "logspace")?
                .into_iter()
                .map(|v| number_text(10f64.powf(v)))
                .collect()
        } else if let Value::Sequence(items) = &one.value {
            if items.is_empty() {
                return Err(format!("{} lists no values to sweep", one.key));
            }
            items
                .iter()
                .map(|v| {
                    serde_json::to_string(v).map_err(|e| format!("a value of {}: {e}", one.key))
                })
                .collect::<Result<_, _>>()?
        } else {
            vec![one.text.clone()]
        };
        let values = texts
            .iter()
            .map(|t| format!("{}={t}", one.key).parse())
            .collect::<Result<_, _>>()?;
        Ok(SweepAxis {
            key: one.key,
            values,
        })
    }
}

/// The arguments inside `name(...)`, when `text` is that call.
fn call<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// `A,B,N` as NumPy's `linspace(A, B, N)`: `N` evenly spaced values from `A` to `B`.
fn spaced(key: &str, args: &str, name: &str) -> Result<Vec<f64>, String> {
    let bad = || format!("{key}={name}({args}): expected {name}(A,B,N), N a positive integer");
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    let [a, b, n] = parts[..] else {
        return Err(bad());
    };
    let (a, b) = match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() => (a, b),
        _ => return Err(bad()),
    };
    let n: usize = n.parse().map_err(|_| bad())?;
    if n == 0 || n > MAX_SWEEP_VALUES {
        return Err(format!(
            "{key}={name}({args}): N must be 1 to {MAX_SWEEP_VALUES}"
        ));
    }
    Ok((0..n)
        .map(|i| {
            if n == 1 {
                a
            } else {
                a + (b - a) * i as f64 / (n - 1) as f64
            }
        })
        .collect())
}

/// A number as YAML reads it back exactly (Rust's shortest round-trip form).
fn number_text(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'E']) || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}
