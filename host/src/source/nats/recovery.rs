//! Putting a stopped process's messages back in stream order.
//!
//! A process killed while holding messages leaves them unacknowledged; the server delivers each
//! again once its own `ack_wait` deadline passes, and the redeliveries come before any newer
//! message. But those deadlines are not in stream order: a message said to be in progress
//! (`+WPI`) shortly before the kill has a later deadline than a newer one that was not, so the
//! server hands the newer one out first and a key would be reordered. So after the wait before
//! the first pull (see `open`), the receiver gathers the redeliveries (the messages up to the
//! highest stream sequence delivered before it started) and hands them on sorted by stream
//! sequence, once all it expects came, or a newer message came, or none came for a while.

use crate::source::SourceEvent;

pub(super) struct Recovery {
    /// The highest stream sequence delivered before this process started: a message up to it
    /// that comes now is a redelivery.
    upto: u64,
    /// Redeliveries still expected (the consumer's unacknowledged count at the start; some of
    /// them may belong to a live process that shares the consumer, and never come here).
    left: usize,
    /// Gathered so far, with their stream sequences.
    held: Vec<(u64, SourceEvent)>,
}

impl Recovery {
    pub(super) fn new(upto: u64, unacknowledged: usize) -> Self {
        Recovery {
            upto,
            left: unacknowledged,
            held: Vec::new(),
        }
    }

    /// Takes a batch of `(stream sequence, event)` in arrival order. `None` while gathering;
    /// once over, the gathered events in stream order followed by the rest of the batch as it
    /// came (a redelivery that comes after a newer message keeps its place: it was not due
    /// when the gathering ended).
    pub(super) fn take(&mut self, batch: Vec<(u64, SourceEvent)>) -> Option<Vec<SourceEvent>> {
        let mut rest = Vec::new();
        for (seq, event) in batch {
            if rest.is_empty() && seq <= self.upto && self.left > 0 {
                self.held.push((seq, event));
                self.left -= 1;
            } else {
                rest.push(event);
            }
        }
        if rest.is_empty() && self.left > 0 {
            return None;
        }
        let mut out = self.finish();
        out.extend(rest);
        Some(out)
    }

    /// Ends the gathering (nothing more came for a while, or the pull stopped): the gathered
    /// events in stream order.
    pub(super) fn finish(&mut self) -> Vec<SourceEvent> {
        self.left = 0;
        let mut held = std::mem::take(&mut self.held);
        held.sort_by_key(|(seq, _)| *seq);
        held.into_iter().map(|(_, e)| e).collect()
    }

    /// The weir sequences of the gathered events (to hand them back when stopping).
    pub(super) fn held_offsets(&self) -> Vec<u64> {
        self.held.iter().map(|(_, e)| e.position.offset).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Envelope, Payload, Position};

    fn event(offset: u64) -> SourceEvent {
        SourceEvent {
            envelope: Envelope {
                id: offset.to_string(),
                source: "nats",
                key: None,
                time: String::new(),
                received_at: String::new(),
                data: Payload::Text(String::new()),
                meta: Default::default(),
            },
            position: Position {
                partition: 0,
                offset,
                ordinal: offset,
            },
            problem: None,
            release_on_failure: false,
        }
    }

    /// `(stream seq, weir offset)` pairs, weir offsets in arrival order.
    fn batch(seqs: &[u64], first_offset: u64) -> Vec<(u64, SourceEvent)> {
        seqs.iter()
            .zip(first_offset..)
            .map(|(&s, o)| (s, event(o)))
            .collect()
    }

    fn offsets(events: &[SourceEvent]) -> Vec<u64> {
        events.iter().map(|e| e.position.offset).collect()
    }

    #[test]
    fn redeliveries_across_batches_come_out_in_stream_order() {
        let mut r = Recovery::new(10, 4);
        // Stream seqs 7 and 8 expired first, then 3 and 4 (in progress later).
        assert!(r.take(batch(&[7, 8], 1)).is_none());
        assert_eq!(r.held_offsets(), vec![1, 2]);
        let out = r.take(batch(&[3, 4], 3)).expect("all four came");
        assert_eq!(offsets(&out), vec![3, 4, 1, 2]);
        // Over: what comes next goes on as it comes.
        assert_eq!(offsets(&r.take(batch(&[12, 11], 5)).unwrap()), vec![5, 6]);
    }

    #[test]
    fn a_newer_message_ends_the_gathering_and_follows_it() {
        let mut r = Recovery::new(10, 5);
        assert!(r.take(batch(&[9], 1)).is_none());
        let out = r.take(batch(&[5, 11, 6], 2)).unwrap();
        assert_eq!(offsets(&out), vec![2, 1, 3, 4]);
    }

    #[test]
    fn finishing_early_hands_on_what_was_gathered() {
        let mut r = Recovery::new(10, 5);
        assert!(r.take(batch(&[9, 2], 1)).is_none());
        assert_eq!(offsets(&r.finish()), vec![2, 1]);
        assert!(r.held_offsets().is_empty());
        assert_eq!(offsets(&r.take(batch(&[1], 3)).unwrap()), vec![3]);
    }
}
