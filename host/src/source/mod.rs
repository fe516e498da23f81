//! Sources: where events come from.
//!
//! A source is two halves that run side by side: the [`Source`] reads batches, and its [`Acker`]
//! is told, as events finish (delivered, filtered or dead-lettered, in any order), which
//! positions are done, and makes the finished prefix durable when asked to checkpoint.
//!
//! Each kind is a folder here whose `[source]` table implements [`SourceKind`] (its name, its
//! checks, how it opens), registered by one line of `sources!` below: see the README's
//! "Adding a connector".

mod kind;
pub(crate) mod prefix;
pub(crate) mod replay;

pub(crate) use kind::{ReadSettings, SourceConfig, SourceKind, kinds, schema};

use crate::event::{Envelope, Payload, Position, Problem, RAW_BASE64};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Declares each kind's module and registers its table type, in the order error messages and
/// the README list them.
macro_rules! sources {
    ($($module:ident :: $config:ident),* $(,)?) => {
        $(pub(crate) mod $module;)*

        /// Every source kind.
        const REGISTRY: &[kind::Registered] = &[$(kind::Registered::of::<$module::$config>()),*];
    };
}

// One line per kind: `folder::ItsSourceKind`.
sources! {
    file::FileSourceConfig,
    kafka::KafkaSourceConfig,
    sqs::SqsSourceConfig,
    http::HttpSourceConfig,
    rabbitmq::RabbitmqSourceConfig,
    nats::NatsSourceConfig,
    schedule::ScheduleSourceConfig,
}

/// The registered source kind of this name (a DLQ record's `event.source`), as the `'static`
/// label an envelope carries; `None` for a name no source has.
pub(crate) fn registered_kind(name: &str) -> Option<&'static str> {
    kinds().into_iter().find(|k| *k == name)
}

/// One event as a source produced it.
#[derive(Debug)]
pub struct SourceEvent {
    pub envelope: Envelope,
    pub position: Position,
    /// Set when the record cannot be processed as it is (not JSON where JSON is required, too
    /// long, ...): the event goes straight to the dead-letter queue with this reason.
    pub problem: Option<String>,
    /// If the event fails, hand it back to the source ([`Acker::release`]) instead of the
    /// dead-letter queue: the source makes it available again later (an SQS message left to
    /// reappear until the queue's own redrive policy moves it). The key's later events of the
    /// same delivery are handed back with it, so that the key keeps its order.
    pub release_on_failure: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Config(String),
    /// The file source's input cannot be read.
    #[error("source.path: {0}")]
    Input(#[from] file::InputError),
    /// An error of a kind's own type, as it reads.
    #[error(transparent)]
    Connector(Box<dyn std::error::Error + Send + Sync>),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// What failed, with the cause's text, and the cause.
    #[error("{message}")]
    Caused {
        message: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
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

    /// `message` (which already holds the cause's text), coming from `cause`.
    pub fn caused(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SourceError::Caused {
            message: message.into(),
            cause: Box::new(cause),
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
    /// The event at `position` failed and is handed back (it was read with
    /// `release_on_failure`): the source makes it available again later instead of treating it
    /// as finished. Sources that never ask for this treat it as finished.
    fn release(&mut self, position: Position) {
        self.finish(position);
    }
    /// The event at `position` is finished by going to the dead-letter queue. Sources that can
    /// tell their broker so (NATS JetStream: terminate, never deliver again) do; the others
    /// treat it as any finished event.
    fn finish_dead_lettered(&mut self, position: Position) {
        self.finish(position);
    }
    /// Makes the finished prefix durable (checkpoint file, Kafka commit, SQS delete). Called after
    /// the sink has made the delivered events durable.
    async fn checkpoint(&mut self) -> Result<(), SourceError>;
    /// Notified when the source needs a checkpoint now rather than at the next interval (Kafka,
    /// before giving partitions away in a rebalance). `None` for sources that never do.
    fn checkpoint_requests(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// Checks a source's `batch_size` (the same bounds for every source).
pub(crate) fn check_batch_size(batch_size: usize) -> Result<(), (&'static str, String)> {
    if (1..=100_000).contains(&batch_size) {
        Ok(())
    } else {
        Err((
            "batch_size",
            format!("must be between 1 and 100000, got {batch_size}"),
        ))
    }
}

/// `format`: how a record's bytes become the event's data, for every source.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON records become JSON data; others become string data.
    #[default]
    Auto,
    /// Every record must be JSON; one that is not is dead-lettered.
    Json,
    /// Every record is string data, never parsed.
    Text,
}

impl Format {
    /// Decodes a record into the event's data, and the problem that sends it straight to the
    /// DLQ, if any. Invalid UTF-8 is decoded lossily, its exact bytes kept in `meta.raw_base64`.
    pub fn decode(
        self,
        bytes: &[u8],
        meta: &mut serde_json::Map<String, serde_json::Value>,
    ) -> (Payload, Option<String>) {
        // Each record's bytes are checked as UTF-8 once: by the lossy decoding (which copies
        // only when it had to replace something) or by `Payload::decode`.
        let (payload, problem) = match self {
            Format::Text => match String::from_utf8_lossy(bytes) {
                std::borrow::Cow::Borrowed(text) => (Payload::Text(text.to_owned()), None),
                std::borrow::Cow::Owned(lossy) => {
                    keep_exact_bytes(RAW_BASE64, bytes, meta);
                    (Payload::Text(lossy), None)
                }
            },
            Format::Auto | Format::Json => {
                let decoded = Payload::decode(bytes);
                if matches!(decoded.problem, Some(Problem::NotUtf8(_))) {
                    keep_exact_bytes(RAW_BASE64, bytes, meta);
                }
                // `auto` takes a record that is not JSON as string data; data too deep to
                // read is refused in both modes.
                let problem = decoded
                    .problem
                    .filter(|p| self == Format::Json || matches!(p, Problem::TooDeep));
                (decoded.payload, problem.map(|p| p.to_string()))
            }
        };
        (payload, problem)
    }

    /// [`Format::decode`] of bytes the caller owns and no longer needs: JSON (the common case)
    /// keeps their allocation; anything else is decoded as `decode` does.
    pub fn decode_owned(
        self,
        bytes: Vec<u8>,
        meta: &mut serde_json::Map<String, serde_json::Value>,
    ) -> (Payload, Option<String>) {
        if self == Format::Text {
            return self.decode(&bytes, meta);
        }
        match crate::event::JsonText::from_bytes(bytes) {
            Ok(json) => (Payload::Json(json), None),
            Err(bytes) => self.decode(&bytes, meta),
        }
    }

    /// [`Format::decode_owned`] of a plugin's output for an event whose data was `was`: an output
    /// that is `was` with fields appended before its closing brace is checked by what was
    /// appended alone ([`crate::event::JsonText::extended`]).
    pub fn decode_output(
        self,
        was: &Payload,
        bytes: Vec<u8>,
        meta: &mut serde_json::Map<String, serde_json::Value>,
    ) -> (Payload, Option<String>) {
        match (self, was) {
            (Format::Auto, Payload::Json(base)) => match base.extended(bytes) {
                Ok(json) => (Payload::Json(json), None),
                Err(bytes) => self.decode(&bytes, meta),
            },
            _ => self.decode_owned(bytes, meta),
        }
    }
}

/// Keeps the exact bytes of a value or key that is not UTF-8 as `meta[name]`, in base64
/// (`raw_base64`, `key_base64`): the event shows them decoded lossily, and a sink writes these
/// ([`Envelope::data_bytes`], [`Envelope::key_bytes`]).
pub(crate) fn keep_exact_bytes(
    name: &str,
    bytes: &[u8],
    meta: &mut serde_json::Map<String, serde_json::Value>,
) {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.encode(bytes);
    meta.insert(name.into(), raw.into());
}

/// What a source needs from the pipeline it runs in.
#[derive(Clone)]
pub struct SourceContext {
    pub pipeline: String,
    /// This pipeline's own state directory (checkpoints).
    pub state_dir: PathBuf,
    /// Where a source reports what it alone knows (Kafka: lag).
    pub status: Option<std::sync::Arc<crate::observe::status::Status>>,
    /// The pipeline's `[ordering] max_in_flight`: a broker's prefetch follows it (RabbitMQ).
    pub max_in_flight: usize,
}

#[cfg(test)]
mod tests {
    /// The README's lists of kinds are the registries', in their order.
    #[test]
    fn readme_lists_the_registered_kinds() {
        let readme = include_str!("../../../README.md");
        for (list, kinds) in [
            ("Source kinds: ", super::kinds()),
            ("Sink kinds (`[sink]` and `[dlq]`): ", crate::sink::kinds()),
        ] {
            let listed = readme
                .lines()
                .find_map(|l| l.strip_prefix(list))
                .unwrap_or_else(|| panic!("README has no line `{list}...`"));
            let registered: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
            assert_eq!(listed, format!("{}.", registered.join(", ")), "{list}");
        }
    }
}
