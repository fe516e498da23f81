//! The RabbitMQ sink: publishes each event to an exchange with a routing key rendered from a
//! template, persistent (delivery mode 2), on a channel in confirm mode. A write publishes its
//! entries one after another without waiting (pipelined), then waits for every confirm: an
//! entry is delivered once the broker confirmed it (so `sync` has nothing to do). A negative
//! confirm, or a connection lost before the confirm, is a failure worth retrying (the channel is
//! opened again for the next attempt); a message returned as unroutable (`mandatory`, no queue
//! bound for its routing key) is a permanent failure, dead-lettered with the reason.
//!
//! Order: a write's entries are published in order on one channel, which the broker keeps. Once
//! an entry fails in a way that is retried, the write's later entries of the same key fail with
//! it (they may have been confirmed: the retry publishes them again, at least once), so that a
//! key is never written out of order.

use super::{Outgoing, Render, Rendered, Sink, SinkContext, SinkError, SinkFailure, SinkKind};
use crate::config::component::KeyError;
use crate::event::Envelope;
use crate::http_client::Secret;
use crate::rabbitmq::{Broker, Declared};
use crate::template::Template;
use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use serde::Deserialize;
use schemars::JsonSchema;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RabbitmqSinkConfig {
    pub url: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub connection_name: Option<String>,
    /// The exchange to publish to; `""` is the default exchange (the routing key names a queue).
    pub exchange: String,
    /// The routing key, as a template.
    pub routing_key: String,
    /// Return unroutable messages (dead-lettered with the reason) rather than drop them.
    #[serde(default = "yes")]
    pub mandatory: bool,
    /// Delivery mode 2: the broker writes the message to disk (in a durable queue).
    #[serde(default = "yes")]
    pub persistent: bool,
    /// The `content_type` property; `""` sets none.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Headers to set: name = template (string values).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long a write waits for the broker's confirms.
    #[serde(default = "default_confirm_timeout_ms")]
    pub confirm_timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_content_type() -> String {
    "application/json".into()
}
fn default_confirm_timeout_ms() -> u64 {
    30_000
}

/// The most an AMQP short string (a routing key, a header name) holds.
const SHORT_MAX: usize = 255;

impl RabbitmqSinkConfig {
    fn broker(&self) -> Broker<'_> {
        Broker {
            url: &self.url,
            password: self.password.as_ref(),
            connection_name: self.connection_name.as_deref(),
        }
    }
}

#[async_trait]
impl SinkKind for RabbitmqSinkConfig {
    const KIND: &'static str = "rabbitmq";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        crate::rabbitmq::validate(self.broker())?;
        if self.exchange.len() > SHORT_MAX {
            return Err(("exchange", "at most 255 bytes (an AMQP limit)".into()));
        }
        Template::parse(&self.routing_key)
            .map_err(|e| ("routing_key", format!("invalid template: {e}")))?;
        for (name, text) in &self.headers {
            if name.is_empty() || name.len() > SHORT_MAX {
                return Err(("headers", "a header name has 1 to 255 bytes".into()));
            }
            Template::parse(text).map_err(|e| ("headers", format!("{name}: invalid template: {e}")))?;
        }
        if self.content_type.len() > SHORT_MAX {
            return Err(("content_type", "at most 255 bytes".into()));
        }
        if self.confirm_timeout_ms == 0 {
            return Err(("confirm_timeout_ms", "must be at least 1".into()));
        }
        Ok(())
    }

    fn preview(&self, pipeline: &str) -> Result<Box<dyn Render>, SinkError> {
        Ok(Box::new(Messages::new(self, pipeline)?))
    }

    async fn reach(&self, _pipeline: &str, timeout: Duration) -> Result<Option<String>, KeyError> {
        crate::rabbitmq::reach(self.broker(), Declared::Exchange(&self.exchange), timeout)
            .await
            .map(Some)
            .map_err(|e| ("exchange", e.into()))
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        let sink = RabbitmqSink {
            url: self.url.clone(),
            password: self.password.clone(),
            connection_name: self.connection_name.clone(),
            default_name: format!("weir {} {}", ctx.pipeline, ctx.target),
            exchange: self.exchange.clone(),
            messages: Messages::new(self, &ctx.pipeline)?,
            confirm_timeout: Duration::from_millis(self.confirm_timeout_ms),
            links: (0..CHANNELS).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: Default::default(),
        };
        // Checks that the exchange exists and the credentials work: a refusal fails the start
        // (the router tries again), as a broker out of reach does.
        let first = sink.connect().await?;
        *sink.links[0].lock().await = Some(first);
        Ok(Box::new(sink))
    }
}

/// How the sink makes an event into a message, without a connection (`weir dry-run`).
struct Messages {
    pipeline: String,
    exchange: String,
    routing_key: Template,
    mandatory: bool,
    persistent: bool,
    content_type: Option<String>,
    headers: Vec<(String, Template)>,
}

/// One message ready to publish.
struct Message<'a> {
    routing_key: String,
    body: &'a [u8],
    properties: BasicProperties,
}

impl Messages {
    fn new(cfg: &RabbitmqSinkConfig, pipeline: &str) -> Result<Self, SinkError> {
        Ok(Messages {
            pipeline: pipeline.to_owned(),
            exchange: cfg.exchange.clone(),
            routing_key: Template::parse(&cfg.routing_key)
                .map_err(|e| SinkError::permanent(format!("routing_key: invalid template: {e}")))?,
            mandatory: cfg.mandatory,
            persistent: cfg.persistent,
            content_type: Some(cfg.content_type.clone()).filter(|c| !c.is_empty()),
            headers: super::named_templates("headers", &cfg.headers)?,
        })
    }

    fn message<'a>(&self, o: &'a Outgoing<'_>) -> Result<Message<'a>, SinkError> {
        let event: &Envelope = o.event;
        let routing_key = self.routing_key.render(event, &self.pipeline);
        if routing_key.len() > SHORT_MAX {
            return Err(SinkError::permanent(format!(
                "rabbitmq: the routing key is {} bytes; AMQP allows 255",
                routing_key.len()
            )));
        }
        let mut props = BasicProperties::default()
            .with_message_id(short(&event.id))
            .with_correlation_id(short(event.correlation_id()));
        if self.persistent {
            props = props.with_delivery_mode(2);
        }
        if let Some(c) = &self.content_type {
            props = props.with_content_type(c.as_str().into());
        }
        if !self.headers.is_empty() {
            let mut table = FieldTable::default();
            for (name, t) in &self.headers {
                let value = t.render(event, &self.pipeline);
                table.insert(
                    name.as_str().into(),
                    AMQPValue::LongString(LongString::from(value)),
                );
            }
            props = props.with_headers(table);
        }
        Ok(Message {
            routing_key,
            body: o.body.or_null(),
            properties: props,
        })
    }
}

/// A short string property cut to 255 bytes (at a character boundary) rather than refused: an
/// id longer than that is rare, and the event is still worth delivering.
fn short(s: &str) -> ShortString {
    let mut end = s.len().min(SHORT_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].into()
}

impl Render for Messages {
    fn render(&self, body: Rendered<'_>, event: &Envelope) -> Result<serde_json::Value, SinkError> {
        let o = Outgoing { body, event };
        let m = self.message(&o)?;
        let p = &m.properties;
        let headers = p
            .headers()
            .as_ref()
            .map_or(serde_json::json!({}), crate::rabbitmq::table_to_json);
        Ok(serde_json::json!({
            "body": super::preview_bytes(m.body),
            "exchange": self.exchange,
            "routing_key": m.routing_key,
            "mandatory": self.mandatory,
            "properties": {
                "message_id": p.message_id().as_ref().map(|s| s.as_str()),
                "correlation_id": p.correlation_id().as_ref().map(|s| s.as_str()),
                "content_type": p.content_type().as_ref().map(|s| s.as_str()),
                "delivery_mode": p.delivery_mode(),
            },
            "headers": headers,
        }))
    }
}

struct RabbitmqSink {
    url: String,
    password: Option<Secret>,
    connection_name: Option<String>,
    default_name: String,
    exchange: String,
    messages: Messages,
    confirm_timeout: Duration,
    /// Connections with a confirm-mode channel each; a write has one to itself, so that the
    /// messages the broker returns during it are its own (lapin hands a returned message to
    /// whichever confirm completes next on the channel). `None` after it failed, until a write
    /// opens another.
    links: Vec<tokio::sync::Mutex<Option<Link>>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Writes under way at once (lanes beyond this wait for a channel).
const CHANNELS: usize = 4;

struct Link {
    conn: Connection,
    channel: Channel,
}

impl RabbitmqSink {
    fn broker(&self) -> Broker<'_> {
        Broker {
            url: &self.url,
            password: self.password.as_ref(),
            connection_name: self.connection_name.as_deref(),
        }
    }

    /// A new connection and confirm-mode channel, once the exchange is known to exist.
    async fn connect(&self) -> Result<Link, SinkError> {
        let fail = |e: crate::rabbitmq::RabbitError| {
            let error = if e.permanent {
                SinkError::permanent(e.message.clone())
            } else {
                SinkError::retryable(e.message.clone())
            };
            error.caused_by(e)
        };
        crate::rabbitmq::reach_checked(
            self.broker(),
            Declared::Exchange(&self.exchange),
            crate::rabbitmq::CONNECT_TIMEOUT,
        )
        .await
        .map_err(fail)?;
        let (conn, channel) = crate::rabbitmq::open_channel(self.broker(), &self.default_name)
            .await
            .map_err(fail)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| {
                SinkError::retryable(format!(
                    "rabbitmq {}: confirm.select: {e}",
                    self.broker().shown()
                ))
            })?;
        Ok(Link { conn, channel })
    }

    fn unroutable(&self, routing_key: &str, code: u16, text: &str) -> SinkError {
        let exchange = if self.exchange.is_empty() {
            "(default)"
        } else {
            &self.exchange
        };
        SinkError::permanent(format!(
            "unroutable: exchange {exchange} routing key {routing_key} ({code} {text})"
        ))
    }
}

#[async_trait]
impl Sink for RabbitmqSink {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        let mut failures: Vec<(usize, SinkError)> = Vec::new();
        let mut messages = Vec::with_capacity(batch.len());
        for (i, o) in batch.iter().enumerate() {
            match self.messages.message(o) {
                Ok(m) => messages.push((i, m)),
                Err(e) => failures.push((i, e)),
            }
        }
        if messages.is_empty() {
            return Err(SinkFailure::Some(failures));
        }
        let slot = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.links.len();
        let mut link = self.links[slot].lock().await;
        if link
            .as_ref()
            .is_some_and(|l| !l.channel.status().connected())
            && let Some(old) = link.take()
        {
            let _ = old.conn.close(200, "reconnecting".into()).await;
        }
        if link.is_none() {
            *link = Some(self.connect().await.map_err(SinkFailure::All)?);
        }
        let Some(channel) = link.as_ref().map(|l| l.channel.clone()) else {
            return Err(SinkFailure::All(SinkError::retryable("rabbitmq: no channel")));
        };
        let options = BasicPublishOptions {
            mandatory: self.messages.mandatory,
            ..Default::default()
        };
        // Published one after another without waiting for confirms; then every confirm.
        let mut pending = Vec::with_capacity(messages.len());
        let mut broken: Option<SinkError> = None;
        for (i, m) in &messages {
            if let Some(e) = &broken {
                failures.push((*i, e.clone()));
                continue;
            }
            let published = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    m.routing_key.as_str().into(),
                    options,
                    m.body,
                    m.properties.clone(),
                )
                .await;
            match published {
                Ok(confirm) => pending.push((*i, m.routing_key.as_str(), confirm)),
                Err(e) => {
                    let e = SinkError::retryable(format!(
                        "rabbitmq {}: publish: {e}",
                        self.broker().shown()
                    ));
                    failures.push((*i, e.clone()));
                    broken = Some(e);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.confirm_timeout;
        let mut returned = Vec::new();
        let mut confirmed = Vec::with_capacity(pending.len());
        for (i, routing_key, confirm) in pending {
            let answer = tokio::time::timeout_at(deadline, confirm).await;
            let failure = match answer {
                Ok(Ok(Confirmation::Ack(r))) => {
                    returned.extend(r);
                    None
                }
                Ok(Ok(Confirmation::NotRequested)) => None,
                Ok(Ok(Confirmation::Nack(r))) => {
                    returned.extend(r);
                    Some(SinkError::retryable(
                        "rabbitmq: the broker refused the message (negative confirm)",
                    ))
                }
                Ok(Err(e)) => {
                    broken.get_or_insert_with(|| {
                        SinkError::retryable(format!(
                            "rabbitmq {}: no confirm: {e}",
                            self.broker().shown()
                        ))
                    });
                    broken.clone()
                }
                Err(_) => {
                    broken.get_or_insert_with(|| {
                        SinkError::retryable(format!(
                            "rabbitmq: no confirm within {} ms",
                            self.confirm_timeout.as_millis()
                        ))
                    });
                    broken.clone()
                }
            };
            match failure {
                Some(e) => failures.push((i, e)),
                None => confirmed.push((i, routing_key)),
            }
        }
        // The broker returned these (unroutable); lapin attaches each to whichever confirm
        // completed next, so they are matched to their entries by message id and routing key.
        for r in returned {
            let id = r.delivery.properties.message_id().as_ref().map(|s| s.as_str());
            let rk = r.delivery.routing_key.as_str();
            let found = confirmed.iter().position(|(i, k)| {
                *k == rk && Some(messages_id(&messages, *i)) == id
            });
            if let Some(at) = found {
                let (i, k) = confirmed.swap_remove(at);
                failures.push((i, self.unroutable(k, r.reply_code, r.reply_text.as_str())));
            }
        }
        if broken.is_some()
            && let Some(old) = link.take()
        {
            let _ = old.conn.close(200, "reconnecting".into()).await;
        }
        drop(link);
        if failures.is_empty() {
            return Ok(());
        }
        // A key's later entries must not stay delivered after its earlier one failed in a way
        // that is retried: they fail too and go again after it.
        failures.sort_by_key(|(i, _)| *i);
        let mut retried_keys: HashSet<&str> = HashSet::new();
        let failed: HashSet<usize> = failures.iter().map(|(i, _)| *i).collect();
        let mut more = Vec::new();
        let mut next_failure = failures.iter().peekable();
        for (i, o) in batch.iter().enumerate() {
            let key = o.event.key.as_deref();
            if let Some((_, e)) = next_failure.next_if(|(f, _)| *f == i) {
                if e.retryable
                    && let Some(k) = key
                {
                    retried_keys.insert(k);
                }
                continue;
            }
            if let Some(k) = key
                && retried_keys.contains(k)
                && !failed.contains(&i)
            {
                more.push((
                    i,
                    SinkError::retryable(format!(
                        "an earlier event with key {k} failed in this write; sent again after it"
                    )),
                ));
            }
        }
        failures.extend(more);
        Err(SinkFailure::Some(failures))
    }

    async fn sync(&self) -> Result<(), SinkError> {
        // A confirmed message is durable: nothing is held back.
        Ok(())
    }
}

/// The message id entry `i` was published with.
fn messages_id<'a>(messages: &'a [(usize, Message<'_>)], i: usize) -> &'a str {
    messages
        .iter()
        .find(|(j, _)| *j == i)
        .and_then(|(_, m)| m.properties.message_id().as_ref())
        .map_or("", |s| s.as_str())
}
