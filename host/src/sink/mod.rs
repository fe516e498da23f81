//! Sinks: where events go. A sink writes batches of encoded events and makes its writes durable
//! before the source checkpoints ([`Sink::sync`]). The dead-letter queue is a sink too.
//!
//! Each kind is a module here whose `[sink]` table implements [`SinkKind`] (its name, its
//! checks, its dry-run rendering, how it opens), registered by one line of `sinks!` below: see
//! the README's "Adding a connector".

mod kind;

pub(crate) use kind::{Preview, Render, SinkConfig, SinkKind, schema, schema_with};
// The README's list of kinds is checked against it (source/mod.rs).
#[cfg(test)]
pub(crate) use kind::kinds;

use crate::event::Envelope;
use crate::template::Template;
use async_trait::async_trait;
use serde::Deserialize;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

/// Declares each kind's module and registers its table type, in the order error messages and
/// the README list them.
macro_rules! sinks {
    ($($module:ident :: $config:ident),* $(,)?) => {
        $(pub(crate) mod $module;)*

        /// Every sink kind.
        const REGISTRY: &[kind::Registered] = &[$(kind::Registered::of::<$module::$config>()),*];
    };
}

// One line per kind: `module::ItsSinkKind`.
sinks! {
    stdout::StdoutSinkConfig,
    file::FileSinkConfig,
    kafka::KafkaSinkConfig,
    sqs::SqsSinkConfig,
    http::HttpSinkConfig,
    rabbitmq::RabbitmqSinkConfig,
    nats::NatsSinkConfig,
}

/// One event ready for a sink: its encoded body, and the event for sinks that take more from it
/// (keys, headers, attributes).
pub struct Outgoing<'a> {
    pub body: Rendered<'a>,
    pub event: &'a Envelope,
}

/// What a sink writes for one event: bytes (not necessarily UTF-8: a record relayed as it came),
/// or no value at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered<'a> {
    /// The body's bytes, borrowed from the event when they are its payload as it is.
    Bytes(Cow<'a, [u8]>),
    /// No value: a Kafka tombstone passed on with `encoding = "data"`. The Kafka sink writes a
    /// tombstone; sinks that cannot say "no value" (file, stdout, SQS) write the event's `data`,
    /// `null` ([`Rendered::or_null`]).
    NoValue,
}

impl From<String> for Rendered<'_> {
    fn from(text: String) -> Self {
        Rendered::Bytes(Cow::Owned(text.into_bytes()))
    }
}

impl Rendered<'_> {
    /// The value's bytes; `None` for no value.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Rendered::Bytes(b) => Some(b),
            Rendered::NoValue => None,
        }
    }

    /// The bytes for a sink that has no way to write "no value" (a line, an SQS body): no value
    /// is written as the event's data, `null`.
    pub fn or_null(&self) -> &[u8] {
        self.bytes().unwrap_or(b"null")
    }

    /// As `weir dry-run` shows it: text as a string, no value as `null`.
    pub fn preview(&self) -> serde_json::Value {
        self.bytes().map_or(serde_json::Value::Null, preview_bytes)
    }
}

pub(crate) use crate::event::preview_bytes;

/// Why a sink could not take an event (or open): the message for the operator, and whether
/// trying again may help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What failed, with the cause's text.
    pub message: String,
    /// Worth trying again (a timeout, a full disk) rather than a permanent rejection.
    pub retryable: bool,
    /// The error it comes from, if any (shared: a batch's refusal is every entry's).
    #[source]
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// The destination asked to be tried again no sooner than this (an HTTP `Retry-After`):
    /// the retry waits at least this long, whatever the backoff says.
    pub retry_after: Option<std::time::Duration>,
}

impl SinkError {
    pub fn retryable(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retryable: true,
            cause: None,
            retry_after: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retryable: false,
            cause: None,
            retry_after: None,
        }
    }

    /// The same error, to be tried again no sooner than `after` (a destination's `Retry-After`).
    pub fn after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The same error, coming from `cause` (whose text the message already holds).
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }

    /// An I/O error: retryable if it is the kind that goes away by itself (a full disk, a
    /// timeout, an interrupted call), permanent otherwise (no such directory, no permission).
    pub fn io(message: impl Into<String>, e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let retryable = matches!(
            e.kind(),
            StorageFull | QuotaExceeded | Interrupted | TimedOut | WouldBlock | ResourceBusy
        ) || e.raw_os_error() == Some(5); // EIO
        let error = if retryable {
            SinkError::retryable(message)
        } else {
            SinkError::permanent(message)
        };
        error.caused_by(e)
    }
}

/// Why a write did not fully succeed.
#[derive(Debug)]
pub enum SinkFailure {
    /// Nothing in the batch was written.
    All(SinkError),
    /// These entries (by index in the batch) failed; all others were written.
    Some(Vec<(usize, SinkError)>),
}

impl SinkFailure {
    /// A write's outcome from the entries that failed in a batch of `len`: none is success;
    /// every entry failing retryably is [`SinkFailure::All`] (the first one's error stands for
    /// the write, retried whole); otherwise each entry with its own error.
    pub(crate) fn of(len: usize, mut failures: Vec<(usize, SinkError)>) -> Result<(), Self> {
        if failures.is_empty() {
            Ok(())
        } else if failures.len() == len && failures.iter().all(|(_, e)| e.retryable) {
            Err(SinkFailure::All(failures.swap_remove(0).1))
        } else {
            Err(SinkFailure::Some(failures))
        }
    }
}

/// A sink is shared by the lanes of its pipeline, which write concurrently: a sink that needs
/// writes one at a time (a file) serializes them itself, one that can have several in flight
/// (Kafka, SQS) lets their round trips overlap.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Writes a batch and passes it on to the destination (no buffering across calls). Returns
    /// once the fate of every entry is known. One call's entries are never interleaved with
    /// another call's.
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure>;
    /// Make every write so far durable; the source's checkpoint follows.
    async fn sync(&self) -> Result<(), SinkError>;
    /// The most bytes a body for `event` can have, where the destination limits a record's size
    /// (a Kafka record's `message.max.bytes`, an SQS queue's `MaximumMessageSize`, less what the
    /// event's key, headers or attributes take); `None`: no known limit. What a dead-letter
    /// record the DLQ refused whole is cut to.
    fn max_body_bytes(&self, _event: &Envelope) -> Option<usize> {
        None
    }
}

/// A sink's optional template setting, parsed (validation already reported where it is).
pub(crate) fn optional_template(t: &Option<String>) -> Result<Option<Template>, SinkError> {
    t.as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|e| SinkError::permanent(format!("invalid template: {e}")))
}

/// A sink's table of named templates (`headers`, `attributes`), parsed, in name order.
/// The header or attribute that carries the correlation id, as configured: `""` means none.
pub(crate) fn correlation_name(configured: &str) -> Option<String> {
    Some(configured.to_owned()).filter(|n| !n.is_empty())
}

pub(crate) fn named_templates(
    key: &str,
    table: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, Template)>, SinkError> {
    table
        .iter()
        .map(|(name, text)| Template::parse(text).map(|t| (name.clone(), t)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SinkError::permanent(format!("{key}: invalid template: {e}")))
}

/// What a sink needs from the pipeline it runs in.
#[derive(Debug, Clone)]
pub struct SinkContext {
    pub pipeline: String,
    /// The target it writes for: its `[[target]]` name, `sink` for `[sink]`, `dlq` for a
    /// dead-letter queue (metric labels, log fields).
    pub target: String,
    pub state_dir: PathBuf,
}

/// The `encoding` key: what a sink writes for each event when it has no `template`.
#[derive(Debug, Clone, Copy, Default, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The event's `data` as the record came while no stage changed it (a value that was not
    /// JSON as its text, not as a JSON string; its exact bytes; no value for a tombstone), else
    /// as JSON, or the text a plugin returned ([`Envelope::data_bytes`]).
    #[default]
    Data,
    /// The whole envelope as JSON.
    Envelope,
}

/// How a sink turns an event into the body it writes.
#[derive(Debug, Clone)]
pub enum Body {
    Encoded(Encoding),
    Template(Template),
}

impl Default for Body {
    fn default() -> Self {
        Body::Encoded(Encoding::Data)
    }
}

impl Body {
    /// What the sink writes for `event`. The data encoding borrows the event's bytes.
    pub fn render<'a>(&self, event: &'a Envelope, pipeline: &str) -> Rendered<'a> {
        match self {
            Body::Encoded(Encoding::Data) => match event.data_bytes() {
                Some(bytes) => Rendered::Bytes(bytes),
                None => Rendered::NoValue,
            },
            Body::Encoded(Encoding::Envelope) => event.to_json().into(),
            Body::Template(t) => t.render(event, pipeline).into(),
        }
    }
}
