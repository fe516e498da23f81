//! The NATS JetStream source: a durable pull consumer, which several weir processes may share
//! (the server hands each message to one of them). A message is acknowledged (`+ACK`, awaiting
//! the server's confirmation) at the checkpoint after it ended and the sink made it durable;
//! while weir holds it, `+WPI` (in progress) is sent before `ack_wait` runs out, so a slow
//! plugin or sink does not make the server deliver it again. At least once: a message not
//! acknowledged comes again after `ack_wait`.
//!
//! Failures: with `on_failure = "dlq"`, a failed message goes to weir's dead-letter queue once
//! it has been delivered `max_attempts` times, and is then terminated (`+TERM`: never delivered
//! again); before that it is handed back (`-NAK` with a growing delay). With `on_failure =
//! "redrive"` it is always handed back, and the consumer's `max_deliver` decides when the
//! server stops delivering it.
//!
//! Positions: weir numbers the messages it receives itself (partition: the batch it came in;
//! offset: its own counter); each maps to the message's acknowledgement subject.

mod ack_info;
mod gaps;
mod inflight;
mod receive;
mod recovery;

use super::{Acker, Format, ReadSettings, Source, SourceContext, SourceError, SourceEvent, SourceKind};
use crate::config::component::KeyError;
use crate::event::Position;
use crate::http_client::Secret;
use crate::nats::{Connection, Link, Servers};
use crate::template::Template;
use async_trait::async_trait;
use inflight::InFlight;
use serde::Deserialize;
use schemars::JsonSchema;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NatsSourceConfig {
    pub servers: Servers,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default = "crate::nats::default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    pub stream: String,
    /// The durable pull consumer's name.
    pub consumer: String,
    /// Create the consumer if it does not exist, with the settings below.
    #[serde(default = "yes")]
    pub create_consumer: bool,
    /// With `create_consumer`: the subjects it takes (default: all of the stream's).
    #[serde(default)]
    pub filter_subject: Option<String>,
    #[serde(default = "default_ack_wait_s")]
    pub ack_wait_s: u64,
    /// With `create_consumer`: deliveries of a message at most (-1: no limit).
    #[serde(default = "default_max_deliver")]
    pub max_deliver: i64,
    #[serde(default)]
    pub deliver_policy: StartAt,
    /// With `create_consumer`: messages delivered and not yet acknowledged at most.
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: i64,
    #[serde(default)]
    pub format: Format,
    /// Messages per batch at most (a pull request asks for at least 1,024: receive.rs).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long one pull request waits on the server for messages (ms).
    #[serde(default = "default_expires_ms")]
    pub expires_ms: u64,
    /// The ordering key as a template over the event (meta included); default: the subject.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub on_failure: NatsOnFailure,
    /// With `on_failure = "dlq"`: deliveries before a failed message goes to weir's DLQ.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NatsOnFailure {
    #[default]
    Dlq,
    Redrive,
}

/// `deliver_policy` of a consumer weir creates.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StartAt {
    #[default]
    All,
    New,
    Last,
}

fn yes() -> bool {
    true
}
fn default_ack_wait_s() -> u64 {
    30
}
fn default_max_deliver() -> i64 {
    -1
}
fn default_max_ack_pending() -> i64 {
    20_000
}
fn default_batch_size() -> usize {
    256
}
fn default_expires_ms() -> u64 {
    5000
}

#[async_trait]
impl SourceKind for NatsSourceConfig {
    const KIND: &'static str = "nats";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        self.connection().validate()?;
        for (key, name) in [("stream", &self.stream), ("consumer", &self.consumer)] {
            if name.is_empty() {
                return Err((key, "must not be empty".into()));
            }
            if name.contains(['.', '*', '>', ' ', '\t']) {
                return Err((key, format!("`{name}` may not hold `.`, `*`, `>` or spaces")));
            }
        }
        if let Some(f) = &self.filter_subject
            && (f.is_empty() || f.contains(char::is_whitespace))
        {
            return Err(("filter_subject", format!("`{f}` is not a subject")));
        }
        if !(1..=86_400).contains(&self.ack_wait_s) {
            return Err(("ack_wait_s", "must be between 1 and 86400".into()));
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            return Err(("max_deliver", "must be -1 (no limit) or at least 1".into()));
        }
        if self.max_ack_pending == 0 || self.max_ack_pending < -1 {
            return Err(("max_ack_pending", "must be -1 (no limit) or at least 1".into()));
        }
        super::check_batch_size(self.batch_size)?;
        if !(100..=600_000).contains(&self.expires_ms) {
            return Err(("expires_ms", "must be between 100 and 600000".into()));
        }
        if let Some(k) = &self.key {
            Template::parse(k).map_err(|e| ("key", format!("invalid template: {e}")))?;
        }
        match (self.on_failure, self.max_attempts) {
            (NatsOnFailure::Redrive, Some(_)) => Err((
                "max_attempts",
                "applies to on_failure = \"dlq\"; with \"redrive\" the consumer's max_deliver decides".into(),
            )),
            (_, Some(0)) => Err(("max_attempts", "must be at least 1".into())),
            _ => Ok(()),
        }
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings::unlimited(self.format, self.batch_size)
    }

    fn preflight(&self) -> Result<(), KeyError> {
        self.connection()
            .preflight()
            .map_err(|(k, m)| (k, m.into()))
    }

    async fn reach(&self, timeout: Duration) -> Result<Option<String>, KeyError> {
        crate::nats::reach_consumer(
            &self.connection(),
            &self.stream,
            &self.consumer,
            self.create_consumer,
            timeout,
        )
        .await
        .map(Some)
        .map_err(|(k, e)| (k, e.into()))
    }

    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        open(self, ctx).await
    }
}

impl NatsSourceConfig {
    fn connection(&self) -> Connection<'_> {
        Connection {
            servers: &self.servers,
            user: self.user.as_deref(),
            password: self.password.as_ref(),
            token: self.token.as_ref(),
            tls_ca: self.tls_ca.as_ref(),
            tls_cert: self.tls_cert.as_ref(),
            tls_key: self.tls_key.as_ref(),
            tls_required: self.tls_required,
            connect_timeout_ms: self.connect_timeout_ms,
        }
    }

    /// The consumer weir creates when it is missing.
    fn consumer_config(&self) -> async_nats::jetstream::consumer::pull::Config {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
        async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(self.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(self.ack_wait_s),
            max_deliver: self.max_deliver,
            filter_subject: self.filter_subject.clone().unwrap_or_default(),
            deliver_policy: match self.deliver_policy {
                StartAt::All => DeliverPolicy::All,
                StartAt::New => DeliverPolicy::New,
                StartAt::Last => DeliverPolicy::Last,
            },
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }
}

/// What the receiver needs to turn messages into events.
#[derive(Clone)]
struct Reading {
    pipeline: String,
    format: Format,
    key: Option<Template>,
    /// `Some(n)`: failed messages go to weir's DLQ from their n-th delivery on; `None`: never.
    dead_letter_from: Option<u32>,
    batch_size: usize,
    expires: Duration,
    status: Option<Arc<crate::observe::status::Status>>,
}

async fn open(
    cfg: &NatsSourceConfig,
    ctx: &SourceContext,
) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
    let fail = |m: String| SourceError::Other(m);
    let status = ctx.status.clone();
    let pipeline = ctx.pipeline.clone();
    let cuts = Arc::new(gaps::Cuts::default());
    let cut = cuts.clone();
    let events: Box<dyn Fn(Link) + Send + Sync> = Box::new(move |link| {
        // Each change once: the client reconnects by itself, and pulls resume after it.
        match link {
            Link::Connected => {
                tracing::info!(pipeline = %pipeline, "nats source connected");
            }
            Link::Disconnected => {
                cut.record();
                tracing::warn!(pipeline = %pipeline, "nats source disconnected; reconnecting");
                if let Some(s) = &status {
                    s.error("source", "nats: disconnected; reconnecting");
                }
            }
            Link::SlowConsumer => {
                cut.record();
                tracing::warn!(pipeline = %pipeline, "nats client dropped deliveries that did not keep up (they come again after ack_wait)");
            }
        }
        if let Some(s) = &status
            && link != Link::SlowConsumer
        {
            s.set_source_connected(link == Link::Connected);
        }
    });
    let conn = cfg.connection();
    let client = conn
        .connect(&format!("weir {}", ctx.pipeline), Some(events))
        .await
        .map_err(|e| fail(format!("source.servers: {e}")))?;
    if let Some(s) = &ctx.status {
        s.set_source_connected(true);
    }
    let timeout = Duration::from_secs(10);
    let js = crate::nats::jetstream(client.clone(), timeout);
    let stream = js.get_stream(&cfg.stream).await.map_err(|e| {
        if crate::nats::stream_missing(&e) {
            fail(format!(
                "source.stream: no stream `{}` on nats {}",
                cfg.stream,
                cfg.servers.shown()
            ))
        } else {
            fail(format!("source.stream: `{}`: {e}", cfg.stream))
        }
    })?;
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        match stream.consumer_info(&cfg.consumer).await {
            Ok(_) => stream
                .get_consumer(&cfg.consumer)
                .await
                .map_err(|e| fail(format!("source.consumer: `{}`: {e}", cfg.consumer)))?,
            Err(e) if crate::nats::consumer_missing(&e) && cfg.create_consumer => {
                tracing::info!(pipeline = %ctx.pipeline, stream = %cfg.stream, consumer = %cfg.consumer,
                    "creating the durable pull consumer");
                stream
                    .create_consumer(cfg.consumer_config())
                    .await
                    .map_err(|e| fail(format!("source.consumer: cannot create `{}`: {e}", cfg.consumer)))?
            }
            Err(e) if crate::nats::consumer_missing(&e) => {
                return Err(fail(format!(
                    "source.consumer: no consumer `{}` on stream `{}` (set create_consumer = true to have weir create it)",
                    cfg.consumer, cfg.stream
                )));
            }
            Err(e) => return Err(fail(format!("source.consumer: `{}`: {e}", cfg.consumer))),
        };
    let info = consumer.cached_info().clone();
    let ack_wait = if info.config.ack_wait.is_zero() {
        Duration::from_secs(30)
    } else {
        info.config.ack_wait
    };
    let reading = Reading {
        pipeline: ctx.pipeline.clone(),
        format: cfg.format,
        key: cfg.key.as_deref().and_then(|k| Template::parse(k).ok()),
        dead_letter_from: match cfg.on_failure {
            NatsOnFailure::Dlq => Some(cfg.max_attempts.unwrap_or(1)),
            NatsOnFailure::Redrive => None,
        },
        batch_size: cfg.batch_size,
        expires: Duration::from_millis(cfg.expires_ms),
        status: ctx.status.clone(),
    };
    // Messages acknowledged at a checkpoint: ask for one early when many wait, so that the
    // consumer's max_ack_pending does not stop deliveries until the next interval.
    let ack_early_at = match info.config.max_ack_pending {
        n if n > 0 => (n as usize / 2).max(1),
        _ => usize::MAX,
    };
    let (inflight, confirmations) = InFlight::new(client.clone(), &ctx.pipeline, ack_wait, ack_early_at)
        .await
        .map_err(fail)?;
    let inflight = Arc::new(inflight);
    // A crashed process's messages stay unacknowledged until their ack_wait runs out, then come
    // again, but newer messages are delivered meanwhile: pulling only once they are all due
    // again makes them come first, and gathering them puts them back in stream order (see
    // recovery.rs), so a key keeps its order across a crash.
    let (wait_first, recovery) = if info.num_ack_pending > 0 {
        tracing::info!(pipeline = %ctx.pipeline, unacknowledged = info.num_ack_pending,
            ack_wait_s = ack_wait.as_secs_f64(),
            "the consumer holds unacknowledged messages (of a stopped process, or of one that shares it): waiting ack_wait before the first pull so that they come first");
        (
            ack_wait + Duration::from_millis(500),
            Some(recovery::Recovery::after_start(
                info.delivered.stream_sequence,
                info.num_ack_pending,
            )),
        )
    } else {
        (Duration::ZERO, None)
    };
    let stop = CancellationToken::new();
    let (tx, rx) = mpsc::channel(4);
    let receiver = receive::Receiver {
        consumer,
        reading,
        inflight: inflight.clone(),
        tx,
        wait_first,
        recovery,
        gaps: gaps::Gaps::new(cuts, client.statistics(), ack_wait, &ctx.pipeline),
    };
    tokio::spawn(receiver.run(stop.clone()));
    tokio::spawn(inflight.clone().keep_in_progress(stop.clone()));
    tokio::spawn(
        inflight
            .clone()
            .take_confirmations(confirmations, stop.clone()),
    );
    tracing::info!(pipeline = %ctx.pipeline, servers = %cfg.servers.shown(), stream = %cfg.stream,
        consumer = %cfg.consumer, ack_wait_s = ack_wait.as_secs_f64(), on_failure = ?cfg.on_failure,
        "nats source started");
    Ok((
        Box::new(NatsSource {
            inflight: inflight.clone(),
            rx,
            pending: VecDeque::new(),
            batch_size: cfg.batch_size,
            batches: 0,
            stop: stop.clone(),
        }),
        Box::new(NatsAcker {
            inflight,
            stop: stop.drop_guard(),
        }),
    ))
}

struct NatsSource {
    inflight: Arc<InFlight>,
    rx: mpsc::Receiver<Vec<SourceEvent>>,
    pending: VecDeque<SourceEvent>,
    batch_size: usize,
    /// Batches handed out: each batch is a partition of its own, so that a key's events handed
    /// back together are those of one batch (see `pipeline::hold`).
    batches: u32,
    stop: CancellationToken,
}

#[async_trait]
impl Source for NatsSource {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        if self.pending.is_empty() {
            let events = tokio::select! {
                _ = stop.cancelled() => {
                    self.stop_receiving().await;
                    return Ok(None);
                }
                received = self.rx.recv() => match received {
                    Some(events) => events,
                    None => return Ok(None),
                },
            };
            // The usual case: the receiver's batch, alone, goes on as it came (not copied
            // through `pending`).
            if events.len() <= self.batch_size && self.rx.is_empty() {
                return Ok(Some(self.numbered(events)));
            }
            self.pending.extend(events);
        }
        while self.pending.len() < self.batch_size {
            match self.rx.try_recv() {
                Ok(events) => self.pending.extend(events),
                Err(_) => break,
            }
        }
        let n = self.pending.len().min(self.batch_size);
        let batch: Vec<SourceEvent> = self.pending.drain(..n).collect();
        Ok(Some(self.numbered(batch)))
    }
}

impl NatsSource {
    /// The next batch: a partition of its own (see `batches`).
    fn numbered(&mut self, mut batch: Vec<SourceEvent>) -> Vec<SourceEvent> {
        self.batches = self.batches.wrapping_add(1);
        for e in &mut batch {
            e.position.partition = self.batches;
        }
        batch
    }

    /// Stops pulling and hands back at once what was pulled and never given to the pipeline.
    async fn stop_receiving(&mut self) {
        self.stop.cancel();
        self.rx.close();
        while let Some(events) = self.rx.recv().await {
            self.pending.extend(events);
        }
        let seqs: Vec<u64> = self.pending.drain(..).map(|e| e.position.offset).collect();
        self.inflight.hand_back(&seqs).await;
    }
}

struct NatsAcker {
    inflight: Arc<InFlight>,
    #[allow(dead_code)]
    stop: tokio_util::sync::DropGuard,
}

#[async_trait]
impl Acker for NatsAcker {
    fn track(&mut self, _position: Position) {
        // Tracked by the receiver as the message arrives, so that it is kept in progress from
        // then on.
    }

    fn finish(&mut self, position: Position) {
        self.inflight.end(position.offset, inflight::Ending::Ack);
    }

    fn finish_dead_lettered(&mut self, position: Position) {
        self.inflight.end(position.offset, inflight::Ending::Term);
    }

    fn release(&mut self, position: Position) {
        self.inflight.end(position.offset, inflight::Ending::Nak);
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        self.inflight
            .acknowledge()
            .await
            .map_err(SourceError::Other)
    }

    fn checkpoint_requests(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.inflight.ack_wanted.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> NatsSourceConfig {
        toml::from_str(&format!(
            "servers = \"nats://127.0.0.1:4222\"\nstream = \"S\"\nconsumer = \"c\"\n{extra}"
        ))
        .unwrap()
    }

    fn refused(extra: &str) -> (&'static str, String) {
        config(extra).validate().unwrap_err()
    }

    #[test]
    fn defaults_are_valid() {
        let c = config("");
        assert_eq!(c.validate(), Ok(()));
        assert!(c.create_consumer);
        assert_eq!(c.on_failure, NatsOnFailure::Dlq);
        let created = c.consumer_config();
        assert_eq!(created.durable_name.as_deref(), Some("c"));
        assert_eq!(created.ack_wait, Duration::from_secs(30));
        assert_eq!(created.max_ack_pending, 20_000);
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(refused("user = \"u\"").0, "password");
        assert_eq!(refused("tls_cert = \"c.pem\"").0, "tls_key");
        assert_eq!(refused("ack_wait_s = 0").0, "ack_wait_s");
        assert_eq!(refused("max_deliver = 0").0, "max_deliver");
        assert_eq!(refused("key = '{\"k\": <$.data.k>'").0, "key");
        assert_eq!(
            refused("on_failure = \"redrive\"\nmax_attempts = 2").0,
            "max_attempts"
        );
        let bad_server: NatsSourceConfig =
            toml::from_str("servers = \"http://x\"\nstream = \"S\"\nconsumer = \"c\"").unwrap();
        assert_eq!(bad_server.validate().unwrap_err().0, "servers");
    }

    #[test]
    fn a_url_password_is_never_shown() {
        let c: NatsSourceConfig = toml::from_str(
            "servers = [\"nats://me:secret@a:4222\", \"b:4222\"]\nstream = \"S\"\nconsumer = \"c\"",
        )
        .unwrap();
        assert_eq!(c.servers.shown(), "nats://me:***@a:4222,b:4222");
    }
}
