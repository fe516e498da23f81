//! A cap on what one plugin can write to weir's log: its `log` calls and its stdout and stderr
//! lines together. A plugin runs per event, and one that logs per event (or prints a 4 MB line)
//! would otherwise flood the log and slow the pipeline down to the speed of its log.
//!
//! At most [`LINES_PER_WINDOW`] lines per [`WINDOW`] per plugin (all its lanes and versions
//! together), each cut at [`MAX_LINE_BYTES`]. Lines past the limit are counted, not written; the
//! count is logged once the window is over.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const WINDOW: Duration = Duration::from_secs(10);
pub(crate) const LINES_PER_WINDOW: u64 = 100;
pub(crate) const MAX_LINE_BYTES: usize = 2048;

/// One plugin's budget of log lines.
pub struct LogLimit {
    pipeline: std::sync::Arc<str>,
    plugin: std::sync::Arc<str>,
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    written: u64,
    dropped: u64,
}

impl LogLimit {
    pub fn new(pipeline: std::sync::Arc<str>, plugin: std::sync::Arc<str>) -> Self {
        LogLimit {
            pipeline,
            plugin,
            window: Mutex::new(Window {
                started: Instant::now(),
                written: 0,
                dropped: 0,
            }),
        }
    }

    /// Whether one more line may be written now. The first line refused in a window says so.
    pub fn admit(&self) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        self.roll(&mut w);
        if w.written < LINES_PER_WINDOW {
            w.written += 1;
            return true;
        }
        self.drop_lines(&mut w, 1);
        false
    }

    /// Counts `n` lines dropped before they were offered (over a call's share of lines).
    pub fn dropped(&self, n: u64) {
        if n > 0 {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            self.roll(&mut w);
            self.drop_lines(&mut w, n);
        }
    }

    fn drop_lines(&self, w: &mut Window, n: u64) {
        if w.dropped == 0 {
            tracing::warn!(pipeline = %self.pipeline, plugin = %self.plugin,
                limit = LINES_PER_WINDOW, window_s = WINDOW.as_secs(),
                "plugin log limit reached; its further lines in this window are dropped (and counted)");
        }
        w.dropped += n;
    }

    /// Reports the lines dropped in a window that is over (called after each plugin call, so
    /// that the count comes out even when the plugin falls silent).
    pub fn flush(&self) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        self.roll(&mut w);
    }

    fn roll(&self, w: &mut Window) {
        if w.started.elapsed() < WINDOW {
            return;
        }
        if w.dropped > 0 {
            tracing::warn!(pipeline = %self.pipeline, plugin = %self.plugin, dropped = w.dropped,
                limit = LINES_PER_WINDOW, window_s = WINDOW.as_secs(),
                "plugin log lines dropped over the limit");
        }
        *w = Window {
            started: Instant::now(),
            written: 0,
            dropped: 0,
        };
    }
}

impl Drop for LogLimit {
    /// The count of a window cut short (the pipeline stopped, the version replaced).
    fn drop(&mut self) {
        let w = self.window.get_mut().unwrap_or_else(|e| e.into_inner());
        if w.dropped > 0 {
            tracing::warn!(pipeline = %self.pipeline, plugin = %self.plugin, dropped = w.dropped,
                limit = LINES_PER_WINDOW, window_s = WINDOW.as_secs(),
                "plugin log lines dropped over the limit");
        }
    }
}

/// `line`, cut to [`MAX_LINE_BYTES`] (at a character boundary) with how much was cut.
pub(crate) fn clip(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= MAX_LINE_BYTES {
        return line.into();
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes cut)", &line[..end], line.len() - end).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_per_window() {
        let l = LogLimit::new("p".into(), "x".into());
        let admitted = (0..LINES_PER_WINDOW + 50).filter(|_| l.admit()).count() as u64;
        assert_eq!(admitted, LINES_PER_WINDOW);
        l.window.lock().unwrap().started -= WINDOW;
        assert!(l.admit(), "a new window");
    }

    #[test]
    fn clips_long_lines_at_a_char_boundary() {
        let long = "é".repeat(MAX_LINE_BYTES);
        let c = clip(&long);
        assert!(c.len() < MAX_LINE_BYTES + 40, "{}", c.len());
        assert!(c.ends_with(&format!("({} more bytes cut)", MAX_LINE_BYTES)));
        assert_eq!(clip("short"), "short");
    }
}
