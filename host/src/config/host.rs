//! The host's own settings, layered: defaults, then `weir.toml` (optional), then `WEIR_*`
//! environment variables, then command-line flags (applied by the CLI).

use super::component::{deserialize_table, every_error};
use super::diagnostic::{ConfigError, ConfigErrors, KeyPath, SourceText, did_you_mean};
use super::interpolate::resolve_table;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
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
    #[serde(default = "default_shutdown_timeout_s", deserialize_with = "number")]
    pub shutdown_timeout_s: u64,
    /// `weir run`: how often the pipeline files are checked for changes (0: never; SIGHUP and
    /// `POST /reload` still reload).
    #[serde(default = "default_watch_interval_ms", deserialize_with = "number")]
    pub watch_interval_ms: u64,
    #[serde(default)]
    pub admin: AdminSettings,
    /// `perfmap`: write `/tmp/perf-PID.map` so that `perf` names the plugins' compiled
    /// functions (how a plugin author finds where a plugin spends its time); `off` by default.
    #[serde(default)]
    pub plugin_profiler: PluginProfiler,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PluginProfiler {
    #[default]
    Off,
    Perfmap,
}

/// The admin HTTP server of `weir run`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
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
    #[serde(default = "default_admin_idle_timeout_s", deserialize_with = "number")]
    pub idle_timeout_s: u64,
    /// Connections open at once (1 to [`MAX_ADMIN_CONNECTIONS`]); a client over the cap gets
    /// 503 and is disconnected.
    #[serde(default = "default_admin_max_connections", deserialize_with = "number")]
    pub max_connections: u64,
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

/// The most admin connections `admin.max_connections` may allow.
pub const MAX_ADMIN_CONNECTIONS: u64 = 65_536;

impl AdminSettings {
    /// What `weir run` refuses: an address that does not resolve, or one that is not loopback
    /// while no token is set (whoever reaches the port could tap events and reload pipelines).
    /// Returns the addresses it resolves to (empty when the admin server is `off`).
    pub fn check(&self) -> Result<Vec<std::net::SocketAddr>, AdminRefusal> {
        if self.address == "off" {
            return Ok(Vec::new());
        }
        use std::net::ToSocketAddrs;
        let address = || self.address.clone();
        let addrs: Vec<std::net::SocketAddr> = self
            .address
            .to_socket_addrs()
            .map_err(|source| AdminRefusal::Unresolvable {
                address: address(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(AdminRefusal::Empty { address: address() });
        }
        let token = self.token.as_deref().is_some_and(|t| !t.is_empty());
        if !token && let Some(&open) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(AdminRefusal::Open {
                address: address(),
                open,
            });
        }
        Ok(addrs)
    }
}

/// Why `admin.address` is refused (by `weir check`, and by `weir run` before it listens).
#[derive(Debug, thiserror::Error)]
pub enum AdminRefusal {
    #[error("{address:?} is not a host:port that resolves: {source}")]
    Unresolvable {
        address: String,
        source: std::io::Error,
    },
    #[error("{address:?} resolves to nothing")]
    Empty { address: String },
    #[error(
        "{address:?} ({open}) is not a loopback address: set admin.token (WEIR_ADMIN__TOKEN) \
         so that callers must authenticate, or listen on 127.0.0.1"
    )]
    Open {
        address: String,
        open: std::net::SocketAddr,
    },
}

fn default_admin_idle_timeout_s() -> u64 {
    60
}

fn default_admin_max_connections() -> u64 {
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

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
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
/// "unknown field `port`"; those are left out, and so is [`BUILD_COMMIT`]. Any other unknown
/// `WEIR_*` variable is still an error (a misspelt setting).
fn weir_variables() -> config::Map<String, String> {
    settings_among(std::env::vars())
}

/// The commit weir is built from, given to the build (host/build.rs, the Dockerfile's build
/// argument). Cargo sets a build script's variables in the environment of what it runs, so
/// `cargo run` and the benchmarks under `cargo bench` start weir with it: it is not a setting.
const BUILD_COMMIT: &str = "WEIR_GIT_COMMIT";

fn settings_among(vars: impl Iterator<Item = (String, String)>) -> config::Map<String, String> {
    vars.filter(|(k, v)| k.starts_with("WEIR_") && k != BUILD_COMMIT && !service_link(k, v))
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
    use super::{service_link, settings_among};

    #[test]
    fn the_build_commit_is_not_a_setting() {
        let vars = [
            ("WEIR_GIT_COMMIT", "abc1234"),
            ("WEIR_LOG_LEVEL", "debug"),
            ("WEIR_LOG_LEVL", "debug"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut kept: Vec<String> = settings_among(vars.into_iter()).into_keys().collect();
        kept.sort();
        // A misspelt setting is kept, to be refused with its right spelling.
        assert_eq!(kept, ["WEIR_LOG_LEVEL", "WEIR_LOG_LEVL"]);
    }

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
    /// `weir.toml` in the working directory is read if present. Every mistake is reported, each
    /// naming where it comes from: the file's line and key, or the environment variable.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        Self::load_for(file, false)
    }

    /// The log format asked for, as far as it can be read from settings that do not load (so
    /// that their errors come out as JSON lines when JSON logs were asked for).
    pub fn log_format_hint(file: Option<&Path>) -> Option<LogFormat> {
        let parse = |text: &str| match text.trim().to_ascii_lowercase().as_str() {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            _ => None,
        };
        if let Ok(v) = std::env::var("WEIR_LOG_FORMAT") {
            return parse(&v);
        }
        let text = std::fs::read_to_string(file.unwrap_or(Path::new("weir.toml"))).ok()?;
        let table: toml::Table = toml::from_str(&text).ok()?;
        table.get("log_format")?.as_str().and_then(parse)
    }

    /// [`HostSettings::load`] for `weir run` (and `weir check`): also checks what serving
    /// needs, the admin server's address.
    pub fn load_to_serve(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        Self::load_for(file, true)
    }

    fn load_for(file: Option<&Path>, serve: bool) -> Result<Self, ConfigErrors> {
        let (path, required) = match file {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from("weir.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(e) => {
                return Err(ConfigErrors(vec![ConfigError::of_file(
                    path,
                    format!("cannot read the settings file: {e}"),
                )]));
            }
        };
        Self::parse_for(&path, &text, weir_variables(), serve)
    }

    /// Settings from the text of a settings file (empty if there is none) and `WEIR_*`
    /// variables, which override it.
    pub fn parse(
        path: &Path,
        text: &str,
        env: config::Map<String, String>,
    ) -> Result<Self, ConfigErrors> {
        Self::parse_for(path, text, env, false)
    }

    fn parse_for(
        path: &Path,
        text: &str,
        env: config::Map<String, String>,
        serve: bool,
    ) -> Result<Self, ConfigErrors> {
        let src = SourceText::parse(path, text)?;
        let root = KeyPath::default();
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| src.error_at(e.span(), root.clone(), e.message().to_owned()))?;
        // The file's `${VAR}` and `${file:...}` references (`admin.token =
        // "${file:/run/secrets/weir-admin-token}"`); `WEIR_*` values below are taken as they are.
        resolve_table(&src, &mut table).map_err(ConfigErrors)?;
        let mut errors = Vec::new();
        // Which keys the environment set, by which variable.
        let mut from_env: Vec<(String, String)> = Vec::new();
        let known = setting_keys();
        let mut vars: Vec<(String, String)> = env.into_iter().collect();
        vars.sort();
        for (var, value) in vars {
            let key: Vec<String> = var["WEIR_".len()..]
                .to_lowercase()
                .split("__")
                .map(str::to_owned)
                .collect();
            if !known.contains(&key) {
                let names: Vec<String> = known.iter().map(|k| env_name(k)).collect();
                let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                errors.push(ConfigError {
                    help: did_you_mean(&var, names.iter().map(String::as_str)),
                    ..ConfigError::of_file(
                        PathBuf::new(),
                        format!(
                            "environment variable `{var}` is not a weir setting; the settings are {}",
                            listed.join(", ")
                        ),
                    )
                });
                continue;
            }
            // Known keys are one or two levels deep (`admin.address`).
            let mut at = &mut table;
            for part in &key[..key.len() - 1] {
                let entry = at
                    .entry(part.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if !entry.is_table() {
                    *entry = toml::Value::Table(toml::Table::new());
                }
                let toml::Value::Table(t) = entry else {
                    unreachable!("made a table just above")
                };
                at = t;
            }
            at.insert(key[key.len() - 1].clone(), toml::Value::String(value));
            from_env.push((key.join("."), var));
        }
        let (settings, found) = every_error(&root, table, |t| {
            deserialize_table::<HostSettings>(&src, &root, t, &[]).map_err(|e| vec![e])
        });
        errors.extend(found);
        if let Some(s) = &settings
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(&s.log_level)
        {
            errors.push(src.error(
                &root.key("log_level"),
                format!("invalid log filter `{}`: {e}", s.log_level),
            ));
        }
        if serve
            && let Some(s) = &settings
            && let Err(refusal) = s.admin.check()
        {
            errors.push(src.error(&root.key("admin").key("address"), refusal.to_string()));
        }
        if let Some(s) = &settings
            && !(1..=MAX_ADMIN_CONNECTIONS).contains(&s.admin.max_connections)
        {
            errors.push(src.error(
                &root.key("admin").key("max_connections"),
                format!(
                    "must be between 1 and {MAX_ADMIN_CONNECTIONS}, got {}",
                    s.admin.max_connections
                ),
            ));
        }
        // A value the environment set is blamed on its variable, not on the file.
        for e in &mut errors {
            if let Some((_, var)) = from_env
                .iter()
                .find(|(key, _)| e.key == *key || e.key.starts_with(&format!("{key}.")))
            {
                e.file = PathBuf::new();
                e.at = None;
                e.message = format!("environment variable `{var}`: {}", e.message);
                e.key = String::new();
            }
        }
        match settings {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

/// Every setting's key path (`log_level`, `admin.address`, ...), from the defaults.
fn setting_keys() -> Vec<Vec<String>> {
    fn walk(prefix: &[String], value: &serde_json::Value, out: &mut Vec<Vec<String>>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let mut p = prefix.to_vec();
                    p.push(k.clone());
                    walk(&p, v, out);
                }
            }
            _ => out.push(prefix.to_vec()),
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(HostSettings::default()) {
        walk(&[], &v, &mut out);
    }
    out
}

/// The environment variable of a setting: `admin.address` -> `WEIR_ADMIN__ADDRESS`.
fn env_name(key: &[String]) -> String {
    format!("WEIR_{}", key.join("__").to_uppercase())
}

/// A number from the file, or from the text of an environment variable.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Number;
    impl serde::de::Visitor<'_> for Number {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n)
                .map_err(|_| E::custom(format!("expected a non-negative integer, got {n}")))
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<u64, E> {
            text.trim()
                .parse()
                .map_err(|_| E::custom(format!("expected a non-negative integer, got `{text}`")))
        }
    }
    d.deserialize_any(Number)
}

#[cfg(test)]
mod load_tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> config::Map<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_mistake_is_blamed_on_its_line_or_its_variable() {
        let text = "log_levle = \"debug\"\nshutdown_timeout_s = -1\n[admin]\nadress = \"x\"\n";
        let e = HostSettings::parse(
            Path::new("weir.toml"),
            text,
            env(&[
                ("WEIR_WATCH_INTERVAL_MS", "abc"),
                ("WEIR_ADMIN_ADDRESS", "127.0.0.1:1"),
            ]),
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "weir.toml:1:1: `log_levle`: unknown key",
            "did you mean `log_level`?",
            "weir.toml:2:1: `shutdown_timeout_s`: expected a non-negative integer, got -1",
            "weir.toml:4:1: `admin.adress`: unknown key",
            "environment variable `WEIR_WATCH_INTERVAL_MS`: expected a non-negative integer, got `abc`",
            "environment variable `WEIR_ADMIN_ADDRESS` is not a weir setting",
            "did you mean `WEIR_ADMIN__ADDRESS`?",
        ] {
            assert!(e.contains(expected), "expected {expected:?} in:\n{e}");
        }
    }

    #[test]
    fn the_environment_overrides_the_file_and_numbers_come_as_text() {
        let s = HostSettings::parse(
            Path::new("weir.toml"),
            "shutdown_timeout_s = 5\n[admin]\naddress = \"off\"\n",
            env(&[("WEIR_SHUTDOWN_TIMEOUT_S", "7"), ("WEIR_ADMIN__TOKEN", "t")]),
        )
        .unwrap();
        assert_eq!(s.shutdown_timeout_s, 7);
        assert_eq!(s.admin.address, "off");
        assert_eq!(s.admin.token.as_deref(), Some("t"));
        let e = HostSettings::parse(
            Path::new("weir.toml"),
            "",
            env(&[("WEIR_LOG_LEVEL", "weir=loud")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("environment variable `WEIR_LOG_LEVEL`: invalid log filter"),
            "{e}"
        );
    }
}
