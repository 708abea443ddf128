//! graphc-spec: parses and validates a YAML training spec into the typed [`Spec`].
//!
//! Every error is a [`SpecError`] naming the file, line and column, the key path, what is
//! wrong and what is valid there. Keys, types and defaults follow PyTorch (see SPEC.md).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod axes;
mod ctx;
mod daily;
mod error;
mod expr;
mod init;
mod keys;
mod layer;
mod locate;
mod loss;
mod node;
mod objective;
mod optim;
mod overrides;
mod sched;
mod show;
mod suggest;
mod top;
mod types;
mod vocab;

use std::path::Path;

use serde::de::DeserializeSeed;

pub use daily::has_accuracy;
pub use error::SpecError;
pub use expr::{parse_expr, BinOp, Expr, ExprError, Func};
pub use overrides::{parse_file_with, parse_str_with, Override, SweepAxis};
pub use show::{shown_items, shown_list};
pub use types::*;
pub use vocab::{
    InitType, LayerType, LossType, OptimizerType, SchedulerType, SourceFormat, Vocabulary,
};

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
    check_depth(text, origin)?;
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

/// The largest spec file read: specs are a few kilobytes, so anything near this is not one.
pub const MAX_SPEC_BYTES: u64 = 16 << 20;

/// The deepest `[`/`{` nesting accepted; serde_yaml's time grows steeply with depth.
pub const MAX_DEPTH: usize = 64;

/// Reads and parses a spec file; a missing or unreadable file is a [`SpecError`] naming it.
///
/// A FIFO, device or directory is refused by its type before anything is read, and a file
/// over [`MAX_SPEC_BYTES`] by its size (also when it grows while being read).
pub fn parse_file(path: &Path) -> Result<Spec, SpecError> {
    let text = read_spec_file(path)?;
    parse_str(&text, path)
}

/// The text of the spec file at `path`: a regular file of UTF-8 text of at most
/// [`MAX_SPEC_BYTES`].
pub(crate) fn read_spec_file(path: &Path) -> Result<String, SpecError> {
    let fail = |message: String| SpecError::new(path, None, &message);
    let special = |kind: &str| {
        fail(format!(
            "the spec file is {kind}, not a regular file; give the path of a .yaml file"
        ))
    };
    // By path first (opening a FIFO blocks until something writes to it), then on the open
    // file in case the path was swapped in between.
    let metadata =
        std::fs::metadata(path).map_err(|e| fail(format!("cannot read the spec file: {e}")))?;
    if let Some(kind) = special_file_kind(&metadata) {
        return Err(special(kind));
    }
    let file =
        std::fs::File::open(path).map_err(|e| fail(format!("cannot read the spec file: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| fail(format!("cannot read the spec file: {e}")))?;
    if let Some(kind) = special_file_kind(&metadata) {
        return Err(special(kind));
    }
    let too_big = || {
        fail(format!(
            "the spec file is larger than {} MiB, far more than any spec; check the path",
            MAX_SPEC_BYTES >> 20
        ))
    };
    if metadata.len() > MAX_SPEC_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_SPEC_BYTES + 1),
        &mut bytes,
    )
    .map_err(|e| fail(format!("cannot read the spec file: {e}")))?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_big());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "cannot read the spec file: not UTF-8 text (byte {} is invalid); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok(text)
}

/// What a file is when it is not a regular file ("a directory", "a FIFO (named pipe)", "a
/// character device", ...), so that it is refused before anything reads it; `None` for a
/// regular file. Shared with graphc-data's loaders.
pub fn special_file_kind(metadata: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = metadata.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Refuses flow collections (`[`, `{`) nested deeper than [`MAX_DEPTH`], in one pass before
/// serde_yaml reads the text. Brackets inside quoted scalars and comments do not count; a
/// bracket inside a plain scalar (`a[0]`) may, which only matters past 64 of them.
fn check_depth(text: &str, origin: &Path) -> Result<(), SpecError> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            comment = false;
            prev = c;
            continue;
        }
        if comment {
            continue;
        }
        match quote {
            Some('\'') if c == '\'' => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    column += 1;
                } else {
                    quote = None;
                }
            }
            Some('"') if c == '\\' => {
                if chars.next().is_some() {
                    column += 1;
                }
            }
            Some('"') if c == '"' => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev.is_whitespace() => comment = true,
                // A quote opens a quoted scalar only where a scalar starts (`it's` is plain).
                '\'' | '"' if prev.is_whitespace() || "[{,:-".contains(prev) => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(SpecError::new(
                            origin,
                            Some((line, column)),
                            &format!(
                                "`[`/`{{` nested more than {MAX_DEPTH} deep; a spec needs only a few levels, flatten it"
                            ),
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    Ok(())
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
