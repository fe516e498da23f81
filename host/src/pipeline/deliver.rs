//! Delivery to the sink and the dead-letter queue, shared by every lane of a pipeline.
//!
//! The sink and the DLQ are shared by the lanes, which write to them concurrently; each sink
//! keeps one call's entries together (a file holds a lock for a batch, Kafka lets batches
//! overlap).
//!
//! A failed write is retried, only the entries that failed, as `[retry]` says (exponential
//! backoff with jitter, `max_attempts`, `max_record_age_s`); then, or at once for a permanent
//! rejection, the event fails with stage `sink` and goes where `on_failure` says. A DLQ write that
//! fails retryably is retried until it succeeds or the pipeline stops: an event is never
//! acknowledged without having ended somewhere. One the DLQ refuses for good goes to the
//! fallback ([`super::dlq_fallback`]) instead of holding its lane forever. A failing sink or DLQ
//! is logged as one condition ([`super::retry_log`]), not once per attempt and lane.
//!
//! Order: a lane is sequential, and waits for a batch's retries before its next batch, so a
//! key's events reach the sink in order. Within one write call, a sink that can fail only some
//! entries must not write an entry after a failed entry with the same key (Kafka's partitions
//! and SQS FIFO groups keep that); the file and stdout sinks fail whole batches.

use super::dlq_fallback::{Fallback, cut_record};
use super::failure_log::FailureLog;
use super::hold::Held;
use super::policy::{OnFailure, Retry};
use super::retry_log::{RetryLog, Severity};
use super::slot::{Failure, Fate, Slot};
use crate::backoff::{Backoff, pause};
use crate::dlq_record::DlqRecord;
use crate::event::Envelope;
use crate::observe::counters::Counters;
use crate::observe::status::Status;
use crate::sink::{Body, Outgoing, Sink, SinkContext, SinkError, SinkFailure};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A DLQ that fails is retried at this pace, whatever `[retry]` says: it is the last resort.
const DLQ_BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(super) struct Outlets {
    pipeline: Arc<str>,
    sink: Box<dyn Sink>,
    body: Body,
    dlq: Box<dyn Sink>,
    /// Where what the DLQ refuses for good goes.
    fallback: Fallback,
    counters: Arc<Counters>,
    retry: Retry,
    status: Arc<Status>,
    metrics: OutletMetrics,
    /// Failed events, logged without flooding.
    failure_log: FailureLog,
    /// A failing sink and a failing DLQ, logged as conditions.
    sink_log: RetryLog,
    dlq_log: RetryLog,
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
    pub(super) fn new(
        ctx: &SinkContext,
        sink: Box<dyn Sink>,
        body: Body,
        dlq: Box<dyn Sink>,
        counters: Arc<Counters>,
        retry: Retry,
        status: Arc<Status>,
    ) -> Self {
        let pipeline: Arc<str> = ctx.pipeline.as_str().into();
        let block = retry.on_failure == OnFailure::Block;
        Outlets {
            metrics: OutletMetrics::new(&pipeline),
            failure_log: FailureLog::new(pipeline.clone()),
            sink_log: match block {
                true => RetryLog::new(
                    pipeline.clone(),
                    "sink write",
                    "; blocking these events' lane until it succeeds (on_failure = \"block\")",
                    Severity::Error,
                ),
                false => RetryLog::new(pipeline.clone(), "sink write", "", Severity::Warn),
            },
            dlq_log: RetryLog::new(
                pipeline.clone(),
                "dead-letter queue write",
                " (the events stay unacknowledged)",
                Severity::Error,
            ),
            fallback: Fallback::new(ctx),
            pipeline,
            sink,
            body,
            dlq,
            counters,
            retry,
            status,
        }
    }

    pub(super) fn retry(&self) -> &Retry {
        &self.retry
    }

    /// Counts `n` events tried again (a retryable plugin failure: lane.rs).
    pub(super) fn count_retried(&self, n: usize) {
        Counters::add(&self.counters.retried, n);
    }

    /// The pace of retrying the DLQ and its fallback file: from `[retry]`'s shortest pause,
    /// doubling to [`DLQ_BACKOFF_MAX`], without jitter.
    fn dlq_backoff(&self) -> Backoff {
        Backoff {
            max: DLQ_BACKOFF_MAX,
            jitter: false,
            ..self.retry.backoff
        }
    }

    /// Delivers the pending slots: `Delivered` once every event the slot carries (itself, or
    /// what plugins made of it) is written, or `Failed` when a write is rejected for good or its
    /// retries run out. Slots left `Pending` could not be delivered before `stop`.
    pub(super) async fn deliver(&self, slots: &mut [Slot], stop: &CancellationToken) {
        let block = self.retry.on_failure == OnFailure::Block;
        let mut waiting = self.sink_log.waiting();
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
                waiting.settled();
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
            // The longest wait the destination asked for (`Retry-After`).
            let mut asked = Duration::ZERO;
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
                    asked = asked.max(e.retry_after.unwrap_or_default());
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
            let delay = self.retry.backoff.delay(attempts).max(asked);
            let error = last_error.map(|e| e.message).unwrap_or_default();
            self.status.error("sink", &error);
            waiting.failed(retrying, &error, delay);
            if !pause(delay, stop).await {
                mark_delivered(slots, &written);
                return;
            }
        }
    }

    /// Ends the `Failed` slots: handed back to their source if they were read so
    /// (`Released`), else as `on_failure` says: written to the DLQ (`DeadLettered`; retried until
    /// written or `stop`, slots left `Failed` stay unacknowledged), or `Dropped`.
    pub(super) async fn dead_letter(&self, slots: &mut [Slot], stop: &CancellationToken) {
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
        let mut failures = 0;
        let mut waiting = self.dlq_log.waiting();
        // cut[i]: the DLQ refused slot i's record for good; the whole record is in the fallback
        // file, and this (its payload cut to fit) is what the DLQ is offered instead.
        let mut cut: Vec<Option<String>> = vec![None; slots.len()];
        loop {
            let failed: Vec<usize> = (0..slots.len())
                .filter(|&i| matches!(slots[i].fate, Fate::Failed(_)))
                .collect();
            if failed.is_empty() {
                waiting.settled();
                return;
            }
            let batch: Vec<Outgoing<'_>> = failed
                .iter()
                .filter_map(|&i| match (&slots[i].fate, &cut[i]) {
                    (Fate::Failed(_), Some(record)) => Some(Outgoing {
                        body: record.clone().into(),
                        event: &slots[i].event,
                    }),
                    (Fate::Failed(f), None) => Some(Outgoing {
                        body: dlq_record(&self.pipeline, &slots[i].event, f).into(),
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
            let mut refused = Vec::new();
            let mut dlq_error = None;
            for (&i, result) in failed.iter().zip(results) {
                match result {
                    Attempt::Written => match cut[i] {
                        Some(_) => self.fell_back(&mut slots[i], "dlq", None),
                        None => {
                            if let Fate::Failed(f) = &slots[i].fate {
                                self.failure_log.event("dead-lettered", &slots[i], f);
                                self.failed(f);
                            }
                            slots[i].fate = Fate::DeadLettered;
                        }
                    },
                    Attempt::Failed(e) if !e.retryable => refused.push((i, e)),
                    Attempt::Failed(e) => {
                        retrying += 1;
                        dlq_error.get_or_insert(e);
                    }
                }
            }
            if !refused.is_empty() && !self.fall_back(slots, &mut cut, refused, stop).await {
                return; // stopped before the fallback file took them
            }
            let Some(e) = dlq_error else {
                continue; // the refused ones' cut records go at once; else nothing is left
            };
            failures += 1;
            let delay = self.dlq_backoff().delay(failures);
            self.status.error("dlq", &e.message);
            waiting.failed(retrying, &e.message, delay);
            if !pause(delay, stop).await {
                return;
            }
        }
    }

    /// The DLQ refused these slots' records for good. A whole record goes to the fallback file
    /// (retried until it is written or `stop`; false if stopped), then its cut version is what
    /// the DLQ is offered next (`cut[i]`); an event whose cut record was refused too, or that
    /// has none that fits, ends with the fallback file alone.
    async fn fall_back(
        &self,
        slots: &mut [Slot],
        cut: &mut [Option<String>],
        refused: Vec<(usize, SinkError)>,
        stop: &CancellationToken,
    ) -> bool {
        let (again, first): (Vec<_>, Vec<_>) =
            refused.into_iter().partition(|(i, _)| cut[*i].is_some());
        for (i, e) in again {
            self.fell_back(&mut slots[i], "file", Some(&e));
        }
        if first.is_empty() {
            return true;
        }
        let records: Vec<Outgoing<'_>> = first
            .iter()
            .filter_map(|(i, _)| match &slots[*i].fate {
                Fate::Failed(f) => Some(Outgoing {
                    body: dlq_record(&self.pipeline, &slots[*i].event, f).into(),
                    event: &slots[*i].event,
                }),
                _ => None,
            })
            .collect();
        let mut failures = 0;
        while let Err(e) = self.fallback.write(&records).await {
            failures += 1;
            let delay = self.dlq_backoff().delay(failures);
            let message = format!("DLQ fallback file: {e}");
            self.status.error("dlq", &message);
            tracing::error!(pipeline = %self.pipeline, events = records.len(), error = %message,
                retry_in_ms = delay.as_millis() as u64,
                "the dead-letter queue refused these records for good, and the fallback file cannot take them; retrying");
            if !pause(delay, stop).await {
                return false;
            }
        }
        drop(records);
        let whole_in = self.fallback.path();
        for (i, e) in first {
            let slot = &slots[i];
            let Fate::Failed(f) = &slot.fate else {
                continue;
            };
            let room = self.dlq.max_body_bytes(&slot.event);
            let record = DlqRecord::new(&self.pipeline, &slot.event, f);
            cut[i] = room.and_then(|room| cut_record(&record, room, &e.message, whole_in));
            if cut[i].is_none() {
                self.fell_back(&mut slots[i], "file", Some(&e));
            }
        }
        true
    }

    /// Ends a slot whose DLQ record the DLQ refused for good, now that its whole record is in
    /// the fallback file (`to`: `dlq` if the DLQ took the cut record too, `file` if not, with
    /// the refusal): counted, alarmed on (ERROR, `last_error`), dead-lettered.
    fn fell_back(&self, slot: &mut Slot, to: &'static str, refusal: Option<&SinkError>) {
        let Fate::Failed(f) = &slot.fate else { return };
        let file = self.fallback.path().display();
        let message = match (to, refusal) {
            ("dlq", _) => format!(
                "the dead-letter queue refused event {}'s record; the whole record is in {file}, the DLQ has it with its payload cut",
                slot.event.id
            ),
            (_, refusal) => format!(
                "the dead-letter queue refused event {}'s record ({}); the record is in {file} only",
                slot.event.id,
                refusal.map_or("", |e| e.message.as_str())
            ),
        };
        tracing::error!(pipeline = %self.pipeline, event = %slot.event.id,
            correlation_id = %slot.event.correlation_id(), to, fallback_file = %file, "{message}");
        self.failure_log.event("dead-lettered", slot, f);
        self.counters.failed_at(&f.stage);
        self.status.error("dlq", &message);
        Counters::add(&self.counters.dlq_fallback, 1);
        metrics::counter!("weir_dlq_fallback_total", "pipeline" => self.pipeline.to_string(), "to" => to)
            .increment(1);
        slot.fate = Fate::DeadLettered;
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
    pub(super) fn flush_failure_log(&self, all: bool) {
        self.failure_log.flush(all);
    }

    /// Makes the sink's and the DLQ's writes durable. On error, says which.
    pub(super) async fn sync(&self) -> Result<(), (&'static str, SinkError)> {
        self.sink.sync().await.map_err(|e| ("sink", e))?;
        self.dlq.sync().await.map_err(|e| ("dlq", e))?;
        self.fallback.sync().await.map_err(|e| ("dlq fallback", e))
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

/// The DLQ record of `event` (as first read), which failed with `failure`.
fn dlq_record(pipeline: &str, event: &Envelope, failure: &Failure) -> String {
    DlqRecord::new(pipeline, event, failure).to_json()
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
