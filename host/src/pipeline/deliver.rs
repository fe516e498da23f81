//! Delivery to the sink and the dead-letter queue.
//!
//! A retryable sink error is retried (only the entries that failed) with exponential backoff
//! until it succeeds or the pipeline stops; a permanent one sends the event to the DLQ. A DLQ
//! write is retried until it succeeds: an event is never acknowledged without having ended
//! somewhere.
//!
//! Order: the file and stdout sinks fail whole batches, so a retry resends a contiguous run and
//! order holds. A sink that fails only some entries of a batch (Kafka, SQS) would deliver later
//! events of a key before the retried ones; per-key lanes (issue #5) must serialise a key's
//! retries before such sinks exist.

use super::counters::Counters;
use super::slot::{Failure, Fate, Slot};
use crate::event::push_json_string;
use crate::sink::{Body, Outgoing, Sink, SinkError, SinkFailure};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct Delivery {
    pipeline: String,
    sink: Box<dyn Sink>,
    body: Body,
    dlq: Box<dyn Sink>,
    counters: Arc<Counters>,
}

/// The outcome of one write attempt, per entry of the attempted batch.
enum Attempt {
    Written,
    Failed(SinkError),
}

impl Delivery {
    pub fn new(
        pipeline: String,
        sink: Box<dyn Sink>,
        body: Body,
        dlq: Box<dyn Sink>,
        counters: Arc<Counters>,
    ) -> Self {
        Delivery {
            pipeline,
            sink,
            body,
            dlq,
            counters,
        }
    }

    /// Delivers the pending slots: `Delivered` once every event the slot carries (itself, or
    /// what plugins made of it) is written, or `Failed` on a permanent rejection of any of them.
    /// Slots left `Pending` could not be delivered before `stop`.
    pub async fn deliver(&mut self, slots: &mut [Slot], stop: &CancellationToken) {
        let mut delay = BACKOFF_MIN;
        let mut attempts = 0u32;
        let mut first_failed_at: Option<String> = None;
        // written[i][k]: the k-th event of slot i is in the sink; a retry resends only the rest.
        let mut written: Vec<Vec<bool>> = slots
            .iter()
            .map(|s| vec![false; s.deliverables().len()])
            .collect();
        loop {
            for (slot, done) in slots.iter_mut().zip(&written) {
                if matches!(slot.fate, Fate::Pending) && done.iter().all(|&w| w) {
                    slot.fate = Fate::Delivered;
                }
            }
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
            let results = write_and_flush(self.sink.as_mut(), &batch).await;
            drop(batch);
            let mut retrying = 0;
            for (&(i, k), result) in pending.iter().zip(results) {
                match result {
                    Attempt::Written => written[i][k] = true,
                    Attempt::Failed(e) if e.retryable => {
                        retrying += 1;
                        tracing::debug!(pipeline = %self.pipeline, event = %slots[i].event.id, error = %e, attempts, "sink write failed; will retry");
                        first_failed_at.get_or_insert_with(crate::event::now_rfc3339);
                    }
                    Attempt::Failed(e) => {
                        // Other events of a split may already be written: the DLQ record keeps
                        // the original event, and says which stage rejected it.
                        if matches!(slots[i].fate, Fate::Pending) {
                            let first = first_failed_at.clone();
                            slots[i].fate = Fate::Failed(Failure::now(
                                "sink", "rejected", e.message, attempts, first,
                            ));
                        }
                    }
                }
            }
            if retrying == 0 {
                continue; // marks what is now fully written, then returns
            }
            Counters::add(&self.counters.retried, retrying);
            tracing::warn!(pipeline = %self.pipeline, events = retrying, attempts, retry_in_ms = delay.as_millis() as u64,
                "sink write failed; retrying");
            if !pause(&mut delay, stop).await {
                for (slot, done) in slots.iter_mut().zip(&written) {
                    if matches!(slot.fate, Fate::Pending) && done.iter().all(|&w| w) {
                        slot.fate = Fate::Delivered;
                    }
                }
                return;
            }
        }
    }

    /// Writes the `Failed` slots to the DLQ, marking them `DeadLettered`. Retries until written
    /// or `stop`; slots left `Failed` stay unacknowledged.
    pub async fn dead_letter(&mut self, slots: &mut [Slot], stop: &CancellationToken) {
        let mut delay = BACKOFF_MIN;
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
                        body: dlq_record(&self.pipeline, &slots[i], f),
                        event: &slots[i].event,
                    }),
                    _ => None,
                })
                .collect();
            let results = write_and_flush(self.dlq.as_mut(), &batch).await;
            drop(batch);
            let mut retrying = 0;
            for (&i, result) in failed.iter().zip(results) {
                match result {
                    Attempt::Written => {
                        if let Fate::Failed(f) = &slots[i].fate {
                            tracing::warn!(pipeline = %self.pipeline, event = %slots[i].event.id, stage = %f.stage,
                                kind = %f.kind, reason = %f.message, "event dead-lettered");
                        }
                        slots[i].fate = Fate::DeadLettered;
                    }
                    Attempt::Failed(e) => {
                        retrying += 1;
                        tracing::error!(pipeline = %self.pipeline, event = %slots[i].event.id, error = %e,
                            "dead-letter queue write failed; retrying (the event stays unacknowledged)");
                    }
                }
            }
            if retrying == 0 {
                return;
            }
            Counters::add(&self.counters.retried, retrying);
            if !pause(&mut delay, stop).await {
                return;
            }
        }
    }

    /// Makes the sink's and the DLQ's writes durable. On error, says which.
    pub async fn sync(&mut self) -> Result<(), (&'static str, SinkError)> {
        self.sink.sync().await.map_err(|e| ("sink", e))?;
        self.dlq.sync().await.map_err(|e| ("dlq", e))
    }
}

/// Writes and flushes `batch`, returning one result per entry. A failed flush leaves the fate
/// of every entry unknown, so all of them are retried (at-least-once: possibly twice).
async fn write_and_flush(sink: &mut dyn Sink, batch: &[Outgoing<'_>]) -> Vec<Attempt> {
    let mut results: Vec<Attempt> = match sink.write(batch).await {
        Ok(()) => batch.iter().map(|_| Attempt::Written).collect(),
        Err(SinkFailure::All(e)) => {
            return batch.iter().map(|_| Attempt::Failed(e.clone())).collect();
        }
        Err(SinkFailure::Some(failures)) => {
            let mut r: Vec<Attempt> = batch.iter().map(|_| Attempt::Written).collect();
            for (i, e) in failures {
                if let Some(slot) = r.get_mut(i) {
                    *slot = Attempt::Failed(e);
                }
            }
            r
        }
    };
    if let Err(e) = sink.flush().await {
        let e = SinkError {
            retryable: true,
            ..e
        };
        results
            .iter_mut()
            .for_each(|r| *r = Attempt::Failed(e.clone()));
    }
    results
}

/// Sleeps for `delay` (then doubles it, up to the maximum), or returns false if stopped first.
async fn pause(delay: &mut Duration, stop: &CancellationToken) -> bool {
    let d = *delay;
    *delay = (*delay * 2).min(BACKOFF_MAX);
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// `{"event": <envelope as read>, "error": {...}, "pipeline": "..."}` (DESIGN.md).
fn dlq_record(pipeline: &str, slot: &Slot, failure: &Failure) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("{\"event\":");
    slot.event.write_json(&mut out);
    out.push_str(",\"error\":");
    out.push_str(&serde_json::to_string(failure).unwrap_or_else(|_| "{}".into()));
    out.push_str(",\"pipeline\":");
    push_json_string(&mut out, pipeline);
    out.push('}');
    out
}
