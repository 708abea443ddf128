//! Per-spatial-axis values of convolution and pooling layers: an int for every axis, a list
//! with one entry per axis, or (where a layer allows one) a word such as `same`.
//!
//! The number of spatial axes is known only once the layer's `type:` is read, which may come
//! after these keys, so a value is read as written ([`Axes`]) and resolved later.

use serde::de::SeqAccess;

use crate::ctx::{Ctx, Path};
use crate::node::{ctx_and_path, read_seq, Node, Problem, Raw, ScalarNode, Seed};

/// A per-axis value as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Axes<T> {
    /// One value for every axis (`kernel_size: 3`).
    All(T),
    /// One value per axis (`kernel_size: [3, 5]`).
    Each(Vec<T>),
    /// A word the key allows (`padding: same`).
    Word(&'static str),
    /// `null`.
    Null,
}

impl<T: Clone> Axes<T> {
    /// The value for each of `dims` axes; `Err` says what is wrong (a list of another length).
    /// `Word` and `Null` are the caller's to handle before this.
    pub(crate) fn per_axis(&self, dims: usize, layer: &str) -> Result<Vec<T>, String> {
        match self {
            Axes::All(v) => Ok(vec![v.clone(); dims]),
            Axes::Each(v) if v.len() == dims => Ok(v.clone()),
            Axes::Each(v) => Err(format!(
                "{layer} has {dims} spatial {}, so a list here needs {dims} {}, not {}",
                if dims == 1 { "axis" } else { "axes" },
                if dims == 1 { "value" } else { "values" },
                v.len()
            )),
            Axes::Word(w) => Err(format!("`{w}` is not valid for {layer}")),
            Axes::Null => Err(format!("null is not valid for {layer}")),
        }
    }
}

/// Reads an [`Axes`]: a scalar converted by `conv`, a non-empty list of them, one of `words`.
pub(crate) struct AxesNode<'a, F> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// Where the value is.
    pub(crate) path: Path,
    /// What one axis's value is ("a positive integer").
    pub(crate) elem: &'static str,
    /// The words accepted instead of numbers.
    pub(crate) words: &'static [&'static str],
    /// The conversion of one axis's value.
    pub(crate) conv: F,
}

impl<'de, T, F: Fn(&Raw) -> Result<T, Problem> + Copy> Node<'de> for AxesNode<'_, F> {
    type Out = Axes<T>;
    ctx_and_path!();
    fn expected(&self) -> String {
        let words: Vec<String> = self.words.iter().map(|w| format!("`{w}`")).collect();
        let mut s = format!("{} or a list of them, one per spatial axis", self.elem);
        if !words.is_empty() {
            s = format!("{s}, or {}", words.join(" or "));
        }
        s
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Axes<T>, Problem> {
        match raw {
            Raw::Null => Ok(Axes::Null),
            Raw::Str(s) => match self.words.iter().find(|w| *w == s) {
                Some(w) => Ok(Axes::Word(w)),
                None if self.words.is_empty() => Err(Problem::Type),
                None => Err(Problem::Value),
            },
            _ => (self.conv)(raw).map(Axes::All),
        }
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Axes<T>, A::Error> {
        let out = read_seq(seq, |i| {
            Seed(ScalarNode {
                ctx: self.ctx,
                path: self.path.index(i),
                expected: self.elem.to_owned(),
                conv: self.conv,
            })
        })?;
        self.non_empty(out).map(Axes::Each)
    }
}

/// Reads the value of the current key as an [`Axes`].
pub(crate) fn axes<'a, T, F: Fn(&Raw) -> Result<T, Problem> + Copy>(
    ctx: &'a Ctx,
    path: Path,
    elem: &'static str,
    words: &'static [&'static str],
    conv: F,
) -> Seed<AxesNode<'a, F>> {
    Seed(AxesNode {
        ctx,
        path,
        elem,
        words,
        conv,
    })
}
