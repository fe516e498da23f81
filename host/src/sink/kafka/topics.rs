//! Whether the sink's topics exist. weir creates no topics, and librdkafka keeps a record for a
//! topic it does not know waiting (then failing it as retryable) however long the topic stays
//! missing. So the sink asks the cluster itself: a topic absent from the metadata that a reachable
//! broker just sent does not exist, which is permanent for the records sent to it; a cluster
//! that does not answer says nothing about the topic, and its records are tried as usual.

use crate::kafka::Logged;
use crate::sink::SinkError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a metadata request waits for a broker before the cluster counts as unreachable.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a topic found missing is taken as missing before it is looked up again (so that a
/// batch full of records for it makes one request, and a topic created later is soon seen).
const MISSING_FOR: Duration = Duration::from_secs(1);

/// What the cluster says of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lookup {
    Exists,
    /// Absent from the metadata a broker sent: the topic does not exist.
    Missing,
    /// The cluster did not answer, or the topic is there but not usable yet (no leader): try
    /// again later. The reason.
    Unsure(String),
}

/// Asks the cluster about `topic` (a fresh metadata request, waited for on a blocking thread).
pub(super) async fn lookup(producer: &FutureProducer<Logged>, topic: &str) -> Lookup {
    let client = producer.clone();
    let name = topic.to_owned();
    let metadata = tokio::task::spawn_blocking(move || {
        client
            .client()
            .fetch_metadata(Some(&name), METADATA_TIMEOUT)
    })
    .await;
    let metadata = match metadata {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Lookup::Unsure(format!("cannot reach kafka: {e}")),
        Err(e) => return Lookup::Unsure(format!("kafka metadata lookup failed: {e}")),
    };
    match metadata.topics().iter().find(|t| t.name() == topic) {
        None => Lookup::Missing,
        Some(t) => match t.error().map(RDKafkaErrorCode::from) {
            None if !t.partitions().is_empty() => Lookup::Exists,
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                Lookup::Missing
            }
            other => Lookup::Unsure(format!("kafka topic `{topic}` is not available: {other:?}")),
        },
    }
}

/// The error for a record (or a sink) whose topic does not exist.
pub(super) fn missing(topic: &str) -> SinkError {
    SinkError::permanent(format!(
        "kafka topic `{topic}` does not exist (weir does not create topics)"
    ))
}

/// At start: waits up to `wait` for `topic` to appear (a broker that just came up, topics
/// created a moment later), saying so in the log. Fails for good if it never does; a cluster that
/// cannot be reached is a retryable error (the pipeline waits it out as for any sink).
pub(super) async fn wait_for(
    producer: &FutureProducer<Logged>,
    topic: &str,
    wait: Duration,
    pipeline: &str,
) -> Result<(), SinkError> {
    let start = Instant::now();
    let mut said = false;
    loop {
        match lookup(producer, topic).await {
            Lookup::Exists => {
                if said {
                    tracing::info!(pipeline, topic, "kafka topic appeared");
                }
                return Ok(());
            }
            Lookup::Unsure(reason) => return Err(SinkError::retryable(reason)),
            Lookup::Missing if start.elapsed() >= wait => {
                return Err(SinkError::permanent(format!(
                    "kafka topic `{topic}` does not exist (waited {} s; weir does not create topics; `topic_wait_s` sets how long to wait)",
                    wait.as_secs()
                )));
            }
            Lookup::Missing => {
                if !said {
                    tracing::warn!(
                        pipeline,
                        topic,
                        wait_s = wait.as_secs(),
                        "kafka topic does not exist (yet); waiting for it"
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// What the sink learnt of the topics its template rendered: one that exists stays known (until
/// a record for it fails as an unknown topic: [`Topics::forget`]); a missing one is looked up
/// again after [`MISSING_FOR`], one the cluster said nothing about after [`UNSURE_FOR`] (so that
/// an outage costs one metadata request per topic now and then, not one per record).
#[derive(Default)]
pub(super) struct Topics {
    known: Mutex<HashMap<String, (Known, Instant)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Exists,
    Missing,
    Unsure,
}

/// How long a topic the cluster said nothing about is sent to without asking again.
const UNSURE_FOR: Duration = Duration::from_secs(10);

impl Topics {
    /// Whether records for `topic` can be sent: `Err` (permanent) when it does not exist.
    pub(super) async fn check(
        &self,
        producer: &FutureProducer<Logged>,
        topic: &str,
    ) -> Result<(), SinkError> {
        let cached = self.lock().get(topic).copied();
        match cached {
            Some((Known::Exists, _)) => return Ok(()),
            Some((Known::Missing, at)) if at.elapsed() < MISSING_FOR => return Err(missing(topic)),
            Some((Known::Unsure, at)) if at.elapsed() < UNSURE_FOR => return Ok(()),
            _ => {}
        }
        let known = match lookup(producer, topic).await {
            Lookup::Exists => Known::Exists,
            Lookup::Missing => Known::Missing,
            // Sent as usual: librdkafka waits for the cluster, then `[retry]` paces it.
            Lookup::Unsure(_) => Known::Unsure,
        };
        self.lock()
            .insert(topic.to_owned(), (known, Instant::now()));
        match known {
            Known::Missing => Err(missing(topic)),
            Known::Exists | Known::Unsure => Ok(()),
        }
    }

    /// Looks `topic` up again next time (a record for it failed as an unknown topic).
    pub(super) fn forget(&self, topic: &str) {
        self.lock().remove(topic);
    }

    /// Records `topic` as existing (checked at start).
    pub(super) fn exists(&self, topic: &str) {
        self.lock()
            .insert(topic.to_owned(), (Known::Exists, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Known, Instant)>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
