//! The envelope: the one JSON shape that filters, templates, plugins and sinks see, whatever the
//! source (DESIGN.md, "The envelope").

use serde_json::value::RawValue;
use std::borrow::Cow;
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
    Json(JsonText),
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
pub(crate) const MAX_DATA_DEPTH: usize = 100;

impl Payload {
    /// Decodes a record's bytes: JSON if they parse as JSON, else text. JSON nested deeper
    /// than [`MAX_DATA_DEPTH`] is kept as text (its exact characters, so that a DLQ record
    /// holding it stays readable) with [`Problem::TooDeep`].
    pub fn decode(bytes: &[u8]) -> Decoded {
        match std::str::from_utf8(bytes) {
            Ok(text) => match JsonText::parse(text) {
                Some(json) => Decoded {
                    payload: Payload::Json(json),
                    problem: None,
                },
                // Not JSON, or too deep: serde_json says which, and what is wrong.
                None => Self::decode_rejected(text),
            },
            Err(e) => Decoded {
                payload: Payload::Text(String::from_utf8_lossy(bytes).into_owned()),
                problem: Some(Problem::NotUtf8(format!("not valid UTF-8: {e}"))),
            },
        }
    }

    /// A record's text that `JsonText::parse` refused.
    fn decode_rejected(text: &str) -> Decoded {
        match serde_json::from_str::<Box<RawValue>>(text) {
            Ok(raw) if nests_deeper_than(raw.get(), MAX_DATA_DEPTH) => Decoded {
                payload: Payload::Text(text.to_owned()),
                problem: Some(Problem::TooDeep),
            },
            // Never, while the two agree (a test holds them to it); serde_json is the
            // reference.
            Ok(raw) => Decoded {
                payload: Payload::Json(raw.into()),
                problem: None,
            },
            Err(e) => Decoded {
                payload: Payload::Text(text.to_owned()),
                problem: Some(Problem::NotJson(format!("not valid JSON: {e}"))),
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

/// One JSON value as text, known to be valid (and at most [`MAX_DATA_DEPTH`] deep): checked
/// once, when its record was decoded. serde_json's `RawValue` is the same idea, but one can
/// only be made by parsing the text with serde_json, which costs four times weir's own check
/// (`weir_pattern::is_json`, the event scanner's, tested against serde_json) on every record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(Box<str>);

impl JsonText {
    /// `text` without the whitespace around it, if it is one JSON value nesting at most
    /// [`MAX_DATA_DEPTH`] levels.
    pub fn parse(text: &str) -> Option<JsonText> {
        weir_pattern::is_json(text.as_bytes(), MAX_DATA_DEPTH)
            .then(|| JsonText(text.trim_matches(is_json_whitespace).into()))
    }

    /// [`JsonText::parse`] of text the caller owns: valid JSON without whitespace around it
    /// keeps its allocation (a plugin's output, lifted out of Wasm, is not copied again). The
    /// bytes come back when they are not UTF-8 JSON.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<JsonText, Vec<u8>> {
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return Err(e.into_bytes()),
        };
        if !weir_pattern::is_json(text.as_bytes(), MAX_DATA_DEPTH) {
            return Err(text.into_bytes());
        }
        let trimmed = text.trim_matches(is_json_whitespace);
        if trimmed.len() == text.len() {
            Ok(JsonText(text.into_boxed_str()))
        } else {
            Ok(JsonText(trimmed.into()))
        }
    }

    /// [`JsonText::from_bytes`] of `bytes` that may be `self`, an object, with fields appended
    /// before its closing brace (what an enrichment plugin returns): then only what was appended
    /// is read (`weir_pattern::object_tail`), since the rest was checked when this event was
    /// decoded. Anything else is checked whole. Checking an enriched event whole took about 1,200
    /// instructions, its appended tail about 270 (docs/performance.md, "Enrichment, fifth pass").
    pub fn extended(&self, bytes: Vec<u8>) -> Result<JsonText, Vec<u8>> {
        let text = self.0.as_bytes();
        // Without its closing brace: a checked object ends with one (it is trimmed).
        let Some(open) = text
            .strip_suffix(b"}")
            .filter(|_| text.first() == Some(&b'{'))
        else {
            return JsonText::from_bytes(bytes);
        };
        let appended = match bytes.strip_prefix(open) {
            // Whitespace after the brace is trimmed by `from_bytes`.
            Some(tail) if bytes.last() == Some(&b'}') => tail,
            _ => return JsonText::from_bytes(bytes),
        };
        let first = open.trim_ascii_end().ends_with(b"{");
        if !weir_pattern::object_tail(appended, first, MAX_DATA_DEPTH) {
            return Err(bytes);
        }
        // The scanner does not check UTF-8 inside strings.
        String::from_utf8(bytes)
            .map(|text| JsonText(text.into_boxed_str()))
            .map_err(|e| e.into_bytes())
    }

    /// `null`.
    pub fn null() -> JsonText {
        JsonText("null".into())
    }

    pub fn get(&self) -> &str {
        &self.0
    }
}

/// serde_json checked it already (a record read back from the DLQ).
impl From<Box<RawValue>> for JsonText {
    fn from(raw: Box<RawValue>) -> Self {
        JsonText(raw.into())
    }
}

fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
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
pub(crate) fn nests_deeper_than(text: &str, limit: usize) -> bool {
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
pub(crate) const CORRELATION_ID: &str = "correlation_id";

/// The `meta` key of a record's exact bytes when they are not UTF-8 (base64): `data` holds them
/// decoded lossily.
pub(crate) const RAW_BASE64: &str = "raw_base64";

/// The `meta` key of a Kafka record key's exact bytes when they are not UTF-8 (base64): `key`
/// holds them decoded lossily.
pub(crate) const KEY_BASE64: &str = "key_base64";

/// The `meta` key set (to `true`) on a Kafka record that has no value, a tombstone: its `data` is
/// `null`, like a record whose value is the JSON `null`, and this tells them apart.
pub(crate) const TOMBSTONE: &str = "tombstone";

/// One event on its way through a pipeline.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Stable across re-reads: `path:line` for files, `topic/partition/offset` for Kafka.
    pub id: String,
    /// The kind of source, as registered in `sources!` ("file", "kafka", "sqs", "http", ...).
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

    /// The bytes `encoding = "data"` writes: the record's value exactly as it came while no
    /// stage changed it, else the payload as it is now (JSON as text, a string payload as its
    /// text). `None`: no value at all, a Kafka tombstone whose `data` is still `null`.
    ///
    /// Nothing is copied or kept beside the payload for the usual record, whose payload is its
    /// bytes already: only a record that is not UTF-8 reads its exact bytes back from
    /// `meta.raw_base64`, and only while its `data` is still their lossy decoding.
    pub fn data_bytes(&self) -> Option<Cow<'_, [u8]>> {
        match &self.data {
            Payload::Json(raw) => {
                let text = raw.get();
                if text == "null"
                    && self.meta.get(TOMBSTONE) == Some(&serde_json::Value::Bool(true))
                {
                    return None;
                }
                Some(Cow::Borrowed(text.as_bytes()))
            }
            Payload::Text(text) => Some(match self.exact_bytes(RAW_BASE64, text) {
                Some(bytes) => Cow::Owned(bytes),
                None => Cow::Borrowed(text.as_bytes()),
            }),
        }
    }

    /// The key's bytes: the record key exactly as it came (`meta.key_base64`) while `key` is
    /// still its lossy decoding, else the key's text.
    pub fn key_bytes(&self) -> Option<Cow<'_, [u8]>> {
        let key = self.key.as_deref()?;
        Some(match self.exact_bytes(KEY_BASE64, key) {
            Some(bytes) => Cow::Owned(bytes),
            None => Cow::Borrowed(key.as_bytes()),
        })
    }

    /// The bytes kept in base64 at `meta[name]`, if they are what `decoded` was decoded from
    /// (a stage that changed the value or key changed `decoded`, and the bytes are not its).
    fn exact_bytes(&self, name: &str, decoded: &str) -> Option<Vec<u8>> {
        use base64::Engine;
        let serde_json::Value::String(b64) = self.meta.get(name)? else {
            return None;
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        (String::from_utf8_lossy(&bytes) == decoded).then_some(bytes)
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
pub(crate) fn push_json_string(out: &mut String, s: &str) {
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
pub(crate) fn now_rfc3339() -> String {
    rfc3339_millis(chrono::Utc::now())
}

/// `t` in RFC 3339 with millisecond precision and a `Z` (`2026-12-07T01:02:03.456Z`), as
/// chrono's `to_rfc3339_opts(Millis, true)` writes it. By hand because sources stamp every
/// event with a time (a broker's publication time), and chrono's general formatter costs ten
/// times this; years outside 0..=9999 and leap seconds go to chrono.
pub(crate) fn rfc3339_millis(t: chrono::DateTime<chrono::Utc>) -> String {
    let secs = t.timestamp();
    let nanos = t.timestamp_subsec_nanos();
    let days = secs.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    }
    let second_of_day = secs.rem_euclid(86_400) as u32;
    let mut text = *b"0000-00-00T00:00:00.000Z";
    for (at, width, value) in [
        (0, 4, year as u32),
        (5, 2, month),
        (8, 2, day),
        (11, 2, second_of_day / 3600),
        (14, 2, second_of_day / 60 % 60),
        (17, 2, second_of_day % 60),
        (20, 3, nanos / 1_000_000),
    ] {
        let mut v = value;
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    // ASCII digits and separators only: always UTF-8.
    String::from_utf8(text.to_vec()).unwrap_or_default()
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], from March
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Bytes as `weir dry-run` shows them, and as sources put binary values in `meta`: UTF-8 as a
/// string, others as `{"base64": "..."}`.
pub(crate) fn preview_bytes(bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            serde_json::json!({ "base64": b64 })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn an_extended_object_is_checked_by_what_was_appended_and_agrees_with_a_whole_check() {
        let bases = [r#"{"a":1}"#, "{}", r#"{"a":{"b":[1]} }"#, "[1]", r#""s""#];
        let outputs: [&[u8]; 12] = [
            br#"{"a":1,"t":"gold"}"#,
            br#"{"a":1}"#,
            br#"{"a":1,"t":}"#,
            br#"{"a":1,"t":"gold"} "#,
            br#"{"t":"gold"}"#,
            br#"{"a":{"b":[1]} ,"t":[{"u":null}]}"#,
            b"{\"a\":1,\"t\":\"\xff\"}",
            br#"{"a":1,"t":"gold",}"#,
            br#"[1,2]"#,
            br#"{"a":2,"t":1}"#,
            br#"{}"#,
            b"",
        ];
        for base in bases {
            let base = JsonText::parse(base).expect("JSON");
            for output in outputs {
                assert_eq!(
                    base.extended(output.to_vec()),
                    JsonText::from_bytes(output.to_vec()),
                    "{} + {:?}",
                    base.get(),
                    String::from_utf8_lossy(output)
                );
            }
        }
        // Appended values past the depth bound are refused as a whole check refuses them.
        let base = JsonText::parse(r#"{"a":1}"#).expect("JSON");
        let deep = format!(
            r#"{{"a":1,"t":{}{}}}"#,
            "[".repeat(MAX_DATA_DEPTH),
            "]".repeat(MAX_DATA_DEPTH)
        );
        assert!(base.extended(deep.clone().into_bytes()).is_err());
        assert!(JsonText::from_bytes(deep.into_bytes()).is_err());
    }

    #[test]
    fn rfc3339_millis_writes_what_chrono_writes() {
        use chrono::{DateTime, SecondsFormat, Utc};
        let chrono = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        // A spread of instants from 1970 to 9999 (a multiplicative walk), their millisecond
        // edges, and the far ends.
        let mut ms: i64 = 1;
        let mut checked = 0;
        while ms < 253_402_300_799_999 {
            for m in [ms, ms - 1, ms / 1000 * 1000, ms / 1000 * 1000 + 999] {
                let t = DateTime::from_timestamp_millis(m).unwrap();
                assert_eq!(rfc3339_millis(t), chrono(t), "{m}");
                checked += 1;
            }
            ms = ms * 7 / 5 + 13;
        }
        assert!(checked > 300);
        for t in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::from_timestamp(-1, 5_000_000).unwrap(),
            DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(), // a leap second
        ] {
            assert_eq!(rfc3339_millis(t), chrono(t));
        }
    }

    /// An event of a file source, for tests.
    pub(crate) fn envelope(data: &[u8]) -> Envelope {
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

    fn with_meta(data: &[u8], meta: serde_json::Value) -> Envelope {
        let mut e = envelope(data);
        e.meta = meta.as_object().unwrap().clone();
        e
    }

    #[test]
    fn data_bytes_are_the_record_as_it_came() {
        let bytes = |e: &Envelope| e.data_bytes().map(|b| b.into_owned());
        // JSON as it came, text as its text (not a JSON string), an empty value empty.
        for data in [
            &br#"{"b": 1.50}"#[..],
            b"not json",
            b"",
            br#""a JSON string""#,
        ] {
            assert_eq!(bytes(&envelope(data)), Some(data.to_vec()));
        }
        // A tombstone has no value while its data is still `null`; a `null` value is `null`.
        let tombstone = with_meta(b"null", serde_json::json!({"tombstone": true}));
        assert_eq!(bytes(&tombstone), None);
        assert_eq!(bytes(&envelope(b"null")), Some(b"null".to_vec()));
        let mut changed = tombstone.clone();
        changed.data = Payload::decode(b"{}").payload;
        assert_eq!(bytes(&changed), Some(b"{}".to_vec()));
        // Bytes that are not UTF-8 come back from `meta.raw_base64` while `data` is still
        // their lossy decoding.
        let raw = b"caf\xe9".to_vec();
        let mut e = with_meta(&raw, serde_json::json!({"raw_base64": "Y2Fm6Q=="}));
        assert_eq!(bytes(&e), Some(raw));
        e.data = Payload::Text("cafe".into());
        assert_eq!(bytes(&e), Some(b"cafe".to_vec()));
    }

    #[test]
    fn key_bytes_are_the_record_key_while_it_is_the_key() {
        let mut e = with_meta(b"{}", serde_json::json!({"key_base64": "/wE="}));
        e.key = Some(String::from_utf8_lossy(b"\xff\x01").into_owned());
        assert_eq!(e.key_bytes().as_deref(), Some(&b"\xff\x01"[..]));
        e.key = Some("other".into());
        assert_eq!(e.key_bytes().as_deref(), Some(&b"other"[..]));
        e.key = None;
        assert_eq!(e.key_bytes(), None);
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
