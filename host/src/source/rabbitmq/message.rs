//! A delivery as a weir event: the body is the data (parsed if JSON); the properties that are
//! set, the headers, the exchange and routing key are in `meta`; the key comes from a header or
//! a template.

use super::Reading;
use crate::event::{Envelope, Position};
use crate::rabbitmq::table_to_json;
use crate::source::SourceEvent;
use lapin::message::Delivery;
use serde_json::{Map, Value};

/// `generation` numbers the channel, `seq` the delivery (its position's offset), `batch` the
/// batch it is handed to the pipeline in (its position's partition: a failed event handed back
/// takes its key's later events of the same batch with it).
pub(super) fn to_event(
    d: &Delivery,
    generation: u32,
    seq: u64,
    batch: u32,
    reading: &Reading,
    now: &str,
) -> SourceEvent {
    let p = &d.properties;
    let mut meta = Map::with_capacity(12);
    meta.insert("queue".into(), reading.queue.clone().into());
    meta.insert("exchange".into(), d.exchange.as_str().into());
    meta.insert("routing_key".into(), d.routing_key.as_str().into());
    meta.insert("redelivered".into(), d.redelivered.into());
    meta.insert("delivery_tag".into(), d.delivery_tag.into());
    let mut text = |name: &str, v: &Option<lapin::types::ShortString>| {
        if let Some(v) = v {
            meta.insert(name.into(), v.as_str().into());
        }
    };
    text("content_type", p.content_type());
    text("content_encoding", p.content_encoding());
    text("correlation_id", p.correlation_id());
    text("reply_to", p.reply_to());
    text("expiration", p.expiration());
    text("message_id", p.message_id());
    text("type", p.kind());
    text("user_id", p.user_id());
    text("app_id", p.app_id());
    if let Some(m) = p.delivery_mode() {
        meta.insert("delivery_mode".into(), (*m).into());
    }
    if let Some(m) = p.priority() {
        meta.insert("priority".into(), (*m).into());
    }
    if let Some(t) = p.timestamp() {
        meta.insert("timestamp".into(), (*t).into());
    }
    let headers = p
        .headers()
        .as_ref()
        .map_or_else(|| Value::Object(Map::new()), table_to_json);
    let key_from_header = reading.key_header.as_ref().and_then(|h| match headers.get(h) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    });
    meta.insert("headers".into(), headers);

    let time = p
        .timestamp()
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(crate::event::rfc3339_millis)
        .unwrap_or_else(|| now.to_owned());
    // A message id set by the publisher is stable across redeliveries; without one, the id
    // names this delivery only (the same message delivered again gets another).
    let id = match p.message_id() {
        Some(m) if !m.as_str().is_empty() => m.as_str().to_owned(),
        _ => format!("{}/{}/{}/{}", reading.queue, reading.run, generation, d.delivery_tag),
    };
    let (data, problem) = reading.format.decode(&d.data, &mut meta);
    let mut envelope = Envelope {
        id,
        source: "rabbitmq",
        key: key_from_header,
        time,
        received_at: now.to_owned(),
        data,
        meta,
    };
    if let Some(t) = &reading.key {
        let key = t.render(&envelope, &reading.pipeline);
        envelope.key = Some(key).filter(|k| !k.is_empty());
    }
    SourceEvent {
        envelope,
        position: Position {
            partition: batch,
            offset: seq,
            ordinal: seq,
        },
        problem,
        release_on_failure: reading.redrive,
    }
}
