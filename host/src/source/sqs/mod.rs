//! The SQS source: long-polling receivers, visibility kept extended while an event is in
//! flight, and finished messages (delivered, filtered or dead-lettered) deleted in batches at
//! each checkpoint, after the sink made them durable. At least once: a message not deleted
//! comes back when its visibility times out.
//!
//! Failures: with `on_failure = "dlq"`, a failed message goes to weir's dead-letter queue once
//! the queue has handed it out `max_attempts` times (its `ApproximateReceiveCount`); before that
//! it is handed back (made visible again). With `on_failure = "redrive"` it is always handed
//! back, so the queue's own redrive policy moves it to the queue's DLQ after `maxReceiveCount`.
//!
//! Keys: a FIFO queue's message group is the ordering key, so a group stays in order while
//! groups run in parallel lanes; a standard queue has no order, and each message is its own key.

mod inflight;
mod message;
mod receive;

use crate::config::component::KeyError;
use super::{
    Acker, Format, ReadSettings, Source, SourceContext, SourceError, SourceEvent,
    SourceKind,
};
use crate::event::Position;
use crate::sqs::{AwsError, QueueRef};
use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use inflight::InFlight;
use serde::Deserialize;
use schemars::JsonSchema;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqsSourceConfig {
    pub queue_url: String,
    /// By default the queue URL's region, else the AWS chain's.
    #[serde(default)]
    pub region: Option<String>,
    /// A local server (`http://127.0.0.1:4566`) instead of AWS's endpoint.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub format: Format,
    /// Messages per batch at most. A receive returns up to 10: more take several receivers.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Receive calls under way at once (default: enough for `batch_size`).
    #[serde(default)]
    pub receivers: Option<usize>,
    /// Long polling: how long a receive waits for messages (0-20 s).
    #[serde(default = "default_wait_time_s")]
    pub wait_time_s: u32,
    /// How long a received message stays invisible to other consumers; weir extends it while
    /// the event is in flight. By default the queue's own setting.
    #[serde(default)]
    pub visibility_timeout_s: Option<u32>,
    /// What becomes of a failed message: `dlq` (weir's dead-letter queue, once received
    /// `max_attempts` times) or `redrive` (left to reappear; the queue's redrive policy decides).
    #[serde(default)]
    pub on_failure: SqsOnFailure,
    /// With `on_failure = "dlq"`: receives before a failed message goes to weir's DLQ.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SqsOnFailure {
    #[default]
    Dlq,
    Redrive,
}

fn default_batch_size() -> usize {
    10
}
fn default_wait_time_s() -> u32 {
    20
}

/// Most messages one receive call returns (an SQS limit).
const RECEIVE_MAX: usize = 10;
/// Most receivers: each holds a connection in a long poll.
const MAX_RECEIVERS: usize = 100;
/// The longest visibility timeout SQS allows (12 hours).
const MAX_VISIBILITY_S: u32 = 43_200;

#[async_trait]
impl SourceKind for SqsSourceConfig {
    const KIND: &'static str = "sqs";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        crate::sqs::validate(self.queue())?;
        super::check_batch_size(self.batch_size)?;
        if let Some(r) = self.receivers
            && !(1..=MAX_RECEIVERS).contains(&r)
        {
            return Err((
                "receivers",
                format!("must be between 1 and {MAX_RECEIVERS}"),
            ));
        }
        if self.wait_time_s > 20 {
            return Err((
                "wait_time_s",
                "must be between 0 and 20 (SQS's limit)".into(),
            ));
        }
        if let Some(v) = self.visibility_timeout_s
            && !(1..=MAX_VISIBILITY_S).contains(&v)
        {
            return Err((
                "visibility_timeout_s",
                format!("must be between 1 and {MAX_VISIBILITY_S} (12 hours, SQS's limit)"),
            ));
        }
        match (self.on_failure, self.max_attempts) {
            (SqsOnFailure::Redrive, Some(_)) => Err((
                "max_attempts",
                "applies to on_failure = \"dlq\"; with \"redrive\" the queue's maxReceiveCount decides".into(),
            )),
            (_, Some(0)) => Err(("max_attempts", "must be at least 1".into())),
            _ => Ok(()),
        }
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings::unlimited(self.format, self.batch_size)
    }

    async fn reach(&self, timeout: Duration) -> Result<Option<String>, KeyError> {
        crate::sqs::reach(self.queue(), timeout)
            .await
            .map(Some)
            .map_err(|e| ("queue_url", e.into()))
    }

    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        open(self, ctx).await
    }
}

impl SqsSourceConfig {
    fn queue(&self) -> QueueRef<'_> {
        QueueRef {
            url: &self.queue_url,
            region: self.region.as_deref(),
            endpoint_url: self.endpoint_url.as_deref(),
        }
    }

    fn receivers(&self) -> usize {
        self.receivers
            .unwrap_or_else(|| self.batch_size.div_ceil(RECEIVE_MAX).min(MAX_RECEIVERS))
    }
}

/// What the receivers need to turn messages into events.
#[derive(Debug, Clone)]
struct Reading {
    pipeline: String,
    queue_url: String,
    format: Format,
    /// Messages per receive call.
    per_receive: i32,
    wait_time_s: i32,
    visibility: Duration,
    /// `Some(n)`: failed messages go to weir's DLQ from their n-th receive on; `None`: never.
    dead_letter_from: Option<u32>,
    /// Told whether SQS answers (readiness).
    status: Option<Arc<crate::observe::status::Status>>,
}

impl Reading {
    fn connected(&self, up: bool) {
        if let Some(s) = &self.status {
            s.set_source_connected(up);
        }
    }

    /// A receive failed: not connected, and the reason is the pipeline's newest error
    /// (`/pipelines`), so that an operator sees why nothing comes in.
    fn failed(&self, e: &crate::sqs::AwsError) {
        if let Some(s) = &self.status {
            s.set_source_connected(false);
            s.error("source", &e.message);
        }
    }
}

async fn open(
    cfg: &SqsSourceConfig,
    ctx: &SourceContext,
) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
    // A long poll waits up to `wait_time_s` for its answer.
    let timeout = Duration::from_secs(u64::from(cfg.wait_time_s) + 10);
    let client = crate::sqs::client(cfg.queue(), timeout)
        .await
        .map_err(|e| SourceError::Connector(e.into()))?;
    let attributes = queue_attributes(&client, cfg, &ctx.pipeline).await?;
    let visibility_s = match cfg.visibility_timeout_s {
        Some(v) => v,
        None => attributes
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    };
    let has_redrive = attributes.contains_key(&QueueAttributeName::RedrivePolicy);
    if cfg.on_failure == SqsOnFailure::Redrive && !has_redrive {
        tracing::warn!(pipeline = %ctx.pipeline, queue = %cfg.queue_url,
            "on_failure = \"redrive\" but the queue has no redrive policy: a message that keeps failing will come back forever");
    }
    let reading = Reading {
        pipeline: ctx.pipeline.clone(),
        queue_url: cfg.queue_url.clone(),
        format: cfg.format,
        per_receive: cfg.batch_size.min(RECEIVE_MAX) as i32,
        wait_time_s: cfg.wait_time_s as i32,
        visibility: Duration::from_secs(u64::from(visibility_s)),
        dead_letter_from: match cfg.on_failure {
            SqsOnFailure::Dlq => Some(cfg.max_attempts.unwrap_or(1)),
            SqsOnFailure::Redrive => None,
        },
        status: ctx.status.clone(),
    };
    // No attributes: SQS was out of reach at start (the receivers keep trying).
    reading.connected(!attributes.is_empty());
    let inflight = Arc::new(InFlight::new(
        client.clone(),
        &cfg.queue_url,
        &ctx.pipeline,
        reading.visibility,
    ));
    let stop = CancellationToken::new();
    let receivers = cfg.receivers();
    let (tx, rx) = mpsc::channel(receivers);
    for _ in 0..receivers {
        let r = receive::Receiver::new(
            client.clone(),
            reading.clone(),
            inflight.clone(),
            tx.clone(),
        );
        tokio::spawn(r.run(stop.clone()));
    }
    tokio::spawn(inflight.clone().extend_visibility(stop.clone()));
    tracing::info!(pipeline = %ctx.pipeline, queue = %cfg.queue_url, receivers, visibility_s,
        on_failure = ?cfg.on_failure, "sqs source started");
    Ok((
        Box::new(SqsSource {
            inflight: inflight.clone(),
            rx,
            pending: VecDeque::new(),
            batch_size: cfg.batch_size,
            stop: stop.clone(),
        }),
        Box::new(SqsAcker {
            inflight,
            stop: stop.drop_guard(),
        }),
    ))
}

/// Reads the queue's settings, which also checks that it exists and that the credentials work.
/// A refusal (no such queue, no permission) fails the start; SQS out of reach does not: the
/// source starts with the defaults and its receivers keep trying (and logging) until it answers.
async fn queue_attributes(
    client: &aws_sdk_sqs::Client,
    cfg: &SqsSourceConfig,
    pipeline: &str,
) -> Result<std::collections::HashMap<QueueAttributeName, String>, SourceError> {
    let out = client
        .get_queue_attributes()
        .queue_url(&cfg.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await;
    match out {
        Ok(out) => Ok(out.attributes.unwrap_or_default()),
        Err(e) => {
            let e = AwsError::from_sdk("GetQueueAttributes", &e);
            if e.retryable {
                tracing::warn!(pipeline, queue = %cfg.queue_url, error = %e.message,
                    "cannot read the queue's settings yet; starting with the defaults and retrying receives");
                return Ok(Default::default());
            }
            let hint = if e.no_such_queue() {
                " (no such queue: check queue_url, and that its region is the client's)"
            } else {
                ""
            };
            let message = format!("queue_url {}: {}{hint}", cfg.queue_url, e.message);
            Err(SourceError::caused(message, e))
        }
    }
}

struct SqsSource {
    inflight: Arc<InFlight>,
    rx: mpsc::Receiver<Vec<SourceEvent>>,
    /// What a receive returned beyond the current batch.
    pending: VecDeque<SourceEvent>,
    batch_size: usize,
    stop: CancellationToken,
}

#[async_trait]
impl Source for SqsSource {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        if self.pending.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.stop_receiving().await;
                    return Ok(None);
                }
                received = self.rx.recv() => match received {
                    Some(events) => self.pending.extend(events),
                    None => return Ok(None),
                },
            }
        }
        // Whatever else has arrived, without waiting: receives return what the queue has.
        while self.pending.len() < self.batch_size {
            match self.rx.try_recv() {
                Ok(events) => self.pending.extend(events),
                Err(_) => break,
            }
        }
        let n = self.pending.len().min(self.batch_size);
        Ok(Some(self.pending.drain(..n).collect()))
    }
}

impl SqsSource {
    /// Stops the receivers and makes what they read, and the pipeline never got, visible again
    /// at once.
    async fn stop_receiving(&mut self) {
        self.stop.cancel();
        self.rx.close();
        while let Some(events) = self.rx.recv().await {
            self.pending.extend(events);
        }
        let seqs: Vec<u64> = self.pending.drain(..).map(|e| e.position.offset).collect();
        self.inflight.return_to_queue(&seqs).await;
    }
}

struct SqsAcker {
    inflight: Arc<InFlight>,
    /// Stops the receivers and the visibility extender when the acker goes.
    #[allow(dead_code)]
    stop: tokio_util::sync::DropGuard,
}

#[async_trait]
impl Acker for SqsAcker {
    fn track(&mut self, _position: Position) {
        // Tracked by the receiver as the message arrives, so that its visibility is extended
        // from then on.
    }

    fn finish(&mut self, position: Position) {
        self.inflight.finish(position.offset);
    }

    fn release(&mut self, position: Position) {
        self.inflight.release(position.offset);
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        self.inflight.return_released().await;
        self.inflight
            .delete_finished()
            .await
            .map_err(|e| SourceError::Connector(e.into()))
    }
}
