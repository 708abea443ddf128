//! Hostile data files: special files refused by type before reading, over-long CSV rows,
//! sizes beyond the memory budget, and a `labels.json` that does not name every class.

use std::path::Path;

use graphc_data::{
    load_csv, load_idx, load_npy, memory_budget, read_labels_for, read_text_bounded, TargetKind,
    MAX_RECORD,
};

use crate::support::write;

#[test]
fn character_devices_are_refused_by_every_loader_without_reading() {
    let zero = Path::new("/dev/zero");
    let msgs = [
        load_csv(zero, &["y".into()], None, TargetKind::ClassIndex).map(|_| ()),
        load_npy(zero, zero, TargetKind::Float).map(|_| ()),
        load_idx(zero, zero, TargetKind::ClassIndex).map(|_| ()),
        read_labels_for(zero, 3).map(|_| ()),
    ];
    for m in msgs {
        let msg = m.expect_err("a device is refused").to_string();
        assert!(
            msg.starts_with(
                "`/dev/zero`: is a character device, not a regular file; give the path of a"
            ),
            "{msg}"
        );
    }
}

#[test]
fn a_directory_is_refused_as_a_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let msg = load_csv(dir.path(), &["y".into()], None, TargetKind::Float)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is a directory, not a regular file"), "{msg}");
}

#[test]
fn a_csv_row_over_the_limit_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = b"a,y\n1,0\n".to_vec();
    data.resize(data.len() + MAX_RECORD as usize + (1 << 20), b'5');
    data.extend_from_slice(b",1\n");
    let path = write(dir.path(), "long.csv", &data);
    let msg = load_csv(&path, &["y".into()], None, TargetKind::ClassIndex)
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        format!(
            "`{}` line 3: the row is longer than 16.0 MiB, the most a CSV row may hold; check that this is a CSV file with one row per line",
            path.display()
        )
    );
}

#[test]
fn a_csv_header_over_the_limit_names_line_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = vec![b'a'; MAX_RECORD as usize + (1 << 20)];
    data.extend_from_slice(b",y\n1,0\n");
    let path = write(dir.path(), "wide.csv", &data);
    let msg = load_csv(&path, &["y".into()], None, TargetKind::ClassIndex)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("wide.csv` line 1: the row is longer than"),
        "{msg}"
    );
}

#[test]
fn an_npy_shape_beyond_the_memory_budget_is_refused_before_reading() {
    // A header declaring more float32 values than the budget allows, with that many bytes
    // "present" in a sparse file so the truncation check passes and the budget decides.
    let count = memory_budget() / 4 + 1;
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({count},), }}");
    let mut dict = dict.into_bytes();
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(b' ');
    }
    dict.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&dict);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x.npy", &bytes);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(bytes.len() as u64 + count * 4).unwrap();
    let msg = load_npy(&path, &path, TargetKind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("x.npy`: shape ({count},) needs")) && msg.contains("more than the"),
        "{msg}"
    );
}

#[test]
fn labels_json_must_have_one_name_per_class() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "labels.json", b"[\"cat\", \"dog\"]\n");
    let msg = read_labels_for(&path, 3).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "`{}`: has 2 class names but the model has 3 classes; it must name every class once, in index order",
            path.display()
        )
    );
    assert_eq!(read_labels_for(&path, 2).unwrap(), ["cat", "dog"]);
}

#[test]
fn bounded_text_reads_refuse_files_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "m.jsonl", &[b'x'; 2048]);
    let msg = read_text_bounded(&path, "metrics file", 1024)
        .unwrap_err()
        .to_string();
    assert!(
        msg.ends_with("m.jsonl`: the metrics file is larger than 1.0 KiB, the most that is read; check the path"),
        "{msg}"
    );
    assert_eq!(
        read_text_bounded(&path, "metrics file", 4096)
            .unwrap()
            .len(),
        2048
    );
}
