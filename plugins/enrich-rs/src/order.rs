//! One event of the batch as it is being enriched, or why it failed.
//!
//! An event is not parsed into a tree: one pass over its JSON checks that it is an object and
//! notes where the few fields the steps read are (`Scan`), and the fields the steps add are
//! written as JSON text after the event's own, in its bytes as they came, into the batch's
//! packed outputs (`write_to`): no value is built or serialised per event, and the event's bytes
//! are copied once, from the packed input to the packed output. Parsing every event into a
//! `serde_json::Map` and writing the map out again cost more than the rest of the plugin, and
//! the host's handling of the batch besides (measured: docs/performance.md, "Enrichment"). An
//! event that already has a field a step adds is the exception: it goes through a tree, so that
//! the new value replaces the old one rather than follow it as a duplicate key.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::ops::Range;

/// The names of the fields the steps add (customers.rs, rates.rs).
const ADDED: [&str; 3] = ["tier", "rate", "amount_eur"];

/// How many fields the steps read (lib.rs: customer, currency, amount).
pub(crate) const READS: usize = 3;

/// An event's payload, a JSON object, borrowed from the batch, and the fields the steps have added
/// to it so far.
pub(crate) struct Order<'a> {
    /// The event's JSON text, as the batch has it.
    payload: &'a [u8],
    /// Where the values of the fields the steps read are in `payload` (JSON text).
    read: [Option<Range<usize>>; READS],
    /// The object has no field at all (`{}`).
    empty: bool,
    /// The fields appended so far, as JSON text (`,"tier":"gold"`): they go between the event's
    /// text up to its closing brace and that brace.
    appended_text: Vec<u8>,
    /// Which of `ADDED` were appended (bit `i` for `ADDED[i]`).
    appended: u8,
    /// Added values (JSON text) that must replace a field of the same name, through a tree at
    /// the end (`write_to`).
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

impl<'a> Order<'a> {
    /// Checks that `payload` is a JSON object and keeps the values of the fields named in
    /// `reads` (the last one of a name, as a JSON parser keeps).
    pub(crate) fn parse(payload: &'a [u8], reads: &[&str; READS]) -> Result<Order<'a>, Failed> {
        let Some(scan) = scan(payload, reads) else {
            return Err(Failed::permanent("payload is not a JSON object".into()));
        };
        Ok(Order {
            payload,
            read: scan.read,
            empty: scan.empty,
            appended_text: Vec::new(),
            appended: 0,
            replacing: Vec::new(),
            has_added: scan.has_added,
        })
    }

    /// The JSON text of field `reads[index]` (as given to `parse`), if the event has it.
    fn raw(&self, index: usize) -> Option<&'a [u8]> {
        let at = self.read.get(index)?.clone()?;
        Some(&self.payload[at])
    }

    /// The text of a string or number field (`reads[index]`, named `field`), as a table key or a
    /// URL part: borrowed from the event unless it has escapes.
    pub(crate) fn text(&self, index: usize, field: &str) -> Result<Cow<'a, str>, Failed> {
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
        let first = self.empty && self.appended == 0;
        let text = &mut self.appended_text;
        text.reserve(name.len() + json.len() + 4);
        text.extend_from_slice(if first { b"\"" } else { b",\"" });
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b"\":");
        text.extend_from_slice(json.as_bytes());
        self.appended |= bit;
    }

    /// Writes the enriched event's JSON text at the end of `out`: the event's own bytes, the
    /// added fields before its closing brace.
    pub(crate) fn write_to(self, out: &mut Vec<u8>) {
        if !self.replacing.is_empty() {
            return self.through_a_tree(out);
        }
        match self.payload.iter().rposition(|&b| b == b'}') {
            Some(close) if !self.appended_text.is_empty() => {
                out.extend_from_slice(&self.payload[..close]);
                out.extend_from_slice(&self.appended_text);
                out.extend_from_slice(&self.payload[close..]);
            }
            // Nothing added (or never: `parse` saw an object, which has a closing brace).
            _ => out.extend_from_slice(self.payload),
        }
    }

    /// The event with the new fields in place of its own of the same names.
    fn through_a_tree(mut self, out: &mut Vec<u8>) {
        let replacing = std::mem::take(&mut self.replacing);
        // The event with what was appended, then the replacements over it.
        let mut text = Vec::new();
        self.write_to(&mut text);
        let Ok(mut fields) = serde_json::from_slice::<Map<String, Value>>(&text) else {
            return out.extend_from_slice(&text); // never: `parse` saw an object
        };
        for (name, json) in replacing {
            // Text the steps wrote themselves: always JSON.
            let value = serde_json::from_str(&json).unwrap_or(Value::Null);
            fields.insert(name.into(), value);
        }
        // Writing a map of JSON values into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &fields);
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
