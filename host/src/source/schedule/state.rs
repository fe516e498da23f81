//! The schedule's durable state, `schedule-source.json` in the pipeline's state directory:
//! `done`, the firing time through which everything is finished or was never to fire (a fresh
//! pipeline starts from its first start); `emitted`, the latest firing handed to the pipeline;
//! and `pending`, the firings handed to it and not finished yet. At start the pending ones are
//! emitted again whatever `catch_up` says, and firings after `emitted` are the missed ones.
//! Keeping the pending firings themselves (not a range) keeps what a catch-up skipped skipped
//! after a crash. The source saves the file before it hands out firings, its acker at each
//! checkpoint; the file is replaced whole ([`crate::durable::replace`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Saved {
    pub(crate) done: DateTime<Utc>,
    pub(crate) emitted: DateTime<Utc>,
    /// Oldest first.
    pub(crate) pending: Vec<DateTime<Utc>>,
}

/// The file's content: milliseconds since the epoch, and `done` and `emitted` in RFC 3339 for
/// people.
#[derive(Serialize, Deserialize)]
struct Stored {
    done_ms: i64,
    emitted_ms: i64,
    #[serde(default)]
    pending_ms: Vec<i64>,
    #[serde(default)]
    done: String,
    #[serde(default)]
    emitted: String,
}

impl Stored {
    fn of(s: &Saved) -> Stored {
        let text = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Stored {
            done_ms: s.done.timestamp_millis(),
            emitted_ms: s.emitted.timestamp_millis(),
            pending_ms: s.pending.iter().map(|t| t.timestamp_millis()).collect(),
            done: text(s.done),
            emitted: text(s.emitted),
        }
    }

    fn saved(&self) -> Option<Saved> {
        let mut pending = self
            .pending_ms
            .iter()
            .map(|ms| DateTime::from_timestamp_millis(*ms))
            .collect::<Option<Vec<_>>>()?;
        pending.sort();
        pending.dedup();
        Some(Saved {
            done: DateTime::from_timestamp_millis(self.done_ms)?,
            emitted: DateTime::from_timestamp_millis(self.emitted_ms)?,
            pending,
        })
    }
}

/// The state file, shared by the source and its acker.
#[derive(Clone)]
pub(crate) struct StateFile {
    path: PathBuf,
    /// The state as saved last (held while saving, so that the two writers take turns).
    saved: Arc<Mutex<Option<Saved>>>,
}

impl StateFile {
    pub(crate) fn new(state_dir: &Path) -> Self {
        StateFile {
            path: state_dir.join("schedule-source.json"),
            saved: Arc::default(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; `None` for a pipeline that never ran.
    pub(crate) fn load(&self) -> Result<Option<Saved>, String> {
        let saved = match std::fs::read(&self.path) {
            Ok(bytes) => {
                let corrupt = |e: String| {
                    format!(
                        "schedule state {} is corrupt ({e}); remove it to start over",
                        self.path.display()
                    )
                };
                let stored: Stored =
                    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                Some(
                    stored
                        .saved()
                        .ok_or_else(|| corrupt("a time out of range".into()))?,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(format!(
                    "cannot read schedule state {}: {e}",
                    self.path.display()
                ));
            }
        };
        *self.lock() = saved.clone();
        Ok(saved)
    }

    /// A fresh pipeline: nothing through `done` is to fire.
    pub(crate) fn begin(&self, done: DateTime<Utc>) -> std::io::Result<()> {
        self.update(|s| {
            *s = Some(Saved {
                done,
                emitted: done,
                pending: Vec::new(),
            })
        })
    }

    /// `firings` (oldest first) are handed to the pipeline.
    pub(crate) fn emitted(&self, firings: &[DateTime<Utc>]) -> std::io::Result<()> {
        self.update(|s| {
            if let Some(s) = s {
                for t in firings {
                    if s.pending.last().is_none_or(|last| t > last) {
                        s.pending.push(*t);
                    }
                    s.emitted = s.emitted.max(*t);
                }
            }
        })
    }

    /// Every firing through `through` has finished.
    pub(crate) fn finished(&self, through: DateTime<Utc>) -> std::io::Result<()> {
        self.update(|s| {
            if let Some(s) = s {
                s.done = s.done.max(through);
                s.emitted = s.emitted.max(through);
                s.pending.retain(|t| *t > through);
            }
        })
    }

    /// Changes the state and saves it if it changed.
    fn update(&self, change: impl FnOnce(&mut Option<Saved>)) -> std::io::Result<()> {
        let mut saved = self.lock();
        let mut new = saved.clone();
        change(&mut new);
        let Some(state) = new.as_ref().filter(|n| Some(*n) != saved.as_ref()) else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&Stored::of(state)).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        crate::durable::replace(&self.path, |w| w.write_all(&bytes))?;
        *saved = new;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Saved>> {
        self.saved.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_is_pending_and_never_moves_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        assert_eq!(file.load().unwrap(), None);
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        file.begin(t(10)).unwrap();
        // A catch-up that skipped 11 to 14, then 15 and 16 handed out.
        file.emitted(&[t(15)]).unwrap();
        file.emitted(&[t(16)]).unwrap();
        file.finished(t(15)).unwrap();
        file.finished(t(12)).unwrap();
        let again = StateFile::new(dir.path());
        assert_eq!(
            again.load().unwrap(),
            Some(Saved {
                done: t(15),
                emitted: t(16),
                pending: vec![t(16)],
            })
        );
        std::fs::write(file.path(), b"{oops").unwrap();
        assert!(again.load().unwrap_err().contains("corrupt"));
    }
}
