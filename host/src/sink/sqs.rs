//! The SQS sink: SendMessageBatch, up to 10 entries and 256 KiB per call (a larger message, as
//! the queue's `MaximumMessageSize` allows, goes in a call of its own). A write returns once
//! SQS has accepted or refused every entry (an accepted message is durable: `sync` has nothing
//! to do); an entry SQS refuses fails alone (retried alone, or dead-lettered if the refusal is
//! the sender's fault).
//!
//! FIFO queues: the message group comes from a template (by default the event's ordering key),
//! the deduplication id too (by default a digest of the event id, which is stable across
//! re-reads, so a message re-sent after a crash within SQS's 5-minute window is dropped by the
//! queue). A write's calls go one after another, and once an entry of a group fails, the group's
//! later entries are not sent, so a group is never written out of order. A standard queue keeps
//! no order: its calls go side by side.

use super::{Outgoing, Render, Rendered, Sink, SinkContext, SinkError, SinkFailure, SinkKind};
use crate::event::Envelope;
use crate::config::component::KeyError;
use crate::sqs::{AwsError, QueueRef};
use crate::template::Template;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use serde::Deserialize;
use schemars::JsonSchema;
use sha2::Digest;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqsSinkConfig {
    pub queue_url: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The message group, as a template. FIFO queues: by default the event's ordering key (the
    /// pipeline's name for events without one). Standard queues: none unless set (fair queues).
    #[serde(default)]
    pub message_group_id: Option<String>,
    /// FIFO queues only: the deduplication id, as a template; by default a digest of the event
    /// id.
    #[serde(default)]
    pub message_deduplication_id: Option<String>,
    /// Message attributes to set: name = template (String attributes).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The attribute that carries each event's correlation id; `""` sends none.
    #[serde(default = "correlation_attribute")]
    pub correlation_attribute: String,
    /// Standard queues only: delay every message by this many seconds (0-900).
    #[serde(default)]
    pub delay_s: Option<u32>,
}

/// SQS's limits: entries per batch call, bytes per call (the classic limit, which every region
/// takes; a message larger than this goes alone), attributes per message.
const BATCH_ENTRIES: usize = 10;
const MAX_BYTES: usize = 256 * 1024;
const MAX_ATTRIBUTES: usize = 10;

/// The message attribute that carries each event's correlation id
/// ([`crate::event::Envelope::correlation_id`]) unless `correlation_attribute` names another.
pub(crate) const CORRELATION_ATTRIBUTE: &str = "correlation-id";

fn correlation_attribute() -> String {
    CORRELATION_ATTRIBUTE.to_owned()
}

/// Batch calls of one write under way at once (standard queues).
const CONCURRENT_CALLS: usize = 8;

impl SqsSinkConfig {
    fn queue(&self) -> QueueRef<'_> {
        QueueRef {
            url: &self.queue_url,
            region: self.region.as_deref(),
            endpoint_url: self.endpoint_url.as_deref(),
        }
    }

    fn fifo(&self) -> bool {
        self.queue_url.ends_with(".fifo")
    }
}

#[async_trait]
impl SinkKind for SqsSinkConfig {
    const KIND: &'static str = "sqs";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        crate::sqs::validate(self.queue())?;
        let template = |key: &'static str, text: &str| {
            Template::parse(text)
                .map(|_| ())
                .map_err(|e| (key, format!("invalid template: {e}")))
        };
        if let Some(t) = &self.message_group_id {
            template("message_group_id", t)?;
        }
        if let Some(t) = &self.message_deduplication_id {
            if !self.fifo() {
                return Err((
                    "message_deduplication_id",
                    "only FIFO queues (names ending in .fifo) take a deduplication id".into(),
                ));
            }
            template("message_deduplication_id", t)?;
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err((
                "attributes",
                format!(
                    "at most {MAX_ATTRIBUTES} (an SQS limit), got {}",
                    self.attributes.len()
                ),
            ));
        }
        for text in self.attributes.values() {
            template("attributes", text)?;
        }
        match self.delay_s {
            Some(_) if self.fifo() => Err((
                "delay_s",
                "FIFO queues take no per-message delay (set the queue's DelaySeconds)".into(),
            )),
            Some(d) if d > 900 => Err(("delay_s", "must be between 0 and 900".into())),
            _ => Ok(()),
        }
    }

    /// Without asking the queue: FIFO if its name ends in `.fifo` (SQS requires it), and a
    /// `MaximumMessageSize` of 256 KiB, what the sink assumes when the queue does not say.
    fn preview(&self, pipeline: &str) -> Result<Box<dyn Render>, SinkError> {
        Ok(Box::new(Messages::new(self, pipeline, self.fifo(), MAX_BYTES)?))
    }

    async fn reach(&self, _pipeline: &str, timeout: Duration) -> Result<Option<String>, KeyError> {
        crate::sqs::reach(self.queue(), timeout)
            .await
            .map(Some)
            .map_err(|e| ("queue_url", e.into()))
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        open(self, ctx).await
    }
}

async fn open(
    cfg: &SqsSinkConfig,
    ctx: &SinkContext,
) -> Result<Box<dyn Sink>, SinkError> {
    let client = crate::sqs::client(cfg.queue(), Duration::from_secs(30))
        .await
        .map_err(|e| SinkError::permanent(e.to_string()).caused_by(e))?;
    // Checks that the queue exists and the credentials work; waits while SQS is unreachable.
    let attributes = client
        .get_queue_attributes()
        .queue_url(&cfg.queue_url)
        .attribute_names(QueueAttributeName::FifoQueue)
        .attribute_names(QueueAttributeName::MaximumMessageSize)
        .send()
        .await
        .map_err(|e| {
            let e = AwsError::from_sdk("GetQueueAttributes", &e);
            let message = format!("sqs queue {}: {}", cfg.queue_url, e.message);
            let error = match e.retryable {
                true => SinkError::retryable(message),
                false => SinkError::permanent(message),
            };
            error.caused_by(e)
        })?;
    let attributes = attributes.attributes.unwrap_or_default();
    let fifo = attributes
        .get(&QueueAttributeName::FifoQueue)
        .is_some_and(|v| v == "true");
    let max_message_bytes = attributes
        .get(&QueueAttributeName::MaximumMessageSize)
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_BYTES);
    Ok(Box::new(SqsSink {
        client,
        queue_url: cfg.queue_url.clone(),
        messages: Messages::new(cfg, &ctx.pipeline, fifo, max_message_bytes)?,
    }))
}

struct SqsSink {
    client: Client,
    queue_url: String,
    messages: Messages,
}

/// How the sink makes an event into a message: its templates and the queue's limits. Needs no
/// client, so that `weir dry-run` can show a message without connecting (its [`Render`]).
pub(crate) struct Messages {
    pipeline: String,
    fifo: bool,
    /// The queue's `MaximumMessageSize`: body and attributes together.
    max_message_bytes: usize,
    group: Option<Template>,
    dedup: Option<Template>,
    attributes: Vec<(String, Template)>,
    /// The correlation id's attribute; None: not sent.
    correlation: Option<String>,
    delay_s: Option<u32>,
}

/// One entry ready to send, with what it weighs against SQS's limits.
struct Entry {
    index: usize,
    group: Option<String>,
    request: SendMessageBatchRequestEntry,
    bytes: usize,
}

impl Messages {
    /// The sink's templates, parsed, for a queue that is `fifo` and takes messages of
    /// `max_message_bytes` at most.
    fn new(
        cfg: &SqsSinkConfig,
        pipeline: &str,
        fifo: bool,
        max_message_bytes: usize,
    ) -> Result<Self, SinkError> {
        let attributes = super::named_templates("attributes", &cfg.attributes)?;
        Ok(Messages {
            pipeline: pipeline.to_owned(),
            fifo,
            max_message_bytes,
            group: super::optional_template(&cfg.message_group_id)?,
            dedup: super::optional_template(&cfg.message_deduplication_id)?,
            correlation: super::correlation_name(&cfg.correlation_attribute),
            attributes,
            delay_s: cfg.delay_s,
        })
    }

    fn group_of(&self, event: &Envelope) -> Option<String> {
        match (&self.group, self.fifo) {
            (Some(t), _) => Some(t.render(event, &self.pipeline)),
            (None, true) => Some(event.key.clone().unwrap_or_else(|| self.pipeline.clone())),
            (None, false) => None,
        }
    }

    /// The entry for `batch[index]`, or why SQS would refuse it.
    fn entry(&self, index: usize, o: &Outgoing<'_>) -> Result<Entry, SinkError> {
        // A body is text: no value (a tombstone) is sent as its data, `null`; bytes that are
        // not UTF-8 cannot be sent as they are, and are not changed silently.
        let body = std::str::from_utf8(o.body.or_null()).map_err(|e| {
            SinkError::permanent(format!(
                "sqs: the body is not valid UTF-8 ({e}), and an SQS message body is text: \
                 its exact bytes are in the event's meta.raw_base64 (encoding = \"envelope\" sends them)"
            ))
        })?;
        if body.is_empty() {
            return Err(SinkError::permanent(
                "sqs: an empty message body (SQS needs at least one character)",
            ));
        }
        if let Some(c) = body.chars().find(|&c| !allowed(c)) {
            return Err(SinkError::permanent(format!(
                "sqs: the body holds U+{:04X}, a character SQS does not accept",
                c as u32
            )));
        }
        let event: &Envelope = o.event;
        let group = self.group_of(event);
        if group.as_deref() == Some("") {
            return Err(SinkError::permanent(
                "sink.message_group_id: the template rendered an empty group",
            ));
        }
        let dedup = match (&self.dedup, self.fifo) {
            (Some(t), _) => Some(t.render(event, &self.pipeline)),
            (None, true) => Some(hex(&sha2::Sha256::digest(event.id.as_bytes()))),
            (None, false) => None,
        };
        let mut bytes = body.len();
        let mut request = SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(body)
            .set_message_group_id(group.clone())
            .set_message_deduplication_id(dedup);
        if let Some(d) = self.delay_s {
            request = request.delay_seconds(d as i32);
        }
        let mut attributes: Vec<(&str, String)> = Vec::with_capacity(self.attributes.len() + 1);
        // The event's correlation id, unless the user sets that attribute or all ten SQS allows.
        if let Some(name) = &self.correlation
            && !self.attributes.iter().any(|(n, _)| n == name)
            && self.attributes.len() < MAX_ATTRIBUTES
        {
            attributes.push((name, event.correlation_id().to_owned()));
        }
        for (name, t) in &self.attributes {
            attributes.push((name, t.render(event, &self.pipeline)));
        }
        for (name, value) in attributes {
            if value.is_empty() {
                continue; // SQS refuses empty attribute values; an absent field sets none
            }
            bytes += name.len() + "String".len() + value.len();
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| SinkError::permanent(format!("sink.attributes.{name}: {e}")))?;
            request = request.message_attributes(name, attribute);
        }
        if bytes > self.max_message_bytes {
            return Err(SinkError::permanent(format!(
                "sqs: the message is {bytes} bytes with its attributes; the queue takes at most {} (its MaximumMessageSize)",
                self.max_message_bytes
            )));
        }
        let request = request
            .build()
            .map_err(|e| SinkError::permanent(format!("sqs: {e}")))?;
        Ok(Entry {
            index,
            group,
            request,
            bytes,
        })
    }
}

impl Render for Messages {
    /// The message the sink would send for `event` with `body`, as JSON (`body`,
    /// `message_group_id`, `message_deduplication_id`, `delay_seconds`, `attributes` (name ->
    /// value), `bytes`: its size against the queue's limit), or why the sink would refuse it
    /// without sending it. Sends nothing.
    fn render(
        &self,
        body: Rendered<'_>,
        event: &Envelope,
    ) -> Result<serde_json::Value, SinkError> {
        let entry = self.entry(0, &Outgoing { body, event })?;
        let r = &entry.request;
        let attributes: serde_json::Map<String, serde_json::Value> = r
            .message_attributes()
            .into_iter()
            .flatten()
            .map(|(name, v)| (name.clone(), v.string_value().into()))
            .collect();
        Ok(serde_json::json!({
            "body": r.message_body(),
            "message_group_id": r.message_group_id(),
            "message_deduplication_id": r.message_deduplication_id(),
            "delay_seconds": r.delay_seconds(),
            "attributes": attributes,
            "bytes": entry.bytes,
        }))
    }

}

impl SqsSink {
    /// Sends one batch call; the failed entries, by index in the write's batch.
    async fn send(
        client: Client,
        queue_url: String,
        entries: Vec<Entry>,
    ) -> Vec<(usize, SinkError)> {
        let indexes: Vec<usize> = entries.iter().map(|e| e.index).collect();
        let requests = entries.into_iter().map(|e| e.request).collect();
        let out = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(requests))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let e = AwsError::from_sdk("SendMessageBatch", &e);
                let e = SinkError {
                    message: format!("sqs: {}", e.message),
                    retryable: e.retryable,
                    cause: None,
                    retry_after: None,
                }
                .caused_by(e);
                return indexes.into_iter().map(|i| (i, e.clone())).collect();
            }
        };
        let mut failed = Vec::new();
        for f in out.failed {
            let Ok(i) = f.id.parse::<usize>() else {
                continue;
            };
            let message = format!(
                "sqs: {} ({})",
                f.message.as_deref().unwrap_or("refused"),
                f.code
            );
            failed.push((
                i,
                SinkError {
                    message,
                    retryable: !f.sender_fault,
                    cause: None,
                    retry_after: None,
                },
            ));
        }
        // An entry neither accepted nor refused is counted as failed, to be tried again.
        let answered: HashSet<usize> = out
            .successful
            .iter()
            .filter_map(|s| s.id.parse().ok())
            .chain(failed.iter().map(|(i, _)| *i))
            .collect();
        for i in indexes {
            if !answered.contains(&i) {
                failed.push((
                    i,
                    SinkError::retryable("sqs: SendMessageBatch did not answer for this entry"),
                ));
            }
        }
        failed
    }
}

/// Splits entries into calls of at most 10 entries and 256 KiB, keeping their order.
fn calls(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut calls: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for e in entries {
        match calls.last_mut() {
            Some(call) if call.len() < BATCH_ENTRIES && bytes + e.bytes <= MAX_BYTES => {
                bytes += e.bytes;
                call.push(e);
            }
            _ => {
                bytes = e.bytes;
                calls.push(vec![e]);
            }
        }
    }
    calls
}

#[async_trait]
impl Sink for SqsSink {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        let mut failures: Vec<(usize, SinkError)> = Vec::new();
        let mut entries = Vec::with_capacity(batch.len());
        for (i, o) in batch.iter().enumerate() {
            match self.messages.entry(i, o) {
                Ok(e) => entries.push(e),
                Err(e) => failures.push((i, e)),
            }
        }
        if self.messages.fifo {
            // One call after another; a group with a failed entry sends nothing more.
            let mut failed_groups: HashSet<String> = failures
                .iter()
                .filter_map(|(i, _)| self.messages.group_of(batch[*i].event))
                .collect();
            for call in calls(entries) {
                let (held, send): (Vec<Entry>, Vec<Entry>) = call
                    .into_iter()
                    .partition(|e| e.group.as_ref().is_some_and(|g| failed_groups.contains(g)));
                for e in held {
                    failures.push((
                        e.index,
                        SinkError::retryable("sqs: held back: an earlier event of its message group failed in this write"),
                    ));
                }
                if send.is_empty() {
                    continue;
                }
                let groups: Vec<(usize, Option<String>)> =
                    send.iter().map(|e| (e.index, e.group.clone())).collect();
                let failed = Self::send(self.client.clone(), self.queue_url.clone(), send).await;
                for (i, _) in &failed {
                    if let Some((_, Some(g))) = groups.iter().find(|(j, _)| j == i) {
                        failed_groups.insert(g.clone());
                    }
                }
                failures.extend(failed);
            }
        } else {
            let mut running = JoinSet::new();
            for call in calls(entries) {
                if running.len() >= CONCURRENT_CALLS
                    && let Some(Ok(failed)) = running.join_next().await
                {
                    failures.extend(failed);
                }
                running.spawn(Self::send(
                    self.client.clone(),
                    self.queue_url.clone(),
                    call,
                ));
            }
            while let Some(joined) = running.join_next().await {
                match joined {
                    Ok(failed) => failures.extend(failed),
                    // Not known whether it was sent: tried again (a duplicate at worst).
                    Err(e) => {
                        return Err(SinkFailure::All(SinkError::retryable(format!(
                            "sqs: send task failed: {e}"
                        ))));
                    }
                }
            }
        }
        SinkFailure::of(batch.len(), failures)
    }

    async fn sync(&self) -> Result<(), SinkError> {
        // Every write waited for SQS to accept its messages.
        Ok(())
    }

    fn max_body_bytes(&self, event: &Envelope) -> Option<usize> {
        // What the event's attributes weigh: its message with a one-byte body.
        let probe = Outgoing {
            body: String::from("x").into(),
            event,
        };
        let attributes = self.messages.entry(0, &probe).ok()?.bytes - 1;
        self.messages.max_message_bytes.checked_sub(attributes)
    }
}

/// Characters SQS accepts in a message body (XML 1.0's).
fn allowed(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: usize, bytes: usize) -> Entry {
        Entry {
            index,
            group: None,
            request: SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body("x")
                .build()
                .unwrap(),
            bytes,
        }
    }

    #[test]
    fn calls_respect_entry_and_byte_limits_in_order() {
        let entries: Vec<Entry> = (0..25).map(|i| entry(i, 1000)).collect();
        let sizes: Vec<usize> = calls(entries).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big = vec![
            entry(0, 200_000),
            entry(1, 100_000),
            entry(2, 50_000),
            entry(3, 262_144),
        ];
        let split: Vec<Vec<usize>> = calls(big)
            .iter()
            .map(|c| c.iter().map(|e| e.index).collect())
            .collect();
        assert_eq!(split, [vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn bodies_with_characters_sqs_refuses() {
        assert!(allowed('a') && allowed('\n') && allowed('é') && allowed('😀'));
        assert!(!allowed('\u{0}') && !allowed('\u{1F}') && !allowed('\u{FFFE}'));
    }
}
