//! The Kafka source: a consumer in a consumer group, so that several weir processes share a
//! topic's partitions. Offsets are committed by hand, only for the contiguous prefix of finished
//! events of each partition; a rebalance finishes (or, after `revoke_timeout_ms`, abandons) the
//! events of revoked partitions and commits them before letting the partitions go. At least
//! once: after a crash, events after the last commit are read again. A partition without a
//! committed offset gets one at its first assignment: where `start` put it (start.rs).
//!
//! Keys: the record key is the event's ordering key, so a key's events stay in order while
//! other keys of the same partition run in parallel lanes.

mod consumer;
mod offsets;
mod record;
mod start;

use crate::config::component::KeyError;
use super::{
    Acker, Format, ReadSettings, Source, SourceContext, SourceError, SourceEvent,
    SourceKind,
};
use crate::event::Position;
use crate::kafka::{Logged, Names, Properties, Role, check_properties, client_config};
use async_trait::async_trait;
use consumer::Context;
use offsets::Shared;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use serde::Deserialize;
use schemars::JsonSchema;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KafkaSourceConfig {
    /// Bootstrap brokers: `"host:9092"` or a list.
    pub brokers: Names,
    /// The topics to consume.
    pub topics: Names,
    /// The consumer group: processes in one group share the partitions.
    pub group: String,
    /// Where a partition without a committed offset starts: `earliest`, `latest`, or
    /// `timestamp:<RFC 3339>`; resolved once, at its first assignment, and committed.
    #[serde(default)]
    pub start: Start,
    #[serde(default)]
    pub format: Format,
    /// Records per batch at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long a batch waits to fill before it goes as it is.
    #[serde(default = "default_batch_window_ms")]
    pub batch_window_ms: u64,
    /// How long a rebalance waits for the revoked partitions' events to finish before it lets
    /// them go (the rest is read again by the next owner).
    #[serde(default = "default_revoke_timeout_ms")]
    pub revoke_timeout_ms: u64,
    /// librdkafka consumer properties, passed through (TLS, SASL, timeouts, ...).
    #[serde(default)]
    pub properties: Properties,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Start {
    #[default]
    Earliest,
    Latest,
    /// The text as written, and the time in milliseconds since the epoch.
    Timestamp(String, i64),
}

/// `earliest`, `latest` or `timestamp:<RFC 3339 time>`.
impl JsonSchema for Start {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KafkaStart".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Where a group without committed offsets starts: `earliest`, `latest`, or `timestamp:<RFC 3339 time>` (the first record at or after it).",
            "type": "string",
            "pattern": "^(earliest|latest|timestamp:.+)$",
        })
    }
}

impl<'de> Deserialize<'de> for Start {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "earliest" => Ok(Start::Earliest),
            "latest" => Ok(Start::Latest),
            other => match other.strip_prefix("timestamp:") {
                Some(at) => chrono::DateTime::parse_from_rfc3339(at.trim())
                    .map(|t| Start::Timestamp(other.to_owned(), t.timestamp_millis()))
                    .map_err(|e| {
                        serde::de::Error::custom(format!(
                            "`{at}` is not an RFC 3339 time ({e}); for example timestamp:2026-11-01T00:00:00Z"
                        ))
                    }),
                None => Err(serde::de::Error::custom(format!(
                    "unknown value `{other}`; expected `earliest`, `latest` or `timestamp:<RFC 3339 time>`"
                ))),
            },
        }
    }
}

fn default_batch_size() -> usize {
    500
}
fn default_batch_window_ms() -> u64 {
    20
}
fn default_revoke_timeout_ms() -> u64 {
    10_000
}

/// Properties weir sets itself, and what to use instead.
const OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "use `brokers`"),
    ("group.id", "use `group`"),
    (
        "enable.auto.commit",
        "weir commits only finished events' offsets",
    ),
    (
        "enable.auto.offset.store",
        "weir commits only finished events' offsets",
    ),
    ("auto.offset.reset", "use `start`"),
];

#[async_trait]
impl SourceKind for KafkaSourceConfig {
    const KIND: &'static str = "kafka";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.topics.list().is_empty() || self.topics.list().iter().any(|t| t.is_empty()) {
            return Err((
                "topics",
                "name at least one topic; names must not be empty".into(),
            ));
        }
        if self.group.is_empty() {
            return Err(("group", "must not be empty".into()));
        }
        if self.brokers.joined().is_empty() {
            return Err(("brokers", "must not be empty".into()));
        }
        super::check_batch_size(self.batch_size)?;
        if self.revoke_timeout_ms == 0 {
            return Err(("revoke_timeout_ms", "must be at least 1".into()));
        }
        // A revocation blocks the consumer's poll while it waits; librdkafka leaves the group
        // if poll is not called within max.poll.interval.ms.
        let max_poll = match self.properties.get("max.poll.interval.ms") {
            Some(p) => p.text().parse::<u64>().unwrap_or(u64::MAX),
            None => 300_000,
        };
        if self.revoke_timeout_ms >= max_poll {
            return Err((
                "revoke_timeout_ms",
                format!(
                    "must be less than max.poll.interval.ms ({max_poll}): the consumer would leave the group while it waits"
                ),
            ));
        }
        check_properties(&self.properties, OWNED)
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings::unlimited(self.format, self.batch_size)
    }

    async fn reach(&self, timeout: Duration) -> Result<Option<String>, KeyError> {
        let topics: Vec<String> = self.topics.list().iter().map(|t| t.to_string()).collect();
        // Blocks this thread while the cluster answers: `weir check --connect` reaches one
        // thing at a time, on a runtime of its own.
        crate::kafka::reach(Role::Consumer, &self.brokers, &self.properties, &topics, timeout)
            .map(Some)
            .map_err(|e| (e.key("topics"), e.into()))
    }

    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        open(self, ctx).await
    }
}

async fn open(
    cfg: &KafkaSourceConfig,
    ctx: &SourceContext,
) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
    let reset = match cfg.start {
        Start::Latest => "latest",
        // A timestamp start looks partitions up by time in the rebalance; this is the fallback.
        Start::Earliest | Start::Timestamp(..) => "earliest",
    };
    let client = client_config(
        &cfg.brokers,
        &[
            // Rebalances move only the partitions that change owner; the others keep flowing.
            ("partition.assignment.strategy", "cooperative-sticky"),
            // Statistics every 5 s give each partition's consumer lag (`weir_source_lag`).
            ("statistics.interval.ms", "5000"),
        ],
        &cfg.properties,
        &[
            ("group.id", cfg.group.clone()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("auto.offset.reset", reset.into()),
        ],
    );
    let shared = Arc::new(Shared::default());
    let logged = Logged::new(&ctx.pipeline, "source");
    let mut context = Context::new(logged, shared.clone(), cfg);
    context.status = ctx.status.clone();
    // Not ready until librdkafka's first statistics say a broker is up (within 5 s).
    if let Some(s) = &ctx.status {
        s.set_source_connected(false);
    }
    let consumer: BaseConsumer<Context> = client
        .create_with_context(context)
        .map_err(|e| SourceError::caused(format!("source: cannot create kafka consumer: {e}"), e))?;
    consumer
        .subscribe(&cfg.topics.list())
        .map_err(|e| SourceError::caused(format!("source.topics: cannot subscribe: {e}"), e))?;
    let consumer = Arc::new(consumer);
    // Before the thread polls: rebalances (served by poll) commit through it.
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    // Two batches ahead: enough to keep the pipeline fed, little to re-read after a crash.
    let (tx, rx) = mpsc::channel(2);
    let (c, format, size) = (consumer.clone(), cfg.format, cfg.batch_size);
    let window = Duration::from_millis(cfg.batch_window_ms);
    let thread = std::thread::Builder::new()
        .name(format!("kafka-{}", ctx.pipeline))
        .spawn(move || consumer::run(c, tx, format, size, window))
        .map_err(|e| SourceError::caused(format!("cannot start the kafka consumer thread: {e}"), e))?;
    tracing::info!(pipeline = %ctx.pipeline, brokers = %cfg.brokers.joined(), topics = ?cfg.topics.list(),
        group = %cfg.group, "kafka consumer started");
    Ok((
        Box::new(KafkaSource {
            rx,
            thread: Some(thread),
        }),
        Box::new(KafkaAcker {
            pipeline: ctx.pipeline.clone(),
            shared,
            consumer: Some(consumer),
        }),
    ))
}

struct KafkaSource {
    rx: mpsc::Receiver<Vec<SourceEvent>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[async_trait]
impl Source for KafkaSource {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        tokio::select! {
            _ = stop.cancelled() => {
                // The consumer thread sees the closed channel and ends.
                self.rx.close();
                Ok(None)
            }
            batch = self.rx.recv() => match batch {
                Some(batch) => Ok(Some(batch)),
                None => {
                    let ended = self.thread.take().map(|t| t.join());
                    match ended {
                        Some(Err(_)) => Err(SourceError::Other("the kafka consumer thread panicked".into())),
                        _ => Ok(None),
                    }
                }
            },
        }
    }
}

struct KafkaAcker {
    pipeline: String,
    shared: Arc<Shared>,
    /// `None` only once dropped.
    consumer: Option<Arc<BaseConsumer<Context>>>,
}

/// How long stopping waits for the consumer to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Drop for KafkaAcker {
    /// Closing the consumer leaves the group, so that its partitions move at once rather than
    /// after the session times out; librdkafka waits for the broker to answer, forever if it is
    /// gone. So the close runs on a thread of its own, waited for a bounded time (the process
    /// exits without it).
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let (done, closed) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("kafka-close".into())
            .spawn(move || {
                drop(consumer);
                let _ = done.send(());
            });
        if spawned.is_err() {
            return;
        }
        let wait = || closed.recv_timeout(CLOSE_TIMEOUT).is_ok();
        let in_time = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        if !in_time {
            tracing::warn!(pipeline = %self.pipeline, "kafka consumer did not leave its group within {} s (broker unreachable?); its partitions move when its session times out", CLOSE_TIMEOUT.as_secs());
        }
    }
}

#[async_trait]
impl Acker for KafkaAcker {
    fn track(&mut self, _position: Position) {
        // Tracked by the consumer thread when it hands the batch over, so that a rebalance
        // knows about events still on their way to the router.
    }

    fn finish(&mut self, position: Position) {
        self.shared.finish(position);
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        // Called after the sink and DLQ were synced: a revocation waiting for that may commit.
        self.shared.synced();
        let commits = self.shared.to_commit();
        if commits.is_empty() {
            return Ok(());
        }
        let tpl = consumer::commit_list(&commits)
            .map_err(|e| SourceError::caused(format!("kafka commit: {e}"), e))?;
        let Some(consumer) = self.consumer.clone() else {
            return Ok(());
        };
        // Asynchronous: a synchronous commit waits while a rebalance is in progress, and would
        // stall the pipeline that the rebalance is waiting for. The outcome arrives in the
        // consumer's commit callback; closing the consumer waits for commits still under way.
        consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|e| SourceError::caused(format!("kafka commit failed: {e}"), e))?;
        Ok(())
    }

    fn checkpoint_requests(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.shared.checkpoint.clone())
    }
}
