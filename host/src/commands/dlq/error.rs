//! Why a `weir dlq` command failed, in the words it prints after `error: `.

use crate::config::ConfigErrors;
use crate::pipeline::PipelineError;
use crate::source::SourceError;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(super) enum DlqError {
    /// A file of the DLQ (the file itself, the records set aside, their progress, a lock file)
    /// that cannot be opened, read, written, locked or removed.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("--pattern: invalid event pattern: {0}")]
    Pattern(#[source] weir_pattern::PatternError),
    #[error(
        "{} is in use: a running weir holds its lock (a pipeline writing its dead letters \
         there); stop it first",
        .0.display()
    )]
    InUse(PathBuf),
    #[error(
        "another `weir dlq redrive` is running on this DLQ file (it holds {})",
        .0.display()
    )]
    RedriveRunning(PathBuf),
    #[error(
        "{} holds events of pipeline {pipeline} set aside by its interrupted redrive: finish it \
         with `weir dlq redrive` on that pipeline's file first",
        aside.display()
    )]
    OtherPipeline { aside: PathBuf, pipeline: String },
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("redrive failed: {0}")]
    Join(#[source] tokio::task::JoinError),
}

impl DlqError {
    /// `action` (open, read, write, lock, remove) failed on `path`.
    pub(super) fn file(action: &'static str, path: &Path, source: std::io::Error) -> DlqError {
        DlqError::File {
            action,
            path: path.to_owned(),
            source,
        }
    }
}
