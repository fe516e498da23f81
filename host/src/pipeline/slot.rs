//! A slot is one source event on its way through the stages, and how it ended.

use super::fanout::Fanout;
/// Why a slot failed: its DLQ record's `error`.
pub(crate) use crate::dlq_record::Failure;
use crate::event::{Envelope, Payload, Position};
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
    /// The event as it stands: as the source produced it, or as plugins changed it one for one
    /// (its data, its key) in place, what they replaced kept in `replaced`. Whatever must see the
    /// source's event (the DLQ record, a retry through the plugins) calls [`Slot::restore`]
    /// first.
    pub event: Envelope,
    /// What plugins replaced in `event`, to put back. A one-for-one output (the usual
    /// transform or enrichment) changes the slot's own envelope rather than a copy of it: its
    /// `meta`, id and times are not cloned per event, nor freed twice.
    replaced: Option<Replaced>,
    /// What plugins made of the event when it is not one for one: `None` delivers `event`
    /// itself; `Some(list)` delivers the list, in order (a plugin may split or drop; an empty
    /// list is `Filtered`).
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
            replaced: None,
            outputs: None,
            fate,
            release_on_failure: false,
            fanout: None,
        }
    }

    /// Changes the slot's own event in place as `change` says, keeping what it replaces the
    /// first time (a later plugin's change of the same event keeps the source's parts, not the
    /// previous plugin's).
    pub(crate) fn change_event(&mut self, change: Change) {
        let old = change.apply(&mut self.event);
        match &mut self.replaced {
            None => self.replaced = Some(old),
            Some(first) => first.keep_earliest(old),
        }
    }

    /// Puts the source's event back as it came, and forgets what plugins made of it: for the
    /// DLQ record, and before the event goes through the plugins again.
    pub(crate) fn restore(&mut self) {
        if let Some(replaced) = self.replaced.take() {
            replaced.put_back(&mut self.event);
        }
        self.outputs = None;
    }

    /// The key the source gave the event (a plugin may have replaced it in `event`).
    pub(crate) fn source_key(&self) -> Option<&str> {
        match &self.replaced {
            Some(Replaced { key: Some(key), .. }) => key.as_deref(),
            _ => self.event.key.as_deref(),
        }
    }

    /// A copy of the slot (one target's share of an event that goes to several).
    pub(crate) fn copy(&self, outputs: Option<Vec<Envelope>>) -> Slot {
        Slot {
            position: self.position,
            received: self.received,
            event: self.event.clone(),
            replaced: self.replaced.clone(),
            outputs,
            fate: Fate::Pending,
            release_on_failure: self.release_on_failure,
            fanout: self.fanout.clone(),
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

/// A plugin's one-for-one output, as a change to the event it was made from: a new payload
/// (decoded as a source record is), a new key, and the `meta` fields that no longer hold
/// (`raw_base64` when the data changed, `key_base64` when the key did) or now do.
#[derive(Debug, Default)]
pub(crate) struct Change {
    pub data: Option<Payload>,
    pub key: Option<String>,
    /// `meta` fields to remove.
    pub unset: Vec<&'static str>,
    /// `meta` fields to set (the new data's exact bytes when they are not UTF-8).
    pub set: serde_json::Map<String, serde_json::Value>,
}

/// What a [`Change`] replaced in an event: put back by [`Replaced::put_back`].
#[derive(Debug, Clone)]
struct Replaced {
    data: Option<Payload>,
    /// `Some(old)` when the key changed.
    key: Option<Option<String>>,
    /// The `meta` fields as they were, for each the change removed or set (`None`: absent).
    meta: Vec<(String, Option<serde_json::Value>)>,
}

impl Change {
    /// Makes `event` (an event of the plugin's own making, or a copy) what the change says.
    pub(crate) fn apply_to(self, event: &mut Envelope) {
        self.apply(event);
    }

    /// Makes `event` what the change says, and returns what it replaced.
    fn apply(self, event: &mut Envelope) -> Replaced {
        let mut meta = Vec::new();
        for name in self.unset {
            if let Some(old) = event.meta.remove(name) {
                meta.push((name.to_owned(), Some(old)));
            }
        }
        for (name, value) in self.set {
            let old = event.meta.insert(name.clone(), value);
            if !meta.iter().any(|(n, _)| *n == name) {
                meta.push((name, old));
            }
        }
        Replaced {
            data: self.data.map(|d| std::mem::replace(&mut event.data, d)),
            key: self.key.map(|k| event.key.replace(k)),
            meta,
        }
    }
}

impl Replaced {
    /// Adds what a later change replaced that this one did not: the source's value of each part
    /// is the one replaced first.
    fn keep_earliest(&mut self, later: Replaced) {
        if self.data.is_none() {
            self.data = later.data;
        }
        if self.key.is_none() {
            self.key = later.key;
        }
        for (name, old) in later.meta {
            if !self.meta.iter().any(|(n, _)| *n == name) {
                self.meta.push((name, old));
            }
        }
    }

    fn put_back(self, event: &mut Envelope) {
        if let Some(data) = self.data {
            event.data = data;
        }
        if let Some(key) = self.key {
            event.key = key;
        }
        for (name, old) in self.meta {
            match old {
                Some(value) => event.meta.insert(name, value),
                None => event.meta.remove(&name),
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{JsonText, KEY_BASE64, RAW_BASE64};
    use serde_json::json;

    fn source_event() -> Envelope {
        let meta = json!({RAW_BASE64: "/w==", KEY_BASE64: "/g==", "line": 1});
        Envelope {
            id: "f:1".into(),
            source: "file",
            key: Some("k".into()),
            time: "t".into(),
            received_at: "r".into(),
            data: Payload::Text("\u{fffd}".into()),
            meta: meta.as_object().unwrap().clone(),
        }
    }

    fn slot() -> Slot {
        let at = Position {
            partition: 0,
            offset: 1,
            ordinal: 1,
        };
        Slot::new(at, source_event(), Fate::Pending)
    }

    fn json(text: &str) -> Payload {
        Payload::Json(JsonText::parse(text).unwrap())
    }

    #[test]
    fn changes_in_place_are_put_back_as_the_source_produced_the_event() {
        let mut slot = slot();
        // A first plugin replaces the data (its exact bytes no longer hold)...
        slot.change_event(Change {
            data: Some(json(r#"{"a":1}"#)),
            unset: vec![RAW_BASE64],
            ..Change::default()
        });
        // ...a second one the key, and its new data is not UTF-8 again.
        let mut set = serde_json::Map::new();
        set.insert(RAW_BASE64.into(), "/f==".into());
        slot.change_event(Change {
            data: Some(Payload::Text("x".into())),
            key: Some("k2".into()),
            unset: vec![KEY_BASE64, RAW_BASE64],
            set,
        });
        assert_eq!(slot.event.key.as_deref(), Some("k2"));
        assert_eq!(slot.source_key(), Some("k"));
        assert_eq!(
            serde_json::Value::Object(slot.event.meta.clone()),
            json!({RAW_BASE64: "/f==", "line": 1})
        );
        // A target's copy carries what to put back too.
        let mut copy = slot.copy(None);
        copy.restore();
        slot.restore();
        let back = source_event();
        assert_eq!(copy.event.to_json(), back.to_json());
        assert_eq!(slot.event.to_json(), back.to_json());
        assert!(slot.outputs.is_none());
        // Nothing left to put back: a second restore changes nothing.
        slot.restore();
        assert_eq!(slot.event.to_json(), back.to_json());
    }

    #[test]
    fn an_unchanged_event_restores_to_itself() {
        let mut slot = slot();
        slot.change_event(Change::default());
        slot.restore();
        assert_eq!(slot.event.to_json(), source_event().to_json());
        assert_eq!(slot.source_key(), Some("k"));
    }
}
