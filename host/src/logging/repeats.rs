//! The AWS SDK's own warnings, each logged at most once a minute.
//!
//! The SDK logs a WARN for every call that fails the same way (a credentials provider that
//! cannot reach the instance metadata service, a retry of a refused request): with several
//! receivers polling, the same line dozens of times a minute, burying weir's own report of the
//! condition (which weir throttles itself). Other libraries log through weir's throttled
//! reports already (librdkafka goes through `crate::kafka::Logged`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How long the same message from the same place stays quiet after it was logged.
const QUIET_FOR: Duration = Duration::from_secs(60);
/// Messages remembered at most; older ones are forgotten first.
const REMEMBERED: usize = 1024;

#[derive(Default)]
pub(super) struct Repeats {
    /// (target, message) -> when it was last let through.
    seen: Mutex<HashMap<(&'static str, String), Instant>>,
}

/// Whether the throttle applies: warnings and errors of the AWS SDK's crates, and of lapin
/// (RabbitMQ), which logs each failed reconnection on its own besides weir's report.
fn throttled(target: &str, level: &Level) -> bool {
    *level <= Level::WARN && (target.starts_with("aws_") || target.starts_with("lapin"))
}

impl<S: Subscriber> Layer<S> for Repeats {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if !throttled(meta.target(), meta.level()) {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = (meta.target(), message.0);
        if seen.get(&key).is_some_and(|t| now - *t < QUIET_FOR) {
            return false;
        }
        if seen.len() >= REMEMBERED {
            seen.retain(|_, t| now - *t < QUIET_FOR);
            if seen.len() >= REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(key, now);
        true
    }
}

/// An event's `message` field as text.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::layer::SubscriberExt;

    /// Counts the events that get through.
    struct Count(Arc<AtomicUsize>);
    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, _e: &Event<'_>, _c: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn repeated_sdk_warnings_are_let_through_once() {
        let n = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(Repeats::default())
            .with(Count(n.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..5 {
                tracing::warn!(target: "aws_config::imds", "failed to load IMDS session token");
            }
            tracing::warn!(target: "aws_config::imds", "another message");
            for _ in 0..3 {
                tracing::warn!(target: "weir::pipeline", "weir's own line");
                tracing::info!(target: "aws_config::imds", "info is not throttled");
            }
        });
        assert_eq!(n.load(Ordering::Relaxed), 1 + 1 + 3 + 3);
    }
}
