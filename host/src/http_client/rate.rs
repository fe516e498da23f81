//! `rate_limit_per_s`: when the next request may start. Shared by every request it paces (a
//! plugin's instances and lanes, a sink's lanes), like their `max_concurrency` semaphore.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Starts spaced at least `1 / rate` apart, with no burst: in any second, at most `rate`
/// requests start, however the batches fall.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_s: u32,
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimit {
    pub(crate) fn new(per_s: u32) -> RateLimit {
        RateLimit {
            per_s,
            interval: Duration::from_secs(1) / per_s.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn per_s(&self) -> u32 {
        self.per_s
    }

    /// Reserves the earliest free start, if it is no later than `deadline`: a request that
    /// could only start after its deadline takes no slot from the others.
    pub(crate) fn reserve(&self, deadline: Instant) -> Option<Instant> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let slot = (*next).max(Instant::now());
        if slot > deadline {
            return None;
        }
        *next = slot + self.interval;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_and_bounded_by_the_deadline() {
        let limit = RateLimit::new(10);
        let far = Instant::now() + Duration::from_secs(60);
        let a = limit.reserve(far).expect("a slot");
        let b = limit.reserve(far).expect("a slot");
        assert!(b >= a + Duration::from_millis(100));
        // The next slot is at least 100 ms away: a deadline before it gets none and takes none.
        assert_eq!(limit.reserve(Instant::now()), None);
        let c = limit.reserve(far).expect("a slot");
        assert!(c >= b + Duration::from_millis(100));
    }
}
