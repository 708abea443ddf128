//! The optimizer tutorial's facts, through the example that shows them: set a gradient,
//! step, look at the weights and the state.

#[path = "../../examples/optimizer_tutorial.rs"]
mod tutorial;

use tutorial::{momentum_buffers, one_step, over, sgd};

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
