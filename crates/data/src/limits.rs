//! How much memory a loader may use, and the checks every whole-file read makes before it
//! allocates: the file's type (no FIFOs, devices or directories) and its size.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::DataError;

/// The budget when the machine's memory cannot be read (no `/proc/meminfo`).
const DEFAULT_MEMORY: u64 = 16 << 30;

/// The machine's memory as a program may use it: physical memory from `/proc/meminfo`
/// (else 16 GiB), lowered to the process's address-space limit (`ulimit -v`) when there is one.
pub fn memory_limit() -> u64 {
    let physical = proc_value("/proc/meminfo", "MemTotal:", 1)
        .map(|kib| kib.saturating_mul(1024))
        .unwrap_or(DEFAULT_MEMORY);
    match proc_value("/proc/self/limits", "Max address space", 1) {
        Some(limit) => physical.min(limit),
        None => physical,
    }
}

/// The most bytes one data set (features and targets, as decoded) may take: half of
/// [`memory_limit`], leaving the rest for the model, the other data set and the program.
pub fn memory_budget() -> u64 {
    memory_limit() / 2
}

/// The number in whitespace-separated field `field` of the line of `file` starting with
/// `prefix` (`None` when missing or not a number, e.g. "unlimited").
fn proc_value(file: &str, prefix: &str, field: usize) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    line[prefix.len()..]
        .split_whitespace()
        .nth(field - 1)?
        .parse()
        .ok()
}

/// A byte count for messages: "512 bytes", "3.0 MiB", "4.0 GiB".
pub fn byte_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

pub use graphc_spec::special_file_kind;

/// Opens `path` for reading if it is a regular file, with its size; `what` names the file in
/// messages ("data file", "labels file"). A FIFO, device or directory is refused by its type
/// (checked on the open file, so it cannot be swapped in between).
pub fn open_regular(path: &Path, what: &'static str) -> Result<(File, u64), DataError> {
    let open_error = |e: std::io::Error| {
        DataError::io(
            open_action(what),
            path,
            &e,
            "check that the file exists and the path is right",
        )
    };
    let refuse = |kind: &str| {
        DataError::Invalid(format!(
            "{}: is {kind}, not a regular file; give the path of a {what}",
            crate::quoted(path)
        ))
    };
    // Checked by path first, since opening a FIFO blocks until something writes to it, and
    // again on the open file, in case the path was swapped in between.
    let metadata = std::fs::metadata(path).map_err(open_error)?;
    if let Some(kind) = special_file_kind(&metadata) {
        return Err(refuse(kind));
    }
    let file = File::open(path).map_err(open_error)?;
    let metadata = file
        .metadata()
        .map_err(|e| DataError::io("read", path, &e, "check that the file is readable"))?;
    if let Some(kind) = special_file_kind(&metadata) {
        return Err(refuse(kind));
    }
    Ok((file, metadata.len()))
}

/// The action shown when a file cannot be opened.
fn open_action(what: &'static str) -> &'static str {
    match what {
        "data file" => "open data file",
        _ => "read",
    }
}

/// Reads the whole regular file `path`, refusing special files (see [`open_regular`]) and
/// files over `max` bytes, whatever its size grows to while reading.
pub fn read_bytes_bounded(path: &Path, what: &'static str, max: u64) -> Result<Vec<u8>, DataError> {
    let (file, len) = open_regular(path, what)?;
    let too_big = || {
        DataError::Invalid(format!(
            "{}: the {what} is larger than {}, the most that is read; check the path",
            crate::quoted(path),
            byte_size(max)
        ))
    };
    if len > max {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io("read", path, &e, "check that the file is readable"))?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

/// [`read_bytes_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, what: &'static str, max: u64) -> Result<String, DataError> {
    let bytes = read_bytes_bounded(path, what, max)?;
    String::from_utf8(bytes).map_err(|e| {
        DataError::Invalid(format!(
            "{}: not UTF-8 text (byte {} is invalid); save the {what} as UTF-8",
            crate::quoted(path),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Checks that `bytes` (a size a file declares, with checked arithmetic already done) fits the
/// memory budget; `what` says what is being loaded, e.g. "`x.npy`: shape (4294967296,)".
pub fn check_budget(bytes: Option<u64>, what: impl FnOnce() -> String) -> Result<(), DataError> {
    let budget = memory_budget();
    match bytes {
        Some(b) if b <= budget => Ok(()),
        Some(b) => Err(DataError::Invalid(format!(
            "{} needs {} of memory, more than the {} a data set may use (half of the memory this process may use); use a smaller data set",
            what(),
            byte_size(b),
            byte_size(budget)
        ))),
        None => Err(DataError::Invalid(format!(
            "{} is too large to count in bytes; use a smaller data set",
            what()
        ))),
    }
}
