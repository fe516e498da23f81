//! What the Kafka source and sink share: how to reach the cluster, and librdkafka's logs.
//!
//! Both take `brokers` and a `[*.properties]` table passed through to librdkafka as it is (TLS,
//! SASL, timeouts, compression: every librdkafka property), except the few that weir sets itself
//! because its guarantees depend on them.

mod aliases;
mod reach;

pub(crate) use reach::{Role, reach};

use aliases::canonical;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A string or a list of them: `brokers = "host:9092"` or `["a:9092", "b:9092"]`, `topics`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    pub(crate) fn list(&self) -> Vec<&str> {
        match self {
            Names::One(s) => vec![s.as_str()],
            Names::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// Comma-separated, as librdkafka takes `bootstrap.servers`.
    pub(crate) fn joined(&self) -> String {
        self.list().join(",")
    }
}

/// A librdkafka property value: TOML strings, integers, floats and booleans are all accepted and
/// passed on as text.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Property {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Property {
    pub(crate) fn text(&self) -> String {
        match self {
            Property::Text(s) => s.clone(),
            Property::Int(i) => i.to_string(),
            Property::Float(f) => f.to_string(),
            Property::Bool(b) => b.to_string(),
        }
    }
}

pub(crate) type Properties = BTreeMap<String, Property>;

/// Builds a client configuration: weir's defaults (those the user does not set under any name),
/// then the user's properties, then the properties weir must own (`reserved`: name and value).
/// The properties were checked ([`check_properties`]): no property is set under two names, so
/// the order in which rdkafka hands them to librdkafka changes nothing.
pub(crate) fn client_config(
    brokers: &Names,
    defaults: &[(&str, &str)],
    properties: &Properties,
    reserved: &[(&str, String)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers.joined());
    let set_by_user: Vec<_> = properties.keys().map(|k| canonical(k)).collect();
    for (k, v) in defaults {
        if !set_by_user.contains(&canonical(k)) {
            cfg.set(*k, *v);
        }
    }
    for (k, v) in properties {
        cfg.set(k, v.text());
    }
    for (k, v) in reserved {
        cfg.set(*k, v);
    }
    // librdkafka's own chatter only when asked for with its `debug` property (then at weir's
    // debug level: `--log-level weir=debug`).
    let level = if properties.contains_key("debug") {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Warning
    };
    cfg.set_log_level(level);
    cfg
}

/// Checks the user's properties: none of weir's own (`owned`: property and what to set
/// instead) under any of its librdkafka names, no property under two names, and each one known
/// to librdkafka with a valid value. `(key, message)` on error.
pub(crate) fn check_properties(
    properties: &Properties,
    owned: &[(&str, &str)],
) -> Result<(), (&'static str, String)> {
    let mut seen: BTreeMap<_, &str> = BTreeMap::new();
    for name in properties.keys() {
        let property = canonical(name);
        if let Some((own, instead)) = owned.iter().find(|(o, _)| canonical(o) == property) {
            let message = if name == own {
                format!("`{name}` is set by weir; {instead}")
            } else {
                format!(
                    "`{name}` is librdkafka's other name for `{own}`, which weir sets; {instead}"
                )
            };
            return Err(("properties", message));
        }
        if let Some(first) = seen.insert(property, name) {
            let property = canonical(name).name;
            return Err((
                "properties",
                format!(
                    "`{first}` and `{name}` both set librdkafka's `{property}`; keep one of them"
                ),
            ));
        }
    }
    for (k, v) in properties {
        let mut one = ClientConfig::new();
        one.set(k, v.text());
        if let Err(e) = one.create_native_config() {
            return Err(("properties", format!("`{k}`: {}", librdkafka_message(&e))));
        }
    }
    Ok(())
}

/// The message of a librdkafka error without rdkafka's wrapping.
pub(crate) fn librdkafka_message(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, message, _, _) => message.clone(),
        other => other.to_string(),
    }
}

/// A client context that sends librdkafka's logs and errors to weir's log, tagged with the
/// pipeline, instead of the `log` crate. Each condition is logged once: librdkafka reports some
/// both as a log line and as an error event with the same text (a broker connection failing, a
/// fatal error), and repeats others several times a second (a broker that is down), which says
/// nothing new after the first.
pub(crate) struct Logged {
    pub pipeline: String,
    pub role: &'static str,
    /// The warnings and errors logged lately, and when.
    recent: Mutex<Vec<(String, Instant)>>,
}

/// How often the same librdkafka warning or error is repeated in the log.
const REPEAT_ERROR_AFTER: Duration = Duration::from_secs(30);

impl Logged {
    pub(crate) fn new(pipeline: &str, role: &'static str) -> Self {
        Logged {
            pipeline: pipeline.to_owned(),
            role,
            recent: Mutex::new(Vec::new()),
        }
    }

    /// Whether `text` was not logged within [`REPEAT_ERROR_AFTER`] (and is now).
    fn is_new(&self, text: &str) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|(_, at)| at.elapsed() < REPEAT_ERROR_AFTER);
        if recent.iter().any(|(t, _)| t == text) {
            return false;
        }
        recent.push((text.to_owned(), Instant::now()));
        true
    }
}

/// A librdkafka log message without the thread it came from (`[thrd:main]: `), as the same
/// condition's error event reads.
fn without_thread(message: &str) -> &str {
    message
        .strip_prefix("[thrd:")
        .and_then(|rest| rest.split_once("]: "))
        .map_or(message, |(_, text)| text)
}

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel::*;
        let (pipeline, role) = (self.pipeline.as_str(), self.role);
        let serious = matches!(level, Emerg | Alert | Critical | Error | Warning);
        if serious && !self.is_new(without_thread(message)) {
            return;
        }
        match level {
            // A broker connection failing (facility FAIL) is retried by librdkafka itself:
            // nothing is lost, events wait. A warning, like the error event that follows it.
            Emerg | Alert | Critical | Error if fac != "FAIL" => {
                tracing::error!(
                    pipeline,
                    kafka = role,
                    facility = fac,
                    "librdkafka: {message}"
                )
            }
            Emerg | Alert | Critical | Error | Warning => {
                tracing::warn!(
                    pipeline,
                    kafka = role,
                    facility = fac,
                    "librdkafka: {message}"
                )
            }
            Notice | Info => {
                tracing::info!(
                    pipeline,
                    kafka = role,
                    facility = fac,
                    "librdkafka: {message}"
                )
            }
            Debug => {
                tracing::debug!(
                    pipeline,
                    kafka = role,
                    facility = fac,
                    "librdkafka: {message}"
                )
            }
        }
    }

    /// Errors outside any call: mostly a broker going away, which librdkafka retries by itself.
    /// A warning, not an error: nothing is lost, events wait. Skipped when librdkafka logged the
    /// same text already (it does for a broker connection failing).
    fn error(&self, error: KafkaError, reason: &str) {
        if self.is_new(reason) {
            tracing::warn!(pipeline = %self.pipeline, kafka = self.role, code = ?error.rdkafka_error_code(), "kafka: {reason}");
        }
    }
}
