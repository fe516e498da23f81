//! Deliveries this process never got.
//!
//! The server numbers every delivery of a consumer (the consumer sequence in the ack subject,
//! redeliveries included). A process that is the consumer's only reader sees those numbers
//! without a gap, unless deliveries were lost on the way: sent as the connection broke, or
//! dropped by the client for a subscription that fell behind. The server counts them as
//! delivered and sends them again only once their `ack_wait` runs out, after the newer messages
//! the resumed pull brings at once, so a key would be reordered. A gap that follows a cut is
//! therefore waited for: newer messages are held until that many redeliveries came, or until
//! they were due (recovery.rs).
//!
//! A gap with no cut behind it means that another process takes deliveries from the consumer.
//! Order across processes is not kept (README), so from then on gaps are not waited for.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the connection last broke or the client last dropped messages: set by the connection's
/// event callback, read by the receiver.
#[derive(Default)]
pub(super) struct Cuts(Mutex<Option<Instant>>);

impl Cuts {
    pub(super) fn record(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn last(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cut explains a gap found up to this long after its deliveries were due again (a gap may
/// show only when the redeliveries themselves come, on a stream that is otherwise quiet).
const EXPLAINS_FOR: Duration = Duration::from_secs(5);
/// How long after `ack_wait` from the cut the redeliveries are still waited for: the server's
/// redelivery timer and a pull request to carry them.
const REDELIVERY_MARGIN: Duration = Duration::from_secs(2);

pub(super) struct Gaps {
    cuts: std::sync::Arc<Cuts>,
    ack_wait: Duration,
    pipeline: String,
    /// The highest consumer sequence received (0: none yet).
    last: u64,
    /// Another process reads the consumer too.
    shared: bool,
}

/// Deliveries lost in a cut, and when their redeliveries are due at the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lost {
    pub missing: usize,
    pub due_by: Instant,
}

impl Gaps {
    pub(super) fn new(cuts: std::sync::Arc<Cuts>, ack_wait: Duration, pipeline: &str) -> Self {
        Gaps {
            cuts,
            ack_wait,
            pipeline: pipeline.to_owned(),
            last: 0,
            shared: false,
        }
    }

    /// The pull stream ended and a new one starts: deliveries still on their way to the old
    /// one's inbox are lost, as in a cut.
    pub(super) fn pull_ended(&self) {
        self.cuts.record();
    }

    /// Takes in a received delivery's consumer sequence (0 if unknown): `Some` if deliveries
    /// before it were lost in a cut.
    pub(super) fn see(&mut self, consumer_seq: u64) -> Option<Lost> {
        let last = self.last;
        if consumer_seq <= last {
            return None; // unknown, or the consumer was made anew
        }
        self.last = consumer_seq;
        if last == 0 || consumer_seq == last + 1 || self.shared {
            return None;
        }
        let missing = usize::try_from(consumer_seq - last - 1).unwrap_or(usize::MAX);
        match self.cuts.last() {
            Some(at) if at.elapsed() <= self.ack_wait + EXPLAINS_FOR => {
                tracing::info!(pipeline = %self.pipeline, missing,
                    "nats deliveries lost in the connection cut: newer messages wait until the server sends them again (ack_wait), so that each key keeps its order");
                Some(Lost {
                    missing,
                    due_by: at + self.ack_wait + REDELIVERY_MARGIN,
                })
            }
            _ => {
                self.shared = true;
                tracing::info!(pipeline = %self.pipeline,
                    "the nats consumer is shared with another process (deliveries skip this one): order across processes is not kept");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn gaps() -> (Gaps, Arc<Cuts>) {
        let cuts = Arc::new(Cuts::default());
        (Gaps::new(cuts.clone(), Duration::from_secs(30), "p"), cuts)
    }

    #[test]
    fn consecutive_deliveries_have_no_gap() {
        let (mut g, _) = gaps();
        for seq in [5, 6, 7, 7, 0, 8] {
            assert_eq!(g.see(seq), None);
        }
    }

    #[test]
    fn a_gap_after_a_cut_is_deliveries_lost_in_it() {
        let (mut g, cuts) = gaps();
        g.see(1);
        g.see(2);
        cuts.record();
        let lost = g.see(6).expect("three lost");
        assert_eq!(lost.missing, 3);
        let wait = lost.due_by - Instant::now();
        assert!(wait > Duration::from_secs(30) && wait <= Duration::from_secs(32), "{wait:?}");
        assert_eq!(g.see(7), None);
    }

    #[test]
    fn a_gap_without_a_cut_means_a_shared_consumer_and_none_is_waited_for_again() {
        let (mut g, cuts) = gaps();
        g.see(1);
        assert_eq!(g.see(4), None);
        assert!(g.shared);
        cuts.record();
        assert_eq!(g.see(9), None);
    }
}
