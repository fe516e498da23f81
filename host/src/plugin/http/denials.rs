//! Logging denied requests without letting a plugin flood the log: at most one line per second
//! per plugin, saying how many more were denied since the last line. (Every denial is counted
//! in `weir_plugin_http_requests_total{outcome="denied"}`.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct DenialLog {
    /// When the last line was written, and denials not logged since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl DenialLog {
    pub(crate) fn record(&self, pipeline: &str, plugin: &str, message: &str) {
        let now = Instant::now();
        let unlogged = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state
                .0
                .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
            {
                state.1 += 1;
                return;
            }
            let unlogged = state.1;
            *state = (Some(now), 0);
            unlogged
        };
        tracing::warn!(
            pipeline,
            plugin,
            denied_unlogged = unlogged,
            "http request denied: {message}"
        );
    }
}
