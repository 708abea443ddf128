//! Issue #12's memory target, checked on the compiled step itself: a convnet training step
//! (specs/bench/convnet.yaml) fits in 1.5 × its parameters, Adam state and saved
//! activations, no per-layer patch matrix or shared broadcast kept beyond its use.

use std::path::Path;

use graphc::stages::{jit, nn, opt};

/// 1.5 × (106,922 parameters + 213,844 Adam moments + 7,176,896 saved activations, indices
/// and statistics) in floats: benches/README.md ("Memory of a convnet step") counts them.
const CONVNET_BUDGET_FLOATS: usize = 11_246_493;

#[test]
fn a_convnet_step_fits_in_one_and_a_half_times_what_it_must_keep() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/bench/convnet.yaml");
    let spec = graphc::parse_spec(&path).expect("specs/bench/convnet.yaml parses");
    let layout = nn::natural_layout(&spec).unwrap();
    let mut step = nn::build_step(&spec, spec.data.batch_size, layout).unwrap();
    opt::optimize(&mut step.graph).unwrap();
    let exe = jit::compile_with(&step.graph, &jit::Options::default()).unwrap();
    let floats = exe.stats().arena_floats;
    assert!(
        floats <= CONVNET_BUDGET_FLOATS,
        "the convnet step's arena holds {floats} floats, over the budget of {CONVNET_BUDGET_FLOATS}"
    );
}
