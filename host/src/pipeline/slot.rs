//! A slot is one source event on its way through the stages, and how it ended.

use crate::event::{Envelope, Position, REDRIVE_META};
pub use crate::observe::counters::Ended;
use std::time::Instant;

#[derive(Debug)]
pub struct Slot {
    pub position: Position,
    /// When weir read it (`[retry] max_record_age_s` counts from here).
    pub received: Instant,
    /// The event as the source produced it: the DLQ record keeps it untouched.
    pub event: Envelope,
    /// What plugins made of the event: `None` delivers `event` itself; `Some(list)` delivers the
    /// list, in order (a plugin may map, split or drop; an empty list is `Filtered`).
    pub outputs: Option<Vec<Envelope>>,
    pub fate: Fate,
    /// A failure hands the event back to its source rather than to the DLQ (see
    /// [`crate::source::SourceEvent::release_on_failure`]).
    pub release_on_failure: bool,
}

impl Slot {
    pub fn new(position: Position, event: Envelope, fate: Fate) -> Self {
        Slot {
            position,
            received: Instant::now(),
            event,
            outputs: None,
            fate,
            release_on_failure: false,
        }
    }

    /// The events to deliver for this slot.
    pub fn deliverables(&self) -> &[Envelope] {
        match &self.outputs {
            Some(list) => list,
            None => std::slice::from_ref(&self.event),
        }
    }
}

/// Every event ends in exactly one way; until then it is pending.
#[derive(Debug)]
pub enum Fate {
    Pending,
    Filtered,
    Delivered,
    /// Failed, and must go to the dead-letter queue.
    Failed(Failure),
    /// Failed, and written to the dead-letter queue.
    DeadLettered,
    /// Failed, and dropped as `[retry] on_failure = "drop"` asks.
    Dropped,
    /// Failed, and handed back to its source, which makes it available again later.
    Released,
}

impl Fate {
    /// How the event ended, if it did.
    pub fn ended(&self) -> Option<Ended> {
        match self {
            Fate::Pending | Fate::Failed(_) => None,
            Fate::Filtered => Some(Ended::Filtered),
            Fate::Delivered => Some(Ended::Delivered),
            Fate::DeadLettered => Some(Ended::DeadLettered),
            Fate::Dropped => Some(Ended::Dropped),
            Fate::Released => Some(Ended::Released),
        }
    }
}

/// Why an event is dead-lettered (the `error` object of the DLQ record).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    /// Where it failed: `source`, `filter`, `plugin:<name>`, `sink`.
    pub stage: String,
    /// A short machine-readable kind: `malformed`, `rejected`, `timeout`, `trap`, ...
    pub kind: String,
    pub message: String,
    pub attempts: u32,
    pub first_failed_at: String,
    pub last_failed_at: String,
}

impl Failure {
    pub fn now(
        stage: &str,
        kind: &str,
        message: impl Into<String>,
        attempts: u32,
        first_failed_at: Option<String>,
    ) -> Self {
        let now = crate::event::now_rfc3339();
        Failure {
            stage: stage.to_owned(),
            kind: kind.to_owned(),
            message: message.into(),
            attempts,
            first_failed_at: first_failed_at.unwrap_or_else(|| now.clone()),
            last_failed_at: now,
        }
    }
}

impl Failure {
    /// This failure of `event`, after its earlier ones if it is being redriven: the first failure
    /// time is the original one, and the attempts add up.
    pub fn continuing(&self, event: &crate::event::Envelope) -> Failure {
        let mut f = self.clone();
        if let Some(prior) = event.meta.get(REDRIVE_META) {
            if let Some(first) = prior.get("first_failed_at").and_then(|v| v.as_str()) {
                f.first_failed_at = first.to_owned();
            }
            let before = prior.get("attempts").and_then(|v| v.as_u64()).unwrap_or(0);
            let before = u32::try_from(before).unwrap_or(u32::MAX);
            f.attempts = f.attempts.saturating_add(before);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Envelope, Payload};

    #[test]
    fn a_redriven_failure_continues_its_history() {
        let mut event = Envelope {
            id: "in.jsonl:1".into(),
            source: "file",
            key: None,
            time: "2026-11-22T10:00:00.000Z".into(),
            received_at: "2026-11-22T10:00:00.000Z".into(),
            data: Payload::Text("x".into()),
            meta: serde_json::Map::new(),
        };
        let now = Failure::now("plugin:p", "error", "again", 1, None);
        assert_eq!(now.continuing(&event).attempts, 1, "not redriven: as it is");
        let prior =
            serde_json::json!({"attempts": 3, "first_failed_at": "2026-01-01T00:00:00.000Z"});
        event.meta.insert(REDRIVE_META.into(), prior);
        let f = now.continuing(&event);
        assert_eq!(f.attempts, 4);
        assert_eq!(f.first_failed_at, "2026-01-01T00:00:00.000Z");
        assert_eq!(f.last_failed_at, now.last_failed_at);
    }
}
