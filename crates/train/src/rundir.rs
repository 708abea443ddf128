//! The output directory (`--out DIR`) of a run: locked for the run's whole length, and never
//! left damaged by a run that fails.
//!
//! - `DIR/.graphc.lock` is created without following a symbolic link and locked (`flock`) for
//!   the whole run; it holds the PID of the run holding it, which a second run on `DIR` names
//!   when it refuses. It is removed when the run ends.
//! - An empty (or new) `DIR` is written directly, so a killed run leaves its `metrics.jsonl`
//!   and last `checkpoint/` there to `--resume` from. A run that fails removes what it wrote
//!   (and `DIR` itself when it made it).
//! - A `DIR` that holds anything else is refused, unless the run resumes the checkpoint in
//!   `DIR` or `--overwrite` is given. Such a run writes into a fresh staging directory
//!   `DIR/.graphc-staging-PID` (marked as graphc's by a file `.graphc-staging` in it) and only
//!   once it has succeeded moves its files into `DIR` by renames, which replace a file or
//!   symbolic link at that name without following it. A failed run removes its staging
//!   directory and leaves `DIR` as it was; a killed one leaves it, and the next run on `DIR`
//!   removes it (it is provably graphc's by its name and marker, and no run holds the lock).
//! - A `--resume` of the checkpoint in `DIR` is the same run going on, so its checkpoints are
//!   promoted into `DIR` as they are written: at its first checkpoint its `metrics.jsonl`
//!   (which begins with the bytes of `DIR/metrics.jsonl` the old checkpoint counts) replaces
//!   `DIR/metrics.jsonl` by a rename of a hard link to it, so both names then grow together;
//!   then each checkpoint replaces `DIR/checkpoint` atomically. At every moment `DIR` holds a
//!   checkpoint and the metrics it counts, so a resume that is killed or fails after a
//!   checkpoint leaves `DIR` resumable from there, not from where it started; the run's other
//!   files (model, plot) replace `DIR`'s only at its successful end.
//! - `DIR/.graphc-files` lists the files the last successful run wrote. A `labels.json`,
//!   `standardize.json`, `split.json` or `best.safetensors` the new run does not write is
//!   removed only when that list names it:
//!   files graphc did not write are never deleted.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::checkpoint::CHECKPOINT_DIR;
use crate::run::{BEST_FILE, LABELS_FILE, MODEL_FILE, PLOT_FILE, SPLIT_FILE, STANDARDIZE_FILE};
use crate::{write_atomic, TrainError};

/// The lock file inside the output directory.
pub const LOCK_FILE: &str = ".graphc.lock";
/// The list of files the last successful run wrote.
pub const MANIFEST_FILE: &str = ".graphc-files";
/// The name of a staging directory, before the PID.
const STAGING_PREFIX: &str = ".graphc-staging-";
/// The name of a staged `metrics.jsonl`'s link while it is renamed into place, before the PID.
const METRICS_LINK_PREFIX: &str = ".graphc-metrics-";
/// The file that marks a staging directory as graphc's.
const STAGING_MARKER: &str = ".graphc-staging";
/// The metrics file of a run.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Every name a run writes into its directory, in the order a staged run moves them.
const OUTPUTS: [&str; 8] = [
    CHECKPOINT_DIR,
    METRICS_FILE,
    LABELS_FILE,
    STANDARDIZE_FILE,
    SPLIT_FILE,
    BEST_FILE,
    MODEL_FILE,
    PLOT_FILE,
];

/// A locked output directory and where the run writes.
pub(crate) struct RunDir {
    out: PathBuf,
    /// Where this run writes: `out`, or its staging directory.
    work: PathBuf,
    staged: bool,
    /// The run resumes `out`'s own checkpoint: its checkpoints go straight into `out`.
    promote: bool,
    /// `out` did not exist before the run.
    created_out: bool,
    lock_path: PathBuf,
    /// Held (locked) until the run ends.
    lock: Option<File>,
}

fn io(action: &'static str, path: &Path, e: &std::io::Error) -> TrainError {
    TrainError::io(
        action,
        path,
        e,
        "choose a writable --out directory, or check free disk space",
    )
}

/// An entry of a directory by its name, not following a symbolic link.
fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

impl RunDir {
    /// Makes (when missing) and locks `out`, removes staging directories killed runs left, and
    /// decides where the run writes. `resume` is the checkpoint a resumed run continues.
    pub(crate) fn open(
        out: &Path,
        resume: Option<&Path>,
        overwrite: bool,
    ) -> Result<Self, TrainError> {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| io("create output directory", out, &e))?;
        }
        let created_out = match fs::create_dir(out) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !out.is_dir() {
                    return Err(TrainError::Data(format!(
                        "--out `{}` exists and is not a directory; choose a directory",
                        out.display()
                    )));
                }
                false
            }
            Err(e) => return Err(io("create output directory", out, &e)),
        };
        let lock_path = out.join(LOCK_FILE);
        let mut dir = RunDir {
            out: out.to_path_buf(),
            work: out.to_path_buf(),
            staged: false,
            promote: false,
            created_out,
            lock_path,
            lock: None,
        };
        if let Err(e) = dir.lock() {
            dir.give_up();
            return Err(e);
        }
        dir.remove_dead_staging();

        let others: Vec<String> = fs::read_dir(out)
            .map_err(|e| io("read", out, &e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != LOCK_FILE)
            .collect();
        if others.is_empty() {
            return Ok(dir);
        }
        let own_resume = resume
            .and_then(|c| c.parent())
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .and_then(|p| p.canonicalize().ok())
            .is_some_and(|p| out.canonicalize().is_ok_and(|o| o == p));
        if !own_resume && !overwrite {
            let mut names = others;
            names.sort();
            let shown = names.len().min(4);
            let more = if names.len() > shown { ", …" } else { "" };
            let err = TrainError::Data(format!(
                "--out `{}` already holds files ({}{more}); a run never replaces another: choose a new --out, continue the run there with --resume {}, or pass --overwrite to replace its files once the new run has succeeded",
                out.display(),
                names[..shown].join(", "),
                out.join(CHECKPOINT_DIR).display()
            ));
            dir.give_up();
            return Err(err);
        }
        let work = out.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        if let Err(e) = fs::create_dir(&work) {
            let err = io("create staging directory", &work, &e);
            dir.give_up();
            return Err(err);
        }
        dir.work = work;
        dir.staged = true;
        dir.promote = own_resume;
        if let Err(e) = File::create_new(dir.work.join(STAGING_MARKER)) {
            let err = io("create", &dir.work.join(STAGING_MARKER), &e);
            dir.abandon();
            return Err(err);
        }
        Ok(dir)
    }

    /// Where the run writes its files.
    pub(crate) fn work(&self) -> &Path {
        &self.work
    }

    /// Where the run's checkpoints go, promoted as they are written: `out` for a staged resume
    /// of `out`'s own checkpoint (see the module header), else `None` (they go with the rest
    /// into [`RunDir::work`]).
    pub(crate) fn promoted_to(&self) -> Option<&Path> {
        self.promote.then_some(self.out.as_path())
    }

    /// Takes the lock on `out` or says which process holds it.
    fn lock(&mut self) -> Result<(), TrainError> {
        let path = &self.lock_path;
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| io("create lock file", path, &e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = Read::by_ref(&mut file).take(64).read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "another process".to_owned(),
                };
                return Err(TrainError::Data(format!(
                    "--out `{}` is in use by another graphc run ({holder}, lock file `{}`); wait for it to end or choose another --out",
                    self.out.display(),
                    path.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io("lock", path, &e)),
        }
        // A run that ended between our open and our lock removed the file we locked.
        let same = match (file.metadata(), fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if !same {
            return Err(TrainError::Data(format!(
                "--out `{}`: another graphc run ended while this one took the lock `{}`; run again",
                self.out.display(),
                path.display()
            )));
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        self.lock = Some(file);
        written.map_err(|e| io("write", &self.lock_path, &e))
    }

    /// Removes the staging directories of killed runs (named and marked as graphc's; no run
    /// holds them, as this one holds the lock), and the link to a staged `metrics.jsonl` a
    /// killed resume left before renaming it into place.
    fn remove_dead_staging(&self) {
        let Ok(entries) = fs::read_dir(&self.out) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let ours = entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
                && entry.file_type().is_ok_and(|t| t.is_dir())
                && fs::symlink_metadata(path.join(STAGING_MARKER)).is_ok_and(|m| m.is_file());
            if ours {
                let _ = fs::remove_dir_all(&path);
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with(METRICS_LINK_PREFIX)
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// Makes the run's files the content of `out`: a staged run's files are moved in (each
    /// rename replaces what was at that name without following it), stale `labels.json` and
    /// `standardize.json` a previous run wrote are removed; then the lock is released.
    pub(crate) fn commit(mut self) -> Result<(), TrainError> {
        let promoted = |name: &str| self.promote && name == CHECKPOINT_DIR;
        let written: Vec<&str> = OUTPUTS
            .into_iter()
            .filter(|&name| {
                exists(&self.work.join(name)) || (promoted(name) && exists(&self.out.join(name)))
            })
            .collect();
        if self.staged {
            if let Err(e) = self.move_in(&written) {
                self.abandon();
                return Err(e);
            }
        }
        let mut list = written.join("\n");
        list.push('\n');
        let result = write_atomic(&self.out.join(MANIFEST_FILE), list.as_bytes());
        sync_dir(&self.out);
        self.release();
        Ok(result?)
    }

    fn move_in(&self, written: &[&str]) -> Result<(), TrainError> {
        // A few names; more than a few KiB is not graphc's list, and is read no further.
        let mut previous = String::new();
        let manifest = self.out.join(MANIFEST_FILE);
        let regular = fs::symlink_metadata(&manifest).is_ok_and(|m| m.is_file());
        if let Some(file) = regular.then(|| File::open(&manifest).ok()).flatten() {
            let _ = file.take(4096).read_to_string(&mut previous);
        }
        let graphcs = |name: &str| previous.lines().any(|l| l == name);
        let aside = self.work.join(".replaced");
        fs::create_dir(&aside).map_err(|e| io("create directory", &aside, &e))?;
        for name in OUTPUTS {
            let (new, old) = (self.work.join(name), self.out.join(name));
            if written.contains(&name) && !exists(&new) {
                // A promoted checkpoint, already in place.
            } else if written.contains(&name) {
                // A directory (the checkpoint) cannot replace one by a rename: the old one is
                // moved aside first.
                if fs::symlink_metadata(&old).is_ok_and(|m| m.is_dir()) {
                    fs::rename(&old, aside.join(name)).map_err(|e| io("rename", &old, &e))?;
                }
                fs::rename(&new, &old).map_err(|e| io("rename", &new, &e))?;
            } else if exists(&old) && graphcs(name) {
                fs::rename(&old, aside.join(name)).map_err(|e| io("rename", &old, &e))?;
            }
        }
        Ok(())
    }

    /// Leaves `out` as it was before the run: removes the staging directory, or what the run
    /// wrote into the (empty) `out` and `out` itself when the run made it.
    pub(crate) fn abandon(&mut self) {
        if self.staged {
            let _ = fs::remove_dir_all(&self.work);
        } else {
            for name in OUTPUTS {
                let path = self.out.join(name);
                let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir_all(&path));
            }
            let pid = std::process::id();
            for leftover in [
                format!(".{CHECKPOINT_DIR}.tmp-{pid}"),
                format!(".{CHECKPOINT_DIR}.old-{pid}"),
            ] {
                let _ = fs::remove_dir_all(self.out.join(leftover));
            }
        }
        self.give_up();
    }

    /// Gives up before the run wrote anything: releases the lock, removes `out` when this run
    /// made it (and nothing else is in it).
    fn give_up(&mut self) {
        self.release();
        if self.created_out {
            let _ = fs::remove_dir(&self.out);
        }
    }

    /// Removes the lock file and releases the lock (a run that opened the file meanwhile
    /// sees it gone and refuses).
    fn release(&mut self) {
        if let Some(lock) = self.lock.take() {
            if self.staged {
                let _ = fs::remove_dir_all(&self.work);
            }
            let _ = fs::remove_file(&self.lock_path);
            drop(lock);
        }
    }
}

/// Makes `staged` (a staged run's `metrics.jsonl`, flushed) the content of `out/metrics.jsonl`
/// before a checkpoint is promoted into `out`: a hard link to it renamed into place, so that
/// the two names grow together from then on (`true`), or where hard links are not supported a
/// copy renamed into place, made again at each checkpoint (`false`). The rename replaces what
/// is at that name without following it; until it happens `out/metrics.jsonl` is the old one.
pub(crate) fn promote_metrics(staged: &Path, out: &Path) -> Result<bool, TrainError> {
    let temporary = out.join(format!("{METRICS_LINK_PREFIX}{}", std::process::id()));
    let _ = fs::remove_file(&temporary);
    let linked = match fs::hard_link(staged, &temporary) {
        Ok(()) => true,
        Err(_) => {
            fs::copy(staged, &temporary).map_err(|e| io("copy", staged, &e))?;
            false
        }
    };
    let target = out.join(METRICS_FILE);
    fs::rename(&temporary, &target).map_err(|e| io("rename", &temporary, &e))?;
    sync_dir(out);
    Ok(linked)
}

/// Flushes directory entries (renames) to disk; best effort.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
