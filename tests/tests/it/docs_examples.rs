//! Every YAML example in docs/spec.md parses: a complete spec as it is, a fragment of the
//! `data` section as a source under `data:`, and any other fragment (`loss: ...`,
//! `optimizer: ...`) in place of the same top-level sections of a small valid spec.

use std::path::Path;

/// A valid spec whose top-level sections the fragments replace.
const BASE: &str = "seed: 0
data:
  train: {csv: data.csv, target: y}
  batch_size: 4
model:
  input: [4]
  layers: [{type: linear, out: 3}]
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
";

/// The YAML blocks of the page with the `## ` heading each is under.
fn examples(doc: &str) -> Vec<(String, String)> {
    let mut heading = String::new();
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match &mut block {
            Some(text) if line.starts_with("```") => {
                out.push((heading.clone(), std::mem::take(text)));
                block = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None if line == "```yaml" => block = Some(String::new()),
            None if line.starts_with("## ") => heading = line.to_owned(),
            None => {}
        }
    }
    assert!(block.is_none(), "an unclosed code block");
    out
}

/// The top-level sections of a YAML text: each key at column 0 with its indented lines.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let top = !line.starts_with(' ') && !line.starts_with('#') && line.contains(':');
        match out.last_mut() {
            Some((_, body)) if !top => {
                body.push_str(line);
                body.push('\n');
            }
            _ => {
                let key = line.split(':').next().unwrap_or("").trim().to_owned();
                out.push((key, format!("{line}\n")));
            }
        }
    }
    out
}

/// The spec a fragment stands for: the base spec with the fragment's sections in place of
/// its own (sections the base lacks are added).
fn with_fragment(fragment: &str) -> String {
    let mut base = sections(BASE);
    for (key, body) in sections(fragment) {
        match base.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = body,
            None => base.push((key, body)),
        }
    }
    base.into_iter().map(|(_, body)| body).collect()
}

#[test]
fn every_yaml_example_of_docs_spec_md_parses() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/spec.md"))
            .unwrap();
    let examples = examples(&doc);
    assert!(examples.len() >= 12, "{} examples", examples.len());
    let mut headings = Vec::new();
    for (heading, yaml) in &examples {
        let text = if heading == "## `data`" {
            // A source form: `train:` (and `valid:`) under `data:`.
            let indented: String = yaml.lines().map(|l| format!("  {l}\n")).collect();
            BASE.replace("  train: {csv: data.csv, target: y}\n", &indented)
        } else if (yaml.lines().any(|l| l.starts_with("model:")) && yaml.contains("\ndata:"))
            || yaml.lines().any(|l| l.starts_with("objective:"))
        {
            yaml.clone()
        } else {
            with_fragment(yaml)
        };
        if let Err(e) = graphc::parse_str(&text, Path::new("docs/spec.md")) {
            panic!("an example under {heading} does not parse: {e}\n{yaml}\nas\n{text}");
        }
        headings.push(heading.as_str());
    }
    headings.dedup();
    for section in [
        "## A complete example",
        "## `data`",
        "## `model`",
        "## `loss`",
        "## `optimizer`",
        "## `scheduler`",
        "## `train`",
    ] {
        assert!(headings.contains(&section), "no example under {section}");
    }
}

#[test]
fn fragments_replace_the_sections_of_the_base_spec() {
    let text = with_fragment("loss: {type: mse}\nscheduler:\n  type: step_lr\n  step_size: 2\n");
    assert!(text.contains("loss: {type: mse}\n") && !text.contains("cross_entropy"));
    assert!(
        text.ends_with("scheduler:\n  type: step_lr\n  step_size: 2\n"),
        "{text}"
    );
    let spec = graphc::parse_str(&text, Path::new("x.yaml")).unwrap();
    assert!(spec.scheduler.is_some());
}
