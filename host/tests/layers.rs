//! The crate's layers depend one way: a module may use modules of its own layer or below, never
//! above. This reads every `crate::` path in `host/src` and fails, naming file, line and both
//! layers, on one that points up. The layers, from the bottom (README, Layout):
//!
//! 1. model: the event, DLQ records, configuration reading and host settings, exit codes, files
//!    replaced durably, shutdown, logging, retry backoff, masking secrets in output
//! 2. pattern (its own crate), templates, observation (counters, status, tap)
//! 3. the plugin sandbox, sources, sinks, and the clients they share (Kafka, SQS, AWS
//!    credentials, HTTP)
//! 4. the pipeline: its file's model and its runtime (router, lanes, delivery, the plugin stage)
//! 5. the service and its admin API
//! 6. the commands
//! 7. `main.rs`
//!
//! A new top-level module must be given a layer here: the test fails until it is.

use std::path::{Path, PathBuf};

/// Module (its path from the crate root) → layer. The longest prefix that matches decides.
const LAYERS: &[(&str, u8)] = &[
    ("event", 1),
    ("dlq_record", 1),
    ("config", 1),
    ("exit", 1),
    ("durable", 1),
    ("shutdown", 1),
    ("logging", 1),
    ("backoff", 1),
    ("redact", 1),
    ("template", 2),
    ("observe", 2),
    ("pattern", 2),
    ("plugin", 3),
    ("source", 3),
    ("sink", 3),
    ("kafka", 3),
    ("http_client", 3),
    ("sqs", 3),
    ("nats", 3),
    ("rabbitmq", 3),
    ("aws_credentials", 3),
    ("lookup", 3),
    ("pipeline", 4),
    ("service", 5),
    ("admin", 5),
    ("commands", 6),
];

const NAMES: [&str; 8] = [
    "",
    "model",
    "patterns, templates, observation",
    "plugin sandbox, sources, sinks",
    "pipeline",
    "service, admin",
    "commands",
    "main",
];

fn layer(module: &[String]) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(prefix, _)| {
            let parts: Vec<&str> = prefix.split("::").collect();
            parts.len() <= module.len() && parts.iter().zip(module).all(|(a, b)| a == b)
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(_, l)| l)
}

/// `host/src/a/b.rs` → `[a, b]`; `a/mod.rs` → `[a]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module paths a line names after `crate::`: `crate::a::b::C` → `[a, b, C]`, and each
/// member of a group, `crate::a::{b, c::d}` → `[a, b]`, `[a, c, d]`.
fn crate_paths(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        // `weir_crate::` or `$crate::` are not this crate's paths.
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        found.extend(paths_at(rest, Vec::new()));
    }
    found
}

fn paths_at(text: &str, prefix: Vec<String>) -> Vec<Vec<String>> {
    let mut path = prefix;
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            if let Some(group) = rest.strip_prefix('{') {
                let close = group.find('}').unwrap_or(group.len());
                return group[..close]
                    .split(',')
                    .flat_map(|member| paths_at(member.trim(), path.clone()))
                    .collect();
            }
            return vec![path];
        }
        path.push(rest[..end].to_owned());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(next) => rest = next,
            None => return vec![path],
        }
    }
}

#[test]
fn no_module_uses_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module.is_empty() || module == ["lib"] || module == ["main"] {
            continue;
        }
        let shown = file.strip_prefix(&src).unwrap().display().to_string();
        let Some(own) = layer(&module) else {
            wrong.push(format!(
                "{shown}: module `{}` has no layer: give it one in host/tests/layers.rs",
                module.join("::")
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for path in crate_paths(code) {
                let Some(theirs) = layer(&path) else { continue };
                if theirs > own {
                    wrong.push(format!(
                        "{shown}:{}: `{}` ({}, layer {own}) uses `crate::{}` ({}, layer {theirs})",
                        n + 1,
                        module.join("::"),
                        NAMES[own as usize],
                        path.join("::"),
                        NAMES[theirs as usize],
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run up a layer:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn paths_are_read_as_written() {
    let p = |s: &str| -> Vec<String> { crate_paths(s).into_iter().map(|p| p.join("::")).collect() };
    assert_eq!(p("use crate::a::b::C;"), ["a::b::C"]);
    assert_eq!(p("use crate::a::{b, c::d};"), ["a::b", "a::c::d"]);
    assert_eq!(p("x: crate::a::B, y: crate::c::D"), ["a::B", "c::D"]);
    assert!(p("$crate::a::b").is_empty());
    assert_eq!(layer(&["pipeline".into(), "x".into()]), Some(4));
    assert_eq!(layer(&["nothing".into()]), None);
}
