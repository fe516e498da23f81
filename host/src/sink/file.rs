//! The file sink: appends one line per event, flushes at each batch boundary and fsyncs before
//! the source checkpoints, so a checkpoint never covers events that are not on disk.

use super::{Outgoing, Sink, SinkContext, SinkError, SinkFailure};
use async_trait::async_trait;
use serde::Deserialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

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
        SinkError::permanent(format!(
            "cannot open {} for appending: {e}",
            cfg.path.display()
        ))
    })?;
    Ok(Box::new(FileSink {
        path: cfg.path.clone(),
        out: BufWriter::with_capacity(256 * 1024, file),
    }))
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

struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl FileSink {
    fn failed(&self, e: std::io::Error) -> SinkError {
        SinkError::retryable(format!("cannot write {}: {e}", self.path.display()))
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        // Buffered writes to a local file are brief; block_in_place keeps them off the other
        // tasks of this worker without a copy to the blocking pool.
        tokio::task::block_in_place(|| {
            for o in batch {
                self.out.write_all(o.body.as_bytes())?;
                self.out.write_all(b"\n")?;
            }
            Ok(())
        })
        .map_err(|e| SinkFailure::All(self.failed(e)))
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        tokio::task::block_in_place(|| self.out.flush()).map_err(|e| self.failed(e))
    }

    async fn sync(&mut self) -> Result<(), SinkError> {
        tokio::task::block_in_place(|| {
            self.out.flush()?;
            self.out.get_ref().sync_data()
        })
        .map_err(|e| self.failed(e))
    }
}
