//! `[[plugin]]`: `path`, `name` (default: the file's stem), `timeout_ms`, `init_timeout_ms`,
//! `memory_mb`, `config`, and what it is granted: `tables`, `[plugin.http]`, `io_budget_ms`.

use crate::config::component::deserialize_table;
use crate::config::{ConfigError, KeyPath, SourceText};
use schemars::JsonSchema;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Limits on the limits: a day-long call or a 16 GiB instance is a typo, not a setting.
const MAX_TIMEOUT_MS: u64 = 600_000;
const MAX_MEMORY_MB: u64 = 4096;

#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The component file, relative to the working directory.
    pub path: PathBuf,
    /// Names the plugin in logs, metrics and DLQ records (`plugin:NAME`).
    pub name: String,
    pub limits: Limits,
    /// The `config` table as JSON text, passed to the plugin's `init`.
    pub config_json: String,
    /// The lookup tables (`[[table]]` names) it may use; the pipeline checks they exist.
    pub tables: Vec<String>,
    /// `[plugin.http]`: what it may request, if anything.
    pub http: Option<super::http::HttpGrant>,
    /// Time a batch call may spend waiting on HTTP and lookups, apart from `timeout_ms`:
    /// `io_budget_ms`, by default [`DEFAULT_IO_BUDGET`] with a grant and nothing without.
    pub io_budget: Duration,
}

/// The I/O budget of a plugin with grants that sets none: a few slow requests' worth.
pub const DEFAULT_IO_BUDGET: Duration = Duration::from_millis(5000);

/// What a plugin may take: `timeout_ms`, `init_timeout_ms` and `memory_mb` of its `[[plugin]]`
/// table (or `weir plugin test`'s flags), carried as they are to where each acts: the deadlines
/// to each call (instance.rs), the memory cap to each instance's Store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deadline of one call (one batch; a batch that misses it is retried event by event, to
    /// find the slow one), in wall time: running or waiting in a host call.
    pub timeout: Duration,
    /// Deadline of instantiating the plugin and calling its `init`: a language runtime's
    /// start-up is not the per-batch work that `timeout` is about.
    pub init_timeout: Duration,
    /// The cap on an instance's linear memory, in MiB.
    pub memory_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_millis(1000),
            // A language runtime's start-up (a few ms for Python or JavaScript) plus whatever
            // the plugin does with its config, generously.
            init_timeout: Duration::from_millis(5000),
            memory_mb: 64,
        }
    }
}

impl Limits {
    /// The limits given (in milliseconds and MiB), the defaults for those not.
    pub fn given(
        timeout_ms: Option<u64>,
        init_timeout_ms: Option<u64>,
        memory_mb: Option<u64>,
    ) -> Self {
        let default = Limits::default();
        Limits {
            timeout: timeout_ms.map_or(default.timeout, Duration::from_millis),
            init_timeout: init_timeout_ms.map_or(default.init_timeout, Duration::from_millis),
            memory_mb: memory_mb.unwrap_or(default.memory_mb),
        }
    }
}

/// `[[plugin]]` as written.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Plugin")]
pub(crate) struct RawPlugin {
    /// The component file (.wasm), relative to the working directory.
    path: String,
    /// Names the plugin in logs, metrics and DLQ records (`plugin:NAME`); default: the file's
    /// stem.
    #[serde(default)]
    name: Option<String>,
    /// Deadline of one batch call, in wall time (default 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    timeout_ms: Option<u64>,
    /// Deadline of instantiating the plugin and calling its `init` (default 5000).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    init_timeout_ms: Option<u64>,
    /// The cap on an instance's memory, in MiB (default 64).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_MEMORY_MB))]
    memory_mb: Option<u64>,
    /// The plugin's settings, handed to its `init` as JSON.
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    config: toml::Table,
    /// The lookup tables (`[[table]]` names) it may use.
    #[serde(default)]
    tables: Vec<String>,
    /// What it may request over HTTP.
    #[serde(default)]
    #[schemars(with = "Option<super::http::RawGrant>")]
    http: Option<toml::Table>,
    /// Time a batch call may spend waiting on HTTP and lookups, besides `timeout_ms` (default
    /// 5000 with a grant).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    io_budget_ms: Option<u64>,
}

impl PluginConfig {
    /// Parses one `[[plugin]]` table that sits at `at`.
    pub fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        table: toml::Table,
    ) -> Result<Self, Vec<ConfigError>> {
        let raw: RawPlugin = deserialize_table(src, at, table, &[]).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let path = PathBuf::from(&raw.path);
        if raw.path.is_empty() {
            errors.push(src.error(&at.key("path"), "must name a .wasm component file"));
        }
        let name = match raw.name {
            Some(n) => n,
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        if !valid_name(&name) {
            errors.push(src.error(
                &at.key("name"),
                format!(
                    "invalid plugin name {name:?}: use 1 to 100 letters, digits, `-`, `_` or `.`"
                ),
            ));
        }
        let out_of_range =
            |value: Option<u64>, max: u64| value.is_some_and(|v| !(1..=max).contains(&v));
        if out_of_range(raw.timeout_ms, MAX_TIMEOUT_MS) {
            errors.push(src.error(
                &at.key("timeout_ms"),
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        if out_of_range(raw.init_timeout_ms, MAX_TIMEOUT_MS) {
            errors.push(src.error(
                &at.key("init_timeout_ms"),
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        // Something that is there but cannot be a plugin (a device, a FIFO, a directory, a huge
        // file) is named here, where the file and line are known. A missing file is reported
        // when the plugin loads.
        if let Ok(meta) = std::fs::metadata(&path)
            && let Err(why) = super::wasm_file::check(&meta)
        {
            errors.push(src.error(&at.key("path"), format!("{} {why}", path.display())));
        }
        if out_of_range(raw.memory_mb, MAX_MEMORY_MB) {
            errors.push(src.error(
                &at.key("memory_mb"),
                format!("must be between 1 and {MAX_MEMORY_MB}"),
            ));
        }
        if out_of_range(raw.io_budget_ms, MAX_TIMEOUT_MS) {
            errors.push(src.error(
                &at.key("io_budget_ms"),
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        for (i, t) in raw.tables.iter().enumerate() {
            if raw.tables[..i].contains(t) {
                errors.push(src.error(
                    &at.key("tables").index(i),
                    format!("table {t:?} is granted twice"),
                ));
            }
        }
        let http = match raw.http {
            None => None,
            Some(t) => {
                let at = at.key("http");
                match super::http::HttpGrant::parse(src, &at, t) {
                    Ok(grant) => Some(grant),
                    Err(e) => {
                        errors.extend(e);
                        None
                    }
                }
            }
        };
        let granted = http.is_some() || !raw.tables.is_empty();
        let io_budget = match raw.io_budget_ms {
            Some(ms) => Duration::from_millis(ms),
            None if granted => DEFAULT_IO_BUDGET,
            None => Duration::ZERO,
        };
        let config_json = match serde_json::to_string(&raw.config) {
            Ok(json) => json,
            Err(e) => {
                errors.push(src.error(&at.key("config"), format!("cannot be passed as JSON: {e}")));
                String::new()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PluginConfig {
            path,
            name,
            limits: Limits::given(raw.timeout_ms, raw.init_timeout_ms, raw.memory_mb),
            config_json,
            tables: raw.tables,
            http,
            io_budget,
        })
    }
}

impl PluginConfig {
    /// What it is granted, in a few words each (`/pipelines`, `weir top`): `table customers`,
    /// `http GET,POST https://api.example.com:443/v1/`. No secret is part of a grant's words.
    pub fn grant_summary(&self) -> Vec<String> {
        let mut out: Vec<String> = self.tables.iter().map(|t| format!("table {t}")).collect();
        if let Some(http) = &self.http {
            let methods: Vec<&str> = http.methods.iter().map(|m| m.as_str()).collect();
            for prefix in &http.allow {
                out.push(format!("http {} {prefix}", methods.join(",")));
            }
        }
        out
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<PluginConfig, Vec<ConfigError>> {
        let src = SourceText::parse(Path::new("p.toml"), text).map_err(|e| vec![e])?;
        let table: toml::Table = toml::from_str(text).expect("valid TOML");
        PluginConfig::parse(&src, &KeyPath::default(), table)
    }

    #[test]
    fn limits_left_out_are_the_defaults() {
        let p = parse("path = \"x.wasm\"").expect("valid");
        assert_eq!(p.limits, Limits::default());
        assert_eq!(p.limits, Limits::given(None, None, None));
        assert_eq!(p.limits.timeout, Duration::from_secs(1));
        assert_eq!(p.limits.init_timeout, Duration::from_secs(5));
        assert_eq!(p.limits.memory_mb, 64);
    }

    #[test]
    fn limits_given_are_carried_as_they_are() {
        let p = parse("path = \"x.wasm\"\ntimeout_ms = 20\ninit_timeout_ms = 300\nmemory_mb = 8")
            .expect("valid");
        let want = Limits {
            timeout: Duration::from_millis(20),
            init_timeout: Duration::from_millis(300),
            memory_mb: 8,
        };
        assert_eq!(p.limits, want);
        assert_eq!(Limits::given(Some(20), Some(300), Some(8)), want);
    }

    #[test]
    fn limits_out_of_range_are_each_named() {
        let errors =
            parse("path = \"x.wasm\"\ntimeout_ms = 0\ninit_timeout_ms = 600001\nmemory_mb = 0")
                .expect_err("invalid");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["timeout_ms", "init_timeout_ms", "memory_mb"]);
    }
}
