//! The file sink: appends one line per event, flushes at each batch boundary and fsyncs before
//! the source checkpoints, so a checkpoint never covers events that are not on disk. A line is
//! the body's bytes as they are; a Kafka tombstone, which a line cannot leave empty (that is an
//! empty value), is written as its data, `null`.
//!
//! Pipelines of one process that name the same file (a shared sink, one DLQ for all) write
//! through one [`shared::SharedFile`]; other processes are kept out by an advisory lock.

mod shared;

use super::{Outgoing, Render, Rendered, Sink, SinkContext, SinkError, SinkFailure, SinkKind};
use crate::event::Envelope;
use crate::config::component::KeyError;
use async_trait::async_trait;
use serde::Deserialize;
use schemars::JsonSchema;
use shared::{OpenError, SharedFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSinkConfig {
    /// The file to append to; created with its directories if missing.
    pub path: PathBuf,
}

#[async_trait]
impl SinkKind for FileSinkConfig {
    const KIND: &'static str = "file";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path", "must not be empty".into()));
        }
        Ok(())
    }

    fn preview(&self, _pipeline: &str) -> Result<Box<dyn Render>, SinkError> {
        Ok(Box::new(self.clone()))
    }

    fn local_file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn preflight(&self) -> Result<(), KeyError> {
        preflight(self).map_err(|e| ("path", e.into()))
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        open(self, ctx).await
    }
}

impl Render for FileSinkConfig {
    /// The line the sink would append for an event with `body`, as JSON (`path`, `body`).
    /// Opens nothing.
    fn render(
        &self,
        body: Rendered<'_>,
        _event: &Envelope,
    ) -> Result<serde_json::Value, SinkError> {
        let body = super::preview_bytes(body.or_null());
        Ok(serde_json::json!({"path": self.path.display().to_string(), "body": body}))
    }
}

async fn open(
    cfg: &FileSinkConfig,
    _ctx: &SinkContext,
) -> Result<Box<dyn Sink>, SinkError> {
    let path = cfg.path.clone();
    let file = tokio::task::spawn_blocking(move || SharedFile::open(&path))
        .await
        .map_err(|e| SinkError::permanent(format!("file sink failed to start: {e}")).caused_by(e))?;
    match file {
        Ok(file) => Ok(Box::new(FileSink(file))),
        // Waiting would not help: the other process runs until someone stops it.
        Err(OpenError::Locked) => Err(SinkError::permanent(format!(
            "{} is locked by another process (another weir writing to it?): \
             one process appends to a file at a time",
            cfg.path.display()
        ))),
        Err(OpenError::Io(e)) => Err(SinkError::io(
            format!("cannot open {} for appending: {e}", cfg.path.display()),
            e,
        )),
    }
}

/// One pipeline's handle on a file; the file closes when its last handle goes.
struct FileSink(Arc<SharedFile>);

#[async_trait]
impl Sink for FileSink {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        // Buffered writes to a local file are brief (the page cache takes them), so they run
        // here. block_in_place was tried: each call hands this worker's core to another thread,
        // and the blocking pool grew to dozens of threads, each holding memory of its own
        // (158 MB peak on 4 lanes; docs/performance.md, "Memory").
        self.0
            .append(batch.iter().map(|o| o.body.or_null()))
            .map_err(|e| SinkFailure::All(self.failed(e)))
    }

    async fn sync(&self) -> Result<(), SinkError> {
        // An fsync can take milliseconds, and comes once a checkpoint.
        tokio::task::block_in_place(|| self.0.sync()).map_err(|e| self.failed(e))
    }
}

impl FileSink {
    fn failed(&self, e: std::io::Error) -> SinkError {
        SinkError::retryable(format!("cannot write {}: {e}", self.0.path().display())).caused_by(e)
    }
}

/// Why the sink's file cannot be appended to, found by `weir check`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutputError {
    #[error("{} is a directory", .path.display())]
    IsADirectory { path: PathBuf },
    #[error("cannot open {} for appending: {source}", .path.display())]
    Append {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {}: {} is not a directory", .path.display(), .dir.display())]
    NotADirectory { path: PathBuf, dir: PathBuf },
    #[error("cannot create {}: {}: {source}", .path.display(), .dir.display())]
    Create {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// What opening this sink would refuse, found without creating, writing or locking anything
/// (`weir check`): a path that is a directory, a directory that cannot be made because a regular
/// file stands in its way, or a file that cannot be opened for appending.
fn preflight(cfg: &FileSinkConfig) -> Result<(), OutputError> {
    let path = &cfg.path;
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(OutputError::IsADirectory { path: path.clone() }),
        // Opened only, not created, written or locked: a running weir may hold it.
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|source| OutputError::Append {
                path: path.clone(),
                source,
            }),
        Err(_) => {
            // Missing (or unreachable): the nearest existing ancestor must be a directory.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
                match std::fs::metadata(d) {
                    Ok(m) if m.is_dir() => return Ok(()),
                    Ok(_) => {
                        return Err(OutputError::NotADirectory {
                            path: path.clone(),
                            dir: d.to_owned(),
                        });
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                        ) =>
                    {
                        dir = d.parent()
                    }
                    Err(source) => {
                        return Err(OutputError::Create {
                            path: path.clone(),
                            dir: d.to_owned(),
                            source,
                        });
                    }
                }
            }
            Ok(())
        }
    }
}
