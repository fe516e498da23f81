//! Exact accounting: at any time
//! `received = delivered + filtered + dead_lettered + dropped + released + in_flight`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// The ways an event ends: only then is its source position acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Filtered,
    Delivered,
    DeadLettered,
    Dropped,
    Released,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub filtered: AtomicU64,
    pub delivered: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Failed events dropped by `[retry] on_failure = "drop"`.
    pub dropped: AtomicU64,
    /// Failed events handed back to their source to come again later (SQS).
    pub released: AtomicU64,
    /// Sink retries: each event of a failed sink write counts once per retry (a batch of 10
    /// retried 3 times: 30). The DLQ's retries are not counted (its outage is logged as one).
    pub retried: AtomicU64,
    /// Dead-lettered events whose record the DLQ refused for good: kept whole in the fallback
    /// file (and cut in the DLQ, when it took that). Counted in `dead_lettered` too.
    pub dlq_fallback: AtomicU64,
    /// Dead-lettered and dropped events by the stage they failed at (`source`, `plugin:NAME`,
    /// `sink`): where to look first. Counted once per event, off the per-event hot path.
    failed_at: Mutex<BTreeMap<String, u64>>,
    /// Per target, in the pipeline's order: what each of its targets did with the events
    /// routed to it ([`Counters::target`]).
    targets: Mutex<Vec<(String, Arc<TargetCounters>)>>,
}

/// One target's counts. An event routed to several targets is counted by each; the pipeline's
/// own counts give it one ending (the worst of its targets', [`Ended::worst`]).
#[derive(Debug, Default)]
pub struct TargetCounters {
    /// Events routed to it (after filters, plugins and its rule).
    pub routed: AtomicU64,
    pub delivered: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub dropped: AtomicU64,
    pub released: AtomicU64,
    /// Its sink's retries, as [`Counters::retried`] counts them.
    pub retried: AtomicU64,
}

/// A copy of one target's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetSnapshot {
    pub routed: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub released: u64,
    pub retried: u64,
}

impl TargetSnapshot {
    /// Routed to it and not yet ended there.
    pub fn in_flight(&self) -> u64 {
        self.routed
            .saturating_sub(self.delivered + self.dead_lettered + self.dropped + self.released)
    }

    pub fn add(&mut self, o: &TargetSnapshot) {
        self.routed += o.routed;
        self.delivered += o.delivered;
        self.dead_lettered += o.dead_lettered;
        self.dropped += o.dropped;
        self.released += o.released;
        self.retried += o.retried;
    }
}

impl TargetCounters {
    pub fn snapshot(&self) -> TargetSnapshot {
        TargetSnapshot {
            routed: self.routed.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            released: self.released.load(Relaxed),
            retried: self.retried.load(Relaxed),
        }
    }

    /// Counts one event that ended at this target.
    pub fn ended(&self, how: Ended) {
        let counter = match how {
            Ended::Delivered => &self.delivered,
            Ended::DeadLettered => &self.dead_lettered,
            Ended::Dropped => &self.dropped,
            Ended::Released => &self.released,
            Ended::Filtered => return, // a target does not filter
        };
        counter.fetch_add(1, Relaxed);
    }
}

impl Ended {
    /// How an event sent to several targets ended, from how each ended it: the one that needs
    /// the most attention. Handed back to its source (it comes again, to every target) before
    /// dead-lettered, before dropped, before delivered.
    pub fn worst(self, other: Ended) -> Ended {
        fn rank(e: Ended) -> u8 {
            match e {
                Ended::Filtered => 0,
                Ended::Delivered => 1,
                Ended::Dropped => 2,
                Ended::DeadLettered => 3,
                Ended::Released => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub received: u64,
    pub filtered: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub released: u64,
    pub retried: u64,
    pub dlq_fallback: u64,
}

impl Snapshot {
    pub fn in_flight(&self) -> u64 {
        self.received.saturating_sub(self.ended())
    }

    /// Adds another count to this one (a pipeline's runs, summed).
    pub fn add(&mut self, o: &Snapshot) {
        self.received += o.received;
        self.filtered += o.filtered;
        self.delivered += o.delivered;
        self.dead_lettered += o.dead_lettered;
        self.dropped += o.dropped;
        self.released += o.released;
        self.retried += o.retried;
        self.dlq_fallback += o.dlq_fallback;
    }

    /// Events that ended, however.
    pub fn ended(&self) -> u64 {
        self.filtered + self.delivered + self.dead_lettered + self.dropped + self.released
    }
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            received: self.received.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            released: self.released.load(Relaxed),
            retried: self.retried.load(Relaxed),
            dlq_fallback: self.dlq_fallback.load(Relaxed),
        }
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    /// Counts an event that failed at `stage` (and was dead-lettered, dropped or released).
    pub fn failed_at(&self, stage: &str) {
        let mut m = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(stage.to_owned()).or_default() += 1;
    }

    /// Failures by stage so far.
    pub fn failed_stages(&self) -> Vec<(String, u64)> {
        let m = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(s, n)| (s.clone(), *n)).collect()
    }

    /// `stage:count,stage:count`, for the log (empty when nothing failed).
    pub fn failed_by_stage(&self) -> String {
        let m = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|(stage, n)| format!("{stage}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The counts of target `name`, made the first time it is asked for (at start).
    pub fn target(&self, name: &str) -> Arc<TargetCounters> {
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        match targets.iter().find(|(n, _)| n == name) {
            Some((_, c)) => c.clone(),
            None => {
                let c = Arc::new(TargetCounters::default());
                targets.push((name.to_owned(), c.clone()));
                c
            }
        }
    }

    /// Every target's counts so far, in the pipeline's order.
    pub fn targets(&self) -> Vec<(String, TargetSnapshot)> {
        let targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets
            .iter()
            .map(|(n, c)| (n.clone(), c.snapshot()))
            .collect()
    }

    /// Counts one ended event.
    pub fn ended(&self, how: Ended) {
        let counter = match how {
            Ended::Filtered => &self.filtered,
            Ended::Delivered => &self.delivered,
            Ended::DeadLettered => &self.dead_lettered,
            Ended::Dropped => &self.dropped,
            Ended::Released => &self.released,
        };
        counter.fetch_add(1, Relaxed);
    }
}
