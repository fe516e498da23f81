//! The pipeline file: `[pipeline]`, `[source]`, `[[filter]]`, `[[table]]`, `[[plugin]]`,
//! `[ordering]`, `[retry]`, `[sink]` or `[[target]]` (target.rs), `[dlq]`.

use super::policy::{Ordering, Retry};
use super::target::TargetConfig;
use crate::config::component::{deserialize_table, every_error};
use crate::config::diagnostic::{ConfigError, ConfigErrors, KeyPath, SourceText};
use crate::config::interpolate::{Resolved, resolve_table};
use crate::lookup::{OpenError, TableConfig, Tables};
use crate::plugin::PluginConfig;
use crate::sink::SinkConfig;
use crate::source::SourceConfig;
use crate::template::Template;
use schemars::JsonSchema;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// Lookup tables, granted to plugins by name.
    pub(crate) tables: Vec<TableConfig>,
    /// Wasm plugins, run in order after the filters.
    pub plugins: Vec<PluginConfig>,
    /// Lanes and ordering keys.
    pub ordering: Ordering,
    /// What to do when an event fails (a target's own `[target.retry]` replaces it there).
    pub retry: Retry,
    /// Where events go: one or more, each with its rule (`[sink]` is one, without a rule).
    pub targets: Vec<TargetConfig>,
    /// Where failed events go (a target's own `[target.dlq]` replaces it there); `None` means
    /// the default file `<state dir>/dlq.jsonl`.
    pub dlq: Option<SinkConfig>,
    /// `[pipeline] correlation_id`: where an event's correlation id is (`<$.data.requestId>`);
    /// events without one use their id ([`crate::event::Envelope::correlation_id`]).
    pub correlation_id: Option<crate::template::Template>,
    /// What the file's `${...}` references resolved to (a digest: a reload compares it).
    pub(crate) resolved: Resolved,
}

/// The file's sections, each kept as a table and parsed on its own, so that a mistake in one
/// does not hide those of the others. Its schema (`weir schema pipeline`, schema.rs) is each
/// section's as its own parser reads it.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "weir pipeline",
    description = "A weir pipeline file: a source, filters, plugins and a sink or targets."
)]
struct RawPipelineFile {
    /// The pipeline's name and settings.
    #[serde(default)]
    #[schemars(with = "Option<PipelineSection>")]
    pipeline: Option<toml::Table>,
    /// Where events come from.
    #[serde(default)]
    #[schemars(schema_with = "crate::source::schema")]
    source: Option<toml::Table>,
    /// Event patterns (EventBridge's language): an event is kept when one of them matches.
    #[serde(default)]
    #[schemars(with = "Vec<FilterSection>")]
    filter: Vec<toml::Table>,
    /// Lookup tables that plugins are granted by name.
    #[serde(default)]
    #[schemars(schema_with = "crate::lookup::tables_schema")]
    table: Vec<toml::Table>,
    /// Wasm plugins, run in order after the filters.
    #[serde(default)]
    #[schemars(with = "Vec<crate::plugin::config::RawPlugin>")]
    plugin: Vec<toml::Table>,
    /// How events are spread over lanes, and which keep their order.
    #[serde(default)]
    #[schemars(with = "Option<super::policy::RawOrdering>")]
    ordering: Option<toml::Table>,
    /// What happens when an event fails.
    #[serde(default)]
    #[schemars(with = "Option<super::policy::RawRetry>")]
    retry: Option<toml::Table>,
    /// Where events go, when they go to one place (else `[[target]]`).
    #[serde(default)]
    #[schemars(schema_with = "crate::sink::schema")]
    sink: Option<toml::Table>,
    /// Where events go: each target with its rule (`when`) and its sink (else `[sink]`).
    #[serde(default)]
    #[schemars(schema_with = "super::target::targets_schema")]
    target: Vec<toml::Table>,
    /// Where failed events go (default: the file `<state dir>/dlq.jsonl`).
    #[serde(default)]
    #[schemars(schema_with = "crate::sink::schema")]
    dlq: Option<toml::Table>,
}

/// `[pipeline]`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PipelineSection {
    /// Names the pipeline in logs, metrics, DLQ records and its state directory: 1 to 100
    /// letters, digits, `-`, `_` or `.` (not first), unique among the pipelines run together.
    name: String,
    /// What the pipeline is for, for people reading the file.
    #[serde(default)]
    #[allow(dead_code)] // documentation for people reading the file
    description: Option<String>,
    /// How often finished positions are made durable (sink synced, then source checkpointed).
    #[serde(default = "default_checkpoint_interval_ms")]
    #[schemars(range(min = 1))]
    checkpoint_interval_ms: u64,
    /// Where an event's correlation id is, a template (`<$.data.requestId>`); default: its id.
    #[serde(default)]
    correlation_id: Option<String>,
}

fn default_checkpoint_interval_ms() -> u64 {
    1000
}

/// `[[filter]]`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FilterSection {
    /// An EventBridge event pattern, as JSON text, matched against the event's envelope
    /// (`{"data": {"detail": {"department": ["billing"]}}}`).
    pattern: String,
}

/// The pipeline file's JSON Schema (draft-07), as `weir schema pipeline` prints it: what the
/// parser below accepts, key by key (its checks across keys and of values' meaning, such as a
/// pattern's syntax, are `weir check`'s).
pub(crate) fn schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<RawPipelineFile>();
    // Sections the parser requires by hand (above): `[pipeline]`, `[source]`, and `[sink]` or
    // `[[target]]` but not both.
    schema.insert("required".into(), serde_json::json!(["pipeline", "source"]));
    schema.insert(
        "oneOf".into(),
        serde_json::json!([{ "required": ["sink"] }, { "required": ["target"] }]),
    );
    let mut schema = schema.to_value();
    crate::config::schema::without_null(&mut schema);
    schema
}

/// Reads and validates one pipeline file.
pub fn load_pipeline(file: &Path) -> Result<PipelineConfig, ConfigErrors> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::of_file(file, format!("cannot read pipeline file: {e}")))?;
    parse_pipeline(file, &text)
}

/// Parses and validates pipeline text; `file` names it in errors. Every mistake of the file is
/// reported, not only the first.
pub fn parse_pipeline(file: &Path, text: &str) -> Result<PipelineConfig, ConfigErrors> {
    let src = SourceText::parse(file, text)?;
    let root = KeyPath::default();
    let mut document: toml::Table = toml::from_str(text)
        .map_err(|e| src.error_at(e.span(), root.clone(), e.message().to_owned()))?;
    // `${VAR}` and `${file:...}` first: the sections are read with their values (a reference
    // that does not resolve would only add a second error at the same key).
    let resolved = resolve_table(&src, &mut document).map_err(ConfigErrors)?;
    let mut errors = Vec::new();
    let mut missing: Vec<&str> = ["pipeline", "source"]
        .into_iter()
        .filter(|section| !document.contains_key(*section))
        .collect();
    if !document.contains_key("sink") && !document.contains_key("target") {
        missing.push("sink");
    }
    let (raw, found) = every_error(&root, document, |t| {
        deserialize_table::<RawPipelineFile>(&src, &root, t, &[]).map_err(|e| vec![e])
    });
    // A section missing because its name is misspelt (`[sorce]`) is one mistake, said once.
    for section in missing {
        if !crate::config::component::misspelt(&found, section) {
            let or = match section {
                "sink" => " (or `[[target]]` entries)",
                _ => "",
            };
            errors.push(src.error(&root, format!("missing required section `[{section}]`{or}")));
        }
    }
    errors.extend(found);
    let raw = raw.unwrap_or_default();
    // Each section on its own, every error of each.
    let pipeline_at = root.key("pipeline");
    let pipeline: Option<PipelineSection> = raw.pipeline.and_then(|t| {
        let (v, e) = every_error(&pipeline_at, t, |t| {
            deserialize_table(&src, &pipeline_at, t, &[]).map_err(|e| vec![e])
        });
        errors.extend(e);
        v
    });
    if let Some(p) = &pipeline {
        if let Err(invalid) = check_name(&p.name) {
            errors.push(src.error(&pipeline_at.key("name"), invalid.to_string()));
        }
        if p.checkpoint_interval_ms == 0 {
            errors.push(src.error(
                &pipeline_at.key("checkpoint_interval_ms"),
                "must be at least 1",
            ));
        }
    }

    let correlation_at = pipeline_at.key("correlation_id");
    let correlation_id = match pipeline
        .as_ref()
        .and_then(|p| p.correlation_id.as_deref())
        .map(Template::parse)
    {
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

    let source = raw.source.and_then(|t| {
        let at = root.key("source");
        let (v, e) = every_error(&at, t, |t| {
            SourceConfig::parse(&src, &at, t).map_err(|e| vec![e])
        });
        errors.extend(e);
        v
    });
    let mut sink_table = |name: &str, table: Option<toml::Table>| {
        table.and_then(|t| {
            let at = root.key(name);
            let (v, e) = every_error(&at, t, |t| {
                SinkConfig::parse(&src, &at, t).map_err(|e| vec![e])
            });
            errors.extend(e);
            v
        })
    };
    let has_sink = raw.sink.is_some();
    let sink = sink_table("sink", raw.sink);
    let has_dlq = raw.dlq.is_some();
    let dlq = sink_table("dlq", raw.dlq);
    let targets = read_targets(&src, &root, raw.target, has_sink, &mut errors);

    let mut filters = Vec::new();
    for (i, table) in raw.filter.into_iter().enumerate() {
        let at = root.key("filter").index(i);
        let (f, e) = every_error(&at, table, |t| {
            deserialize_table::<FilterSection>(&src, &at, t, &[]).map_err(|e| vec![e])
        });
        errors.extend(e);
        let Some(f) = f else { continue };
        match weir_pattern::Pattern::compile(&f.pattern) {
            Ok(_) => filters.push(f.pattern),
            Err(e) => {
                errors.push(src.error(&at.key("pattern"), format!("invalid event pattern: {e}")))
            }
        }
    }

    let ordering = raw.ordering.and_then(|t| {
        let at = root.key("ordering");
        let (v, e) = every_error(&at, t, |t| Ordering::parse(&src, &at, t));
        errors.extend(e);
        v
    });
    let retry = raw.retry.and_then(|t| {
        let at = root.key("retry");
        let (v, e) = every_error(&at, t, |t| Retry::parse(&src, &at, t));
        errors.extend(e);
        v
    });

    let mut tables: Vec<TableConfig> = Vec::new();
    // The names the file declares, parsed or not: a grant naming a table that has a mistake of
    // its own is not a second mistake.
    let declared: Vec<String> = raw
        .table
        .iter()
        .filter_map(|t| t.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect();
    for (i, table) in raw.table.into_iter().enumerate() {
        let at = root.key("table").index(i);
        let (t, e) = every_error(&at, table, |t| TableConfig::parse(&src, &at, t));
        errors.extend(e);
        let Some(t) = t else { continue };
        if tables.iter().any(|o| o.name == t.name) {
            errors.push(src.error(
                &at.key("name"),
                format!("table name `{}` is used twice in this pipeline", t.name),
            ));
        }
        tables.push(t);
    }

    let mut plugins: Vec<PluginConfig> = Vec::new();
    for (i, table) in raw.plugin.into_iter().enumerate() {
        let at = root.key("plugin").index(i);
        let (p, e) = every_error(&at, table, |t| PluginConfig::parse(&src, &at, t));
        errors.extend(e);
        let Some(p) = p else { continue };
        for (k, granted) in p.tables.iter().enumerate() {
            if !declared.contains(granted) {
                let known = match declared.is_empty() {
                    true => "the pipeline has no [[table]]".to_owned(),
                    false => format!("its tables: {}", declared.join(", ")),
                };
                errors.push(src.error(
                    &at.key("tables").index(k),
                    format!("no [[table]] named {granted:?} ({known})"),
                ));
            }
        }
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

    let targets = match sink {
        Some(sink) => vec![TargetConfig::shorthand(sink)],
        None => targets,
    };
    match (pipeline, source) {
        (Some(pipeline), Some(source))
            if errors.is_empty() && (dlq.is_some() || !has_dlq) && !targets.is_empty() =>
        {
            Ok(PipelineConfig {
                file: file.to_owned(),
                name: pipeline.name,
                checkpoint_interval: Duration::from_millis(pipeline.checkpoint_interval_ms),
                source,
                filters,
                tables,
                plugins,
                ordering: ordering.unwrap_or_default(),
                retry: retry.unwrap_or_default(),
                targets,
                dlq,
                correlation_id,
                resolved,
            })
        }
        _ => Err(ConfigErrors(errors)),
    }
}

/// Reads the `[[target]]` entries: each on its own, names unique, and not beside `[sink]`.
fn read_targets(
    src: &SourceText<'_>,
    root: &KeyPath,
    tables: Vec<toml::Table>,
    has_sink: bool,
    errors: &mut Vec<ConfigError>,
) -> Vec<TargetConfig> {
    let mut targets: Vec<TargetConfig> = Vec::new();
    for (i, table) in tables.into_iter().enumerate() {
        let at = root.key("target").index(i);
        if has_sink && i == 0 {
            errors.push(src.error(
                &at,
                "a pipeline has either `[sink]` (one target) or `[[target]]` entries, not both: make the `[sink]` a `[[target]]` too",
            ));
        }
        let (t, e) = every_error(&at, table, |t| TargetConfig::parse(src, &at, t));
        errors.extend(e);
        let Some(t) = t else { continue };
        if targets.iter().any(|o| o.name == t.name) {
            errors.push(src.error(
                &at.key("name"),
                format!("target name `{}` is used twice in this pipeline", t.name),
            ));
        }
        targets.push(t);
    }
    targets
}

impl PipelineConfig {
    /// The sink kinds of the targets, `,`-separated (`http,file`), for status and logs.
    pub fn sink_kinds(&self) -> String {
        let kinds: Vec<&str> = self.targets.iter().map(|t| t.sink.kind()).collect();
        kinds.join(",")
    }

    /// A run-time error placed at `key` of the file (`p.toml:9:1: ...`); the file is read again.
    pub fn error_at_key(&self, key: &KeyPath, message: impl std::fmt::Display) -> String {
        self.located(key, message.to_string())
    }

    /// A run-time error about the settings of section `section` (`source`, `sink`, ...), placed
    /// at that section of the file (`p.toml:9:1: \`source\`: ...`); the file is read again.
    pub fn error_at(&self, section: &str, message: impl std::fmt::Display) -> String {
        let key = KeyPath::default().key(section);
        self.located(&key, message.to_string())
    }

    /// Opens the pipeline's lookup tables (file tables read now; Redis and PostgreSQL reached
    /// lazily), `None` if it has none.
    pub(crate) fn open_tables(&self) -> Result<Option<Arc<Tables>>, OpenError> {
        if self.tables.is_empty() {
            return Ok(None);
        }
        Tables::open(&self.tables, &self.name).map(Some)
    }

    /// A plugin that failed to load, placed at its `[[plugin]]` table.
    pub fn plugin_error(&self, e: &crate::plugin::PluginError) -> String {
        match self.plugin_key(e) {
            Some(key) => self.located(&key, e.to_string()),
            None => e.to_string(),
        }
    }

    /// Where a plugin's load error points: its `[[plugin]]` table, or its `path` when the file is
    /// what is wrong.
    pub fn plugin_key(&self, e: &crate::plugin::PluginError) -> Option<KeyPath> {
        use crate::plugin::PluginError;
        let (name, at_path) = match e {
            PluginError::Read { name, .. } | PluginError::Compile { name, .. } => (name, true),
            PluginError::Init { name, .. } | PluginError::Grant { name, .. } => (name, false),
            _ => return None,
        };
        let i = self.plugins.iter().position(|p| &p.name == name)?;
        let key = KeyPath::default().key("plugin").index(i);
        Some(if at_path { key.key("path") } else { key })
    }

    fn located(&self, key: &KeyPath, message: String) -> String {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        match SourceText::parse(&self.file, &text) {
            Ok(src) => src.error(key, message).to_string(),
            Err(_) => format!("{}: {message}", self.file.display()),
        }
    }
}

/// A pipeline name that cannot be one.
#[derive(Debug, thiserror::Error)]
#[error("invalid pipeline name {0:?}: use 1 to 100 letters, digits, `-`, `_` or `.` (not first)")]
pub(crate) struct InvalidName(String);

/// Pipeline names become directory names (state, DLQ) and metric labels.
pub(crate) fn check_name(name: &str) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    match ok {
        true => Ok(()),
        false => Err(InvalidName(name.to_owned())),
    }
}

/// Reads every pipeline named: files as they are, directories for their `*.toml` files (sorted).
/// All errors of all files are reported together, and names must be unique.
pub fn load_pipelines(paths: &[PathBuf]) -> Result<Vec<PipelineConfig>, ConfigErrors> {
    let (pipelines, errors) = read_pipelines(paths);
    if errors.is_empty() {
        Ok(pipelines)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Like [`load_pipelines`], but also gives the pipelines that are valid when others are not
/// (`weir check` goes on to check those further).
pub(crate) fn read_pipelines(paths: &[PathBuf]) -> (Vec<PipelineConfig>, Vec<ConfigError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match pipeline_files_in(path) {
                Ok(found) if found.is_empty() => errors.push(ConfigError::of_file(
                    path,
                    "no *.toml pipeline files in this directory",
                )),
                Ok(found) => files.extend(found),
                Err(e) => errors.push(ConfigError::of_file(
                    path,
                    format!("cannot list directory: {e}"),
                )),
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
                    errors.push(ConfigError::of_file(&file, msg));
                } else {
                    pipelines.push(p);
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    (pipelines, errors)
}

/// What a test file's name ends with (`orders.test.toml`, `weir test`'s): it lives beside its
/// pipeline, and is not one.
pub(crate) const TEST_FILE_SUFFIX: &str = ".test.toml";

/// The `*.toml` files directly in `dir`, sorted by name, but for test files (`*.test.toml`,
/// `weir test`'s), which live beside their pipelines.
pub(crate) fn pipeline_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let test = path.to_string_lossy().ends_with(TEST_FILE_SUFFIX);
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") && !test {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}
