//! `layer_norm`, `group_norm` and `embedding` in specs: every key with PyTorch's default, the
//! class-name aliases, `normalized_shape` as an int or a list, `padding_idx` resolved from
//! the end as PyTorch does, and bad values answered in one line naming file, line, column
//! and key.

use std::path::Path;

use graphc_spec::*;

use crate::support::{assert_layer_err, with_layer};

fn layer(layer: &str) -> LayerSpec {
    match parse_str(&with_layer(layer), Path::new("spec.yaml")) {
        Ok(spec) => spec.model.layers().unwrap()[0].clone(),
        Err(e) => panic!("{layer}: unexpected error: {e}"),
    }
}

const LAYER_NORM: LayerNormSpec = LayerNormSpec {
    normalized_shape: None,
    eps: 1e-5,
    elementwise_affine: true,
    bias: true,
};

#[test]
fn layer_norm_keys_default_to_pytorchs() {
    assert_eq!(
        layer("{type: layer_norm}").kind,
        LayerKind::LayerNorm(LAYER_NORM)
    );
    assert_eq!(
        layer("{type: LayerNorm, normalized_shape: 8}").kind,
        LayerKind::LayerNorm(LayerNormSpec {
            normalized_shape: Some(vec![8]),
            ..LAYER_NORM
        })
    );
    assert_eq!(
        layer("{type: layer_norm, normalized_shape: [8, 8], eps: 0.001, elementwise_affine: false, bias: false}").kind,
        LayerKind::LayerNorm(LayerNormSpec {
            normalized_shape: Some(vec![8, 8]),
            eps: 0.001,
            elementwise_affine: false,
            bias: false,
        })
    );
}

#[test]
fn group_norm_keys_default_to_pytorchs_and_num_channels_is_declared_input() {
    let l = layer("{type: group_norm, num_groups: 2}");
    assert_eq!(
        l.kind,
        LayerKind::GroupNorm(GroupNormSpec {
            num_groups: 2,
            eps: 1e-5,
            affine: true,
        })
    );
    assert_eq!(l.declared_input, None);
    let l = layer("{type: GroupNorm, num_groups: 1, num_channels: 2, eps: 0.1, affine: false}");
    assert_eq!(
        l.kind,
        LayerKind::GroupNorm(GroupNormSpec {
            num_groups: 1,
            eps: 0.1,
            affine: false,
        })
    );
    assert_eq!(l.declared_input, Some(2));
}

#[test]
fn embedding_padding_idx_counts_from_the_end_when_negative() {
    let embedding = |padding_idx| {
        LayerKind::Embedding(EmbeddingSpec {
            num_embeddings: 10,
            embedding_dim: 4,
            padding_idx,
        })
    };
    let text = |p: &str| format!("{{type: embedding, num_embeddings: 10, embedding_dim: 4{p}}}");
    assert_eq!(layer(&text("")).kind, embedding(None));
    assert_eq!(layer(&text(", padding_idx: null")).kind, embedding(None));
    assert_eq!(layer(&text(", padding_idx: 0")).kind, embedding(Some(0)));
    assert_eq!(layer(&text(", padding_idx: 9")).kind, embedding(Some(9)));
    assert_eq!(layer(&text(", padding_idx: -1")).kind, embedding(Some(9)));
    assert_eq!(layer(&text(", padding_idx: -10")).kind, embedding(Some(0)));
    assert_eq!(
        layer("{type: Embedding, embedding_dim: 2, num_embeddings: 3}").kind,
        LayerKind::Embedding(EmbeddingSpec {
            num_embeddings: 3,
            embedding_dim: 2,
            padding_idx: None,
        })
    );
}

#[test]
fn bad_values_are_refused_at_the_key_or_value() {
    for (p, at) in [
        ("10", "padding_idx"),
        ("-11", "padding_idx"),
        ("-9223372036854775808", "padding_idx"),
    ] {
        assert_layer_err(
            &format!("{{type: embedding, num_embeddings: 10, embedding_dim: 4, padding_idx: {p}}}"),
            at,
            &format!("model.layers[0].padding_idx: padding_idx {p} must be within num_embeddings 10: in [-10, 10)"),
        );
    }
    assert_layer_err(
        "{type: embedding, num_embeddings: 0, embedding_dim: 4}",
        "0,",
        "model.layers[0].num_embeddings: invalid value: integer `0`, expected a positive integer (the number of rows)",
    );
    assert_layer_err(
        "{type: embedding, num_embeddings: 5, embedding_dim: 1.5}",
        "1.5",
        "model.layers[0].embedding_dim: invalid type: float `1.5`, expected a positive integer (the size of each row)",
    );
    assert_layer_err(
        "{type: embedding, num_embeddings: 5, embedding_dim: 2, padding_idx: one}",
        "one",
        "model.layers[0].padding_idx: invalid type: string \"one\", expected an integer (a row index, negative from the end) or null",
    );
    assert_layer_err(
        "{type: layer_norm, normalized_shape: [8, 0]}",
        "0]",
        "model.layers[0].normalized_shape[1]: invalid value: integer `0`, expected a positive integer",
    );
    assert_layer_err(
        "{type: layer_norm, normalized_shape: []}",
        "[]",
        "model.layers[0].normalized_shape: must not be empty; expected a positive integer or a non-empty list of them (the trailing axes normalised over)",
    );
    assert_layer_err(
        "{type: layer_norm, elementwise_affine: 1}",
        "1}",
        "model.layers[0].elementwise_affine: invalid type: integer `1`, expected a boolean",
    );
    assert_layer_err(
        "{type: group_norm, num_groups: -2}",
        "-2",
        "model.layers[0].num_groups: invalid value: integer `-2`, expected a positive integer (dividing the input's channels)",
    );
    assert_layer_err(
        "{type: group_norm, num_groups: 2, eps: -1}",
        "-1",
        "model.layers[0].eps: invalid value: integer `-1`, expected a finite number >= 0",
    );
}

#[test]
fn required_keys_are_named_when_missing() {
    assert_layer_err(
        "{type: group_norm}",
        "{",
        "missing key `num_groups` in model.layers[0] (group_norm)",
    );
    assert_layer_err(
        "{type: embedding, embedding_dim: 4}",
        "{",
        "missing key `num_embeddings` in model.layers[0] (embedding)",
    );
    assert_layer_err(
        "{type: embedding, num_embeddings: 4}",
        "{",
        "missing key `embedding_dim` in model.layers[0] (embedding)",
    );
}

#[test]
fn keys_of_other_layers_are_unknown_here() {
    assert_layer_err(
        "{type: layer_norm, affine: false}",
        "affine",
        "unknown key `affine` in model.layers[0] (layer_norm); valid keys: type, name, \
         normalized_shape, eps, elementwise_affine, bias, init, requires_grad",
    );
    assert_layer_err(
        "{type: group_norm, num_groups: 1, num_features: 2}",
        "num_features",
        "unknown key `num_features` in model.layers[0] (group_norm); valid keys: \
         type, name, num_groups, num_channels, eps, affine, init, requires_grad",
    );
    assert_layer_err(
        "{type: group_norm, num_groups: 1, num_channel: 2}",
        "num_channel",
        "unknown key `num_channel` in model.layers[0] (group_norm); did you mean `num_channels`? \
         valid keys: type, name, num_groups, num_channels, eps, affine, init, requires_grad",
    );
    assert_layer_err(
        "{type: embedding, num_embeddings: 4, embedding_dim: 2, max_norm: 1.0}",
        "max_norm",
        "unknown key `max_norm` in model.layers[0] (embedding); valid keys: type, name, \
         num_embeddings, embedding_dim, padding_idx, init, requires_grad",
    );
}
