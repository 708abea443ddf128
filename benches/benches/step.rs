//! One training step of `specs/iris.yaml` on each backend, from the spec's
//! first batch: `cargo bench -p graphc-benches`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use graphc::stages::train::{load_data, prepare, BatchTargets};
use graphc::BackendKind;

fn iris_step(c: &mut Criterion) {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/iris.yaml");
    let spec = graphc::parse_spec(&spec_path).expect("spec parses");
    let base = spec_path.parent().expect("spec has a directory");
    let data = load_data(&spec, base).expect("data loads");
    let rows: Vec<usize> = (0..spec.data.batch_size).collect();
    let (mut x, mut y) = (Vec::new(), BatchTargets::Floats(Vec::new()));
    data.train.gather(&rows, &mut x, &mut y);
    for &kind in BackendKind::ALL {
        let mut trainer = prepare(&spec, base, &data, kind.backend()).expect("compiles");
        c.bench_function(&format!("iris_step/{kind:?}"), |b| {
            b.iter(|| trainer.step(&x, &y).expect("steps"))
        });
    }
}

criterion_group!(benches, iris_step);
criterion_main!(benches);
