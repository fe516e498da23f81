//! Delivery to the sink and the dead-letter queue, shared by every lane of a pipeline.
//!
//! The sink and the DLQ are shared by the lanes, which write to them concurrently; each sink
//! keeps one call's entries together (a file holds a lock for a batch, Kafka lets batches
//! overlap).
//!
//! A failed write is retried, only the entries that failed, as `[retry]` says (exponential
//! backoff with jitter, `max_attempts`, `max_record_age_s`); then, or at once for a permanent
//! rejection, the event fails with stage `sink` and goes where `on_failure` says. A DLQ write is
//! retried until it succeeds or the pipeline stops: an event is never acknowledged without
//! having ended somewhere.
//!
//! Order: a lane is sequential, and waits for a batch's retries before its next batch, so a
//! key's events reach the sink in order. Within one write call, a sink that can fail only some
//! entries must not write an entry after a failed entry with the same key (Kafka's partitions
//! and SQS FIFO groups keep that); the file and stdout sinks fail whole batches.

use super::counters::Counters;
use super::failure_log::FailureLog;
use super::hold::Held;
use super::policy::{OnFailure, Retry};
use super::slot::{Failure, Fate, REDRIVE_META, Slot};
use super::status::Status;
use crate::event::push_json_string;
use crate::sink::{Body, Outgoing, Sink, SinkError, SinkFailure};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A DLQ that fails is retried at this pace, whatever `[retry]` says: it is the last resort.
const DLQ_BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct Outlets {
    pipeline: Arc<str>,
    sink: Box<dyn Sink>,
    body: Body,
    dlq: Box<dyn Sink>,
    counters: Arc<Counters>,
    retry: Retry,
    status: Arc<Status>,
    metrics: OutletMetrics,
    /// Failed events, logged without flooding.
    failure_log: FailureLog,
}

/// Per write call: time and size, for the sink and the DLQ.
struct OutletMetrics {
    sink_seconds: metrics::Histogram,
    sink_batch: metrics::Histogram,
    dlq_seconds: metrics::Histogram,
}

impl OutletMetrics {
    fn new(pipeline: &str) -> Self {
        let p = pipeline.to_owned();
        OutletMetrics {
            sink_seconds: metrics::histogram!("weir_stage_seconds", "pipeline" => p.clone(), "stage" => "sink"),
            sink_batch: metrics::histogram!("weir_batch_size", "pipeline" => p.clone(), "stage" => "sink"),
            dlq_seconds: metrics::histogram!("weir_stage_seconds", "pipeline" => p, "stage" => "dlq"),
        }
    }
}

/// The outcome of one write attempt, per entry of the attempted batch.
enum Attempt {
    Written,
    Failed(SinkError),
}

impl Outlets {
    pub fn new(
        pipeline: Arc<str>,
        sink: Box<dyn Sink>,
        body: Body,
        dlq: Box<dyn Sink>,
        counters: Arc<Counters>,
        retry: Retry,
        status: Arc<Status>,
    ) -> Self {
        Outlets {
            metrics: OutletMetrics::new(&pipeline),
            failure_log: FailureLog::new(pipeline.clone()),
            pipeline,
            sink,
            body,
            dlq,
            counters,
            retry,
            status,
        }
    }

    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    /// Delivers the pending slots: `Delivered` once every event the slot carries (itself, or
    /// what plugins made of it) is written, or `Failed` when a write is rejected for good or its
    /// retries run out. Slots left `Pending` could not be delivered before `stop`.
    pub async fn deliver(&self, slots: &mut [Slot], stop: &CancellationToken) {
        let block = self.retry.on_failure == OnFailure::Block;
        let mut attempts = 0u32;
        let mut first_failed_at: Option<String> = None;
        // A failed event that goes back to its source takes its key's later events with it.
        let mut held = Held::default();
        // written[i][k]: the k-th event of slot i is in the sink; a retry resends only the rest.
        let mut written: Vec<Vec<bool>> = slots
            .iter()
            .map(|s| vec![false; s.deliverables().len()])
            .collect();
        loop {
            mark_delivered(slots, &written);
            let pending: Vec<(usize, usize)> = (0..slots.len())
                .filter(|&i| matches!(slots[i].fate, Fate::Pending))
                .flat_map(|i| {
                    let done = &written[i];
                    (0..done.len())
                        .filter(move |&k| !done[k])
                        .map(move |k| (i, k))
                })
                .collect();
            if pending.is_empty() {
                return;
            }
            attempts += 1;
            let batch: Vec<Outgoing<'_>> = pending
                .iter()
                .map(|&(i, k)| {
                    let event = &slots[i].deliverables()[k];
                    Outgoing {
                        body: self.body.render(event, &self.pipeline),
                        event,
                    }
                })
                .collect();
            let started = std::time::Instant::now();
            let results = write(self.sink.as_ref(), &batch).await;
            self.metrics
                .sink_seconds
                .record(started.elapsed().as_secs_f64());
            self.metrics.sink_batch.record(batch.len() as f64);
            if self.status.tap.active() {
                let written = batch.iter().zip(&results);
                let written = written.filter(|(_, r)| matches!(r, Attempt::Written));
                self.status
                    .tap
                    .publish("sink", written.map(|(o, _)| o.event));
            }
            drop(batch);
            let mut retrying = 0;
            let mut last_error = None;
            for (&(i, k), result) in pending.iter().zip(results) {
                let e = match result {
                    Attempt::Written => {
                        written[i][k] = true;
                        continue;
                    }
                    Attempt::Failed(e) => e,
                };
                if !matches!(slots[i].fate, Fate::Pending) {
                    continue; // another event of this split already failed it
                }
                first_failed_at.get_or_insert_with(crate::event::now_rfc3339);
                let first = first_failed_at.clone();
                if !e.retryable && !block {
                    // Other events of a split may already be written: the DLQ record keeps the
                    // original event, and says which stage rejected it.
                    slots[i].fate =
                        Fate::Failed(Failure::now("sink", "rejected", e.message, attempts, first));
                } else if self.retry.may_retry(attempts, slots[i].received.elapsed()) {
                    retrying += 1;
                    last_error = Some(e);
                } else {
                    let message = format!("gave up after {attempts} attempts: {}", e.message);
                    slots[i].fate =
                        Fate::Failed(Failure::now("sink", "exhausted", message, attempts, first));
                }
            }
            mark_delivered(slots, &written);
            held.apply(slots);
            if retrying == 0 {
                continue; // returns: nothing is pending any more
            }
            Counters::add(&self.counters.retried, retrying);
            let delay = self.retry.backoff(attempts);
            let error = last_error.map(|e| e.message).unwrap_or_default();
            self.status.error("sink", &error);
            if block {
                tracing::error!(pipeline = %self.pipeline, events = retrying, attempts, retry_in_ms = delay.as_millis() as u64,
                    error = %error, "sink write failed; blocking these events' lane until it succeeds (on_failure = \"block\")");
            } else {
                tracing::warn!(pipeline = %self.pipeline, events = retrying, attempts, retry_in_ms = delay.as_millis() as u64,
                    error = %error, "sink write failed; retrying");
            }
            if !pause(delay, stop).await {
                mark_delivered(slots, &written);
                return;
            }
        }
    }

    /// Ends the `Failed` slots: handed back to their source if they were read so
    /// (`Released`), else as `on_failure` says: written to the DLQ (`DeadLettered`; retried until
    /// written or `stop`, slots left `Failed` stay unacknowledged), or `Dropped`.
    pub async fn dead_letter(&self, slots: &mut [Slot], stop: &CancellationToken) {
        self.release(slots);
        if self.retry.on_failure == OnFailure::Drop {
            for slot in slots.iter_mut() {
                if let Fate::Failed(f) = &slot.fate {
                    self.failure_log
                        .event("dropped (on_failure = \"drop\")", slot, f);
                    self.failed(f);
                    slot.fate = Fate::Dropped;
                }
            }
            return;
        }
        let mut delay = self.retry.backoff_min;
        loop {
            let failed: Vec<usize> = (0..slots.len())
                .filter(|&i| matches!(slots[i].fate, Fate::Failed(_)))
                .collect();
            if failed.is_empty() {
                return;
            }
            let batch: Vec<Outgoing<'_>> = failed
                .iter()
                .filter_map(|&i| match &slots[i].fate {
                    Fate::Failed(f) => Some(Outgoing {
                        body: dlq_record(&self.pipeline, &slots[i], f).into(),
                        event: &slots[i].event,
                    }),
                    _ => None,
                })
                .collect();
            let started = std::time::Instant::now();
            let results = write(self.dlq.as_ref(), &batch).await;
            self.metrics
                .dlq_seconds
                .record(started.elapsed().as_secs_f64());
            drop(batch);
            let mut retrying = 0;
            let mut dlq_error = None;
            for (&i, result) in failed.iter().zip(results) {
                match result {
                    Attempt::Written => {
                        if let Fate::Failed(f) = &slots[i].fate {
                            self.failure_log.event("dead-lettered", &slots[i], f);
                            self.failed(f);
                        }
                        slots[i].fate = Fate::DeadLettered;
                    }
                    Attempt::Failed(e) => {
                        retrying += 1;
                        dlq_error.get_or_insert((slots[i].event.id.clone(), e));
                    }
                }
            }
            if let Some((event, e)) = dlq_error {
                // One line per attempt, not per event.
                self.status.error("dlq", &e.message);
                tracing::error!(pipeline = %self.pipeline, events = retrying, first_event = %event, error = %e,
                    "dead-letter queue write failed; retrying (the events stay unacknowledged)");
            }
            if retrying == 0 {
                return;
            }
            Counters::add(&self.counters.retried, retrying);
            if !pause(delay, stop).await {
                return;
            }
            delay = (delay * 2).min(DLQ_BACKOFF_MAX);
        }
    }

    /// Hands the failed events read with `release_on_failure` back to their source.
    fn release(&self, slots: &mut [Slot]) {
        for slot in slots.iter_mut() {
            if let (Fate::Failed(f), true) = (&slot.fate, slot.release_on_failure) {
                self.failure_log
                    .event("failed and handed back to its source", slot, f);
                self.failed(f);
                slot.fate = Fate::Released;
            }
        }
    }

    /// Counts a failed event by its stage and remembers it as the pipeline's last error.
    fn failed(&self, f: &Failure) {
        self.counters.failed_at(&f.stage);
        self.status.error(&f.stage, &f.message);
    }

    /// Logs the summaries of failed events whose interval is over (`all`: every one, at the end).
    pub fn flush_failure_log(&self, all: bool) {
        self.failure_log.flush(all);
    }

    /// Makes the sink's and the DLQ's writes durable. On error, says which.
    pub async fn sync(&self) -> Result<(), (&'static str, SinkError)> {
        self.sink.sync().await.map_err(|e| ("sink", e))?;
        self.dlq.sync().await.map_err(|e| ("dlq", e))
    }
}

/// Marks the pending slots whose every event is written as delivered.
fn mark_delivered(slots: &mut [Slot], written: &[Vec<bool>]) {
    for (slot, done) in slots.iter_mut().zip(written) {
        if matches!(slot.fate, Fate::Pending) && done.iter().all(|&w| w) {
            slot.fate = Fate::Delivered;
        }
    }
}

/// Writes `batch`, returning one result per entry.
async fn write(sink: &dyn Sink, batch: &[Outgoing<'_>]) -> Vec<Attempt> {
    match sink.write(batch).await {
        Ok(()) => batch.iter().map(|_| Attempt::Written).collect(),
        Err(SinkFailure::All(e)) => batch.iter().map(|_| Attempt::Failed(e.clone())).collect(),
        Err(SinkFailure::Some(failures)) => {
            let mut r: Vec<Attempt> = batch.iter().map(|_| Attempt::Written).collect();
            for (i, e) in failures {
                if let Some(slot) = r.get_mut(i) {
                    *slot = Attempt::Failed(e);
                }
            }
            r
        }
    }
}

/// Sleeps for `delay`, or returns false if stopped first.
pub async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// `{"event": <envelope as read>, "error": {...}, "pipeline": "..."}` (DESIGN.md). A redriven
/// event's record keeps the event as first read and continues its failure history.
fn dlq_record(pipeline: &str, slot: &Slot, failure: &Failure) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("{\"event\":");
    let continued;
    let failure = match slot.event.meta.contains_key(REDRIVE_META) {
        false => {
            slot.event.write_dlq_json(&mut out);
            failure
        }
        true => {
            let mut original = slot.event.clone();
            original.meta.remove(REDRIVE_META);
            original.write_dlq_json(&mut out);
            continued = failure.continuing(&slot.event);
            &continued
        }
    };
    out.push_str(",\"error\":");
    out.push_str(&serde_json::to_string(failure).unwrap_or_else(|_| "{}".into()));
    out.push_str(",\"pipeline\":");
    push_json_string(&mut out, pipeline);
    out.push('}');
    out
}
