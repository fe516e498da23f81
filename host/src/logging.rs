//! Logs go to stderr through `tracing` (stdout may be a sink), as text or JSON.

use crate::config::host::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is a `tracing` filter such as `info` or
/// `weir=debug,warn`; an invalid one is an error rather than silently ignored.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| format!("invalid log level `{level}`: {e}"))?;
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, not in files or pipes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}
