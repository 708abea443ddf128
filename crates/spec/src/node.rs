//! The generic node reader every section shares: raw scalars, typed scalars and lists.
//!
//! Every node is read with `deserialize_any`, so an error raised inside a node's visitor
//! is positioned by serde_yaml at that node (measured with serde_yaml 0.9.34: the innermost
//! `deserialize_*` call in progress attaches its event's mark).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::ctx::{shown, Ctx, Path};

/// A YAML node reduced to what validation needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in `i128`.
    Int(i128),
    /// An integer beyond `i128`, as text.
    BigInt(String),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A mapping (contents not read).
    Map,
    /// A list (contents not read).
    Seq,
    /// A value with a custom `!tag`.
    Tagged,
}

impl Raw {
    /// `string "ten"`, `integer `3``, … for "invalid type/value" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Raw::Null => "null".into(),
            Raw::Bool(b) => format!("boolean `{b}`"),
            Raw::Int(n) => format!("integer `{n}`"),
            Raw::BigInt(s) => format!("integer `{s}`"),
            Raw::Float(x) => format!("float `{x:?}`"),
            Raw::Str(s) => format!("string \"{}\"", shown(s)),
            Raw::Map => "a mapping".into(),
            Raw::Seq => "a list".into(),
            Raw::Tagged => "a tagged value".into(),
        }
    }

    /// The text of a scalar used as a mapping key (`None` for null, mappings, lists, tags).
    pub(crate) fn key_text(&self) -> Option<String> {
        match self {
            Raw::Str(s) => Some(s.clone()),
            Raw::Bool(b) => Some(b.to_string()),
            Raw::Int(n) => Some(n.to_string()),
            Raw::BigInt(s) => Some(s.clone()),
            Raw::Float(x) => Some(x.to_string()),
            Raw::Null | Raw::Map | Raw::Seq | Raw::Tagged => None,
        }
    }
}

/// Why a node was rejected.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Problem {
    /// `PATH: invalid type: RAW, expected EXPECTED`.
    Type,
    /// `PATH: invalid value: RAW, expected EXPECTED`.
    Value,
    /// `PATH: MESSAGE`.
    Msg(String),
    /// `MESSAGE` as is.
    Bare(String),
}

/// The `ctx()` and `path()` of a [`Node`] whose struct has `ctx` and `path` fields.
macro_rules! ctx_and_path {
    () => {
        fn ctx(&self) -> &$crate::ctx::Ctx {
            self.ctx
        }
        fn path(&self) -> &$crate::ctx::Path {
            &self.path
        }
    };
}
pub(crate) use ctx_and_path;

/// A node of the spec: knows its path, what is expected, and how to read itself.
pub(crate) trait Node<'de>: Sized {
    /// The value read.
    type Out;
    /// The parse context.
    fn ctx(&self) -> &Ctx;
    /// Where the node is.
    fn path(&self) -> &Path;
    /// What is valid here, for "expected …" messages.
    fn expected(&self) -> String;
    /// Reads a scalar (or rejects a mapping/list/tag given as `Raw::Map` etc. by default).
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        let _ = raw;
        Err(Problem::Type)
    }
    /// Reads a mapping.
    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error> {
        let _ = map;
        Err(self.fail(&Raw::Map, Problem::Type))
    }
    /// Reads a list.
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Out, A::Error> {
        let _ = seq;
        Err(self.fail(&Raw::Seq, Problem::Type))
    }
    /// Builds (and records) the error for `problem` with this node's path and expectation.
    fn fail<E: de::Error>(&self, raw: &Raw, problem: Problem) -> E {
        let path = self.path();
        let prefix = if path.is_root() {
            String::new()
        } else {
            format!("{path}: ")
        };
        let message = match problem {
            Problem::Type => format!(
                "{prefix}invalid type: {}, expected {}",
                raw.describe(),
                self.expected()
            ),
            Problem::Value => format!(
                "{prefix}invalid value: {}, expected {}",
                raw.describe(),
                self.expected()
            ),
            Problem::Msg(m) => format!("{prefix}{m}"),
            Problem::Bare(m) => m,
        };
        self.ctx().fail(message)
    }
    /// `items`, or the error that this list must not be empty.
    fn non_empty<T, E: de::Error>(&self, items: Vec<T>) -> Result<Vec<T>, E> {
        if items.is_empty() {
            let msg = format!("must not be empty; expected {}", self.expected());
            return Err(self.fail(&Raw::Seq, Problem::Msg(msg)));
        }
        Ok(items)
    }
}

/// Reads every element of a list, element `i` with the seed `elem(i)`.
pub(crate) fn read_seq<'de, A: SeqAccess<'de>, S: DeserializeSeed<'de>>(
    mut seq: A,
    mut elem: impl FnMut(usize) -> S,
) -> Result<Vec<S::Value>, A::Error> {
    let mut out = Vec::new();
    while let Some(v) = seq.next_element_seed(elem(out.len()))? {
        out.push(v);
    }
    Ok(out)
}

/// Adapts a [`Node`] to serde's `DeserializeSeed`.
pub(crate) struct Seed<N>(pub(crate) N);

impl<'de, N: Node<'de>> DeserializeSeed<'de> for Seed<N> {
    type Value = N::Out;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<N::Out, D::Error> {
        deserializer.deserialize_any(Visit(self.0))
    }
}

/// The one visitor: turns every YAML event into a call on the node.
struct Visit<N>(N);

impl<'de, N: Node<'de>> Visit<N> {
    fn raw<E: de::Error>(mut self, raw: Raw) -> Result<N::Out, E> {
        match self.0.scalar(&raw) {
            Ok(v) => Ok(v),
            Err(p) => Err(self.0.fail(&raw, p)),
        }
    }
}

impl<'de, N: Node<'de>> Visitor<'de> for Visit<N> {
    type Value = N::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.expected())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<N::Out, E> {
        self.raw(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<N::Out, E> {
        self.raw(Raw::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<N::Out, E> {
        self.raw(Raw::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<N::Out, E> {
        self.raw(Raw::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<N::Out, E> {
        match i128::try_from(v) {
            Ok(n) => self.raw(Raw::Int(n)),
            Err(_) => self.raw(Raw::BigInt(v.to_string())),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<N::Out, E> {
        self.raw(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<N::Out, E> {
        self.raw(Raw::Str(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<N::Out, E> {
        self.raw(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<N::Out, E> {
        self.raw(Raw::Null)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<N::Out, A::Error> {
        self.raw(Raw::Tagged)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<N::Out, A::Error> {
        self.0.map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<N::Out, A::Error> {
        self.0.seq(seq)
    }
}

/// A scalar converted by `conv`.
pub(crate) struct ScalarNode<'a, F> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// Where the scalar is.
    pub(crate) path: Path,
    /// What is valid, e.g. "a positive integer".
    pub(crate) expected: String,
    /// The conversion and check.
    pub(crate) conv: F,
}

impl<'de, T, F: FnMut(&Raw) -> Result<T, Problem>> Node<'de> for ScalarNode<'_, F> {
    type Out = T;
    ctx_and_path!();
    fn expected(&self) -> String {
        self.expected.clone()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<T, Problem> {
        (self.conv)(raw)
    }
}

/// Reads the value of the current key as a scalar.
pub(crate) fn scalar<'a, T, F: FnMut(&Raw) -> Result<T, Problem>>(
    ctx: &'a Ctx,
    path: Path,
    expected: &str,
    conv: F,
) -> Seed<ScalarNode<'a, F>> {
    Seed(ScalarNode {
        ctx,
        path,
        expected: expected.to_owned(),
        conv,
    })
}

/// One scalar, or a non-empty list of them (`dim: 1` or `dim: [1, 2]`; `inputs: a` or
/// `inputs: [a, b]`), as a list.
pub(crate) struct OneOrListNode<'a, F> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// Where the value is.
    pub(crate) path: Path,
    /// What one element should be, e.g. "an integer".
    pub(crate) elem: &'static str,
    /// The element conversion.
    pub(crate) conv: F,
}

impl<'de, T, F: Fn(&Raw) -> Result<T, Problem> + Copy> Node<'de> for OneOrListNode<'_, F> {
    type Out = Vec<T>;
    ctx_and_path!();
    fn expected(&self) -> String {
        format!("{} or a non-empty list of them", self.elem)
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Vec<T>, Problem> {
        (self.conv)(raw).map(|v| vec![v])
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
        let out = read_seq(seq, |i| {
            Seed(ScalarNode {
                ctx: self.ctx,
                path: self.path.index(i),
                expected: self.elem.to_owned(),
                conv: self.conv,
            })
        })?;
        self.non_empty(out)
    }
}

/// Reads the value of the current key as one scalar or a non-empty list of them.
pub(crate) fn one_or_list<'a, T, F: Fn(&Raw) -> Result<T, Problem> + Copy>(
    ctx: &'a Ctx,
    path: Path,
    elem: &'static str,
    conv: F,
) -> Seed<OneOrListNode<'a, F>> {
    Seed(OneOrListNode {
        ctx,
        path,
        elem,
        conv,
    })
}

/// A non-empty list of scalars; `None` only for `null` when `nullable`.
pub(crate) struct ListNode<'a, F> {
    /// The parse context.
    pub(crate) ctx: &'a Ctx,
    /// Where the list is.
    pub(crate) path: Path,
    /// What the whole list should be, e.g. "a non-empty list of positive integers".
    pub(crate) expected: String,
    /// What each element should be.
    pub(crate) elem: String,
    /// The element conversion.
    pub(crate) conv: F,
    /// Accept `null` as `None`.
    pub(crate) nullable: bool,
    /// Accept one scalar as a list of one element (PyTorch's `int or list` arguments).
    pub(crate) or_scalar: bool,
}

impl<'de, T, F: Fn(&Raw) -> Result<T, Problem> + Copy> Node<'de> for ListNode<'_, F> {
    type Out = Option<Vec<T>>;
    ctx_and_path!();
    fn expected(&self) -> String {
        self.expected.clone()
    }
    fn scalar(&mut self, raw: &Raw) -> Result<Self::Out, Problem> {
        match raw {
            Raw::Null if self.nullable => Ok(None),
            Raw::Null => Err(Problem::Type),
            _ if self.or_scalar => (self.conv)(raw).map(|v| Some(vec![v])),
            _ => Err(Problem::Type),
        }
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Out, A::Error> {
        let out = read_seq(seq, |i| {
            Seed(ScalarNode {
                ctx: self.ctx,
                path: self.path.index(i),
                expected: self.elem.clone(),
                conv: self.conv,
            })
        })?;
        self.non_empty(out).map(Some)
    }
}

/// Reads the value of the current key as a non-empty list of scalars.
pub(crate) fn list<'a, T, F: Fn(&Raw) -> Result<T, Problem> + Copy>(
    ctx: &'a Ctx,
    path: Path,
    expected: &str,
    elem: &str,
    conv: F,
) -> ListBuilder<'a, F> {
    ListBuilder(ListNode {
        ctx,
        path,
        expected: expected.to_owned(),
        elem: elem.to_owned(),
        conv,
        nullable: false,
        or_scalar: false,
    })
}

/// A list read being set up: optionally `nullable()`, then `seed()`.
pub(crate) struct ListBuilder<'a, F>(ListNode<'a, F>);

impl<'a, F> ListBuilder<'a, F> {
    /// Accept `null` as "not given".
    pub(crate) fn nullable(mut self) -> Self {
        self.0.nullable = true;
        self
    }
    /// Accept one scalar as a list of one element.
    pub(crate) fn or_scalar(mut self) -> Self {
        self.0.or_scalar = true;
        self
    }
    /// The finished seed.
    pub(crate) fn seed(self) -> Seed<ListNode<'a, F>> {
        Seed(self.0)
    }
}

// ---- conversions ---------------------------------------------------------------------------

/// `x` when `ok(x)`, else an invalid value (a range check after a conversion).
pub(crate) fn valid_if<T: Copy>(x: T, ok: impl FnOnce(T) -> bool) -> Result<T, Problem> {
    if ok(x) {
        Ok(x)
    } else {
        Err(Problem::Value)
    }
}

/// A non-negative integer.
pub(crate) fn to_u64(raw: &Raw) -> Result<u64, Problem> {
    match raw {
        Raw::Int(n) => u64::try_from(*n).map_err(|_| Problem::Value),
        Raw::BigInt(_) => Err(Problem::Value),
        _ => Err(Problem::Type),
    }
}

/// A positive integer.
pub(crate) fn to_positive_u64(raw: &Raw) -> Result<u64, Problem> {
    valid_if(to_u64(raw)?, |n| n > 0)
}

/// A positive integer that fits in `usize`.
pub(crate) fn to_positive_usize(raw: &Raw) -> Result<usize, Problem> {
    usize::try_from(to_positive_u64(raw)?).map_err(|_| Problem::Value)
}

/// Any `i64`.
pub(crate) fn to_i64(raw: &Raw) -> Result<i64, Problem> {
    match raw {
        Raw::Int(n) => i64::try_from(*n).map_err(|_| Problem::Value),
        Raw::BigInt(_) => Err(Problem::Value),
        _ => Err(Problem::Type),
    }
}

/// A finite number, as `f32` (integers accepted).
pub(crate) fn to_f32(raw: &Raw) -> Result<f32, Problem> {
    let x = match raw {
        Raw::Int(n) => *n as f32,
        Raw::Float(x) => *x as f32,
        Raw::BigInt(_) => f32::INFINITY,
        _ => return Err(Problem::Type),
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(Problem::Msg(format!(
            "invalid value: {}, expected a finite number (within f32 range)",
            raw.describe()
        )))
    }
}

/// A finite number, as `f64` (integers accepted).
pub(crate) fn to_f64(raw: &Raw) -> Result<f64, Problem> {
    let x = match raw {
        Raw::Int(n) => *n as f64,
        Raw::Float(x) => *x,
        Raw::BigInt(_) => f64::INFINITY,
        _ => return Err(Problem::Type),
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(Problem::Msg(format!(
            "invalid value: {}, expected a finite number",
            raw.describe()
        )))
    }
}

/// A finite number `>= 0`, as `f64`.
pub(crate) fn to_nonneg_f64(raw: &Raw) -> Result<f64, Problem> {
    valid_if(to_f64(raw)?, |x| x >= 0.0)
}

/// A finite number `>= 0`.
pub(crate) fn to_nonneg_f32(raw: &Raw) -> Result<f32, Problem> {
    valid_if(to_f32(raw)?, |x| x >= 0.0)
}

/// `true` / `false`.
pub(crate) fn to_bool(raw: &Raw) -> Result<bool, Problem> {
    match raw {
        Raw::Bool(b) => Ok(*b),
        _ => Err(Problem::Type),
    }
}

/// A non-empty string.
pub(crate) fn to_nonempty_string(raw: &Raw) -> Result<String, Problem> {
    match raw {
        Raw::Str(s) if s.is_empty() => Err(Problem::Value),
        Raw::Str(s) => Ok(s.clone()),
        _ => Err(Problem::Type),
    }
}
