//! The host's own settings, layered: defaults, then `weir.toml` (optional), then `WEIR_*`
//! environment variables, then command-line flags (applied by the CLI).

use super::diagnostic::{ConfigError, ConfigErrors};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// A `tracing` filter: `info`, `debug`, `weir=debug,info`, ...
    #[serde(default = "default_log_level")]
    pub log_level: String,
    #[serde(default)]
    pub log_format: LogFormat,
    /// Root of per-pipeline state (checkpoints, default DLQ): `<state_dir>/<pipeline>/`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// `weir run`: on SIGTERM/SIGINT, how long pipelines get to finish or checkpoint the events
    /// in flight before weir exits anyway (they are then read again after the restart).
    #[serde(default = "default_shutdown_timeout_s")]
    pub shutdown_timeout_s: u64,
    /// `weir run`: how often the pipeline files are checked for changes (0: never; SIGHUP and
    /// `POST /reload` still reload).
    #[serde(default = "default_watch_interval_ms")]
    pub watch_interval_ms: u64,
    #[serde(default)]
    pub admin: AdminSettings,
    /// `perfmap`: write `/tmp/perf-PID.map` so that `perf` names the plugins' compiled
    /// functions (how a plugin author finds where a plugin spends its time); `off` by default.
    #[serde(default)]
    pub plugin_profiler: PluginProfiler,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PluginProfiler {
    #[default]
    Off,
    Perfmap,
}

/// The admin HTTP server of `weir run`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// `host:port`; `off` disables the server.
    #[serde(default = "default_admin_address")]
    pub address: String,
    /// Required as `Authorization: Bearer <token>` on every route but the probes (`/healthz`,
    /// `/readyz`) when set; must be set to listen on anything but loopback.
    #[serde(default)]
    pub token: Option<String>,
    /// How long a connection may wait for a request (the first, or the next one on a kept-alive
    /// connection) before it is closed; 0: forever. A response in progress (a tap) is not idle.
    #[serde(default = "default_admin_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// Connections open at once; a client over the cap gets 503 and is disconnected.
    #[serde(default = "default_admin_max_connections")]
    pub max_connections: usize,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            address: default_admin_address(),
            token: None,
            idle_timeout_s: default_admin_idle_timeout_s(),
            max_connections: default_admin_max_connections(),
        }
    }
}

fn default_admin_idle_timeout_s() -> u64 {
    60
}

fn default_admin_max_connections() -> usize {
    128
}

fn default_admin_address() -> String {
    "127.0.0.1:9464".into()
}

fn default_shutdown_timeout_s() -> u64 {
    30
}

fn default_watch_interval_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_log_level() -> String {
    "info".into()
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("var/state")
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            log_level: default_log_level(),
            log_format: LogFormat::default(),
            state_dir: default_state_dir(),
            shutdown_timeout_s: default_shutdown_timeout_s(),
            watch_interval_ms: default_watch_interval_ms(),
            admin: AdminSettings::default(),
            plugin_profiler: PluginProfiler::default(),
        }
    }
}

/// The `WEIR_*` environment variables that may be settings. Kubernetes gives every pod
/// `NAME_SERVICE_HOST`, `NAME_PORT=tcp://...`, `NAME_PORT_9464_TCP_ADDR`, ... for each Service in
/// its namespace, so a Service named `weir` (or `weir-admin`) would otherwise stop weir with
/// "unknown field `port`"; those are left out. Any other unknown `WEIR_*` variable is still an
/// error (a misspelt setting).
fn weir_variables() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, v)| k.starts_with("WEIR_") && !service_link(k, v))
        .collect()
}

/// Whether a variable is one of Kubernetes' service links (none of weir's settings looks so).
fn service_link(name: &str, value: &str) -> bool {
    let port_number = name.split("_PORT_").nth(1).is_some_and(|rest| {
        rest.split('_')
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    name.ends_with("_SERVICE_HOST")
        || name.contains("_SERVICE_PORT")
        || port_number
        || ["tcp://", "udp://", "sctp://"]
            .iter()
            .any(|p| value.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::service_link;

    #[test]
    fn kubernetes_service_links_are_not_settings() {
        for (k, v) in [
            ("WEIR_SERVICE_HOST", "10.0.0.1"),
            ("WEIR_SERVICE_PORT", "9464"),
            ("WEIR_SERVICE_PORT_ADMIN", "9464"),
            ("WEIR_PORT", "tcp://10.0.0.1:9464"),
            ("WEIR_PORT_9464_TCP", "tcp://10.0.0.1:9464"),
            ("WEIR_PORT_9464_TCP_ADDR", "10.0.0.1"),
            ("WEIR_ADMIN_SERVICE_HOST", "10.0.0.2"),
        ] {
            assert!(service_link(k, v), "{k}");
        }
        for (k, v) in [
            ("WEIR_ADMIN__ADDRESS", "0.0.0.0:9464"),
            ("WEIR_LOG_LEVEL", "debug"),
            ("WEIR_SHUTDOWN_TIMEOUT_S", "30"),
            ("WEIR_STATE_DIR", "/var/lib/weir"),
        ] {
            assert!(!service_link(k, v), "{k}");
        }
    }
}

impl HostSettings {
    /// Loads the settings. `file` is an explicit settings file (then it must exist); without it,
    /// `weir.toml` in the working directory is read if present.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        let (path, required) = match file {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from("weir.toml"), false),
        };
        let built = config::Config::builder()
            .add_source(
                config::File::from(path.clone())
                    .format(config::FileFormat::Toml)
                    .required(required),
            )
            // WEIR_LOG_LEVEL -> log_level; nested settings use a double underscore
            // (WEIR_ADMIN__ADDRESS -> admin.address).
            .add_source(
                config::Environment::with_prefix("WEIR")
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(weir_variables())),
            )
            .build()
            .and_then(|c| c.try_deserialize::<HostSettings>());
        built.map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path,
                line: None,
                column: None,
                key: String::new(),
                message: format!("invalid host settings (weir.toml or WEIR_* variables): {e}"),
                help: None,
            }])
        })
    }
}
