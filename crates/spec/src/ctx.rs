//! Parse context: key paths and the side channel that carries our own error messages.

use std::cell::RefCell;
use std::fmt;

use serde::de;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A mapping key, as written in the spec.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A key path such as `model.layers[2].out`; the empty path is the whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Path(Vec<Seg>);

impl Path {
    /// The path of `key` inside this mapping.
    pub(crate) fn key(&self, key: &str) -> Path {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Path(segs)
    }

    /// The path of element `index` of this list.
    pub(crate) fn index(&self, index: usize) -> Path {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Path(segs)
    }

    /// This path without its first `n` steps.
    pub(crate) fn skip(&self, n: usize) -> Path {
        Path(self.0.iter().skip(n).cloned().collect())
    }

    /// The steps, outermost first.
    pub(crate) fn segs(&self) -> &[Seg] {
        &self.0
    }

    /// True for the whole document.
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the last step is a mapping key (so the node has a key to point at).
    pub(crate) fn ends_with_key(&self) -> bool {
        matches!(self.0.last(), Some(Seg::Key(_)))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Our message for the error being returned, and the key to point at when the natural
/// position (the node being read when the error was raised) is not the right one.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The full message, without file or position.
    pub(crate) message: String,
    /// A key (path ending in a key) to relocate the error to, found by re-reading the text.
    pub(crate) at_key: Option<Path>,
}

/// Shared by every node of one parse.
///
/// serde_yaml prefixes errors with its own path and appends ` at line L column C`; we keep
/// our exact message here and take only the position from serde_yaml.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    failure: RefCell<Option<Failure>>,
}

impl Ctx {
    /// Records `message` and returns an error for serde_yaml to position at the node being read.
    pub(crate) fn fail<E: de::Error>(&self, message: String) -> E {
        let err = E::custom(&message);
        *self.failure.borrow_mut() = Some(Failure {
            message,
            at_key: None,
        });
        err
    }

    /// Records `message` to be positioned at the key `key_path` (found by re-reading the text).
    pub(crate) fn fail_at_key<E: de::Error>(&self, key_path: Path, message: String) -> E {
        let err = E::custom(&message);
        *self.failure.borrow_mut() = Some(Failure {
            message,
            at_key: Some(key_path),
        });
        err
    }

    /// The recorded failure, if the error came from our checks.
    pub(crate) fn take(&self) -> Option<Failure> {
        self.failure.borrow_mut().take()
    }
}

/// A user-written word for a message: escaped and cut to a readable length.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}
