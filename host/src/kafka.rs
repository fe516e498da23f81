//! What the Kafka source and sink share: how to reach the cluster, and librdkafka's logs.
//!
//! Both take `brokers` and a `[*.properties]` table passed through to librdkafka as it is (TLS,
//! SASL, timeouts, compression: every librdkafka property), except the few that weir sets itself
//! because its guarantees depend on them.

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A string or a list of them: `brokers = "host:9092"` or `["a:9092", "b:9092"]`, `topics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    pub fn list(&self) -> Vec<&str> {
        match self {
            Names::One(s) => vec![s.as_str()],
            Names::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// Comma-separated, as librdkafka takes `bootstrap.servers`.
    pub fn joined(&self) -> String {
        self.list().join(",")
    }
}

/// A librdkafka property value: TOML strings, integers, floats and booleans are all accepted and
/// passed on as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Property {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Property {
    pub fn text(&self) -> String {
        match self {
            Property::Text(s) => s.clone(),
            Property::Int(i) => i.to_string(),
            Property::Float(f) => f.to_string(),
            Property::Bool(b) => b.to_string(),
        }
    }
}

pub type Properties = BTreeMap<String, Property>;

/// Builds a client configuration: weir's defaults, then the user's properties, then the
/// properties weir must own (`reserved`: name, value, and the setting to use instead).
pub fn client_config(
    brokers: &Names,
    defaults: &[(&str, &str)],
    properties: &Properties,
    reserved: &[(&str, String)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers.joined());
    for (k, v) in defaults {
        cfg.set(*k, *v);
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
/// instead), and each one known to librdkafka with a valid value. `(key, message)` on error.
pub fn check_properties(
    properties: &Properties,
    owned: &[(&str, &str)],
) -> Result<(), (&'static str, String)> {
    for (name, instead) in owned {
        if properties.contains_key(*name) {
            return Err(("properties", format!("`{name}` is set by weir; {instead}")));
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
pub fn librdkafka_message(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, message, _, _) => message.clone(),
        other => other.to_string(),
    }
}

/// A client context that sends librdkafka's logs and errors to weir's log, tagged with the
/// pipeline, instead of the `log` crate.
pub struct Logged {
    pub pipeline: String,
    pub role: &'static str,
    /// The last error reported, and when: librdkafka reports a broker that is down several
    /// times a second, which says nothing new after the first.
    last_error: Mutex<Option<(String, Instant)>>,
}

/// How often the same librdkafka error is repeated in the log.
const REPEAT_ERROR_AFTER: Duration = Duration::from_secs(30);

impl Logged {
    pub fn new(pipeline: &str, role: &'static str) -> Self {
        Logged {
            pipeline: pipeline.to_owned(),
            role,
            last_error: Mutex::new(None),
        }
    }
}

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel::*;
        let (pipeline, role) = (self.pipeline.as_str(), self.role);
        match level {
            Emerg | Alert | Critical | Error => {
                tracing::error!(
                    pipeline,
                    kafka = role,
                    facility = fac,
                    "librdkafka: {message}"
                )
            }
            Warning => {
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
    /// A warning, not an error: nothing is lost, events wait.
    fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("{error}: {reason}");
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        let repeat = last
            .as_ref()
            .is_some_and(|(t, at)| *t == text && at.elapsed() < REPEAT_ERROR_AFTER);
        if !repeat {
            tracing::warn!(pipeline = %self.pipeline, kafka = self.role, "kafka: {reason}");
            *last = Some((text, Instant::now()));
        }
    }
}
