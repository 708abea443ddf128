//! The optimizer tutorial's facts, through the example that shows them: set a gradient,
//! step, look at the weights and the state.

#[path = "../../examples/optimizer_tutorial.rs"]
mod tutorial;

use tutorial::{momentum_buffers, one_step, over, sgd, walkthrough};

const START: [f32; 4] = [1.0, -2.0, 0.5, 0.0];

#[test]
fn sgd_with_gradient_1_and_lr_1_moves_every_weight_by_exactly_minus_1() {
    let after = one_step(sgd(1.0, 0.0), &START, 1.0).unwrap();
    assert_eq!(after, [0.0, -3.0, -0.5, -1.0]);
}

#[test]
fn sgd_with_lr_0_1_moves_every_weight_by_minus_0_1() {
    let after = one_step(sgd(0.1, 0.0), &START, 1.0).unwrap();
    let expected: Vec<f32> = START.iter().map(|w| w - 0.1f32).collect();
    assert_eq!(after, expected);
    for (a, w) in after.iter().zip(START) {
        assert!((a - w + 0.1).abs() < 1e-7, "{a} from {w}");
    }
}

#[test]
fn momentum_0_9_accumulates_v_as_0_9_v_plus_g() {
    let buffers = momentum_buffers(0.9, 1.0, 5).unwrap();
    let mut v = 1.0f32;
    let mut expected = vec![v];
    for _ in 1..5 {
        v = 0.9f32 * v + 1.0;
        expected.push(v);
    }
    assert_eq!(buffers, expected);
    assert!((buffers[2] - 2.71).abs() < 1e-6, "{buffers:?}");
}

#[test]
fn momentum_steps_move_weights_by_lr_times_the_buffer() {
    let mut opt = over(sgd(0.1, 0.9), &[0.0]).unwrap();
    let mut w = 0.0f32;
    for _ in 0..3 {
        opt.set_grad("w", &[1.0]).unwrap();
        opt.step().unwrap();
        let v = opt.state("w", "momentum_buffer").unwrap()[0];
        w -= 0.1f32 * v;
        assert_eq!(opt.param("w").unwrap()[0], w);
    }
    assert_eq!(opt.step_count(), 3);
}

#[test]
fn zero_grad_then_step_leaves_plain_sgd_weights_where_they_are() {
    let mut opt = over(sgd(0.5, 0.0), &START).unwrap();
    opt.set_grad("w", &[1.0; 4]).unwrap();
    opt.zero_grad();
    opt.step().unwrap();
    assert_eq!(opt.param("w").unwrap(), START);
}

#[test]
fn changing_the_learning_rate_between_steps_takes_effect_without_rebuilding() {
    let mut opt = over(sgd(1.0, 0.0), &[0.0]).unwrap();
    opt.set_grad("w", &[1.0]).unwrap();
    opt.step().unwrap();
    opt.set_lr(0, 0.25).unwrap();
    opt.step().unwrap();
    assert_eq!(opt.param("w").unwrap(), [-1.25]);
}

#[test]
fn state_dict_shows_groups_state_and_step_count() {
    let mut opt = over(sgd(0.1, 0.9), &START).unwrap();
    opt.set_grad("w", &[2.0; 4]).unwrap();
    opt.step().unwrap();
    let s = opt.state_dict();
    assert_eq!(s.step, 1);
    assert_eq!(s.param_groups.len(), 1);
    assert_eq!(s.param_groups[0].params, ["w"]);
    assert_eq!(s.param_groups[0].hypers.lr(), 0.1);
    assert_eq!(s.state.len(), 1);
    assert_eq!(s.state[0].name, "w.momentum_buffer");
    assert_eq!(s.state[0].data, [2.0; 4]);
}

#[test]
fn a_gradient_of_the_wrong_size_or_name_is_an_error() {
    let mut opt = over(sgd(0.1, 0.0), &START).unwrap();
    let e = opt.set_grad("w", &[1.0]).unwrap_err().to_string();
    assert!(
        e.contains("the gradient of `w` needs 4 values (shape [4]), got 1"),
        "{e}"
    );
    let e = opt.set_grad("v", &[1.0; 4]).unwrap_err().to_string();
    assert!(e.contains("no parameter `v`; the parameters are w"), "{e}");
}

/// The walkthrough's numbers against PyTorch's (`tools/goldens/optimizer_walkthrough.py`).
#[test]
fn the_walkthrough_prints_pytorchs_numbers() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/goldens/tutorial/optimizer_walkthrough.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let t = walkthrough().unwrap();
    // One or two SGD steps are exact in f32, as in PyTorch.
    assert_eq!(t.lr_1, floats(&golden["lr_1"]));
    assert_eq!(t.lr_0_1, floats(&golden["lr_0_1"]));
    assert_eq!(t.zero_grad, floats(&golden["zero_grad"]));
    for (what, ours) in [("ten_steps", &t.ten_steps), ("reloaded", &t.reloaded)] {
        for (name, values) in ours {
            let want = floats(&golden[what][name]);
            assert_eq!(values.len(), want.len(), "{what} {name}");
            for (a, e) in values.iter().zip(&want) {
                assert!(
                    (a - e).abs() <= 1e-6 * e.abs().max(1.0),
                    "{what} {name}: {a} vs {e}"
                );
            }
        }
    }
    assert!(t.agree, "the reloaded optimizer took another step");
}

#[test]
fn add_param_group_refuses_a_parameter_twice_or_another_algorithm() {
    let mut opt = over(sgd(0.1, 0.0), &START).unwrap();
    let w = graphc::NamedTensor {
        name: "w".into(),
        shape: vec![1],
        data: vec![0.0],
    };
    let e = opt
        .add_param_group(&[w], opt.defaults().clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`w` is in a group already"), "{e}");
    let adam = graphc::OptimizerKind::Adam(graphc::stages::spec::AdamSpec {
        lr: 0.1,
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.0,
        amsgrad: false,
        maximize: false,
        decoupled_weight_decay: false,
    });
    let b = graphc::NamedTensor {
        name: "b".into(),
        shape: vec![1],
        data: vec![0.0],
    };
    let e = opt.add_param_group(&[b], adam).unwrap_err().to_string();
    assert!(
        e.contains("a Adam group cannot join a SGD optimizer"),
        "{e}"
    );
    // Nothing changed: the optimizer still steps its one parameter.
    opt.set_grad("w", &[1.0; 4]).unwrap();
    opt.step().unwrap();
    assert_eq!(opt.state_dict().param_groups.len(), 1);
}

#[test]
fn load_state_dict_refuses_another_optimizers_state() {
    let mut one = over(sgd(0.1, 0.9), &START).unwrap();
    one.set_grad("w", &[1.0; 4]).unwrap();
    one.step().unwrap();
    let mut other = over(sgd(0.1, 0.9), &[0.0]).unwrap();
    let e = other
        .load_state_dict(&one.state_dict())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("state `w.momentum_buffer` (4 values) does not fit"),
        "{e}"
    );
    assert_eq!(other.step_count(), 0);
}
