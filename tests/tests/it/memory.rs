//! Issue #12's memory target, checked on the compiled step itself: a convnet training step
//! (specs/bench/convnet.yaml) fits in 1.5 × its parameters, Adam state and saved
//! activations, no per-layer patch matrix or shared broadcast kept beyond its use.

use std::path::Path;

use graphc::stages::{ir, jit, nn, opt};

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

/// The size check counts an embedding's 0/1 rows (a value per input feature and table row),
/// which no layer output shows: 64 samples × 100 indices × 10^6 rows are 25.6 GB of them,
/// while the table's 10^6 × 2 values with gradient and Adam state are 128 MB.
#[test]
fn the_size_check_counts_an_embeddings_one_hot_rows() {
    let text = |rows: u64| {
        format!(
            "data: {{train: {{csv: d.csv, target: y}}, batch_size: 64}}
model:
  input: [100]
  layers:
    - {{type: embedding, num_embeddings: {rows}, embedding_dim: 2}}
    - {{type: flatten}}
    - {{type: linear, out: 2}}
loss: {{type: cross_entropy}}
optimizer: {{type: adam, lr: 0.01}}
train: {{epochs: 1}}
"
        )
    };
    let check = |rows: u64| {
        let spec = graphc::parse_str(&text(rows), Path::new("spec.yaml")).unwrap();
        graphc::stages::train::run::check_size_within(&spec, 1 << 30)
    };
    check(1000).expect("64 × 100 × 1000 one-hot values fit in 1 GiB");
    let message = check(1_000_000).unwrap_err().to_string();
    assert!(
        message.contains("model.layers[0] (embedding, num_embeddings 1000000, embedding_dim 2)"),
        "{message}"
    );
}

/// Issue #12's pooling fusion is the form both CNN benchmarks compile to: each max pooling's
/// gradient takes relu's mask on the pooled gradient (no pass reads the full-size relu result
/// and writes the masked gradient again), and the JIT keeps each pooling's argmaxes for its
/// gradient (the full-size input is not searched again, nor kept until the backward pass).
#[test]
fn the_cnn_benchmarks_pool_through_kept_argmaxes_with_relus_mask_pooled() {
    for name in ["lenet", "convnet"] {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../specs/bench/{name}.yaml"));
        let spec = graphc::parse_spec(&path).unwrap();
        let layout = nn::natural_layout(&spec).unwrap();
        let mut step = nn::build_step(&spec, spec.data.batch_size, layout).unwrap();
        opt::optimize(&mut step.graph).unwrap();
        let g = &step.graph;
        let masked = g
            .node_ids()
            .filter(|&v| matches!(g.node(v).op, ir::Op::MaxPoolGrad(_)))
            .map(|v| g.node(g.operands(v)[1]).op.clone())
            .filter(|op| matches!(op, ir::Op::Select))
            .count();
        assert_eq!(
            masked, 2,
            "{name}: pooling gradients of a masked pooled gradient"
        );
        let exe = jit::compile_with(g, &jit::Options::default()).unwrap();
        assert_eq!(exe.stats().argmax_pools, 4, "{name}: {:?}", exe.stats());
    }
}
