//! Batch norm and dropout: `state_dict` names, shapes and inits of their parameters, buffers
//! and counters; rank errors naming the layer; what training and evaluation graphs take
//! (the `forward` argument, the cumulative-average hyper) and assign.

use graphc_ir::{DType, Graph, Op, TensorType};
use graphc_nn::{
    build_eval, build_step, describe_model, hyper_value_by, DefaultInit, Hyper, LayerInfo, NnError,
    StepGraph, TargetLayout,
};
use graphc_spec::{parse_str, Spec};

/// A classifier spec with `model.input` `input` and `layers` (shared with `norm_embed`).
pub(crate) fn spec(input: &str, layers: &str) -> Spec {
    let yaml = format!(
        "seed: 3
data: {{train: {{csv: d.csv, target: y}}, batch_size: 8}}
model: {{input: {input}, layers: [{layers}]}}
loss: {{type: cross_entropy}}
optimizer: {{type: sgd, lr: 0.1}}
train: {{epochs: 1}}
"
    );
    parse_str(&yaml, std::path::Path::new("test.yaml")).expect("valid spec")
}

/// A conv with 3 output channels, `layer` at index 1, and a classifier head.
fn image_spec(layer: &str) -> Spec {
    spec(
        "[2, 4, 4]",
        &format!(
            "{{type: conv2d, out_channels: 3, kernel_size: 1}}, {layer}, {{type: flatten}}, \
             {{type: linear, out: 2}}"
        ),
    )
}

fn describe(input: &str, layers: &str) -> Result<Vec<LayerInfo>, NnError> {
    describe_model(&spec(input, layers).model, 8)
}

fn error(input: &str, layers: &str) -> String {
    describe(input, layers).unwrap_err().to_string()
}

fn train_step(spec: &Spec, batch: usize) -> StepGraph {
    build_step(spec, batch, TargetLayout::Classes).expect("the training step builds")
}

fn eval_step(spec: &Spec, batch: usize) -> StepGraph {
    build_eval(spec, batch, TargetLayout::Classes).expect("the evaluation step builds")
}

/// `(name, shape, init)` of each declaration.
fn decls(list: &[graphc_nn::TensorDecl]) -> Vec<(&str, &[usize], DefaultInit)> {
    list.iter()
        .map(|d| (d.name.as_str(), d.shape.as_slice(), d.init.clone()))
        .collect()
}

#[test]
fn batch_norm_declares_pytorchs_parameters_buffers_and_counter() {
    let spec = image_spec("{type: batch_norm2d}");
    let layers = describe_model(&spec.model, 8).unwrap();
    let bn = &layers[1];
    assert_eq!(bn.output, [3, 4, 4]);
    assert_eq!(
        decls(&bn.params),
        [
            ("1.weight", &[3][..], DefaultInit::Ones),
            ("1.bias", &[3][..], DefaultInit::Zeros),
        ]
    );
    assert_eq!(
        decls(&bn.buffers),
        [
            ("1.running_mean", &[3][..], DefaultInit::Zeros),
            ("1.running_var", &[3][..], DefaultInit::Ones),
        ]
    );
    assert_eq!(bn.counter.as_deref(), Some("1.num_batches_tracked"));
    assert_eq!(bn.param_count(), 6, "the buffers are not parameters");

    // The training step holds them in state_dict order: parameters, then buffers.
    let step = train_step(&spec, 8);
    let names: Vec<&str> = step.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    );
    let buffers: Vec<&str> = step.buffers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(buffers, ["1.running_mean", "1.running_var"]);
    assert_eq!(step.counters, ["1.num_batches_tracked"]);
    for b in &step.buffers {
        assert!(
            matches!(step.graph.node(b.node).op, Op::State(ref n) if *n == b.name),
            "{} is a State leaf, not a Param: {:?}",
            b.name,
            step.graph.node(b.node).op
        );
    }
}

#[test]
fn a_named_batch_norm_1d_uses_its_name_as_the_prefix() {
    let layers = describe(
        "[5]",
        "{type: linear, out: 4}, {type: batch_norm1d, name: bn}, {type: linear, out: 2}",
    )
    .unwrap();
    let names: Vec<&str> = layers[1]
        .params
        .iter()
        .chain(&layers[1].buffers)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    );
    assert_eq!(layers[1].buffers[0].shape, [4]);
    assert_eq!(layers[1].counter.as_deref(), Some("bn.num_batches_tracked"));
    // [C, L]: the channels are the first axis of a sample.
    let layers = describe("[6, 7]", "{type: batch_norm1d}").unwrap();
    assert_eq!(layers[0].params[0].shape, [6]);
    assert_eq!(layers[0].output, [6, 7]);
}

#[test]
fn affine_false_has_no_parameters_and_no_tracking_has_no_buffers_or_counter() {
    let layers = describe("[3, 4, 4]", "{type: batch_norm2d, affine: false}").unwrap();
    assert!(layers[0].params.is_empty(), "{:?}", layers[0].params);
    assert_eq!(layers[0].buffers.len(), 2);
    assert_eq!(layers[0].counter.as_deref(), Some("0.num_batches_tracked"));

    let layers = describe(
        "[3, 4, 4]",
        "{type: batch_norm2d, track_running_stats: false}",
    )
    .unwrap();
    assert_eq!(decls(&layers[0].params).len(), 2);
    assert!(layers[0].buffers.is_empty(), "{:?}", layers[0].buffers);
    assert_eq!(layers[0].counter, None);

    let spec = image_spec("{type: batch_norm2d, affine: false, track_running_stats: false}");
    let step = train_step(&spec, 8);
    assert!(step.buffers.is_empty() && step.counters.is_empty());
    assert!(
        step.params.iter().all(|p| !p.name.starts_with("1.")),
        "{:?}",
        step.params
    );
    // Nothing to keep between steps, so nothing is assigned but the parameters' updates.
    let assigned: Vec<String> = step
        .graph
        .assigns()
        .iter()
        .filter_map(|a| step.graph.node(a.target).op.leaf_name().map(str::to_owned))
        .collect();
    assert_eq!(assigned, ["0.weight", "0.bias", "3.weight", "3.bias"]);
}

#[test]
fn dropouts_have_no_parameters_and_keep_the_shape() {
    let layers = describe(
        "[3, 4, 4]",
        "{type: dropout}, {type: dropout2d, p: 0.2}, {type: flatten}, {type: dropout, p: 1}",
    )
    .unwrap();
    for l in &layers {
        assert!(l.params.is_empty() && l.buffers.is_empty() && l.counter.is_none());
    }
    let shapes: Vec<&[usize]> = layers.iter().map(|l| l.output.as_slice()).collect();
    assert_eq!(shapes, [&[3, 4, 4][..], &[3, 4, 4], &[48], &[48]]);
    assert_eq!(
        describe("[3, 5]", "{type: dropout1d}, {type: dropout2d}").unwrap()[1].output,
        [3, 5]
    );
}

#[test]
fn wrong_ranks_name_the_layer_and_show_the_batched_shape() {
    assert_eq!(
        error("[4]", "{type: batch_norm2d}"),
        "model.layers[0] (batch_norm2d at 0): expects a [N, C, H, W] input, got [8, 4]"
    );
    assert_eq!(
        error("[2, 3]", "{type: relu}, {type: BatchNorm2d, name: bn}"),
        "model.layers[1] (batch_norm2d \"bn\"): expects a [N, C, H, W] input, got [8, 2, 3]"
    );
    assert_eq!(
        error("[2, 3, 4]", "{type: batch_norm1d}"),
        "model.layers[0] (batch_norm1d at 0): expects a [N, C] or [N, C, L] input, got [8, 2, 3, 4]"
    );
    assert_eq!(
        error("[3, 4, 4]", "{type: dropout1d}"),
        "model.layers[0] (dropout1d at 0): expects a [N, C, L] input, got [8, 3, 4, 4]"
    );
    assert_eq!(
        error("[12]", "{type: dropout1d}"),
        "model.layers[0] (dropout1d at 0): expects a [N, C, L] input, got [8, 12]"
    );
    assert_eq!(
        error("[12]", "{type: dropout2d}"),
        "model.layers[0] (dropout2d at 0): expects a [N, C, L] or [N, C, H, W] input, got [8, 12]"
    );
    // Plain dropout takes any shape.
    assert!(describe("[12]", "{type: dropout}").is_ok());
}

/// The step's `forward` argument: its position among the arguments and its type.
fn forward_argument(graph: &Graph) -> Option<(usize, TensorType)> {
    graph.arguments().iter().enumerate().find_map(|(i, &n)| {
        let node = graph.node(n);
        matches!(&node.op, Op::Input(name) if name == "forward").then(|| (i, node.ty.clone()))
    })
}

#[test]
fn a_drawing_dropout_makes_the_forward_index_the_third_argument() {
    let spec = spec(
        "[6]",
        "{type: linear, out: 4}, {type: dropout, p: 0.3}, {type: linear, out: 2}",
    );
    let step = train_step(&spec, 5);
    assert!(step.forward);
    assert_eq!(
        forward_argument(&step.graph),
        Some((
            2,
            TensorType {
                shape: vec![1],
                dtype: DType::I64
            }
        ))
    );
    // One draw per element, keyed by the run's seed and the layer's index as the stream.
    let draws: Vec<(u64, u32, Vec<usize>)> = step
        .graph
        .node_ids()
        .filter_map(|n| match &step.graph.node(n).op {
            Op::RandomUniform {
                seed,
                stream,
                shape,
            } => Some((*seed, *stream, shape.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(draws, [(3, 1, vec![5, 4])]);

    // The channel dropouts draw one value per sample and channel.
    let spec = image_spec("{type: dropout2d}");
    let step = train_step(&spec, 5);
    assert!(step.forward);
    let shapes: Vec<Vec<usize>> = step
        .graph
        .node_ids()
        .filter_map(|n| match &step.graph.node(n).op {
            Op::RandomUniform { shape, .. } => Some(shape.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(shapes, [vec![5, 3]]);
}

#[test]
fn dropout_that_draws_nothing_or_evaluation_takes_no_forward_argument() {
    for p in ["0", "0.0", "1"] {
        let spec = spec(
            "[6]",
            &format!(
                "{{type: linear, out: 4}}, {{type: dropout, p: {p}}}, {{type: linear, out: 2}}"
            ),
        );
        let step = train_step(&spec, 5);
        assert!(!step.forward, "p: {p}");
        assert_eq!(forward_argument(&step.graph), None, "p: {p}");
        assert_eq!(
            step.graph.arguments().len(),
            2 + step.hypers.len(),
            "p: {p}"
        );
    }
    let spec = spec(
        "[6]",
        "{type: linear, out: 4}, {type: dropout, p: 0.5}, {type: linear, out: 2}",
    );
    let eval = eval_step(&spec, 5);
    assert!(!eval.forward);
    assert_eq!(forward_argument(&eval.graph), None);
    assert_eq!(eval.graph.arguments().len(), 2);
    assert!(
        !eval
            .graph
            .node_ids()
            .any(|n| matches!(eval.graph.node(n).op, Op::RandomUniform { .. })),
        "evaluation draws nothing"
    );
}

#[test]
fn momentum_null_takes_the_cumulative_average_as_a_hyper() {
    let step = train_step(&image_spec("{type: batch_norm2d, momentum: null}"), 4);
    assert_eq!(step.hypers[0], Hyper::CumulativeAverage { counter: 0 });
    assert_eq!(step.hypers[0].name(), "cumulative_average.0");
    assert!(step.graph.find_leaf("1.momentum").is_some());
    // PyTorch adds one to num_batches_tracked, then weighs the batch by 1 / that.
    let value = |counts: &[i64]| hyper_value_by(step.hypers[0], |_| None, 1, counts);
    assert_eq!(value(&[0]), 1.0);
    assert_eq!(value(&[3]), 0.25);
    assert!(value(&[]).is_nan(), "a counter out of range gives NaN");

    // A fixed momentum is a constant: no hyper, as in evaluation.
    let step = train_step(&image_spec("{type: batch_norm2d}"), 4);
    assert!(
        !step
            .hypers
            .iter()
            .any(|h| matches!(h, Hyper::CumulativeAverage { .. })),
        "{:?}",
        step.hypers
    );
    let eval = eval_step(&image_spec("{type: batch_norm2d, momentum: null}"), 4);
    assert!(eval.hypers.is_empty(), "{:?}", eval.hypers);
}

/// The names of the leaves a step assigns.
fn assigned(step: &StepGraph) -> Vec<String> {
    step.graph
        .assigns()
        .iter()
        .map(|a| {
            step.graph
                .node(a.target)
                .op
                .leaf_name()
                .expect("assigns write leaves")
                .to_owned()
        })
        .collect()
}

#[test]
fn training_assigns_the_running_statistics_and_evaluation_assigns_nothing() {
    let spec = image_spec("{type: batch_norm2d}");
    let assigns = assigned(&train_step(&spec, 4));
    assert!(
        assigns.contains(&"1.running_mean".to_owned())
            && assigns.contains(&"1.running_var".to_owned()),
        "{assigns:?}"
    );
    assert_eq!(
        assigns
            .iter()
            .filter(|n| n.starts_with("1.running_"))
            .count(),
        2,
        "{assigns:?}"
    );
    let eval = eval_step(&spec, 4);
    assert_eq!(assigned(&eval), Vec::<String>::new());
    // The evaluation graph reads the running statistics.
    assert!(eval.graph.find_leaf("1.running_mean").is_some());
    assert!(eval.graph.find_leaf("1.running_var").is_some());
}

#[test]
fn one_value_per_channel_in_training_is_pytorchs_error() {
    let spec = spec(
        "[4]",
        "{type: linear, out: 3}, {type: batch_norm1d}, {type: linear, out: 2}",
    );
    let e = build_step(&spec, 1, TargetLayout::Classes).unwrap_err();
    let NnError::Layer { path, .. } = &e else {
        panic!("a layer error: {e:?}");
    };
    assert_eq!(path, "model.layers[1]");
    let message = e.to_string();
    assert!(
        message.starts_with("model.layers[1] (batch_norm1d at 1): ")
            && message.contains("more than 1 value per channel"),
        "{message}"
    );
    // Two samples are enough; evaluation normalises with the running statistics, so one is too.
    assert!(build_step(&spec, 2, TargetLayout::Classes).is_ok());
    assert!(build_eval(&spec, 1, TargetLayout::Classes).is_ok());
    // Without running statistics, evaluation needs the batch's too, as in PyTorch.
    let untracked = self::spec(
        "[4]",
        "{type: linear, out: 3}, {type: batch_norm1d, track_running_stats: false}, {type: linear, out: 2}",
    );
    let e = build_eval(&untracked, 1, TargetLayout::Classes).unwrap_err();
    assert!(
        e.to_string().contains("more than 1 value per channel"),
        "{e}"
    );
    // [C, L] with L > 1 has several values per channel in a batch of one.
    let sequence = self::spec(
        "[2, 3]",
        "{type: batch_norm1d}, {type: flatten}, {type: linear, out: 2}",
    );
    assert!(build_step(&sequence, 1, TargetLayout::Classes).is_ok());
}

#[test]
fn the_natural_layout_of_a_model_without_running_statistics_is_its_output_width() {
    // The layout needs the output's shape only; a batch norm without running statistics
    // cannot normalise one sample, but that is no reason to refuse the spec.
    let text = "data: {train: {csv: d.csv, target: y}, batch_size: 8}
model: {input: [3], layers: [{type: batch_norm1d, track_running_stats: false}, {type: linear, out: 2}]}
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
";
    let spec = parse_str(text, std::path::Path::new("test.yaml")).unwrap();
    assert_eq!(
        graphc_nn::natural_layout(&spec).unwrap(),
        TargetLayout::Floats { width: 2 }
    );
}
