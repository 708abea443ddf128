//! Graph construction and `verify()`: ill-typed ops are refused with a
//! message naming the op, and verify catches broken invariants.

use graphc_ir::{BinaryOp, Graph, IrError, ReduceOp, TensorType};

#[test]
fn binary_op_of_different_shapes_is_refused() {
    let mut g = Graph::new();
    let a = g.param("a", &[2, 3]);
    let b = g.param("b", &[3, 2]);
    let err = g.binary(BinaryOp::Add, a, b).unwrap_err();
    assert!(
        matches!(err, IrError::Type { ref op, .. } if op == "add"),
        "{err}"
    );
}

#[test]
fn matmul_infers_shapes_with_transposes() {
    let mut g = Graph::new();
    let a = g.param("a", &[4, 3]);
    let b = g.param("b", &[5, 3]);
    let c = g.matmul(a, b, false, true).unwrap();
    assert_eq!(g.shape(c), [4, 5]);
    let d = g.matmul(a, c, true, false).unwrap();
    assert_eq!(g.shape(d), [3, 5]);
    assert!(
        g.matmul(a, b, false, false).is_err(),
        "inner dimensions differ"
    );
}

#[test]
fn reductions_keep_axes_and_broadcast_back() {
    let mut g = Graph::new();
    let x = g.param("x", &[2, 3, 4]);
    let s = g.reduce(ReduceOp::Sum, x, &[0, 2]).unwrap();
    assert_eq!(g.shape(s), [1, 3, 1]);
    let b = g.broadcast(s, &[2, 3, 4]).unwrap();
    assert_eq!(g.shape(b), [2, 3, 4]);
    assert!(
        g.reduce(ReduceOp::Sum, x, &[2, 0]).is_err(),
        "axes must be sorted"
    );
    assert!(g.broadcast(x, &[2, 3]).is_err(), "same rank only");
}

#[test]
fn one_hot_needs_integer_indices() {
    let mut g = Graph::new();
    let y = g.input("y", TensorType::i64(&[5]));
    let h = g.one_hot(y, 3).unwrap();
    assert_eq!(g.node(h).ty, TensorType::f32(&[5, 3]));
    let f = g.param("f", &[5]);
    assert!(g.one_hot(f, 3).is_err());
}

#[test]
fn random_uniform_needs_an_i64_step_of_one_or_two_elements_and_a_bounded_shape() {
    let mut g = Graph::new();
    let step = g.input("step", TensorType::i64(&[]));
    let u = g.random_uniform(step, 7, 2, &[3, 5]).unwrap();
    assert_eq!(g.node(u).ty, TensorType::f32(&[3, 5]));
    let one = g.input("one", TensorType::i64(&[1]));
    assert!(g.random_uniform(one, 7, 2, &[4]).is_ok());
    let float_step = g.hyper("t");
    let err = g.random_uniform(float_step, 7, 2, &[4]).unwrap_err();
    assert!(
        matches!(err, IrError::Type { ref op, .. } if op == "random_uniform"),
        "{err}"
    );
    // Two elements: the step and a first row.
    let rows = g.input("rows", TensorType::i64(&[2]));
    assert!(g.random_uniform(rows, 7, 2, &[4]).is_ok());
    let many = g.input("many", TensorType::i64(&[3]));
    assert!(g.random_uniform(many, 7, 2, &[4]).is_err());
    // Element blocks must fit counter word 0: at most 2^34 elements.
    assert!(g.random_uniform(step, 7, 2, &[1 << 17, 1 << 17]).is_ok());
    assert!(g
        .random_uniform(step, 7, 2, &[(1 << 17) + 1, 1 << 17])
        .is_err());
    assert!(g.random_uniform(step, 7, 2, &[usize::MAX, 2]).is_err());
    g.verify().unwrap();
}

#[test]
fn verify_refuses_duplicate_names_and_double_assigns() {
    let mut g = Graph::new();
    let p = g.param("w", &[2]);
    g.param("w", &[2]);
    assert!(g.verify().unwrap_err().to_string().contains("used twice"));

    let mut g = Graph::new();
    let p2 = g.param("w", &[2]);
    let one = g.fill(1.0, &[2]);
    let v = g.binary(BinaryOp::Add, p2, one).unwrap();
    g.add_assign(p2, v).unwrap();
    g.add_assign(p2, v).unwrap();
    assert!(g
        .verify()
        .unwrap_err()
        .to_string()
        .contains("assigned twice"));
    let _ = p;
}

#[test]
fn assign_must_write_a_persistent_leaf_of_its_type() {
    let mut g = Graph::new();
    let p = g.param("w", &[2]);
    let x = g.input("x", TensorType::f32(&[2]));
    let wrong = g.fill(0.0, &[3]);
    assert!(g.add_assign(x, p).is_err(), "inputs are not persistent");
    assert!(g.add_assign(p, wrong).is_err(), "shape differs");
}

#[test]
fn text_printer_shows_types_ops_and_assigns() {
    let mut g = Graph::new();
    let p = g.param("w", &[2]);
    let lr = g.hyper("lr");
    let lr = g.broadcast_to(lr, &[2]).unwrap();
    let v = g.binary(BinaryOp::Sub, p, lr).unwrap();
    g.add_assign(p, v).unwrap();
    g.add_output("w_next", v);
    let text = g.to_text();
    assert!(text.contains("f32[2] = param \"w\""), "{text}");
    assert!(text.contains("= sub("), "{text}");
    assert!(text.contains("output \"w_next\""), "{text}");
    assert!(text.contains("assign %0 <-"), "{text}");
    assert!(g.to_dot().starts_with("digraph"));
}
