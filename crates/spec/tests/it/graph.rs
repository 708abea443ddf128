//! Models beyond a chain: nested `sequential`/`residual` blocks in `model.layers`, and
//! `model.nodes` graphs — what they parse to, and every error, located at its key.

use std::path::Path;

use graphc_spec::*;

/// A spec whose `model:` mapping holds `model` (block lines, indented by 2), from line 5.
fn with_model(model: &str) -> String {
    format!(
        "seed: 0
data:
  train: {{csv: train.csv, target: y}}
  batch_size: 10
model:
  input: [4]
{model}loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1}}
train: {{epochs: 1}}
"
    )
}

fn parse(model: &str) -> Result<Spec, SpecError> {
    parse_str(&with_model(model), Path::new("spec.yaml"))
}

#[track_caller]
fn err(model: &str) -> SpecError {
    match parse(model) {
        Ok(spec) => panic!("expected an error, got {spec:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_err(model: &str, line: usize, column: usize, message: &str) {
    let e = err(model);
    assert_eq!(e.message(), message, "{e}");
    assert_eq!((e.line(), e.column()), (Some(line), Some(column)), "{e}");
}

fn nodes(model: &str) -> NodeGraph {
    match parse(model).unwrap().model.body {
        ModelBody::Nodes(graph) => graph,
        ModelBody::Layers(layers) => panic!("nodes expected, got layers {layers:?}"),
        ModelBody::Objective(o) => panic!("nodes expected, got an objective {o:?}"),
    }
}

#[test]
fn nested_blocks_parse_with_their_layers() {
    let spec = parse(
        "  layers:
    - {type: sequential, name: features, layers: [{type: linear, out: 8}, {type: relu}]}
    - {type: residual, layers: [{type: linear, out: 8}], shortcut: [{type: Linear, out: 8}]}
    - {type: residual, layers: [{type: sequential, layers: [{type: tanh}]}]}
",
    )
    .unwrap();
    let layers = spec.model.layers().unwrap();
    let LayerKind::Sequential(inner) = &layers[0].kind else {
        panic!("{:?}", layers[0]);
    };
    assert_eq!(layers[0].name.as_deref(), Some("features"));
    assert_eq!(inner[0].kind, LayerKind::Linear { out: 8, bias: true });
    assert_eq!(inner[1].kind, LayerKind::Relu);
    let LayerKind::Residual { body, shortcut } = &layers[1].kind else {
        panic!("{:?}", layers[1]);
    };
    assert_eq!(body.len(), 1);
    assert_eq!(shortcut.as_ref().map(Vec::len), Some(1));
    let LayerKind::Residual { body, shortcut } = &layers[2].kind else {
        panic!("{:?}", layers[2]);
    };
    assert!(matches!(&body[0].kind, LayerKind::Sequential(s) if s[0].kind == LayerKind::Tanh));
    assert_eq!(shortcut, &None);
}

#[test]
fn nodes_resolve_inputs_defaults_and_output() {
    let graph = nodes(
        "  nodes:
    - {name: fc1, type: linear, out: 8}
    - {name: layer1.0.act, type: gelu}
    - {name: fc2, type: linear, out: 8, inputs: input}
    - {name: skip, type: add, inputs: [fc2, fc1, layer1.0.act]}
    - {name: m, type: mean, dim: [-1, 1], keepdim: true}
    - {name: r, type: reshape, shape: [-1, 2], inputs: skip}
    - {name: c, type: concat, inputs: [skip, fc1]}
  output: skip
",
    );
    let inputs: Vec<&[NodeInput]> = graph.nodes.iter().map(|n| &n.inputs[..]).collect();
    use NodeInput::{Model, Node};
    assert_eq!(
        inputs,
        [
            &[Model][..],
            &[Node(0)],
            &[Model],
            &[Node(2), Node(0), Node(1)],
            &[Node(3)],
            &[Node(3)],
            &[Node(3), Node(0)],
        ]
    );
    assert_eq!(graph.output, 3);
    assert_eq!(graph.nodes[1].layer.name.as_deref(), Some("layer1.0.act"));
    assert_eq!(
        graph.nodes[4].layer.kind,
        LayerKind::Combine(Combinator::Mean(Reduce {
            dim: vec![-1, 1],
            keepdim: true
        }))
    );
    assert_eq!(
        graph.nodes[5].layer.kind,
        LayerKind::Combine(Combinator::Reshape { shape: vec![-1, 2] })
    );
    assert_eq!(
        graph.nodes[6].layer.kind,
        LayerKind::Combine(Combinator::Concat { dim: 1 })
    );
    // Without `output`, the last node.
    let graph = nodes("  nodes: [{name: a, type: linear, out: 2}, {name: b, type: relu}]\n");
    assert_eq!(graph.output, 1);
}

#[test]
fn node_input_errors_name_both_nodes_at_the_inputs_key() {
    assert_err(
        "  nodes:
    - {name: fc1, type: linear, out: 8}
    - {name: skip, type: add, inputs: [fc1, fc3]}
",
        9,
        31,
        "model.nodes[1].inputs: unknown node `fc3`; did you mean `fc1`? valid: input, fc1, skip",
    );
    assert_err(
        "  nodes:
    - {name: a, type: linear, out: 8, inputs: b}
    - {name: b, type: relu, inputs: input}
",
        8,
        39,
        "model.nodes[0].inputs: node `a` reads `b`, which is defined later (model.nodes[1]); \
         list every node after its inputs",
    );
    assert_err(
        "  nodes:
    - {name: a, type: linear, out: 8, inputs: b}
    - {name: b, type: relu}
",
        8,
        39,
        "model.nodes[0].inputs: nodes `a` and `b` form a cycle (`a` reads `b`, which depends on `a`)",
    );
    assert_err(
        "  nodes:
    - {name: a, type: linear, out: 8, inputs: a}
",
        8,
        39,
        "model.nodes[0].inputs: node `a` reads itself",
    );
}

#[test]
fn arity_errors_say_how_many_inputs_a_node_takes() {
    let two = "    - {name: a, type: linear, out: 8}\n    - {name: b, type: relu}\n";
    assert_err(
        &format!("  nodes:\n{two}    - {{name: s, type: add, inputs: a}}\n"),
        10,
        28,
        "model.nodes[2].inputs: `add` takes 2 or more inputs, got 1",
    );
    assert_err(
        &format!("  nodes:\n{two}    - {{name: s, type: sub, inputs: [a, b, a]}}\n"),
        10,
        28,
        "model.nodes[2].inputs: `sub` takes 2 inputs, got 3",
    );
    assert_err(
        &format!("  nodes:\n{two}    - {{name: s, type: linear, out: 2, inputs: [a, b]}}\n"),
        10,
        39,
        "model.nodes[2].inputs: `linear` takes one input, got 2",
    );
}

#[test]
fn node_names_are_required_unique_and_not_input() {
    let e = err("  nodes:\n    - {type: linear, out: 8}\n");
    assert_eq!(
        e.message(),
        "missing key `name` in model.nodes[0] (linear)",
        "{e}"
    );
    assert_err(
        "  nodes:\n    - {name: a, type: relu}\n    - {name: a, type: tanh}\n",
        9,
        14,
        "model.nodes[1].name: duplicate node name `a`; names must be unique across nodes",
    );
    assert_err(
        "  nodes:\n    - {name: input, type: relu}\n",
        8,
        14,
        "model.nodes[0].name: `input` names the model's input in `inputs`; choose another node name",
    );
    assert_err(
        "  nodes:\n    - {name: a..b, type: relu}\n",
        8,
        14,
        "model.nodes[0].name: node name `a..b` has an empty part between dots; parameter names are NAME.weight",
    );
}

#[test]
fn model_body_errors() {
    assert_err(
        "  layers: [{type: relu}]\n  nodes: [{name: a, type: relu}]\n",
        8,
        3,
        "model: give `layers` (a chain) or `nodes` (a graph), not both",
    );
    assert_err(
        "  layers: [{type: relu}]\n  output: a\n",
        8,
        3,
        "model.output: `output` names a node of model.nodes; with `layers` the output is the last layer's",
    );
    assert_err(
        "  nodes: [{name: a, type: relu}]\n  output: b\n",
        8,
        3,
        "model.output: unknown node `b`; valid: input, a",
    );
    let e = err("  init: null\n");
    assert_eq!(e.message(), "missing key `layers` in model", "{e}");
}

#[test]
fn layer_lists_refuse_inputs_and_multi_input_combinators() {
    assert_err(
        "  layers:\n    - {type: relu, inputs: input}\n",
        8,
        20,
        "model.layers[0].inputs: `inputs` is only valid in model.nodes; in a list of layers \
         each layer reads the one before it",
    );
    assert_err(
        "  layers:\n    - {type: residual, layers: [{type: concat}]}\n",
        8,
        34,
        "model.layers[0].layers[0].type: `concat` combines the outputs of several nodes, so it \
         is a node of model.nodes, not a layer of a list",
    );
    // Single-input combinators are layers like any other.
    let spec =
        parse("  layers:\n    - {type: reshape, shape: [2, 2]}\n    - {type: sum, dim: 1}\n");
    assert!(spec.is_ok(), "{spec:?}");
}

#[test]
fn block_and_combinator_key_errors() {
    assert_err(
        "  layers:\n    - {type: residual, shortcut: [{type: relu}]}\n",
        8,
        7,
        "missing key `layers` in model.layers[0] (residual)",
    );
    assert_err(
        "  layers:\n    - {type: sequential, layers: []}\n",
        8,
        34,
        "model.layers[0].layers: must not be empty; expected a non-empty list of layers such as \
         {type: linear, out: 16}",
    );
    assert_err(
        "  layers:\n    - {type: sequential, layers: [{type: relu, name: a}, {type: tanh, name: a}]}\n",
        8,
        77,
        "model.layers[0].layers[1].name: duplicate layer name `a`; names must be unique across layers",
    );
    assert_err(
        "  layers:\n    - {type: reshape, shape: [-1, 2, -1]}\n",
        8,
        23,
        "model.layers[0].shape: at most one size may be -1 (inferred)",
    );
    assert_err(
        "  layers:\n    - {type: reshape, shape: [0]}\n",
        8,
        31,
        "model.layers[0].shape[0]: invalid value: integer `0`, expected a positive integer or -1",
    );
    assert_err(
        "  layers:\n    - {type: mean}\n",
        8,
        7,
        "missing key `dim` in model.layers[0] (mean)",
    );
    assert_err(
        "  layers:\n    - {type: softmax, dim: [1, 2]}\n",
        8,
        23,
        "model.layers[0].dim: softmax takes one dim, an integer",
    );
}
