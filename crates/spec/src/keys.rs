//! Mapping keys: per-mapping key tables, unknown/duplicate/unsupported key errors, and the
//! `type:` tag of layers, losses and optimizers (which may come after the other keys).

use serde::de::{self, MapAccess};

use crate::ctx::{shown, Ctx, Path};
use crate::node::{ctx_and_path, Node, Problem, Raw, Seed};
use crate::suggest::{did_you_mean, suggest};
use crate::vocab::Vocabulary;

/// The keys valid in one kind of mapping.
#[derive(Debug)]
pub(crate) struct KeyTable {
    /// Canonical keys, in the order they are listed in messages.
    pub(crate) valid: &'static [&'static str],
    /// `(alias, canonical)` pairs.
    pub(crate) aliases: &'static [(&'static str, &'static str)],
    /// `(key, message)` for keys that are recognised but not supported yet.
    pub(crate) unsupported: &'static [(&'static str, &'static str)],
}

impl KeyTable {
    /// A table without aliases or unsupported keys.
    pub(crate) const fn plain(valid: &'static [&'static str]) -> Self {
        KeyTable {
            valid,
            aliases: &[],
            unsupported: &[],
        }
    }

    /// The keys of `tables`, each once, in order of first appearance: what a `type:`-tagged
    /// mapping may hold before its type is read. `N` is their number, checked when compiled.
    pub(crate) const fn union<const N: usize>(tables: &[&KeyTable]) -> [&'static str; N] {
        let mut out = [""; N];
        let mut len = 0;
        let mut t = 0;
        while t < tables.len() {
            let valid = tables[t].valid;
            let mut k = 0;
            while k < valid.len() {
                let mut i = 0;
                while i < len && !same(out[i], valid[k]) {
                    i += 1;
                }
                if i == len {
                    assert!(len < N, "more keys than the union's length");
                    out[len] = valid[k];
                    len += 1;
                }
                k += 1;
            }
            t += 1;
        }
        assert!(len == N, "fewer keys than the union's length");
        out
    }

    /// The canonical name of `key`, if valid here.
    fn canonical(&self, key: &str) -> Option<&'static str> {
        self.valid.iter().copied().find(|v| *v == key).or_else(|| {
            self.aliases
                .iter()
                .find(|(a, _)| *a == key)
                .map(|(_, c)| *c)
        })
    }

    /// `type, name, out (or out_features), bias`.
    pub(crate) fn listing(&self) -> String {
        let parts: Vec<String> = self
            .valid
            .iter()
            .map(|v| {
                let aliases: Vec<&str> = self
                    .aliases
                    .iter()
                    .filter(|(_, c)| c == v)
                    .map(|(a, _)| *a)
                    .collect();
                if aliases.is_empty() {
                    (*v).to_owned()
                } else {
                    format!("{v} (or {})", aliases.join(", "))
                }
            })
            .collect();
        parts.join(", ")
    }

    /// Every spelling a misspelled key could have meant.
    fn candidates(&self) -> Vec<&'static str> {
        let mut c: Vec<&'static str> = self.valid.to_vec();
        c.extend(self.aliases.iter().map(|(a, _)| *a));
        c.extend(self.unsupported.iter().map(|(k, _)| *k));
        c
    }
}

/// `a == b`, usable in a `const fn`.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() && a[i] == b[i] {
        i += 1;
    }
    i == a.len()
}

/// A key as read: its canonical name (`None` when unknown and deferred) and its spelling.
#[derive(Debug, Clone)]
pub(crate) struct KeyRead {
    /// Canonical name; `None` for an unknown key read before `type:`.
    pub(crate) name: Option<&'static str>,
    /// As written in the spec.
    pub(crate) written: String,
}

impl KeyRead {
    /// The canonical name, or `""` for a deferred unknown key.
    pub(crate) fn name(&self) -> &'static str {
        self.name.unwrap_or("")
    }
}

/// Reads the keys of one mapping, rejecting unknown, duplicate and unsupported ones.
pub(crate) struct Keys<'a> {
    ctx: &'a Ctx,
    path: Path,
    table: &'static KeyTable,
    what: String,
    seen: Vec<(&'static str, String)>,
    /// Before `type:` is known: unknown keys are deferred and every key is remembered.
    deferring: bool,
    before_type: Vec<KeyRead>,
    /// Keys valid whatever the type, not listed in messages (`inputs` of layers and nodes).
    also: &'static [&'static str],
}

impl<'a> Keys<'a> {
    /// Keys of an untagged mapping, named by its path in messages (`data`).
    pub(crate) fn new(ctx: &'a Ctx, path: &Path, table: &'static KeyTable) -> Self {
        Keys::named(ctx, path, table, path.to_string())
    }

    /// Keys of an untagged mapping that `what` names in messages ("the top-level mapping").
    pub(crate) fn named(ctx: &'a Ctx, path: &Path, table: &'static KeyTable, what: String) -> Self {
        Keys {
            ctx,
            path: path.clone(),
            table,
            what,
            seen: Vec::new(),
            deferring: false,
            before_type: Vec::new(),
            also: &[],
        }
    }

    /// Accepts `keys` too, whatever the table, without listing them.
    pub(crate) fn also(&mut self, keys: &'static [&'static str]) {
        self.also = keys;
    }

    /// The canonical name of `key`: from the table, or one of [`Keys::also`]'s.
    fn canonical(&self, key: &str) -> Option<&'static str> {
        self.table
            .canonical(key)
            .or_else(|| self.also.iter().copied().find(|k| *k == key))
    }

    /// Keys of a `type:`-tagged mapping: until [`Keys::set_type`], keys are checked against
    /// `union` (every type's keys) and unknown ones are deferred.
    pub(crate) fn tagged(ctx: &'a Ctx, path: &Path, union: &'static KeyTable) -> Self {
        let mut keys = Keys::new(ctx, path, union);
        keys.deferring = true;
        keys
    }

    /// The parse context.
    pub(crate) fn ctx(&self) -> &'a Ctx {
        self.ctx
    }

    /// The mapping's path, e.g. `model.layers[1]`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The mapping's name in messages, e.g. `model.layers[1] (relu)`.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// The next key, or `None` at the end of the mapping. A deferred unknown key (name `None`)
    /// must have its value skipped by the caller.
    pub(crate) fn next<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
    ) -> Result<Option<KeyRead>, A::Error> {
        let key = map.next_key_seed(Seed(KeyNode { keys: self }))?;
        if let (true, Some(k)) = (self.deferring, &key) {
            self.before_type.push(k.clone());
        }
        Ok(key)
    }

    /// Reads the value of the `type` key (written `written`): one entry of `types`.
    pub(crate) fn read_type<'de, A: MapAccess<'de>, T: Vocabulary>(
        &self,
        map: &mut A,
        types: &'static TypeTable<T>,
        written: &str,
    ) -> Result<T, A::Error> {
        let location = if types.say_where {
            format!(" in {}", self.path)
        } else {
            String::new()
        };
        map.next_value_seed(Seed(TypeNode {
            ctx: self.ctx,
            path: self.path.key(written),
            table: types,
            location,
        }))
    }

    /// Fixes the mapping's type: later keys are checked against `table`, and a key read
    /// earlier that `table` does not allow is an error at that key.
    pub(crate) fn set_type<E: de::Error>(
        &mut self,
        table: &'static KeyTable,
        type_name: &str,
    ) -> Result<(), E> {
        self.table = table;
        self.what = format!("{} ({type_name})", self.path);
        self.deferring = false;
        let earlier = std::mem::take(&mut self.before_type);
        for k in earlier {
            if k.name
                .is_none_or(|n| !table.valid.contains(&n) && !self.also.contains(&n))
            {
                let msg = self.unknown_message(&k.written);
                return Err(self.fail_at_key(&k.written, msg));
            }
        }
        Ok(())
    }

    /// `missing key `KEY` in WHAT`, at this mapping's own key when it has one.
    pub(crate) fn missing<E: de::Error>(&self, key: &str) -> E {
        let msg = format!("missing key `{key}` in {}", self.what);
        self.fail_here(msg)
    }

    /// An error about the whole mapping, at its own key when it has one.
    pub(crate) fn fail_here<E: de::Error>(&self, message: String) -> E {
        if self.path.ends_with_key() {
            self.ctx.fail_at_key(self.path.clone(), message)
        } else {
            self.ctx.fail(message)
        }
    }

    /// An error at key `written` of this mapping (already read).
    pub(crate) fn fail_at_key<E: de::Error>(&self, written: &str, message: String) -> E {
        self.ctx.fail_at_key(self.path.key(written), message)
    }

    fn unknown_message(&self, key: &str) -> String {
        let dym = match suggest(key, &self.table.candidates()) {
            Some(s) => format!("; did you mean `{s}`?"),
            None => ";".to_owned(),
        };
        format!(
            "unknown key `{}` in {}{dym} valid keys: {}",
            shown(key),
            self.what,
            self.table.listing()
        )
    }
}

/// A key of a mapping being read by [`Keys`].
struct KeyNode<'k, 'a> {
    keys: &'k mut Keys<'a>,
}

impl<'de> Node<'de> for KeyNode<'_, '_> {
    type Out = KeyRead;
    fn ctx(&self) -> &Ctx {
        self.keys.ctx
    }
    fn path(&self) -> &Path {
        &self.keys.path
    }
    fn expected(&self) -> String {
        format!("a key of {}", self.keys.what)
    }
    fn scalar(&mut self, raw: &Raw) -> Result<KeyRead, Problem> {
        let keys = &mut *self.keys;
        let Some(written) = raw.key_text() else {
            return Err(Problem::Bare(format!(
                "invalid key in {}: {}; valid keys: {}",
                keys.what,
                raw.describe(),
                keys.table.listing()
            )));
        };
        if let Some(name) = keys.canonical(&written) {
            if let Some((_, first)) = keys.seen.iter().find(|(n, _)| *n == name) {
                let how = if *first == written {
                    String::new()
                } else {
                    format!(" (`{}` and `{first}` are the same key)", shown(&written))
                };
                return Err(Problem::Bare(format!(
                    "duplicate key `{}` in {}{how}",
                    shown(&written),
                    keys.what
                )));
            }
            keys.seen.push((name, written.clone()));
            return Ok(KeyRead {
                name: Some(name),
                written,
            });
        }
        if let Some((_, why)) = keys.table.unsupported.iter().find(|(k, _)| *k == written) {
            return Err(Problem::Bare(format!(
                "{why}; valid keys in {}: {}",
                keys.what,
                keys.table.listing()
            )));
        }
        if keys.deferring {
            return Ok(KeyRead {
                name: None,
                written,
            });
        }
        Err(Problem::Bare(keys.unknown_message(&written)))
    }
    fn map<A: MapAccess<'de>>(self, map: A) -> Result<KeyRead, A::Error> {
        let _ = map;
        let msg = self.scalar_like_error(&Raw::Map);
        Err(self.fail(&Raw::Map, msg))
    }
    fn seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<KeyRead, A::Error> {
        let _ = seq;
        let msg = self.scalar_like_error(&Raw::Seq);
        Err(self.fail(&Raw::Seq, msg))
    }
}

impl KeyNode<'_, '_> {
    fn scalar_like_error(&self, raw: &Raw) -> Problem {
        Problem::Bare(format!(
            "invalid key in {}: {}; valid keys: {}",
            self.keys.what,
            raw.describe(),
            self.keys.table.listing()
        ))
    }
}

/// How messages speak of the `type:` vocabulary `T` of one section.
#[derive(Debug)]
pub(crate) struct TypeTable<T> {
    /// "layer", "loss", "optimizer".
    pub(crate) what: &'static str,
    /// The start of "expected" messages: "a loss mapping such as {type: cross_entropy}".
    pub(crate) example: &'static str,
    /// Whether an unknown type's message says where it is (` in model.layers[2]`).
    pub(crate) say_where: bool,
    /// The vocabulary.
    pub(crate) types: std::marker::PhantomData<fn() -> T>,
}

impl<T: Vocabulary> TypeTable<T> {
    /// What a mapping of this section is: `a loss mapping such as …; loss types: …`.
    pub(crate) fn expected(&self) -> String {
        format!("{}; {} types: {}", self.example, self.what, self.listing())
    }

    /// `mse, cross_entropy (or MSELoss, CrossEntropyLoss)`.
    pub(crate) fn listing(&self) -> String {
        let snake: Vec<&str> = T::ALL.iter().map(|t| t.name()).collect();
        let class: Vec<&str> = T::ALL
            .iter()
            .filter(|t| t.torch_name() != t.name())
            .map(|t| t.torch_name())
            .collect();
        format!("{} (or {})", snake.join(", "), class.join(", "))
    }

    /// `missing key `type` in WHAT; valid types: …`.
    pub(crate) fn missing<E: de::Error>(&self, keys: &Keys<'_>) -> E {
        keys.ctx().fail(format!(
            "missing key `type` in {}; valid types: {}",
            keys.what(),
            self.listing()
        ))
    }
}

/// The value of a `type:` key: yields the entry of the vocabulary it names.
struct TypeNode<'a, T: 'static> {
    ctx: &'a Ctx,
    /// The path of the `type` key.
    path: Path,
    /// The vocabulary.
    table: &'static TypeTable<T>,
    /// `" in model.layers[0]"` or empty, for the unknown-type message.
    location: String,
}

impl<'de, T: Vocabulary> Node<'de> for TypeNode<'_, T> {
    type Out = T;
    ctx_and_path!();
    fn expected(&self) -> String {
        format!("a {} type name: {}", self.table.what, self.table.listing())
    }
    fn scalar(&mut self, raw: &Raw) -> Result<T, Problem> {
        let Raw::Str(s) = raw else {
            return Err(Problem::Type);
        };
        if let Some(t) = T::parse(s) {
            return Ok(t);
        }
        let mut candidates: Vec<&str> = T::ALL.iter().map(|t| t.name()).collect();
        candidates.extend(T::ALL.iter().map(|t| t.torch_name()));
        let dym = did_you_mean(s, &candidates);
        let sep = if dym.is_empty() { ";" } else { "" };
        Err(Problem::Bare(format!(
            "unknown {} type `{}`{}{dym}{sep} valid: {}",
            self.table.what,
            shown(s),
            self.location,
            self.table.listing()
        )))
    }
}
