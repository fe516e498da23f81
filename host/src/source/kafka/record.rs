//! A Kafka record as a weir event: the value is the data (parsed if JSON), the record key is the
//! ordering key, and topic, partition, offset, timestamp and headers are in `meta`. What the
//! event cannot show of the record is in `meta` too, so that a relay writes the record as it
//! came: a tombstone's missing value (`tombstone`), the exact bytes of a value or key that is
//! not UTF-8 (`raw_base64`, `key_base64`).

use crate::event::{Envelope, KEY_BASE64, Payload, Position, TOMBSTONE};
use crate::source::{Format, SourceEvent, keep_exact_bytes};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};
use serde_json::Value;
use std::borrow::Cow;

/// Formats record timestamps, reusing the last one: records of one producer batch usually
/// share their millisecond, and formatting a time costs more than the rest of the envelope.
#[derive(Default)]
pub(super) struct Times {
    last: Option<(i64, String)>,
}

impl Times {
    fn rfc3339(&mut self, millis: i64) -> Option<String> {
        if let Some((m, text)) = &self.last
            && *m == millis
        {
            return Some(text.clone());
        }
        let text = crate::event::rfc3339_millis(chrono::DateTime::from_timestamp_millis(millis)?);
        self.last = Some((millis, text.clone()));
        Some(text)
    }
}

pub(super) fn to_event(
    msg: &BorrowedMessage<'_>,
    stream: u32,
    format: Format,
    now: &str,
    times: &mut Times,
) -> SourceEvent {
    let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
    let millis = msg.timestamp().to_millis();
    let mut meta = serde_json::Map::with_capacity(6);
    meta.insert("topic".into(), topic.into());
    meta.insert("partition".into(), partition.into());
    meta.insert("offset".into(), offset.into());
    meta.insert("timestamp".into(), millis.map_or(Value::Null, Value::from));
    if let Some(headers) = msg.headers() {
        // An object, so that templates and patterns can address `meta.headers.<name>`; a name
        // that repeats keeps its last value.
        let mut map = serde_json::Map::with_capacity(headers.count());
        for h in headers.iter() {
            let value = h.value.map_or(Value::Null, |v| {
                String::from_utf8_lossy(v).into_owned().into()
            });
            map.insert(h.key.to_owned(), value);
        }
        meta.insert("headers".into(), Value::Object(map));
    }
    let (data, problem) = match msg.payload() {
        Some(bytes) => format.decode(bytes, &mut meta),
        // A tombstone (no value): `null` data, and `meta.tombstone` tells it from a `null`
        // value (for filters, and for a sink to write no value either).
        None => {
            meta.insert(TOMBSTONE.into(), true.into());
            (Payload::Json(crate::event::JsonText::null()), None)
        }
    };
    let key = msg.key().map(|k| match String::from_utf8_lossy(k) {
        Cow::Borrowed(text) => text.to_owned(),
        Cow::Owned(lossy) => {
            keep_exact_bytes(KEY_BASE64, k, &mut meta);
            lossy
        }
    });
    let time = millis
        .and_then(|m| times.rfc3339(m))
        .unwrap_or_else(|| now.to_owned());
    SourceEvent {
        envelope: Envelope {
            id: format!("{topic}/{partition}/{offset}"),
            source: "kafka",
            key,
            time,
            received_at: now.to_owned(),
            data,
            meta,
        },
        position: position(stream, offset),
        problem,
        release_on_failure: false,
    }
}

/// The position of the record at `offset`: committing it means "resume at the next offset".
pub(super) fn position(stream: u32, offset: i64) -> Position {
    let offset = offset.max(0) as u64;
    Position {
        partition: stream,
        offset: offset + 1,
        ordinal: offset,
    }
}

