//! The schedule's durable state, `schedule-source.json` in the pipeline's state directory:
//! `done`, the firing time through which every firing is finished (or was never to fire: a
//! fresh pipeline starts from its first start), and `emitted`, the latest firing handed to the
//! pipeline. Firings in `(done, emitted]` were emitted and may not have finished: a restart
//! emits them again whatever `catch_up` says. Both the source (before it hands out firings) and
//! its acker (at each checkpoint) save the file, whole ([`crate::durable::replace`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Saved {
    pub(crate) done: DateTime<Utc>,
    pub(crate) emitted: DateTime<Utc>,
}

/// The file's content: milliseconds since the epoch, and the same times in RFC 3339 for people.
#[derive(Serialize, Deserialize)]
struct Stored {
    done_ms: i64,
    emitted_ms: i64,
    #[serde(default)]
    done: String,
    #[serde(default)]
    emitted: String,
}

impl Stored {
    fn of(s: Saved) -> Stored {
        let text = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Stored {
            done_ms: s.done.timestamp_millis(),
            emitted_ms: s.emitted.timestamp_millis(),
            done: text(s.done),
            emitted: text(s.emitted),
        }
    }

    fn saved(&self) -> Option<Saved> {
        Some(Saved {
            done: DateTime::from_timestamp_millis(self.done_ms)?,
            emitted: DateTime::from_timestamp_millis(self.emitted_ms)?,
        })
    }
}

/// The state file, shared by the source and its acker.
#[derive(Clone)]
pub(crate) struct StateFile {
    path: PathBuf,
    /// What was saved last (held while saving, so that the two writers take turns).
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
        *self.lock() = saved;
        Ok(saved)
    }

    /// Saves `done` and `emitted` where given, keeping the other as saved; neither moves back.
    pub(crate) fn save(
        &self,
        done: Option<DateTime<Utc>>,
        emitted: Option<DateTime<Utc>>,
    ) -> std::io::Result<()> {
        let mut saved = self.lock();
        let old = *saved;
        let pick = |new: Option<DateTime<Utc>>, old: Option<DateTime<Utc>>| match (new, old) {
            (Some(n), Some(o)) => Some(n.max(o)),
            (n, o) => n.or(o),
        };
        let done = pick(done, old.map(|s| s.done));
        let emitted = pick(emitted, old.map(|s| s.emitted));
        let (Some(done), Some(emitted)) = (done, emitted.or(done)) else {
            return Ok(());
        };
        let new = Saved {
            done,
            emitted: emitted.max(done),
        };
        if old == Some(new) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&Stored::of(new)).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        crate::durable::replace(&self.path, |w| w.write_all(&bytes))?;
        *saved = Some(new);
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
    fn saves_and_never_moves_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        assert_eq!(file.load().unwrap(), None);
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        file.save(Some(t(10)), None).unwrap();
        file.save(None, Some(t(20))).unwrap();
        file.save(Some(t(15)), None).unwrap();
        file.save(Some(t(12)), Some(t(18))).unwrap();
        let again = StateFile::new(dir.path());
        assert_eq!(
            again.load().unwrap(),
            Some(Saved {
                done: t(15),
                emitted: t(20)
            })
        );
        std::fs::write(file.path(), b"{oops").unwrap();
        assert!(again.load().unwrap_err().contains("corrupt"));
    }
}
