//! The envelope: the one JSON shape that filters, templates, plugins and sinks see, whatever the
//! source (DESIGN.md, "The envelope").

use serde_json::value::RawValue;
use std::fmt::Write as _;

/// Where an event sits in its source, so that the source can commit it once it is finished.
///
/// Positions of one partition are produced in increasing `offset` order; the runtime reports them
/// back as they finish (in any order) and the source commits the longest finished prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// A Kafka partition, a generation of a rotated file, ...: positions of different partitions
    /// are committed independently.
    pub partition: u32,
    /// Increasing within a partition: the value to resume after (file byte offset past the line,
    /// Kafka offset + 1, ...).
    pub offset: u64,
    /// The record's ordinal within its partition (file line number, Kafka offset), kept so that a
    /// resumed source can go on numbering where it stopped.
    pub ordinal: u64,
}

/// An event's payload: JSON when it parsed as JSON, else the text of the record.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Valid JSON, kept as text: most events are filtered on a few fields and delivered as they
    /// came, so they are never parsed into a tree on the hot path.
    Json(Box<RawValue>),
    /// Not JSON (or not valid UTF-8: then decoded lossily, and the raw bytes are in
    /// `meta.raw_base64`).
    Text(String),
}

/// The deepest an event's data may nest (objects and arrays). Deeper records are refused as
/// malformed, whatever the source's `format`: every stage must be able to read every event
/// weir accepts, and the strictest reader is serde_json's tree (templates, ordering keys, the
/// DLQ tools), which stops at 127 levels for a whole document. A DLQ record wraps the data two
/// levels down (`{"event": {"data": ...}}`), so 100 leaves room and is a round number to
/// document.
pub const MAX_DATA_DEPTH: usize = 100;

impl Payload {
    /// Decodes a record's bytes: JSON if they parse as JSON, else text. JSON nested deeper
    /// than [`MAX_DATA_DEPTH`] is kept as text (its exact characters, so that a DLQ record
    /// holding it stays readable) with [`Problem::TooDeep`].
    pub fn decode(bytes: &[u8]) -> Decoded {
        match std::str::from_utf8(bytes) {
            Ok(text) => match serde_json::from_str::<Box<RawValue>>(text) {
                Ok(raw) if nests_deeper_than(raw.get(), MAX_DATA_DEPTH) => Decoded {
                    payload: Payload::Text(text.to_owned()),
                    problem: Some(Problem::TooDeep),
                },
                Ok(raw) => Decoded {
                    payload: Payload::Json(raw),
                    problem: None,
                },
                Err(e) => Decoded {
                    payload: Payload::Text(text.to_owned()),
                    problem: Some(Problem::NotJson(format!("not valid JSON: {e}"))),
                },
            },
            Err(e) => Decoded {
                payload: Payload::Text(String::from_utf8_lossy(bytes).into_owned()),
                problem: Some(Problem::NotUtf8(format!("not valid UTF-8: {e}"))),
            },
        }
    }

    /// The payload as JSON text (a string payload becomes a JSON string).
    pub fn write_json(&self, out: &mut String) {
        match self {
            Payload::Json(raw) => out.push_str(raw.get()),
            Payload::Text(text) => push_json_string(out, text),
        }
    }

    /// The payload as a JSON tree, for the few places that need one (templates, ordering keys).
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Payload::Json(raw) => {
                serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Null)
            }
            Payload::Text(text) => serde_json::Value::String(text.clone()),
        }
    }
}

/// The result of [`Payload::decode`]: the payload, and why it is not JSON if it is not.
pub struct Decoded {
    pub payload: Payload,
    pub problem: Option<Problem>,
}

/// Why a record's bytes did not become JSON data.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// Not JSON (or not UTF-8): string data, which `format = "json"` refuses.
    NotJson(String),
    /// Not UTF-8: decoded lossily to string data (the source keeps the exact bytes).
    NotUtf8(String),
    /// JSON nested deeper than [`MAX_DATA_DEPTH`]: refused whatever the format, since no
    /// filter, template or DLQ tool could read it (it would otherwise be counted as
    /// filtered, or delivered with templates seeing `null`).
    TooDeep,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NotJson(why) | Problem::NotUtf8(why) => f.write_str(why),
            Problem::TooDeep => write!(
                f,
                "JSON nested deeper than {MAX_DATA_DEPTH} levels (weir's limit for an event's data)"
            ),
        }
    }
}

/// Whether valid JSON `text` nests objects and arrays deeper than `limit`.
///
/// Runs for every JSON record, so it first counts brackets: text with no more than `limit`
/// opening brackets cannot nest deeper, and only the rare record with many brackets is
/// walked, with strings skipped. The count adds `u8`s over chunks of 255 bytes so that the
/// compiler vectorizes it: ~30 ns for a 260-byte event against ~900 ns for the JSON parse
/// before it (a `usize` sum of the same test took ~300 ns).
pub fn nests_deeper_than(text: &str, limit: usize) -> bool {
    let b = text.as_bytes();
    let opening: usize = b
        .chunks(255)
        .map(|chunk| {
            let n = chunk
                .iter()
                .fold(0u8, |n, &c| n + u8::from(c == b'[' || c == b'{'));
            usize::from(n)
        })
        .sum();
    if opening <= limit {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &c in b {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The `meta` key of an event's correlation id.
pub const CORRELATION_ID: &str = "correlation_id";

/// One event on its way through a pipeline.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Stable across re-reads: `path:line` for files, `topic/partition/offset` for Kafka.
    pub id: String,
    /// The kind of source: "file", "kafka", "sqs".
    pub source: &'static str,
    /// The ordering key, if the source or the pipeline gives one.
    pub key: Option<String>,
    /// RFC 3339: the source's timestamp, else the ingestion time.
    pub time: String,
    /// RFC 3339: when weir read the event (`<weir.event.ingestion-time>`; not part of the JSON).
    pub received_at: String,
    pub data: Payload,
    /// Source-specific fields (file path and line, Kafka topic/partition/offset/headers).
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl Envelope {
    /// The id that follows this event through logs, plugins and sink headers: `meta.correlation_id`
    /// (set from the event by `[pipeline] correlation_id`), else the event's own id, which is
    /// unique and the same every time the event is read.
    pub fn correlation_id(&self) -> &str {
        match self.meta.get(CORRELATION_ID) {
            Some(serde_json::Value::String(s)) => s,
            _ => &self.id,
        }
    }

    /// Reads back an envelope written by [`Envelope::to_json`] (a DLQ record's `event`), for
    /// `weir dlq redrive`.
    pub fn from_json(v: &serde_json::Value) -> Result<Envelope, String> {
        let text = |key: &str| -> Result<String, String> {
            match v.get(key) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                _ => Err(format!("`{key}` is missing or not a string")),
            }
        };
        let data = match v.get("data") {
            None => return Err("`data` is missing".into()),
            // A text record was written as a JSON string; sinks write it back the same way.
            Some(serde_json::Value::String(s)) => Payload::Text(s.clone()),
            Some(other) => {
                Payload::Json(RawValue::from_string(other.to_string()).map_err(|e| e.to_string())?)
            }
        };
        let source: &'static str = match v.get("source").and_then(|s| s.as_str()) {
            Some("file") => "file",
            Some("kafka") => "kafka",
            Some("sqs") => "sqs",
            _ => "redrive",
        };
        Ok(Envelope {
            id: text("id")?,
            source,
            key: v.get("key").and_then(|k| k.as_str()).map(str::to_owned),
            time: text("time")?,
            received_at: now_rfc3339(),
            data,
            meta: match v.get("meta") {
                Some(serde_json::Value::Object(m)) => m.clone(),
                _ => serde_json::Map::new(),
            },
        })
    }

    /// The envelope as JSON text, the form that patterns and templates address
    /// (`{"id", "source", "key", "time", "data", "meta"}`). Built by hand so that a JSON payload is
    /// copied as text rather than parsed and re-serialized.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128 + self.id.len() + self.data_len_hint());
        self.write_json(&mut out);
        out
    }

    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"id\":");
        push_json_string(out, &self.id);
        out.push_str(",\"source\":");
        push_json_string(out, self.source);
        out.push_str(",\"key\":");
        match &self.key {
            Some(k) => push_json_string(out, k),
            None => out.push_str("null"),
        }
        out.push_str(",\"time\":");
        push_json_string(out, &self.time);
        out.push_str(",\"data\":");
        self.data.write_json(out);
        out.push_str(",\"meta\":{");
        for (i, (k, v)) in self.meta.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(out, k);
            out.push(':');
            // `Display` of a JSON value writes compact JSON without an intermediate String.
            let _ = write!(out, "{v}");
        }
        out.push_str("}}");
    }

    fn data_len_hint(&self) -> usize {
        match &self.data {
            Payload::Json(raw) => raw.get().len(),
            Payload::Text(t) => t.len() + 2,
        }
    }
}

/// Appends `s` as a JSON string literal (escaped as serde_json does), without allocating: this
/// runs for several fields of every event.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    // Most strings need no escaping: one vectorizable scan, one copy.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => {
                out.push_str(&s[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        // Escaped bytes are ASCII, so `i` is a character boundary.
        out.push_str(&s[start..i]);
        out.push_str(escaped);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Now, in RFC 3339 with millisecond precision and a `Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(data: &[u8]) -> Envelope {
        Envelope {
            id: "in.jsonl:1".into(),
            source: "file",
            key: None,
            time: "2026-11-22T10:00:00.000Z".into(),
            received_at: "2026-11-22T10:00:00.000Z".into(),
            data: Payload::decode(data).payload,
            meta: serde_json::Map::new(),
        }
    }

    #[test]
    fn json_payload_is_kept_as_text() {
        let e = envelope(br#"{"b": 1.50, "a": [1,2]}"#);
        assert_eq!(
            e.to_json(),
            r#"{"id":"in.jsonl:1","source":"file","key":null,"time":"2026-11-22T10:00:00.000Z","data":{"b": 1.50, "a": [1,2]},"meta":{}}"#
        );
    }

    #[test]
    fn text_and_invalid_utf8_become_strings() {
        let d = Payload::decode(b"hello \"world\"");
        assert!(d.problem.unwrap().to_string().starts_with("not valid JSON"));
        let mut s = String::new();
        d.payload.write_json(&mut s);
        assert_eq!(s, r#""hello \"world\"""#);

        let d = Payload::decode(b"caf\xe9");
        assert!(
            d.problem
                .unwrap()
                .to_string()
                .starts_with("not valid UTF-8")
        );
        assert!(matches!(d.payload, Payload::Text(ref t) if t == "caf\u{fffd}"));
    }

    #[test]
    fn data_nested_too_deep_is_kept_as_text_with_the_reason() {
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let ok = Payload::decode(nest(MAX_DATA_DEPTH).as_bytes());
        assert!(ok.problem.is_none());
        assert!(matches!(ok.payload, Payload::Json(_)));
        let deep = nest(MAX_DATA_DEPTH + 1);
        let d = Payload::decode(deep.as_bytes());
        assert_eq!(d.problem, Some(Problem::TooDeep));
        assert!(matches!(d.payload, Payload::Text(ref t) if *t == deep));
        // Brackets inside strings do not count; many brackets side by side are not depth.
        let quoted = format!(
            r#"{{"a": "{}", "b": [{}]}}"#,
            "[".repeat(500),
            "[],".repeat(300) + "[]"
        );
        assert!(Payload::decode(quoted.as_bytes()).problem.is_none());
        let escaped = format!(r#"{{"a": "\"{}"}}"#, "{".repeat(200));
        assert!(!nests_deeper_than(&escaped, 10));
        // Every tree serde_json can read is within the limit, with room for a DLQ record.
        assert!(
            serde_json::from_str::<serde_json::Value>(&format!(
                r#"{{"event": {{"data": {}}}}}"#,
                nest(MAX_DATA_DEPTH)
            ))
            .is_ok()
        );
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for s in [
            "plain",
            "quo\"te",
            "back\\slash",
            "nl\n cr\r tab\t",
            "ctl\u{1}\u{8}\u{c}\u{1f}",
            "ünïcødé ✓",
            "",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn envelope_json_parses_back() {
        let mut e = envelope(b"plain text");
        e.key = Some("k\n1".into());
        e.meta.insert("line".into(), 7.into());
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["data"], "plain text");
        assert_eq!(v["key"], "k\n1");
        assert_eq!(v["meta"]["line"], 7);
    }
}
