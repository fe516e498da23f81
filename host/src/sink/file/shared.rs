//! One writer per file in the process, and an advisory lock against other processes.
//!
//! Two pipelines of one `weir run` may append to the same file (one DLQ for all, a shared sink).
//! With a writer each, a failed write could not be undone without cutting off what the other
//! appended meanwhile, lines it had already acknowledged. So the pipelines share one writer per
//! file, found in a registry keyed by the file's identity (device and inode: the same file under
//! another name, a symlink or a relative path, is still the same file), and dropped when its
//! last user closes it. The writer takes an exclusive `flock` (std's `File::try_lock`) so that
//! another process (a second `weir run`, `weir dlq redrive`) cannot append at the same time;
//! only then may a failed write cut the file back to where it was.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

const BUFFER: usize = 256 * 1024;

type Identity = (u64, u64);

/// The open files by identity. An entry whose writer is gone is being closed (its lock not yet
/// released): an opener waits for it to disappear.
fn registry() -> MutexGuard<'static, HashMap<Identity, Weak<SharedFile>>> {
    static OPEN: OnceLock<Mutex<HashMap<Identity, Weak<SharedFile>>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub(super) enum OpenError {
    /// Another process holds the file's lock.
    #[error("locked by another process")]
    Locked,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A file open for appending, shared by every pipeline of the process that writes to it.
pub(super) struct SharedFile {
    id: Identity,
    /// The name it was first opened under, for messages.
    path: PathBuf,
    /// Held for a batch's write and flush: batches never interleave. `None` once closed.
    out: Mutex<Option<BufWriter<File>>>,
}

impl SharedFile {
    /// Opens `path` for appending (creating it and its directories), or joins the writer that
    /// already has it open in this process.
    pub(super) fn open(path: &Path) -> Result<Arc<SharedFile>, OpenError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        loop {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)?;
            let meta = file.metadata()?;
            let id = {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            };
            let mut open = registry();
            match open.get(&id).map(Weak::upgrade) {
                // Our own descriptor closes unlocked: flock belongs to the one that took it.
                Some(Some(shared)) => return Ok(shared),
                Some(None) => {
                    // Its last user is closing it right now; its lock goes with the close.
                    drop(open);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                None => {}
            }
            // A device (`/dev/null`, `/dev/full`) or a FIFO holds no lines to protect, and may be
            // every process's sink at once.
            if meta.is_file() {
                match file.try_lock() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::Locked),
                    Err(std::fs::TryLockError::Error(e)) => return Err(OpenError::Io(e)),
                }
                end_with_newline(&mut file, path)?;
            }
            let shared = Arc::new(SharedFile {
                id,
                path: path.to_owned(),
                out: Mutex::new(Some(BufWriter::with_capacity(BUFFER, file))),
            });
            open.insert(id, Arc::downgrade(&shared));
            return Ok(shared);
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Option<BufWriter<File>>> {
        // A panic in the middle of a write leaves the buffer in an unknown state; the next
        // write's start is measured on the file itself, so going on is safe.
        self.out.lock().unwrap_or_else(|p| {
            self.out.clear_poison();
            p.into_inner()
        })
    }

    /// Appends one line per body and flushes them: all of them reach the file, or none stays.
    pub(super) fn append<'a>(&self, bodies: impl Iterator<Item = &'a [u8]>) -> std::io::Result<()> {
        let mut guard = self.lock();
        let out = guard
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file sink is closed"))?;
        // Everything before `start` was written by earlier calls (flushed, maybe acknowledged):
        // a failure here may only cut back to it.
        let start = out.get_ref().metadata()?.len();
        let mut attempted = 0u64;
        let write = || -> std::io::Result<()> {
            for body in bodies {
                out.write_all(body)?;
                out.write_all(b"\n")?;
                attempted += body.len() as u64 + 1;
            }
            out.flush()
        };
        let result = write();
        if result.is_err() {
            undo(&mut guard, &self.path, start, attempted);
        }
        result
    }

    /// Makes everything appended so far durable.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        // Every append flushed its lines into the file, so syncing the file covers them. The
        // sync goes through a second descriptor of the same file, without the lock: writers go
        // on during the fsync (milliseconds) instead of waiting for it, and what they append
        // meanwhile belongs to the next checkpoint.
        let file = match self.lock().as_ref() {
            Some(out) => out.get_ref().try_clone()?,
            None => return Err(std::io::Error::other("file sink is closed")),
        };
        file.sync_data()
    }
}

/// After a failed write or flush: drops what is still buffered and cuts off the part of this
/// attempt that reached the file, so the retry writes whole lines once instead of appending to a
/// torn one. Only this attempt's bytes are cut, and only if nothing else appended meanwhile
/// (`attempted` counts the bytes handed to the buffer; fewer may have reached the file).
fn undo(out: &mut Option<BufWriter<File>>, path: &Path, start: u64, attempted: u64) {
    let Some(writer) = out.take() else { return };
    let (file, _unwritten) = writer.into_parts();
    match file.metadata().map(|m| m.len()) {
        Ok(len) if len <= start => {}
        Ok(len) if len <= start + attempted => {
            if let Err(e) = file.set_len(start) {
                tracing::warn!(path = %path.display(), error = %e, "cannot cut off a failed write");
            }
        }
        Ok(len) => tracing::warn!(path = %path.display(), start, len, attempted,
            "not cutting off a failed write: the file grew by more than it (another program appends to it, ignoring weir's lock)"),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot cut off a failed write")
        }
    }
    *out = Some(BufWriter::with_capacity(BUFFER, file));
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        // Close (flushing and releasing the lock) before the entry goes, both under the
        // registry's lock: an opener that found the entry dead waits for exactly this.
        let mut open = registry();
        if let Some(mut writer) = self.lock().take()
            && let Err(e) = writer.flush()
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot flush on close");
        }
        if open.get(&self.id).is_some_and(|w| w.strong_count() == 0) {
            open.remove(&self.id);
        }
    }
}

/// A crash (SIGKILL, power loss) in the middle of a write can leave a torn last line. Its events
/// were never acknowledged, so they will be written again; here the fragment is closed with a
/// newline so it stands alone instead of corrupting the next line. It is not removed: the file
/// may hold someone else's data.
fn end_with_newline(file: &mut File, path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        tracing::warn!(path = %path.display(), offset = len,
            "sink file ends in a partial line (an interrupted write); closing it with a newline");
        file.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_per_file_and_a_lock_against_other_openers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let a = SharedFile::open(&path).unwrap();
        // The same file by another name joins the same writer.
        let b = SharedFile::open(&dir.path().join(".").join("out.jsonl")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Another open file description (as another process would have) is refused.
        let other = File::open(&path).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        a.append([&b"one"[..]].into_iter()).unwrap();
        b.append([&b"two"[..]].into_iter()).unwrap();
        drop(a);
        drop(b);
        // Closed by its last user: the lock is free again, and a new open starts afresh.
        other.try_lock().unwrap();
        other.unlock().unwrap();
        let c = SharedFile::open(&path).unwrap();
        c.append([&b"three"[..]].into_iter()).unwrap();
        drop(c);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    }
}
