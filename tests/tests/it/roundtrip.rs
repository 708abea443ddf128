//! The round trip with PyTorch (`tools/goldens/roundtrip.py`, issue #13 item 7): a residual
//! MLP with layer norm and GELU on the wine data, written with PyTorch's module names. A
//! `state_dict` trained in PyTorch and saved with safetensors loads through `init.from`, and
//! graphc's `model.safetensors` holds exactly the tensors `load_state_dict(strict=True)`
//! requires (names, shapes, dtypes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use graphc::BackendKind;

use crate::support::{read_state_dict, run_golden, StoredValues};

fn case() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/roundtrip/wine_resmlp")
}

#[test]
fn graphcs_model_file_is_the_state_dict_pytorch_loads_strictly() {
    let run = run_golden(&case(), BackendKind::Jit);
    let stored = read_state_dict(&run.out.path().join("model.safetensors"));
    let ours: BTreeMap<&str, (Vec<usize>, &str)> = stored
        .iter()
        .map(|(name, t)| {
            let dtype = match t.values {
                StoredValues::F32(_) => "float32",
                StoredValues::I64(_) => "int64",
            };
            (name.as_str(), (t.shape.clone(), dtype))
        })
        .collect();
    let theirs: BTreeMap<&str, (Vec<usize>, &str)> = run.expected["state_dict"]
        .as_object()
        .expect("state_dict")
        .iter()
        .map(|(name, t)| {
            let shape = t["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("a dimension") as usize)
                .collect();
            (name.as_str(), (shape, t["dtype"].as_str().expect("dtype")))
        })
        .collect();
    assert_eq!(ours, theirs);
}

/// The PyTorch-trained `state_dict`, read as `predict --proba` reads weights from elsewhere,
/// gives PyTorch's probabilities on every wine (both backends).
#[test]
fn pytorch_weights_give_pytorchs_probabilities() {
    use graphc::stages::train::Model;
    let case = case();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(case.join("expected.json")).expect("expected.json"),
    )
    .expect("JSON");
    let expected: Vec<Vec<f64>> = expected["probabilities"]
        .as_array()
        .expect("probabilities")
        .iter()
        .map(crate::support::floats)
        .collect();
    for backend in BackendKind::ALL {
        let model = Model::load(&case.join("spec.yaml"), None).expect("init.from loads");
        let data = model.unlabelled(&case.join("data.csv")).expect("data.csv");
        let mut trainer = model.compile(&data, backend.backend()).expect("compiles");
        let csv = model
            .probabilities_csv(&mut trainer, &data)
            .expect("probabilities");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("0,1,2"));
        let rows: Vec<Vec<f64>> = lines
            .map(|l| l.split(',').map(|v| v.parse().expect("a number")).collect())
            .collect();
        assert_eq!(rows.len(), expected.len());
        let mut wrong = Vec::new();
        for (i, (ours, theirs)) in rows.iter().zip(&expected).enumerate() {
            for (a, b) in ours.iter().zip(theirs) {
                if !crate::support::close(*a, *b, 1e-4, 1e-6) {
                    wrong.push(format!("row {i}: {a} vs PyTorch's {b}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}: {wrong:?}", backend.name());
    }
}
