//! Helpers shared by the `graphc` binary's end-to-end tests: running the binary, scratch
//! directories, snapshots of what a directory holds, and the one-clear-line check every
//! bad-input test makes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (specs and data live there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `graphc ARGS` in `dir`.
pub fn graphc_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graphc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("graphc runs")
}

/// `graphc ARGS` in `dir` with its address space limited to `mib` MiB (`ulimit -v` in a
/// shell that then execs it), so that a regression which allocates without bound fails the
/// test instead of exhausting the machine. The loaders budget half of that limit.
pub fn graphc_limited(dir: &Path, mib: u64, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", mib * 1024))
        .arg(env!("CARGO_BIN_EXE_graphc"))
        .args(args)
        .current_dir(dir);
    command
}

/// Writes `files` into a fresh directory and returns it.
pub fn scratch(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Asserts a failed run: non-zero exit, one `error:` line, no panic, mentioning each of
/// `needles`, and returns the message.
#[track_caller]
pub fn assert_clear_failure(o: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "message should mention {n:?}: {err}");
    }
    err
}

/// Every file under `dir` by its relative path, with its bytes (a symbolic link: its target).
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                files.insert(name, target.to_string_lossy().as_bytes().to_vec());
            } else if meta.is_dir() {
                walk(root, &path, files);
            } else {
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}
