//! Telling a plugin's work from its waiting, so that each has its own bound.
//!
//! `timeout_ms` bounds the plugin's own work: a plugin that spends 900 ms waiting for an API
//! that answers slowly has not used 900 ms of it. Waiting on HTTP and lookups is bounded apart:
//! each request by its own timeout, and a whole call by the I/O budget (`io_budget_ms`).
//!
//! How: a call waiting in an async host function returns `Pending` to the future that drives it
//! (call.rs); [`Timed`] wraps that future and adds the time from a `Pending` to the next poll to
//! the call's waited time. The epoch deadline (engine.rs) is first set at `timeout`; when it is
//! reached, the epoch callback ([`IoClock::extend`]) looks at how much of the elapsed time was
//! waiting, and lets the plugin run on for that much. The call as a whole is dropped after
//! `timeout + io_budget` of wall time (call.rs), and each request gets a deadline no later than
//! that ([`IoClock::deadline`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One call's clock: when it started, how long it has waited so far, and its wall deadline.
#[derive(Clone)]
pub struct IoClock {
    inner: Arc<Inner>,
}

struct Inner {
    /// Nanoseconds since `started` at which the call must be over (`timeout + io_budget`).
    started: std::sync::Mutex<(Instant, Duration)>,
    waited_ns: AtomicU64,
}

impl Default for IoClock {
    fn default() -> Self {
        IoClock {
            inner: Arc::new(Inner {
                started: std::sync::Mutex::new((Instant::now(), Duration::ZERO)),
                waited_ns: AtomicU64::new(0),
            }),
        }
    }
}

impl IoClock {
    /// Starts a call that may take `bound` of wall time in all.
    pub fn start(&self, bound: Duration) {
        *self.lock() = (Instant::now(), bound);
        self.inner.waited_ns.store(0, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Instant, Duration)> {
        self.inner.started.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the call under way must be over: no request it makes may wait past this.
    pub fn deadline(&self) -> Instant {
        let (started, bound) = *self.lock();
        started + bound
    }

    /// Wall time since the call started, and how much of it was spent waiting.
    pub fn elapsed(&self) -> (Duration, Duration) {
        let (started, _) = *self.lock();
        let waited = Duration::from_nanos(self.inner.waited_ns.load(Ordering::Relaxed));
        (started.elapsed(), waited)
    }

    /// The epoch deadline was reached after `timeout` of work was allowed: how much longer the
    /// plugin may run, if any. (Work = elapsed - waited.)
    pub fn extend(&self, timeout: Duration) -> Option<Duration> {
        let (elapsed, waited) = self.elapsed();
        let worked = elapsed.saturating_sub(waited);
        timeout.checked_sub(worked).filter(|left| !left.is_zero())
    }

    /// `call`, with the time it spends pending counted as waited.
    pub fn timed<F: Future>(&self, call: F) -> Timed<F> {
        Timed {
            call: Box::pin(call),
            clock: self.clone(),
            pending_since: None,
        }
    }
}

pub struct Timed<F: Future> {
    call: Pin<Box<F>>,
    clock: IoClock,
    pending_since: Option<Instant>,
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Some(since) = self.pending_since.take() {
            let ns = since.elapsed().as_nanos().min(u64::MAX as u128) as u64;
            self.clock.inner.waited_ns.fetch_add(ns, Ordering::Relaxed);
        }
        let polled = self.call.as_mut().poll(cx);
        if polled.is_pending() {
            self.pending_since = Some(Instant::now());
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that waits (a pending host call) has that time counted as waited, not as work.
    #[test]
    fn time_spent_pending_is_waiting_not_work() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let clock = IoClock::default();
        clock.start(Duration::from_secs(3600));
        rt.block_on(clock.timed(async { tokio::time::sleep(Duration::from_millis(30)).await }));
        let (elapsed, waited) = clock.elapsed();
        assert!(
            waited > Duration::ZERO && waited <= elapsed,
            "{waited:?} of {elapsed:?}"
        );
        // Nearly all of it was waiting: a timeout of the waited time plus the work left room.
        assert!(clock.extend(waited + Duration::from_secs(60)).is_some());
        // Without waiting, work is the elapsed time: a timeout already passed gives no more.
        clock.start(Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.extend(Duration::from_millis(1)), None);
    }

    #[test]
    fn a_new_call_starts_from_nothing_waited() {
        let clock = IoClock::default();
        clock.inner.waited_ns.store(5_000_000, Ordering::Relaxed);
        clock.start(Duration::from_millis(10));
        assert_eq!(clock.elapsed().1, Duration::ZERO);
        assert!(clock.deadline() <= Instant::now() + Duration::from_millis(10));
    }
}
