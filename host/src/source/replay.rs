//! Dead-lettered events being redriven (`weir dlq redrive`): not a `[source]` kind, but the same
//! two halves, so that they run through the real pipeline.
//!
//! The source reads the DLQ records that redrive set aside (`DLQ.redrive`), one per line, from a
//! byte offset on; each event carries its record's `error` in `meta.redrive` (a new failure
//! continues that history). The acker saves how far the records have ended in a small progress
//! file beside them, as a checkpoint: after the pipeline has made their deliveries (and new DLQ
//! records) durable. An interrupted redrive resumes from there, so a kill re-delivers at most
//! what was in flight. It asks for a checkpoint every [`SAVE_EVERY`] ended records, not only on
//! the pipeline's interval, to keep that small.

use super::prefix::PrefixTracker;
use super::{Acker, Source, SourceError, SourceEvent};
use crate::dlq_record::DlqRecord;
use crate::event::{Envelope, Payload, Position};
use async_trait::async_trait;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 256;

/// Ended records between two saves of the progress: what a kill may deliver twice, besides
/// the events in flight.
pub(crate) const SAVE_EVERY: u64 = BATCH as u64;

/// How far a redrive got: `done` bytes of the `aside_bytes` set aside have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Progress {
    pub aside_bytes: u64,
    pub done: u64,
}

impl Progress {
    /// The progress file of the records set aside in `aside`.
    pub(crate) fn path(aside: &Path) -> PathBuf {
        let mut name = aside.as_os_str().to_owned();
        name.push(".progress");
        PathBuf::from(name)
    }

    /// The saved progress, `None` if there is none (or it is unreadable: then say so).
    pub(crate) fn load(path: &Path) -> Option<Progress> {
        let text = std::fs::read_to_string(path).ok()?;
        match serde_json::from_str(&text) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!(
                    "warning: {} is unreadable ({e}): starting over",
                    path.display()
                );
                None
            }
        }
    }

    /// Replaces the progress file durably: a crash leaves the old one or the new one whole.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        crate::durable::replace(path, |f| f.write_all(text.as_bytes()))
    }
}

pub(crate) struct Replay {
    lines: BufReader<std::fs::File>,
    path: PathBuf,
    offset: u64,
    ordinal: u64,
}

/// How far the records have ended and been saved (bytes of the aside file).
#[derive(Clone, Default)]
pub(crate) struct Done(Arc<AtomicU64>);

impl Done {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct ReplayAcker {
    tracker: PrefixTracker,
    progress: Progress,
    path: PathBuf,
    /// Ordinal of the last record saved as done.
    saved_ordinal: Option<u64>,
    wanted: Arc<Notify>,
    done: Done,
}

/// A replay's two halves, and how far it got.
pub(crate) struct Opened {
    pub source: Box<dyn Source>,
    pub acker: Box<dyn Acker>,
    pub done: Done,
}

/// A source yielding the records of `aside` after `progress.done`, and its acker, which saves
/// the progress in [`Progress::path`].
pub(crate) fn open(aside: &Path, progress: Progress) -> Result<Opened, SourceError> {
    let mut file = std::fs::File::open(aside)
        .map_err(|e| SourceError::io(format!("cannot open {}", aside.display()), e))?;
    file.seek(SeekFrom::Start(progress.done))
        .map_err(|e| SourceError::io(format!("cannot read {}", aside.display()), e))?;
    let done = Done(Arc::new(AtomicU64::new(progress.done)));
    let source = Replay {
        lines: BufReader::new(file),
        path: aside.to_owned(),
        offset: progress.done,
        ordinal: 0,
    };
    let acker = ReplayAcker {
        tracker: PrefixTracker::default(),
        progress,
        path: Progress::path(aside),
        saved_ordinal: None,
        wanted: Arc::default(),
        done: done.clone(),
    };
    Ok(Opened {
        source: Box::new(source),
        acker: Box::new(acker),
        done,
    })
}

impl Replay {
    /// The event of one DLQ record, with its history; or, for a line that is not one (it cannot
    /// be, the file was written whole, but never drop a line), the line as a malformed event.
    fn event(&self, line: &str, position: Position) -> SourceEvent {
        let parsed = serde_json::from_str::<DlqRecord>(line).map(|record| {
            // The kind that first read the event, if weir still has it.
            let label = crate::source::registered_kind(&record.event.source).unwrap_or("redrive");
            record.redriven(label)
        });
        let (envelope, problem) = match parsed {
            Ok(event) => (event, None),
            Err(e) => {
                let now = crate::event::now_rfc3339();
                let event = Envelope {
                    id: format!("{}:{}", self.path.display(), position.ordinal + 1),
                    source: "redrive",
                    key: None,
                    time: now.clone(),
                    received_at: now,
                    data: Payload::Text(line.to_owned()),
                    meta: serde_json::Map::new(),
                };
                (event, Some(format!("not a DLQ record: {e}")))
            }
        };
        SourceEvent {
            envelope,
            position,
            problem,
            release_on_failure: false,
        }
    }
}

#[async_trait]
impl Source for Replay {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut line = String::new();
        while batch.len() < BATCH && !stop.is_cancelled() {
            line.clear();
            let n = self
                .lines
                .read_line(&mut line)
                .map_err(|e| SourceError::io(format!("cannot read {}", self.path.display()), e))?;
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            let position = Position {
                partition: 0,
                offset: self.offset,
                ordinal: self.ordinal,
            };
            self.ordinal += 1;
            let text = line.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                // Nothing to redrive; an event-less position would never be finished.
                continue;
            }
            batch.push(self.event(text, position));
        }
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }
}

#[async_trait]
impl Acker for ReplayAcker {
    fn track(&mut self, position: Position) {
        self.tracker.track(position);
    }

    fn finish(&mut self, position: Position) {
        self.tracker.finish(position);
        let ended = self.tracker.committed().map(|p| p.ordinal);
        let unsaved = match (ended, self.saved_ordinal) {
            (Some(e), Some(s)) => e.saturating_sub(s),
            (Some(e), None) => e + 1,
            (None, _) => 0,
        };
        if unsaved >= SAVE_EVERY {
            self.wanted.notify_one();
        }
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        let Some(ended) = self.tracker.committed() else {
            return Ok(());
        };
        if self.saved_ordinal == Some(ended.ordinal) {
            return Ok(());
        }
        self.progress.done = ended.offset;
        self.progress
            .save(&self.path)
            .map_err(|e| SourceError::io(format!("cannot save {}", self.path.display()), e))?;
        self.saved_ordinal = Some(ended.ordinal);
        self.done.0.store(ended.offset, Ordering::SeqCst);
        Ok(())
    }

    fn checkpoint_requests(&self) -> Option<Arc<Notify>> {
        Some(self.wanted.clone())
    }
}
