//! What a plugin says: what it writes to stdout and stderr (a `print`, a Python traceback, a
//! Rust panic message, a JavaScript exception; every toolchain writes its errors there) and its
//! `log` calls.
//!
//! Each instance's WASI context gets a [`Capture`] as both streams. It keeps the last
//! [`TAIL_BYTES`] of each call, both streams interleaved as written, for the DLQ reason of a trap
//! (last_words.rs) and `weir plugin test`; and it collects the call's lines (stdout, stderr and
//! `log`), which are logged when the call ends, tagged with the pipeline, the plugin and the event
//! (or batch) of the call, through the plugin's [`LogLimit`]. Except after a call that failed over
//! several events: each of them runs again (runner.rs) and says it again, better attributed;
//! logging both would repeat a traceback on every step of isolating its event.
//!
//! Writes never fail and never block: what is over the bounds is dropped (and counted), not held.

use super::bindings::Level;
use super::log_limit::{self, LogLimit};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The end of a call's output that is kept.
pub(crate) const TAIL_BYTES: usize = 8 * 1024;

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// One instance's stdout, stderr and log lines.
#[derive(Clone)]
pub struct Capture(Arc<Mutex<State>>);

struct State {
    pipeline: Arc<str>,
    plugin: Arc<str>,
    limit: Arc<LogLimit>,
    /// Whom the current call is for: an event id, a batch, `init`.
    call: String,
    /// The call's output, both streams; at most 2 × TAIL_BYTES before it is cut back.
    tail: Vec<u8>,
    /// Bytes cut from the front of `tail` this call.
    cut: usize,
    /// A line not ended yet, per stream (at most a log line's length; the rest is counted).
    partial: [Vec<u8>; 2],
    partial_over: [usize; 2],
    /// The call's lines, to log when it ends: at most the log's budget for a window; the lines
    /// past it are only counted.
    lines: Vec<Line>,
    lines_over: u64,
}

struct Line {
    level: tracing::Level,
    stream: Option<&'static str>,
    text: String,
}

impl Capture {
    pub fn new(pipeline: Arc<str>, plugin: Arc<str>, limit: Arc<LogLimit>) -> Self {
        Capture(Arc::new(Mutex::new(State {
            pipeline,
            plugin,
            limit,
            call: "init".into(),
            tail: Vec::new(),
            cut: 0,
            partial: [Vec::new(), Vec::new()],
            partial_over: [0, 0],
            lines: Vec::new(),
            lines_over: 0,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call for `call` (an event id, a batch, `init`) starts: its output starts empty.
    pub fn begin(&self, call: String) {
        let mut s = self.lock();
        s.call = call;
        s.tail.clear();
        s.cut = 0;
        s.lines.clear();
        s.lines_over = 0;
    }

    /// The plugin's `log` call.
    pub fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        self.lock().line(level, None, message);
    }

    /// The call ended. Its lines are logged if `log` (false after a call that failed over
    /// several events, which all run again). Returns the end of the call's output (empty if it
    /// wrote nothing), with a note if its start was cut.
    pub fn end(&self, log: bool) -> String {
        let mut s = self.lock();
        for stream in [Stream::Stdout, Stream::Stderr] {
            s.finish_line(stream);
        }
        if log {
            s.emit();
        }
        s.limit.flush();
        if s.tail.len() > TAIL_BYTES {
            let cut = s.tail.len() - TAIL_BYTES;
            s.tail.drain(..cut);
            s.cut += cut;
        }
        let text = String::from_utf8_lossy(&s.tail);
        match s.cut {
            0 => text.into_owned(),
            cut => format!("[{cut} earlier bytes not kept]\n{text}"),
        }
    }

    fn stream(&self, stream: Stream) -> Writer {
        Writer {
            capture: self.clone(),
            stream,
        }
    }

    pub fn stdout(&self) -> impl StdoutStream + 'static {
        self.stream(Stream::Stdout)
    }

    pub fn stderr(&self) -> impl StdoutStream + 'static {
        self.stream(Stream::Stderr)
    }
}

impl State {
    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * TAIL_BYTES {
            let cut = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..cut);
            self.cut += cut;
        }
        let mut rest = bytes;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            self.push_partial(stream, &rest[..nl]);
            self.finish_line(stream);
            rest = &rest[nl + 1..];
        }
        self.push_partial(stream, rest);
    }

    fn push_partial(&mut self, stream: Stream, bytes: &[u8]) {
        let i = stream as usize;
        let room = log_limit::MAX_LINE_BYTES.saturating_sub(self.partial[i].len());
        let take = room.min(bytes.len());
        self.partial[i].extend_from_slice(&bytes[..take]);
        self.partial_over[i] += bytes.len() - take;
    }

    /// Ends the stream's unfinished line, if any.
    fn finish_line(&mut self, stream: Stream) {
        let i = stream as usize;
        let line = std::mem::take(&mut self.partial[i]);
        let over = std::mem::take(&mut self.partial_over[i]);
        if line.is_empty() && over == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\r');
        let text = match over {
            0 => text.to_owned(),
            over => format!("{text}… ({over} more bytes cut)"),
        };
        match stream {
            Stream::Stdout => self.line(tracing::Level::INFO, Some("stdout"), &text),
            Stream::Stderr => self.line(tracing::Level::WARN, Some("stderr"), &text),
        }
    }

    /// Keeps a line for the end of the call, unless the log level hides it.
    fn line(&mut self, level: tracing::Level, stream: Option<&'static str>, text: &str) {
        if !enabled(level) {
            return;
        }
        if self.lines.len() as u64 >= log_limit::LINES_PER_WINDOW {
            self.lines_over += 1;
            return;
        }
        let text = log_limit::clip(text).into_owned();
        self.lines.push(Line {
            level,
            stream,
            text,
        });
    }

    /// Logs the call's lines, as far as the plugin's budget goes.
    fn emit(&mut self) {
        let (pipeline, plugin, event) = (&*self.pipeline, &*self.plugin, &*self.call);
        for Line {
            level,
            stream,
            text,
        } in self.lines.drain(..)
        {
            if !self.limit.admit() {
                continue;
            }
            let stream = stream.unwrap_or("log");
            match level {
                tracing::Level::TRACE => tracing::trace!(pipeline, plugin, event, stream, "{text}"),
                tracing::Level::DEBUG => tracing::debug!(pipeline, plugin, event, stream, "{text}"),
                tracing::Level::INFO => tracing::info!(pipeline, plugin, event, stream, "{text}"),
                tracing::Level::WARN => tracing::warn!(pipeline, plugin, event, stream, "{text}"),
                tracing::Level::ERROR => tracing::error!(pipeline, plugin, event, stream, "{text}"),
            }
        }
        self.limit.dropped(std::mem::take(&mut self.lines_over));
    }
}

fn enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::TRACE => tracing::enabled!(tracing::Level::TRACE),
        tracing::Level::DEBUG => tracing::enabled!(tracing::Level::DEBUG),
        tracing::Level::INFO => tracing::enabled!(tracing::Level::INFO),
        tracing::Level::WARN => tracing::enabled!(tracing::Level::WARN),
        tracing::Level::ERROR => tracing::enabled!(tracing::Level::ERROR),
    }
}

/// One of the two streams, as WASI sees it.
#[derive(Clone)]
struct Writer {
    capture: Capture,
    stream: Stream,
}

impl Writer {
    fn write(&self, bytes: &[u8]) {
        self.capture.lock().write(self.stream, bytes);
    }
}

impl IsTerminal for Writer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Writer {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// How much a plugin may write in one WASI call (the permit `check-write` grants).
const PERMIT: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl Pollable for Writer {
    async fn ready(&mut self) {}
}

impl OutputStream for Writer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        Writer::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Writer::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
