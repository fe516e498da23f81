//! Logging a failing sink or DLQ as a condition, not as attempts: a broker outage must not make
//! one line per lane per retry (it made thousands a minute). The lanes share the pipeline's sink
//! and DLQ, and so one [`RetryLog`] each: the first failed write logs that writes fail (the
//! events waiting, the error); while they keep failing, at most one summary every
//! [`SUMMARY_EVERY`] says how many events wait, how many attempts failed since the last line and
//! the newest error; and when no event waits any more, one INFO says how long it lasted, how many
//! events waited and how many attempts failed. The metrics and `last_error` follow every attempt.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `tracing` event at a [`Severity`] chosen at run time.
macro_rules! emit {
    ($severity:expr, $($rest:tt)*) => {
        match $severity {
            Severity::Warn => tracing::warn!($($rest)*),
            Severity::Error => tracing::error!($($rest)*),
        }
    };
}

/// The longest a failing sink or DLQ goes without a line in the log.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// How bad a failing write is: WARN while events wait for a sink, ERROR when they cannot end at
/// all until it works (the DLQ; a sink with `on_failure = "block"`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Severity {
    Warn,
    Error,
}

pub(super) struct RetryLog {
    pipeline: Arc<str>,
    /// `sink write`, `dead-letter queue write`.
    what: &'static str,
    /// What the first line adds after `{what} failed; retrying`.
    consequence: &'static str,
    severity: Severity,
    /// [`SUMMARY_EVERY`], shorter in tests.
    every: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Failing since; `None` while writes work.
    since: Option<Instant>,
    /// Events waiting for a retry now, over every lane.
    waiting: usize,
    /// Events that waited since the condition began (each counted once per write call).
    waited: u64,
    /// Failed attempts since the condition began, and at the last line.
    attempts: u64,
    attempts_logged: u64,
    logged_at: Option<Instant>,
}

impl RetryLog {
    pub(super) fn new(
        pipeline: Arc<str>,
        what: &'static str,
        consequence: &'static str,
        severity: Severity,
    ) -> Self {
        RetryLog {
            pipeline,
            what,
            consequence,
            severity,
            every: SUMMARY_EVERY,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write call's share of the condition: how many of its events wait. Costs nothing until
    /// it fails.
    pub(super) fn waiting(&self) -> Waiting<'_> {
        Waiting {
            log: self,
            events: 0,
            counted: false,
            settled: false,
        }
    }
}

/// One write call's events waiting for a retry. Settle it ([`Waiting::settled`]) once they
/// ended; dropped unsettled (the pipeline stops), it stops counting them without saying the
/// writes work again.
pub(super) struct Waiting<'a> {
    log: &'a RetryLog,
    events: usize,
    counted: bool,
    settled: bool,
}

impl Waiting<'_> {
    /// An attempt failed and `events` of this call wait for the next one, in `retry_in`.
    pub(super) fn failed(&mut self, events: usize, error: &str, retry_in: Duration) {
        let log = self.log;
        let severity = log.severity;
        let mut s = log.lock();
        s.waiting = s.waiting.saturating_sub(self.events) + events;
        self.events = events;
        if !self.counted {
            self.counted = true;
            s.waited += events as u64;
        }
        s.attempts += 1;
        let now = Instant::now();
        let retry_in_ms = retry_in.as_millis() as u64;
        let (pipeline, what) = (&log.pipeline, log.what);
        let Some(since) = s.since else {
            s.since = Some(now);
            s.logged_at = Some(now);
            s.attempts_logged = s.attempts;
            let events = s.waiting;
            emit!(severity, pipeline = %pipeline, events, retry_in_ms, error = %error,
                "{what} failed; retrying{}", log.consequence);
            return;
        };
        if s.logged_at
            .is_some_and(|t| now.duration_since(t) >= log.every)
        {
            let attempts = s.attempts - s.attempts_logged;
            let interval_s = s.logged_at.map_or(0, |t| now.duration_since(t).as_secs());
            s.logged_at = Some(now);
            s.attempts_logged = s.attempts;
            let (events, failing_s) = (s.waiting, now.duration_since(since).as_secs());
            emit!(severity, pipeline = %pipeline, events, attempts, interval_s, failing_s, error = %error,
                "{what} still failing after {failing_s}s: {events} events waiting, {attempts} failed attempts in the last {interval_s}s");
        }
    }

    /// This call's events ended (written, or failed for good): they wait no more.
    pub(super) fn settled(mut self) {
        self.settled = true;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.counted {
            return; // never failed: the condition never knew this call
        }
        let log = self.log;
        let mut s = log.lock();
        s.waiting = s.waiting.saturating_sub(self.events);
        if s.waiting > 0 {
            return;
        }
        let state = std::mem::take(&mut *s);
        if let (true, Some(since)) = (self.settled, state.since) {
            let failing_s = since.elapsed().as_secs();
            let (events, attempts) = (state.waited, state.attempts);
            tracing::info!(pipeline = %log.pipeline, failing_s, events, attempts,
                "{} works again after {failing_s}s: {events} events waited, {attempts} attempts failed",
                log.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// What the log says while `f` runs, one line per event.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_condition_is_logged_once_then_summarised_then_once_when_it_ends() {
        let mut log = RetryLog::new("p".into(), "sink write", "", Severity::Warn);
        log.every = Duration::from_millis(50);
        let text = logged(|| {
            let retry = Duration::from_millis(1);
            // Two lanes fail, again and again, for longer than a summary interval.
            let mut a = log.waiting();
            let mut b = log.waiting();
            for _ in 0..3 {
                a.failed(10, "disk full", retry);
                b.failed(5, "disk full", retry);
            }
            std::thread::sleep(Duration::from_millis(60));
            a.failed(10, "disk still full", retry);
            a.settled();
            assert_eq!(log.lock().waiting, 5, "b still waits");
            b.failed(5, "disk full", retry);
            b.settled();
            // A call that never failed is not part of it; one that stops unsettled ends it
            // without saying it works.
            log.waiting().settled();
            let dlq = RetryLog::new("p".into(), "dead-letter queue write", "", Severity::Error);
            let mut c = dlq.waiting();
            c.failed(1, "disk full", retry);
            drop(c);
            assert_eq!(dlq.lock().waiting, 0);
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].contains("WARN") && lines[0].contains("sink write failed; retrying"));
        assert!(lines[0].contains("events=10"), "{}", lines[0]);
        assert!(lines[1].contains("sink write still failing after 0s: 15 events waiting, 6 failed attempts in the last 0s"), "{}", lines[1]);
        assert!(lines[1].contains("disk still full"), "{}", lines[1]);
        assert!(
            lines[2].contains("INFO")
                && lines[2].contains(
                    "sink write works again after 0s: 15 events waited, 8 attempts failed"
                ),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].contains("ERROR") && lines[3].contains("events=1"),
            "{}",
            lines[3]
        );
        assert_eq!(log.lock().waiting, 0);
    }
}
