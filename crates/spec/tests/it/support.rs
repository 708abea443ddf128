//! Helpers the spec tests share.

use graphc_spec::SpecError;

/// Asserts an error's message and its 1-based line and column.
#[track_caller]
pub fn assert_err(e: &SpecError, line: usize, column: usize, message: &str) {
    assert_eq!(e.message(), message, "{e}");
    assert_eq!((e.line(), e.column()), (Some(line), Some(column)), "{e}");
}
