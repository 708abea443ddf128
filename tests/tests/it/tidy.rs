//! The project's own rules, checked as a test: every Rust file opens with a
//! `//!` line saying what it owns, and `unsafe` appears only in `crates/jit`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn repo_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["crates", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 30, "found only {} Rust files", files.len());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let relative = p.strip_prefix(&root).unwrap().to_path_buf();
            (relative, text)
        })
        .collect()
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let missing: Vec<String> = repo_files()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` header: {missing:?}"
    );
}

#[test]
fn unsafe_code_lives_only_in_the_jit() {
    let needle = ["un", "safe"].concat();
    let offenders: Vec<String> = repo_files()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("crates/jit"))
        .filter(|(_, text)| {
            text.lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .any(|l| {
                    l.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|w| w == needle)
                })
        })
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "{needle} outside crates/jit: {offenders:?}"
    );
}
