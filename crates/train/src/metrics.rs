//! A run's `metrics.jsonl` read back: the training and validation losses `graphc plot` draws
//! and the run files' tests check.

use std::path::Path;

use serde_json::Value;

use crate::error::TrainError;

/// The losses of one run, as a plot draws them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotRun {
    /// The run's name in the legend (its directory name for `graphc plot`).
    pub label: String,
    /// `(step, loss)` of every training step: that step's batch loss.
    pub train: Vec<(u64, f32)>,
    /// `(step, loss)` of every validation: the step at the end of its epoch, the validation loss.
    pub valid: Vec<(u64, f32)>,
}

/// Reads `DIR/metrics.jsonl` (SPEC.md's format) into a run labelled with the directory's name.
///
/// Step records `{"step", "epoch", "loss", "lr"}` give the training points; a validation record
/// `{"epoch", "valid_loss", ...}` is placed at the last step seen before it (the end of its
/// epoch). A loss written as `null` (not finite) is left out; other keys are ignored.
pub fn read_metrics(dir: &Path) -> Result<PlotRun, TrainError> {
    let path = dir.join("metrics.jsonl");
    // Bounded and refusing FIFOs and devices: a run directory's file could be anything.
    let text = graphc_data::read_text_bounded(&path, "metrics file", graphc_data::memory_budget())
        .map_err(|e| match e {
            graphc_data::DataError::Io { path, detail, .. } => graphc_data::DataError::Io {
                action: "read",
                path,
                detail,
                hint: "give a run directory written by `graphc train` (it holds metrics.jsonl)",
            },
            other => other,
        })?;
    let line_error = |line: usize, message: String| {
        TrainError::Data(format!("`{}` line {line}: {message}", path.display()))
    };
    let mut run = PlotRun {
        label: run_label(dir),
        train: Vec::new(),
        valid: Vec::new(),
    };
    let mut last_step = 0u64;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| line_error(line_no, format!("not a JSON object ({e})")))?;
        let Value::Object(record) = value else {
            return Err(line_error(line_no, "not a JSON object".into()));
        };
        let loss_of = |key: &str| -> Result<Option<f32>, TrainError> {
            match record.get(key) {
                Some(Value::Number(n)) => Ok(n.as_f64().map(|v| v as f32)),
                Some(Value::Null) => Ok(None),
                _ => Err(line_error(
                    line_no,
                    format!("`{key}` is not a number; the file is damaged"),
                )),
            }
        };
        if let Some(step) = record.get("step") {
            let step = step
                .as_u64()
                .ok_or_else(|| line_error(line_no, "`step` is not a whole number ≥ 0".into()))?;
            last_step = step;
            if let Some(loss) = loss_of("loss")? {
                run.train.push((step, loss));
            }
        } else if record.contains_key("valid_loss") {
            if let Some(loss) = loss_of("valid_loss")? {
                run.valid.push((last_step, loss));
            }
        } else {
            return Err(line_error(
                line_no,
                "neither a step record (with `step`) nor a validation record (with `valid_loss`)"
                    .into(),
            ));
        }
    }
    if run.train.is_empty() && run.valid.is_empty() {
        return Err(TrainError::Data(format!(
            "`{}` has no losses to plot; train first, or check the directory",
            path.display()
        )));
    }
    Ok(run)
}

/// A run's name: the directory's last component (`runs/iris` → `iris`).
fn run_label(dir: &Path) -> String {
    dir.components()
        .rev()
        .find_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .unwrap_or_else(|| dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_label_is_the_last_directory_name() {
        assert_eq!(run_label(Path::new("runs/iris")), "iris");
        assert_eq!(run_label(Path::new("runs/iris/")), "iris");
        assert_eq!(run_label(Path::new("/tmp/lr-0.1/.")), "lr-0.1");
    }
}
