//! Layer norm, group norm and embedding: `state_dict` names, shapes and inits of their
//! parameters, output shapes, the shape errors PyTorch raises (naming the layer and the
//! shapes), and the embedding's N(0, 1) init with its padding row zeroed.

use graphc_nn::{build_step, default_init, describe_model, DefaultInit, LayerInfo, TargetLayout};

use crate::norm::spec;

fn describe(input: &str, layers: &str) -> Vec<LayerInfo> {
    describe_model(&spec(input, layers).model, 8).expect("the model resolves")
}

fn error(input: &str, layers: &str) -> String {
    describe_model(&spec(input, layers).model, 8)
        .unwrap_err()
        .to_string()
}

/// `(name, shape, init)` of each parameter.
fn params(info: &LayerInfo) -> Vec<(&str, &[usize], DefaultInit)> {
    info.params
        .iter()
        .map(|d| (d.name.as_str(), d.shape.as_slice(), d.init.clone()))
        .collect()
}

#[test]
fn layer_norm_declares_weight_and_bias_of_the_normalized_shape() {
    let layers = describe("[3, 5]", "{type: layer_norm}, {type: flatten}");
    assert_eq!(layers[0].output, [3, 5]);
    assert_eq!(
        params(&layers[0]),
        [
            ("0.weight", &[5][..], DefaultInit::Ones),
            ("0.bias", &[5][..], DefaultInit::Zeros),
        ]
    );
    let layers = describe(
        "[3, 5]",
        "{type: layer_norm, normalized_shape: [3, 5], name: ln}",
    );
    assert_eq!(
        params(&layers[0]),
        [
            ("ln.weight", &[3, 5][..], DefaultInit::Ones),
            ("ln.bias", &[3, 5][..], DefaultInit::Zeros),
        ]
    );
    let layers = describe("[4]", "{type: layer_norm, bias: false}");
    assert_eq!(
        params(&layers[0]),
        [("0.weight", &[4][..], DefaultInit::Ones)]
    );
    let layers = describe("[4]", "{type: layer_norm, elementwise_affine: false}");
    assert!(layers[0].params.is_empty());
}

#[test]
fn layer_norm_shape_must_end_the_input_shape() {
    assert_eq!(
        error("[3, 5]", "{type: layer_norm, normalized_shape: 3}"),
        "model.layers[0] (layer_norm at 0): normalized_shape [3] expects an input of shape [*, 3], got [8, 3, 5]"
    );
    assert_eq!(
        error("[3, 5]", "{type: flatten}, {type: layer_norm, normalized_shape: [3, 5], name: ln}"),
        "model.layers[1] (layer_norm \"ln\"): normalized_shape [3, 5] expects an input of shape [*, 3, 5], got [8, 15]"
    );
    assert_eq!(
        error("[5]", "{type: layer_norm, normalized_shape: [8, 5]}"),
        "model.layers[0] (layer_norm at 0): normalized_shape [8, 5] expects an input of shape [*, 8, 5] (it may not reach the batch axis), got [8, 5]"
    );
}

#[test]
fn group_norm_declares_per_channel_weight_and_bias() {
    let layers = describe("[6, 4, 4]", "{type: group_norm, num_groups: 3}");
    assert_eq!(layers[0].output, [6, 4, 4]);
    assert_eq!(
        params(&layers[0]),
        [
            ("0.weight", &[6][..], DefaultInit::Ones),
            ("0.bias", &[6][..], DefaultInit::Zeros),
        ]
    );
    let layers = describe(
        "[6]",
        "{type: group_norm, num_groups: 6, affine: false, num_channels: 6}",
    );
    assert!(layers[0].params.is_empty());
}

#[test]
fn group_norm_errors_name_the_layer_and_shapes() {
    assert_eq!(
        error("[6, 4]", "{type: group_norm, num_groups: 4}"),
        "model.layers[0] (group_norm at 0): num_groups 4 must divide the input's 6 channels (axis 1 of [8, 6, 4])"
    );
    assert_eq!(
        error("[6, 4]", "{type: group_norm, num_groups: 2, num_channels: 4}"),
        "model.layers[0] (group_norm at 0): num_channels is 4, but its input [8, 6, 4] has 6 channels; leave num_channels out to infer it"
    );
}

#[test]
fn embedding_declares_its_table_and_appends_embedding_dim() {
    let layers = describe(
        "[2, 5]",
        "{type: embedding, num_embeddings: 10, embedding_dim: 3, padding_idx: -1}, {type: flatten}",
    );
    assert_eq!(layers[0].output, [2, 5, 3]);
    assert_eq!(layers[1].output, [30]);
    assert_eq!(
        params(&layers[0]),
        [(
            "0.weight",
            &[10, 3][..],
            DefaultInit::StandardNormal { zero_row: Some(9) }
        )]
    );
}

#[test]
fn an_embedding_must_read_the_models_input() {
    assert_eq!(
        error("[4]", "{type: identity}, {type: embedding, num_embeddings: 5, embedding_dim: 2}"),
        "model.layers[1] (embedding at 1): an embedding reads class indices from the model's input, so it must read `input` (be the first layer, or a node with inputs: input)"
    );
}

#[test]
fn embedding_init_is_standard_normal_with_the_padding_row_zeroed() {
    let spec = spec(
        "[3]",
        "{type: embedding, num_embeddings: 400, embedding_dim: 50, padding_idx: 7}, \
         {type: flatten}, {type: linear, out: 2}",
    );
    let step = build_step(&spec, 4, TargetLayout::Classes).expect("the step builds");
    let values = default_init(&step.params, 11);
    assert_eq!(step.params[0].name, "0.weight");
    let table = &values[0];
    assert_eq!(table.len(), 20_000);
    assert!(table[7 * 50..8 * 50].iter().all(|&v| v.to_bits() == 0));
    let others: Vec<f64> = table
        .iter()
        .enumerate()
        .filter(|(i, _)| i / 50 != 7)
        .map(|(_, &v)| f64::from(v))
        .collect();
    let n = others.len() as f64;
    let mean = others.iter().sum::<f64>() / n;
    let var = others.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let beyond_2 = others.iter().filter(|v| v.abs() > 2.0).count() as f64 / n;
    // Standard errors for 19,950 draws: mean 0.007, variance 0.01; P(|z| > 2) = 0.0455.
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((var - 1.0).abs() < 0.05, "variance {var}");
    assert!((beyond_2 - 0.0455).abs() < 0.01, "P(|z| > 2) = {beyond_2}");
    // Another seed, other values.
    assert_ne!(default_init(&step.params, 12)[0], *table);
}
