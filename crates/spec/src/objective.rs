//! Objective specs: `params` (name → initial value) and `objective` (an expression over
//! them) in place of `data`, `model` and `loss`. An objective spec is read as the spec it
//! means: one empty sample of data, a model that is the expression, and a loss that is the
//! model's value, so everything after parsing trains it like any other spec.

use serde::de::{MapAccess, SeqAccess};

use crate::ctx::{Ctx, Path};
use crate::expr::{parse_expr, BinOp, Expr, Func};
use crate::node::{ctx_and_path, read_seq, to_f32, Node, Problem, Raw, ScalarNode};
use crate::types::{
    DataSpec, InitSpec, LossSpec, ModelBody, ModelSpec, ObjectiveParam, ObjectiveSpec, Reduction,
    SourceSpec,
};

/// `params:`: a mapping of names to a number or a non-empty list of numbers.
pub(crate) struct ParamsNode<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) path: Path,
}

impl<'de> Node<'de> for ParamsNode<'_> {
    type Out = Vec<ObjectiveParam>;
    ctx_and_path!();
    fn expected(&self) -> String {
        "a mapping of parameter names to a number or a list of numbers (`{x: 2.0}`)".into()
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut params: Vec<ObjectiveParam> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let path = self.path.key(&name);
            if let Some(problem) = bad_name(&name, &params) {
                let message = format!("{path}: {problem}");
                return Err(self.ctx.fail_at_key(path, message));
            }
            let value = map.next_value_seed(crate::node::Seed(ValueNode {
                ctx: self.ctx,
                path,
            }))?;
            let (init, vector) = value;
            params.push(ObjectiveParam { name, init, vector });
        }
        if params.is_empty() {
            return Err(self.fail(
                &Raw::Map,
                Problem::Msg(format!("must not be empty; expected {}", self.expected())),
            ));
        }
        Ok(params)
    }
}

/// The keys of a step's line in `metrics.jsonl`, which the parameters' values join.
const METRICS_KEYS: [&str; 5] = ["step", "epoch", "loss", "lr", "lrs"];

/// Why `name` cannot name a parameter, if it cannot.
fn bad_name(name: &str, earlier: &[ObjectiveParam]) -> Option<String> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_alphanumeric() || c == '_') {
        return Some(format!(
            "`{}` is not a parameter name; use letters, digits and `_`, not starting with a digit",
            crate::ctx::shown(name)
        ));
    }
    if let Some(f) = Func::ALL.iter().find(|f| f.name() == name) {
        return Some(format!(
            "`{name}` is the function {}; name the parameter otherwise",
            f.name()
        ));
    }
    if METRICS_KEYS.contains(&name) {
        return Some(format!(
            "`{name}` is a key of metrics.jsonl's lines, where every parameter's value goes; \
             name the parameter otherwise"
        ));
    }
    if earlier.iter().any(|p| p.name == name) {
        return Some(format!("`{name}` is given twice"));
    }
    None
}

/// One parameter's initial value: a number, or a non-empty list of numbers.
struct ValueNode<'a> {
    ctx: &'a Ctx,
    path: Path,
}

impl<'de> Node<'de> for ValueNode<'_> {
    type Out = (Vec<f32>, bool);
    ctx_and_path!();
    fn expected(&self) -> String {
        "a number or a non-empty list of numbers".into()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        Ok((vec![to_f32(raw)?], false))
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Out, A::Error> {
        let values = read_seq(seq, |i| {
            crate::node::Seed(ScalarNode {
                ctx: self.ctx,
                path: self.path.index(i),
                expected: "a number".to_owned(),
                conv: to_f32,
            })
        })?;
        Ok((self.non_empty(values)?, true))
    }
}

/// The spec parts an objective spec means: its data, model and loss.
pub(crate) struct Desugared {
    pub(crate) data: DataSpec,
    pub(crate) model: ModelSpec,
    pub(crate) loss: LossSpec,
}

/// Parses `text` over `params` into the data, model and loss of the spec; the error is the
/// expression's column and what is wrong there (`objective:1:9: unknown name `y`; …`).
pub(crate) fn desugar(params: Vec<ObjectiveParam>, text: String) -> Result<Desugared, String> {
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let expr = parse_expr(&text, &names).map_err(|e| e.to_string())?;
    if let Some(n) = length(&expr, &params)? {
        return Err(format!(
            "objective: the value is a vector of {n} elements; the loss must be one number: \
             reduce it with sum(…) or mean(…)"
        ));
    }
    let data = DataSpec {
        train: SourceSpec::Objective,
        valid: None,
        batch_size: 1,
        shuffle: false,
        drop_last: false,
        standardize: None,
        split: None,
    };
    let model = ModelSpec {
        input: vec![1],
        body: ModelBody::Objective(ObjectiveSpec { params, text, expr }),
        init: InitSpec::Default,
    };
    let loss = LossSpec::Objective {
        reduction: Reduction::Mean,
    };
    Ok(Desugared { data, model, loss })
}

/// The number of elements of `e`'s value: `None` for a scalar, `Some(n)` for a vector. A
/// scalar combines with a vector element by element (as a Python number with a tensor);
/// two vectors must have the same length.
fn length(e: &Expr, params: &[ObjectiveParam]) -> Result<Option<usize>, String> {
    Ok(match e {
        Expr::Num(_) => None,
        Expr::Param(i) => {
            let p = &params[*i];
            p.vector.then_some(p.init.len())
        }
        Expr::Neg(a) => length(a, params)?,
        Expr::Bin(op, a, b) => match (length(a, params)?, length(b, params)?) {
            (Some(m), Some(n)) if m != n => {
                let symbol = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::Pow => "^",
                };
                return Err(format!(
                    "objective: `{symbol}` of vectors of {m} and {n} elements; vectors combine \
                     element by element and must have the same length"
                ));
            }
            (m, n) => m.or(n),
        },
        Expr::Call(Func::Sum | Func::Mean, a) => {
            length(a, params)?;
            None
        }
        Expr::Call(
            Func::Exp
            | Func::Log
            | Func::Sqrt
            | Func::Abs
            | Func::Sin
            | Func::Cos
            | Func::Tanh
            | Func::Sigmoid
            | Func::Relu,
            a,
        ) => length(a, params)?,
    })
}
