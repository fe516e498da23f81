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
                    .separator("__"),
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
