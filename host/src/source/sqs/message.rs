//! An SQS message as a weir event: the body is the data (parsed if JSON); the message group (FIFO)
//! is the ordering key; the message id, receipt handle, receive count, system attributes and
//! message attributes are in `meta`.

use super::Reading;
use crate::event::{Envelope, Position};
use crate::source::SourceEvent;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{Map, Value};

/// `receive` numbers the receive call (the position's partition), `seq` the message (its
/// offset).
pub(super) fn to_event(msg: Message, receive: u32, seq: u64, reading: &Reading, now: &str) -> SourceEvent {
    let attributes = msg.attributes.unwrap_or_default();
    let attr = |name: MessageSystemAttributeName| attributes.get(&name).map(String::as_str);
    let receive_count: u32 = attr(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let time = attr(MessageSystemAttributeName::SentTimestamp)
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(crate::event::rfc3339_millis)
        .unwrap_or_else(|| now.to_owned());
    let message_id = msg.message_id.unwrap_or_default();
    // A FIFO group is the unit of order; a standard queue has none, so each message is its own
    // key and messages spread over every lane.
    let key = attr(MessageSystemAttributeName::MessageGroupId)
        .map(str::to_owned)
        .unwrap_or_else(|| message_id.clone());

    let mut meta = Map::with_capacity(7);
    meta.insert("queue_url".into(), reading.queue_url.clone().into());
    meta.insert("message_id".into(), message_id.clone().into());
    meta.insert(
        "receipt_handle".into(),
        msg.receipt_handle.unwrap_or_default().into(),
    );
    meta.insert("receive_count".into(), receive_count.into());
    let system: Map<String, Value> = attributes
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
        .collect();
    meta.insert("attributes".into(), Value::Object(system));
    // An object of values, so that patterns and templates address
    // `meta.message_attributes.<name>`: strings and numbers as their text, binary as base64.
    let mut user = Map::new();
    for (name, value) in msg.message_attributes.unwrap_or_default() {
        let text = match (value.string_value, value.binary_value) {
            (Some(s), _) => s,
            (None, Some(b)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(b.as_ref())
            }
            (None, None) => String::new(),
        };
        user.insert(name, Value::String(text));
    }
    meta.insert("message_attributes".into(), Value::Object(user));

    let body = msg.body.unwrap_or_default();
    let (data, problem) = reading.format.decode(body.as_bytes(), &mut meta);
    let release_on_failure = match reading.dead_letter_from {
        Some(from) => receive_count < from,
        None => true,
    };
    SourceEvent {
        envelope: Envelope {
            id: message_id,
            source: "sqs",
            key: Some(key),
            time,
            received_at: now.to_owned(),
            data,
            meta,
        },
        position: Position {
            partition: receive,
            offset: seq,
            ordinal: seq,
        },
        problem,
        release_on_failure,
    }
}
