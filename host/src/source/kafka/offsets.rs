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
}
