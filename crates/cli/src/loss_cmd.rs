//! `graphc loss`: evaluates one loss on hand-written values, as the PyTorch
//! tutorials do with literal tensors, and prints the loss (and its gradient).
//!
//! The flags are the loss's keys (`--ignore-index` for `ignore_index`), read by
//! the spec parser itself, so defaults, aliases and errors are a spec's.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use graphc::stages::ir::{Arg, TensorType};
use graphc::stages::{nn, spec};
use graphc::BackendKind;
use serde_json::{Number, Value};

/// `graphc loss` flags.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub(crate) struct LossArgs {
    /// The loss: cross_entropy, nll, bce, bce_with_logits, mse, l1, smooth_l1, huber,
    /// kl_div, poisson_nll, soft_margin, multilabel_soft_margin, multi_margin (or the
    /// PyTorch class name, e.g. CrossEntropyLoss).
    #[arg(long = "type", value_name = "TYPE")]
    kind: String,
    /// The loss's input as a JSON array, e.g. '[[1, 2], [1, 3]]' (logits for cross_entropy).
    #[arg(long, value_name = "JSON")]
    input: String,
    /// The targets as a JSON array: class indices ('[0, 1]') or values shaped like the input.
    #[arg(long, value_name = "JSON")]
    target: String,
    /// Also print the gradient with respect to the input (of the summed losses for `none`).
    #[arg(long)]
    grad: bool,
    /// Executor: jit (default) or interp.
    #[arg(long)]
    backend: Option<String>,
    /// `reduction`: none, sum or mean (batchmean for kl_div).
    #[arg(long)]
    reduction: Option<String>,
    /// `weight`: per-class (or per-column) weights, e.g. '[1, 2]'.
    #[arg(long, value_name = "JSON")]
    weight: Option<String>,
    /// `pos_weight` of bce_with_logits, e.g. '[3]'.
    #[arg(long, value_name = "JSON")]
    pos_weight: Option<String>,
    /// `ignore_index` of cross_entropy and nll (default -100).
    #[arg(long)]
    ignore_index: Option<String>,
    /// `label_smoothing` of cross_entropy, in [0, 1].
    #[arg(long)]
    label_smoothing: Option<String>,
    /// `beta` of smooth_l1 (default 1).
    #[arg(long)]
    beta: Option<String>,
    /// `delta` of huber (default 1).
    #[arg(long)]
    delta: Option<String>,
    /// `log_target` of kl_div: the target holds log-probabilities.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    log_target: Option<String>,
    /// `log_input` of poisson_nll (default true): the input is a log rate.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    log_input: Option<String>,
    /// `full` of poisson_nll: add the Stirling term.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    full: Option<String>,
    /// `eps` of poisson_nll (default 1e-8).
    #[arg(long)]
    eps: Option<String>,
    /// `p` of multi_margin: 1 or 2.
    #[arg(long)]
    p: Option<String>,
    /// `margin` of multi_margin (default 1).
    #[arg(long)]
    margin: Option<String>,
}

impl LossArgs {
    /// The loss as the YAML mapping a spec's `loss:` would hold: one `key: value` per flag.
    fn loss_yaml(&self) -> Result<String> {
        let options = [
            ("type", Some(&self.kind)),
            ("reduction", self.reduction.as_ref()),
            ("weight", self.weight.as_ref()),
            ("pos_weight", self.pos_weight.as_ref()),
            ("ignore_index", self.ignore_index.as_ref()),
            ("label_smoothing", self.label_smoothing.as_ref()),
            ("beta", self.beta.as_ref()),
            ("delta", self.delta.as_ref()),
            ("log_target", self.log_target.as_ref()),
            ("log_input", self.log_input.as_ref()),
            ("full", self.full.as_ref()),
            ("eps", self.eps.as_ref()),
            ("p", self.p.as_ref()),
            ("margin", self.margin.as_ref()),
        ];
        let mut yaml = String::new();
        for (key, value) in options {
            let Some(value) = value else { continue };
            if value.contains(['\n', '\r']) || value.trim().is_empty() {
                bail!(
                    "--{}: expected one value on one line, got {value:?}",
                    key.replace('_', "-")
                );
            }
            yaml.push_str(&format!("{key}: {value}\n"));
        }
        Ok(yaml)
    }
}

/// Runs `graphc loss`.
pub(crate) fn run(args: &LossArgs) -> Result<()> {
    let loss = spec::parse_loss_str(&args.loss_yaml()?, Path::new("graphc loss"))
        .map_err(|e| anyhow!("{}", e.message()))?;
    let input = parse_array("--input", &args.input)?;
    let input_data = input.floats("--input")?;
    let target = parse_array("--target", &args.target)?;
    let classes = matches!(nn::task_of(&loss), nn::Task::MultiClass { .. })
        && target.shape.len() + 1 == input.shape.len();
    let target_data = if classes {
        TargetData::Classes(target.indices("--target")?)
    } else {
        TargetData::Floats(target.floats("--target")?)
    };
    let target_ty = match &target_data {
        TargetData::Classes(_) => TensorType::i64(&target.shape),
        TargetData::Floats(_) => TensorType::f32(&target.shape),
    };
    let mut built = nn::build_loss_graph(&loss, &input.shape, &target_ty, args.grad)?;
    let checked = match &target_data {
        TargetData::Classes(t) => nn::LossTargets::Classes(t),
        TargetData::Floats(t) => nn::LossTargets::Floats(t),
    };
    nn::check_loss_data(&loss, &input_data, &input.shape, checked)?;

    let backend = match &args.backend {
        Some(name) => crate::backend_kind(name)?,
        None => BackendKind::Jit,
    };
    let mut exe =
        graphc::stages::train::compile_graph(backend.backend().as_ref(), &mut built.graph)
            .context("compiling the loss")?;
    exe.write("input", &input_data)
        .context("setting the input")?;
    let arg = match &target_data {
        TargetData::Classes(t) => Arg::I64(t),
        TargetData::Floats(t) => Arg::F32(t),
    };
    exe.run(&[arg]).context("evaluating the loss")?;

    let loss_shape = built
        .graph
        .shape(built.graph.outputs()[built.loss_output].node);
    let value = json(exe.output(built.loss_output), loss_shape);
    match built.grad_output {
        Some(g) => crate::outln(&format!(
            "{{\"loss\": {value}, \"grad\": {}}}",
            json(exe.output(g), &input.shape)
        )),
        None => crate::outln(&value.to_string()),
    }
}

/// The targets as the loss reads them.
enum TargetData {
    Classes(Vec<i64>),
    Floats(Vec<f32>),
}

/// A JSON array of numbers of rectangular shape, flattened row-major.
struct Array {
    shape: Vec<usize>,
    numbers: Vec<Number>,
}

impl Array {
    /// The numbers as f32 (integers too); an out-of-range number is an error.
    fn floats(&self, flag: &str) -> Result<Vec<f32>> {
        self.numbers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let v = n.as_f64().unwrap_or(f64::NAN) as f32;
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(anyhow!(
                        "{flag}{}: {n} does not fit in a 32-bit float",
                        self.position(i)
                    ))
                }
            })
            .collect()
    }

    /// The numbers as class indices: whole numbers only.
    fn indices(&self, flag: &str) -> Result<Vec<i64>> {
        self.numbers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.as_i64().ok_or_else(|| {
                    anyhow!(
                        "{flag}{}: class indices are whole numbers, got {n}",
                        self.position(i)
                    )
                })
            })
            .collect()
    }

    /// `[row][column]` of flat index `i`.
    fn position(&self, mut i: usize) -> String {
        let mut coords = vec![0; self.shape.len()];
        for (axis, &size) in self.shape.iter().enumerate().rev() {
            coords[axis] = i % size.max(1);
            i /= size.max(1);
        }
        coords.iter().map(|c| format!("[{c}]")).collect()
    }
}

/// Parses `text` as a non-empty, rectangular JSON array of numbers.
fn parse_array(flag: &str, text: &str) -> Result<Array> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| anyhow!("{flag}: not valid JSON ({e}): {}", shorten(text)))?;
    if !value.is_array() {
        bail!(
            "{flag}: expected a JSON array of numbers such as [[1, 2], [1, 3]], got {}",
            shorten(text)
        );
    }
    let mut shape = Vec::new();
    let mut level = &value;
    while let Value::Array(items) = level {
        shape.push(items.len());
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    if shape.contains(&0) {
        bail!("{flag}: the array is empty");
    }
    let mut numbers = Vec::with_capacity(shape.iter().product());
    flatten(flag, &value, &shape, &mut String::new(), &mut numbers)?;
    Ok(Array { shape, numbers })
}

/// Appends the numbers of `value` (expected to have `shape`) to `out`; `at` is its position.
fn flatten(
    flag: &str,
    value: &Value,
    shape: &[usize],
    at: &mut String,
    out: &mut Vec<Number>,
) -> Result<()> {
    match (value, shape.split_first()) {
        (Value::Number(n), None) => {
            out.push(n.clone());
            Ok(())
        }
        (Value::Array(items), Some((&len, rest))) => {
            if items.len() != len {
                bail!(
                    "{flag} is ragged: {flag}{at} has {} value(s) where the first row at that depth has {len}",
                    items.len()
                );
            }
            for (i, item) in items.iter().enumerate() {
                let mark = at.len();
                at.push_str(&format!("[{i}]"));
                flatten(flag, item, rest, at, out)?;
                at.truncate(mark);
            }
            Ok(())
        }
        (Value::Array(_), None) | (Value::Number(_), Some(_)) => {
            bail!("{flag} is ragged: {flag}{at} does not have the depth of the first row")
        }
        (other, _) => bail!(
            "{flag}{at}: expected a number, got {}",
            shorten(&other.to_string())
        ),
    }
}

/// `text`, cut to a readable length.
fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// `values` of `shape` as nested JSON arrays (a bare number for a scalar);
/// non-finite values as `NaN`, `Infinity`, `-Infinity` (as Python's json writes them).
fn json(values: &[f32], shape: &[usize]) -> String {
    fn number(v: f32) -> String {
        if v.is_nan() {
            "NaN".into()
        } else if v.is_infinite() {
            if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
        } else {
            format!("{v:?}")
        }
    }
    fn nest(values: &[f32], shape: &[usize]) -> String {
        match shape.split_first() {
            None => values.first().map_or_else(|| "NaN".into(), |&v| number(v)),
            Some((&n, rest)) => {
                let step: usize = rest.iter().product();
                let parts: Vec<String> = (0..n)
                    .map(|i| nest(values.get(i * step..(i + 1) * step).unwrap_or(&[]), rest))
                    .collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }
    nest(values, shape)
}
