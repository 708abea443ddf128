//! `SpecError`: one located, one-line message for every bad spec.

use std::fmt;
use std::path::{Path, PathBuf};

/// A spec that cannot be read, parsed or validated; displays as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Rendered(self))]
pub struct SpecError {
    file: PathBuf,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

impl SpecError {
    /// Builds an error; `position` is 1-based `(line, column)`. Control characters are escaped
    /// so the message stays on one line.
    pub(crate) fn new(file: &Path, position: Option<(usize, usize)>, message: &str) -> Self {
        let mut clean = String::with_capacity(message.len());
        for c in message.chars() {
            if c.is_control() {
                clean.extend(c.escape_default());
            } else {
                clean.push(c);
            }
        }
        SpecError {
            file: file.to_path_buf(),
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            message: clean,
        }
    }

    /// The spec file the error is about, as given by the caller.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// 1-based line of the offending key or value, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// 1-based column (in characters) of the offending key or value, when known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// What is wrong and what is valid there, without the file and position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `Display` helper: `FILE:LINE:COL: message`, or `FILE: message` without a position.
struct Rendered<'a>(&'a SpecError);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.file.display())?;
        if let Some(line) = e.line {
            write!(f, ":{line}")?;
            if let Some(col) = e.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", e.message)
    }
}
