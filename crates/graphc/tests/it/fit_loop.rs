//! `graphc::fit` from a library: the same losses as `graphc train` writes on the same spec
//! (iris, standardized, shuffled), and an observer that stops a run early.

use std::ops::ControlFlow;
use std::path::Path;

use graphc::{BackendKind, RunOptions, StepEvent};

/// The repository's `specs/` directory.
fn specs() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../specs"))
}

/// The losses of every update `metrics.jsonl` in `dir` records.
fn metrics_losses(dir: &Path) -> Vec<f32> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v.get("step").is_some())
        .map(|v| v["loss"].as_f64().expect("a loss") as f32)
        .collect()
}

#[test]
fn fit_with_a_closure_gives_the_losses_graphc_train_writes() {
    let spec_path = specs().join("iris.yaml");
    let out = tempfile::tempdir().unwrap();
    let options = RunOptions {
        out_dir: out.path().to_path_buf(),
        backend: BackendKind::Jit.backend(),
        quiet: true,
        overrides: Vec::new(),
    };
    graphc::train(&spec_path, options).expect("graphc train runs");
    let written = metrics_losses(out.path());

    let spec = graphc::Spec::from_file(&spec_path).unwrap();
    let data = graphc::load_data(&spec, specs()).unwrap();
    let mut trainer = graphc::prepare(&spec, specs(), &data, BackendKind::Jit).unwrap();
    let mut losses = Vec::new();
    let end = graphc::fit(&mut trainer, &data, &mut |s: &StepEvent| {
        losses.push(s.loss);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(!end.stopped_early);
    assert_eq!(written.len(), 300, "30 epochs of 10 batches");
    assert_eq!(losses, written, "bitwise the losses of graphc train");
}

#[test]
fn an_observer_stops_the_run_early_and_the_position_is_kept() {
    let spec = graphc::Spec::from_file(specs().join("iris.yaml")).unwrap();
    let data = graphc::load_data(&spec, specs()).unwrap();
    let mut trainer = graphc::prepare(&spec, specs(), &data, BackendKind::Interp).unwrap();
    let mut seen = 0;
    let end = graphc::fit(&mut trainer, &data, &mut |s: &StepEvent| {
        seen += 1;
        if s.step == 25 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert!(end.stopped_early);
    assert_eq!((seen, trainer.step_count(), end.epochs), (25, 25, 3));
}

/// Iris (relu MLP) on `backend`, its first parameter holding NaN at one element.
fn iris_with_a_nan_weight(backend: BackendKind) -> (graphc::Trainer, graphc::SpecData) {
    let spec = graphc::Spec::from_file(specs().join("iris.yaml")).unwrap();
    let data = graphc::load_data(&spec, specs()).unwrap();
    let mut trainer = graphc::prepare(&spec, specs(), &data, backend).unwrap();
    let first = trainer.params().remove(0);
    let mut values = first.data.clone();
    values[1] = f32::NAN;
    trainer.set_param(&first.name, &values).unwrap();
    (trainer, data)
}

#[test]
fn nan_weights_give_a_nan_loss_through_relu_as_in_pytorch() {
    // relu(NaN) is NaN in PyTorch: a NaN weight must not be masked into a finite loss.
    for backend in BackendKind::ALL {
        let (mut trainer, data) = iris_with_a_nan_weight(*backend);
        let eval = trainer.evaluate(&data.train).unwrap();
        assert!(eval.loss.is_nan(), "{}: loss {}", backend.name(), eval.loss);
    }
}

#[test]
fn fit_refuses_weights_set_by_hand_holding_nan_naming_the_tensor() {
    let (mut trainer, data) = iris_with_a_nan_weight(BackendKind::Interp);
    let err = graphc::fit(&mut trainer, &data, &mut |_: &StepEvent| {
        ControlFlow::Continue(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "the weights training started from: parameter \"0.weight\" holds NaN at [0, 1]"
        ),
        "{err}"
    );
    assert_eq!(trainer.step_count(), 0, "no step ran");
}
