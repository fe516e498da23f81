//! Logs go to stderr through `tracing` (stdout may be a sink), as text or JSON.
//!
//! With JSON logs, every line weir writes to stderr is one JSON object, errors that end a
//! command included ([`error`]), so that a log shipper never meets a line it cannot parse; a
//! field that holds a list (`started = ?names`) is a JSON array, not its Debug text.

mod repeats;

use crate::config::host::LogFormat;
use std::fmt;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The format of the installed logger, once there is one.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Why the logger could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("invalid log level `{level}`: {source}")]
    Level {
        level: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("cannot install the logger: {0}")]
    Install(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber. `level` is a `tracing` filter such as `info` or
/// `weir=debug,warn`; an invalid one is an error rather than silently ignored.
pub fn init(level: &str, format: LogFormat) -> Result<(), InitError> {
    let filter = EnvFilter::try_new(level).map_err(|source| InitError::Level {
        level: level.to_owned(),
        source,
    })?;
    // lapin logs every message the broker returns (unroutable), its body included, at WARN:
    // the RabbitMQ sink dead-letters it with the reason instead, and bodies stay out of logs.
    let filter = match "lapin::returned_messages=off".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    };
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, not in files or pipes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Secrets (`${VAR}` values, README) are masked in every line.
        .with_writer(|| crate::redact::Redacting(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let repeats = repeats::Repeats::default();
    let result = match format {
        LogFormat::Text => builder.finish().with(repeats).try_init(),
        LogFormat::Json => builder
            .event_format(JsonLines)
            .finish()
            .with(repeats)
            .try_init(),
    };
    result.map_err(InitError::Install)?;
    let _ = FORMAT.set(format);
    Ok(())
}

/// Whether lines on stderr must be JSON: the logger is JSON, or (before it is installed)
/// `format`, the format asked for, says so.
pub fn json(format: Option<LogFormat>) -> bool {
    FORMAT.get().copied().or(format) == Some(LogFormat::Json)
}

/// Reports an error that ends a command: for people, `error: ` and the message (which may span
/// lines, as a list of configuration errors does); with JSON logs, one JSON line.
pub fn error(message: &str, format: Option<LogFormat>) {
    let message = &*crate::redact::redact(message);
    if !json(format) {
        eprintln!("error: {message}");
    } else if FORMAT.get().is_some() {
        tracing::error!("{message}");
    } else {
        // No logger yet (the settings did not load): the same shape by hand.
        eprintln!("{}", line("ERROR", "weir", message, serde_json::Map::new()));
    }
}

/// One JSON log line.
fn line(
    level: &str,
    target: &str,
    message: &str,
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    fields.insert("timestamp".into(), now.into());
    fields.insert("level".into(), level.into());
    fields.entry("message").or_insert_with(|| message.into());
    fields.insert("target".into(), target.into());
    serde_json::Value::Object(fields)
}

/// JSON lines: `timestamp`, `level`, `message`, the event's fields at the top level, `target`.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let value = line(meta.level().as_str(), meta.target(), "", fields.0);
        writeln!(writer, "{value}")
    }
}

#[derive(Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), debug_json(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

/// A value logged with `?`: a list (`["a", "b"]`) as the JSON array it reads as, anything else
/// as its text.
fn debug_json(text: String) -> serde_json::Value {
    if text.starts_with('[')
        && text.ends_with(']')
        && let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(&text)
    {
        return list.into();
    }
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_arrays_and_other_text_stays_text() {
        let list = vec!["a".to_owned(), "b \"q\"".to_owned()];
        assert_eq!(
            debug_json(format!("{list:?}")),
            serde_json::json!(["a", "b \"q\""])
        );
        assert_eq!(
            debug_json(format!("{:?}", Vec::<u8>::new())),
            serde_json::json!([])
        );
        assert_eq!(debug_json("[not json".into()), "[not json");
        assert_eq!(debug_json("plain".into()), "plain");
    }
}
