//! Logging failed events without flooding the log: 200,000 failures must not make 200,000
//! lines. For each way an event can end in failure (dead-lettered, dropped, handed back) and
//! each stage and kind, the first [`FIRST`] events of an interval are logged one by one (with the
//! pipeline, event id, correlation id and reason); the others are counted, and once the interval
//! is over one summary line says how many more there were and the last of them. The lines of a
//! run add up to the count (the metrics count every event too).

use super::slot::{Failure, Slot};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Events logged one by one per (outcome, stage, kind) and interval.
const FIRST: u32 = 5;
/// How long an interval lasts.
const INTERVAL: Duration = Duration::from_secs(10);

pub(super) struct FailureLog {
    pipeline: std::sync::Arc<str>,
    interval: Duration,
    groups: Mutex<HashMap<Group, Tally>>,
}

/// What failed events are counted together by.
#[derive(Hash, PartialEq, Eq, Clone)]
struct Group {
    /// `dead-lettered`, `dropped`, `handed back to its source`.
    outcome: &'static str,
    stage: String,
    kind: String,
}

struct Tally {
    since: Instant,
    /// Logged one by one in this interval.
    logged: u32,
    /// Counted, not logged, in this interval.
    more: u64,
    /// The last of those: its event id and reason.
    last: (String, String),
}

impl FailureLog {
    pub(super) fn new(pipeline: std::sync::Arc<str>) -> Self {
        FailureLog {
            pipeline,
            interval: INTERVAL,
            groups: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Group, Tally>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One event ended as `outcome` (`dead-lettered`, ...) because of `failure`.
    pub(super) fn event(&self, outcome: &'static str, slot: &Slot, failure: &Failure) {
        let group = Group {
            outcome,
            stage: failure.stage.clone(),
            kind: failure.kind.clone(),
        };
        let now = Instant::now();
        let mut groups = self.lock();
        if let Some(tally) = groups.get(&group)
            && now.duration_since(tally.since) >= self.interval
        {
            // The interval is over: its summary first, then this event opens the next.
            if let Some(tally) = groups.remove(&group) {
                self.summary(&group, &tally);
            }
        }
        let tally = groups.entry(group).or_insert_with(|| Tally {
            since: now,
            logged: 0,
            more: 0,
            last: Default::default(),
        });
        if tally.logged < FIRST {
            tally.logged += 1;
            tracing::warn!(pipeline = %self.pipeline, event = %slot.event.id,
                correlation_id = %slot.event.correlation_id(), stage = %failure.stage,
                kind = %failure.kind, reason = %failure.message, "event {outcome}");
        } else {
            tally.more += 1;
            tally.last = (slot.event.id.clone(), failure.message.clone());
        }
    }

    /// Writes the summaries of the intervals that are over (`all`: of every interval, when the
    /// pipeline stops).
    pub(super) fn flush(&self, all: bool) {
        let now = Instant::now();
        let mut groups = self.lock();
        let over: Vec<Group> = groups
            .iter()
            .filter(|(_, t)| all || now.duration_since(t.since) >= self.interval)
            .map(|(g, _)| g.clone())
            .collect();
        for group in over {
            if let Some(tally) = groups.remove(&group) {
                self.summary(&group, &tally);
            }
        }
    }

    fn summary(&self, group: &Group, tally: &Tally) {
        if tally.more == 0 {
            return;
        }
        let secs = tally.since.elapsed().as_secs().max(1);
        let (last_event, last_reason) = &tally.last;
        tracing::warn!(pipeline = %self.pipeline, stage = %group.stage, kind = %group.kind,
            count = tally.more, interval_s = secs, last_event = %last_event, last_reason = %last_reason,
            "{} more events {} at stage {} (kind {}) in the last {secs}s, last: {last_event}: {last_reason}",
            tally.more, group.outcome, group.stage, group.kind);
    }
}
