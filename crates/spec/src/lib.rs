//! graphc-spec: parses and validates a YAML training spec into the typed [`Spec`].
//!
//! Every error is a [`SpecError`] naming the file, line and column, the key path, what is
//! wrong and what is valid there. Keys, types and defaults follow PyTorch (see SPEC.md).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ctx;
mod error;
mod keys;
mod layer;
mod locate;
mod loss;
mod node;
mod optim;
mod sched;
mod suggest;
mod top;
mod types;
mod vocab;

use std::path::Path;

use serde::de::DeserializeSeed;

pub use error::SpecError;
pub use types::*;
pub use vocab::{LayerType, LossType, OptimizerType, SchedulerType, SourceFormat, Vocabulary};

/// Parses and validates spec text; `origin` names the file in error messages only.
pub fn parse_str(text: &str, origin: &Path) -> Result<Spec, SpecError> {
    let text = checked_yaml(text, origin)?;
    let ctx = ctx::Ctx::default();
    let root = top::SpecNode {
        ctx: &ctx,
        path: ctx::Path::default(),
    };
    let result = node::Seed(root).deserialize(serde_yaml::Deserializer::from_str(text));
    result.map_err(|e| spec_error(&e, text, origin, &ctx, 0))
}

/// `text` as serde_yaml is to read it (without a byte-order mark), once it is known to be YAML.
fn checked_yaml<'t>(text: &'t str, origin: &Path) -> Result<&'t str, SpecError> {
    // serde_yaml 0.9 reads a leading UTF-8 byte-order mark as a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // serde_yaml hands visitors the events before a syntax error, so check the YAML first:
    // malformed YAML is reported as such, not as a problem in the part before it.
    if let Err(e) = serde_yaml::from_str::<serde::de::IgnoredAny>(text) {
        return Err(yaml_error(&e, origin));
    }
    Ok(text)
}

/// The error for a failed read of `text`: our message from `ctx` if we raised it, at the key it
/// names when there is one, else serde_yaml's. Key paths start with `unwritten` steps that the
/// text itself does not contain.
fn spec_error(
    e: &serde_yaml::Error,
    text: &str,
    origin: &Path,
    ctx: &ctx::Ctx,
    unwritten: usize,
) -> SpecError {
    let position = e.location().map(|l| (l.line(), l.column()));
    match ctx.take() {
        Some(failure) => {
            let relocated = failure
                .at_key
                .as_ref()
                .and_then(|p| locate::locate_key(text, &p.skip(unwritten)));
            SpecError::new(origin, relocated.or(position), &failure.message)
        }
        None => yaml_error(e, origin),
    }
}

/// serde_yaml's own error (malformed YAML, limits) with its ` at line L column C` moved
/// into the position.
fn yaml_error(e: &serde_yaml::Error, origin: &Path) -> SpecError {
    let position = e.location().map(|l| (l.line(), l.column()));
    let mut message = e.to_string();
    if let Some((line, col)) = position {
        let at = format!(" at line {line} column {col}");
        if let Some(i) = message.find(&at) {
            message.replace_range(i..i + at.len(), "");
        }
    }
    SpecError::new(origin, position, &message)
}

/// Parses and validates a loss mapping on its own (`{type: cross_entropy, weight: [1, 2]}`),
/// checked as a spec's `loss:` is; `origin` names the text in error messages only.
pub fn parse_loss_str(text: &str, origin: &Path) -> Result<LossSpec, SpecError> {
    loss::parse_loss_str(text, origin)
}

/// Reads and parses a spec file; a missing or unreadable file is a [`SpecError`] naming it.
pub fn parse_file(path: &Path) -> Result<Spec, SpecError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, path),
        Err(e) => Err(SpecError::new(
            path,
            None,
            &format!("cannot read the spec file: {e}"),
        )),
    }
}

/// A spec from its YAML text; messages name it `<string>`.
impl std::str::FromStr for Spec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Spec, SpecError> {
        parse_str(text, Path::new("<string>"))
    }
}

impl Spec {
    /// Reads and parses a spec file (as [`parse_file`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Spec, SpecError> {
        parse_file(path.as_ref())
    }
}
