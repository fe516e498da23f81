//! A slot is one source event on its way through the stages, and how it ended.

use super::fanout::Fanout;
/// Why a slot failed: its DLQ record's `error`.
pub(crate) use crate::dlq_record::Failure;
use crate::event::{Envelope, Position};
pub(crate) use crate::observe::counters::Ended;
use std::sync::Arc;
use std::time::Instant;

/// The `kind`s of plugin failures worth trying again: one the plugin said is (`retryable`), and
/// a call that waited past its I/O budget (`io_budget`). The lane retries them (lane.rs); they
/// reach the DLQ only as `exhausted`.
pub(crate) const RETRYABLE: [&str; 2] = ["retryable", "io_budget"];

#[derive(Debug)]
pub(crate) struct Slot {
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
    /// Set when the event went to several targets: this is one target's copy, and the event
    /// ends when every copy has ([`Fanout`]).
    pub fanout: Option<Arc<Fanout>>,
}

impl Slot {
    pub(crate) fn new(position: Position, event: Envelope, fate: Fate) -> Self {
        Slot {
            position,
            received: Instant::now(),
            event,
            outputs: None,
            fate,
            release_on_failure: false,
            fanout: None,
        }
    }

    /// The events to deliver for this slot.
    pub(crate) fn deliverables(&self) -> &[Envelope] {
        match &self.outputs {
            Some(list) => list,
            None => std::slice::from_ref(&self.event),
        }
    }
}

/// Every event ends in exactly one way; until then it is pending.
#[derive(Debug)]
pub(crate) enum Fate {
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
    pub(crate) fn ended(&self) -> Option<Ended> {
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
