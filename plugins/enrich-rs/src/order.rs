//! One event of the batch as it is being enriched, or why it failed.
//!
//! An event is not parsed into a tree: one pass over its JSON checks that it is an object and
//! keeps the few fields the steps read (`Fields`), and the fields the steps add are written after
//! the event's own, in its bytes as they came. Parsing every event into a `serde_json::Map` and
//! writing the map out again cost more than the rest of the plugin, and the host's handling of
//! the batch besides (measured: docs/performance.md, "Enrichment"). An event that already has a
//! field a step adds is the exception: it goes through a tree, so that the new value replaces the
//! old one rather than follow it as a duplicate key.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;
use std::ops::Range;

/// The names of the fields the steps add (customers.rs, rates.rs).
const ADDED: [&str; 3] = ["tier", "rate", "amount_eur"];

/// An event's payload, a JSON object, and the fields the steps have added to it so far.
pub(crate) struct Order {
    payload: Vec<u8>,
    /// Where the values of the fields the steps read are in `payload` (JSON text).
    read: Vec<Option<Range<usize>>>,
    /// The object has no field at all (`{}`).
    empty: bool,
    /// The object already has one of the `ADDED` fields.
    has_added: bool,
    added: Vec<(&'static str, Value)>,
}

/// Why an event failed, and whether trying it again later may succeed.
#[derive(Clone)]
pub(crate) struct Failed {
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

impl Failed {
    pub(crate) fn permanent(message: String) -> Failed {
        Failed {
            message,
            retryable: false,
        }
    }

    pub(crate) fn retryable(message: String) -> Failed {
        Failed {
            message,
            retryable: true,
        }
    }
}

impl Order {
    /// Checks that `payload` is a JSON object and keeps the values of the fields named in
    /// `reads` (the last one of a name, as a JSON parser keeps).
    pub(crate) fn parse(payload: Vec<u8>, reads: &[&str]) -> Result<Order, Failed> {
        let mut de = serde_json::Deserializer::from_slice(&payload);
        let scanned = Scan {
            reads,
            payload: &payload,
        }
        .deserialize(&mut de)
        .and_then(|s| de.end().map(|()| s));
        let Ok(Some(scan)) = scanned else {
            return Err(Failed::permanent("payload is not a JSON object".into()));
        };
        Ok(Order {
            payload,
            read: scan.read,
            empty: scan.empty,
            has_added: scan.has_added,
            added: Vec::new(),
        })
    }

    /// The value of field `reads[index]` (as given to `parse`), if the event has it.
    fn value(&self, index: usize) -> Option<Value> {
        let at = self.read.get(index)?.clone()?;
        serde_json::from_slice(&self.payload[at]).ok()
    }

    /// The text of a string or number field (`reads[index]`, named `field`), as a table key or a
    /// URL part.
    pub(crate) fn text(&self, index: usize, field: &str) -> Result<String, Failed> {
        match self.value(index) {
            Some(Value::String(s)) => Ok(s),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(Failed::permanent(format!(
                "no `{field}` (a string or a number) in the event"
            ))),
        }
    }

    /// The number in field `reads[index]`, if it is one.
    pub(crate) fn number(&self, index: usize) -> Option<f64> {
        self.value(index).as_ref().and_then(Value::as_f64)
    }

    /// Adds (or replaces) field `name`, one of `ADDED`.
    pub(crate) fn add(&mut self, name: &'static str, value: Value) {
        debug_assert!(ADDED.contains(&name));
        match self.added.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.added.push((name, value)),
        }
    }

    pub(crate) fn into_payload(self) -> Vec<u8> {
        if self.added.is_empty() {
            return self.payload;
        }
        if self.has_added {
            return self.through_a_tree();
        }
        // The event's bytes up to its closing brace, then the new fields.
        let mut out = self.payload;
        let Some(close) = out.iter().rposition(|&b| b == b'}') else {
            return out; // never: `parse` saw an object
        };
        out.truncate(close);
        out.reserve(32 * self.added.len());
        let mut first = self.empty;
        for (name, value) in &self.added {
            out.extend_from_slice(if first { b"\"" } else { b",\"" });
            first = false;
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            // Writing a `Value` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, value);
        }
        out.push(b'}');
        out
    }

    /// The event with the new fields in place of its own of the same names.
    fn through_a_tree(self) -> Vec<u8> {
        let Ok(mut fields) = serde_json::from_slice::<Map<String, Value>>(&self.payload) else {
            return self.payload; // never: `parse` saw an object
        };
        for (name, value) in self.added {
            fields.insert(name.into(), value);
        }
        serde_json::to_vec(&fields).unwrap_or_default()
    }
}

/// What one pass over an event found: `None` if it is not an object.
struct Scanned {
    read: Vec<Option<Range<usize>>>,
    empty: bool,
    has_added: bool,
}

/// A field name, compared where it lies rather than copied.
struct Key<'r> {
    reads: &'r [&'r str],
}

struct KeyIs {
    /// Its index in `reads`, if the steps read it.
    read: Option<usize>,
    /// It is one of `ADDED`.
    added: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = KeyIs;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = KeyIs;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<KeyIs, E> {
        Ok(KeyIs {
            read: self.reads.iter().position(|r| *r == key),
            added: ADDED.contains(&key),
        })
    }
}

struct Scan<'r> {
    reads: &'r [&'r str],
    /// What is being read: values are found in it by address.
    payload: &'r [u8],
}

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = Option<Scanned>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = Option<Scanned>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut scanned = Scanned {
            read: vec![None; self.reads.len()],
            empty: true,
            has_added: false,
        };
        while let Some(key) = map.next_key_seed(Key { reads: self.reads })? {
            scanned.empty = false;
            scanned.has_added |= key.added;
            match key.read {
                Some(i) => {
                    // Borrowed from the payload (a slice deserializer), so its place in it.
                    let raw: &RawValue = map.next_value()?;
                    let start = raw.get().as_ptr() as usize - self.payload.as_ptr() as usize;
                    scanned.read[i] = Some(start..start + raw.get().len());
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(scanned))
    }

    // Any other JSON value is read whole (so that the payload is checked to the end) and
    // answered with `None`: not an object.
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}
