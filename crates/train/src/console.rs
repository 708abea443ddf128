//! Standard output and standard error: every line graphc prints — a command's results and its
//! error message, a run's progress lines and epoch table — goes through [`print`], so that a
//! write that fails is an error like any other (`println!` panics, and the process exits 101).
//!
//! A stream whose reader went away (a closed pipe, as in `graphc inspect … | head -1`) gives an
//! error for which [`ConsoleError::is_broken_pipe`] holds; `graphc` then ends quietly with
//! status [`BROKEN_PIPE_STATUS`]. Any other failure (`> /dev/full`) is one message on standard
//! error and status 1. A run whose progress output fails stops there, as a failed run.

use std::io::Write;

/// The exit status of a command whose standard output or error was closed by its reader: 141,
/// what a shell shows for a process killed by `SIGPIPE` (128 + 13), as `cat` or `grep` are in
/// `… | head -1`. Rust ignores `SIGPIPE`, so graphc sees the closed pipe as a write error and
/// exits with this status itself. Not 0: the output was not delivered in full, and a pipeline
/// under `set -o pipefail` should say so, as it does for every other producer; without
/// `pipefail` a pipeline's status is its last command's, so `… | head -1` succeeds either way.
pub const BROKEN_PIPE_STATUS: u8 = 141;

/// One of the two standard streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: results (a summary line, predictions, a report).
    Stdout,
    /// Standard error: progress and messages.
    Stderr,
}

impl Stream {
    /// The stream's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "standard output",
            Stream::Stderr => "standard error",
        }
    }
}

/// A write to standard output or standard error that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to {}: {error}; check where it goes", stream.name())]
pub struct ConsoleError {
    /// The stream.
    pub stream: Stream,
    /// Why the write failed (folded into the message, not a `source()`).
    error: std::io::Error,
}

impl ConsoleError {
    /// The failure `error` of a write to `stream`.
    pub fn new(stream: Stream, error: std::io::Error) -> ConsoleError {
        ConsoleError { stream, error }
    }

    /// The stream's reader went away (`EPIPE`): the conventional end is a quiet exit with
    /// [`BROKEN_PIPE_STATUS`].
    pub fn is_broken_pipe(&self) -> bool {
        self.error.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes `text` to `stream` and flushes it, so that a failure is reported here rather than
/// lost when the buffer is dropped at exit.
pub fn print(stream: Stream, text: &str) -> Result<(), ConsoleError> {
    let written = match stream {
        Stream::Stdout => write_all(&mut std::io::stdout().lock(), text),
        Stream::Stderr => write_all(&mut std::io::stderr().lock(), text),
    };
    written.map_err(|error| ConsoleError::new(stream, error))
}

/// [`print`] with a newline after `text`.
pub fn println(stream: Stream, text: &str) -> Result<(), ConsoleError> {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    print(stream, &line)
}

fn write_all(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_names_the_stream_and_the_real_reason() {
        let full = ConsoleError {
            stream: Stream::Stdout,
            error: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let text = full.to_string();
        assert!(
            text.starts_with("cannot write to standard output: No space left on device"),
            "{text}"
        );
        assert!(!full.is_broken_pipe());
        let closed = ConsoleError {
            stream: Stream::Stderr,
            error: std::io::Error::from_raw_os_error(libc::EPIPE),
        };
        assert!(closed.is_broken_pipe());
        assert!(closed.to_string().contains("standard error"));
    }
}
