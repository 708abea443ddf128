//! Finds the line:column of a key by path, for errors detected after the key was read
//! (a key that the later `type:` does not allow, the nesterov check, missing keys).
//!
//! It re-reads the text with serde_yaml and raises an error from inside the key's own
//! deserialization, so serde_yaml attaches that key's mark.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::ctx::{Path, Seg};
use crate::node::Raw;

/// 1-based `(line, column)` of the key at `key_path` (a path ending in a key), if found.
pub(crate) fn locate_key(text: &str, key_path: &Path) -> Option<(usize, usize)> {
    if !key_path.ends_with_key() {
        return None;
    }
    let found = Cell::new(false);
    let walk = Walk {
        segs: key_path.segs(),
        found: &found,
    };
    match walk.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Err(e) if found.get() => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Descends along `segs`; the last step is the key to find.
struct Walk<'a> {
    segs: &'a [Seg],
    found: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping or list on the path")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.segs.split_first() else {
            return Ok(());
        };
        while let Some(hit) = map.next_key_seed(Probe {
            want,
            last: rest.is_empty(),
            found: self.found,
        })? {
            if hit {
                return map.next_value_seed(Walk {
                    segs: rest,
                    found: self.found,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(index), rest)) = self.segs.split_first() else {
            return Ok(());
        };
        for _ in 0..*index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Walk {
            segs: rest,
            found: self.found,
        })?;
        Ok(())
    }
}

/// Reads one key; `Ok(true)` when it is `want`, an error at the key when it is the target.
struct Probe<'a> {
    want: &'a str,
    last: bool,
    found: &'a Cell<bool>,
}

impl Probe<'_> {
    fn check<E: de::Error>(self, raw: Raw) -> Result<bool, E> {
        let hit = raw.key_text().is_some_and(|k| k == self.want);
        if hit && self.last {
            self.found.set(true);
            return Err(E::custom("found"));
        }
        Ok(hit)
    }
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar key")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(Raw::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(Raw::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<bool, E> {
        self.check(Raw::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<bool, E> {
        match i128::try_from(v) {
            Ok(n) => self.check(Raw::Int(n)),
            Err(_) => self.check(Raw::BigInt(v.to_string())),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(Raw::Str(v.to_owned()))
    }
}
