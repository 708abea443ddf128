//! `parse_str` never panics: arbitrary text and arbitrary mutations of a valid spec.

use std::path::Path;

use graphc_spec::parse_str;
use proptest::prelude::*;

const VALID: &str = "\
seed: 3
data:
  train: {csv: data/iris.csv, target: [species]}
  valid: {csv: data/valid.csv, target: species, features: [a, b]}
  batch_size: 16
  shuffle: true
model:
  input: [4]
  layers:
    - {type: linear, out: 16, name: fc1}
    - {type: ReLU}
    - {out_features: 3, type: Linear, bias: false}
    - {type: log_softmax, dim: -1}
  init: {from: init.safetensors}
loss: {type: cross_entropy, weight: [1.0, 2.0, 1.0], ignore_index: -100, reduction: mean}
optimizer:
  param_groups:
    - {params: [\"0.*\"], lr: 0.01, nesterov: true}
  type: sgd
  lr: 0.1
  momentum: 0.9
train:
  epochs: 20
  steps: 100
";

/// One edit of the text at a byte position (snapped to a char boundary).
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, usize, String),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        "[ -~\t\n]{0,12}",
        Just(":".to_string()),
        Just("- ".to_string()),
        Just("{".to_string()),
        Just("]".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!tag ".to_string()),
        Just("~".to_string()),
        Just("\n  ".to_string()),
        Just("99999999999999999999999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("é".to_string()),
    ];
    prop_oneof![
        (any::<usize>(), snippet.clone()).prop_map(|(p, s)| Edit::Insert(p, s)),
        (any::<usize>(), 0usize..20).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), 0usize..8, snippet).prop_map(|(p, n, s)| Edit::Replace(p, n, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn boundary(text: &str, pos: usize) -> usize {
    let mut p = pos % (text.len() + 1);
    while !text.is_char_boundary(p) {
        p -= 1;
    }
    p
}

fn apply(text: &str, e: &Edit) -> String {
    let mut t = text.to_owned();
    match e {
        Edit::Insert(p, s) => t.insert_str(boundary(&t, *p), s),
        Edit::Delete(p, n) | Edit::Replace(p, n, _) => {
            let a = boundary(&t, *p);
            let b = boundary(&t, (a + n).min(t.len()));
            let with = if let Edit::Replace(_, _, s) = e {
                s.as_str()
            } else {
                ""
            };
            t.replace_range(a..b.max(a), with);
        }
        Edit::DuplicateLine(i) => {
            let mut lines: Vec<&str> = t.lines().collect();
            if !lines.is_empty() {
                let i = i % lines.len();
                lines.insert(i, lines[i]);
            }
            t = lines.join("\n");
        }
        Edit::SwapLines(i, j) => {
            let mut lines: Vec<&str> = t.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(i % n, j % n);
            }
            t = lines.join("\n");
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_returns_ok_or_err_without_panicking(text in "\\PC{0,200}") {
        if let Err(e) = parse_str(&text, Path::new("spec.yaml")) {
            // Every error is one line; a position, when given, is 1-based.
            prop_assert!(!e.to_string().contains('\n'));
            prop_assert!(e.line() != Some(0) && e.column() != Some(0));
        }
    }

    #[test]
    fn mutated_valid_spec_returns_ok_or_err_without_panicking(
        edits in proptest::collection::vec(edit(), 1..4)
    ) {
        let mut text = VALID.to_owned();
        for e in &edits {
            text = apply(&text, e);
        }
        if let Err(e) = parse_str(&text, Path::new("spec.yaml")) {
            // Every error is one line; a position, when given, is 1-based.
            prop_assert!(!e.to_string().contains('\n'));
            prop_assert!(e.line() != Some(0) && e.column() != Some(0));
        }
    }
}

#[test]
fn the_mutation_base_is_valid() {
    parse_str(VALID, Path::new("spec.yaml")).unwrap();
}

#[test]
fn deep_nesting_and_alias_bombs_are_errors_not_crashes() {
    let deep = format!("seed: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_str(&deep, Path::new("s.yaml")).is_err());
    let mut bomb = String::from("a: &a [1,1,1,1,1,1,1,1,1]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .windows(2)
        .map(|w| (w[0], w[1]))
    {
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    assert!(parse_str(&bomb, Path::new("s.yaml")).is_err());
}
