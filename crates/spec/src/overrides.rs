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
