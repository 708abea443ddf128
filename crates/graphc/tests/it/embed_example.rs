//! Runs the embedding example and checks that it learned its line.

#[path = "../../examples/embed.rs"]
mod embed;

#[test]
fn embed_example_fits_the_line_it_is_given() {
    let (weight, bias, loss) = embed::fit_line().expect("the example runs");
    assert!((weight - 3.0).abs() < 1e-3, "weight {weight}");
    assert!((bias + 1.0).abs() < 1e-3, "bias {bias}");
    assert!(loss < 1e-6, "loss {loss}");
}
