//! Sources: where events come from.
//!
//! A source is two halves that run side by side: the [`Source`] reads batches, and its [`Acker`]
//! is told, as events finish (delivered, filtered or dead-lettered, in any order), which
//! positions are done, and makes the finished prefix durable when asked to checkpoint. Adding a
//! kind is one module here plus one line in [`SourceConfig`].

pub mod file;
pub mod prefix;
pub mod replay;

use crate::config::component::{deserialize_table, take_kind};
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::event::{Envelope, Position};
use async_trait::async_trait;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// One event as a source produced it.
#[derive(Debug)]
pub struct SourceEvent {
    pub envelope: Envelope,
    pub position: Position,
    /// Set when the record cannot be processed as it is (not JSON where JSON is required, too
    /// long, ...): the event goes straight to the dead-letter queue with this reason.
    pub problem: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl SourceError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SourceError::Io {
            what: what.into(),
            source,
        }
    }
}

#[async_trait]
pub trait Source: Send {
    /// Reads the next batch. `Ok(None)` means the source is finished: it reached the end of its
    /// input, or `stop` was cancelled. A batch is never empty.
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError>;
}

#[async_trait]
pub trait Acker: Send {
    /// Called for every event read, in the order the source produced them, before it finishes.
    fn track(&mut self, position: Position);
    /// The event at `position` is finished.
    fn finish(&mut self, position: Position);
    /// Makes the finished prefix durable (checkpoint file, Kafka commit, SQS delete). Called after
    /// the sink has made the delivered events durable.
    async fn checkpoint(&mut self) -> Result<(), SourceError>;
}

/// What a source needs from the pipeline it runs in.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub pipeline: String,
    /// This pipeline's own state directory (checkpoints).
    pub state_dir: PathBuf,
}

/// The `[source]` table, by kind.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    File(file::FileSourceConfig),
}

const KINDS: &[&str] = &["file"];

impl SourceConfig {
    pub fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        mut table: toml::Table,
    ) -> Result<Self, ConfigError> {
        let kind = take_kind(src, at, &mut table, "source", KINDS)?;
        let config = match kind.as_str() {
            "file" => SourceConfig::File(deserialize_table(src, at, table, &[])?),
            _ => unreachable!("take_kind only returns registered kinds"),
        };
        config
            .validate()
            .map_err(|(key, msg)| src.error(&at.key(key), msg))?;
        Ok(config)
    }

    /// Checks values that parse but make no sense: `(key, message)`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        match self {
            SourceConfig::File(c) => c.validate(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File(_) => "file",
        }
    }

    /// Opens the source: its reader and its acker.
    pub async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        match self {
            SourceConfig::File(c) => file::open(c, ctx).await,
        }
    }
}
