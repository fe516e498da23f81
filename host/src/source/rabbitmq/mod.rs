//! The RabbitMQ source: consumes a queue (AMQP 0-9-1) with manual acknowledgements and a
//! prefetch (by default the pipeline's `max_in_flight`, at least 10,000), and acknowledges a
//! delivery only at the checkpoint after it ended (delivered, filtered or dead-lettered) and the sink made it
//! durable. At least once: what was not acknowledged when weir stops, crashes or loses its
//! connection is delivered again by the broker.
//!
//! Failures: with `on_failure = "dlq"` a failed event goes to weir's DLQ (after `[retry]`) and
//! its delivery is acknowledged; with `"redrive"` its delivery is rejected without requeue, so
//! the queue's own dead-letter exchange takes it.
//!
//! Keys: none by default (one lane, the queue's order); `key_header` names a header that holds
//! the key, `key` is a template over the event.

mod consume;
mod inflight;
mod message;

use super::{
    Acker, Format, ReadSettings, Source, SourceContext, SourceError, SourceEvent, SourceKind,
};
use crate::config::component::KeyError;
use crate::event::Position;
use crate::http_client::Secret;
use crate::rabbitmq::{Broker, Declared};
use crate::template::Template;
use async_trait::async_trait;
use inflight::InFlight;
use serde::Deserialize;
use schemars::JsonSchema;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RabbitmqSourceConfig {
    /// `amqp://user@host:5672/vhost` (`amqps://` for TLS).
    pub url: String,
    /// The password, from `{ env = "VAR" }` or `{ file = "path" }`, instead of in the URL.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The connection's name on the broker (default `weir <pipeline>`).
    #[serde(default)]
    pub connection_name: Option<String>,
    /// The queue to consume (it must exist: weir declares nothing).
    pub queue: String,
    #[serde(default)]
    pub format: Format,
    /// Deliveries per batch at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Unacknowledged deliveries the broker sends at most (basic.qos); by default the
    /// pipeline's `[ordering] max_in_flight` (at most 65535).
    #[serde(default)]
    pub prefetch: Option<u16>,
    /// `dlq` (weir's dead-letter queue) or `redrive` (rejected without requeue: the queue's
    /// dead-letter exchange takes it).
    #[serde(default)]
    pub on_failure: RabbitOnFailure,
    /// The ordering key, as a template over the event (`<$.meta.headers.customer>`).
    #[serde(default)]
    pub key: Option<String>,
    /// The header whose value is the ordering key.
    #[serde(default)]
    pub key_header: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RabbitOnFailure {
    #[default]
    Dlq,
    Redrive,
}

fn default_batch_size() -> usize {
    256
}

impl RabbitmqSourceConfig {
    fn broker(&self) -> Broker<'_> {
        Broker {
            url: &self.url,
            password: self.password.as_ref(),
            connection_name: self.connection_name.as_deref(),
        }
    }
}

#[async_trait]
impl SourceKind for RabbitmqSourceConfig {
    const KIND: &'static str = "rabbitmq";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        crate::rabbitmq::validate(self.broker())?;
        if self.queue.is_empty() {
            return Err(("queue", "must not be empty".into()));
        }
        if self.queue.len() > 255 {
            return Err(("queue", "at most 255 bytes (an AMQP limit)".into()));
        }
        super::check_batch_size(self.batch_size)?;
        if self.prefetch == Some(0) {
            return Err((
                "prefetch",
                "must be between 1 and 65535 (0 would mean no limit)".into(),
            ));
        }
        if let Some(t) = &self.key {
            if self.key_header.is_some() {
                return Err(("key_header", "set either `key` or `key_header`, not both".into()));
            }
            Template::parse(t).map_err(|e| ("key", format!("invalid template: {e}")))?;
        }
        if self.key_header.as_deref() == Some("") {
            return Err(("key_header", "must not be empty".into()));
        }
        Ok(())
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings::unlimited(self.format, self.batch_size)
    }

    async fn reach(&self, timeout: Duration) -> Result<Option<String>, KeyError> {
        crate::rabbitmq::reach(self.broker(), Declared::Queue(&self.queue), timeout)
            .await
            .map(Some)
            .map_err(|e| ("queue", e.into()))
    }

    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        open(self, ctx).await
    }
}

/// What the consumer needs to turn deliveries into events.
#[derive(Clone)]
pub(super) struct Reading {
    pipeline: String,
    queue: String,
    url: String,
    password: Option<Secret>,
    connection_name: Option<String>,
    /// The connection's name and consumer tag unless `connection_name` is set.
    default_name: String,
    format: Format,
    prefetch: u16,
    key: Option<Template>,
    key_header: Option<String>,
    redrive: bool,
    /// This process among others (ids of messages without a message id).
    run: String,
    status: Option<Arc<crate::observe::status::Status>>,
}

impl Reading {
    fn broker(&self) -> Broker<'_> {
        Broker {
            url: &self.url,
            password: self.password.as_ref(),
            connection_name: self.connection_name.as_deref(),
        }
    }
}

/// The default prefetch at least (see `open`).
const MIN_DEFAULT_PREFETCH: usize = 10_000;

async fn open(
    cfg: &RabbitmqSourceConfig,
    ctx: &SourceContext,
) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
    // Deliveries are acknowledged at checkpoints, and one is asked for once half the prefetch
    // has ended: a prefetch of a few thousand would make that a checkpoint (an fsync) every
    // thousand messages, so it is never below 10,000 (max_in_flight's default before it
    // became 512 per lane).
    let prefetch = cfg.prefetch.unwrap_or_else(|| {
        u16::try_from(ctx.max_in_flight.max(MIN_DEFAULT_PREFETCH)).unwrap_or(u16::MAX)
    });
    let key = cfg
        .key
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|e| SourceError::Config(format!("source.key: invalid template: {e}")))?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let reading = Reading {
        pipeline: ctx.pipeline.clone(),
        queue: cfg.queue.clone(),
        url: cfg.url.clone(),
        password: cfg.password.clone(),
        connection_name: cfg.connection_name.clone(),
        default_name: format!("weir {}", ctx.pipeline),
        format: cfg.format,
        prefetch,
        key,
        key_header: cfg.key_header.clone(),
        redrive: cfg.on_failure == RabbitOnFailure::Redrive,
        run: format!("{}-{started}", std::process::id()),
        status: ctx.status.clone(),
    };
    // A refusal (no such queue, bad credentials) fails the start; a broker out of reach does
    // not: the consumer keeps trying, and the pipeline is not ready until it connects.
    let checked =
        crate::rabbitmq::reach_checked(cfg.broker(), Declared::Queue(&cfg.queue), Duration::ZERO)
            .await;
    match checked {
        Ok(_) => {}
        Err(e) if e.permanent => {
            return Err(SourceError::Other(format!("queue: {}", e.message)));
        }
        Err(e) => {
            tracing::warn!(pipeline = %ctx.pipeline, error = %e.message,
                "cannot reach the broker yet; starting and reconnecting");
        }
    }
    if let Some(s) = &ctx.status {
        s.set_source_connected(false);
    }
    let inflight = Arc::new(InFlight::new(&ctx.pipeline, prefetch));
    let batch = Arc::new(AtomicU32::new(1));
    let (tx, rx) = mpsc::channel(usize::from(prefetch).max(cfg.batch_size));
    let stop_consuming = CancellationToken::new();
    let stop_all = CancellationToken::new();
    let consumer = consume::Consumer {
        reading,
        inflight: inflight.clone(),
        tx,
        batch: batch.clone(),
    };
    tokio::spawn(consumer.run(stop_consuming.clone(), stop_all.clone()));
    tracing::info!(pipeline = %ctx.pipeline, queue = %cfg.queue, url = %cfg.broker().shown(),
        prefetch, on_failure = ?cfg.on_failure, "rabbitmq source started");
    Ok((
        Box::new(RabbitmqSource {
            inflight: inflight.clone(),
            rx,
            batch_size: cfg.batch_size,
            batch,
            stop: stop_consuming.clone().drop_guard(),
        }),
        Box::new(RabbitmqAcker {
            inflight,
            stop: stop_all.drop_guard(),
        }),
    ))
}

struct RabbitmqSource {
    inflight: Arc<InFlight>,
    rx: mpsc::Receiver<SourceEvent>,
    batch_size: usize,
    /// Numbers the batches (positions' partition).
    batch: Arc<AtomicU32>,
    /// Stops consuming when the source goes (deliveries it never handed on go back to the
    /// queue when the connection closes).
    #[allow(dead_code)]
    stop: tokio_util::sync::DropGuard,
}

#[async_trait]
impl Source for RabbitmqSource {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        let first = tokio::select! {
            _ = stop.cancelled() => {
                self.stop_reading();
                return Ok(None);
            }
            e = self.rx.recv() => match e {
                Some(e) => e,
                None => return Ok(None),
            },
        };
        let mut events = Vec::with_capacity(self.batch_size.min(1024));
        events.push(first);
        while events.len() < self.batch_size {
            match self.rx.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        self.batch.fetch_add(1, Relaxed);
        Ok(Some(events))
    }
}

impl RabbitmqSource {
    /// No more reading: what arrived and was never handed on is left unacknowledged.
    fn stop_reading(&mut self) {
        self.inflight.stop_reading();
        self.rx.close();
        while let Ok(e) = self.rx.try_recv() {
            self.inflight.abandon(e.position.offset);
        }
    }
}

struct RabbitmqAcker {
    inflight: Arc<InFlight>,
    /// Closes the connection when the acker goes (after the final checkpoint).
    #[allow(dead_code)]
    stop: tokio_util::sync::DropGuard,
}

#[async_trait]
impl Acker for RabbitmqAcker {
    fn track(&mut self, _position: Position) {
        // Registered by the consumer as the delivery arrives.
    }

    fn finish(&mut self, position: Position) {
        self.inflight.finish(position.offset);
    }

    fn release(&mut self, position: Position) {
        self.inflight.release(position.offset);
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        self.inflight.settle_done().await;
        Ok(())
    }

    fn checkpoint_requests(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.inflight.wanted.clone())
    }
}
