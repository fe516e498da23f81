//! The file sink: appends one line per event, flushes at each batch boundary and fsyncs before
//! the source checkpoints, so a checkpoint never covers events that are not on disk.

use super::{Outgoing, Sink, SinkContext, SinkError, SinkFailure};
use async_trait::async_trait;
use serde::Deserialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to append to; created with its directories if missing.
    pub path: PathBuf,
}

impl FileSinkConfig {
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path", "must not be empty".into()));
        }
        Ok(())
    }
}

const BUFFER: usize = 256 * 1024;

/// The line the sink would append for an event with `body`, as JSON (`path`, `body`), for
/// `weir dry-run`. Opens nothing.
pub fn line(cfg: &FileSinkConfig, body: String) -> serde_json::Value {
    serde_json::json!({"path": cfg.path.display().to_string(), "body": body})
}

pub(super) async fn open(
    cfg: &FileSinkConfig,
    _ctx: &SinkContext,
) -> Result<Box<dyn Sink>, SinkError> {
    let path = cfg.path.clone();
    let file = tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        end_with_newline(&mut file, &path)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| SinkError::permanent(format!("file sink failed to start: {e}")))?
    .map_err(|e| {
        SinkError::io(
            format!("cannot open {} for appending: {e}", cfg.path.display()),
            &e,
        )
    })?;
    let good_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Box::new(FileSink(Mutex::new(FileState {
        path: cfg.path.clone(),
        out: Some(BufWriter::with_capacity(BUFFER, file)),
        good_len,
    }))))
}

/// A crash (SIGKILL, power loss) in the middle of a write can leave a torn last line. Its events
/// were never acknowledged, so they will be written again; here the fragment is closed with a
/// newline so it stands alone instead of corrupting the next line. It is not removed: the file
/// may hold someone else's data.
fn end_with_newline(file: &mut File, path: &std::path::Path) -> std::io::Result<()> {
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

/// Lanes write one batch at a time: the lock is held for a batch's write and flush, so batches
/// never interleave and a failed one is cut off without touching another's lines.
struct FileSink(Mutex<FileState>);

struct FileState {
    path: PathBuf,
    /// `None` only for a moment while a failed write is being undone.
    out: Option<BufWriter<File>>,
    /// File length after the last successful flush.
    good_len: u64,
}

impl FileState {
    fn failed(&self, e: std::io::Error) -> SinkError {
        SinkError::retryable(format!("cannot write {}: {e}", self.path.display()))
    }

    fn out(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        self.out
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file sink is closed"))
    }

    /// After a failed write or flush: drop what is buffered and cut off whatever part of it
    /// reached the file, so a retry writes whole lines once instead of appending to a torn
    /// one. The bytes past `good_len` are ours and unacknowledged: they will be written again.
    fn undo(&mut self) {
        if let Some(out) = self.out.take() {
            let (file, _unwritten) = out.into_parts();
            if let Err(e) = file.set_len(self.good_len) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot cut off a failed write");
            }
            self.out = Some(BufWriter::with_capacity(BUFFER, file));
        }
    }

    /// Appends the batch and flushes it: all of it reaches the file, or none of it stays.
    fn append(&mut self, batch: &[Outgoing<'_>]) -> std::io::Result<()> {
        let out = self.out()?;
        let mut n = 0u64;
        for o in batch {
            out.write_all(o.body.as_bytes())?;
            out.write_all(b"\n")?;
            n += o.body.len() as u64 + 1;
        }
        out.flush()?;
        self.good_len += n;
        Ok(())
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        // Buffered writes to a local file are brief; block_in_place keeps them off the other
        // tasks of this worker without a copy to the blocking pool.
        tokio::task::block_in_place(|| {
            let mut state = self.lock();
            state.append(batch).map_err(|e| {
                state.undo();
                SinkFailure::All(state.failed(e))
            })
        })
    }

    async fn sync(&self) -> Result<(), SinkError> {
        tokio::task::block_in_place(|| {
            let mut state = self.lock();
            let synced = state.out().and_then(|out| out.get_ref().sync_data());
            synced.map_err(|e| state.failed(e))
        })
    }
}

impl FileSink {
    fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.0.lock().unwrap_or_else(|poisoned| {
            // A panic in the middle of a write: undo it as a failed one.
            let mut state = poisoned.into_inner();
            state.undo();
            self.0.clear_poison();
            state
        })
    }
}

/// What opening this sink would refuse, found without creating, writing or locking anything
/// (`weir check`): a path that is a directory, a directory that cannot be made because a regular
/// file stands in its way, or a file that cannot be opened for appending.
pub fn preflight(cfg: &FileSinkConfig) -> Result<(), String> {
    let path = &cfg.path;
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("{} is a directory", path.display())),
        // Opened only, not created, written or locked: a running weir may hold it.
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| format!("cannot open {} for appending: {e}", path.display())),
        Err(_) => {
            // Missing (or unreachable): the nearest existing ancestor must be a directory.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
                match std::fs::metadata(d) {
                    Ok(m) if m.is_dir() => return Ok(()),
                    Ok(_) => {
                        return Err(format!(
                            "cannot create {}: {} is not a directory",
                            path.display(),
                            d.display()
                        ));
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                        ) =>
                    {
                        dir = d.parent()
                    }
                    Err(e) => {
                        return Err(format!(
                            "cannot create {}: {}: {e}",
                            path.display(),
                            d.display()
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}
