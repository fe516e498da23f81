//! The stdout sink: one line per event (logs go to stderr, so stdout carries only events), its
//! body as it is (a tombstone, which a line cannot leave empty, as `null`).

use super::{Outgoing, Render, Rendered, Sink, SinkContext, SinkError, SinkFailure, SinkKind};
use crate::event::Envelope;
use async_trait::async_trait;
use serde::Deserialize;
use schemars::JsonSchema;
use tokio::io::{AsyncWriteExt, BufWriter, Stdout};
use tokio::sync::Mutex;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StdoutSinkConfig {}

#[async_trait]
impl SinkKind for StdoutSinkConfig {
    const KIND: &'static str = "stdout";

    fn preview(&self, _pipeline: &str) -> Result<Box<dyn Render>, SinkError> {
        Ok(Box::new(Lines))
    }

    async fn open(&self, _ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(StdoutSink {
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, tokio::io::stdout())),
        }))
    }
}

/// What the sink would print, for `weir dry-run`.
struct Lines;

impl Render for Lines {
    /// The line for an event with `body`, as JSON (`body`).
    fn render(
        &self,
        body: Rendered<'_>,
        _event: &Envelope,
    ) -> Result<serde_json::Value, SinkError> {
        Ok(serde_json::json!({ "body": super::preview_bytes(body.or_null()) }))
    }
}

struct StdoutSink {
    /// Held for a whole batch, so lanes' lines never interleave.
    out: Mutex<BufWriter<Stdout>>,
}

fn broken(e: std::io::Error) -> SinkError {
    // A closed stdout (the reader went away) will not come back.
    let error = if e.kind() == std::io::ErrorKind::BrokenPipe {
        SinkError::permanent(format!("stdout is closed: {e}"))
    } else {
        SinkError::retryable(format!("cannot write to stdout: {e}"))
    };
    error.caused_by(e)
}

#[async_trait]
impl Sink for StdoutSink {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        let mut out = self.out.lock().await;
        for o in batch {
            out.write_all(o.body.or_null())
                .await
                .map_err(|e| SinkFailure::All(broken(e)))?;
            out.write_all(b"\n")
                .await
                .map_err(|e| SinkFailure::All(broken(e)))?;
        }
        out.flush().await.map_err(|e| SinkFailure::All(broken(e)))
    }

    async fn sync(&self) -> Result<(), SinkError> {
        self.out.lock().await.flush().await.map_err(broken)
    }
}
