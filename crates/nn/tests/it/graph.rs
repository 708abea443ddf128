//! Nested blocks and node graphs as graphc-nn resolves them: `state_dict` names, the order
//! of entries (dropout streams), what each reads, shapes, and shape errors naming the node.

use graphc_nn::{describe_model, LayerInfo, NnError, Source};
use graphc_spec::parse_str;

fn describe(input: &str, model: &str) -> Result<Vec<LayerInfo>, NnError> {
    let yaml = format!(
        "seed: 3
data: {{train: {{csv: d.csv, target: y}}, batch_size: 8}}
model: {{input: {input}, {model}}}
loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1}}
train: {{epochs: 1}}
"
    );
    let spec = parse_str(&yaml, std::path::Path::new("test.yaml")).expect("valid spec");
    describe_model(&spec.model, 8)
}

fn names(infos: &[LayerInfo]) -> Vec<String> {
    infos
        .iter()
        .flat_map(|i| i.params.iter().map(|p| p.name.clone()))
        .collect()
}

#[test]
fn nested_blocks_name_parameters_as_pytorch_modules() {
    let infos = describe(
        "[4]",
        "layers: [{type: sequential, name: features, layers: [{type: linear, out: 8}, \
         {type: relu}, {type: linear, out: 8, name: proj}]}, {type: relu}, \
         {type: residual, layers: [{type: linear, out: 8}, {type: sequential, layers: \
         [{type: linear, out: 8}]}], shortcut: [{type: linear, out: 8, bias: false}]}]",
    )
    .unwrap();
    assert_eq!(
        names(&infos),
        [
            "features.0.weight",
            "features.0.bias",
            "features.proj.weight",
            "features.proj.bias",
            "2.body.0.weight",
            "2.body.0.bias",
            "2.body.1.0.weight",
            "2.body.1.0.bias",
            "2.shortcut.0.weight",
        ]
    );
    // Blocks come after their contents; a residual reads its body and its shortcut.
    let prefixes: Vec<&str> = infos.iter().map(|i| i.prefix.as_str()).collect();
    assert_eq!(
        prefixes,
        [
            "features.0",
            "features.1",
            "features.proj",
            "features",
            "1",
            "2.body.0",
            "2.body.1.0",
            "2.body.1",
            "2.shortcut.0",
            "2"
        ]
    );
    assert_eq!(infos[3].inputs, [Source::Entry(2)]);
    assert_eq!(infos[9].inputs, [Source::Entry(7), Source::Entry(8)]);
    assert_eq!(infos[8].inputs, [Source::Entry(4)]);
    assert_eq!(infos[5].path, "model.layers[2].layers[0]");
    assert_eq!(infos[8].path, "model.layers[2].shortcut[0]");
    assert_eq!(infos[6].label, "linear at 2.body.1.0");
    assert_eq!(infos[2].label, "linear \"features.proj\"");
    assert!(infos.iter().all(|i| i.reaches_output));
    // A plain chain's layer i is entry i (its dropout stream, as before blocks existed).
    let chain = describe(
        "[4]",
        "layers: [{type: linear, out: 3}, {type: dropout}, {type: relu}]",
    )
    .unwrap();
    let index: Vec<usize> = chain.iter().map(|i| i.index).collect();
    assert_eq!(index, [0, 1, 2]);
}

#[test]
fn combinator_shapes_follow_pytorch() {
    let infos = describe(
        "[2, 6]",
        "nodes: [{name: a, type: conv1d, out_channels: 3, kernel_size: 1}, \
         {name: s, type: sum, dim: -1, keepdim: true}, \
         {name: m, type: mul, inputs: [a, s]}, \
         {name: c, type: concat, inputs: [a, m, input]}, \
         {name: c2, type: concat, dim: 2, inputs: [a, a]}, \
         {name: mean, type: mean, dim: [1, 2], keepdim: true, inputs: c}, \
         {name: r, type: reshape, shape: [-1, 4], inputs: c2}, \
         {name: unused, type: linear, out: 5, inputs: a}, \
         {name: out, type: flatten, inputs: r}]",
    )
    .unwrap();
    let shapes: Vec<(&str, &[usize])> = infos
        .iter()
        .map(|i| (i.prefix.as_str(), i.output.as_slice()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("a", &[3, 6][..]),
            ("s", &[3, 1]),
            ("m", &[3, 6]),
            ("c", &[8, 6]),
            ("c2", &[3, 12]),
            ("mean", &[1, 1]),
            ("r", &[9, 4]),
            ("unused", &[3, 5]),
            ("out", &[36]),
        ]
    );
    let reach: Vec<bool> = infos.iter().map(|i| i.reaches_output).collect();
    assert_eq!(
        reach,
        [true, false, false, false, true, false, true, false, true]
    );
}

#[track_caller]
fn assert_error(input: &str, model: &str, expected: &str) {
    let e = describe(input, model).unwrap_err();
    assert_eq!(e.to_string(), expected);
}

#[test]
fn combinator_shape_errors_name_the_node_and_the_shapes() {
    assert_error(
        "[4]",
        "nodes: [{name: a, type: linear, out: 3}, {name: b, type: add, inputs: [a, input]}]",
        "model.nodes[1] (add \"b\"): its inputs [8, 3] and [8, 4] do not broadcast",
    );
    assert_error(
        "[2, 4]",
        "nodes: [{name: f, type: flatten}, {name: b, type: mul, inputs: [f, input]}]",
        "model.nodes[1] (mul \"b\"): its inputs [8, 8] and [8, 2, 4] have different ranks; \
         reshape one so that the batch axes line up",
    );
    assert_error(
        "[2, 4]",
        "nodes: [{name: a, type: conv1d, out_channels: 3, kernel_size: 2}, \
         {name: c, type: concat, inputs: [a, input]}]",
        "model.nodes[1] (concat \"c\"): its inputs [8, 3, 3] and [8, 2, 4] differ on an axis \
         other than dim 1",
    );
    assert_error(
        "[4]",
        "layers: [{type: concat, dim: 0}]"
            .replace("concat", "sum")
            .as_str(),
        "model.layers[0] (sum at 0): dim 0 is the batch axis of [8, 4]; graphc keeps every \
         sample's values apart",
    );
    assert_error(
        "[4]",
        "layers: [{type: mean, dim: [1, -1]}]",
        "model.layers[0] (mean at 0): dim 1 appears more than once in [1, -1] for a tensor of \
         shape [8, 4]",
    );
    assert_error(
        "[4]",
        "layers: [{type: sum, dim: 1}]",
        "model.layers[0] (sum at 0): it reduces every axis of a sample of [8, 4], leaving one \
         value per sample; set keepdim: true to keep a [N, 1, ..] shape",
    );
    assert_error(
        "[2, 3]",
        "layers: [{type: reshape, shape: [4, -1]}]",
        "model.layers[0] (reshape at 0): shape [4, -1] does not fit a sample of [8, 2, 3] (6 values)",
    );
    assert_error(
        "[4]",
        "layers: [{type: residual, layers: [{type: linear, out: 3}]}]",
        "model.layers[0] (residual at 0): its inputs [8, 3] and [8, 4] do not broadcast",
    );
    assert_error(
        "[4]",
        "layers: [{type: sequential, layers: [{type: conv2d, out_channels: 2, kernel_size: 1}]}]",
        "model.layers[0].layers[0] (conv2d at 0.0): expects a 4-d input [N, C, H, W], got [8, 4] \
         (set model.input to [C, H, W] or add a layer that makes that shape)",
    );
}
