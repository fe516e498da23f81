//! The Kafka sink: an idempotent producer with `acks=all`. A write returns when the broker has
//! acknowledged every record of the batch (or refused it), so a written event is durable and
//! `sync` has nothing left to do. Lanes write concurrently: their batches' round trips overlap.
//!
//! Order: records are enqueued in batch order, and the idempotent producer keeps a partition's
//! records in that order through its own retries. A retryable failure (a timeout, the broker
//! gone) fails a partition's later records too, so a key's later event is never written ahead
//! of a failed earlier one; a permanent rejection (a record too large) fails one record, which
//! goes to the DLQ rather than later into the topic.
//!
//! Topics: weir creates none. At start the sink waits (up to `topic_wait_s`) for its topic to
//! appear; a record whose rendered topic does not exist is dead-lettered at once ([`topics`]).
//! A producer that failed for good is replaced by a new one ([`producers`]).

mod producers;
mod topics;

use super::{Outgoing, Render, Rendered, Sink, SinkContext, SinkError, SinkFailure, SinkKind};
use crate::event::Envelope;
use crate::kafka::{Names, Properties, Role, check_properties, client_config};
use crate::config::component::KeyError;
use crate::template::Template;
use async_trait::async_trait;
use producers::Producers;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use serde::Deserialize;
use schemars::JsonSchema;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;
use topics::Topics;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KafkaSinkConfig {
    pub brokers: Names,
    /// The topic, or a template (`"orders-<$.data.region>"`).
    pub topic: String,
    /// The record key as a template; by default the event's key (the source's key, or
    /// `[ordering] key`).
    #[serde(default)]
    pub key: Option<String>,
    /// The partition as a template that renders an integer; by default the producer's
    /// partitioner (by key).
    #[serde(default)]
    pub partition: Option<String>,
    /// Headers to set: name = template.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Copy the headers of events read from Kafka (`meta.headers`) to the records written.
    #[serde(default = "yes")]
    pub carry_headers: bool,
    /// The header that carries each event's correlation id; `""` sends none.
    #[serde(default = "correlation_header")]
    pub correlation_header: String,
    /// How long the sink waits at start for its topic to appear before it fails (seconds).
    #[serde(default = "default_topic_wait_s")]
    pub topic_wait_s: u64,
    /// librdkafka producer properties, passed through (TLS, SASL, compression, linger, ...).
    #[serde(default)]
    pub properties: Properties,
}

fn default_topic_wait_s() -> u64 {
    60
}

/// The longest `topic_wait_s`: a topic that takes longer is a mistake to report, not to wait out.
const MAX_TOPIC_WAIT_S: u64 = 3600;

fn yes() -> bool {
    true
}

fn correlation_header() -> String {
    CORRELATION_HEADER.to_owned()
}

const OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "use `brokers`"),
    (
        "enable.idempotence",
        "weir's producer is always idempotent (no duplicates or reordering from retries)",
    ),
    (
        "acks",
        "weir waits for all in-sync replicas before it counts an event delivered",
    ),
];

#[async_trait]
impl SinkKind for KafkaSinkConfig {
    const KIND: &'static str = "kafka";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.topic.is_empty() {
            return Err(("topic", "must not be empty".into()));
        }
        let template = |key: &'static str, text: &str| {
            Template::parse(text)
                .map(|_| ())
                .map_err(|e| (key, format!("invalid template: {e}")))
        };
        template("topic", &self.topic)?;
        if let Some(k) = &self.key {
            template("key", k)?;
        }
        if let Some(p) = &self.partition {
            template("partition", p)?;
        }
        for text in self.headers.values() {
            template("headers", text)?;
        }
        if self.topic_wait_s > MAX_TOPIC_WAIT_S {
            return Err((
                "topic_wait_s",
                format!("must be at most {MAX_TOPIC_WAIT_S} (seconds); 0 fails at once"),
            ));
        }
        check_properties(&self.properties, OWNED)
    }

    fn preview(&self, pipeline: &str) -> Result<Box<dyn Render>, SinkError> {
        Ok(Box::new(Addressing::new(self, pipeline)?))
    }

    async fn reach(&self, pipeline: &str, timeout: Duration) -> Result<Option<String>, KeyError> {
        // The topic as the sink renders it when it does not depend on the event (as the sink
        // checks it at start); one that does cannot be checked before there is one.
        let fixed = Template::parse(&self.topic)
            .ok()
            .and_then(|t| t.constant(pipeline));
        let topics: Vec<String> = fixed.iter().cloned().collect();
        // Blocks this thread while the cluster answers: `weir check --connect` reaches one
        // thing at a time, on a runtime of its own.
        let mut report =
            crate::kafka::reach(Role::Producer, &self.brokers, &self.properties, &topics, timeout)
                .map_err(|e| (e.key("topic"), e.into()))?;
        if fixed.is_none() {
            report.push_str(&format!(" (topic `{}` is rendered per event)", self.topic));
        }
        Ok(Some(report))
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        open(self, ctx).await
    }
}

async fn open(
    cfg: &KafkaSinkConfig,
    ctx: &SinkContext,
) -> Result<Box<dyn Sink>, SinkError> {
    let client = client_config(
        &cfg.brokers,
        &[
            // Fill batches a little; a write waits for its batch's acknowledgements anyway.
            ("linger.ms", "5"),
            // A record not acknowledged by then fails and goes through weir's `[retry]`, so an
            // outage shows in the log instead of waiting silently in librdkafka.
            ("message.timeout.ms", "30000"),
            // weir creates no topics: a metadata request for a topic that is missing must not
            // create it on a broker with `auto.create.topics.enable` (Kafka's default), or a
            // mistyped rendered topic would be created instead of dead-lettered.
            ("allow.auto.create.topics", "false"),
        ],
        &cfg.properties,
        &[
            ("enable.idempotence", "true".into()),
            ("acks", "all".into()),
        ],
    );
    let producers = Producers::new(client, &ctx.pipeline)?;
    let addressing = Addressing::new(cfg, &ctx.pipeline)?;
    let topics = Topics::default();
    if let Some(name) = &addressing.fixed_topic {
        let wait = Duration::from_secs(cfg.topic_wait_s);
        topics::wait_for(&producers.get(), name, wait, &ctx.pipeline).await?;
        topics.exists(name);
    }
    // librdkafka refuses a larger record itself (key and headers included), before a broker
    // sees it; 1,000,000 is its default.
    let max_message_bytes = cfg
        .properties
        .get("message.max.bytes")
        .and_then(|p| p.text().parse().ok())
        .unwrap_or(1_000_000);
    Ok(Box::new(KafkaSink {
        producers,
        topics,
        addressing,
        max_message_bytes,
    }))
}

struct KafkaSink {
    producers: Producers,
    /// The topics known to exist or not.
    topics: Topics,
    addressing: Addressing,
    /// The producer's `message.max.bytes`.
    max_message_bytes: usize,
}

/// What a record takes besides its key, value and headers in librdkafka's size check (its
/// batch header and per-record framing), rounded up.
const RECORD_OVERHEAD: usize = 128;

/// The header that carries each event's correlation id ([`Envelope::correlation_id`]) unless
/// `correlation_header` names another.
pub(crate) const CORRELATION_HEADER: &str = "correlation-id";

/// Where the sink sends each event, and with which key, partition and headers: its templates,
/// rendered per event. Needs no producer, so that `weir dry-run` can show a record without
/// connecting (its [`Render`]).
pub(crate) struct Addressing {
    pipeline: String,
    topic: Template,
    /// The topic when the template does not depend on the event (the usual case).
    fixed_topic: Option<String>,
    key: Option<Template>,
    partition: Option<Template>,
    headers: Vec<(String, Template)>,
    carry_headers: bool,
    /// The correlation id's header; None: not sent.
    correlation_header: Option<String>,
}

/// One record's addressing, rendered from its event.
struct Address<'e> {
    topic: String,
    /// The record key's bytes: the key read with the event exactly as it came, or a rendering.
    key: Option<Cow<'e, [u8]>>,
    partition: Option<i32>,
    headers: OwnedHeaders,
}

impl Addressing {
    /// The sink's templates, parsed.
    fn new(cfg: &KafkaSinkConfig, pipeline: &str) -> Result<Self, SinkError> {
        let topic = Template::parse(&cfg.topic)
            .map_err(|e| SinkError::permanent(format!("topic: invalid template: {e}")))?;
        let headers = super::named_templates("headers", &cfg.headers)?;
        Ok(Addressing {
            pipeline: pipeline.to_owned(),
            fixed_topic: topic.constant(pipeline),
            topic,
            key: super::optional_template(&cfg.key)?,
            partition: super::optional_template(&cfg.partition)?,
            headers,
            carry_headers: cfg.carry_headers,
            correlation_header: super::correlation_name(&cfg.correlation_header),
        })
    }

    fn address<'e>(&self, event: &'e Envelope) -> Result<Address<'e>, SinkError> {
        let topic = match &self.fixed_topic {
            Some(t) => t.clone(),
            None => self.topic.render(event, &self.pipeline),
        };
        if topic.is_empty() {
            return Err(SinkError::permanent(
                "sink.topic: the template rendered an empty topic",
            ));
        }
        let key = match &self.key {
            Some(t) => Some(t.render(event, &self.pipeline))
                .filter(|k| !k.is_empty())
                .map(|k| Cow::Owned(k.into_bytes())),
            // The key as it came: a key that is not UTF-8 keeps its bytes, so its records keep
            // their partition and compaction.
            None => event.key_bytes(),
        };
        let partition = match &self.partition {
            None => None,
            Some(t) => {
                let text = t.render(event, &self.pipeline);
                Some(text.trim().parse::<i32>().map_err(|_| {
                    SinkError::permanent(format!(
                        "sink.partition: the template rendered `{text}`, not a partition number"
                    ))
                })?)
            }
        };
        let mut headers = OwnedHeaders::new();
        let correlation = self.correlation_header.as_deref();
        let mut carried_correlation = false;
        if self.carry_headers
            && let Some(serde_json::Value::Object(carried)) = event.meta.get("headers")
        {
            carried_correlation = correlation.is_some_and(|h| carried.contains_key(h));
            for (name, value) in carried {
                let value = match value {
                    serde_json::Value::String(s) => Some(s.as_str()),
                    _ => None,
                };
                headers = headers.insert(Header { key: name, value });
            }
        }
        // The event's correlation id, unless a carried header or the user's own sets it.
        if let Some(name) = correlation
            && !carried_correlation
            && !self.headers.iter().any(|(n, _)| n == name)
        {
            headers = headers.insert(Header {
                key: name,
                value: Some(event.correlation_id()),
            });
        }
        for (name, t) in &self.headers {
            let value = t.render(event, &self.pipeline);
            headers = headers.insert(Header {
                key: name,
                value: Some(&value),
            });
        }
        Ok(Address {
            topic,
            key,
            partition,
            headers,
        })
    }
}

impl Render for Addressing {
    /// The record the sink would produce for `event` with value `body`, as JSON (`topic`, `key`,
    /// `partition`, `headers` as `[name, value]` pairs in order, and the value as `body`; bytes
    /// that are not UTF-8 as `{"base64": ...}`, a tombstone's value as `null`), or why the sink
    /// would refuse it. Produces nothing.
    fn render(
        &self,
        body: Rendered<'_>,
        event: &Envelope,
    ) -> Result<serde_json::Value, SinkError> {
        use rdkafka::message::Headers;
        let address = self.address(event)?;
        let headers: Vec<serde_json::Value> = address
            .headers
            .iter()
            .map(|h| {
                let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                serde_json::json!([h.key, value])
            })
            .collect();
        Ok(serde_json::json!({
            "topic": address.topic,
            "key": address.key.as_deref().map(super::preview_bytes),
            "partition": address.partition,
            "headers": headers,
            "body": body.preview(),
        }))
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        let producer = self.producers.get();
        let mut failures: Vec<(usize, SinkError)> = Vec::new();
        let mut pending: Vec<(usize, DeliveryFuture, String)> = Vec::with_capacity(batch.len());
        // Enqueued one by one in batch order; a full local queue is waited out on the spot, so
        // a later record never overtakes an earlier one.
        for (i, o) in batch.iter().enumerate() {
            let address = match self.addressing.address(o.event) {
                Ok(a) => a,
                Err(e) => {
                    failures.push((i, e));
                    continue;
                }
            };
            // A topic that does not exist: this record to the DLQ, the others go on.
            if let Err(e) = self.topics.check(&producer, &address.topic).await {
                failures.push((i, e));
                continue;
            }
            let mut record =
                FutureRecord::<[u8], [u8]>::to(&address.topic).headers(address.headers);
            // No value (a tombstone passed on) sets none: the record is a tombstone too.
            if let Some(value) = o.body.bytes() {
                record = record.payload(value);
            }
            if let Some(k) = &address.key {
                record = record.key(k.as_ref());
            }
            if let Some(p) = address.partition {
                record = record.partition(p);
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push((i, delivery, address.topic.clone()));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => {
                        failures.push((i, classify(&e)));
                        break;
                    }
                }
            }
        }
        for (i, delivery, topic) in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    // Retryable; the topic is looked up again before the next attempt, which
                    // dead-letters the record if the topic is gone.
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::UnknownTopicOrPartition
                                | RDKafkaErrorCode::UnknownTopic
                        )
                    ) {
                        self.topics.forget(&topic);
                    }
                    failures.push((i, classify(&e)))
                }
                Err(_) => failures.push((
                    i,
                    SinkError::retryable("the kafka producer dropped the record"),
                )),
            }
        }
        // Failed for good: the records it failed are retried on a new producer.
        if self.producers.replace_if_fatal(&producer).is_some() {
            producers::retire(producer);
        }
        SinkFailure::of(batch.len(), failures)
    }

    async fn sync(&self) -> Result<(), SinkError> {
        // Every write already waited for `acks=all`.
        Ok(())
    }

    fn max_body_bytes(&self, event: &Envelope) -> Option<usize> {
        use rdkafka::message::Headers;
        let address = self.addressing.address(event).ok()?;
        let headers: usize = address
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 10)
            .sum();
        let key = address.key.map_or(0, |k| k.len());
        self.max_message_bytes
            .checked_sub(RECORD_OVERHEAD + key + headers)
    }
}

/// Whether a produce error can go away by itself (the broker down or busy, a leader moving) or
/// is a rejection of the record that retrying will not change.
fn classify(e: &KafkaError) -> SinkError {
    use RDKafkaErrorCode::*;
    let permanent = matches!(
        e.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessage
                | InvalidMessageSize
                | InvalidRecord
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | InvalidRequiredAcks
                | UnknownPartition
                | InvalidPartitions
        )
    );
    let message = format!("kafka: {e}");
    let error = if permanent {
        SinkError::permanent(message)
    } else {
        SinkError::retryable(message)
    };
    error.caused_by(e.clone())
}
