//! Every optimizer and option combination against PyTorch (goldens made by
//! `tools/goldens/optimizers.py`), on every backend: parameter trajectories under fixed
//! gradients (an update-only graph, with hyperparameters changed between steps as a scheduler
//! would, without recompiling), the optimizer state PyTorch ends with, and small training runs
//! (per-step losses and final weights). Tolerance: relative 1e-5 per step (see `ABSOLUTE`).

use std::path::{Path, PathBuf};

use crate::support::{close, golden_cases, run_golden};
use graphc::stages::ir::Arg;
use graphc::stages::nn::{build_update_graph, hyper_value, initial_groups, UpdateGraph};
use graphc::stages::spec::{OptimizerKind, OptimizerSpec};
use graphc::BackendKind;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/optimizers")
}

const RELATIVE: f64 = 1e-5;
/// Floor for parameters near zero: about 8 f32 ulps at the parameters' scale (~1), where
/// PyTorch's fused multiply-adds and graphc's separate roundings part by an ulp or two.
const ABSOLUTE: f64 = 1e-6;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("a list of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// The optimizer section of a golden case, parsed by the spec parser as a user's would be.
fn optimizer_spec(yaml: &str) -> OptimizerSpec {
    let text = format!(
        "data: {{train: {{csv: d.csv, target: y}}}}\nmodel: {{input: [1], layers: [{{type: linear, out: 1}}]}}\n\
         loss: {{type: mse}}\noptimizer: {yaml}\ntrain: {{steps: 1}}\n"
    );
    graphc::parse_str(&text, Path::new("golden.yaml"))
        .unwrap_or_else(|e| panic!("{yaml}: {e}"))
        .optimizer
}

/// Applies one scheduled change `[group, key, value]` to the groups' hyperparameters.
fn apply(groups: &mut [OptimizerKind], change: &Value) {
    let group = change[0].as_u64().expect("a group") as usize;
    let kind = &mut groups[group];
    match change[1].as_str().expect("a key") {
        "lr" => kind.set_lr(change[2].as_f64().expect("an lr")),
        "momentum" => assert!(kind.set_momentum(change[2].as_f64().expect("a momentum"))),
        "betas" => {
            let b = change[2].as_array().expect("two betas");
            let betas = (b[0].as_f64().unwrap(), b[1].as_f64().unwrap());
            assert!(kind.set_betas(betas));
        }
        other => panic!("unexpected scheduled key {other}"),
    }
}

fn check_fixed_case(case: &Value, backend: BackendKind) {
    let name = case["name"].as_str().unwrap();
    let spec = optimizer_spec(case["optimizer"].as_str().unwrap());
    let params: Vec<(String, Vec<usize>, Vec<f32>)> = case["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let shape = p["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (
                p["name"].as_str().unwrap().to_owned(),
                shape,
                floats(&p["init"]),
            )
        })
        .collect();
    let shapes: Vec<(String, Vec<usize>)> = params
        .iter()
        .map(|(n, s, _)| (n.clone(), s.clone()))
        .collect();
    let UpdateGraph {
        mut graph,
        hypers,
        state,
        ..
    } = build_update_graph(&spec, &shapes).unwrap_or_else(|e| panic!("{name}: {e}"));
    graphc::stages::opt::optimize(&mut graph).unwrap();
    let mut exe = backend.backend().compile(&graph).unwrap();
    for (n, _, init) in &params {
        exe.write(n, init).unwrap();
    }
    for b in &state {
        let numel = b.shape.iter().product();
        exe.write(&b.name, &vec![b.init; numel]).unwrap();
    }
    let mut groups = initial_groups(&spec);
    let grads = case["grads"].as_array().unwrap();
    let schedule = case["schedule"].as_array().unwrap();
    let trajectory = case["trajectory"].as_array().unwrap();
    assert!(trajectory.len() >= 10, "{name}: a trajectory of 10+ steps");
    for (k, expected) in trajectory.iter().enumerate() {
        for change in schedule[k].as_array().unwrap() {
            apply(&mut groups, change);
        }
        let step_grads: Vec<Vec<f32>> = grads[k].as_array().unwrap().iter().map(floats).collect();
        let values: Vec<f32> = hypers
            .iter()
            .map(|h| hyper_value(*h, &groups, k as u64 + 1))
            .collect();
        let mut args: Vec<Arg<'_>> = step_grads.iter().map(|g| Arg::F32(g)).collect();
        args.extend(values.iter().map(|v| Arg::F32(std::slice::from_ref(v))));
        exe.run(&args).unwrap();
        for ((pname, _, _), want) in params.iter().zip(expected.as_array().unwrap()) {
            let got = exe.read(pname).unwrap();
            for (i, (a, e)) in got.iter().zip(floats(want)).enumerate() {
                assert!(
                    close(f64::from(*a), f64::from(e), RELATIVE, ABSOLUTE),
                    "{name} ({}): step {} {pname}[{i}] = {a} vs PyTorch {e}",
                    backend.name(),
                    k + 1
                );
            }
        }
    }
    let torch_state = case["state"].as_object().unwrap();
    let mut names: Vec<&str> = state.iter().map(|b| b.name.as_str()).collect();
    let mut torch_names: Vec<&str> = torch_state.keys().map(String::as_str).collect();
    names.sort_unstable();
    torch_names.sort_unstable();
    assert_eq!(
        names, torch_names,
        "{name}: state keys as PyTorch names them"
    );
    for (key, want) in torch_state {
        let got = exe.read(key).unwrap();
        for (i, (a, e)) in got.iter().zip(floats(want)).enumerate() {
            assert!(
                close(f64::from(*a), f64::from(e), 1e-4, 1e-7),
                "{name} ({}): final {key}[{i}] = {a} vs PyTorch {e}",
                backend.name()
            );
        }
    }
}

#[test]
fn fixed_gradient_trajectories_and_state_match_pytorch_on_every_backend() {
    let text = std::fs::read_to_string(root().join("fixed_gradients.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 40, "every optimizer and option combination");
    for backend in BackendKind::ALL {
        for case in cases {
            check_fixed_case(case, *backend);
        }
    }
}

#[test]
fn training_runs_match_pytorch_losses_and_final_weights_on_every_backend() {
    for backend in BackendKind::ALL {
        for case in golden_cases("optimizers", 15) {
            let run = run_golden(&case, *backend);
            run.assert_step_losses(RELATIVE, 1e-7);
            run.assert_final_weights(RELATIVE, 1e-6);
        }
    }
}
