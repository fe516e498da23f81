//! The dead-letter record: what a pipeline writes to its dead-letter queue for an event that
//! failed, and what `weir dlq` (inspect, redrive, purge, export) reads back (DESIGN.md):
//!
//! ```text
//! {"event": <the event as first read>, "error": <why it failed>, "pipeline": "<name>"}
//! ```
//!
//! and, in a record the DLQ fallback cut to fit, a last `"cut"` (what of the payload was cut,
//! and where the whole record is).
//!
//! Other tools read these files, so the bytes are part of weir's interface: the fields in this
//! order, strings escaped as serde_json escapes them, the event's JSON payload copied as it came
//! (written raw through a [`RawValue`], never parsed into a tree), and the text of a record that
//! was not JSON marked in `meta.text`. Every record an earlier weir wrote has the same fields
//! (without `meta.text` and `cut`, which came later) and reads back; fields a hand-made record
//! leaves out take defaults.

use crate::event::{Envelope, Payload};
use serde::de::Deserializer;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The `meta` key that marks, in a dead-letter record only, an event whose `data` string is the
/// text of a record that was not JSON (rather than a JSON string), so that a redrive writes it
/// back as it came.
pub(crate) const TEXT: &str = "text";

/// The `meta` key in which `weir dlq redrive` hands a redriven event its previous DLQ `error`, so
/// that failing again continues that history rather than starting a new one. Plugins see it (a
/// redriven event is one that failed before); the record's `event` leaves it out.
pub(crate) const REDRIVE_META: &str = "redrive";

/// One line of a dead-letter queue. Borrows what it is written from; read back, it owns its
/// fields (`DlqRecord<'static>`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DlqRecord<'a> {
    pub event: RecordedEvent<'a>,
    #[serde(default)]
    pub error: Cow<'a, Failure>,
    /// The pipeline that wrote it (a DLQ file may be shared); always written, and a record that
    /// does not say belongs to every pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<Cow<'a, str>>,
    /// Set by the DLQ fallback only: the payload was cut for the DLQ to take the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
}

impl<'a> DlqRecord<'a> {
    /// The record of `event` (as its source produced it), failed in `pipeline` with `failure`.
    /// A redriven event's record keeps the event as first read and continues its failure
    /// history ([`Failure::continuing`]).
    pub(crate) fn new(pipeline: &'a str, event: &'a Envelope, failure: &'a Failure) -> Self {
        let error = match event.meta.contains_key(REDRIVE_META) {
            false => Cow::Borrowed(failure),
            true => Cow::Owned(failure.continuing(event)),
        };
        DlqRecord {
            event: RecordedEvent::of(event),
            error,
            pipeline: Some(Cow::Borrowed(pipeline)),
            cut: None,
        }
    }

    /// The record as one line of JSON (without the newline).
    pub(crate) fn to_json(&self) -> String {
        // Cannot fail: every map key is a string, and no field's serialization has an error
        // of its own.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// This record with its event's payload cut to `kept` (as text), saying so in `cut`.
    pub(crate) fn cut_to(&self, kept: &str, cut: Cut) -> DlqRecord<'_> {
        let event = &self.event;
        DlqRecord {
            event: RecordedEvent {
                id: Cow::Borrowed(&event.id),
                source: Cow::Borrowed(&event.source),
                key: event.key.as_deref().map(Cow::Borrowed),
                time: Cow::Borrowed(&event.time),
                data: Cow::Owned(Payload::Text(kept.to_owned())),
                meta: Cow::Borrowed(&event.meta),
            },
            error: Cow::Borrowed(&self.error),
            pipeline: self.pipeline.as_deref().map(Cow::Borrowed),
            cut: Some(cut),
        }
    }

    /// The event to run again (`weir dlq redrive`), as first read, with its record's `error` in
    /// `meta.redrive`. `source` is the envelope's source label: the kind that
    /// [`RecordedEvent::source`] names, if weir knows it (the caller asks the source registry).
    pub(crate) fn redriven(self, source: &'static str) -> Envelope {
        let error = serde_json::to_value(&*self.error).unwrap_or_default();
        let mut event = self.event.into_envelope(source);
        event.meta.insert(REDRIVE_META.into(), error);
        event
    }
}

/// The text of a record line's `event` exactly as it is written there (not re-serialized: key
/// order and numbers stay as they were), for `weir dlq export --events`.
pub(crate) fn event_text(line: &str) -> Option<&str> {
    #[derive(Deserialize)]
    struct EventOnly<'a> {
        #[serde(borrow)]
        event: &'a RawValue,
    }
    serde_json::from_str::<EventOnly>(line)
        .ok()
        .map(|r| r.event.get())
}

/// Why an event is dead-lettered: the record's `error`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Failure {
    /// Where it failed: `source`, `filter`, `plugin:<name>`, `sink`.
    pub stage: String,
    /// A short machine-readable kind: `malformed`, `rejected`, `timeout`, `trap`, ...
    pub kind: String,
    pub message: String,
    pub attempts: u32,
    pub first_failed_at: String,
    pub last_failed_at: String,
}

impl Failure {
    pub(crate) fn now(
        stage: &str,
        kind: &str,
        message: impl Into<String>,
        attempts: u32,
        first_failed_at: Option<String>,
    ) -> Self {
        let now = crate::event::now_rfc3339();
        Failure {
            stage: stage.to_owned(),
            kind: kind.to_owned(),
            message: message.into(),
            attempts,
            first_failed_at: first_failed_at.unwrap_or_else(|| now.clone()),
            last_failed_at: now,
        }
    }

    /// This failure of `event`, after its earlier ones if it is being redriven: the first failure
    /// time is the original one, and the attempts add up.
    pub(crate) fn continuing(&self, event: &Envelope) -> Failure {
        let mut f = self.clone();
        if let Some(prior) = event.meta.get(REDRIVE_META) {
            if let Some(first) = prior.get("first_failed_at").and_then(|v| v.as_str()) {
                f.first_failed_at = first.to_owned();
            }
            let before = prior.get("attempts").and_then(|v| v.as_u64()).unwrap_or(0);
            let before = u32::try_from(before).unwrap_or(u32::MAX);
            f.attempts = f.attempts.saturating_add(before);
        }
        f
    }
}

/// What the DLQ fallback cut from a record's payload for the DLQ to take it
/// ([`crate::pipeline::dlq_fallback`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Cut {
    /// The payload's size and sha256, of its text as read (a JSON payload's JSON text, a text
    /// payload's text).
    pub data_bytes: usize,
    pub data_sha256: String,
    /// The bytes of it the record keeps (its `event.data`, now text).
    pub kept_bytes: usize,
    /// Why the DLQ refused the whole record.
    pub dlq_refused: String,
    /// The file that holds the whole record.
    pub whole_record_in: String,
}

/// The event as a record holds it: the envelope's JSON (`{"id", "source", "key", "time",
/// "data", "meta"}`, as [`Envelope::to_json`] writes it), with `meta.text = true` when `data` is
/// the text of a record that was not JSON. In JSON both that text and a JSON string are a
/// string; redrive needs to know which it was to write the record back as it came.
#[derive(Debug, Clone)]
pub(crate) struct RecordedEvent<'a> {
    pub id: Cow<'a, str>,
    /// The kind of source that read it (`file`, `kafka`, ...); empty if the record does not say.
    pub source: Cow<'a, str>,
    pub key: Option<Cow<'a, str>>,
    pub time: Cow<'a, str>,
    pub data: Cow<'a, Payload>,
    /// Without the `meta.text` mark, which `data` says; written without `meta.redrive`.
    pub meta: Cow<'a, Map<String, Value>>,
}

impl<'a> RecordedEvent<'a> {
    /// `event`, borrowed.
    pub(crate) fn of(event: &'a Envelope) -> Self {
        RecordedEvent {
            id: Cow::Borrowed(&event.id),
            source: Cow::Borrowed(event.source),
            key: event.key.as_deref().map(Cow::Borrowed),
            time: Cow::Borrowed(&event.time),
            data: Cow::Borrowed(&event.data),
            meta: Cow::Borrowed(&event.meta),
        }
    }

    /// The envelope again, read now, with `source` as its source label.
    pub(crate) fn into_envelope(self, source: &'static str) -> Envelope {
        Envelope {
            id: self.id.into_owned(),
            source,
            key: self.key.map(Cow::into_owned),
            time: self.time.into_owned(),
            received_at: crate::event::now_rfc3339(),
            data: self.data.into_owned(),
            meta: self.meta.into_owned(),
        }
    }
}

impl Serialize for RecordedEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut event = s.serialize_struct("RecordedEvent", 6)?;
        event.serialize_field("id", &self.id)?;
        event.serialize_field("source", &self.source)?;
        event.serialize_field("key", &self.key)?;
        event.serialize_field("time", &self.time)?;
        event.serialize_field("data", &PayloadJson(&self.data))?;
        let text = matches!(*self.data, Payload::Text(_));
        event.serialize_field("meta", &MetaJson(&self.meta, text))?;
        event.end()
    }
}

/// A payload as the record's `data`: JSON as it came, text as a JSON string.
struct PayloadJson<'p>(&'p Payload);

impl Serialize for PayloadJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            // Written as it is: serde_json writes text raw only from a `RawValue`, which it
            // makes by reading the text again (the DLQ's path, not the events').
            Payload::Json(json) => serde_json::from_str::<&RawValue>(json.get())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
            Payload::Text(text) => s.serialize_str(text),
        }
    }
}

/// The event's `meta` as the record's: without `meta.redrive`, and with the `meta.text` mark
/// last when the data is text (unless `meta` has a `text` of its own).
struct MetaJson<'m>(&'m Map<String, Value>, bool);

impl Serialize for MetaJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let MetaJson(meta, text) = *self;
        let mut map = s.serialize_map(None)?;
        for (k, v) in meta.iter().filter(|(k, _)| *k != REDRIVE_META) {
            map.serialize_entry(k, v)?;
        }
        if text && !meta.contains_key(TEXT) {
            map.serialize_entry(TEXT, &true)?;
        }
        map.end()
    }
}

// Read back, a record owns its fields, whatever lifetime it is given.
impl<'de> Deserialize<'de> for RecordedEvent<'_> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The event's fields as written; those a hand-made record may leave out take
        /// defaults.
        #[derive(Deserialize)]
        struct Written {
            id: String,
            #[serde(default)]
            source: String,
            #[serde(default)]
            key: Option<String>,
            time: String,
            data: Box<RawValue>,
            #[serde(default)]
            meta: Map<String, Value>,
        }
        let mut w = Written::deserialize(d)?;
        // A string marked `meta.text` is the text of a record that was not JSON; any other
        // string was a JSON string (records of an older weir have no mark). The mark is the
        // record's, not the event's: it goes, whatever its value.
        let string = w.data.get().trim_start().starts_with('"');
        let data = match string && w.meta.remove(TEXT) == Some(Value::Bool(true)) {
            true => {
                let text = serde_json::from_str(w.data.get()).map_err(serde::de::Error::custom)?;
                Payload::Text(text)
            }
            false => Payload::Json(w.data.into()),
        };
        Ok(RecordedEvent {
            id: Cow::Owned(w.id),
            source: Cow::Owned(w.source),
            key: w.key.map(Cow::Owned),
            time: Cow::Owned(w.time),
            data: Cow::Owned(data),
            meta: Cow::Owned(w.meta),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(data: &[u8], meta: Value) -> Envelope {
        let mut e = crate::event::tests::envelope(data);
        e.meta = meta.as_object().cloned().unwrap_or_default();
        e
    }

    fn failure() -> Failure {
        Failure {
            stage: "plugin:p".into(),
            kind: "trap".into(),
            message: "said \"no\"\n".into(),
            attempts: 2,
            first_failed_at: "2026-11-22T10:00:01.000Z".into(),
            last_failed_at: "2026-11-22T10:00:02.000Z".into(),
        }
    }

    const ERROR: &str = r#""error":{"stage":"plugin:p","kind":"trap","message":"said \"no\"\n","attempts":2,"first_failed_at":"2026-11-22T10:00:01.000Z","last_failed_at":"2026-11-22T10:00:02.000Z"}"#;

    #[test]
    fn records_are_written_byte_for_byte_as_weir_always_wrote_them() {
        let f = failure();
        // JSON data as it came (spaces, key order, number text), meta in its order.
        let e = envelope(
            br#"{"b": 1.50, "a": [1,2]}"#,
            serde_json::json!({"line": 1, "path": "in.jsonl"}),
        );
        assert_eq!(
            DlqRecord::new("orders", &e, &f).to_json(),
            format!(
                r#"{{"event":{{"id":"in.jsonl:1","source":"file","key":null,"time":"2026-11-22T10:00:00.000Z","data":{{"b": 1.50, "a": [1,2]}},"meta":{{"line":1,"path":"in.jsonl"}}}},{ERROR},"pipeline":"orders"}}"#
            )
        );
        // Text that was not JSON: a string, marked last in `meta`; bytes that were not UTF-8
        // decoded lossily, their base64 beside them.
        let mut e = envelope(
            b"caf\xe9 \"x\"",
            serde_json::json!({"raw_base64": "Y2Fm6SAieCI="}),
        );
        e.key = Some("k\t1".into());
        assert_eq!(
            DlqRecord::new("p", &e, &f).to_json(),
            format!(
                r#"{{"event":{{"id":"in.jsonl:1","source":"file","key":"k\t1","time":"2026-11-22T10:00:00.000Z","data":"caf� \"x\"","meta":{{"raw_base64":"Y2Fm6SAieCI=","text":true}}}},{ERROR},"pipeline":"p"}}"#
            )
        );
        // A Kafka tombstone: `null` data, marked in meta by its source.
        let e = envelope(b"null", serde_json::json!({"tombstone": true}));
        assert!(
            DlqRecord::new("p", &e, &f)
                .to_json()
                .contains(r#""data":null,"meta":{"tombstone":true}}"#)
        );
    }

    #[test]
    fn a_redriven_event_is_recorded_as_first_read_and_continues_its_history() {
        let mut e = envelope(b"{}", serde_json::json!({"line": 3}));
        let prior =
            serde_json::json!({"attempts": 3, "first_failed_at": "2026-01-01T00:00:00.000Z"});
        e.meta.insert(REDRIVE_META.into(), prior);
        let now = Failure::now("plugin:p", "error", "again", 1, None);
        let out = DlqRecord::new("p", &e, &now).to_json();
        let back: DlqRecord = serde_json::from_str(&out).unwrap();
        assert_eq!(
            *back.event.meta,
            *serde_json::json!({"line": 3}).as_object().unwrap()
        );
        assert_eq!(back.error.attempts, 4);
        assert_eq!(back.error.first_failed_at, "2026-01-01T00:00:00.000Z");
        assert_eq!(back.error.last_failed_at, now.last_failed_at);
        // Not redriven: as it is.
        assert_eq!(now.continuing(&envelope(b"{}", Value::Null)).attempts, 1);
    }

    #[test]
    fn a_record_tells_text_from_a_json_string_and_reads_back_as_written() {
        let f = failure();
        for (data, text) in [(&b"not json"[..], true), (br#""a JSON string""#, false)] {
            let e = envelope(data, serde_json::json!({"line": 1}));
            let out = DlqRecord::new("p", &e, &f).to_json();
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                v["event"]["meta"]["text"].as_bool(),
                text.then_some(true),
                "{out}"
            );
            let back: DlqRecord = serde_json::from_str(&out).unwrap();
            assert!(
                !back.event.meta.contains_key(TEXT),
                "the mark is the record's"
            );
            assert_eq!(back.to_json(), out, "written again, the same bytes");
            let redriven = back.redriven("file");
            assert_eq!(redriven.data_bytes().unwrap().as_ref(), data);
            assert_eq!(redriven.meta[REDRIVE_META], v["error"]);
        }
    }

    #[test]
    fn a_json_events_record_holds_the_envelope_as_filters_and_templates_see_it() {
        // One shape, two writers: the envelope's own (by hand, on the per-event path) and the
        // record's (serde). Escaping, key and meta order must agree, or redrive and `weir dlq`
        // would see another event than the pipeline did.
        let mut e = envelope(
            br#"{"a": "\u0001", "b": [1.50]}"#,
            serde_json::json!({"path": "in \"x\"\n", "n": 1, "ctl": "\u{1f}\u{8}\u{c}\\", "z": null}),
        );
        e.key = Some("k\u{7f}\u{1}é\"".into());
        e.id = "a\tb/0".into();
        let out = DlqRecord::new("p", &e, &failure()).to_json();
        assert_eq!(event_text(&out), Some(e.to_json().as_str()));
    }

    #[test]
    fn records_of_an_older_weir_still_read() {
        // No `meta.text` mark (a string is a JSON string), spaces, no `pipeline`, a source
        // weir no longer has.
        let old = r#"{"event": {"id": "x", "source": "stdin", "key": "k", "time": "t", "data": "s", "meta": {"line": 1}}, "error": {"stage": "sink", "kind": "rejected", "message": "m", "attempts": 1, "first_failed_at": "a", "last_failed_at": "b"}}"#;
        let back: DlqRecord = serde_json::from_str(old).unwrap();
        assert_eq!(back.pipeline, None);
        assert_eq!(back.error.stage, "sink");
        assert_eq!(back.event.source, "stdin");
        let e = back.redriven("redrive");
        assert_eq!(e.data_bytes().unwrap().as_ref(), br#""s""#);
        assert_eq!((e.id.as_str(), e.key.as_deref()), ("x", Some("k")));
        // What a hand-made record leaves out takes defaults.
        let bare = r#"{"event": {"id": "x", "time": "t", "data": {"n": 1}}}"#;
        let back: DlqRecord = serde_json::from_str(bare).unwrap();
        assert_eq!((back.error.stage.as_str(), back.error.attempts), ("", 0));
        assert!(back.event.meta.is_empty() && back.event.key.is_none());
        // A cut record (the DLQ fallback's) reads as any other.
        let cut = r#"{"event":{"id":"x","source":"kafka","key":null,"time":"t","data":"ab","meta":{"text":true}},"error":{},"pipeline":"p","cut":{"data_bytes":9,"data_sha256":"00","kept_bytes":2,"dlq_refused":"too large","whole_record_in":"f"}}"#;
        let back: DlqRecord = serde_json::from_str(cut).unwrap();
        assert!(matches!(&*back.event.data, Payload::Text(t) if t == "ab"));
        assert_eq!(back.cut.as_ref().map(|c| c.data_bytes), Some(9));
    }

    #[test]
    fn the_event_is_exported_as_written() {
        let line = r#"{"event": {"id": "x",  "n": 1.50}, "error": {}}"#;
        assert_eq!(event_text(line), Some(r#"{"id": "x",  "n": 1.50}"#));
        assert_eq!(event_text("{\"event\": "), None);
    }
}
