//! Atomic file writes: readers see the old file or the new one, never a part.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::DataError;

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a part.
///
/// The bytes go to a temporary file `.<name>.tmp-<random>` in the same directory, which is
/// fsynced and renamed over `path` (then the directory is fsynced, where the platform allows).
/// The new file gets the permissions `File::create` gives (0o666 less the umask on Unix), not
/// the owner-only ones of a temporary file. On any error the temporary file is removed and
/// `path` is left as it was.
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
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(".tmp-");
    // Created like `File::create` creates, not owner-only as tempfile's own files are; a name
    // already taken is retried with another. Dropping the temporary file on an error (also
    // inside a failed `persist`) removes it.
    let result = (|| -> std::io::Result<()> {
        let mut file = tempfile::Builder::new()
            .prefix(&prefix)
            .make_in(&dir, |p| {
                File::options().write(true).create_new(true).open(p)
            })?;
        file.as_file_mut().write_all(bytes)?;
        file.as_file().sync_all()?;
        file.persist(path)?;
        Ok(())
    })();
    if let Err(e) = result {
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
    use std::fs;

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

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_permissions_file_create_gives_not_owner_only_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let created = dir.path().join("created");
        File::create(&created).unwrap();
        let written = dir.path().join("written");
        write_atomic(&written, b"{}").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&written), mode(&created));
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
