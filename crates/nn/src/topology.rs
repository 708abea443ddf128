//! The model as one list of entries in evaluation order: `model.layers` with its nested
//! `sequential` and `residual` blocks, or `model.nodes`, flattened so that describing and
//! building walk the same list.
//!
//! Every layer of the spec is one entry, blocks included: a `sequential` entry comes after
//! its layers and passes on the last one's output (an identity, so `graphc check` shows the
//! block and its output), a `residual` entry comes after its body and shortcut and adds their
//! outputs. An entry's position is its dropout stream, so a plain chain's layer `i` is entry
//! `i`, as before nesting existed.

use graphc_spec::{LayerKind, LayerSpec, ModelBody, ModelSpec, NodeInput};

/// Where an entry reads a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The model's input.
    Input,
    /// The output of the entry at this position.
    Entry(usize),
}

/// One layer of the flattened model.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    /// Its spec.
    pub(crate) layer: &'a LayerSpec,
    /// Its key path in the spec: `model.layers[2].layers[0]`, `model.nodes[3]`.
    pub(crate) path: String,
    /// The prefix of its `state_dict` names: `2.body.0`, `features.conv1`, `layer1.0.conv1`.
    pub(crate) prefix: String,
    /// What it reads, in order.
    pub(crate) inputs: Vec<Source>,
    /// Whether the model's output depends on it (a node of `model.nodes` may not).
    pub(crate) reaches_output: bool,
    /// Its `requires_grad`, false too when a block holding it has `requires_grad: false`
    /// (PyTorch's `block.requires_grad_(False)` freezes everything inside).
    pub(crate) requires_grad: bool,
}

impl Entry<'_> {
    /// `linear at 2.body.0` or `linear "fc1"`, as messages name a layer.
    pub(crate) fn label(&self) -> String {
        let kind = self.layer.kind.layer_type().name();
        match &self.layer.name {
            Some(_) => format!("{kind} {:?}", self.prefix),
            None => format!("{kind} at {}", self.prefix),
        }
    }
}

/// The model's entries in evaluation order, and where its output is.
pub(crate) fn entries(model: &ModelSpec) -> (Vec<Entry<'_>>, Source) {
    let mut out = Vec::new();
    let output = match &model.body {
        ModelBody::Layers(layers) => {
            chain(&mut out, layers, "model.layers", "", Source::Input, true)
        }
        ModelBody::Nodes(graph) => {
            let mut outputs = Vec::with_capacity(graph.nodes.len());
            for (i, node) in graph.nodes.iter().enumerate() {
                let inputs = node
                    .inputs
                    .iter()
                    .map(|input| match input {
                        NodeInput::Model => Source::Input,
                        NodeInput::Node(j) => outputs[*j],
                    })
                    .collect();
                let name = node.layer.name.clone().unwrap_or_default();
                let path = format!("model.nodes[{i}]");
                outputs.push(layer(&mut out, &node.layer, path, name, inputs, true));
            }
            outputs[graph.output]
        }
        // An objective has no layers: `build_model` builds its expression instead.
        ModelBody::Objective(_) => Source::Input,
    };
    mark_reachable(&mut out, output);
    (out, output)
}

/// Appends `layers` (at key path `path`, names under `prefix`) reading `input`; returns the
/// source of the last one's output.
fn chain<'a>(
    out: &mut Vec<Entry<'a>>,
    layers: &'a [LayerSpec],
    path: &str,
    prefix: &str,
    input: Source,
    requires_grad: bool,
) -> Source {
    let mut h = input;
    for (i, spec) in layers.iter().enumerate() {
        let own = spec.name.clone().unwrap_or_else(|| i.to_string());
        let name = if prefix.is_empty() {
            own
        } else {
            format!("{prefix}.{own}")
        };
        h = layer(
            out,
            spec,
            format!("{path}[{i}]"),
            name,
            vec![h],
            requires_grad,
        );
    }
    h
}

/// Appends one layer (a block after its inner layers); returns the source of its output.
fn layer<'a>(
    out: &mut Vec<Entry<'a>>,
    spec: &'a LayerSpec,
    path: String,
    prefix: String,
    inputs: Vec<Source>,
    parent_requires_grad: bool,
) -> Source {
    let requires_grad = parent_requires_grad && spec.requires_grad;
    // Only blocks hold layers of their own; every other kind is one entry.
    let inputs = if let LayerKind::Sequential(layers) = &spec.kind {
        let input = inputs[0];
        vec![chain(
            out,
            layers,
            &format!("{path}.layers"),
            &prefix,
            input,
            requires_grad,
        )]
    } else if let LayerKind::Residual { body, shortcut } = &spec.kind {
        let input = inputs[0];
        let body_prefix = format!("{prefix}.body");
        let body_path = format!("{path}.layers");
        let b = chain(out, body, &body_path, &body_prefix, input, requires_grad);
        let s = match shortcut {
            Some(layers) => {
                let short_prefix = format!("{prefix}.shortcut");
                let short_path = format!("{path}.shortcut");
                chain(
                    out,
                    layers,
                    &short_path,
                    &short_prefix,
                    input,
                    requires_grad,
                )
            }
            None => input,
        };
        vec![b, s]
    } else {
        inputs
    };
    out.push(Entry {
        layer: spec,
        path,
        prefix,
        inputs,
        reaches_output: false,
        requires_grad,
    });
    Source::Entry(out.len() - 1)
}

/// Marks the entries the output depends on.
fn mark_reachable(entries: &mut [Entry<'_>], output: Source) {
    let mut stack = vec![output];
    while let Some(source) = stack.pop() {
        if let Source::Entry(i) = source {
            if !std::mem::replace(&mut entries[i].reaches_output, true) {
                stack.extend(entries[i].inputs.iter().copied());
            }
        }
    }
}

/// Every layer spec of the model, blocks and their contents included.
pub fn all_layers(model: &ModelSpec) -> Vec<&LayerSpec> {
    entries(model).0.into_iter().map(|e| e.layer).collect()
}
