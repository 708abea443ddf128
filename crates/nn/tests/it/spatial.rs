//! Convolution, pooling and flatten layers resolved against their input shapes: PyTorch's
//! output sizes, `state_dict` names, shapes and fan-in, and shape errors naming the layer.

use graphc_nn::{describe_model, DefaultInit, LayerInfo, NnError};
use graphc_spec::{parse_str, Spec};

fn spec(input: &str, layers: &str) -> Spec {
    let yaml = format!(
        "data: {{train: {{csv: d.csv, target: y}}, batch_size: 8}}
model: {{input: {input}, layers: [{layers}]}}
loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1}}
train: {{epochs: 1}}
"
    );
    parse_str(&yaml, std::path::Path::new("test.yaml")).expect("valid spec")
}

fn describe(input: &str, layers: &str) -> Result<Vec<LayerInfo>, NnError> {
    describe_model(&spec(input, layers).model, 8)
}

fn outputs(input: &str, layers: &str) -> Vec<Vec<usize>> {
    describe(input, layers)
        .unwrap()
        .into_iter()
        .map(|l| l.output)
        .collect()
}

fn error(input: &str, layers: &str) -> String {
    describe(input, layers).unwrap_err().to_string()
}

#[test]
fn lenet_shapes_parameters_and_fan_in_are_pytorchs() {
    let layers = describe(
        "[1, 28, 28]",
        "{type: conv2d, out_channels: 6, kernel_size: 5, padding: 2}, {type: relu},
         {type: max_pool2d, kernel_size: 2}, {type: conv2d, out_channels: 16, kernel_size: 5},
         {type: max_pool2d, kernel_size: 2}, {type: flatten}, {type: linear, out: 120}",
    )
    .unwrap();
    let shapes: Vec<&[usize]> = layers.iter().map(|l| l.output.as_slice()).collect();
    assert_eq!(
        shapes,
        [
            &[6, 28, 28][..],
            &[6, 28, 28],
            &[6, 14, 14],
            &[16, 10, 10],
            &[16, 5, 5],
            &[400],
            &[120]
        ]
    );
    let conv = &layers[3].params;
    assert_eq!(conv[0].name, "3.weight");
    assert_eq!(conv[0].shape, [16, 6, 5, 5]);
    let fan_in = DefaultInit::Uniform { fan_in: 150 };
    assert_eq!((&conv[0].init, &conv[1].init), (&fan_in, &fan_in));
    assert_eq!(conv[1].shape, [16]);
}

#[test]
fn grouped_strided_dilated_and_same_convolutions() {
    let layers = describe(
        "[4, 9, 8]",
        "{type: conv2d, out_channels: 6, kernel_size: [3, 2], stride: [2, 1], padding: [1, 2],
          groups: 2, bias: false}",
    )
    .unwrap();
    // H: (9 + 2 − 3)/2 + 1 = 5; W: (8 + 4 − 2)/1 + 1 = 11.
    assert_eq!(layers[0].output, [6, 5, 11]);
    assert_eq!(layers[0].params.len(), 1);
    assert_eq!(layers[0].params[0].shape, [6, 2, 3, 2]);
    assert_eq!(
        layers[0].params[0].init,
        DefaultInit::Uniform { fan_in: 12 }
    );
    assert_eq!(
        outputs(
            "[2, 7, 6]",
            "{type: conv2d, out_channels: 3, kernel_size: [4, 3], padding: same, dilation: [1, 2]}"
        ),
        [[3, 7, 6]]
    );
    assert_eq!(
        outputs(
            "[3, 10, 9]",
            "{type: conv2d, out_channels: 4, kernel_size: 3, stride: 2, dilation: 2}"
        ),
        [[4, 3, 3]]
    );
    assert_eq!(
        outputs(
            "[2, 12]",
            "{type: conv1d, out_channels: 4, kernel_size: 3, stride: 2, padding: 1}"
        ),
        [[4, 6]]
    );
}

#[test]
fn pooling_output_sizes_follow_ceil_mode_and_padding() {
    // PyTorch: MaxPool2d((3, 2), 2, 1, dilation=2, ceil_mode=True) on 9×8 gives 4×5.
    assert_eq!(
        outputs(
            "[2, 9, 8]",
            "{type: max_pool2d, kernel_size: [3, 2], stride: 2, padding: 1, dilation: 2, ceil_mode: true}"
        ),
        [[2, 4, 5]]
    );
    // AvgPool2d(3, 2, 1, ceil_mode=True) on 7×7: 4×4; the last window starts at 5 < 7 + 1.
    assert_eq!(
        outputs(
            "[1, 7, 7]",
            "{type: avg_pool2d, kernel_size: 3, stride: 2, padding: 1, ceil_mode: true}"
        ),
        [[1, 4, 4]]
    );
    assert_eq!(
        outputs(
            "[3, 10]",
            "{type: avg_pool1d, kernel_size: 3, stride: 2, ceil_mode: true}"
        ),
        [[3, 5]]
    );
    assert_eq!(
        outputs(
            "[2, 7, 5]",
            "{type: adaptive_avg_pool2d, output_size: [3, null]}"
        ),
        [[2, 3, 5]]
    );
    assert_eq!(
        outputs("[2, 7, 5]", "{type: adaptive_max_pool2d, output_size: 2}"),
        [[2, 2, 2]]
    );
}

#[test]
fn flatten_merges_dims_of_the_batched_tensor() {
    assert_eq!(
        outputs(
            "[2, 3, 4]",
            "{type: flatten, start_dim: 2}, {type: linear, out: 5}"
        ),
        [vec![2, 12], vec![2, 5]]
    );
    assert_eq!(
        outputs("[2, 3, 4]", "{type: flatten, end_dim: -2}"),
        [[6, 4]]
    );
    assert_eq!(
        outputs("[2, 3, 4]", "{type: flatten, start_dim: -1}"),
        [[2, 3, 4]]
    );
    assert_eq!(
        error("[2, 3, 4]", "{type: flatten, start_dim: 0}"),
        "model.layers[0] (flatten at 0): start_dim 0 would merge the batch axis of [8, 2, 3, 4]; use start_dim 1 or more"
    );
    assert_eq!(
        error("[2, 3, 4]", "{type: flatten, start_dim: 3, end_dim: 2}"),
        "model.layers[0] (flatten at 0): start_dim 3 comes after end_dim 2 on a tensor of shape [8, 2, 3, 4]"
    );
    assert_eq!(
        error("[2, 3, 4]", "{type: flatten, end_dim: 4}"),
        "model.layers[0] (flatten at 0): end_dim 4 is out of range for a tensor of shape [8, 2, 3, 4]"
    );
}

#[test]
fn shapes_that_do_not_fit_name_the_layer_and_the_shapes() {
    assert_eq!(
        error(
            "[1, 8, 8]",
            "{type: conv2d, out_channels: 2, kernel_size: 3}, {type: max_pool2d, kernel_size: 2},
             {type: relu}, {type: conv2d, out_channels: 2, kernel_size: 5}"
        ),
        "model.layers[3] (conv2d at 3): kernel 5 is larger than the padded input 3×3"
    );
    assert_eq!(
        error(
            "[1, 4, 4]",
            "{type: conv2d, out_channels: 2, kernel_size: 3, dilation: 2}"
        ),
        "model.layers[0] (conv2d at 0): kernel 3 dilated by 2 is larger than the padded input 4×4"
    );
    assert_eq!(
        error("[64]", "{type: conv2d, out_channels: 2, kernel_size: 3}"),
        "model.layers[0] (conv2d at 0): expects a 4-d input [N, C, H, W], got [8, 64] (set model.input to [C, H, W] or add a layer that makes that shape)"
    );
    assert_eq!(
        error(
            "[3, 8, 8]",
            "{type: conv2d, out_channels: 4, kernel_size: 3, groups: 2}"
        ),
        "model.layers[0] (conv2d at 0): its input has 3 channels, which groups 2 does not divide"
    );
    assert_eq!(
        error("[1, 1, 1]", "{type: max_pool2d, kernel_size: 2}"),
        "model.layers[0] (max_pool2d at 0): the input 1×1 (padding 0) is too small for a max pooling of kernel 2"
    );
    assert_eq!(
        error("[1, 3, 3]", "{type: adaptive_max_pool2d, output_size: 4}"),
        "model.layers[0] (adaptive_max_pool2d at 0): output_size 4×4 is larger than the input 3×3; adaptive max pooling here needs an output no larger than its input"
    );
    assert_eq!(
        error("[2, 5]", "{type: avg_pool2d, kernel_size: 2}"),
        "model.layers[0] (avg_pool2d at 0): expects a 4-d input [N, C, H, W], got [8, 2, 5] (set model.input to [C, H, W] or add a layer that makes that shape)"
    );
}

#[test]
fn pytorchs_input_size_arguments_are_checked_against_the_inferred_sizes() {
    // Given and equal to the inferred size, they change nothing.
    let agreeing = "{type: conv2d, in_channels: 1, out_channels: 4, kernel_size: 3}, \
                    {type: batch_norm2d, num_features: 4}, {type: flatten}, \
                    {type: linear, in_features: 144, out: 3}";
    let with = describe("[1, 8, 8]", agreeing).expect("sizes agree");
    let without = describe(
        "[1, 8, 8]",
        "{type: conv2d, out_channels: 4, kernel_size: 3}, {type: batch_norm2d}, \
         {type: flatten}, {type: linear, out: 3}",
    )
    .unwrap();
    assert_eq!(with, without);

    let message = |input: &str, layers: &str| describe(input, layers).unwrap_err().to_string();
    assert_eq!(
        message("[4]", "{type: linear, in_features: 5, out: 3}"),
        "model.layers[0] (linear at 0): in_features is 5, but its input [8, 4] has 4 features; \
         leave in_features out to infer it"
    );
    assert!(message(
        "[1, 8, 8]",
        "{type: conv2d, in_channels: 3, out_channels: 4, kernel_size: 3}"
    )
    .ends_with("in_channels is 3, but its input [8, 1, 8, 8] has 1 channels; leave in_channels out to infer it"));
    assert!(message(
        "[6, 5]",
        "{type: batch_norm1d, num_features: 5}"
    )
    .ends_with("num_features is 5, but its input [8, 6, 5] has 6 channels; leave num_features out to infer it"));
}
