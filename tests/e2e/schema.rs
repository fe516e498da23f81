//! `weir schema pipeline`: the pipeline file's JSON Schema, from the real binary. The copy in
//! docs/ is the binary's output; every example pipeline of the repository passes it; mistakes
//! `weir check` reports as unknown keys or wrong types fail it.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What `weir schema pipeline` prints.
fn schema_text() -> String {
    let out = weir().args(["schema", "pipeline"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8(out.stdout).expect("the schema is UTF-8")
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&schema_text()).expect("the schema is JSON");
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("not a valid JSON Schema: {e}"))
}

/// A pipeline file as JSON, as an editor's TOML language server sees it.
fn as_json(toml_text: &str, what: &str) -> Value {
    let table: toml::Table =
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("{what} is not TOML: {e}"));
    serde_json::to_value(table).unwrap()
}

/// Why the schema refuses `pipeline`, one line per error (`/source: ...`); empty if it passes.
fn refusals(v: &jsonschema::Validator, pipeline: &Value) -> String {
    v.iter_errors(pipeline)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_checked_in_schema_is_what_weir_prints() {
    let printed = schema_text();
    let file = root().join("docs/pipeline.schema.json");
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        checked_in == printed,
        "{} differs from `weir schema pipeline` (a config type changed): regenerate it with\n  \
         cargo run -p weir -- schema pipeline > docs/pipeline.schema.json",
        file.display()
    );
}

/// The repository's example pipelines: pipelines/*.toml, and the README's examples that are
/// whole pipelines (a `[source]` and a `[sink]` or `[[target]]`; those without `[pipeline]` get
/// one, as the README's sections leave it out).
fn example_pipelines() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        // Beside the pipelines are their tests (`weir test`), which are not pipelines.
        let test = path.to_string_lossy().ends_with(".test.toml");
        if path.extension().is_some_and(|e| e == "toml") && !test {
            found.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    for readme in ["README.md", "plugins/README.md"] {
        let text = std::fs::read_to_string(root().join(readme)).unwrap();
        for (i, block) in text.split("```toml\n").skip(1).enumerate() {
            let block = &block[..block.find("```").unwrap_or(block.len())];
            let whole = block.contains("[source]")
                && (block.contains("[sink]") || block.contains("[[target]]"));
            if !whole {
                continue;
            }
            let text = match block.contains("[pipeline]") {
                true => block.to_owned(),
                false => format!("[pipeline]\nname = \"example\"\n{block}"),
            };
            found.push((format!("{readme}, TOML block {}", i + 1), text));
        }
    }
    found
}

#[test]
fn every_example_pipeline_passes_the_schema() {
    let v = validator();
    let examples = example_pipelines();
    assert!(
        examples.len() >= 5,
        "the examples were not found: {examples:?}"
    );
    for (what, text) in &examples {
        let why = refusals(&v, &as_json(text, what));
        assert!(why.is_empty(), "{what} fails the schema:\n{why}\n{text}");
    }
}

#[test]
fn unknown_keys_wrong_types_and_missing_sections_fail_the_schema() {
    let v = validator();
    let good = "[pipeline]\nname = \"p\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n[[plugin]]\npath = \"x.wasm\"\ntimeout_ms = 100\n[sink]\ntype = \"stdout\"\n";
    assert_eq!(refusals(&v, &as_json(good, "good")), "");
    // (what, change to the good file, where the schema says the mistake is)
    let cases = [
        (
            "a misspelt source key",
            good.replace("path = \"in.jsonl\"", "pth = \"in.jsonl\""),
            "/source",
        ),
        (
            "a string for a number",
            good.replace("timeout_ms = 100", "timeout_ms = \"100\""),
            "/plugin/0/timeout_ms",
        ),
        (
            "a misspelt plugin key",
            good.replace("timeout_ms = 100", "timeout_msec = 100"),
            "/plugin/0",
        ),
        (
            "an unknown source type",
            good.replace("type = \"file\"", "type = \"fiel\""),
            "/source",
        ),
        (
            "a misspelt section",
            good.replace("[source]", "[sorce]"),
            "",
        ),
        (
            "no sink",
            good.replace("[sink]\ntype = \"stdout\"\n", ""),
            "",
        ),
        (
            "a secret written in the file",
            good.replace(
                "[sink]\ntype = \"stdout\"",
                "[sink]\ntype = \"rabbitmq\"\nurl = \"amqp://u@h\"\nexchange = \"e\"\nrouting_key = \"k\"\npassword = \"hunter2\"",
            ),
            "/sink",
        ),
        (
            "both encoding and template",
            good.replace(
                "type = \"stdout\"",
                "type = \"stdout\"\nencoding = \"envelope\"\ntemplate = \"<$.id>\"",
            ),
            "/sink",
        ),
        (
            "an out-of-range limit",
            good.replace("timeout_ms = 100", "timeout_ms = 0"),
            "/plugin/0/timeout_ms",
        ),
    ];
    for (what, text, at) in cases {
        let errors: Vec<String> = v
            .iter_errors(&as_json(&text, what))
            .map(|e| e.instance_path().to_string())
            .collect();
        assert!(
            errors.iter().any(|p| p == at),
            "{what}: expected an error at {at:?}, got {errors:?}\n{text}"
        );
    }
    // The repository's files of mistakes that are about keys and types.
    for name in [
        "unknown-key-near-miss",
        "wrong-type",
        "unknown-section",
        "unknown-source-type",
        "unknown-sink-key",
        "plugin-unknown-key",
        "filter-unknown-key",
        "ordering-unknown-key",
        "missing-type",
        "missing-sink",
        "retry-bad-on-failure",
        "bad-enum-value",
    ] {
        let path = root().join(format!("host/tests/config-errors/{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !v.is_valid(&as_json(&text, name)),
            "{} passes the schema",
            path.display()
        );
    }
}
