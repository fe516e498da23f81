//! The HTTP source: webhooks and producers POST events (one JSON value, a JSON array or JSON
//! lines per request). HTTP cannot be read again, so a request is answered 2xx only once its
//! events are written and fsynced to a write-ahead log in the pipeline's state dir ([`wal`]);
//! the log is the source's stream of positions, its finished prefix is checkpointed like a
//! file's, and segments behind it are removed. At least once: after a crash the events past the
//! checkpoint are read from the log again.
//!
//! ```text
//! config.rs   the `[source]` table and its checks
//! auth.rs     bearer tokens and HMAC signatures
//! body.rs     a body split into records
//! server.rs   the listener: limits, back-pressure, answers
//! wal.rs      the log: group-committed appends, replay, torn tails, checkpoints
//! ```

mod auth;
mod body;
mod config;
mod server;
mod wal;

pub(crate) use config::HttpSourceConfig;

use super::prefix::PrefixTracker;
use super::{Acker, Format, ReadSettings, Source, SourceContext, SourceError, SourceEvent, SourceKind};
use crate::config::component::KeyError;
use crate::event::{Envelope, Position};
use crate::template::Template;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wal::{Replay, Stored, Wal};

#[async_trait]
impl SourceKind for HttpSourceConfig {
    const KIND: &'static str = "http";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        HttpSourceConfig::validate(self)
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings {
            format: self.format,
            batch_size: self.batch_size,
            max_record_bytes: self.max_body_bytes,
        }
    }

    fn preflight(&self) -> Result<(), KeyError> {
        HttpSourceConfig::preflight(self)
    }

    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        open(self, ctx).await
    }
}

async fn open(
    cfg: &HttpSourceConfig,
    ctx: &SourceContext,
) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
    let keyed = |(key, e): KeyError| SourceError::Config(format!("source.{key}: {e}"));
    let verifier = cfg.auth.as_ref().map(|a| a.verifier()).transpose().map_err(keyed)?;
    let tls = cfg.tls.as_ref().map(config::TlsFiles::server_config).transpose().map_err(keyed)?;
    let key = match &cfg.key {
        Some(k) => Some(
            Template::parse(k)
                .map_err(|e| SourceError::Config(format!("source.key: invalid template: {e}")))?,
        ),
        None => None,
    };
    let addr = cfg.listen_addr().map_err(|e| SourceError::Config(format!("source.listen: {e}")))?;
    let (state_dir, segment_bytes, pipeline) =
        (ctx.state_dir.clone(), cfg.segment_bytes, ctx.pipeline.clone());
    let (wal, replay, mut writer) =
        tokio::task::spawn_blocking(move || wal::open(&state_dir, segment_bytes, &pipeline))
            .await
            .map_err(|e| SourceError::caused(format!("http source failed to start: {e}"), e))?
            .map_err(|e| SourceError::io("http source: cannot open its log", e))?;
    let listener = server::bind(addr)
        .await
        .map_err(|e| SourceError::io(format!("source.listen: cannot listen on {addr}"), e))?;
    writer.status = ctx.status.clone();
    let (appends, append_rx) = mpsc::channel(1024);
    let (events_tx, events) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("weir-http-log".into())
        .spawn(move || writer.run(append_rx, events_tx))
        .map_err(|e| SourceError::io("http source: cannot start its log writer", e))?;
    let closing = CancellationToken::new();
    let shared = Arc::new(server::Shared {
        pipeline: ctx.pipeline.clone(),
        paths: cfg.paths.clone(),
        format: cfg.format,
        max_body_bytes: cfg.max_body_bytes,
        max_in_flight: cfg.max_in_flight,
        max_log_bytes: cfg.max_log_bytes,
        headers: cfg.header_names(),
        verifier,
        wal: wal.clone(),
        appends,
        closing: closing.clone(),
    });
    tracing::info!(pipeline = %ctx.pipeline, listen = %addr, tls = tls.is_some(),
        replaying = replay.left, "http source listening");
    tokio::spawn(server::serve(listener, tls, shared));
    wal.report_bytes();
    Ok((
        Box::new(HttpSource {
            replay: Some(replay),
            events,
            pending: VecDeque::new(),
            batch_size: cfg.batch_size,
            format: cfg.format,
            key,
            pipeline: ctx.pipeline.clone(),
            closing: closing.clone().drop_guard(),
        }),
        Box::new(HttpAcker {
            tracker: PrefixTracker::default(),
            wal,
            saved: None,
            _closing: closing.drop_guard(),
        }),
    ))
}

struct HttpSource {
    /// What the log held past the checkpoint at start, read before anything new.
    replay: Option<Replay>,
    events: mpsc::UnboundedReceiver<Vec<Stored>>,
    pending: VecDeque<Stored>,
    batch_size: usize,
    format: Format,
    key: Option<Template>,
    pipeline: String,
    /// Stops the listener when the source stops or goes.
    closing: tokio_util::sync::DropGuard,
}

#[async_trait]
impl Source for HttpSource {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        if stop.is_cancelled() {
            self.stop();
            return Ok(None);
        }
        if let Some(mut replay) = self.replay.take() {
            let max = self.batch_size;
            let (replay, read) = tokio::task::spawn_blocking(move || {
                let read = replay.next(max);
                (replay, read)
            })
            .await
            .map_err(|e| SourceError::caused(format!("http source log reader failed: {e}"), e))?;
            let read = read.map_err(|e| SourceError::io("http source: cannot read its log", e))?;
            if replay.left > 0 {
                self.replay = Some(replay);
            }
            if !read.is_empty() {
                return Ok(Some(read.into_iter().map(|s| self.to_event(s)).collect()));
            }
        }
        if self.pending.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.stop();
                    return Ok(None);
                }
                received = self.events.recv() => match received {
                    Some(events) => self.pending.extend(events),
                    None => return Ok(None),
                },
            }
        }
        while self.pending.len() < self.batch_size {
            match self.events.try_recv() {
                Ok(events) => self.pending.extend(events),
                Err(_) => break,
            }
        }
        let n = self.pending.len().min(self.batch_size);
        let batch: Vec<Stored> = self.pending.drain(..n).collect();
        Ok(Some(batch.into_iter().map(|s| self.to_event(s)).collect()))
    }
}

impl HttpSource {
    /// Stops taking requests (new ones are answered 503). What was written to the log and not
    /// handed to the pipeline is read from the log at the next start.
    fn stop(&mut self) {
        let guard = std::mem::replace(
            &mut self.closing,
            CancellationToken::new().drop_guard(),
        );
        drop(guard);
    }

    fn to_event(&self, s: Stored) -> SourceEvent {
        let mut meta = s.meta.map.clone();
        let received_at = match meta.get("received_at") {
            Some(serde_json::Value::String(t)) => t.clone(),
            _ => crate::event::now_rfc3339(),
        };
        meta.insert("offset".into(), s.start.into());
        let (data, problem) = self.format.decode(&s.data, &mut meta);
        let mut envelope = Envelope {
            id: s.start.to_string(),
            source: "http",
            key: None,
            time: received_at.clone(),
            received_at,
            data,
            meta,
        };
        if let Some(t) = &self.key {
            envelope.key = Some(t.render(&envelope, &self.pipeline));
        }
        SourceEvent {
            envelope,
            position: Position {
                partition: 0,
                offset: s.end,
                ordinal: s.ordinal,
            },
            problem,
            release_on_failure: false,
        }
    }
}

struct HttpAcker {
    tracker: PrefixTracker,
    wal: Arc<Wal>,
    saved: Option<Position>,
    /// Stops the listener when the acker goes.
    _closing: tokio_util::sync::DropGuard,
}

#[async_trait]
impl Acker for HttpAcker {
    fn track(&mut self, position: Position) {
        self.tracker.track(position);
    }

    fn finish(&mut self, position: Position) {
        self.tracker.finish(position);
        let _ = self
            .wal
            .in_flight
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        let Some(done) = self.tracker.committed() else {
            return Ok(());
        };
        if self.saved == Some(done) {
            return Ok(());
        }
        let cp = wal::Checkpoint {
            offset: done.offset,
            ordinal: done.ordinal,
        };
        let wal = &self.wal;
        tokio::task::block_in_place(|| wal.checkpoint(cp))
            .map_err(|e| SourceError::io("http source: checkpoint", e))?;
        self.saved = Some(done);
        Ok(())
    }
}
