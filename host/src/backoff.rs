//! How long to wait before trying again, and the wait itself: the one policy of every retry loop
//! (the router opening a sink, delivery to the sink and the DLQ, a lane blocked on a failed
//! event, the SQS client during an outage), and how an outage of a broker is logged while it is
//! retried ([`Outage`]).

use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Exponential backoff: `min` after the first failure, doubling after each one more, never above
/// `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// Each delay drawn from its upper half (`[d/2, d]`), so that lanes that failed together do
    /// not all retry at the same moment; without it, delays are exact.
    pub jitter: bool,
}

impl Backoff {
    /// The pause after `failures` failed attempts (the first failure: 1; 0 counts as 1).
    pub fn delay(&self, failures: u32) -> Duration {
        // 2^20 × min is beyond any sensible `max` already; the cap keeps the shift defined.
        let doublings = failures.saturating_sub(1).min(20);
        let delay = self.min.saturating_mul(1 << doublings).min(self.max);
        if !self.jitter {
            return delay;
        }
        let half = delay / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Sleeps for `delay`, or returns false if `stop` comes first.
pub(crate) async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// A broker call or connection that fails and is tried again (SQS receives, RabbitMQ and NATS
/// connections): logged once when it starts failing, at most every 30 s while it keeps failing,
/// and once when it works again, so that a broker that is down does not flood the log; and the
/// pause before each next try.
pub(crate) struct Outage {
    pipeline: String,
    what: &'static str,
    backoff: Backoff,
    since: Option<Instant>,
    last_logged: Option<Instant>,
    failures: u32,
}

const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);

impl Outage {
    /// `what` names the call in the log ("sqs receive", "nats pull").
    pub(crate) fn new(pipeline: &str, what: &'static str, backoff: Backoff) -> Self {
        Outage {
            pipeline: pipeline.to_owned(),
            what,
            backoff,
            since: None,
            last_logged: None,
            failures: 0,
        }
    }

    pub(crate) fn failed(&mut self, error: &str) {
        self.failures = self.failures.saturating_add(1);
        self.since.get_or_insert_with(Instant::now);
        if self
            .last_logged
            .is_none_or(|t| t.elapsed() >= OUTAGE_LOG_EVERY)
        {
            self.last_logged = Some(Instant::now());
            tracing::error!(pipeline = %self.pipeline, failures = self.failures, error = %error,
                "{} failing; retrying", self.what);
        }
    }

    pub(crate) fn ok(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(pipeline = %self.pipeline, failures = self.failures,
                down_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                "{} works again", self.what);
            self.failures = 0;
            self.last_logged = None;
        }
    }

    /// The pause before the next try.
    pub(crate) fn backoff(&self) -> Duration {
        self.backoff.delay(self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_from_min_and_stops_at_max() {
        let b = Backoff {
            min: 200 * MS,
            max: 10_000 * MS,
            jitter: false,
        };
        let delays: Vec<_> = (0..10).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(
            delays,
            [200, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(b.delay(u32::MAX), 10_000 * MS);
    }

    #[test]
    fn max_below_min_wins() {
        let b = Backoff {
            min: 6000 * MS,
            max: 5000 * MS,
            jitter: false,
        };
        assert_eq!(b.delay(1), 5000 * MS);
    }

    #[test]
    fn a_huge_min_saturates_instead_of_overflowing() {
        let b = Backoff {
            min: Duration::MAX / 2,
            max: Duration::MAX,
            jitter: false,
        };
        assert_eq!(b.delay(30), Duration::MAX);
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let b = Backoff {
            min: 100 * MS,
            max: 1000 * MS,
            jitter: true,
        };
        for _ in 0..100 {
            for (failures, low, high) in [(1, 50, 100), (3, 200, 400), (30, 500, 1000)] {
                let d = b.delay(failures);
                assert!(d >= low * MS && d <= high * MS, "{failures}: {d:?}");
            }
        }
    }

    #[tokio::test]
    async fn pause_ends_early_when_stopped() {
        let stop = CancellationToken::new();
        assert!(pause(MS, &stop).await);
        stop.cancel();
        assert!(!pause(Duration::from_secs(3600), &stop).await);
    }
}
