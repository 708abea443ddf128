//! A layer's `init: {weight: INIT, bias: INIT}` (torch.nn.init's schemes with PyTorch's
//! defaults) and `requires_grad: false`: what they parse to, and one clear error per mistake.

use std::path::Path;

use graphc_spec::*;

use crate::support::{assert_err, with_layer};

fn parse(text: &str) -> Result<Spec, SpecError> {
    parse_str(text, Path::new("spec.yaml"))
}

/// The first layer of the image spec with `layer` in its place.
fn first_layer(layer: &str) -> LayerSpec {
    let spec = parse(&with_layer(layer)).unwrap_or_else(|e| panic!("{layer}: {e}"));
    spec.model.layers().unwrap()[0].clone()
}

/// The error of the image spec with `layer` as its first layer.
fn layer_err(layer: &str) -> SpecError {
    match parse(&with_layer(layer)) {
        Ok(spec) => panic!(
            "{layer}: expected an error, got {:?}",
            spec.model.layers().unwrap()[0]
        ),
        Err(e) => e,
    }
}

const CONV: &str = "type: conv2d, out_channels: 4, kernel_size: 3";

#[test]
fn every_scheme_parses_with_pytorchs_defaults() {
    let weight = |init: &str| {
        let layer = first_layer(&format!("{{{CONV}, init: {{weight: {init}}}}}"));
        assert_eq!(layer.init.bias, None, "{init}");
        layer.init.weight.expect("a weight scheme")
    };
    let kaiming = Kaiming {
        a: 0.0,
        mode: FanMode::FanIn,
        nonlinearity: Nonlinearity::LeakyRelu,
    };
    let cases = [
        ("{type: uniform}", InitScheme::Uniform { a: 0.0, b: 1.0 }),
        (
            "{type: uniform, a: -2, b: 3.5}",
            InitScheme::Uniform { a: -2.0, b: 3.5 },
        ),
        (
            "{type: normal}",
            InitScheme::Normal {
                mean: 0.0,
                std: 1.0,
            },
        ),
        (
            "{type: normal, mean: 1, std: 0.02}",
            InitScheme::Normal {
                mean: 1.0,
                std: 0.02,
            },
        ),
        (
            "{type: trunc_normal}",
            InitScheme::TruncNormal {
                mean: 0.0,
                std: 1.0,
                a: -2.0,
                b: 2.0,
            },
        ),
        (
            "{type: trunc_normal, std: 0.02, a: -0.04, b: 0.04}",
            InitScheme::TruncNormal {
                mean: 0.0,
                std: 0.02,
                a: -0.04,
                b: 0.04,
            },
        ),
        (
            "{type: constant, val: 0.3}",
            InitScheme::Constant { val: 0.3 },
        ),
        ("{type: zeros}", InitScheme::Zeros),
        ("{type: ones_}", InitScheme::Ones),
        (
            "{type: xavier_uniform}",
            InitScheme::XavierUniform { gain: 1.0 },
        ),
        (
            "{type: xavier_normal, gain: 2}",
            InitScheme::XavierNormal { gain: 2.0 },
        ),
        (
            "{type: kaiming_uniform}",
            InitScheme::KaimingUniform(kaiming),
        ),
        (
            "{type: kaiming_normal, mode: fan_out, nonlinearity: relu}",
            InitScheme::KaimingNormal(Kaiming {
                mode: FanMode::FanOut,
                nonlinearity: Nonlinearity::Relu,
                ..kaiming
            }),
        ),
        (
            "{nonlinearity: leaky_relu, a: 0.2, type: kaiming_uniform}",
            InitScheme::KaimingUniform(Kaiming { a: 0.2, ..kaiming }),
        ),
        (
            "{type: orthogonal, gain: 0.5}",
            InitScheme::Orthogonal { gain: 0.5 },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(weight(text), want, "{text}");
    }
    let layer = first_layer(&format!(
        "{{{CONV}, init: {{bias: {{type: zeros}}, weight: {{type: eye}}}}}}"
    ));
    assert_eq!(layer.init.weight, Some(InitScheme::Eye));
    assert_eq!(layer.init.bias, Some(InitScheme::Zeros));
    assert!(layer.requires_grad);
}

#[test]
fn requires_grad_and_init_on_every_layer_with_parameters() {
    for layer in [
        "{type: linear, out: 3, requires_grad: false}",
        "{type: conv2d, out_channels: 2, kernel_size: 1, requires_grad: false}",
        "{type: batch_norm2d, requires_grad: false, init: {weight: {type: constant, val: 2}}}",
        "{type: prelu, requires_grad: false, init: {weight: {type: constant, val: 0.1}}}",
    ] {
        assert!(!first_layer(layer).requires_grad, "{layer}");
    }
    // nn.PReLU's own `init` is still a number.
    let prelu = first_layer("{type: prelu, init: 0.1}");
    assert_eq!(
        prelu.kind,
        LayerKind::Prelu {
            num_parameters: 1,
            init: 0.1
        }
    );
    assert_eq!(prelu.init, LayerInit::default());
}

#[test]
fn an_unknown_scheme_names_the_valid_ones() {
    let e = layer_err(&format!("{{{CONV}, init: {{weight: {{type: kaiming}}}}}}"));
    assert_err(
        &e,
        8,
        77,
        "unknown init type `kaiming` in model.layers[0].init.weight; valid: uniform, normal, \
         trunc_normal, constant, zeros, ones, eye, xavier_uniform, xavier_normal, \
         kaiming_uniform, kaiming_normal, orthogonal (or uniform_, normal_, trunc_normal_, \
         constant_, zeros_, ones_, eye_, xavier_uniform_, xavier_normal_, kaiming_uniform_, \
         kaiming_normal_, orthogonal_)",
    );
}

#[test]
fn an_argument_the_scheme_does_not_take_names_its_keys() {
    let e = layer_err(&format!(
        "{{{CONV}, init: {{weight: {{type: normal, gain: 2}}}}}}"
    ));
    assert_err(
        &e,
        8,
        85,
        "unknown key `gain` in model.layers[0].init.weight (normal); valid keys: type, mean, std",
    );
    // Before `type:` the argument is checked once the type is known.
    let e = layer_err(&format!(
        "{{{CONV}, init: {{weight: {{val: 2, type: zeros}}}}}}"
    ));
    assert_err(
        &e,
        8,
        71,
        "unknown key `val` in model.layers[0].init.weight (zeros); valid keys: type",
    );
    let e = layer_err(&format!(
        "{{{CONV}, init: {{weight: {{type: normal, sdt: 2}}}}}}"
    ));
    assert!(e.message().contains("did you mean `std`?"), "{e}");
}

#[test]
fn bad_values_of_scheme_arguments_are_one_line_each() {
    let cases = [
        (
            "{type: kaiming_normal, mode: fan_avg}",
            "model.layers[0].init.weight.mode: unknown mode `fan_avg`; valid: fan_in, fan_out",
        ),
        (
            "{type: kaiming_normal, nonlinearity: rleu}",
            "model.layers[0].init.weight.nonlinearity: unknown nonlinearity `rleu`; did you mean \
             `relu`?; valid: linear, conv1d, conv2d, conv3d, conv_transpose1d, \
             conv_transpose2d, conv_transpose3d, sigmoid, tanh, relu, leaky_relu, selu",
        ),
        (
            "{type: constant}",
            "missing key `val` in model.layers[0].init.weight (constant)",
        ),
        (
            "{type: uniform, a: 1, b: 0}",
            "model.layers[0].init.weight.b: b 0 must be at least a 1",
        ),
        (
            "{type: trunc_normal, a: 1, b: -1}",
            "model.layers[0].init.weight.b: b -1 must be greater than a 1",
        ),
        (
            "{type: trunc_normal, std: 0}",
            "model.layers[0].init.weight.std: must be > 0 (trunc_normal divides by it)",
        ),
        (
            "{type: normal, std: -1}",
            "model.layers[0].init.weight.std: invalid value: integer `-1`, expected a finite \
             number >= 0",
        ),
        (
            "{mean: 0}",
            "missing key `type` in model.layers[0].init.weight; valid types: uniform, normal, \
             trunc_normal, constant, zeros, ones, eye, xavier_uniform, xavier_normal, \
             kaiming_uniform, kaiming_normal, orthogonal (or uniform_, normal_, trunc_normal_, \
             constant_, zeros_, ones_, eye_, xavier_uniform_, xavier_normal_, \
             kaiming_uniform_, kaiming_normal_, orthogonal_)",
        ),
    ];
    for (init, message) in cases {
        let e = layer_err(&format!("{{{CONV}, init: {{weight: {init}}}}}"));
        assert_eq!(e.message(), message, "{init}");
        assert_eq!(e.line(), Some(8), "{e}");
    }
}

#[test]
fn init_itself_takes_weight_and_bias_and_only_on_layers_with_parameters() {
    let e = layer_err(&format!("{{{CONV}, init: {{kernel: {{type: zeros}}}}}}"));
    assert_eq!(
        e.message(),
        "unknown key `kernel` in model.layers[0].init; valid keys: weight, bias"
    );
    let e = layer_err(&format!("{{{CONV}, init: 0.5}}"));
    assert_eq!(
        e.message(),
        "model.layers[0].init: a number is prelu's init; this layer takes a mapping \
         {weight: INIT, bias: INIT} such as {weight: {type: kaiming_normal}}"
    );
    let e = layer_err("{type: relu, init: {weight: {type: zeros}}}");
    assert!(
        e.message()
            .starts_with("unknown key `init` in model.layers[0] (relu)"),
        "{e}"
    );
    let e = layer_err("{type: max_pool2d, kernel_size: 2, requires_grad: false}");
    assert!(
        e.message()
            .starts_with("unknown key `requires_grad` in model.layers[0] (max_pool2d)"),
        "{e}"
    );
    let e = layer_err(&format!("{{{CONV}, requires_grad: no}}"));
    assert_eq!(
        e.message(),
        "model.layers[0].requires_grad: invalid type: string \"no\", expected a boolean"
    );
}
