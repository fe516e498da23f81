//! Sinks: where events go. A sink writes batches of encoded events and makes its writes durable
//! before the source checkpoints ([`Sink::sync`]). The dead-letter
//! queue is a sink too. Adding a kind is one module here plus one line in [`SinkKind`].

pub mod file;
pub mod kafka;
pub mod sqs;
pub mod stdout;

use crate::config::component::{deserialize_table, take_key, take_kind};
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::event::Envelope;
use crate::template::Template;
use async_trait::async_trait;
use serde::Deserialize;
use std::borrow::Cow;
use std::path::PathBuf;

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

/// Bytes as `weir dry-run` shows them: UTF-8 as a string, others as `{"base64": "..."}`.
pub fn preview_bytes(bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            serde_json::json!({ "base64": b64 })
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub message: String,
    /// Worth trying again (a timeout, a full disk) rather than a permanent rejection.
    pub retryable: bool,
}

impl SinkError {
    pub fn retryable(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retryable: true,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retryable: false,
        }
    }

    /// An I/O error: retryable if it is the kind that goes away by itself (a full disk, a
    /// timeout, an interrupted call), permanent otherwise (no such directory, no permission).
    pub fn io(message: impl Into<String>, e: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let retryable = matches!(
            e.kind(),
            StorageFull | QuotaExceeded | Interrupted | TimedOut | WouldBlock | ResourceBusy
        ) || e.raw_os_error() == Some(5); // EIO
        SinkError {
            message: message.into(),
            retryable,
        }
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
    pub state_dir: PathBuf,
}

/// The `encoding` key: what a sink writes for each event when it has no `template`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
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

/// A `[sink]` (or `[dlq]`) table.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub kind: SinkKind,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    Stdout(stdout::StdoutSinkConfig),
    File(file::FileSinkConfig),
    Kafka(kafka::KafkaSinkConfig),
    Sqs(sqs::SqsSinkConfig),
}

const KINDS: &[&str] = &["stdout", "file", "kafka", "sqs"];
/// Keys every sink kind accepts.
const COMMON_KEYS: &[&str] = &["type", "encoding", "template"];

impl SinkConfig {
    pub fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        mut table: toml::Table,
    ) -> Result<Self, ConfigError> {
        let kind = take_kind(src, at, &mut table, "sink", KINDS)?;
        let has_encoding = table.contains_key("encoding");
        let encoding: Encoding = take_key(src, at, &mut table, "encoding")?;
        let template: Option<String> = take_key(src, at, &mut table, "template")?;
        let body =
            match template {
                None => Body::Encoded(encoding),
                Some(_) if has_encoding => {
                    return Err(src.error(
                        &at.key("template"),
                        "set either `encoding` or `template`, not both",
                    ));
                }
                Some(text) => Body::Template(Template::parse(&text).map_err(|e| {
                    src.error(&at.key("template"), format!("invalid template: {e}"))
                })?),
            };
        let kind = match kind.as_str() {
            "stdout" => SinkKind::Stdout(deserialize_table(src, at, table, COMMON_KEYS)?),
            "file" => SinkKind::File(deserialize_table(src, at, table, COMMON_KEYS)?),
            "kafka" => SinkKind::Kafka(deserialize_table(src, at, table, COMMON_KEYS)?),
            "sqs" => SinkKind::Sqs(deserialize_table(src, at, table, COMMON_KEYS)?),
            _ => unreachable!("take_kind only returns registered kinds"),
        };
        let config = SinkConfig { kind, body };
        config
            .validate()
            .map_err(|(key, msg)| src.error(&at.key(key), msg))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        match &self.kind {
            SinkKind::Stdout(_) => Ok(()),
            SinkKind::File(c) => c.validate(),
            SinkKind::Kafka(c) => c.validate(),
            SinkKind::Sqs(c) => c.validate(),
        }
    }

    /// The default dead-letter queue: `<state dir>/dlq.jsonl`.
    pub fn default_dlq(state_dir: &std::path::Path) -> Self {
        SinkConfig {
            kind: SinkKind::File(file::FileSinkConfig {
                path: state_dir.join("dlq.jsonl"),
            }),
            body: Body::default(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.kind {
            SinkKind::Stdout(_) => "stdout",
            SinkKind::File(_) => "file",
            SinkKind::Kafka(_) => "kafka",
            SinkKind::Sqs(_) => "sqs",
        }
    }

    /// What the sink would send, rendered without opening it (`weir dry-run`).
    pub fn preview(&self, pipeline: &str) -> Result<Preview, SinkError> {
        let kind = match &self.kind {
            SinkKind::Stdout(_) => PreviewKind::Stdout,
            SinkKind::File(c) => PreviewKind::File(c.clone()),
            SinkKind::Kafka(c) => PreviewKind::Kafka(kafka::Addressing::new(c, pipeline)?),
            SinkKind::Sqs(c) => PreviewKind::Sqs(sqs::Messages::offline(c, pipeline)?),
        };
        Ok(Preview {
            pipeline: pipeline.to_owned(),
            body: self.body.clone(),
            kind,
        })
    }

    pub async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        match &self.kind {
            SinkKind::Stdout(c) => stdout::open(c, ctx).await,
            SinkKind::File(c) => file::open(c, ctx).await,
            SinkKind::Kafka(c) => kafka::open(c, ctx).await,
            SinkKind::Sqs(c) => sqs::open(c, ctx).await,
        }
    }
}

/// A sink's rendering without the sink: for each event, what it would write (its body and, by
/// kind, its key, headers, attributes, ...), or why it would refuse the event before sending it.
/// Connects to nothing and writes nothing.
pub struct Preview {
    pipeline: String,
    body: Body,
    kind: PreviewKind,
}

enum PreviewKind {
    Stdout,
    File(file::FileSinkConfig),
    Kafka(kafka::Addressing),
    Sqs(sqs::Messages),
}

impl Preview {
    /// What the sink would send for `event`, as JSON with the body as `body` (text, as written;
    /// bytes that are not UTF-8 as `{"base64": ...}`; a Kafka tombstone as `null`).
    pub fn render(&self, event: &Envelope) -> Result<serde_json::Value, SinkError> {
        let body = self.body.render(event, &self.pipeline);
        match &self.kind {
            PreviewKind::Stdout => Ok(stdout::line(&body)),
            PreviewKind::File(c) => Ok(file::line(c, &body)),
            PreviewKind::Kafka(a) => a.record(&body, event),
            PreviewKind::Sqs(m) => m.message(body, event),
        }
    }
}
