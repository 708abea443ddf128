//! Checkpoint files: atomic replacement, recovery of a replacement a crash interrupted, and
//! a state read back equal to the one written.

use std::path::Path;

use graphc_interp::Interp;
use graphc_train::checkpoint::{self, BatchOrder, MonitorState, Progress};
use graphc_train::Trainer;

fn trainer() -> Trainer {
    let text = "data: {train: {csv: x.csv, target: y}, batch_size: 2}\n\
                model: {input: [2], layers: [{type: linear, out: 3}]}\n\
                loss: {type: mse}\n\
                optimizer: {type: adam, lr: 0.01, param_groups: [{params: [\"0.bias\"], lr: 0.1}]}\n\
                scheduler: {type: one_cycle_lr, max_lr: [0.5, 0.05], total_steps: 10}\n\
                train: {steps: 3}\n";
    let spec = graphc_spec::parse_str(text, Path::new("x.yaml")).unwrap();
    let layout = graphc_nn::natural_layout(&spec).unwrap();
    let mut t = Trainer::new(spec, Box::new(Interp), layout).unwrap();
    let y = graphc_train::BatchTargets::Floats(vec![1.0, 0.0, -1.0, 0.5, 0.5, 0.5]);
    for _ in 0..3 {
        t.step(&[0.5, -1.0, 2.0, 0.25], &y).unwrap();
    }
    t
}

fn progress(epoch: u64) -> Progress {
    Progress {
        epoch,
        batch: 1,
        epoch_loss_sum: 0.75,
        pending_loss_sum: 0.0,
        last_loss: Some(0.5),
        metrics_bytes: 120,
        // Early stopping's watch travels with the position.
        monitor: Some(MonitorState {
            best: Some((1, 0.25)),
            wait: 1,
            stopped_at: None,
        }),
    }
}

fn order() -> BatchOrder {
    BatchOrder {
        seed: 0,
        shuffle: true,
        samples: 4,
        batch_size: 2,
        drop_last: false,
        accumulate: 1,
    }
}

fn read(dir: &Path, t: &Trainer) -> checkpoint::Checkpoint {
    let groups: Vec<_> = t
        .live_groups()
        .iter()
        .map(|&g| t.group(g).unwrap().clone())
        .collect();
    checkpoint::read(dir, &t.spec().optimizer.kind, &groups).unwrap()
}

#[test]
fn a_checkpoint_reads_back_as_the_state_it_was_written_from() {
    let t = trainer();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    checkpoint::write(&path, &t.state_dict(), &progress(2), &order()).unwrap();
    let back = read(&path, &t);
    let mut expected = t.state_dict();
    // safetensors files list tensors by name.
    expected.model.tensors.sort_by(|a, b| a.name.cmp(&b.name));
    expected.optimizer.state.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(back.state, expected);
    assert_eq!(back.progress, progress(2));
    assert_eq!(back.order, order());
}

#[test]
fn writing_again_replaces_the_checkpoint_and_leaves_no_temporary_directory() {
    let t = trainer();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    checkpoint::write(&path, &t.state_dict(), &progress(1), &order()).unwrap();
    checkpoint::write(&path, &t.state_dict(), &progress(2), &order()).unwrap();
    assert_eq!(read(&path, &t).progress.epoch, 2);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["checkpoint"]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_crash_between_the_two_renames_is_recovered_with_the_newer_checkpoint() {
    let t = trainer();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    checkpoint::write(&path, &t.state_dict(), &progress(1), &order()).unwrap();
    let old = dir.path().join(".checkpoint.old-1");
    std::fs::rename(&path, &old).unwrap();
    let staging = dir.path().join("staging");
    checkpoint::write(&staging, &t.state_dict(), &progress(2), &order()).unwrap();
    copy_dir(&staging, &dir.path().join(".checkpoint.tmp-2"));
    assert_eq!(checkpoint::resolve(&path).unwrap(), path);
    assert_eq!(read(&path, &t).progress.epoch, 2);
}

#[test]
fn a_crash_before_the_new_checkpoint_was_complete_keeps_the_previous_one() {
    let t = trainer();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    checkpoint::write(&path, &t.state_dict(), &progress(1), &order()).unwrap();
    std::fs::rename(&path, dir.path().join(".checkpoint.old-1")).unwrap();
    let half = dir.path().join(".checkpoint.tmp-2");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("model.safetensors"), b"partial").unwrap();
    assert_eq!(read(&path, &t).progress.epoch, 1);
}

#[test]
fn a_state_json_of_something_else_is_a_clear_error() {
    let t = trainer();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), "{\"format\": \"other\"}").unwrap();
    let groups: Vec<_> = t
        .live_groups()
        .iter()
        .map(|&g| t.group(g).unwrap().clone())
        .collect();
    let e = checkpoint::read(dir.path(), &t.spec().optimizer.kind, &groups)
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("state.json is not a graphc checkpoint"), "{e}");
}
