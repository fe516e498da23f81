//! One event of the batch as it is being enriched, or why it failed.
//!
//! An event is not parsed into a tree: one pass over its JSON checks that it is an object and
//! notes where the few fields the steps read are (`Scan`), and the fields the steps add are
//! written as JSON text straight after the event's own, in its bytes as they came: no value is
//! built, copied or serialised per event. Parsing every event into a `serde_json::Map` and
//! writing the map out again cost more than the rest of the plugin, and the host's handling of
//! the batch besides (measured: docs/performance.md, "Enrichment"). An event that already has a
//! field a step adds is the exception: it goes through a tree, so that the new value replaces the
//! old one rather than follow it as a duplicate key.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::ops::Range;

/// The names of the fields the steps add (customers.rs, rates.rs).
const ADDED: [&str; 3] = ["tier", "rate", "amount_eur"];

/// How many fields the steps read (lib.rs: customer, currency, amount).
pub(crate) const READS: usize = 3;

/// An event's payload, a JSON object, and the fields the steps have added to it so far.
pub(crate) struct Order {
    /// The event's JSON text; once a field was appended, without its closing brace (`open`).
    payload: Vec<u8>,
    /// Where the values of the fields the steps read are in `payload` (JSON text).
    read: [Option<Range<usize>>; READS],
    /// The object has no field at all (`{}`).
    empty: bool,
    /// Fields were appended to `payload`, whose closing brace is yet to be written.
    open: bool,
    /// Which of `ADDED` were appended (bit `i` for `ADDED[i]`).
    appended: u8,
    /// Added values (JSON text) that must replace a field of the same name, through a tree at
    /// the end (`into_payload`).
    replacing: Vec<(&'static str, String)>,
    /// The object already has one of the `ADDED` fields (or a step added one twice): every
    /// later `add` goes to `replacing`.
    has_added: bool,
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
    pub(crate) fn parse(payload: Vec<u8>, reads: &[&str; READS]) -> Result<Order, Failed> {
        let Some(scan) = scan(&payload, reads) else {
            return Err(Failed::permanent("payload is not a JSON object".into()));
        };
        Ok(Order {
            payload,
            read: scan.read,
            empty: scan.empty,
            open: false,
            appended: 0,
            replacing: Vec::new(),
            has_added: scan.has_added,
        })
    }

    /// The JSON text of field `reads[index]` (as given to `parse`), if the event has it.
    fn raw(&self, index: usize) -> Option<&[u8]> {
        let at = self.read.get(index)?.clone()?;
        Some(&self.payload[at])
    }

    /// The text of a string or number field (`reads[index]`, named `field`), as a table key or a
    /// URL part: borrowed from the event unless it has escapes.
    pub(crate) fn text(&self, index: usize, field: &str) -> Result<Cow<'_, str>, Failed> {
        let missing =
            || Failed::permanent(format!("no `{field}` (a string or a number) in the event"));
        let raw = self.raw(index).ok_or_else(missing)?;
        if let Ok(s) = serde_json::from_slice::<&str>(raw) {
            return Ok(Cow::Borrowed(s));
        }
        match serde_json::from_slice::<Value>(raw) {
            Ok(Value::String(s)) => Ok(Cow::Owned(s)),
            Ok(Value::Number(n)) => Ok(Cow::Owned(n.to_string())),
            _ => Err(missing()),
        }
    }

    /// The number in field `reads[index]`, if it is one.
    pub(crate) fn number(&self, index: usize) -> Option<f64> {
        serde_json::from_slice::<f64>(self.raw(index)?).ok()
    }

    /// Adds (or replaces) field `name`, one of `ADDED`, with `json` (JSON text) as its value.
    pub(crate) fn add(&mut self, name: &'static str, json: &str) {
        let Some(bit) = ADDED.iter().position(|n| *n == name) else {
            debug_assert!(false, "{name} is not one of ADDED");
            return;
        };
        let bit = 1u8 << bit;
        if self.has_added || self.appended & bit != 0 {
            // Through a tree at the end; the later value of a name wins.
            self.has_added = true;
            self.replacing.retain(|(n, _)| *n != name);
            self.replacing.push((name, json.to_owned()));
            return;
        }
        if !self.open {
            // The event's bytes up to its closing brace; the new fields follow.
            let Some(close) = self.payload.iter().rposition(|&b| b == b'}') else {
                return; // never: `parse` saw an object
            };
            self.payload.truncate(close);
            self.payload.reserve(48);
            self.open = true;
        }
        let first = self.empty && self.appended == 0;
        self.payload
            .extend_from_slice(if first { b"\"" } else { b",\"" });
        self.payload.extend_from_slice(name.as_bytes());
        self.payload.extend_from_slice(b"\":");
        self.payload.extend_from_slice(json.as_bytes());
        self.appended |= bit;
    }

    pub(crate) fn into_payload(mut self) -> Vec<u8> {
        if self.open {
            self.payload.push(b'}');
        }
        if self.replacing.is_empty() {
            return self.payload;
        }
        self.through_a_tree()
    }

    /// The event with the new fields in place of its own of the same names.
    fn through_a_tree(self) -> Vec<u8> {
        let Ok(mut fields) = serde_json::from_slice::<Map<String, Value>>(&self.payload) else {
            return self.payload; // never: `parse` saw an object
        };
        for (name, json) in self.replacing {
            // Text the steps wrote themselves: always JSON.
            let value = serde_json::from_str(&json).unwrap_or(Value::Null);
            fields.insert(name.into(), value);
        }
        serde_json::to_vec(&fields).unwrap_or_default()
    }
}

/// One pass over `json`: whether it is an object, and where the values of the fields named in
/// `reads` are (the last one of a name, as a JSON parser keeps). `None` if it is not an object
/// (or not JSON). Also used on a lookup's row (customers.rs).
pub(crate) fn scan<const N: usize>(json: &[u8], reads: &[&str; N]) -> Option<Scanned<N>> {
    let mut scanned = Scanned {
        read: [const { None }; N],
        empty: true,
        has_added: false,
    };
    let is_object = weir_pattern::object_fields(json, MAX_DEPTH, |key, escaped, value| {
        scanned.empty = false;
        // A key with escapes is compared decoded (rare: names are plain text).
        let decoded: String;
        let key: &[u8] = if escaped {
            decoded = serde_json::from_slice(&json[key.start - 1..key.end + 1]).unwrap_or_default();
            decoded.as_bytes()
        } else {
            &json[key]
        };
        scanned.has_added |= ADDED.iter().any(|a| a.as_bytes() == key);
        if let Some(i) = reads.iter().position(|r| r.as_bytes() == key) {
            scanned.read[i] = Some(value);
        }
    })?;
    is_object.then_some(scanned)
}

/// The deepest an event may nest: weir's own bound on events (event.rs, `MAX_DATA_DEPTH`).
const MAX_DEPTH: usize = 100;

/// What one pass over an event found.
pub(crate) struct Scanned<const N: usize> {
    pub(crate) read: [Option<Range<usize>>; N],
    empty: bool,
    has_added: bool,
}
