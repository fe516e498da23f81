//! The dead-letter queue of a pipeline (or of a target that has its own): where failed events
//! end, with the reason. Shared by the lanes (source and plugin failures) and by every target
//! that uses it (delivery failures).
//!
//! A DLQ write that fails retryably is retried until it succeeds or the pipeline stops: an event
//! is never acknowledged without having ended somewhere. One the DLQ refuses for good goes to
//! the fallback ([`super::dlq_fallback`]) instead of holding its lane forever. A failing DLQ is
//! logged as one condition ([`super::retry_log`]), not once per attempt and lane.

use super::dlq_fallback::{Fallback, cut_record};
use super::failure_log::FailureLog;
use super::policy::OnFailure;
use super::retry_log::{RetryLog, Severity};
use super::sink_write::{Attempt, write};
use super::slot::{Failure, Fate, Slot};
use crate::backoff::{Backoff, pause};
use crate::dlq_record::DlqRecord;
use crate::event::Envelope;
use crate::observe::counters::Counters;
use crate::observe::status::Status;
use crate::sink::{Outgoing, Sink, SinkContext, SinkError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A DLQ that fails is retried at this pace, whatever `[retry]` says: it is the last resort.
const DLQ_BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(super) struct DeadLetters {
    pipeline: Arc<str>,
    dlq: Box<dyn Sink>,
    /// Where what the DLQ refuses for good goes.
    fallback: Fallback,
    counters: Arc<Counters>,
    status: Arc<Status>,
    /// The pace of retrying the DLQ and its fallback file: from `[retry]`'s shortest pause,
    /// doubling to [`DLQ_BACKOFF_MAX`], without jitter.
    backoff: Backoff,
    dlq_seconds: metrics::Histogram,
    /// Failed events, logged without flooding.
    failure_log: FailureLog,
    /// A failing DLQ, logged as a condition.
    dlq_log: RetryLog,
}

impl DeadLetters {
    /// `backoff`: the pipeline's `[retry]` pace (its shortest pause starts the DLQ's).
    pub(super) fn new(
        ctx: &SinkContext,
        dlq: Box<dyn Sink>,
        counters: Arc<Counters>,
        backoff: Backoff,
        status: Arc<Status>,
    ) -> Self {
        let pipeline: Arc<str> = ctx.pipeline.as_str().into();
        DeadLetters {
            dlq_seconds: metrics::histogram!("weir_stage_seconds", "pipeline" => ctx.pipeline.clone(), "stage" => "dlq"),
            failure_log: FailureLog::new(pipeline.clone()),
            dlq_log: RetryLog::new(
                pipeline.clone(),
                "dead-letter queue write",
                " (the events stay unacknowledged)",
                Severity::Error,
            ),
            fallback: Fallback::new(ctx),
            backoff: Backoff {
                max: DLQ_BACKOFF_MAX,
                jitter: false,
                ..backoff
            },
            pipeline,
            dlq,
            counters,
            status,
        }
    }

    fn dlq_backoff(&self) -> Backoff {
        self.backoff
    }

    /// Ends the `Failed` slots: handed back to their source if they were read so
    /// (`Released`), else as `on_failure` says: written to the DLQ (`DeadLettered`; retried until
    /// written or `stop`, slots left `Failed` stay unacknowledged), or `Dropped`.
    pub(super) async fn dead_letter(
        &self,
        slots: &mut [Slot],
        on_failure: OnFailure,
        stop: &CancellationToken,
    ) {
        // The DLQ record keeps the event as the source produced it, not as plugins changed it.
        for slot in slots.iter_mut() {
            if matches!(slot.fate, Fate::Failed(_)) {
                slot.restore();
            }
        }
        self.release(slots);
        if on_failure == OnFailure::Drop {
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
            self.dlq_seconds.record(started.elapsed().as_secs_f64());
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
                                self.status.dead_lettered(&f.stage, &f.kind, &f.message);
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
        self.status.dead_lettered(&f.stage, &f.kind, &f.message);
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

    /// Makes the DLQ's writes durable, and the fallback file's. On error, says which.
    pub(super) async fn sync(&self) -> Result<(), (&'static str, SinkError)> {
        self.dlq.sync().await.map_err(|e| ("dlq", e))?;
        self.fallback.sync().await.map_err(|e| ("dlq fallback", e))
    }
}

/// The DLQ record of `event` (as first read), which failed with `failure`.
fn dlq_record(pipeline: &str, event: &Envelope, failure: &Failure) -> String {
    DlqRecord::new(pipeline, event, failure).to_json()
}
