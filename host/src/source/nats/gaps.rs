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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the connection last broke or the client last dropped messages: set by the connection's
/// event callback, read by the receiver.
#[derive(Default)]
pub(super) struct Cuts(Mutex<Option<Instant>>);

impl Cuts {
    pub(super) fn record(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    #[cfg(test)]
    fn record_at(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    fn last(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cut explains a gap found up to this long after its deliveries were due again (a gap may
/// show only when the redeliveries themselves come, on a stream that is otherwise quiet).
const EXPLAINS_FOR: Duration = Duration::from_secs(5);
/// How long the redeliveries are still waited for once they are due (`ack_wait` after the cut)
/// and the pull has resumed (the gap is seen): the server's redelivery timer, and a pull
/// request to carry them, on a machine that may be loaded. Normally the wait ends before, when
/// all of them came; this bounds it when some never come (see recovery.rs).
const REDELIVERY_MARGIN: Duration = Duration::from_secs(5);

pub(super) struct Gaps {
    cuts: Arc<Cuts>,
    /// The client's counters: `connects` grows with each reconnection, before anything the new
    /// connection brings is received. The event callback that records cuts runs in a task of
    /// its own and its events can be dropped (async-nats sends them with `try_send`), so a gap
    /// could otherwise be seen before, or without, the cut that explains it; a reconnection
    /// found in the counter is recorded as a cut when it is found.
    client: Arc<async_nats::Statistics>,
    /// `connects` as last looked at.
    connects: u64,
    ack_wait: Duration,
    pipeline: String,
    /// The highest consumer sequence received (0: none yet).
    last: u64,
    /// The highest stream sequence received (0: none yet).
    highest_stream_seq: u64,
    /// Another process reads the consumer too.
    shared: bool,
}

/// Deliveries lost in a cut, and when their redeliveries are due at the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lost {
    pub missing: usize,
    pub due_by: Instant,
    /// The highest stream sequence received before the gap: the lost deliveries are of newer
    /// messages. A redelivery of an older one (its acknowledgement lost in the same cut, or a
    /// retry) is not one of them (recovery.rs).
    pub after_stream_seq: u64,
}

impl Gaps {
    pub(super) fn new(
        cuts: Arc<Cuts>,
        client: Arc<async_nats::Statistics>,
        ack_wait: Duration,
        pipeline: &str,
    ) -> Self {
        let connects = client.connects.load(Ordering::Relaxed);
        Gaps {
            cuts,
            client,
            connects,
            ack_wait,
            pipeline: pipeline.to_owned(),
            last: 0,
            highest_stream_seq: 0,
            shared: false,
        }
    }

    /// The pull stream ended and a new one starts: deliveries still on their way to the old
    /// one's inbox are lost, as in a cut.
    pub(super) fn pull_ended(&self) {
        self.cuts.record();
    }

    /// A reconnection since the last look is a cut, recorded now (at the latest, the cut was
    /// now). Called after each batch, and when a gap is seen.
    pub(super) fn look_for_reconnection(&mut self) {
        let connects = self.client.connects.load(Ordering::Relaxed);
        if connects > self.connects {
            self.connects = connects;
            self.cuts.record();
        }
    }

    /// Takes in a received delivery's consumer and stream sequences (0 and `u64::MAX` if
    /// unknown): `Some` if deliveries before it were lost in a cut.
    pub(super) fn see(&mut self, consumer_seq: u64, stream_seq: u64) -> Option<Lost> {
        let after_stream_seq = self.highest_stream_seq;
        if stream_seq != u64::MAX {
            self.highest_stream_seq = self.highest_stream_seq.max(stream_seq);
        }
        let last = self.last;
        if consumer_seq <= last {
            return None; // unknown, or the consumer was made anew
        }
        self.last = consumer_seq;
        if last == 0 || consumer_seq == last + 1 || self.shared {
            return None;
        }
        let missing = usize::try_from(consumer_seq - last - 1).unwrap_or(usize::MAX);
        self.look_for_reconnection();
        let now = Instant::now();
        let Some(cut) = self
            .cuts
            .last()
            .filter(|at| now.saturating_duration_since(*at) <= self.ack_wait + EXPLAINS_FOR)
        else {
            self.shared = true;
            tracing::info!(pipeline = %self.pipeline,
                "the nats consumer is shared with another process (deliveries skip this one): order across processes is not kept");
            return None;
        };
        // The lost deliveries were sent before the cut, so they are due again `ack_wait` after
        // it; but only a pull made after the reconnection carries them, and this one is seen
        // now, so they are waited for from the later of the two.
        let due = (cut + self.ack_wait).max(now);
        tracing::info!(pipeline = %self.pipeline, missing,
            "nats deliveries lost in the connection cut: newer messages wait until the server sends them again (ack_wait), so that each key keeps its order");
        Some(Lost {
            missing,
            due_by: due + REDELIVERY_MARGIN,
            after_stream_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK_WAIT: Duration = Duration::from_secs(30);

    fn gaps() -> (Gaps, Arc<Cuts>, Arc<async_nats::Statistics>) {
        let cuts = Arc::new(Cuts::default());
        let client = Arc::new(async_nats::Statistics::default());
        client.connects.store(1, Ordering::Relaxed);
        (
            Gaps::new(cuts.clone(), client.clone(), ACK_WAIT, "p"),
            cuts,
            client,
        )
    }

    #[test]
    fn consecutive_deliveries_have_no_gap() {
        let (mut g, _, _) = gaps();
        for seq in [5, 6, 7, 7, 0, 8] {
            assert_eq!(g.see(seq, seq + 100), None);
        }
    }

    #[test]
    fn a_gap_after_a_cut_is_deliveries_lost_in_it() {
        let (mut g, cuts, _) = gaps();
        g.see(1, 11);
        g.see(2, 12);
        cuts.record();
        let lost = g.see(6, 16).expect("three lost");
        assert_eq!(lost.missing, 3);
        assert_eq!(lost.after_stream_seq, 12, "the lost ones are newer than 12");
        let wait = lost.due_by - Instant::now();
        assert!(
            wait > ACK_WAIT && wait <= ACK_WAIT + REDELIVERY_MARGIN,
            "{wait:?}"
        );
        assert_eq!(g.see(7, 17), None);
    }

    /// The reconnection took longer than `ack_wait`: the lost deliveries are due already, but
    /// only the pull that resumed now can carry them, so they are still waited for the margin.
    #[test]
    fn a_late_reconnection_still_waits_the_margin_from_when_the_gap_is_seen() {
        let (mut g, cuts, client) = gaps();
        g.see(1, 1);
        cuts.record_at(Instant::now() - ACK_WAIT - Duration::from_secs(2));
        client.connects.store(2, Ordering::Relaxed);
        let lost = g.see(5, 5).expect("a cut explains it");
        let wait = lost.due_by - Instant::now();
        assert!(wait > REDELIVERY_MARGIN - Duration::from_millis(500), "{wait:?}");
    }

    /// The client reconnected, but the cut was never recorded (the connection's events are
    /// handled in a task of their own, and dropped when its queue is full), or was recorded
    /// longer ago than a cut can explain (a long outage).
    #[test]
    fn a_reconnection_explains_a_gap_without_a_recorded_cut() {
        for recorded in [None, Some(Duration::from_secs(600))] {
            let (mut g, cuts, client) = gaps();
            if let Some(ago) = recorded {
                cuts.record_at(Instant::now() - ago);
            }
            g.see(1, 1);
            g.look_for_reconnection();
            client.connects.store(2, Ordering::Relaxed);
            let lost = g.see(4, 4).expect("lost in the reconnection, not a shared consumer");
            assert_eq!(lost.missing, 2);
            assert!(lost.due_by - Instant::now() > ACK_WAIT, "{recorded:?}");
            assert!(!g.shared);
        }
    }

    #[test]
    fn a_gap_without_a_cut_means_a_shared_consumer_and_none_is_waited_for_again() {
        let (mut g, cuts, _) = gaps();
        g.see(1, 1);
        g.look_for_reconnection();
        assert_eq!(g.see(4, 4), None);
        assert!(g.shared);
        cuts.record();
        assert_eq!(g.see(9, 9), None);
    }
}
