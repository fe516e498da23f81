//! Putting messages the server sends again back in stream order, in the two cases where
//! redeliveries would otherwise come after newer messages.
//!
//! **After a start.** A process killed while holding messages leaves them unacknowledged; the
//! server delivers each again once its own `ack_wait` deadline passes, and the redeliveries come
//! before any newer message. But those deadlines are not in stream order: a message said to be
//! in progress (`+WPI`) shortly before the kill has a later deadline than a newer one that was
//! not, so the server hands the newer one out first and a key would be reordered. So after the
//! wait before the first pull (see `open`), the receiver gathers the redeliveries (the messages
//! up to the highest stream sequence delivered before it started) and hands them on sorted by
//! stream sequence, once all it expects came, or a newer message came, or none came for a while.
//!
//! **After a connection cut.** Messages the server sent as the connection broke never arrived;
//! the server sends them again once their `ack_wait` runs out, while the resumed pull brings
//! newer messages at once (gaps.rs finds how many were lost). Here newer messages come first, so
//! everything that arrives is held until that many redeliveries came, or until they were due
//! (the deadline), and then handed on sorted by stream sequence. Only redeliveries of messages
//! newer than any received before the cut count: acknowledgements can be lost in the same cut,
//! and their messages come again too, earlier (their `ack_wait` ran out first); counting them
//! would end the wait before the lost ones came.

use super::gaps::Lost;
use crate::source::SourceEvent;
use std::collections::HashSet;
use std::time::Instant;

/// A message as the receiver took it: its stream sequence (`u64::MAX` if unknown), its
/// delivery, and the event.
pub(super) struct Pulled {
    pub stream_seq: u64,
    /// The consumer's number for this delivery (0 if unknown): see gaps.rs.
    pub consumer_seq: u64,
    pub delivered: i64,
    pub event: SourceEvent,
}

/// What ends the gathering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// After a start: redeliveries are the messages up to this stream sequence, and they come
    /// before newer ones (the first pull waited until they were due), so a newer message ends
    /// the gathering, as does a pull's wait with nothing.
    Newer { upto: u64 },
    /// After a cut: redeliveries (delivered more than once) come after newer messages, so
    /// everything waits, until the expected redeliveries came or this instant. The lost
    /// deliveries are of messages after `after_stream_seq`.
    Deadline {
        at: Instant,
        after_stream_seq: u64,
    },
}

pub(super) struct Recovery {
    until: Until,
    /// Redeliveries still expected (after a start: the consumer's unacknowledged count, some of
    /// which may belong to a live process that shares the consumer and never come here).
    left: usize,
    /// Gathered so far, with their stream sequences, in arrival order.
    held: Vec<(u64, SourceEvent)>,
    /// The stream sequences in `held`: a message delivered again while held (its being in
    /// progress did not reach the server during the cut) is not a lost one.
    held_seqs: HashSet<u64>,
}

impl Recovery {
    /// After a start: `upto` is the highest stream sequence delivered before it.
    pub(super) fn after_start(upto: u64, unacknowledged: usize) -> Self {
        Recovery {
            until: Until::Newer { upto },
            left: unacknowledged,
            held: Vec::new(),
            held_seqs: HashSet::new(),
        }
    }

    /// After a cut that lost deliveries.
    pub(super) fn after_cut(lost: Lost) -> Self {
        Recovery {
            until: Until::Deadline {
                at: lost.due_by,
                after_stream_seq: lost.after_stream_seq,
            },
            left: lost.missing,
            held: Vec::new(),
            held_seqs: HashSet::new(),
        }
    }

    /// Another cut while gathering: more deliveries lost. Everything is held from now on.
    pub(super) fn add_cut(&mut self, lost: Lost) {
        self.left += lost.missing;
        self.until = match self.until {
            Until::Deadline {
                at,
                after_stream_seq,
            } => Until::Deadline {
                at: at.max(lost.due_by),
                after_stream_seq: after_stream_seq.min(lost.after_stream_seq),
            },
            // Nothing was handed on (so acknowledged) since the start: every redelivery not
            // held yet is one awaited, whether from the start or from the cut.
            Until::Newer { .. } => Until::Deadline {
                at: lost.due_by,
                after_stream_seq: 0,
            },
        };
    }

    /// When the gathering ends if nothing else ends it: after a start, once nothing came for
    /// `idle` (asked again after each arrival); after a cut, at the deadline.
    pub(super) fn ends_at(&self, idle: std::time::Duration) -> Instant {
        match self.until {
            Until::Newer { .. } => Instant::now() + idle,
            Until::Deadline { at, .. } => at,
        }
    }

    /// Takes a batch in arrival order. `None` while gathering; once over, the gathered events
    /// in stream order, followed (after a start) by the rest of the batch as it came: a
    /// redelivery that comes after a newer message keeps its place, as it was not due when the
    /// gathering ended.
    pub(super) fn take(&mut self, batch: Vec<Pulled>) -> Option<Vec<SourceEvent>> {
        let mut rest = Vec::new();
        for p in batch {
            match self.until {
                Until::Newer { upto } => {
                    if rest.is_empty() && p.stream_seq <= upto && self.left > 0 {
                        self.hold(p);
                        self.left -= 1;
                    } else {
                        rest.push(p.event);
                    }
                }
                Until::Deadline {
                    after_stream_seq, ..
                } => {
                    let lost_one = p.delivered > 1
                        && p.stream_seq > after_stream_seq
                        && p.stream_seq != u64::MAX
                        && !self.held_seqs.contains(&p.stream_seq);
                    if lost_one {
                        self.left = self.left.saturating_sub(1);
                    }
                    self.hold(p);
                }
            }
        }
        if rest.is_empty() && self.left > 0 {
            return None;
        }
        let mut out = self.finish();
        out.extend(rest);
        Some(out)
    }

    fn hold(&mut self, p: Pulled) {
        if p.stream_seq != u64::MAX {
            self.held_seqs.insert(p.stream_seq);
        }
        self.held.push((p.stream_seq, p.event));
    }

    /// Ends the gathering (nothing more came for a while, the deadline passed, or the pull
    /// stopped): the gathered events in stream order.
    pub(super) fn finish(&mut self) -> Vec<SourceEvent> {
        self.left = 0;
        self.held_seqs.clear();
        let mut held = std::mem::take(&mut self.held);
        // Stable: messages without a stream sequence keep their arrival order, last.
        held.sort_by_key(|(seq, _)| *seq);
        held.into_iter().map(|(_, e)| e).collect()
    }

    /// Redeliveries still expected.
    pub(super) fn left(&self) -> usize {
        self.left
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

    /// Messages of these stream seqs, weir offsets in arrival order from `first_offset`;
    /// first deliveries.
    fn batch(seqs: &[u64], first_offset: u64) -> Vec<Pulled> {
        seqs.iter()
            .zip(first_offset..)
            .map(|(&stream_seq, o)| Pulled {
                stream_seq,
                consumer_seq: 0,
                delivered: 1,
                event: event(o),
            })
            .collect()
    }

    /// The same, delivered again.
    fn again(seqs: &[u64], first_offset: u64) -> Vec<Pulled> {
        let mut b = batch(seqs, first_offset);
        for p in &mut b {
            p.delivered = 2;
        }
        b
    }

    fn offsets(events: &[SourceEvent]) -> Vec<u64> {
        events.iter().map(|e| e.position.offset).collect()
    }

    #[test]
    fn redeliveries_across_batches_come_out_in_stream_order() {
        let mut r = Recovery::after_start(10, 4);
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
        let mut r = Recovery::after_start(10, 5);
        assert!(r.take(batch(&[9], 1)).is_none());
        let out = r.take(batch(&[5, 11, 6], 2)).unwrap();
        assert_eq!(offsets(&out), vec![2, 1, 3, 4]);
    }

    #[test]
    fn finishing_early_hands_on_what_was_gathered() {
        let mut r = Recovery::after_start(10, 5);
        assert!(r.take(batch(&[9, 2], 1)).is_none());
        assert_eq!(offsets(&r.finish()), vec![2, 1]);
        assert!(r.held_offsets().is_empty());
        assert_eq!(offsets(&r.take(batch(&[1], 3)).unwrap()), vec![3]);
    }

    #[test]
    fn after_a_cut_newer_messages_wait_for_the_lost_ones() {
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        let mut r = Recovery::after_cut(Lost { missing: 2, due_by: far, after_stream_seq: 17 });
        // The resumed pull brings newer messages first: held.
        assert!(r.take(batch(&[20, 21], 1)).is_none());
        assert!(r.take(batch(&[22], 3)).is_none());
        assert_eq!(r.left(), 2);
        // The two lost ones come again after ack_wait, with a newer one.
        assert!(r.take(again(&[18], 4)).is_none());
        let mut last = again(&[19], 5);
        last.extend(batch(&[23], 6));
        let out = r.take(last).unwrap();
        assert_eq!(offsets(&out), vec![4, 5, 1, 2, 3, 6]);
        assert_eq!(r.left(), 0);
    }

    /// Acknowledgements sent as the connection broke are lost too: their messages (older than
    /// any lost delivery) come again first, as their `ack_wait` ran out first. They are not the
    /// lost ones: the newer messages keep waiting for those.
    #[test]
    fn after_a_cut_redeliveries_of_acknowledged_messages_are_not_the_lost_ones() {
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        // Received up to stream seq 17, acknowledged 15 to 17 (lost), 18 and 19 lost.
        let mut r = Recovery::after_cut(Lost { missing: 2, due_by: far, after_stream_seq: 17 });
        assert!(r.take(batch(&[20, 21], 1)).is_none());
        // 20 is said to be in progress during the cut, which did not arrive: it comes again.
        assert!(r.take(again(&[15, 16, 17, 20], 3)).is_none());
        assert_eq!(r.left(), 2, "neither the acknowledged ones nor a held one");
        let out = r.take(again(&[18, 19], 7)).expect("the two lost ones came");
        assert_eq!(offsets(&out), vec![3, 4, 5, 7, 8, 1, 6, 2]);
    }

    #[test]
    fn after_a_cut_the_deadline_ends_the_wait() {
        let soon = Instant::now();
        let mut r = Recovery::after_cut(Lost { missing: 3, due_by: soon, after_stream_seq: 29 });
        assert!(r.take(batch(&[30, 31], 1)).is_none());
        assert!(r.ends_at(std::time::Duration::from_secs(5)) <= soon);
        // The receiver's timer: what came goes on in stream order.
        assert_eq!(offsets(&r.finish()), vec![1, 2]);
    }

    #[test]
    fn a_cut_while_gathering_after_a_start_holds_everything() {
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        let mut r = Recovery::after_start(10, 2);
        assert!(r.take(batch(&[9], 1)).is_none());
        r.add_cut(Lost { missing: 1, due_by: far, after_stream_seq: 9 });
        // A newer message no longer ends the gathering: the lost delivery is awaited.
        assert!(r.take(batch(&[12], 2)).is_none());
        assert!(r.take(again(&[8], 3)).is_none(), "one more expected from the start");
        let out = r.take(again(&[11], 4)).unwrap();
        assert_eq!(offsets(&out), vec![3, 1, 4, 2]);
    }
}
