//! Objective specs: `params` and `objective` instead of `data`, `model` and `loss` — what
//! they parse to (the one-sample data, the expression model, the objective loss) and where
//! each mistake is reported.

use std::path::Path;

use graphc_spec::*;

use crate::support::assert_err;

fn parse(text: &str) -> Result<Spec, SpecError> {
    parse_str(text, Path::new("spec.yaml"))
}

/// An objective spec with these `params` and `objective` values (lines 1 and 2).
fn spec(params: &str, objective: &str) -> String {
    format!(
        "params: {params}\nobjective: {objective}\noptimizer: {{type: sgd, lr: 0.2}}\ntrain: {{steps: 10}}\n"
    )
}

#[test]
fn an_objective_spec_is_the_spec_it_means() {
    let s = parse(&spec("{x: 2.0, w: [1, 2.5]}", "4 * x^2 + sum(w)")).unwrap();
    assert_eq!(s.data.train, SourceSpec::Objective);
    assert_eq!(s.data.batch_size, 1);
    assert!(s.data.valid.is_none() && s.data.split.is_none());
    assert_eq!(s.model.input, vec![1]);
    assert_eq!(
        s.loss,
        LossSpec::Objective {
            reduction: Reduction::Mean
        }
    );
    assert_eq!(s.loss.name(), "objective");
    assert_eq!(s.loss.loss_type(), None);
    let objective = s.model.objective().expect("an objective model");
    assert_eq!(objective.text, "4 * x^2 + sum(w)");
    let names: Vec<&str> = objective.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["x", "w"]);
    assert_eq!(objective.params[0].init, vec![2.0]);
    assert_eq!(objective.params[0].shape(), Vec::<usize>::new());
    assert_eq!(objective.params[1].init, vec![1.0, 2.5]);
    assert_eq!(objective.params[1].shape(), vec![2]);
    // A list of one number is a vector of one element, not a scalar.
    let s = parse(&spec("{v: [3]}", "sum(v^2)")).unwrap();
    assert_eq!(s.model.objective().unwrap().params[0].shape(), vec![1]);
    // A number is an expression too.
    assert!(parse(&spec("{x: 1}", "7")).is_ok());
}

#[test]
fn expression_errors_name_the_column_in_the_expression() {
    let e = parse(&spec("{x: 2.0}", "4 * x^2 + y")).unwrap_err();
    assert_err(
        &e,
        2,
        1,
        "objective:1:11: unknown name `y`; parameters: x; functions: exp, log, sqrt, abs, sin, \
         cos, tanh, sigmoid, relu, sum, mean",
    );
    let e = parse(&spec("{x: 2.0}", "\"(x + 1\"")).unwrap_err();
    assert!(e.message().starts_with("objective:1:"), "{e}");
}

#[test]
fn vector_lengths_must_agree_and_the_value_must_be_one_number() {
    let e = parse(&spec("{a: [1, 2], b: [1, 2, 3]}", "sum(a * b)")).unwrap_err();
    assert_err(
        &e,
        2,
        1,
        "objective: `*` of vectors of 2 and 3 elements; vectors combine element by element and \
         must have the same length",
    );
    let e = parse(&spec("{a: [1, 2]}", "a^2 + 1")).unwrap_err();
    assert_err(
        &e,
        2,
        1,
        "objective: the value is a vector of 2 elements; the loss must be one number: reduce it \
         with sum(…) or mean(…)",
    );
    // A scalar combines with a vector element by element.
    assert!(parse(&spec("{a: [1, 2], s: 3}", "mean(a * s - s)")).is_ok());
}

#[test]
fn parameter_names_must_be_usable_in_the_expression_and_the_metrics() {
    let cases = [
        ("{2x: 1}", "`2x` is not a parameter name; use letters, digits and `_`, not starting with a digit"),
        ("{a.b: 1}", "`a.b` is not a parameter name; use letters, digits and `_`, not starting with a digit"),
        ("{exp: 1}", "`exp` is the function exp; name the parameter otherwise"),
        ("{lr: 1}", "`lr` is a key of metrics.jsonl's lines, where every parameter's value goes; name the parameter otherwise"),
    ];
    for (params, message) in cases {
        let e = parse(&spec(params, "1")).unwrap_err();
        let key = params.trim_start_matches('{').split(':').next().unwrap();
        assert_eq!(e.message(), format!("params.{key}: {message}"), "{params}");
        assert_eq!(e.line(), Some(1), "{e}");
    }
}

#[test]
fn params_values_must_be_numbers() {
    let e = parse(&spec("{x: two}", "x")).unwrap_err();
    assert!(e.message().starts_with("params.x: invalid type"), "{e}");
    let e = parse(&spec("{x: []}", "x")).unwrap_err();
    assert!(e.message().contains("must not be empty"), "{e}");
    let e = parse(&spec("{x: [1, a]}", "sum(x)")).unwrap_err();
    assert!(e.message().starts_with("params.x[1]: invalid type"), "{e}");
    let e = parse(&spec("{}", "1")).unwrap_err();
    assert!(e.message().contains("must not be empty"), "{e}");
}

#[test]
fn objective_specs_have_no_data_model_or_loss_and_need_both_keys() {
    let with = |extra: &str| format!("{extra}\n{}", spec("{x: 1}", "x^2"));
    let e = parse(&with("loss: {type: mse}")).unwrap_err();
    assert_err(
        &e,
        1,
        1,
        "`loss` does not go with `objective`: an objective spec optimizes its `params` directly; \
         remove `loss`, or `params` and `objective`",
    );
    let e =
        parse("params: {x: 1}\noptimizer: {type: sgd, lr: 0.1}\ntrain: {steps: 1}\n").unwrap_err();
    assert_err(
        &e,
        1,
        1,
        "`params` needs an `objective`: the expression over them to minimize",
    );
    let e =
        parse("objective: x\noptimizer: {type: sgd, lr: 0.1}\ntrain: {steps: 1}\n").unwrap_err();
    assert_err(
        &e,
        1,
        1,
        "`objective` needs `params`: the parameters it reads, with initial values (`params: {x: \
         2.0}`)",
    );
}

#[test]
fn overrides_reach_params_and_the_objective() {
    let text = spec("{x: 2.0}", "4 * x^2");
    let overrides = [
        "params.x=-3".parse::<Override>().unwrap(),
        "objective=x^4".parse::<Override>().unwrap(),
    ];
    let s = parse_str_with(&text, Path::new("spec.yaml"), &overrides).unwrap();
    let objective = s.model.objective().unwrap();
    assert_eq!(objective.params[0].init, vec![-3.0]);
    assert_eq!(objective.text, "x^4");
}
