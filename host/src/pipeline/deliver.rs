//! Delivery to one target's sink, shared by every lane of a pipeline.
//!
//! A sink is shared by the lanes, which write to it concurrently; each sink keeps one call's
//! entries together (a file holds a lock for a batch, Kafka lets batches overlap).
//!
//! A failed write is retried, only the entries that failed, as the target's `[retry]` says
//! (exponential backoff with jitter, `max_attempts`, `max_record_age_s`, at least as long as the
//! destination's `Retry-After`); then, or at once for a permanent rejection, the event fails
//! with the target's stage (`sink`, or `target:NAME`) and goes where `on_failure` says: its
//! dead-letter queue ([`super::dead_letters`]). A failing sink is logged as one condition
//! ([`super::retry_log`]), not once per attempt and lane.
//!
//! Order: a target's lane is sequential, and waits for a batch's retries before its next batch,
//! so a key's events reach the sink in order. Within one write call, a sink that can fail only
//! some entries must not write an entry after a failed entry with the same key (Kafka's
//! partitions and SQS FIFO groups keep that); the file and stdout sinks fail whole batches.

use super::dead_letters::DeadLetters;
use super::hold::Held;
use super::policy::{OnFailure, Retry};
use super::retry_log::{RetryLog, Severity};
use super::sink_write::{Attempt, write};
use super::slot::{Failure, Fate, Slot};
use crate::backoff::pause;
use crate::observe::counters::{Counters, TargetCounters};
use crate::observe::status::Status;
use crate::sink::{Body, Outgoing, Sink, SinkContext, SinkError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One target: its sink, what it writes, its retry policy, its DLQ, its counts.
pub(super) struct Outlets {
    pipeline: Arc<str>,
    /// Its failures' stage: `sink` (the `[sink]` shorthand) or `target:NAME`.
    stage: Arc<str>,
    sink: Box<dyn Sink>,
    body: Body,
    /// Its dead-letter queue: the pipeline's, or its own.
    dead: Arc<DeadLetters>,
    counters: Arc<Counters>,
    target: Arc<TargetCounters>,
    retry: Retry,
    status: Arc<Status>,
    metrics: OutletMetrics,
    /// A failing sink, logged as a condition.
    sink_log: RetryLog,
    /// Written to since the last sync: a checkpoint syncs only the targets that were (of a
    /// thousand targets, most take nothing between two checkpoints).
    dirty: AtomicBool,
}

/// Per write call: time and size.
struct OutletMetrics {
    sink_seconds: metrics::Histogram,
    sink_batch: metrics::Histogram,
}

impl OutletMetrics {
    fn new(pipeline: &str, stage: &str) -> Self {
        let (p, s) = (pipeline.to_owned(), stage.to_owned());
        OutletMetrics {
            sink_seconds: metrics::histogram!("weir_stage_seconds", "pipeline" => p.clone(), "stage" => s.clone()),
            sink_batch: metrics::histogram!("weir_batch_size", "pipeline" => p, "stage" => s),
        }
    }
}

impl Outlets {
    /// `ctx.target` names the target; `stage` is what its failures are recorded under.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        ctx: &SinkContext,
        stage: &str,
        sink: Box<dyn Sink>,
        body: Body,
        dead: Arc<DeadLetters>,
        counters: Arc<Counters>,
        retry: Retry,
        status: Arc<Status>,
    ) -> Self {
        let pipeline: Arc<str> = ctx.pipeline.as_str().into();
        let block = retry.on_failure == OnFailure::Block;
        let what: &'static str = match stage == "sink" {
            true => "sink write",
            false => "target write",
        };
        let sink_log = match block {
            true => RetryLog::new(
                pipeline.clone(),
                what,
                "; blocking these events' lane until it succeeds (on_failure = \"block\")",
                Severity::Error,
            ),
            false => RetryLog::new(pipeline.clone(), what, "", Severity::Warn),
        };
        Outlets {
            metrics: OutletMetrics::new(&pipeline, stage),
            target: counters.target(&ctx.target),
            stage: stage.into(),
            sink_log,
            dirty: AtomicBool::new(false),
            pipeline,
            sink,
            body,
            dead,
            counters,
            retry,
            status,
        }
    }

    /// Its failures' stage: `sink` or `target:NAME`.
    pub(super) fn stage(&self) -> &str {
        &self.stage
    }

    /// This target's counts.
    pub(super) fn counts(&self) -> &TargetCounters {
        &self.target
    }

    /// This target's counts, to share.
    pub(super) fn counts_handle(&self) -> Arc<TargetCounters> {
        self.target.clone()
    }

    /// Ends the `Failed` slots in this target's DLQ, as its `on_failure` says
    /// ([`DeadLetters::dead_letter`]).
    pub(super) async fn dead_letter(&self, slots: &mut [Slot], stop: &CancellationToken) {
        self.dead
            .dead_letter(slots, self.retry.on_failure, stop)
            .await
    }

    /// Makes the sink's writes durable (if it was written to since the last time).
    pub(super) async fn sync(&self) -> Result<(), SinkError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let synced = self.sink.sync().await;
        if synced.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        synced
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
            // Before any of it is acknowledged, so the checkpoint that covers it syncs it.
            self.dirty.store(true, Ordering::Release);
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
                    slots[i].fate = Fate::Failed(Failure::now(
                        &self.stage,
                        "rejected",
                        e.message,
                        attempts,
                        first,
                    ));
                } else if self.retry.may_retry(attempts, slots[i].received.elapsed()) {
                    retrying += 1;
                    asked = asked.max(e.retry_after.unwrap_or_default());
                    last_error = Some(e);
                } else {
                    let message = format!("gave up after {attempts} attempts: {}", e.message);
                    slots[i].fate = Fate::Failed(Failure::now(
                        &self.stage,
                        "exhausted",
                        message,
                        attempts,
                        first,
                    ));
                }
            }
            mark_delivered(slots, &written);
            held.apply(slots);
            if retrying == 0 {
                continue; // returns: nothing is pending any more
            }
            Counters::add(&self.counters.retried, retrying);
            Counters::add(&self.target.retried, retrying);
            let delay = self.retry.backoff.delay(attempts).max(asked);
            let error = last_error.map(|e| e.message).unwrap_or_default();
            self.status.error(&self.stage, &error);
            waiting.failed(retrying, &error, delay);
            if !pause(delay, stop).await {
                mark_delivered(slots, &written);
                return;
            }
        }
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

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
