//! The hostile-input suite (issue #11): every case of the audit, and a few more of each kind,
//! as one table run through the `graphc` binary under a [`LIMIT_MIB`] address-space limit. Each
//! case states its exit status, the words of its message, and what `--out` holds afterwards;
//! a loader that allocated what a file declares, or a read that grew without bound, fails here
//! instead of exhausting the machine. Multi-step run-directory scenarios (a failed or killed
//! re-run, the lock, a tampered checkpoint) are in `run_dir.rs`; the soak test is at the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::{graphc_in, graphc_limited, scratch, snapshot};

/// The address-space limit (MiB) every case runs under; the loaders budget half of it.
const LIMIT_MIB: u64 = 768;

/// What a case tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A size (batch, classes, samples) that would overflow or exhaust memory.
    Size,
    /// A file whose header or archive declares far more than it holds.
    Bomb,
    /// A device, FIFO or directory where a file is read.
    SpecialFile,
    /// Input that is long rather than large: a CSV row, nesting, many axes.
    Long,
    /// Standard output or error that cannot be written.
    Output,
    /// A message that must name the right thing (class names, capped shapes).
    Message,
}

/// Where a standard stream of the run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Captured by the test.
    Captured,
    /// A pipe whose reader is already gone (`| head -1` after `head` exited).
    ClosedPipe,
    /// `/dev/full`: every write fails with "No space left on device".
    Full,
}

/// How a case ends.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Status 1 and one `error:` line on standard error with each of these.
    Fails(&'static [&'static str]),
    /// Status 1 with standard error itself unwritable, so no message can be seen.
    FailsUnheard,
    /// Status 141 (a closed pipe) and nothing on standard error.
    BrokenPipe,
}

/// What `DIR/out` holds after the case.
#[derive(Debug, Clone, Copy)]
enum Out {
    /// Nothing: the directory does not exist.
    Absent,
    /// Exactly what it held before the case (bytes compared).
    Unchanged,
    /// These entries (a finished run's files).
    Holds(&'static [&'static str]),
}

/// One hostile input.
struct Case {
    name: &'static str,
    kind: Kind,
    /// Writes the case's files into the scratch directory (may train a run into `out`).
    setup: fn(&Path),
    args: &'static [&'static str],
    stdout: Sink,
    stderr: Sink,
    expect: Expect,
    out: Out,
}

/// A finished run's files in `DIR/out`.
const RUN_FILES: &[&str] = &[
    ".graphc-files",
    "checkpoint",
    "loss.svg",
    "metrics.jsonl",
    "model.safetensors",
];

const SPEC: &str = "
data: {train: {csv: data.csv, target: y}, batch_size: 2}
model: {input: [2], layers: [{type: linear, out: 3}]}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2}
";

const DATA: &str = "a,b,y\n1,2,0\n3,4,1\n5,6,2\n7,8,1\n";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// `spec.yaml` ([`SPEC`]) and `data.csv`.
fn spec_and_data(dir: &Path) {
    write(dir, "spec.yaml", SPEC);
    write(dir, "data.csv", DATA);
}

/// [`spec_and_data`] and a finished run of it in `out`.
fn trained(dir: &Path) {
    spec_and_data(dir);
    let o = graphc_in(dir, &["train", "spec.yaml", "--out", "out", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A synthetic spec with `synthetic` as its training source and `loss` as its loss.
fn synthetic_spec(dir: &Path, synthetic: &str, loss: &str) {
    write(
        dir,
        "spec.yaml",
        &format!(
            "data: {{train: {{synthetic: {{{synthetic}}}}}, batch_size: 2}}\nmodel: {{input: [2], layers: [{{type: linear, out: 2}}]}}\nloss: {{type: {loss}}}\noptimizer: {{type: sgd, lr: 0.1}}\ntrain: {{epochs: 1}}\n"
        ),
    );
}

/// [`SPEC`] with its CSV source replaced by `source` and `edit` applied.
fn spec_with_source(dir: &Path, source: &str, edit: impl Fn(String) -> String) {
    write(
        dir,
        "spec.yaml",
        &edit(SPEC.replace("{csv: data.csv, target: y}", source)),
    );
}

/// An `.npy` header for a float32 array of `shape` (a Python tuple), padded as NumPy pads it.
pub(crate) fn npy_header(shape: &str) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes `len` zero bytes through `w` in 1 MiB pieces.
fn write_zeros(w: &mut impl Write, len: usize) {
    let block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        w.write_all(&block[..n]).unwrap();
        left -= n;
    }
}

/// `bomb.npz` with `x.npy` holding `count` float32 zeros, deflated, and a one-value `y.npy`.
fn npz_of_zeros(dir: &Path, count: usize) {
    let file = File::create(dir.join("bomb.npz")).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .large_file(true);
    zip.start_file("x.npy", options).unwrap();
    zip.write_all(&npy_header(&format!("({count},)"))).unwrap();
    write_zeros(&mut zip, 4 * count);
    zip.start_file("y.npy", options).unwrap();
    zip.write_all(&npy_header("(1,)")).unwrap();
    write_zeros(&mut zip, 4);
    zip.finish().unwrap();
    spec_with_source(dir, "{npz: bomb.npz, features: x, target: y}", |s| {
        s.replace("cross_entropy", "mse")
    });
}

/// Replaces the finished run's `checkpoint/state.json` with a sparse file of 1 GiB.
fn huge_state_json(dir: &Path) {
    trained(dir);
    let file = File::create(dir.join("out/checkpoint/state.json")).unwrap();
    file.set_len(1 << 30).unwrap();
}

/// `model.input` of 100,000 axes of 1 and then `last`, as a 600 KB spec line.
fn many_axes_spec(dir: &Path, last: &str) {
    let axes = format!("{}{last}", "1, ".repeat(100_000));
    write(
        dir,
        "spec.yaml",
        &SPEC.replace("input: [2]", &format!("input: [{axes}]")),
    );
    write(dir, "data.csv", DATA);
}

/// Every case, by kind.
const CASES: &[Case] = &[
    // Sizes.
    Case {
        name: "bench with a batch whose arena would wrap mod 2^64",
        kind: Kind::Size,
        setup: |d| {
            synthetic_spec(d, "kind: linear, samples: 4, features: 1", "mse");
            let text = std::fs::read_to_string(d.join("spec.yaml")).unwrap();
            write(
                d,
                "spec.yaml",
                &text
                    .replace("batch_size: 2", "batch_size: 7686143364045559088")
                    .replace("input: [2]", "input: [1]")
                    .replace("out: 2", "out: 1"),
            );
        },
        args: &["bench", "spec.yaml", "--steps", "1"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["the training step needs about", "batch_size smaller"]),
        out: Out::Absent,
    },
    Case {
        name: "synthetic classes 2^63",
        kind: Kind::Size,
        setup: |d| {
            synthetic_spec(
                d,
                "kind: blobs, samples: 100, classes: 9223372036854775808",
                "cross_entropy",
            )
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "spec.yaml:1:",
            "data.train.synthetic.classes",
            "9223372036854775808 classes for 100 samples",
            "at most 100 classes",
        ]),
        out: Out::Absent,
    },
    Case {
        name: "synthetic classes 2^40",
        kind: Kind::Size,
        setup: |d| {
            synthetic_spec(
                d,
                "kind: blobs, samples: 100, classes: 1099511627776",
                "cross_entropy",
            )
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["1099511627776 classes for 100 samples"]),
        out: Out::Absent,
    },
    Case {
        name: "synthetic classes 2^28 on 100 samples",
        kind: Kind::Size,
        setup: |d| {
            synthetic_spec(
                d,
                "kind: blobs, samples: 100, classes: 268435456",
                "cross_entropy",
            )
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["268435456 classes for 100 samples"]),
        out: Out::Absent,
    },
    Case {
        name: "synthetic one-hot targets of 4 TiB",
        kind: Kind::Size,
        setup: |d| {
            synthetic_spec(
                d,
                "kind: blobs, samples: 1048576, classes: 1048576",
                "bce_with_logits",
            )
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "data.train.synthetic: 1048576 samples × 2 features with 1048576 classes",
            "needs 4.0 TiB of memory",
            "a data set may use",
        ]),
        out: Out::Absent,
    },
    // Bombs.
    Case {
        name: "npz member declaring more than the memory budget",
        kind: Kind::Bomb,
        // 2^27 float32 zeros (512 MiB) in a ~0.5 MiB archive: over half of the limit.
        setup: |d| npz_of_zeros(d, 1 << 27),
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "bomb.npz` array `x`: shape (134217728,)",
            "needs 512.0 MiB of memory",
            "more than the",
        ]),
        out: Out::Absent,
    },
    Case {
        name: "npz member within the budget but compressed 1000 to 1",
        kind: Kind::Bomb,
        // 2^25 float32 zeros (128 MiB) fit the 384 MiB budget, from ~130 KiB of deflate.
        setup: |d| npz_of_zeros(d, 1 << 25),
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "bomb.npz` array `x`: decodes to 128.0 MiB from ",
            "more than 200 to 1",
            "np.savez",
        ]),
        out: Out::Absent,
    },
    Case {
        name: "gzipped IDX declaring 784 MiB of images",
        kind: Kind::Bomb,
        setup: |d| {
            // 2^18 zero images of 28×28 bytes (196 MiB, 784 MiB as f32) in a ~0.2 MiB gzip file.
            let file = File::create(d.join("images.gz")).unwrap();
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            let mut header = vec![0, 0, 8, 3];
            for dim in [1u32 << 18, 28, 28] {
                header.extend_from_slice(&dim.to_be_bytes());
            }
            gz.write_all(&header).unwrap();
            write_zeros(&mut gz, (1 << 18) * 28 * 28);
            gz.finish().unwrap();
            std::fs::write(d.join("labels"), [0, 0, 8, 1, 0, 0, 0, 1, 0]).unwrap();
            spec_with_source(d, "{idx: {images: images.gz, labels: labels}}", |s| {
                s.replace("input: [2]", "input: [28, 28]")
            });
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "images.gz`: dimensions [262144, 28, 28]",
            "needs 784.0 MiB of memory",
        ]),
        out: Out::Absent,
    },
    Case {
        name: "inspect of a checkpoint whose state.json is 1 GiB",
        kind: Kind::Bomb,
        setup: huge_state_json,
        args: &["inspect", "out/checkpoint"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "out/checkpoint/state.json`: the checkpoint's state.json is larger than 16.0 MiB",
        ]),
        out: Out::Unchanged,
    },
    Case {
        name: "resume of a checkpoint whose state.json is 1 GiB",
        kind: Kind::Bomb,
        setup: huge_state_json,
        args: &["train", "spec.yaml", "--resume", "out/checkpoint"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["the checkpoint's state.json is larger than 16.0 MiB"]),
        out: Out::Unchanged,
    },
    // Special files.
    Case {
        name: "/dev/zero as the spec",
        kind: Kind::SpecialFile,
        setup: |_| {},
        args: &["train", "/dev/zero", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["/dev/zero", "the spec file is a character device"]),
        out: Out::Absent,
    },
    Case {
        name: "a directory as the spec",
        kind: Kind::SpecialFile,
        setup: |_| {},
        args: &["check", "."],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["the spec file is a directory"]),
        out: Out::Absent,
    },
    Case {
        name: "/dev/zero as a CSV training file",
        kind: Kind::SpecialFile,
        setup: |d| write(d, "spec.yaml", &SPEC.replace("data.csv", "/dev/zero")),
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["`/dev/zero`: is a character device, not a regular file"]),
        out: Out::Absent,
    },
    Case {
        name: "/dev/urandom as predict --data",
        kind: Kind::SpecialFile,
        setup: trained,
        args: &["predict", "spec.yaml", "--weights", "out", "--data", "/dev/urandom"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["`/dev/urandom`: is a character device"]),
        out: Out::Unchanged,
    },
    Case {
        name: "/dev/zero as eval --data",
        kind: Kind::SpecialFile,
        setup: trained,
        args: &["eval", "spec.yaml", "--weights", "out", "--data", "/dev/zero"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["`/dev/zero`: is a character device"]),
        out: Out::Unchanged,
    },
    Case {
        name: "/dev/zero as init.from",
        kind: Kind::SpecialFile,
        setup: |d| {
            spec_and_data(d);
            write(
                d,
                "spec.yaml",
                &SPEC.replace("out: 3}]}", "out: 3}], init: {from: /dev/zero}}"),
            );
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["`/dev/zero`: is a character device"]),
        out: Out::Absent,
    },
    Case {
        name: "a run's metrics.jsonl linked to /dev/zero",
        kind: Kind::SpecialFile,
        setup: |d| {
            std::fs::create_dir(d.join("out")).unwrap();
            std::os::unix::fs::symlink("/dev/zero", d.join("out/metrics.jsonl")).unwrap();
        },
        args: &["plot", "out", "--out", "plot.svg"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["metrics.jsonl`: is a character device"]),
        out: Out::Unchanged,
    },
    Case {
        name: "a FIFO as the CSV training file",
        kind: Kind::SpecialFile,
        // Opening a FIFO blocks until a writer comes; none does, so this returns only if the
        // type is checked first.
        setup: |d| {
            write(d, "spec.yaml", SPEC);
            mkfifo(&d.join("data.csv"));
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["data.csv`: is a FIFO (named pipe), not a regular file"]),
        out: Out::Absent,
    },
    Case {
        name: "a FIFO as the spec",
        kind: Kind::SpecialFile,
        setup: |d| mkfifo(&d.join("spec.yaml")),
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["the spec file is a FIFO (named pipe)"]),
        out: Out::Absent,
    },
    // Long input.
    Case {
        name: "a CSV row of 40 MiB",
        kind: Kind::Long,
        setup: |d| {
            write(d, "spec.yaml", SPEC);
            let mut data = b"a,b,y\n1,2,0\n".to_vec();
            data.resize(data.len() + (40 << 20), b'7');
            data.extend_from_slice(b",1,0\n");
            std::fs::write(d.join("data.csv"), data).unwrap();
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["data.csv` line 3", "the row is longer than 16.0 MiB"]),
        out: Out::Absent,
    },
    Case {
        name: "100,000 nested brackets in the spec",
        kind: Kind::Long,
        setup: |d| {
            spec_and_data(d);
            write(
                d,
                "spec.yaml",
                &format!("{SPEC}extra: {}\n", "[".repeat(100_000)),
            );
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["spec.yaml:7:72:", "nested more than 64 deep"]),
        out: Out::Absent,
    },
    Case {
        name: "model.input of 100,000 axes that does not fit the data",
        kind: Kind::Long,
        setup: |d| many_axes_spec(d, "3"),
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "model.input is [1, 1, 1, 1, 1, 1, 1, 1, … (100001 in all)] (3 values per sample)",
            "has 2 feature columns",
        ]),
        out: Out::Absent,
    },
    Case {
        name: "model.input of 100,000 axes that does not fit the loss",
        kind: Kind::Long,
        setup: |d| many_axes_spec(d, "2"),
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "expects an input of shape [batch, classes], got [2, 1, 1, 1, 1, 1, 1, 1, … (100002 in all)]",
        ]),
        out: Out::Absent,
    },
    Case {
        name: "a CSV header of 100,000 columns without the target",
        kind: Kind::Long,
        setup: |d| {
            write(d, "spec.yaml", SPEC);
            let header: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
            write(d, "data.csv", &format!("{}\n", header.join(",")));
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "no column named `y` (a target in the spec); the columns are `c0`, `c1`, ",
            "`c7`, … (100000 in all)",
        ]),
        out: Out::Absent,
    },
    // Standard output and error.
    Case {
        name: "inspect into a closed pipe",
        kind: Kind::Output,
        setup: trained,
        args: &["inspect", "out/checkpoint"],
        stdout: Sink::ClosedPipe,
        stderr: Sink::Captured,
        expect: Expect::BrokenPipe,
        out: Out::Unchanged,
    },
    Case {
        name: "check into a closed pipe",
        kind: Kind::Output,
        setup: spec_and_data,
        args: &["check", "spec.yaml"],
        stdout: Sink::ClosedPipe,
        stderr: Sink::Captured,
        expect: Expect::BrokenPipe,
        out: Out::Absent,
    },
    Case {
        name: "check into /dev/full",
        kind: Kind::Output,
        setup: spec_and_data,
        args: &["check", "spec.yaml"],
        stdout: Sink::Full,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["cannot write to standard output: No space left on device"]),
        out: Out::Absent,
    },
    Case {
        name: "--help into /dev/full",
        kind: Kind::Output,
        setup: |_| {},
        args: &["--help"],
        stdout: Sink::Full,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["cannot write to standard output: No space left on device"]),
        out: Out::Absent,
    },
    Case {
        name: "train's summary into /dev/full after a successful run",
        kind: Kind::Output,
        setup: spec_and_data,
        args: &["train", "spec.yaml", "--out", "out", "--quiet"],
        stdout: Sink::Full,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["cannot write to standard output: No space left on device"]),
        out: Out::Holds(RUN_FILES),
    },
    Case {
        name: "train's summary into a closed pipe after a successful run",
        kind: Kind::Output,
        setup: spec_and_data,
        args: &["train", "spec.yaml", "--out", "out", "--quiet"],
        stdout: Sink::ClosedPipe,
        stderr: Sink::Captured,
        expect: Expect::BrokenPipe,
        out: Out::Holds(RUN_FILES),
    },
    Case {
        name: "train's progress lines into a closed pipe",
        kind: Kind::Output,
        setup: spec_and_data,
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::ClosedPipe,
        expect: Expect::BrokenPipe,
        out: Out::Absent,
    },
    Case {
        name: "train's progress lines into /dev/full",
        kind: Kind::Output,
        setup: spec_and_data,
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Full,
        expect: Expect::FailsUnheard,
        out: Out::Absent,
    },
    Case {
        name: "predictions into a closed pipe",
        kind: Kind::Output,
        setup: trained,
        args: &["predict", "spec.yaml", "--weights", "out", "--data", "data.csv"],
        stdout: Sink::ClosedPipe,
        stderr: Sink::Captured,
        expect: Expect::BrokenPipe,
        out: Out::Unchanged,
    },
    Case {
        name: "per-sample losses into /dev/full",
        kind: Kind::Output,
        setup: trained,
        args: &["eval", "spec.yaml", "--weights", "out", "--per-sample"],
        stdout: Sink::Full,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["cannot write to standard output: No space left on device"]),
        out: Out::Unchanged,
    },
    // Messages.
    Case {
        name: "labels.json with 2 names for 3 classes, to predict",
        kind: Kind::Message,
        setup: labels_for_two_of_three,
        args: &["predict", "spec.yaml", "--weights", "out", "--data", "x.csv"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "labels.json`",
            "has 2 class names but the model has 3 classes",
        ]),
        out: Out::Unchanged,
    },
    Case {
        name: "labels.json with 2 names for 3 classes, to eval",
        kind: Kind::Message,
        setup: labels_for_two_of_three,
        args: &["eval", "spec.yaml", "--weights", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&["has 2 class names but the model has 3 classes"]),
        out: Out::Unchanged,
    },
    Case {
        name: "training text labels of 2 classes for a model of 3",
        kind: Kind::Message,
        setup: |d| {
            write(d, "spec.yaml", SPEC);
            write(d, "data.csv", "a,b,y\n1,2,cat\n3,4,dog\n5,6,cat\n");
        },
        args: &["train", "spec.yaml", "--out", "out"],
        stdout: Sink::Captured,
        stderr: Sink::Captured,
        expect: Expect::Fails(&[
            "`data.csv` has 2 class labels (cat, dog) but the model outputs 3 classes",
            "make the last layer's out 2",
        ]),
        out: Out::Absent,
    },
];

/// A run of text labels `cat`, `dog`, `eel` whose `labels.json` then loses `eel`, and `x.csv`.
fn labels_for_two_of_three(dir: &Path) {
    write(dir, "spec.yaml", SPEC);
    write(
        dir,
        "data.csv",
        "a,b,y\n1,2,cat\n3,4,dog\n5,6,eel\n7,8,dog\n",
    );
    let o = graphc_in(dir, &["train", "spec.yaml", "--out", "out", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    write(dir, "out/labels.json", "[\"cat\", \"dog\"]\n");
    write(dir, "x.csv", "a,b\n1,2\n");
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
}

/// The `Stdio` of a sink.
fn stdio(sink: Sink) -> Stdio {
    match sink {
        Sink::Captured => Stdio::piped(),
        Sink::ClosedPipe => {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            writer.into()
        }
        Sink::Full => File::options()
            .write(true)
            .open("/dev/full")
            .unwrap()
            .into(),
    }
}

/// Runs `graphc ARGS` in `dir` under the [`LIMIT_MIB`] address-space limit, its standard
/// streams going to `stdout` and `stderr`.
fn run(dir: &Path, args: &[&str], stdout: Sink, stderr: Sink) -> Output {
    graphc_limited(dir, LIMIT_MIB, args)
        .stdin(Stdio::null())
        .stdout(stdio(stdout))
        .stderr(stdio(stderr))
        .output()
        .expect("sh runs graphc")
}

/// Runs one case; the error says what did not hold.
fn check(case: &Case) -> Result<(), String> {
    let dir = scratch(&[]);
    let d = dir.path();
    (case.setup)(d);
    let before = d.join("out").exists().then(|| snapshot(&d.join("out")));
    let o = run(d, case.args, case.stdout, case.stderr);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let fail = |what: String| Err(format!("{}: {what}\n  stderr: {err}", case.name));
    if err.contains("panicked") {
        return fail("a panic".into());
    }
    let status = o.status.code();
    match case.expect {
        Expect::Fails(needles) => {
            if status != Some(1) {
                return fail(format!("status {:?}, expected 1", o.status));
            }
            if err.trim_end().lines().count() != 1 || !err.starts_with("error: ") {
                return fail("expected one `error:` line".into());
            }
            if let Some(n) = needles.iter().find(|n| !err.contains(*n)) {
                return fail(format!("the message does not say {n:?}"));
            }
            if err.len() > 1000 {
                return fail(format!("a message of {} bytes", err.len()));
            }
        }
        Expect::FailsUnheard => {
            if status != Some(1) {
                return fail(format!("status {:?}, expected 1", o.status));
            }
        }
        Expect::BrokenPipe => {
            if status != Some(141) || !err.is_empty() {
                return fail(format!("status {:?}, expected a quiet 141", o.status));
            }
        }
    }
    let out = d.join("out");
    match (case.out, out.exists(), before) {
        (Out::Absent, false, _) => {}
        (Out::Absent, true, _) => return fail("left an output directory".into()),
        (Out::Unchanged, _, before) => {
            let after = out.exists().then(|| snapshot(&out));
            if after != before {
                return fail("changed the output directory".into());
            }
        }
        (Out::Holds(names), _, _) => {
            let after: Vec<String> = snapshot_names(&out);
            if after != names {
                return fail(format!("left {after:?} in out, expected {names:?}"));
            }
        }
    }
    Ok(())
}

/// The names of the entries directly in `dir`, sorted.
fn snapshot_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs every case of `kind`, reporting all that fail.
fn check_kind(kind: Kind) {
    let cases: Vec<&Case> = CASES.iter().filter(|c| c.kind == kind).collect();
    assert!(!cases.is_empty(), "no case of kind {kind:?}");
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_sizes_are_refused_before_allocating() {
    check_kind(Kind::Size);
}

#[test]
fn hostile_bombs_are_refused_before_decoding() {
    check_kind(Kind::Bomb);
}

#[test]
fn hostile_special_files_are_refused_by_type() {
    check_kind(Kind::SpecialFile);
}

#[test]
fn hostile_long_input_is_refused_with_a_short_message() {
    check_kind(Kind::Long);
}

#[test]
fn hostile_output_failures_end_quietly_or_with_one_message() {
    check_kind(Kind::Output);
}

#[test]
fn hostile_messages_name_what_is_wrong() {
    check_kind(Kind::Message);
}

#[test]
fn case_names_are_unique() {
    let names: BTreeMap<&str, usize> = CASES.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.name).or_default() += 1;
        m
    });
    let repeated: Vec<&&str> = names
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(
        repeated.is_empty(),
        "case names must be unique: {repeated:?}"
    );
}

/// The resident memory (KiB) the run reported after `step` (`step N: VmRSS: K kB` lines).
fn rss_after(stderr: &str, step: u64) -> u64 {
    let prefix = format!("step {step}: VmRSS:");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {stderr}"));
    line[prefix.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// Training steps the soak test runs.
const SOAK_STEPS: u64 = 1_000_000;

#[test]
fn soak_resident_memory_after_a_million_steps_is_what_it_was_after_a_thousand() {
    // linreg (specs/bench/linreg.yaml) for a million updates, one metrics line each: memory
    // that grows per step (a leak, a growing buffer) shows as a difference in VmRSS.
    let dir = scratch(&[(
        "linreg.yaml",
        "seed: 0\n\
         data: {train: {synthetic: {kind: linear, samples: 20, features: 1}}, batch_size: 20}\n\
         model: {input: [1], layers: [{type: linear, out: 1}]}\n\
         loss: {type: mse}\n\
         optimizer: {type: sgd, lr: 0.01}\n\
         train: {steps: 1000000}\n",
    )]);
    let started = std::time::Instant::now();
    let o = graphc_limited(
        dir.path(),
        LIMIT_MIB,
        &["train", "linreg.yaml", "--out", "out", "--quiet"],
    )
    .env("GRAPHC_TEST_RSS_AT_STEPS", format!("1000,{SOAK_STEPS}"))
    .env("GRAPHC_TEST_ABORT_AFTER_STEP", SOAK_STEPS.to_string())
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let early = rss_after(&err, 1000);
    let late = rss_after(&err, SOAK_STEPS);
    eprintln!(
        "soak: VmRSS {early} KiB after 1000 steps, {late} KiB after {SOAK_STEPS} steps; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        late <= early + 1024,
        "resident memory grew from {early} KiB to {late} KiB"
    );
}
