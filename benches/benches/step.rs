//! One training step of every `specs/bench/*.yaml` workload (and
//! `specs/iris.yaml`) on each backend, from the spec's first batch:
//! `cargo bench -p graphc-benches [-- FILTER]`. A spec graphc cannot parse,
//! load or compile (yet) is skipped with one line on stderr.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use graphc::stages::train::{load_data, prepare, BatchTargets};
use graphc::BackendKind;

fn workloads() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(root.join("bench"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    specs.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    specs.sort();
    specs.push(root.join("iris.yaml"));
    specs
}

/// A workload graphc cannot run yet (issue 12's CNN specs before their layers
/// land) is reported and skipped, so the others are still measured.
fn skip(what: &str, error: &dyn std::fmt::Display) {
    eprintln!("{what}: skipped, graphc cannot run it yet: {error}");
}

fn training_step(c: &mut Criterion) {
    for spec_path in workloads() {
        let name = spec_path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let spec = match graphc::parse_spec(&spec_path) {
            Ok(spec) => spec,
            Err(e) => {
                skip(&name, &e);
                continue;
            }
        };
        let base = spec_path.parent().expect("spec has a directory");
        let data = match load_data(&spec, base) {
            Ok(data) => data,
            Err(e) => {
                skip(&name, &e);
                continue;
            }
        };
        let rows: Vec<usize> = (0..spec.data.batch_size.min(data.train.len())).collect();
        let (mut x, mut y) = (Vec::new(), BatchTargets::Floats(Vec::new()));
        if let Err(e) = data.train.gather(&rows, &mut x, &mut y) {
            skip(&name, &e);
            continue;
        }
        let mut group = c.benchmark_group(&name);
        if name == "mlp_l" {
            group.sample_size(10);
        }
        for &kind in BackendKind::ALL {
            let mut trainer = match prepare(&spec, base, &data, kind.backend()) {
                Ok(trainer) => trainer,
                Err(e) => {
                    skip(&format!("{name}/{}", kind.name()), &e);
                    continue;
                }
            };
            group.bench_function(kind.name(), |b| {
                b.iter(|| trainer.step(&x, &y).expect("steps"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, training_step);
criterion_main!(benches);
