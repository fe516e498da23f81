//! What a sink kind is to the rest of weir: [`SinkKind`], which each kind's `[sink]` table
//! implements, and [`SinkConfig`], a `[sink]` or `[dlq]` table of any kind registered in
//! `sinks!` (`sink/mod.rs`) with what it writes.

use super::{Body, Encoding, REGISTRY, Rendered, Sink, SinkContext, SinkError, file};
use crate::config::component::KeyError;
use crate::config::component::{deserialize_table, take_key, take_kind};
use crate::config::schema::{KeysSchema, KindSchema, defined, keys_of, one_of_kinds};
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::event::Envelope;
use crate::template::Template;
use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A kind of sink: its `[sink]` (or `[dlq]`) table, read from TOML (without `type`,
/// `encoding` and `template`, which every kind takes), and what weir does with it before events
/// flow. The kind's name is [`SinkKind::KIND`]; the rest of weir reaches a kind only through
/// this trait and the `sinks!` list.
#[async_trait]
pub trait SinkKind: DeserializeOwned + JsonSchema + Debug + Send + Sync + 'static {
    /// Its table's `type` (`"file"`).
    const KIND: &'static str;

    /// Checks values that parse but make no sense: `(key, message)`; a key in a sub-table is
    /// dotted (`auth.password`), as for [`SinkKind::preflight`].
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

    /// Opens the sink (or DLQ) for a pipeline.
    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError>;
}

/// What a sink would send for one event, rendered without the sink ([`SinkKind::preview`]).
pub trait Render: Send + Sync {
    /// As JSON with the body as `body` (text, as written; bytes that are not UTF-8 as
    /// `{"base64": ...}`; a Kafka tombstone as `null`), and by kind its key, headers,
    /// attributes, ...; or why the sink would refuse the event before sending it.
    fn render(&self, body: Rendered<'_>, event: &Envelope) -> Result<serde_json::Value, SinkError>;
}

/// A registered kind: its name, how its table is read, and its table's schema.
pub(super) struct Registered {
    kind: &'static str,
    parse: Parse,
    schema: KeysSchema,
}

/// Reads a table (its `type` removed) into the kind's type.
type Parse = fn(&SourceText<'_>, &KeyPath, toml::Table) -> Result<Arc<dyn AnySink>, ConfigError>;

impl Registered {
    pub(super) const fn of<K: SinkKind>() -> Self {
        Registered {
            kind: K::KIND,
            parse: parse_as::<K>,
            schema: keys_of::<K>,
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
pub(crate) fn kinds() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.kind).collect()
}

/// The JSON Schema of a `[sink]` or `[dlq]` table: one of the registered kinds, chosen by
/// `type`, with the keys every kind takes.
pub(crate) fn schema(generator: &mut SchemaGenerator) -> Schema {
    defined(generator, "Sink", |g| schema_with(g, "sink", None))
}

/// [`schema`] for a table that takes `extra` keys besides a sink's (a `[[target]]`'s name and
/// rule); `what` names it.
pub(crate) fn schema_with(
    generator: &mut SchemaGenerator,
    what: &str,
    extra: Option<&Schema>,
) -> Schema {
    let common = keys_of::<CommonKeys>(generator);
    let kinds = REGISTRY.iter().map(|r| KindSchema {
        kind: r.kind,
        keys: r.schema,
    });
    let mut tables = vec![&common];
    tables.extend(extra);
    let mut schema = one_of_kinds(generator, what, kinds, &tables);
    // `encoding` and `template` both say what is written: one or the other.
    schema.insert(
        "not".into(),
        serde_json::json!({ "required": ["encoding", "template"] }),
    );
    schema
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

/// The schema of [`COMMON_KEYS`] but `type` (read one by one by [`SinkConfig::parse`]).
#[derive(JsonSchema)]
#[allow(dead_code)] // a schema only
struct CommonKeys {
    /// What is written for each event: `data` (its payload, the default) or `envelope` (the
    /// whole event). Not with `template`.
    #[serde(default)]
    encoding: Encoding,
    /// An input template that renders what is written (`{"order": <$.data.orderId>}`). Not with
    /// `encoding`.
    #[serde(default)]
    template: Option<String>,
}

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
            .map_err(|(key, msg)| src.error(&at.dotted(key), msg))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema is written beside the hand-read keys: it must name the same ones, for every
    /// kind.
    #[test]
    fn the_schema_has_every_kind_and_common_key() {
        let schema = schema_with(&mut SchemaGenerator::default(), "sink", None).to_value();
        assert_eq!(
            schema["properties"]["type"]["enum"],
            serde_json::json!(kinds())
        );
        for variant in schema["oneOf"].as_array().unwrap() {
            let keys = variant["properties"].as_object().unwrap();
            for key in COMMON_KEYS {
                assert!(keys.contains_key(*key), "{key} in {variant}");
            }
        }
    }
}
