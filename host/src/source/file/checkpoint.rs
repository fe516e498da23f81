//! The file source's checkpoint: which file (by device and inode, and a fingerprint of its first
//! bytes, so that a rotated file is still recognised and a reused inode or a file truncated and
//! written again is not), the byte offset and line number to resume after, and the files beside
//! it that are finished. Checkpoints written before fingerprints existed still load.

pub(super) use super::identity::{Fingerprint, Known};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub(crate) fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// The path the file had when it was opened (informative; `file` identifies it).
    pub path: PathBuf,
    pub file: FileId,
    /// Its first bytes (absent in checkpoints of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// Everything before this byte offset is finished.
    pub offset: u64,
    /// Lines (including blank ones) before `offset`.
    pub line: u64,
    /// Files beside the path that are read to their end (or were there before weir first read
    /// the path): never read again. Absent in checkpoints of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Vec<Known>>,
}

/// Where a pipeline's file checkpoint lives.
pub(crate) struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    pub(crate) fn new(state_dir: &Path) -> Self {
        CheckpointStore {
            path: state_dir.join("file-source.json"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoint; `Ok(None)` when there is none yet.
    pub(crate) fn load(&self) -> Result<Option<Checkpoint>, LoadError> {
        let path = self.path.clone();
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| LoadError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LoadError::Unreadable { path, source }),
        }
    }

    /// Saves atomically: a crash leaves either the old or the new checkpoint, never a torn one.
    pub(crate) fn save(&self, cp: &Checkpoint) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(cp).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &bytes)
    }
}

/// Why a saved checkpoint cannot be used: the source refuses to start rather than guess where
/// it stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("checkpoint {} is corrupt ({source}); remove it to start over", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot read checkpoint {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `bytes` to `path` so that a crash leaves the old checkpoint or the new one, whole
/// ([`crate::durable::replace`]).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    crate::durable::replace(path, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let cp = Checkpoint {
            path: "in.jsonl".into(),
            file: FileId { dev: 1, ino: 2 },
            fingerprint: Some(Fingerprint::of(b"{\"a\":1}\n")),
            offset: 10,
            line: 3,
            done: Some(vec![]),
        };
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp));
        // A checkpoint of an older version, without fingerprints, still loads.
        std::fs::write(
            store.path(),
            br#"{"path":"in.jsonl","file":{"dev":1,"ino":2},"offset":10,"line":3}"#,
        )
        .unwrap();
        let old = store.load().unwrap().unwrap();
        assert_eq!((old.fingerprint, old.done, old.offset), (None, None, 10));
        std::fs::write(store.path(), b"{oops").unwrap();
        assert!(store.load().unwrap_err().to_string().contains("corrupt"));
    }
}
