//! Sinks: where events go. A sink writes batches of encoded events and makes its writes durable
//! before the source checkpoints ([`Sink::sync`]). The dead-letter queue is a sink too.
//!
//! Each kind is a module here whose `[sink]` table implements [`SinkKind`] (its name, its
//! checks, its dry-run rendering, how it opens), registered by one line of `sinks!` below: see
//! the README's "Adding a connector".

use crate::config::component::{deserialize_table, take_key, take_kind};
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::event::Envelope;
use crate::source::KeyError;
use crate::template::Template;
use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Declares each kind's module and registers its table type, in the order error messages and
/// the README list them.
macro_rules! sinks {
    ($($module:ident :: $config:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every sink kind.
        const REGISTRY: &[Registered] = &[$(Registered::of::<$module::$config>()),*];
    };
}

// One line per kind: `module::ItsSinkKind`.
sinks! {
    stdout::StdoutSinkConfig,
    file::FileSinkConfig,
    kafka::KafkaSinkConfig,
    sqs::SqsSinkConfig,
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
}

impl SinkError {
    pub fn retryable(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retryable: true,
            cause: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retryable: false,
            cause: None,
        }
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

/// A kind of sink: its `[sink]` (or `[dlq]`) table, read from TOML (without `type`,
/// `encoding` and `template`, which every kind takes), and what weir does with it before events
/// flow. The kind's name is [`SinkKind::KIND`]; the rest of weir reaches a kind only through
/// this trait and the `sinks!` list.
#[async_trait]
pub trait SinkKind: DeserializeOwned + Debug + Send + Sync + 'static {
    /// Its table's `type` (`"file"`).
    const KIND: &'static str;

    /// Checks values that parse but make no sense: `(key, message)`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }

    /// How it would make each event into what it sends, without opening it (`weir dry-run`).
    fn preview(&self, pipeline: &str) -> Result<Box<dyn Render>, SinkError>;

    /// The local file it appends to, if it writes one (`weir dlq` reads a DLQ there).
    fn local_file(&self) -> Option<&Path> {
        None
    }

    /// What opening it would refuse, found without creating, writing or locking anything
    /// (`weir check`): a file that cannot be appended to.
    fn preflight(&self) -> Result<(), KeyError> {
        Ok(())
    }

    /// Reaches what it writes to (brokers, a queue) as opening it would, reading metadata
    /// only, each answer within `timeout` (`weir check --connect`): what it reached, or `None`
    /// when there is nothing to reach.
    async fn reach(&self, _pipeline: &str, _timeout: Duration) -> Result<Option<String>, KeyError> {
        Ok(None)
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError>;
}

/// What a sink would send for one event, rendered without the sink ([`SinkKind::preview`]).
pub trait Render: Send + Sync {
    /// As JSON with the body as `body` (text, as written; bytes that are not UTF-8 as
    /// `{"base64": ...}`; a Kafka tombstone as `null`), and by kind its key, headers,
    /// attributes, ...; or why the sink would refuse the event before sending it.
    fn render(&self, body: Rendered<'_>, event: &Envelope) -> Result<serde_json::Value, SinkError>;
}

/// A registered kind: its name, and how its table is read.
struct Registered {
    kind: &'static str,
    parse: fn(&SourceText<'_>, &KeyPath, toml::Table) -> Result<Arc<dyn AnySink>, ConfigError>,
}

impl Registered {
    const fn of<K: SinkKind>() -> Self {
        Registered {
            kind: K::KIND,
            parse: parse_as::<K>,
        }
    }
}

fn parse_as<K: SinkKind>(
    src: &SourceText<'_>,
    at: &KeyPath,
    table: toml::Table,
) -> Result<Arc<dyn AnySink>, ConfigError> {
    Ok(Arc::new(deserialize_table::<K>(
        src,
        at,
        table,
        COMMON_KEYS,
    )?))
}

/// The registered sink kinds' names, in registration order.
pub fn kinds() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.kind).collect()
}

/// [`SinkKind`] as an object, so that a [`SinkConfig`] holds any kind (a trait with a constant
/// cannot be one): implemented for every kind, by forwarding to it.
#[async_trait]
trait AnySink: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    fn validate(&self) -> Result<(), (&'static str, String)>;
    fn preview(&self, pipeline: &str) -> Result<Box<dyn Render>, SinkError>;
    fn local_file(&self) -> Option<&Path>;
    fn preflight(&self) -> Result<(), KeyError>;
    async fn reach(&self, pipeline: &str, timeout: Duration) -> Result<Option<String>, KeyError>;
    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError>;
}

#[async_trait]
impl<K: SinkKind> AnySink for K {
    fn kind(&self) -> &'static str {
        K::KIND
    }
    fn validate(&self) -> Result<(), (&'static str, String)> {
        SinkKind::validate(self)
    }
    fn preview(&self, pipeline: &str) -> Result<Box<dyn Render>, SinkError> {
        SinkKind::preview(self, pipeline)
    }
    fn local_file(&self) -> Option<&Path> {
        SinkKind::local_file(self)
    }
    fn preflight(&self) -> Result<(), KeyError> {
        SinkKind::preflight(self)
    }
    async fn reach(&self, pipeline: &str, timeout: Duration) -> Result<Option<String>, KeyError> {
        SinkKind::reach(self, pipeline, timeout).await
    }
    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        SinkKind::open(self, ctx).await
    }
}

/// A `[sink]` (or `[dlq]`) table: one of the registered kinds, and what it writes.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    kind: Arc<dyn AnySink>,
    pub body: Body,
}

/// Keys every sink kind accepts.
const COMMON_KEYS: &[&str] = &["type", "encoding", "template"];

impl SinkConfig {
    /// A sink of kind `kind` that writes each event's data ([`Body::default`]).
    pub fn new(kind: impl SinkKind) -> Self {
        SinkConfig {
            kind: Arc::new(kind),
            body: Body::default(),
        }
    }

    pub fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        mut table: toml::Table,
    ) -> Result<Self, ConfigError> {
        let kind = take_kind(src, at, &mut table, "sink", &kinds())?;
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
        let registered = REGISTRY
            .iter()
            .find(|r| r.kind == kind)
            .expect("take_kind only returns registered kinds");
        let kind = (registered.parse)(src, at, table)?;
        kind.validate()
            .map_err(|(key, msg)| src.error(&at.key(key), msg))?;
        Ok(SinkConfig { kind, body })
    }

    /// The default dead-letter queue: `<state dir>/dlq.jsonl`.
    pub fn default_dlq(state_dir: &Path) -> Self {
        SinkConfig::new(file::FileSinkConfig {
            path: state_dir.join("dlq.jsonl"),
        })
    }

    pub fn kind(&self) -> &'static str {
        self.kind.kind()
    }

    /// The local file the sink appends to, if it writes one ([`SinkKind::local_file`]).
    pub fn local_file(&self) -> Option<&Path> {
        self.kind.local_file()
    }

    /// What opening the sink would refuse ([`SinkKind::preflight`]).
    pub fn preflight(&self) -> Result<(), KeyError> {
        self.kind.preflight()
    }

    /// Reaches what the sink writes to ([`SinkKind::reach`]).
    pub async fn reach(
        &self,
        pipeline: &str,
        timeout: Duration,
    ) -> Result<Option<String>, KeyError> {
        self.kind.reach(pipeline, timeout).await
    }

    /// What the sink would send, rendered without opening it (`weir dry-run`).
    pub fn preview(&self, pipeline: &str) -> Result<Preview, SinkError> {
        Ok(Preview {
            pipeline: pipeline.to_owned(),
            body: self.body.clone(),
            render: self.kind.preview(pipeline)?,
        })
    }

    pub async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        self.kind.open(ctx).await
    }
}

/// A sink's rendering without the sink: for each event, what it would write (its body and, by
/// kind, its key, headers, attributes, ...), or why it would refuse the event before sending it.
/// Connects to nothing and writes nothing.
pub struct Preview {
    pipeline: String,
    body: Body,
    render: Box<dyn Render>,
}

impl Preview {
    /// What the sink would send for `event` ([`Render::render`]).
    pub fn render(&self, event: &Envelope) -> Result<serde_json::Value, SinkError> {
        let body = self.body.render(event, &self.pipeline);
        self.render.render(body, event)
    }
}
