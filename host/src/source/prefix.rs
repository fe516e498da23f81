//! The longest finished prefix: events finish out of order (parallel lanes, retries), but a
//! source may only commit a position once everything before it is finished too, or a crash
//! would skip the unfinished ones.

use crate::event::Position;
use std::collections::VecDeque;

/// Tracks positions of one ordered stream (one Kafka partition, the lines of a file and its
/// rotations). Positions must be tracked in increasing order.
#[derive(Debug, Default)]
pub(crate) struct PrefixTracker {
    pending: VecDeque<(Position, bool)>,
    committed: Option<Position>,
}

impl PrefixTracker {
    pub(crate) fn track(&mut self, position: Position) {
        debug_assert!(
            self.pending.back().is_none_or(|(last, _)| *last < position),
            "positions must increase"
        );
        self.pending.push_back((position, false));
    }

    /// Marks `position` finished; unknown positions are ignored (already committed).
    pub(crate) fn finish(&mut self, position: Position) {
        if let Ok(i) = self.pending.binary_search_by(|(p, _)| p.cmp(&position)) {
            self.pending[i].1 = true;
        }
        while let Some(&(p, true)) = self.pending.front() {
            self.committed = Some(p);
            self.pending.pop_front();
        }
    }

    /// The last position of the finished prefix, if any finished yet.
    pub(crate) fn committed(&self) -> Option<Position> {
        self.committed
    }

    /// Events tracked but not finished.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.iter().filter(|(_, done)| !done).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(partition: u32, offset: u64) -> Position {
        Position {
            partition,
            offset,
            ordinal: offset,
        }
    }

    #[test]
    fn commits_only_the_contiguous_prefix() {
        let mut t = PrefixTracker::default();
        for o in 1..=5 {
            t.track(pos(0, o));
        }
        t.finish(pos(0, 2));
        t.finish(pos(0, 3));
        assert_eq!(t.committed(), None, "1 is not finished");
        t.finish(pos(0, 1));
        assert_eq!(t.committed(), Some(pos(0, 3)));
        t.finish(pos(0, 5));
        assert_eq!(t.committed(), Some(pos(0, 3)));
        assert_eq!(t.in_flight(), 1);
        t.finish(pos(0, 4));
        assert_eq!(t.committed(), Some(pos(0, 5)));
        t.finish(pos(0, 4)); // repeated finish is harmless
        assert_eq!(t.committed(), Some(pos(0, 5)));
    }

    #[test]
    fn orders_across_partitions_of_one_stream() {
        let mut t = PrefixTracker::default();
        t.track(pos(0, 100));
        t.track(pos(1, 10));
        t.finish(pos(1, 10));
        assert_eq!(t.committed(), None);
        t.finish(pos(0, 100));
        assert_eq!(t.committed(), Some(pos(1, 10)));
    }
}
