//! `[[plugin]]`: `path`, `name` (default: the file's stem), `timeout_ms`, `init_timeout_ms`,
//! `memory_mb`, `config`.

use crate::config::component::deserialize_table;
use crate::config::{ConfigError, KeyPath, SourceText};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
/// Instantiation and `init`: a language runtime's start-up (a few ms for Python or JavaScript)
/// plus whatever the plugin does with its config, generously.
pub const DEFAULT_INIT_TIMEOUT_MS: u64 = 5000;
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// Limits on the limits: a day-long call or a 16 GiB instance is a typo, not a setting.
const MAX_TIMEOUT_MS: u64 = 600_000;
const MAX_MEMORY_MB: u64 = 4096;

#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The component file, relative to the working directory.
    pub path: PathBuf,
    /// Names the plugin in logs, metrics and DLQ records (`plugin:NAME`).
    pub name: String,
    /// Deadline of one call (one batch; a batch that misses it is retried event by event, to
    /// find the slow one), in wall time: running or waiting in a host call.
    pub timeout: Duration,
    /// Deadline of instantiating the plugin and calling its `init`.
    pub init_timeout: Duration,
    pub memory_mb: u64,
    /// The `config` table as JSON text, passed to the plugin's `init`.
    pub config_json: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    path: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_init_timeout_ms")]
    init_timeout_ms: u64,
    #[serde(default = "default_memory_mb")]
    memory_mb: u64,
    #[serde(default)]
    config: toml::Table,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_init_timeout_ms() -> u64 {
    DEFAULT_INIT_TIMEOUT_MS
}
fn default_memory_mb() -> u64 {
    DEFAULT_MEMORY_MB
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
        if !(1..=MAX_TIMEOUT_MS).contains(&raw.timeout_ms) {
            errors.push(src.error(
                &at.key("timeout_ms"),
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&raw.init_timeout_ms) {
            errors.push(src.error(
                &at.key("init_timeout_ms"),
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        // Something that is there but cannot be a plugin (a device, a FIFO, a directory, a huge
        // file) is named here, where the file and line are known. A missing file is reported
        // when the plugin loads.
        if let Ok(meta) = std::fs::metadata(&path) {
            if let Err(why) = super::wasm_file::check(&meta) {
                errors.push(src.error(&at.key("path"), format!("{} {why}", path.display())));
            }
        }
        if !(1..=MAX_MEMORY_MB).contains(&raw.memory_mb) {
            errors.push(src.error(
                &at.key("memory_mb"),
                format!("must be between 1 and {MAX_MEMORY_MB}"),
            ));
        }
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
            timeout: Duration::from_millis(raw.timeout_ms),
            init_timeout: Duration::from_millis(raw.init_timeout_ms),
            memory_mb: raw.memory_mb,
            config_json,
        })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
