//! The stdout sink: one line per event (logs go to stderr, so stdout carries only events).

use super::{Outgoing, Sink, SinkContext, SinkError, SinkFailure};
use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::{AsyncWriteExt, BufWriter, Stdout};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {}

pub(super) async fn open(
    _cfg: &StdoutSinkConfig,
    _ctx: &SinkContext,
) -> Result<Box<dyn Sink>, SinkError> {
    Ok(Box::new(StdoutSink {
        out: BufWriter::with_capacity(64 * 1024, tokio::io::stdout()),
    }))
}

struct StdoutSink {
    out: BufWriter<Stdout>,
}

fn broken(e: std::io::Error) -> SinkError {
    // A closed stdout (the reader went away) will not come back.
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        SinkError::permanent(format!("stdout is closed: {e}"))
    } else {
        SinkError::retryable(format!("cannot write to stdout: {e}"))
    }
}

#[async_trait]
impl Sink for StdoutSink {
    async fn write(&mut self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        for o in batch {
            self.out
                .write_all(o.body.as_bytes())
                .await
                .map_err(|e| SinkFailure::All(broken(e)))?;
            self.out
                .write_all(b"\n")
                .await
                .map_err(|e| SinkFailure::All(broken(e)))?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().await.map_err(broken)
    }

    async fn sync(&mut self) -> Result<(), SinkError> {
        self.flush().await
    }
}
