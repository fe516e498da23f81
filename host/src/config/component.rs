//! Turning TOML into typed configuration with errors a person can act on.
//!
//! Every table is deserialized through `serde_path_to_error`, so a failure knows its key path; the
//! path is then located in the file's spans ([`SourceText`]). Sources and sinks are tables with a
//! `type` key: the kind is read first and the rest of the table is deserialized into that kind's
//! own struct, so errors name the exact key inside `[source]` rather than the whole table.

use super::diagnostic::{ConfigError, KeyPath, Segment, SourceText, backticked, did_you_mean};
use serde::de::DeserializeOwned;

/// A problem `weir check` reports at one key of a source's or sink's table (`path`, `brokers`,
/// `queue_url`, ...): the key, and the error with its causes.
pub(crate) type KeyError = (&'static str, Box<dyn std::error::Error + Send + Sync>);

/// Deserializes the table of a component of kind `kind` (the `type` key already removed).
/// `extra_keys` are keys the caller handles itself, offered as suggestions too.
pub(crate) fn deserialize_table<T: DeserializeOwned>(
    src: &SourceText<'_>,
    at: &KeyPath,
    table: toml::Table,
    extra_keys: &[&str],
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = at.join_serde(e.path());
        explain(src, key, e.inner().message(), extra_keys)
    })
}

/// Rewrites serde's messages into ours: unknown keys get a suggestion and point at the key itself,
/// missing keys point at their table.
fn explain(src: &SourceText<'_>, key: KeyPath, message: &str, extra_keys: &[&str]) -> ConfigError {
    let message = message.trim_end();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backticked(rest);
        if let Some((field, expected)) = names.split_first() {
            // serde_path_to_error already ends the path with the unknown key.
            let key = if key.0.last() == Some(&Segment::Key(field.to_string())) {
                key
            } else {
                key.key(field)
            };
            let mut err = src.error(&key, format!("unknown key `{field}`"));
            let candidates: Vec<&str> = expected.iter().chain(extra_keys).copied().collect();
            let listed = candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ");
            err.message = format!("unknown key `{field}`; expected one of {listed}");
            err.help = did_you_mean(field, candidates.iter().copied());
            return err;
        }
    }
    if let Some(rest) = message.strip_prefix("missing field ")
        && let Some(field) = backticked(rest).first()
    {
        let what = if key.0.is_empty() {
            format!("section `[{field}]`")
        } else {
            format!("key `{field}`")
        };
        return src.error(&key, format!("missing required {what}"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let names = backticked(rest);
        if let Some((value, expected)) = names.split_first() {
            let mut err = src.error(
                &key,
                format!(
                    "unknown value `{value}`; expected one of {}",
                    quote_all(expected)
                ),
            );
            err.help = did_you_mean(value, expected.iter().copied());
            return err;
        }
    }
    src.error(&key, plain_types(message))
}

/// Says Rust's type names in words: "expected usize" means nothing to someone writing TOML.
fn plain_types(message: &str) -> String {
    let mut out = message.to_owned();
    for (rust, plain) in [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        if let Some(rest) = out.strip_suffix(rust) {
            out = format!("{rest}{plain}");
        }
    }
    out
}

fn quote_all(names: &[&str]) -> String {
    names
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Removes and returns the `type` of a component table, checking it against `kinds`.
pub(crate) fn take_kind(
    src: &SourceText<'_>,
    at: &KeyPath,
    table: &mut toml::Table,
    what: &str,
    kinds: &[&str],
) -> Result<String, ConfigError> {
    match table.remove("type") {
        None => Err(src.error(
            at,
            format!(
                "missing required key `type`: the kind of {what}, one of {}",
                quote_all(kinds)
            ),
        )),
        Some(toml::Value::String(kind)) if kinds.contains(&kind.as_str()) => Ok(kind),
        Some(toml::Value::String(kind)) => {
            let mut err = src.error(
                &at.key("type"),
                format!(
                    "unknown {what} type `{kind}`; expected one of {}",
                    quote_all(kinds)
                ),
            );
            err.help = did_you_mean(&kind, kinds.iter().copied());
            Err(err)
        }
        Some(other) => Err(src.error(
            &at.key("type"),
            format!("expected a string, found {}", other.type_str()),
        )),
    }
}

/// Removes `key` from `table` and deserializes it, or gives `T::default()` when it is absent.
pub(crate) fn take_key<T: DeserializeOwned + Default>(
    src: &SourceText<'_>,
    at: &KeyPath,
    table: &mut toml::Table,
    key: &str,
) -> Result<T, ConfigError> {
    match table.remove(key) {
        None => Ok(T::default()),
        Some(v) => serde_path_to_error::deserialize(v).map_err(|e| {
            let path = at.key(key).join_serde(e.path());
            explain(src, path, e.inner().message(), &[])
        }),
    }
}

/// Parses `table` (which sits at `at`) with `parse`, going on past mistakes: after an error at
/// one of the table's keys, that key is set aside and the rest parsed again, so that every
/// mistake of a table is reported in one pass rather than one per run. An error at the table
/// itself (a missing key, an unknown kind) ends the search. Returns the value parsed without the
/// keys at fault, if any parse succeeded, and every error found.
pub(crate) fn every_error<T>(
    at: &KeyPath,
    mut table: toml::Table,
    mut parse: impl FnMut(toml::Table) -> Result<T, Vec<ConfigError>>,
) -> (Option<T>, Vec<ConfigError>) {
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut set_aside: Vec<String> = Vec::new();
    // Each round sets at least one key aside, so this ends.
    loop {
        let found = match parse(table.clone()) {
            Ok(value) => return (Some(value), errors),
            Err(found) => found,
        };
        let mut progress = false;
        for e in found {
            // A required key set aside for its bad value is not missing as well, nor one that
            // an unknown key was already taken for a misspelling of (`pth`: did you mean `path`?).
            let follows = e
                .message
                .strip_prefix("missing required key `")
                .and_then(|rest| rest.split('`').next())
                .is_some_and(|k| set_aside.iter().any(|s| s == k) || misspelt(&errors, k));
            if follows || errors.contains(&e) {
                continue;
            }
            if let Some(key) = direct_key(at, &e.key)
                && table.remove(key).is_some()
            {
                set_aside.push(key.to_owned());
                progress = true;
            }
            errors.push(e);
        }
        if !progress {
            return (None, errors);
        }
    }
}

/// Whether one of `errors` already suggests `name` for a misspelt key: then `name` missing is
/// the same mistake, not another one.
pub(crate) fn misspelt(errors: &[ConfigError], name: &str) -> bool {
    let suggestion = format!("did you mean `{name}`?");
    errors
        .iter()
        .any(|e| e.help.as_deref() == Some(suggestion.as_str()))
}

/// The key of the table at `at` that a dotted error key (`source.batch_sise`,
/// `plugin[0].config.x`) goes through, if it goes through one.
fn direct_key<'k>(at: &KeyPath, key: &'k str) -> Option<&'k str> {
    let prefix = at.to_string();
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix.as_str())?.strip_prefix('.')?
    };
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|k| !k.is_empty())
}
