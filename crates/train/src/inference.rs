//! Trained models put to use, for `graphc eval` and `graphc predict`: a spec with the weights
//! of a run and the files saved beside them (`labels.json`, `standardize.json`), evaluated on
//! labelled data or run on new samples, with predictions written as CSV.

use std::path::{Path, PathBuf};

use graphc_ir::Backend;
use graphc_nn::{TargetLayout, Task};
use graphc_spec::{InitSpec, LossType, SourceSpec, Spec};

use crate::data::{align_classes, quoted, read_labels_for, shown, Features, Origin, RowUnit};
use crate::run::{
    check_features, check_size, layout_of, target_kind, LABELS_FILE, MODEL_FILE, STANDARDIZE_FILE,
};
use crate::{
    csv_line, load_sets, load_source, load_split_sets, write_atomic, DataError, Dataset,
    Standardizer, Targets, TrainError, Trainer,
};

/// A spec and the weights of a trained model of it, with the class names and
/// standardization statistics saved beside the weights (or made from the spec's data).
#[derive(Debug, Clone)]
pub struct Model {
    spec: Spec,
    base_dir: PathBuf,
    weights: PathBuf,
    standardizer: Option<Standardizer>,
    labels: Option<Vec<String>>,
    notes: Vec<String>,
}

/// Which data a model is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalData<'a> {
    /// The spec's validation set (`data.valid` or `data.split`), else its training set.
    Spec,
    /// A CSV file with the spec's feature and target columns.
    Csv(&'a Path),
}

/// The number of classes of a classifier spec: the last layer's output width, as `labels.json`
/// must name them (described without building anything, so it is cheap).
pub(crate) fn classes_of(spec: &Spec) -> Result<usize, TrainError> {
    let layers = graphc_nn::describe_model(&spec.model, 1)?;
    let output = layers.last().map_or(&spec.model.input, |l| &l.output);
    Ok(output.last().copied().unwrap_or(1))
}

/// A data set a model was evaluated on: which set, and its samples.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// "the validation set", "the training set" or "`FILE`".
    pub name: String,
    /// The samples, standardized as the model was trained.
    pub data: Dataset,
}

impl Model {
    /// Reads the spec and locates the weights: `weights` is a safetensors file, or a run
    /// directory holding `model.safetensors`; without it, the spec's `model.init.from` (as
    /// `graphc train` would start from it). `labels.json` and `standardize.json` are read
    /// from the weights' directory (or, for `DIR/checkpoint/model.safetensors`, from `DIR`);
    /// without them (weights trained elsewhere), the class names and the standardization
    /// statistics come from the spec's training data, as `graphc train` computes them, and
    /// [`Model::notes`] says so.
    pub fn load(spec_path: &Path, weights: Option<&Path>) -> Result<Model, TrainError> {
        let spec = graphc_spec::parse_file(spec_path)?;
        check_size(&spec)?;
        let base_dir = spec_path.parent().unwrap_or(Path::new("."));
        let weights = match (weights, &spec.model.init) {
            (Some(w), _) if w.is_dir() => w.join(MODEL_FILE),
            (Some(w), _) => w.to_path_buf(),
            (None, InitSpec::From(path)) => base_dir.join(path),
            (None, InitSpec::Default) => {
                return Err(DataError::Io {
                    action: "find the weights of",
                    path: spec_path.to_path_buf(),
                    detail: "no --weights given and the spec has no model.init.from".into(),
                    hint: "give --weights a run directory or a .safetensors file",
                }
                .into())
            }
        };
        if !weights.is_file() {
            return Err(DataError::Io {
                action: "read weights",
                path: weights,
                detail: "no such file".into(),
                hint: "give --weights the model.safetensors of a run (or the run directory)",
            }
            .into());
        }
        let find = |name: &str| -> Option<PathBuf> {
            let dir = weights.parent().unwrap_or(Path::new("."));
            std::iter::once(dir)
                .chain(dir.parent().filter(|_| dir.ends_with("checkpoint")))
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        };
        let saved_standardizer = match spec.data.standardize {
            Some(_) => find(STANDARDIZE_FILE)
                .map(|path| Standardizer::load(&path))
                .transpose()?,
            None => None,
        };
        let saved_labels = match find(LABELS_FILE) {
            Some(path) => Some(read_labels_for(&path, classes_of(&spec)?)?),
            None => None,
        };
        let mut notes = Vec::new();
        // What is not beside the weights (weights trained elsewhere, e.g. a PyTorch
        // state_dict) comes from the spec's training data, as `graphc train` made it.
        let needs_data = (spec.data.standardize.is_some() && saved_standardizer.is_none())
            || saved_labels.is_none();
        let train = if needs_data {
            let (train, _, _) =
                load_split_sets(&spec.data, base_dir, target_kind(&spec), spec.seed)?;
            check_features(&spec, &train)?;
            Some(train)
        } else {
            None
        };
        let standardizer = match (spec.data.standardize, saved_standardizer, &train) {
            (Some(_), Some(saved), _) => Some(saved),
            (Some(kind), None, Some(train)) => {
                notes.push(format!(
                    "no {STANDARDIZE_FILE} beside the weights: standardizing with the {} std statistics of the spec's training data {}",
                    kind.name(),
                    train.origin.features
                ));
                Some(Standardizer::fit(train, kind)?)
            }
            (Some(_), None, None) | (None, _, _) => None,
        };
        let labels = match (saved_labels, &train) {
            (Some(saved), _) => Some(saved),
            (None, Some(train)) => train.class_names().map(<[String]>::to_vec),
            (None, None) => None,
        };
        Ok(Model {
            base_dir: base_dir.to_path_buf(),
            spec,
            weights,
            standardizer,
            labels,
            notes,
        })
    }

    /// What [`Model::load`] took from elsewhere than the files beside the weights, one line
    /// each, for standard error.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The weights file.
    pub fn weights(&self) -> &Path {
        &self.weights
    }

    /// The class names from `labels.json`, in index order, when the run wrote one.
    pub fn class_names(&self) -> Option<&[String]> {
        self.labels.as_deref()
    }

    /// The spec's CSV target columns and the feature columns the model was trained on, when
    /// its training data is a CSV file: its `features` list, else every column of the
    /// training file's header that is not a target (`None` when that file cannot be read).
    fn csv_columns(&self) -> Option<(&[String], Option<Vec<String>>)> {
        let SourceSpec::Csv {
            path,
            target,
            features,
        } = &self.spec.data.train
        else {
            return None;
        };
        let features = features.clone().or_else(|| {
            let header = graphc_data::open_csv(&self.base_dir.join(path))
                .and_then(|mut r| r.headers())
                .ok()?;
            Some(
                header
                    .iter()
                    .filter(|h| !target.iter().any(|t| t == h))
                    .map(str::to_owned)
                    .collect(),
            )
        });
        Some((target, features))
    }

    /// Loads labelled data to evaluate on, standardized with the saved statistics, its text
    /// labels numbered as in `labels.json`, and checked against `model.input`. For a CSV file,
    /// `target` names the target columns (default: the spec's, when its data is CSV).
    pub fn labelled(
        &self,
        which: EvalData<'_>,
        target: Option<&[String]>,
    ) -> Result<Labelled, TrainError> {
        let kind = target_kind(&self.spec);
        let (name, mut data) = match which {
            EvalData::Spec => {
                let (train, valid) =
                    load_sets(&self.spec.data, &self.base_dir, kind, self.spec.seed)?;
                match valid {
                    Some(v) => ("the validation set".to_owned(), v),
                    None => ("the training set".to_owned(), train),
                }
            }
            EvalData::Csv(path) => {
                let (spec_target, features) = self.csv_columns().unwrap_or((&[], None));
                let target = target.unwrap_or(spec_target);
                // Columns that are features in training but targets here stay targets.
                let features = features.map(|f| {
                    f.into_iter()
                        .filter(|name| !target.contains(name))
                        .collect::<Vec<_>>()
                });
                if target.is_empty() {
                    return Err(DataError::Csv {
                        path: path.to_path_buf(),
                        message: "the spec's training data is not a CSV file, so its target column is unknown; name it with --target".into(),
                    }.into());
                }
                let source = SourceSpec::Csv {
                    path: path.to_path_buf(),
                    target: target.to_vec(),
                    features,
                };
                (
                    quoted(path),
                    load_source(&source, Path::new(""), kind, self.spec.seed)?,
                )
            }
        };
        self.align_labels(&mut data)?;
        check_features(&self.spec, &data)?;
        if let Some(s) = &self.standardizer {
            let what = data.origin.features.clone();
            s.try_apply(&mut data, &what)?;
        }
        Ok(Labelled { name, data })
    }

    /// Numbers text labels as `labels.json` does (a label it lacks is an error).
    fn align_labels(&self, data: &mut Dataset) -> Result<(), TrainError> {
        if data.class_names().is_none() {
            return Ok(());
        }
        let Some(labels) = &self.labels else {
            return Err(TrainError::Data(format!(
                "{} has text class labels, but there is no {LABELS_FILE} beside the weights `{}` to number them; give the weights of a run directory written by `graphc train` from text labels",
                data.origin.targets,
                self.weights.display()
            )));
        };
        let trained = Dataset {
            features: Features::Memory(Vec::new()),
            feature_names: Vec::new(),
            targets: Targets::Classes {
                indices: Vec::new(),
                names: Some(labels.clone()),
            },
            origin: Origin::single(format!("`{LABELS_FILE}`"), RowUnit::Row),
        };
        Ok(align_classes(&trained, data)?)
    }

    /// Loads the samples of a CSV file to predict: the spec's feature columns (its `features`
    /// list, or every column but its targets, which the file may lack), standardized with the
    /// saved statistics and checked against `model.input`.
    pub fn unlabelled(&self, path: &Path) -> Result<Dataset, TrainError> {
        let (target, features) = self.csv_columns().unwrap_or((&[], None));
        let mut data = read_features_csv(path, features.as_deref(), target)?;
        check_features(&self.spec, &data)?;
        if let Some(s) = &self.standardizer {
            s.try_apply(&mut data, &quoted(path))?;
        }
        let n = data.len();
        data.targets = match graphc_nn::natural_layout(&self.spec)? {
            TargetLayout::Classes => Targets::Classes {
                indices: vec![0; n],
                names: None,
            },
            TargetLayout::Floats { width } => Targets::Floats {
                values: vec![0.0; n * width],
                width,
            },
        };
        Ok(data)
    }

    /// Compiles the model for `data`'s targets on `backend` with the weights loaded (a file
    /// whose tensors are not this model's is an error naming the tensor), and checks the
    /// data's class indices against the model's outputs.
    pub fn compile(
        &self,
        data: &Dataset,
        backend: Box<dyn Backend>,
    ) -> Result<Trainer, TrainError> {
        let mut trainer = Trainer::new(self.spec.clone(), backend, layout_of(&data.targets))?;
        trainer.load_weights(&self.weights)?;
        if let Targets::Classes { indices, .. } = &data.targets {
            trainer.check_targets(indices, &|row| data.row_location(row))?;
        }
        trainer.check_data_features(data)?;
        Ok(trainer)
    }

    /// The predictions for `data` as CSV text: one header line, then one line per sample.
    /// A classifier gives the class (its name from `labels.json`, else its index), a binary
    /// model 0 or 1 per output, a regressor its output values. Columns are named after the
    /// spec's CSV target columns, else `prediction` (`prediction[j]` for several).
    pub fn predictions_csv(
        &self,
        trainer: &mut Trainer,
        data: &Dataset,
    ) -> Result<String, TrainError> {
        let (outputs, width) = trainer.predict(data)?;
        let task = trainer.task();
        let columns = match task {
            Task::MultiClass { .. } => 1,
            _ => width,
        };
        let names = self.output_names(columns);
        let mut out = csv_header(&names);
        for row in outputs.chunks(width.max(1)) {
            let cells: Vec<String> = match task {
                Task::MultiClass { .. } => {
                    let class = argmax(row);
                    let cell = match &self.labels {
                        Some(labels) if class < labels.len() => csv_field(&labels[class]),
                        _ => class.to_string(),
                    };
                    vec![cell]
                }
                Task::Binary { from_logits } => {
                    let threshold = if from_logits { 0.0 } else { 0.5 };
                    row.iter()
                        .map(|&v| u8::from(v > threshold).to_string())
                        .collect()
                }
                Task::Regression | Task::Objective => row.iter().map(|v| v.to_string()).collect(),
            };
            out += &cells.join(",");
            out.push('\n');
        }
        Ok(out)
    }

    /// Names for `columns` output columns: the spec's CSV target columns when there are as
    /// many, else `prediction` (`prediction[j]` for several).
    fn output_names(&self, columns: usize) -> Vec<String> {
        let targets = match &self.spec.data.train {
            SourceSpec::Csv { target, .. } => target.clone(),
            SourceSpec::Npy { .. }
            | SourceSpec::Npz { .. }
            | SourceSpec::Idx { .. }
            | SourceSpec::Synthetic(_)
            | SourceSpec::Objective => Vec::new(),
        };
        if targets.len() == columns {
            targets
        } else if columns == 1 {
            vec!["prediction".into()]
        } else {
            (0..columns).map(|j| format!("prediction[{j}]")).collect()
        }
    }

    /// How `predict --proba` turns this model's outputs into probabilities, as its loss reads
    /// them; a loss whose outputs are not class scores is an error.
    pub fn probability(&self) -> Result<Probability, TrainError> {
        let loss = &self.spec.loss;
        let none = |what: &str| {
            Err(TrainError::Data(format!(
                "--proba needs a classification loss, and the spec's loss {} {what}; predict without --proba",
                loss.name()
            )))
        };
        let Some(loss_type) = loss.loss_type() else {
            return none("is an objective's value");
        };
        match loss_type {
            LossType::CrossEntropy => Ok(Probability::Softmax),
            LossType::Nll => Ok(Probability::Exp),
            LossType::BceWithLogits | LossType::SoftMargin | LossType::MultiLabelSoftMargin => {
                Ok(Probability::Sigmoid)
            }
            LossType::Bce => Ok(Probability::Identity),
            LossType::MultiMargin => none("scores margins, not probabilities"),
            LossType::Mse
            | LossType::L1
            | LossType::SmoothL1
            | LossType::Huber
            | LossType::KlDiv
            | LossType::PoissonNll => none("is a regression loss"),
        }
    }

    /// The class probabilities for `data` as CSV text (`predict --proba`): one column per
    /// class headed by its name (from `labels.json` or the data, else its index) for a
    /// multi-class model, one per output headed as [`Model::predictions_csv`] heads them for a
    /// binary one; then one line per sample.
    pub fn probabilities_csv(
        &self,
        trainer: &mut Trainer,
        data: &Dataset,
    ) -> Result<String, TrainError> {
        let how = self.probability()?;
        let (outputs, width) = trainer.predict(data)?;
        let names: Vec<String> = match how {
            Probability::Softmax | Probability::Exp => (0..width)
                .map(|c| match &self.labels {
                    Some(labels) if c < labels.len() => labels[c].clone(),
                    _ => c.to_string(),
                })
                .collect(),
            Probability::Sigmoid | Probability::Identity => self.output_names(width),
        };
        let mut out = csv_header(&names);
        for row in outputs.chunks(width.max(1)) {
            let cells: Vec<String> = how.apply(row).iter().map(f32::to_string).collect();
            out += &cells.join(",");
            out.push('\n');
        }
        Ok(out)
    }
}

/// How a model's outputs become probabilities (`predict --proba`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probability {
    /// `softmax` over the classes: `cross_entropy` reads the outputs as logits.
    Softmax,
    /// `exp`: `nll` reads the outputs as log-probabilities (a `log_softmax` layer's).
    Exp,
    /// `sigmoid` per output: `bce_with_logits` and the soft-margin losses read logits.
    Sigmoid,
    /// The outputs as they are: `bce` reads probabilities.
    Identity,
}

impl Probability {
    /// The probabilities of one sample's outputs, computed in f64.
    pub fn apply(self, row: &[f32]) -> Vec<f32> {
        let wide = row.iter().map(|&v| f64::from(v));
        match self {
            Probability::Softmax => {
                let max = wide.clone().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = wide.map(|v| (v - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                exps.iter().map(|e| (e / sum) as f32).collect()
            }
            Probability::Exp => wide.map(|v| v.exp() as f32).collect(),
            Probability::Sigmoid => wide.map(|v| (1.0 / (1.0 + (-v).exp())) as f32).collect(),
            Probability::Identity => row.to_vec(),
        }
    }
}

/// Writes `text` to `path` atomically (readers never see a part of it).
pub fn write_text(path: &Path, text: &str) -> Result<(), TrainError> {
    Ok(write_atomic(path, text.as_bytes())?)
}

/// A CSV header line naming `names`.
fn csv_header(names: &[String]) -> String {
    let mut line = names
        .iter()
        .map(|n| csv_field(n))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Index of the largest value (the first on ties, as `torch.argmax`).
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Reads the feature columns of a CSV file with a header row: `features` in that order when
/// given, else every column not named in `exclude` (the spec's targets, which the file need
/// not have). Cells must be finite numbers; errors name the line and column as the training
/// loader does. The targets of the result are zeros, one per sample.
pub fn read_features_csv(
    path: &Path,
    features: Option<&[String]>,
    exclude: &[String],
) -> Result<Dataset, TrainError> {
    let csv_error = |message: String| {
        TrainError::from(DataError::Csv {
            path: path.to_path_buf(),
            message,
        })
    };
    let mut reader = graphc_data::open_csv(path)?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    if header.iter().all(String::is_empty) {
        return Err(csv_error(
            "the file is empty; it needs a header row naming the columns, then one row per sample"
                .into(),
        ));
    }
    let columns: Vec<usize> = match features {
        Some(names) => names
            .iter()
            .map(|name| {
                header.iter().position(|h| h == name).ok_or_else(|| {
                    csv_error(format!(
                        "no column named `{}`, a feature the model was trained on; the columns are {}; give the samples with the training data's feature columns",
                        shown(name),
                        header.iter().map(|h| format!("`{}`", shown(h))).collect::<Vec<_>>().join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        None => (0..header.len())
            .filter(|&c| !exclude.contains(&header[c]))
            .collect(),
    };
    let mut values = Vec::new();
    let mut record = ::csv::StringRecord::new();
    let mut row = 0usize;
    loop {
        let line = csv_line(row);
        if !reader.read_record(&mut record, line)? {
            break;
        }
        if record.len() != header.len() {
            return Err(DataError::CsvRow {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "expected {} fields as in the header, found {}; fix the row (quote cells that contain commas)",
                    header.len(),
                    record.len()
                ),
            }.into());
        }
        for &c in &columns {
            let cell = &record[c];
            let cell_error = |message: String| {
                TrainError::from(DataError::CsvCell {
                    path: path.to_path_buf(),
                    line,
                    column: shown(&header[c]),
                    message,
                })
            };
            match cell.parse::<f32>() {
                Ok(v) if v.is_finite() => values.push(v),
                Ok(_) => {
                    return Err(cell_error(format!(
                        "`{}` is not a finite number; NaN and infinity are not allowed in features (fill in a real value or remove the row)",
                        shown(cell)
                    )))
                }
                Err(_) if cell.is_empty() => {
                    return Err(cell_error(
                        "the cell is empty; every feature needs a number (fill it in or remove the row)".into(),
                    ))
                }
                Err(_) => {
                    return Err(cell_error(format!(
                        "`{}` is not a number; feature cells must be numbers (fix the cell or remove the row)",
                        shown(cell)
                    )))
                }
            }
        }
        row += 1;
    }
    if row == 0 {
        return Err(csv_error(
            "the file has a header but no data rows; add at least one row of data".into(),
        ));
    }
    Ok(Dataset {
        features: Features::Memory(values),
        feature_names: columns.iter().map(|&c| header[c].clone()).collect(),
        targets: Targets::Floats {
            values: vec![0.0; row],
            width: 1,
        },
        origin: Origin::single(quoted(path), RowUnit::CsvLine),
    })
}
