//! Atomic file writes: readers see the old file or the new one, never a part.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::DataError;

/// Distinguishes temporary files of concurrent writes within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a part.
///
/// The bytes go to a temporary file `.<name>.tmp-<pid>-<n>` in the same directory, which is
/// fsynced and renamed over `path` (then the directory is fsynced, where the platform allows).
/// On any error the temporary file is removed and `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let Some(file_name) = path.file_name() else {
        return Err(DataError::Io {
            action: "write",
            path: path.to_path_buf(),
            detail: "the path does not name a file".into(),
            hint: "give a file path, not a directory",
        });
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = dir.join(temp_name);

    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        // The temp file may not exist (e.g. the directory is missing); nothing else to clean.
        let _ = fs::remove_file(&temp);
        return Err(DataError::io(
            "write",
            path,
            &e,
            "check that the directory exists and is writable",
        ));
    }
    sync_dir(&dir);
    Ok(())
}

/// Flushes a directory entry change (the rename) to disk; best effort, where supported.
fn sync_dir(dir: &Path) {
    if cfg!(unix) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `dir`, sorted.
    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn failed_rename_removes_the_temp_file_and_keeps_the_target() {
        // Renaming a file over a non-empty directory fails: the write errors, the temp file goes.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"x").unwrap();
        assert!(write_atomic(&target, b"{}").is_err());
        assert_eq!(dir_entries(dir.path()), vec!["out.json"]);
        assert_eq!(dir_entries(&target), vec!["keep"]);
    }

    #[test]
    fn write_atomic_writes_the_bytes_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"{\"step\": 1}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"step\": 1}");
        assert_eq!(dir_entries(dir.path()), vec!["state.json"]);
    }
}
