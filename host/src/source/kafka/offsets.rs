//! Which partitions this process owns, what it handed to the pipeline from each, what finished,
//! and what is committed. Shared by the consumer thread (assignments, revocations, tracking)
//! and the pipeline's acker (finishing, committing).
//!
//! Each assignment of a partition gets a new stream id (the `partition` of a [`Position`]):
//! events of a partition that was revoked and later assigned again finish into the stream they
//! were read in, which no longer exists, instead of marking the new reads finished.

use crate::event::Position;
use crate::source::prefix::PrefixTracker;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

pub(super) type Partition = (String, i32);

#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<Offsets>,
    /// Signalled whenever an event finishes or a commit lands.
    changed: Condvar,
    /// Wakes the pipeline for an immediate checkpoint (before partitions are given away).
    pub checkpoint: Arc<Notify>,
    /// Set when the consumer is shutting down: a revocation then waits for nothing.
    pub closing: AtomicBool,
}

#[derive(Default)]
struct Offsets {
    streams: HashMap<u32, Stream>,
    /// Owned partitions' streams, by topic then partition: looked up for every record read,
    /// by the record's `&str` topic, without building a key.
    owned: HashMap<String, HashMap<i32, u32>>,
    next_stream: u32,
    /// Counts the pipeline's checkpoints: each one means "every event finished before it is
    /// durable in the sink and the DLQ".
    synced: u64,
}

struct Stream {
    partition: Partition,
    tracker: PrefixTracker,
    /// The offset last committed for this assignment (the next one to read).
    committed: Option<u64>,
    /// Where the partition started, when weir resolved `start` for it (start.rs): committed
    /// as the group's position until events finish past it.
    start: Option<u64>,
}

impl Offsets {
    fn owned_stream(&self, topic: &str, partition: i32) -> Option<u32> {
        self.owned.get(topic)?.get(&partition).copied()
    }

    fn owned_streams(&self) -> impl Iterator<Item = u32> + '_ {
        self.owned.values().flat_map(|p| p.values().copied())
    }

    fn disown(&mut self, (topic, partition): &Partition) -> Option<u32> {
        let parts = self.owned.get_mut(topic)?;
        let id = parts.remove(partition);
        if parts.is_empty() {
            self.owned.remove(topic);
        }
        id
    }

    /// Waits on `changed` until `done` holds, or `deadline`. True if it held.
    fn wait_until<'a>(
        mut s: MutexGuard<'a, Offsets>,
        changed: &Condvar,
        deadline: Instant,
        done: impl Fn(&Offsets) -> bool,
    ) -> bool {
        while !done(&s) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = changed
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl Stream {
    /// The finished prefix not committed yet, as the offset to commit; before any event
    /// finished, the start weir resolved, if that is not committed yet.
    fn uncommitted(&self) -> Option<u64> {
        let done = match self.tracker.committed() {
            Some(p) => p.offset,
            None => self.start?,
        };
        (self.committed < Some(done)).then_some(done)
    }
}

/// One partition's offset to commit: `(stream, partition, offset)`.
pub(super) type Commit = (u32, Partition, u64);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Offsets> {
        // The state is a set of counters updated in place: consistent after any panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A partition assigned to this process, with where it starts if weir resolved that
    /// (to be committed): its stream id.
    pub(super) fn assign(&self, partition: Partition, start: Option<u64>) -> u32 {
        let mut s = self.lock();
        let id = s.next_stream;
        s.next_stream = s.next_stream.wrapping_add(1);
        s.streams.insert(
            id,
            Stream {
                partition: partition.clone(),
                tracker: PrefixTracker::default(),
                committed: None,
                start,
            },
        );
        let (topic, p) = partition;
        s.owned.entry(topic).or_default().insert(p, id);
        id
    }

    /// The stream a partition's records belong to, if this process owns it.
    pub(super) fn stream_of(&self, topic: &str, partition: i32) -> Option<u32> {
        self.lock().owned_stream(topic, partition)
    }

    /// The streams of these partitions (those owned).
    pub(super) fn streams_of(&self, partitions: &[Partition]) -> Vec<u32> {
        let s = self.lock();
        partitions
            .iter()
            .filter_map(|(topic, p)| s.owned_stream(topic, *p))
            .collect()
    }

    /// Events about to be handed to the pipeline, in the order they were read.
    pub(super) fn track(&self, positions: impl Iterator<Item = Position>) {
        let mut s = self.lock();
        for p in positions {
            if let Some(stream) = s.streams.get_mut(&p.partition) {
                stream.tracker.track(p);
            }
        }
    }

    pub(super) fn finish(&self, position: Position) {
        let mut s = self.lock();
        if let Some(stream) = s.streams.get_mut(&position.partition) {
            stream.tracker.finish(position);
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Owned partitions whose finished prefix moved past their last commit.
    pub(super) fn to_commit(&self) -> Vec<Commit> {
        let s = self.lock();
        s.owned_streams()
            .filter_map(|id| {
                let stream = s.streams.get(&id)?;
                let offset = stream.uncommitted()?;
                Some((id, stream.partition.clone(), offset))
            })
            .collect()
    }

    /// Whether an owned partition's resolved start is not committed yet (its commit at the
    /// assignment failed): a crash now would resolve `start` again.
    pub(super) fn start_uncommitted(&self) -> bool {
        let s = self.lock();
        s.owned_streams().any(|id| {
            s.streams
                .get(&id)
                .is_some_and(|st| st.start.is_some() && st.committed.is_none())
        })
    }

    /// The broker confirmed these offsets (of partitions this process may no longer own).
    pub(super) fn committed(&self, confirmed: &[(Partition, u64)]) {
        let mut s = self.lock();
        for ((topic, partition), offset) in confirmed {
            let Some(id) = s.owned_stream(topic, *partition) else {
                continue;
            };
            if let Some(stream) = s.streams.get_mut(&id) {
                stream.committed = stream.committed.max(Some(*offset));
            }
        }
        drop(s);
        self.changed.notify_all();
    }

    /// The pipeline made everything finished so far durable.
    pub(super) fn synced(&self) {
        self.lock().synced += 1;
        self.changed.notify_all();
    }

    /// Asks the pipeline for a checkpoint and waits until one completed after this call, or
    /// `deadline`. True if it did.
    pub(super) fn wait_synced(&self, deadline: Instant) -> bool {
        let s = self.lock();
        let target = s.synced + 1;
        self.checkpoint.notify_one();
        Offsets::wait_until(s, &self.changed, deadline, |s| s.synced >= target)
    }

    /// The finished, uncommitted prefix of `streams`, to commit before they are let go.
    pub(super) fn uncommitted(&self, streams: &[u32]) -> Vec<Commit> {
        let s = self.lock();
        streams
            .iter()
            .filter_map(|id| {
                let stream = s.streams.get(id)?;
                Some((*id, stream.partition.clone(), stream.uncommitted()?))
            })
            .collect()
    }

    /// Waits until every event handed over from `streams` finished, or `deadline`.
    pub(super) fn wait_finished(&self, streams: &[u32], deadline: Instant) -> bool {
        Offsets::wait_until(self.lock(), &self.changed, deadline, |s| {
            streams.iter().all(|id| {
                s.streams
                    .get(id)
                    .is_none_or(|st| st.tracker.in_flight() == 0)
            })
        })
    }

    /// The partitions are no longer ours: forget them. Events of theirs still in the pipeline
    /// finish into nothing. Returns how many were handed over and not finished (abandoned: the
    /// next owner reads them again).
    pub(super) fn revoke(&self, partitions: &[Partition]) -> usize {
        let mut s = self.lock();
        let mut abandoned = 0;
        for p in partitions {
            if let Some(stream) = s.disown(p).and_then(|id| s.streams.remove(&id)) {
                abandoned += stream.tracker.in_flight();
            }
        }
        abandoned
    }

    /// Every owned partition (for a revocation of all of them).
    pub(super) fn owned(&self) -> Vec<Partition> {
        let s = self.lock();
        s.owned
            .iter()
            .flat_map(|(topic, parts)| parts.keys().map(|p| (topic.clone(), *p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stream: u32, offset: u64) -> Position {
        Position {
            partition: stream,
            offset,
            ordinal: offset - 1,
        }
    }

    #[test]
    fn a_resolved_start_is_committed_until_events_finish_past_it() {
        let shared = Shared::default();
        let p = ("in".to_owned(), 0);
        let id = shared.assign(p.clone(), Some(7));
        assert!(shared.start_uncommitted());
        assert_eq!(shared.to_commit(), vec![(id, p.clone(), 7)]);
        shared.committed(&[(p.clone(), 7)]);
        assert!(!shared.start_uncommitted());
        assert!(shared.to_commit().is_empty(), "committed once");
        // The record at offset 7 (position 8: resume after it) finishes.
        shared.track([at(id, 8)].into_iter());
        shared.finish(at(id, 8));
        assert_eq!(shared.to_commit(), vec![(id, p, 8)]);
    }

    #[test]
    fn a_partition_with_a_committed_offset_commits_only_finished_events() {
        let shared = Shared::default();
        let p = ("in".to_owned(), 1);
        let id = shared.assign(p.clone(), None);
        assert!(!shared.start_uncommitted());
        assert!(shared.to_commit().is_empty());
        shared.track([at(id, 5)].into_iter());
        assert!(shared.to_commit().is_empty(), "not finished");
        shared.finish(at(id, 5));
        assert_eq!(shared.to_commit(), vec![(id, p, 5)]);
    }

    /// Tracks `offsets` (positions: the offset to resume after each) of `stream`, in order.
    fn track(shared: &Shared, stream: u32, offsets: impl IntoIterator<Item = u64>) {
        shared.track(offsets.into_iter().map(|o| at(stream, o)));
    }

    #[test]
    fn each_partition_commits_its_own_finished_prefix_whatever_order_events_finish_in() {
        let shared = Shared::default();
        let (p0, p1) = (("in".to_owned(), 0), ("in".to_owned(), 1));
        let (s0, s1) = (
            shared.assign(p0.clone(), None),
            shared.assign(p1.clone(), None),
        );
        assert_ne!(s0, s1);
        track(&shared, s0, 1..=5);
        track(&shared, s1, 1..=3);
        // Lanes finish out of order: 2 and 3 before 1 on p0, 3 alone on p1.
        shared.finish(at(s0, 3));
        shared.finish(at(s0, 2));
        shared.finish(at(s1, 3));
        assert!(
            shared.to_commit().is_empty(),
            "no partition's first event finished"
        );
        shared.finish(at(s0, 1));
        assert_eq!(shared.to_commit(), vec![(s0, p0.clone(), 3)]);
        shared.finish(at(s1, 1));
        let mut commits = shared.to_commit();
        commits.sort();
        assert_eq!(commits, vec![(s0, p0.clone(), 3), (s1, p1.clone(), 1)]);
        // Committed: nothing more until more finishes; a confirmation never goes backwards.
        shared.committed(&[(p0.clone(), 3), (p1.clone(), 1)]);
        assert!(shared.to_commit().is_empty());
        shared.committed(&[(p0.clone(), 2)]);
        assert!(
            shared.to_commit().is_empty(),
            "an older confirmation changes nothing"
        );
        shared.finish(at(s0, 5));
        assert!(shared.to_commit().is_empty(), "4 is not finished");
        shared.finish(at(s0, 4));
        assert_eq!(shared.to_commit(), vec![(s0, p0, 5)]);
        assert_eq!(shared.uncommitted(&[s1]), vec![]);
    }

    #[test]
    fn a_revoked_partition_is_forgotten_and_its_late_finishes_count_for_nothing() {
        let shared = Shared::default();
        let p = ("in".to_owned(), 2);
        let old = shared.assign(p.clone(), None);
        assert_eq!(shared.stream_of("in", 2), Some(old));
        track(&shared, old, [11, 12, 13]);
        shared.finish(at(old, 11));
        // Before letting it go, the finished prefix is committed.
        assert_eq!(shared.uncommitted(&[old]), vec![(old, p.clone(), 11)]);
        assert_eq!(shared.revoke(std::slice::from_ref(&p)), 2, "two abandoned");
        assert_eq!(shared.stream_of("in", 2), None);
        assert!(shared.owned().is_empty());
        assert!(shared.to_commit().is_empty());
        // Assigned again (the group rebalanced back): a new stream, reading from 11 again.
        let new = shared.assign(p.clone(), None);
        assert_ne!(new, old);
        assert_eq!(shared.streams_of(std::slice::from_ref(&p)), vec![new]);
        track(&shared, new, [12, 13]);
        // The old reads finish late: they do not mark the new reads finished.
        shared.finish(at(old, 12));
        shared.finish(at(old, 13));
        assert!(shared.to_commit().is_empty());
        shared.finish(at(new, 12));
        assert_eq!(shared.to_commit(), vec![(new, p, 12)]);
    }

    #[test]
    fn a_confirmation_for_a_partition_no_longer_owned_is_ignored() {
        let shared = Shared::default();
        let p = ("in".to_owned(), 0);
        let id = shared.assign(p.clone(), Some(4));
        shared.revoke(std::slice::from_ref(&p));
        shared.committed(&[(p.clone(), 4)]);
        assert!(!shared.start_uncommitted());
        assert!(shared.uncommitted(&[id]).is_empty(), "forgotten");
        let again = shared.assign(p.clone(), Some(4));
        assert!(
            shared.start_uncommitted(),
            "the new assignment's start is its own"
        );
        assert_eq!(shared.to_commit(), vec![(again, p, 4)]);
    }

    #[test]
    fn owned_lists_every_assigned_partition_of_every_topic() {
        let shared = Shared::default();
        for (topic, p) in [("a", 0), ("a", 1), ("b", 0)] {
            shared.assign((topic.to_owned(), p), None);
        }
        shared.revoke(&[("a".to_owned(), 0)]);
        let mut owned = shared.owned();
        owned.sort();
        assert_eq!(owned, vec![("a".to_owned(), 1), ("b".to_owned(), 0)]);
        assert_eq!(
            shared
                .streams_of(&[("a".to_owned(), 0), ("b".to_owned(), 0)])
                .len(),
            1
        );
    }

    #[test]
    fn waiting_for_finished_events_ends_when_the_last_one_finishes() {
        let shared = Arc::new(Shared::default());
        let p = ("in".to_owned(), 0);
        let id = shared.assign(p, None);
        let now = Instant::now();
        assert!(
            shared.wait_finished(&[id], now),
            "nothing in flight: done at once"
        );
        track(&shared, id, [1, 2]);
        assert!(
            !shared.wait_finished(&[id], now),
            "in flight, deadline passed"
        );
        let finisher = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                shared.finish(at(id, 2));
                shared.finish(at(id, 1));
            })
        };
        let generous = Instant::now() + std::time::Duration::from_secs(60);
        assert!(shared.wait_finished(&[id], generous));
        finisher.join().expect("finisher");
        assert_eq!(shared.uncommitted(&[id]).len(), 1);
        // A stream that no longer exists has nothing in flight.
        assert!(shared.wait_finished(&[id + 100], now));
    }

    #[test]
    fn waiting_for_a_checkpoint_asks_for_one_and_ends_when_it_completes() {
        let shared = Arc::new(Shared::default());
        // The pipeline: waits to be asked, then completes a checkpoint.
        let pipeline = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                rt.block_on(shared.checkpoint.notified());
                shared.synced();
            })
        };
        let generous = Instant::now() + std::time::Duration::from_secs(60);
        assert!(shared.wait_synced(generous));
        pipeline.join().expect("pipeline");
        // Nobody answers now: an earlier checkpoint does not count for this call.
        assert!(!shared.wait_synced(Instant::now()));
    }
}
