//! `[[target]]`: where a pipeline's events go. Each target has a name, a rule (`when`: event
//! patterns, OR-ed; none: every event), its own sink (any kind: the table's other keys), and
//! optionally its own `[target.retry]` and `[target.dlq]` (default: the pipeline's). `[sink]`
//! is the shorthand for one target, named `sink`, with no rule: a pipeline has one or the other.
//!
//! ```toml
//! [[target]]
//! name = "billing-api"
//! when = ['{"data": {"detail": {"department": ["billing"]}}}']
//! type = "http"
//! url = "https://billing.example.com/orders"
//! [target.retry]
//! max_attempts = 8
//! ```

use super::policy::Retry;
use crate::config::component::every_error;
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::sink::SinkConfig;
use schemars::{JsonSchema, Schema, SchemaGenerator};

/// One target of a pipeline.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// `sink` for the `[sink]` shorthand.
    pub name: String,
    /// Event patterns, OR-ed; empty: every event.
    pub when: Vec<String>,
    pub sink: SinkConfig,
    /// `None`: the pipeline's `[retry]`.
    pub retry: Option<Retry>,
    /// `None`: the pipeline's DLQ.
    pub dlq: Option<SinkConfig>,
    /// Where it is in the file: `sink` or `target[i]`.
    pub at: KeyPath,
}

/// The name the `[sink]` shorthand's target has.
pub const SHORTHAND: &str = "sink";

impl TargetConfig {
    /// The `[sink]` table as the pipeline's one target.
    pub(super) fn shorthand(sink: SinkConfig) -> Self {
        TargetConfig {
            name: SHORTHAND.into(),
            when: Vec::new(),
            sink,
            retry: None,
            dlq: None,
            at: KeyPath::default().key("sink"),
        }
    }

    /// Whether this is the `[sink]` shorthand rather than a `[[target]]`.
    pub fn is_shorthand(&self) -> bool {
        self.at == KeyPath::default().key("sink")
    }

    /// The stage a failure at this target is recorded under (its DLQ record's `error.stage`,
    /// the failure counts by stage): `sink` for the shorthand, `target:NAME` otherwise.
    pub fn stage(&self) -> String {
        match self.is_shorthand() {
            true => SHORTHAND.into(),
            false => format!("target:{}", self.name),
        }
    }

    /// Reads the `[[target]]` table at `at` (`target[i]`): every mistake, not only the first.
    pub(super) fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        mut table: toml::Table,
    ) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let name = match table.remove("name") {
            Some(toml::Value::String(name)) => match check_name(&name) {
                Ok(()) => Some(name),
                Err(why) => {
                    errors.push(src.error(&at.key("name"), why));
                    None
                }
            },
            Some(_) => {
                errors.push(src.error(&at.key("name"), "must be a string"));
                None
            }
            None => {
                errors.push(src.error(at, "missing required key `name` (each target needs one)"));
                None
            }
        };
        let when = match table.remove("when") {
            None => Vec::new(),
            Some(toml::Value::String(p)) => vec![(at.key("when"), p)],
            Some(toml::Value::Array(list)) if !list.is_empty() => list
                .into_iter()
                .enumerate()
                .filter_map(|(j, v)| match v {
                    toml::Value::String(p) => Some((at.key("when").index(j), p)),
                    _ => {
                        errors.push(src.error(
                            &at.key("when").index(j),
                            "must be an event pattern (a string of JSON)",
                        ));
                        None
                    }
                })
                .collect(),
            Some(_) => {
                errors.push(src.error(
                    &at.key("when"),
                    "must be an event pattern or a non-empty list of them (leave `when` out to send every event)",
                ));
                Vec::new()
            }
        };
        let mut rules = Vec::with_capacity(when.len());
        for (key, pattern) in when {
            match weir_pattern::Pattern::compile(&pattern) {
                Ok(_) => rules.push(pattern),
                Err(e) => errors.push(src.error(&key, format!("invalid event pattern: {e}"))),
            }
        }
        let retry = match table.remove("retry") {
            None => None,
            Some(toml::Value::Table(t)) => {
                let at = at.key("retry");
                let (v, e) = every_error(&at, t, |t| Retry::parse(src, &at, t));
                errors.extend(e);
                v
            }
            Some(_) => {
                errors.push(src.error(&at.key("retry"), "must be a table (`[target.retry]`)"));
                None
            }
        };
        let dlq = match table.remove("dlq") {
            None => None,
            Some(toml::Value::Table(t)) => {
                let at = at.key("dlq");
                let (v, e) = every_error(&at, t, |t| {
                    SinkConfig::parse(src, &at, t).map_err(|e| vec![e])
                });
                errors.extend(e);
                v
            }
            Some(_) => {
                errors.push(src.error(&at.key("dlq"), "must be a table (`[target.dlq]`)"));
                None
            }
        };
        // What is left is the target's sink: `type` and that kind's keys.
        let (sink, e) = every_error(at, table, |t| {
            SinkConfig::parse(src, at, t).map_err(|e| vec![e])
        });
        errors.extend(e);
        match (name, sink) {
            (Some(name), Some(sink)) if errors.is_empty() => Ok(TargetConfig {
                name,
                when: rules,
                sink,
                retry,
                dlq,
                at: at.clone(),
            }),
            _ => Err(errors),
        }
    }
}

/// The keys a `[[target]]` takes besides its sink's, read one by one by
/// [`TargetConfig::parse`]: the schema of a target is its sink's with these added.
#[derive(JsonSchema)]
#[allow(dead_code)] // a schema only
struct TargetKeys {
    /// Names the target in metrics, logs and DLQ records (`target:NAME`): 1 to 100 letters,
    /// digits, `-`, `_` or `.`, unique in the pipeline.
    name: String,
    /// Which events the target gets: an event pattern, or a list of them OR-ed (JSON text);
    /// leave it out for every event.
    #[serde(default)]
    when: Option<Rule>,
    /// The target's own `[target.retry]` (default: the pipeline's `[retry]`).
    #[serde(default)]
    retry: Option<super::policy::RawRetry>,
    /// The target's own `[target.dlq]`, a sink (default: the pipeline's `[dlq]`).
    #[serde(default)]
    #[schemars(schema_with = "crate::sink::schema")]
    dlq: Option<()>,
}

/// `when`: one pattern, or several.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only
enum Rule {
    One(String),
    Many(#[schemars(length(min = 1))] Vec<String>),
}

/// The schema of the `[[target]]` entries (`weir schema pipeline`).
pub(super) fn targets_schema(generator: &mut SchemaGenerator) -> Schema {
    let keys = TargetKeys::json_schema(generator);
    let target = crate::sink::schema_with(generator, "target", Some(&keys));
    schemars::json_schema!({ "type": "array", "items": target })
}

/// Target names are metric labels and DLQ stages (`target:NAME`).
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    match ok {
        true => Ok(()),
        false => Err(format!(
            "invalid target name {name:?}: use 1 to 100 letters, digits, `-`, `_` or `.`"
        )),
    }
}
