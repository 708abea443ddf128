//! The experiments of a PyTorch optimizer tutorial, without a model, data or YAML: make an
//! optimizer over a few named weights, set each weight's gradient by hand, step, and look at
//! the weights and the optimizer's state. Run with
//! `cargo run -p graphc --example optimizer_tutorial`.

use graphc::{
    BackendKind, NamedTensor, Optimizer, OptimizerKind, OptimizerSpec, SgdSpec, TrainError,
};

// The walkthrough (`main` below) follows the chapter: `defaults`, `param_groups`, `state`,
// steps with a gradient of 1 at lr 1 and 0.1, `zero_grad`, `add_param_group`, and a
// `state_dict` saved after ten steps and loaded back.

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

/// The numbers of the chapter's optimizer walkthrough, as `tools/goldens/optimizer_walkthrough.py`
/// records PyTorch's.
#[derive(Debug)]
pub struct Walkthrough {
    /// `w = [1, -2, 0.5]` after one step of `SGD(lr=1)` with every gradient 1.
    pub lr_1: Vec<f32>,
    /// Then one more step after `param_groups[0]["lr"] = 0.1`.
    pub lr_0_1: Vec<f32>,
    /// Then `zero_grad()` and a step.
    pub zero_grad: Vec<f32>,
    /// `SGD([w], lr=0.1, momentum=0.9)` with `add_param_group({"params": [b], "lr": 0.01})`,
    /// after ten steps with gradient 1: `w`, `b` and their momentum buffers.
    pub ten_steps: Vec<(String, Vec<f32>)>,
    /// Its `state_dict()` loaded into a new optimizer over the same values, then one step of
    /// each: `w` and `b` of the new one, and whether the two optimizers agree exactly.
    pub reloaded: Vec<(String, Vec<f32>)>,
    /// Whether the original and the reloaded optimizer took the same last step.
    pub agree: bool,
}

fn tensor(name: &str, data: &[f32]) -> NamedTensor {
    NamedTensor {
        name: name.into(),
        shape: vec![data.len()],
        data: data.to_vec(),
    }
}

fn ones(opt: &mut Optimizer, names: &[&str]) -> Result<(), TrainError> {
    for name in names {
        let n = opt.param(name).map_or(0, <[f32]>::len);
        opt.set_grad(name, &vec![1.0; n])?;
    }
    opt.step()
}

/// `w` (and `b`) under SGD with momentum 0.9: `w` at lr `lr_w`, `b` added as a group at
/// lr `lr_b` (`add_param_group`).
fn with_group(w: &[f32], b: &[f32], lr_w: f64, lr_b: f64) -> Result<Optimizer, TrainError> {
    let mut opt = over(sgd(lr_w, 0.9), w)?;
    let mut group = opt.defaults().clone();
    group.set_lr(lr_b);
    opt.add_param_group(&[tensor("b", b)], group)?;
    Ok(opt)
}

/// Runs the walkthrough.
pub fn walkthrough() -> Result<Walkthrough, TrainError> {
    let start = [1.0f32, -2.0, 0.5];
    let mut opt = over(sgd(1.0, 0.0), &start)?;
    let w = |opt: &Optimizer| opt.param("w").unwrap_or_default().to_vec();
    ones(&mut opt, &["w"])?;
    let lr_1 = w(&opt);
    opt.set_lr(0, 0.1)?;
    ones(&mut opt, &["w"])?;
    let lr_0_1 = w(&opt);
    opt.zero_grad();
    opt.step()?;
    let zero_grad = w(&opt);

    let mut opt = with_group(&start, &[3.0], 0.1, 0.01)?;
    for _ in 0..10 {
        ones(&mut opt, &["w", "b"])?;
    }
    let read = |opt: &Optimizer, names: &[&str]| -> Vec<(String, Vec<f32>)> {
        names
            .iter()
            .map(|n| {
                let (param, key) = n.split_once('.').unwrap_or((n, ""));
                let v = if key.is_empty() {
                    opt.param(param)
                } else {
                    opt.state(param, key)
                };
                (n.to_string(), v.unwrap_or_default().to_vec())
            })
            .collect()
    };
    let ten_steps = read(&opt, &["w", "b", "w.momentum_buffer", "b.momentum_buffer"]);
    let saved = opt.state_dict();
    // A new optimizer over the same values, with other settings that the state replaces.
    let mut again = with_group(&w(&opt), opt.param("b").unwrap_or_default(), 0.5, 0.5)?;
    again.load_state_dict(&saved)?;
    ones(&mut opt, &["w", "b"])?;
    ones(&mut again, &["w", "b"])?;
    let reloaded = read(&again, &["w", "b"]);
    let agree = read(&opt, &["w", "b"]) == reloaded;
    Ok(Walkthrough {
        lr_1,
        lr_0_1,
        zero_grad,
        ten_steps,
        reloaded,
        agree,
    })
}

#[allow(dead_code)]
fn main() -> Result<(), TrainError> {
    let opt = over(sgd(1.0, 0.0), &[1.0, -2.0, 0.5])?;
    println!("defaults:     {:?}", opt.defaults());
    let state = opt.state_dict();
    println!(
        "param_groups: {:?}",
        state
            .param_groups
            .iter()
            .map(|g| (&g.params, g.hypers.lr()))
            .collect::<Vec<_>>()
    );
    println!(
        "state:        {:?} (empty before the first step)",
        state.state
    );
    let t = walkthrough()?;
    println!("weights [1, -2, 0.5], gradient 1:");
    println!("  SGD lr 1:              {:?}", t.lr_1);
    println!("  then lr 0.1:           {:?}", t.lr_0_1);
    println!("  then zero_grad + step: {:?}", t.zero_grad);
    println!("SGD lr 0.1 momentum 0.9 on w, add_param_group b = [3] at lr 0.01, 10 steps:");
    for (name, v) in &t.ten_steps {
        println!("  {name:18} {v:?}");
    }
    println!("state_dict loaded into a new optimizer, one more step each:");
    for (name, v) in &t.reloaded {
        println!("  {name:18} {v:?}");
    }
    println!("  the same as without the reload: {}", t.agree);
    println!(
        "momentum 0.9, gradient 1:     v = {:?}",
        momentum_buffers(0.9, 1.0, 5)?
    );
    Ok(())
}
