//! The file source: JSON lines (or any text lines) from a file, optionally followed as it grows
//! and rotates. It checkpoints the byte offset after the last finished line, so a restart resumes
//! there (at-least-once: lines after the checkpoint are read again).
//!
//! Rotation: when the path names another file, the old one is read to its end, then every
//! rotated file beside the path not read yet (oldest first: two rotations between polls, or
//! while weir was stopped), then the new one ([`identity`]). A file truncated or written anew is
//! read again from its start.

mod checkpoint;
mod identity;
mod reader;

pub(crate) use checkpoint::{Checkpoint, CheckpointStore, FileId};

use crate::config::component::KeyError;
use super::prefix::PrefixTracker;
use super::{
    Acker, Format, ReadSettings, Source, SourceContext, SourceError, SourceEvent,
    SourceKind,
};
use crate::event::{Envelope, Position, now_rfc3339};
use async_trait::async_trait;
use identity::Known;
use reader::{Generations, LineReader, Losses, RawLine, ReadState, Stream};
use serde::Deserialize;
use schemars::JsonSchema;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSourceConfig {
    /// The file to read (relative paths are relative to the working directory).
    pub path: PathBuf,
    /// Keep reading as the file grows and rotates, until stopped; otherwise stop at its end.
    #[serde(default)]
    pub follow: bool,
    /// Where to start when there is no checkpoint yet.
    #[serde(default)]
    pub start: Start,
    /// How lines are decoded.
    #[serde(default)]
    pub format: Format,
    /// Lines per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How often a followed file is checked for new lines.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Longer lines are cut to this many bytes and dead-lettered with the reason.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "FileStart")]
pub(crate) enum Start {
    #[default]
    Beginning,
    End,
}

fn default_batch_size() -> usize {
    256
}
fn default_poll_interval_ms() -> u64 {
    100
}
fn default_max_line_bytes() -> usize {
    1024 * 1024
}

#[async_trait]
impl SourceKind for FileSourceConfig {
    const KIND: &'static str = "file";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path", "must not be empty".into()));
        }
        super::check_batch_size(self.batch_size)?;
        if self.poll_interval_ms == 0 {
            return Err(("poll_interval_ms", "must be at least 1".into()));
        }
        if self.max_line_bytes == 0 {
            return Err(("max_line_bytes", "must be at least 1".into()));
        }
        Ok(())
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings {
            format: self.format,
            batch_size: self.batch_size,
            max_record_bytes: self.max_line_bytes,
        }
    }

    fn preflight(&self) -> Result<(), KeyError> {
        preflight(self).map_err(|e| ("path", e.into()))
    }

    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        open(self, ctx).await
    }
}

async fn open(
    cfg: &FileSourceConfig,
    ctx: &SourceContext,
) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
    let cfg = cfg.clone();
    let store = CheckpointStore::new(&ctx.state_dir);
    let generations = Generations::default();
    let stream = Stream {
        path: cfg.path.clone(),
        max_line: cfg.max_line_bytes,
        generations: generations.clone(),
        losses: Losses {
            pipeline: ctx.pipeline.clone(),
            status: ctx.status.clone(),
        },
    };
    let reader =
        tokio::task::spawn_blocking(move || resume(&cfg, &store, stream).map(|r| (r, cfg, store)))
            .await
            .map_err(|e| SourceError::caused(format!("file source failed to start: {e}"), e))?;
    let (reader, cfg, store) = reader?;
    let source = FileSource {
        poll: Duration::from_millis(cfg.poll_interval_ms),
        cfg,
        reader: Some(reader),
    };
    let acker = FileAcker {
        tracker: PrefixTracker::default(),
        generations,
        store,
        saved: None,
    };
    Ok((Box::new(source), Box::new(acker)))
}

/// Opens the file where the checkpoint says, finding it beside the configured path if it was
/// rotated while weir was not running, and going on with the files rotated after it.
fn resume(
    cfg: &FileSourceConfig,
    store: &CheckpointStore,
    stream: Stream,
) -> Result<LineReader, SourceError> {
    let path = &cfg.path;
    let pipeline = stream.losses.pipeline.clone();
    let meta = input_metadata(path)?;
    let checkpoint = store
        .load()
        .map_err(|e| SourceError::Connector(Box::new(e)))?;
    let cannot = |e| SourceError::io(format!("cannot open {}", path.display()), e);
    let Some(cp) = checkpoint else {
        // The files already beside the path are older than this stream: not read.
        let done = reader::rotated_files(path);
        let (offset, line) = match cfg.start {
            Start::Beginning => (0, 0),
            Start::End => (
                meta.len(),
                reader::count_lines(path, meta.len())
                    .map_err(|e| SourceError::io(format!("cannot read {}", path.display()), e))?,
            ),
        };
        return LineReader::open(stream, path, offset, line, done).map_err(cannot);
    };
    let known = Known {
        file: cp.file,
        // A checkpoint of an older version: the file is recognised by its inode alone.
        fingerprint: cp
            .fingerprint
            .clone()
            .unwrap_or_else(|| identity::Fingerprint::of(b"")),
    };
    let mut done = match cp.done {
        Some(done) => done,
        // Older versions kept no list: every rotated file but the checkpointed one counts as
        // read, as those versions would have it.
        None => {
            let mut all = reader::rotated_files(path);
            all.retain(|k| k.file != cp.file);
            all
        }
    };
    if let Some((found, file)) = identity::find(path, &known, cp.offset) {
        if found.path == *path {
            tracing::info!(pipeline, path = %path.display(), offset = cp.offset, line = cp.line, "resuming after checkpoint");
        } else {
            tracing::info!(pipeline, rotated = %found.path.display(), offset = cp.offset,
                "checkpointed file was rotated; finishing it before the newer ones");
        }
        return LineReader::new(stream, file, &found.path, cp.offset, cp.line, done)
            .map_err(|e| SourceError::io(format!("cannot open {}", found.path.display()), e));
    }
    if FileId::of(&meta) == cp.file {
        tracing::warn!(pipeline, path = %path.display(), offset = cp.offset,
            "file was truncated or written anew since the checkpoint (it is shorter than the checkpoint or no longer begins with the same bytes, or a new file got the old one's inode), and its old content is nowhere beside it; reading it from its start");
    } else {
        stream.losses.lost(
            &cp.path,
            None,
            "checkpointed file is gone (neither at the path nor under a rotated name beside it)",
        );
    }
    // What is left to read: the rotated files not read yet, oldest first, then the path.
    match reader::next_unread(&stream, &mut done, None).map_err(cannot)? {
        Some((file, at)) => LineReader::new(stream, file, &at, 0, 0, done)
            .map_err(|e| SourceError::io(format!("cannot open {}", at.display()), e)),
        None => LineReader::open(stream, path, 0, 0, done).map_err(cannot),
    }
}

struct FileSource {
    cfg: FileSourceConfig,
    poll: Duration,
    /// Moved onto the blocking pool for each read.
    reader: Option<LineReader>,
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        loop {
            if stop.is_cancelled() {
                return Ok(None);
            }
            let Some(mut reader) = self.reader.take() else {
                return Ok(None);
            };
            let (max, ended) = (self.cfg.batch_size, !self.cfg.follow);
            let (reader, result) = tokio::task::spawn_blocking(move || {
                let mut lines = Vec::with_capacity(max);
                let state = reader.read_lines(max, ended, &mut lines);
                (reader, state.map(|s| (s, lines)))
            })
            .await
            .map_err(|e| SourceError::caused(format!("file reader failed: {e}"), e))?;
            self.reader = Some(reader);
            let (state, lines) = result.map_err(|e| {
                SourceError::io(format!("cannot read {}", self.cfg.path.display()), e)
            })?;
            if !lines.is_empty() {
                let time = now_rfc3339();
                return Ok(Some(
                    lines
                        .into_iter()
                        .map(|l| to_event(l, self.cfg.format, &time))
                        .collect(),
                ));
            }
            match state {
                ReadState::More => continue,
                ReadState::Idle if ended => return Ok(None),
                ReadState::Idle => {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(self.poll) => {}
                    }
                }
            }
        }
    }
}

fn to_event(line: RawLine, format: Format, time: &str) -> SourceEvent {
    let mut meta = serde_json::Map::with_capacity(4);
    meta.insert("path".into(), line.path.as_ref().into());
    meta.insert("line".into(), line.position.ordinal.into());
    meta.insert("offset".into(), line.start.into());
    let (data, mut problem) = format.decode_owned(line.bytes, &mut meta);
    if let Some(full) = line.truncated_from {
        problem = Some(format!(
            "line is {full} bytes, longer than source.max_line_bytes; data holds its start"
        ));
    }
    SourceEvent {
        envelope: Envelope {
            id: format!("{}:{}", line.path, line.position.ordinal),
            source: "file",
            key: None,
            time: time.to_owned(),
            received_at: time.to_owned(),
            data,
            meta,
        },
        position: line.position,
        problem,
        release_on_failure: false,
    }
}

/// A file read once, from its start to its end, as this source reads its file (the same lines,
/// ids, `meta`, decoding and `max_line_bytes` cut), without a checkpoint and without following:
/// the input of `weir dry-run`.
pub(crate) struct ReadOnce {
    path: PathBuf,
    reader: LineReader,
    format: Format,
}

impl ReadOnce {
    pub(crate) fn open(
        path: &Path,
        format: Format,
        max_line_bytes: usize,
    ) -> Result<Self, SourceError> {
        let cannot = |e| SourceError::io(format!("cannot open {}", path.display()), e);
        if !std::fs::metadata(path).map_err(cannot)?.is_file() {
            return Err(SourceError::Config(format!(
                "{} is not a file",
                path.display()
            )));
        }
        let stream = Stream {
            path: path.to_owned(),
            max_line: max_line_bytes.max(1),
            generations: Generations::default(),
            losses: Losses::default(),
        };
        let reader = LineReader::open(stream, path, 0, 0, Vec::new()).map_err(cannot)?;
        Ok(ReadOnce {
            path: path.to_owned(),
            reader,
            format,
        })
    }

    /// The next events, `max` at most; none at the end of the file.
    pub(crate) fn next_batch(&mut self, max: usize) -> Result<Vec<SourceEvent>, SourceError> {
        let mut lines = Vec::with_capacity(max.clamp(1, 4096));
        self.reader
            .read_lines(max.max(1), true, &mut lines)
            .map_err(|e| SourceError::io(format!("cannot read {}", self.path.display()), e))?;
        let time = now_rfc3339();
        Ok(lines
            .into_iter()
            .map(|l| to_event(l, self.format, &time))
            .collect())
    }
}

struct FileAcker {
    tracker: PrefixTracker,
    generations: Generations,
    store: CheckpointStore,
    saved: Option<Position>,
}

#[async_trait]
impl Acker for FileAcker {
    fn track(&mut self, position: Position) {
        self.tracker.track(position);
    }

    fn finish(&mut self, position: Position) {
        self.tracker.finish(position);
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        let Some(done) = self.tracker.committed() else {
            return Ok(());
        };
        if self.saved == Some(done) {
            return Ok(());
        }
        let generation = {
            let g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
            match g.get(done.partition as usize) {
                Some(entry) => entry.clone(),
                None => {
                    return Err(SourceError::Other(format!(
                        "unknown file generation {}",
                        done.partition
                    )));
                }
            }
        };
        let cp = Checkpoint {
            path: generation.path,
            file: generation.file.file,
            fingerprint: Some(generation.file.fingerprint),
            offset: done.offset,
            line: done.ordinal,
            done: Some(generation.done_before.to_vec()),
        };
        let store = &self.store;
        tokio::task::block_in_place(|| store.save(&cp)).map_err(|e| {
            SourceError::io(
                format!("cannot save checkpoint {}", store.path().display()),
                e,
            )
        })?;
        self.saved = Some(done);
        Ok(())
    }
}

/// Why the input file cannot be read: found by `weir check`, or when the source opens.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot open input file {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a file", .path.display())]
    NotAFile { path: PathBuf },
}

/// The input file's metadata, if it is a file.
fn input_metadata(path: &Path) -> Result<std::fs::Metadata, InputError> {
    let opening = |source| InputError::Open {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(opening)?;
    if !meta.is_file() {
        return Err(InputError::NotAFile {
            path: path.to_owned(),
        });
    }
    Ok(meta)
}

/// What opening this source would refuse, found without opening it for good, reading a
/// checkpoint or creating anything (`weir check`): a path that is missing, not a regular file,
/// or not readable.
fn preflight(cfg: &FileSourceConfig) -> Result<(), InputError> {
    let path = &cfg.path;
    input_metadata(path)?;
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| InputError::Open {
            path: path.clone(),
            source,
        })
}
