//! The experiments of a PyTorch optimizer tutorial, without a model, data or YAML: make an
//! optimizer over a few named weights, set each weight's gradient by hand, step, and look at
//! the weights and the optimizer's state. Run with
//! `cargo run -p graphc --example optimizer_tutorial`.

use graphc::{
    BackendKind, NamedTensor, Optimizer, OptimizerKind, OptimizerSpec, SgdSpec, TrainError,
};

/// `torch.optim.SGD(params, lr=lr, momentum=momentum)`.
pub fn sgd(lr: f64, momentum: f64) -> OptimizerSpec {
    OptimizerSpec {
        kind: OptimizerKind::Sgd(SgdSpec {
            lr,
            momentum,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }),
        param_groups: Vec::new(),
    }
}

/// An optimizer over one weight vector `w` starting at `start`.
pub fn over(spec: OptimizerSpec, start: &[f32]) -> Result<Optimizer, TrainError> {
    let w = NamedTensor {
        name: "w".into(),
        shape: vec![start.len()],
        data: start.to_vec(),
    };
    Optimizer::new(spec, &[w], BackendKind::Interp.backend())
}

/// The weights after one step of `spec` from `start` with every gradient equal to `grad`.
pub fn one_step(spec: OptimizerSpec, start: &[f32], grad: f32) -> Result<Vec<f32>, TrainError> {
    let mut opt = over(spec, start)?;
    opt.set_grad("w", &vec![grad; start.len()])?;
    opt.step()?;
    Ok(opt.param("w").unwrap_or_default().to_vec())
}

/// SGD with momentum and a constant gradient: the momentum buffer after each of `steps`
/// steps (`v ← momentum · v + g`, the first `v` being `g`).
pub fn momentum_buffers(momentum: f64, grad: f32, steps: usize) -> Result<Vec<f32>, TrainError> {
    let mut opt = over(sgd(0.1, momentum), &[0.0])?;
    let mut buffers = Vec::new();
    for _ in 0..steps {
        opt.set_grad("w", &[grad])?;
        opt.step()?;
        buffers.push(opt.state("w", "momentum_buffer").unwrap_or_default()[0]);
    }
    Ok(buffers)
}

#[allow(dead_code)]
fn main() -> Result<(), TrainError> {
    let start = [1.0f32, -2.0, 0.5];
    println!("weights:                      {start:?}");
    println!(
        "SGD, lr 1, gradient 1:        {:?}",
        one_step(sgd(1.0, 0.0), &start, 1.0)?
    );
    println!(
        "SGD, lr 0.1, gradient 1:      {:?}",
        one_step(sgd(0.1, 0.0), &start, 1.0)?
    );
    println!(
        "momentum 0.9, gradient 1:     v = {:?}",
        momentum_buffers(0.9, 1.0, 5)?
    );
    let mut opt = over(sgd(0.1, 0.9), &start)?;
    opt.set_grad("w", &[1.0, 1.0, 1.0])?;
    opt.step()?;
    let state = opt.state_dict();
    println!(
        "state_dict: step {}, param_groups[0] {:?}, state {:?}",
        state.step,
        state.param_groups[0].hypers.hyperparameters(),
        state
            .state
            .iter()
            .map(|t| (&t.name, &t.data))
            .collect::<Vec<_>>()
    );
    Ok(())
}
