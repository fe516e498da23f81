//! What a source kind is to the rest of weir: [`SourceKind`], which each kind's `[source]`
//! table implements, and [`SourceConfig`], a `[source]` table of any kind registered in
//! `sources!` (`source/mod.rs`).

use super::{Acker, Format, REGISTRY, Source, SourceContext, SourceError};
use crate::config::component::{KeyError, deserialize_table, take_kind};
use crate::config::schema::{KeysSchema, KindSchema, keys_of, one_of_kinds};
use crate::config::{ConfigError, KeyPath, SourceText};
use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// A kind of source: its `[source]` table, read from TOML (without `type`), and what weir does
/// with it before events flow. The kind's name is [`SourceKind::KIND`]; the rest of weir reaches
/// a kind only through this trait and the `sources!` list.
#[async_trait]
pub(crate) trait SourceKind:
    DeserializeOwned + JsonSchema + Debug + Send + Sync + 'static
{
    /// Its table's `type` (`"file"`), and the `source` of its events' envelopes.
    const KIND: &'static str;

    /// Checks values that parse but make no sense: `(key, message)`.
    fn validate(&self) -> Result<(), (&'static str, String)>;

    /// How it reads records (`weir dry-run` reads its input the same way).
    fn read_settings(&self) -> ReadSettings;

    /// What opening it would refuse, found without opening it for good, reading a checkpoint,
    /// taking a lock or creating anything (`weir check`): a missing input file.
    fn preflight(&self) -> Result<(), KeyError> {
        Ok(())
    }

    /// Reaches what it reads from (brokers, a queue) as opening it would, reading metadata
    /// only, each answer within `timeout` (`weir check --connect`): what it reached, or `None`
    /// when there is nothing to reach.
    async fn reach(&self, _timeout: Duration) -> Result<Option<String>, KeyError> {
        Ok(None)
    }

    /// Opens the source: its reader and its acker.
    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError>;
}

/// How a source turns records into events.
#[derive(Debug, Clone, Copy)]
pub struct ReadSettings {
    pub format: Format,
    /// Records per batch at most.
    pub batch_size: usize,
    /// Longer records are cut and dead-lettered (`usize::MAX`: the source has no such limit).
    pub max_record_bytes: usize,
}

impl ReadSettings {
    /// For a source whose records have no length limit of weir's (the broker or queue has its own).
    pub fn unlimited(format: Format, batch_size: usize) -> Self {
        ReadSettings {
            format,
            batch_size,
            max_record_bytes: usize::MAX,
        }
    }
}

/// A registered kind: its name, how its table is read, and its table's schema.
pub(super) struct Registered {
    kind: &'static str,
    parse: Parse,
    schema: KeysSchema,
}

/// Reads a table (its `type` removed) into the kind's type.
type Parse = fn(&SourceText<'_>, &KeyPath, toml::Table) -> Result<Arc<dyn AnySource>, ConfigError>;

impl Registered {
    pub(super) const fn of<K: SourceKind>() -> Self {
        Registered {
            kind: K::KIND,
            parse: parse_as::<K>,
            schema: keys_of::<K>,
        }
    }
}

fn parse_as<K: SourceKind>(
    src: &SourceText<'_>,
    at: &KeyPath,
    table: toml::Table,
) -> Result<Arc<dyn AnySource>, ConfigError> {
    Ok(Arc::new(deserialize_table::<K>(src, at, table, &[])?))
}

/// The registered source kinds' names, in registration order.
pub(crate) fn kinds() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.kind).collect()
}

/// The JSON Schema of a `[source]` table: one of the registered kinds, chosen by `type`.
pub(crate) fn schema(generator: &mut SchemaGenerator) -> Schema {
    let kinds = REGISTRY.iter().map(|r| KindSchema {
        kind: r.kind,
        keys: r.schema,
    });
    one_of_kinds(generator, "source", kinds, &[])
}

/// [`SourceKind`] as an object, so that a [`SourceConfig`] holds any kind (a trait with a
/// constant cannot be one): implemented for every kind, by forwarding to it.
#[async_trait]
trait AnySource: Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    fn validate(&self) -> Result<(), (&'static str, String)>;
    fn read_settings(&self) -> ReadSettings;
    fn preflight(&self) -> Result<(), KeyError>;
    async fn reach(&self, timeout: Duration) -> Result<Option<String>, KeyError>;
    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError>;
}

#[async_trait]
impl<K: SourceKind> AnySource for K {
    fn kind(&self) -> &'static str {
        K::KIND
    }
    fn validate(&self) -> Result<(), (&'static str, String)> {
        SourceKind::validate(self)
    }
    fn read_settings(&self) -> ReadSettings {
        SourceKind::read_settings(self)
    }
    fn preflight(&self) -> Result<(), KeyError> {
        SourceKind::preflight(self)
    }
    async fn reach(&self, timeout: Duration) -> Result<Option<String>, KeyError> {
        SourceKind::reach(self, timeout).await
    }
    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        SourceKind::open(self, ctx).await
    }
}

/// The `[source]` table: one of the registered kinds.
#[derive(Debug, Clone)]
pub struct SourceConfig(Arc<dyn AnySource>);

impl SourceConfig {
    pub fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        mut table: toml::Table,
    ) -> Result<Self, ConfigError> {
        let kind = take_kind(src, at, &mut table, "source", &kinds())?;
        let registered = REGISTRY
            .iter()
            .find(|r| r.kind == kind)
            .expect("take_kind only returns registered kinds");
        let config = (registered.parse)(src, at, table)?;
        config
            .validate()
            .map_err(|(key, msg)| src.error(&at.dotted(key), msg))?;
        Ok(SourceConfig(config))
    }

    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// How the source reads records ([`SourceKind::read_settings`]).
    pub fn read_settings(&self) -> ReadSettings {
        self.0.read_settings()
    }

    /// What opening the source would refuse ([`SourceKind::preflight`]).
    pub fn preflight(&self) -> Result<(), KeyError> {
        self.0.preflight()
    }

    /// Reaches what the source reads from ([`SourceKind::reach`]).
    pub async fn reach(&self, timeout: Duration) -> Result<Option<String>, KeyError> {
        self.0.reach(timeout).await
    }

    /// Opens the source: its reader and its acker.
    pub async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        self.0.open(ctx).await
    }
}
