//! The pipeline file: `[pipeline]`, `[source]`, `[[filter]]`, `[[plugin]]`, `[ordering]`,
//! `[retry]`, `[sink]`, `[dlq]`.

use super::component::deserialize_at;
use super::diagnostic::{ConfigError, ConfigErrors, KeyPath, SourceText};
use crate::pipeline::policy::{Ordering, Retry};
use crate::plugin::PluginConfig;
use crate::sink::SinkConfig;
use crate::source::SourceConfig;
use crate::template::Template;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The file it was read from.
    pub file: PathBuf,
    pub name: String,
    /// How often finished positions are made durable (sink synced, then source checkpointed).
    pub checkpoint_interval: Duration,
    pub source: SourceConfig,
    /// Event patterns, OR-ed; empty keeps every event.
    pub filters: Vec<String>,
    /// Wasm plugins, run in order after the filters.
    pub plugins: Vec<PluginConfig>,
    /// Lanes and ordering keys.
    pub ordering: Ordering,
    /// What to do when an event fails.
    pub retry: Retry,
    pub sink: SinkConfig,
    /// Where failed events go; `None` means the default file `<state dir>/dlq.jsonl`.
    pub dlq: Option<SinkConfig>,
    /// `[pipeline] correlation_id`: where an event's correlation id is (`<$.data.requestId>`);
    /// events without one use their id ([`crate::event::Envelope::correlation_id`]).
    pub correlation_id: Option<crate::template::Template>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipelineFile {
    pipeline: PipelineSection,
    source: toml::Table,
    #[serde(default)]
    filter: Vec<FilterSection>,
    #[serde(default)]
    plugin: Vec<toml::Table>,
    #[serde(default)]
    ordering: Option<toml::Table>,
    #[serde(default)]
    retry: Option<toml::Table>,
    sink: toml::Table,
    #[serde(default)]
    dlq: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineSection {
    name: String,
    #[serde(default)]
    #[allow(dead_code)] // documentation for people reading the file
    description: Option<String>,
    #[serde(default = "default_checkpoint_interval_ms")]
    checkpoint_interval_ms: u64,
    #[serde(default)]
    correlation_id: Option<String>,
}

fn default_checkpoint_interval_ms() -> u64 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterSection {
    pattern: String,
}

/// Reads and validates one pipeline file.
pub fn load_pipeline(file: &Path) -> Result<PipelineConfig, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_owned(),
        line: None,
        column: None,
        key: String::new(),
        message: format!("cannot read pipeline file: {e}"),
        help: None,
    })?;
    parse_pipeline(file, &text)
}

/// Parses and validates pipeline text; `file` names it in errors.
pub fn parse_pipeline(file: &Path, text: &str) -> Result<PipelineConfig, ConfigErrors> {
    let src = SourceText::parse(file, text)?;
    let root = KeyPath::default();
    let de = toml::Deserializer::parse(text)
        .map_err(|e| src.error_at(e.span(), root.clone(), e.message().to_owned()))?;
    let raw: RawPipelineFile = deserialize_at(&src, &root, de)?;

    let mut errors = Vec::new();
    let name_key = root.key("pipeline").key("name");
    if let Err(msg) = check_name(&raw.pipeline.name) {
        errors.push(src.error(&name_key, msg));
    }
    if raw.pipeline.checkpoint_interval_ms == 0 {
        errors.push(src.error(
            &root.key("pipeline").key("checkpoint_interval_ms"),
            "must be at least 1",
        ));
    }

    let correlation_at = root.key("pipeline").key("correlation_id");
    let correlation_id = match raw.pipeline.correlation_id.as_deref().map(Template::parse) {
        None => None,
        Some(Ok(t)) if t.references_event() => Some(t),
        Some(Ok(_)) => {
            errors.push(src.error(
                &correlation_at,
                "the correlation id template refers to nothing of the event (write `<$.data.requestId>`): every event would get the same id",
            ));
            None
        }
        Some(Err(e)) => {
            errors.push(src.error(
                &correlation_at,
                format!("invalid correlation id template: {e}"),
            ));
            None
        }
    };

    let source = SourceConfig::parse(&src, &root.key("source"), raw.source);
    let sink = SinkConfig::parse(&src, &root.key("sink"), raw.sink);
    let dlq = raw
        .dlq
        .map(|t| SinkConfig::parse(&src, &root.key("dlq"), t))
        .transpose();

    let mut filters = Vec::new();
    for (i, f) in raw.filter.into_iter().enumerate() {
        let at = root.key("filter").index(i).key("pattern");
        match weir_pattern::Pattern::compile(&f.pattern) {
            Ok(_) => filters.push(f.pattern),
            Err(e) => errors.push(src.error(&at, format!("invalid event pattern: {e}"))),
        }
    }

    let ordering = raw
        .ordering
        .map(|t| Ordering::parse(&src, &root.key("ordering"), t))
        .transpose()
        .unwrap_or_else(|e| {
            errors.extend(e);
            None
        })
        .unwrap_or_default();
    let retry = raw
        .retry
        .map(|t| Retry::parse(&src, &root.key("retry"), t))
        .transpose()
        .unwrap_or_else(|e| {
            errors.extend(e);
            None
        })
        .unwrap_or_default();

    let mut plugins: Vec<PluginConfig> = Vec::new();
    for (i, table) in raw.plugin.into_iter().enumerate() {
        let at = root.key("plugin").index(i);
        match PluginConfig::parse(&src, &at, table) {
            Ok(p) => {
                if plugins.iter().any(|o| o.name == p.name) {
                    errors.push(src.error(
                        &at.key("name"),
                        format!(
                            "plugin name `{}` is used twice in this pipeline; set `name` to tell them apart",
                            p.name
                        ),
                    ));
                }
                plugins.push(p);
            }
            Err(e) => errors.extend(e),
        }
    }

    let (source, sink, dlq) = match (source, sink, dlq) {
        (Ok(s), Ok(k), Ok(d)) if errors.is_empty() => (s, k, d),
        (s, k, d) => {
            errors.extend(s.err());
            errors.extend(k.err());
            errors.extend(d.err());
            return Err(ConfigErrors(errors));
        }
    };
    Ok(PipelineConfig {
        file: file.to_owned(),
        name: raw.pipeline.name,
        checkpoint_interval: Duration::from_millis(raw.pipeline.checkpoint_interval_ms),
        source,
        filters,
        plugins,
        ordering,
        retry,
        sink,
        dlq,
        correlation_id,
    })
}

/// Pipeline names become directory names (state, DLQ) and metric labels.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid pipeline name {name:?}: use 1 to 100 letters, digits, `-`, `_` or `.` (not first)"
        ))
    }
}

/// Reads every pipeline named: files as they are, directories for their `*.toml` files (sorted).
/// All errors of all files are reported together, and names must be unique.
pub fn load_pipelines(paths: &[PathBuf]) -> Result<Vec<PipelineConfig>, ConfigErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match pipeline_files_in(path) {
                Ok(found) if found.is_empty() => errors.push(plain_error(
                    path,
                    "no *.toml pipeline files in this directory",
                )),
                Ok(found) => files.extend(found),
                Err(e) => errors.push(plain_error(path, &format!("cannot list directory: {e}"))),
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut pipelines: Vec<PipelineConfig> = Vec::new();
    for file in files {
        match load_pipeline(&file) {
            Ok(p) => {
                if let Some(other) = pipelines.iter().find(|o| o.name == p.name) {
                    let msg = format!(
                        "pipeline name `{}` is already used by {}",
                        p.name,
                        other.file.display()
                    );
                    errors.push(plain_error(&file, &msg));
                } else {
                    pipelines.push(p);
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(pipelines)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The `*.toml` files directly in `dir`, sorted by name.
pub fn pipeline_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

fn plain_error(file: &Path, message: &str) -> ConfigError {
    ConfigError {
        file: file.to_owned(),
        line: None,
        column: None,
        key: String::new(),
        message: message.to_owned(),
        help: None,
    }
}
