//! A test file (`orders.test.toml`): the pipeline it tests, and its `[[test]]` tables, read with
//! every mistake named at its file, line and key, as `weir check` names a pipeline's.
//!
//! ```toml
//! pipeline = "orders.toml"            # relative to this file
//!
//! [[test]]
//! name = "billing orders are delivered, their email redacted"
//! events = [{ detail = { department = "billing", email = "a@b.c" } }]
//! [[test.expect]]
//! outcome = "delivered"
//! body = { detail = { email = "[redacted]" } }
//! ```

use crate::config::component::deserialize_table;
use crate::config::{ConfigError, ConfigErrors, KeyPath, SourceText};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A test file as read.
pub(super) struct TestFile {
    pub(super) file: PathBuf,
    /// The pipeline, its path resolved against the test file's folder.
    pub(super) pipeline: PathBuf,
    pub(super) tests: Vec<TestCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pipeline: String,
    test: Vec<TestCase>,
}

/// One `[[test]]`: events in, and what each must become.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestCase {
    pub(super) name: String,
    /// The input events, inline: a table is a JSON record, a string a record as it is.
    #[serde(default)]
    pub(super) events: Vec<toml::Value>,
    /// Or a file of records, one per line, relative to the test file.
    #[serde(default)]
    pub(super) input: Option<PathBuf>,
    /// What each input becomes, in order.
    pub(super) expect: Vec<Expect>,
}

/// What one input must become.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Expect {
    pub(super) outcome: Expected,
    /// Delivered to the `[sink]` as one event: its body (JSON, or text).
    #[serde(default)]
    pub(super) body: Option<toml::Value>,
    /// Delivered as several events (a plugin split it): their bodies, in order.
    #[serde(default)]
    pub(super) bodies: Option<Vec<toml::Value>>,
    /// Delivered to `[[target]]`s: exactly these, each with its body.
    #[serde(default)]
    pub(super) targets: Option<toml::Table>,
    /// Bodies equal, not only containing what is written.
    #[serde(default)]
    pub(super) exact: bool,
    /// Its ordering key.
    #[serde(default)]
    pub(super) key: Option<String>,
    /// Dead-lettered or dropped at this stage (`plugin:redact`, `sink`, `target:NAME`, `source`).
    #[serde(default)]
    pub(super) stage: Option<String>,
    /// Dead-lettered with this kind (`error`, `trap`, `timeout`, `rejected`, `malformed`).
    #[serde(default)]
    pub(super) kind: Option<String>,
    /// Dead-lettered with a reason that contains this.
    #[serde(default)]
    pub(super) reason: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Expected {
    Delivered,
    Filtered,
    Dropped,
    DeadLettered,
}

/// Reads a test file; its mistakes, each at its line and key.
pub(super) fn read(file: &Path) -> Result<TestFile, ConfigErrors> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::of_file(file, format!("cannot read test file: {e}")))?;
    let src = SourceText::parse(file, &text)?;
    let root = KeyPath::default();
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| src.error_at(e.span(), root.clone(), e.message().to_owned()))?;
    let raw: RawFile = deserialize_table(&src, &root, table, &[])?;
    let folder = file.parent().unwrap_or(Path::new(""));
    let mut errors = Vec::new();
    for (i, test) in raw.test.iter().enumerate() {
        let at = root.key("test").index(i);
        match (&test.input, test.events.is_empty()) {
            (Some(_), false) => {
                errors.push(src.error(&at.key("input"), "give `events` or `input`, not both"))
            }
            (None, true) => errors.push(src.error(
                &at,
                "no input: give `events` (inline) or `input` (a file of records)",
            )),
            _ => {}
        }
        for (j, e) in test.events.iter().enumerate() {
            if !matches!(e, toml::Value::Table(_) | toml::Value::String(_)) {
                errors.push(src.error(
                    &at.key("events").index(j),
                    "an event is a table (a JSON record) or a string (a record as it is)",
                ));
            }
        }
        for (j, e) in test.expect.iter().enumerate() {
            let at = at.key("expect").index(j);
            if e.body.is_some() && e.bodies.is_some() {
                errors.push(src.error(
                    &at.key("bodies"),
                    "give `body` (one event) or `bodies` (several), not both",
                ));
            }
            if let Some(key) = e.misplaced() {
                errors.push(src.error(
                    &at.key(key),
                    format!("`{key}` does not go with outcome {:?}", e.outcome.name()),
                ));
            }
        }
        if raw.test[..i].iter().any(|t| t.name == test.name) {
            errors.push(src.error(&at.key("name"), "another test has this name"));
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let mut tests = raw.test;
    for test in &mut tests {
        if let Some(input) = &mut test.input {
            *input = folder.join(&*input);
        }
    }
    Ok(TestFile {
        file: file.to_owned(),
        pipeline: folder.join(raw.pipeline),
        tests,
    })
}

impl Expected {
    pub(super) fn name(self) -> &'static str {
        match self {
            Expected::Delivered => "delivered",
            Expected::Filtered => "filtered",
            Expected::Dropped => "dropped",
            Expected::DeadLettered => "dead-lettered",
        }
    }
}

impl Expect {
    /// A key that cannot hold for the expected outcome (a body for a filtered event), if any.
    fn misplaced(&self) -> Option<&'static str> {
        let delivered = self.outcome == Expected::Delivered;
        let failed = self.outcome == Expected::DeadLettered;
        let given = [
            ("body", self.body.is_some(), delivered),
            ("bodies", self.bodies.is_some(), delivered),
            ("targets", self.targets.is_some(), delivered),
            ("key", self.key.is_some(), delivered),
            (
                "stage",
                self.stage.is_some(),
                failed || self.outcome == Expected::Dropped,
            ),
            ("kind", self.kind.is_some(), failed),
            ("reason", self.reason.is_some(), failed),
        ];
        given
            .into_iter()
            .find(|(_, set, fits)| *set && !fits)
            .map(|(key, _, _)| key)
    }
}
