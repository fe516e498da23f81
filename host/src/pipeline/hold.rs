//! Keeping a key's order when a failed event is handed back to its source.
//!
//! An event read with `release_on_failure` (an SQS message) goes back to its source when it
//! fails, and comes again later. If the key's later events were delivered meanwhile, the key
//! would be reordered. So once an event of a key fails, the key's later events *of the same
//! delivery* fail with it and go back too (as Lambda's FIFO batch processors do).
//!
//! "The same delivery" is the source partition the events were read under: the SQS source
//! reads each receive call into a partition of its own, and an SQS FIFO queue hands out no more
//! messages of a group while any are in flight. So the events of a key under one partition are
//! everything of that group now in flight, and an event of the key under another partition
//! starts afresh (the group came back, from its oldest message).

use super::slot::{Failure, Fate, Slot};
use std::collections::HashMap;

/// More remembered keys than this and the memory is cleared (a key's entry normally goes when
/// its group comes back; one that never comes back would stay forever).
const MAX_KEYS: usize = 100_000;

/// The keys with a failed, handed-back event, and the partition it was read under.
#[derive(Default)]
pub(super) struct Held {
    keys: HashMap<String, u32>,
}

impl Held {
    /// Goes over `slots` in order: remembers the keys of failed events that go back to their
    /// source, and fails the pending events of those keys read under the same partition (they
    /// go back too, even one that would go to the DLQ if it failed itself: it did not fail).
    pub(super) fn apply(&mut self, slots: &mut [Slot]) {
        for slot in slots.iter_mut() {
            let Some(key) = slot.source_key() else {
                continue;
            };
            let partition = slot.position.partition;
            match &slot.fate {
                Fate::Failed(_) | Fate::Released if slot.release_on_failure => {
                    if self.keys.len() >= MAX_KEYS {
                        self.keys.clear();
                    }
                    self.keys.insert(key.to_owned(), partition);
                }
                // Nothing held (every source but SQS): no lookup per event.
                Fate::Pending if self.keys.is_empty() => {}
                Fate::Pending => match self.keys.get(key) {
                    Some(&p) if p == partition => {
                        let key = key.to_owned();
                        slot.release_on_failure = true;
                        slot.fate = Fate::Failed(Failure::now(
                            "source",
                            "held",
                            format!(
                                "an earlier event with key {key} failed; handed back with it to keep the key's order"
                            ),
                            1,
                            None,
                        ));
                    }
                    Some(_) => {
                        self.keys.remove(key);
                    }
                    None => {}
                },
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Envelope, Payload, Position};

    fn slot(key: &str, partition: u32, offset: u64, failed: bool) -> Slot {
        let event = Envelope {
            id: format!("{key}-{offset}"),
            source: "sqs",
            key: Some(key.into()),
            time: String::new(),
            received_at: String::new(),
            data: Payload::Text(String::new()),
            meta: Default::default(),
        };
        let fate = match failed {
            true => Fate::Failed(Failure::now("plugin:p", "error", "no", 1, None)),
            false => Fate::Pending,
        };
        let position = Position {
            partition,
            offset,
            ordinal: offset,
        };
        let mut s = Slot::new(position, event, fate);
        s.release_on_failure = true;
        s
    }

    fn failed(slots: &[Slot]) -> Vec<&str> {
        slots
            .iter()
            .filter(|s| matches!(s.fate, Fate::Failed(_)))
            .map(|s| s.event.id.as_str())
            .collect()
    }

    #[test]
    fn a_failure_holds_the_keys_later_events_of_the_same_delivery() {
        let mut held = Held::default();
        let mut slots = vec![
            slot("a", 1, 1, false),
            slot("a", 1, 2, true),
            slot("b", 1, 3, false),
            slot("a", 1, 4, false),
        ];
        held.apply(&mut slots);
        assert_eq!(failed(&slots), ["a-2", "a-4"]);
        // A later batch of the lane, same delivery: held too.
        let mut later = vec![slot("a", 1, 5, false), slot("b", 1, 6, false)];
        held.apply(&mut later);
        assert_eq!(failed(&later), ["a-5"]);
        // The group came back (another receive): it flows again.
        let mut again = vec![slot("a", 2, 7, false), slot("a", 2, 8, false)];
        held.apply(&mut again);
        assert!(failed(&again).is_empty());
    }

    #[test]
    fn events_that_go_to_the_dlq_hold_nothing() {
        let mut held = Held::default();
        let mut slots = vec![slot("a", 1, 1, true), slot("a", 1, 2, false)];
        slots[0].release_on_failure = false;
        held.apply(&mut slots);
        assert_eq!(failed(&slots), ["a-1"]);
    }

    #[test]
    fn a_held_event_goes_back_even_if_it_would_go_to_the_dlq_on_failure() {
        let mut held = Held::default();
        let mut slots = vec![slot("a", 1, 1, true), slot("a", 1, 2, false)];
        slots[1].release_on_failure = false; // its last attempt, say
        held.apply(&mut slots);
        assert_eq!(failed(&slots), ["a-1", "a-2"]);
        assert!(
            slots[1].release_on_failure,
            "handed back, not dead-lettered"
        );
    }
}
