//! `weir plugin test PLUGIN.wasm --input events.jsonl [--config JSON]`: runs a plugin on events
//! exactly as a pipeline would (same sandbox, limits, batching and failure isolation) and prints
//! what happens to each event, one JSON line per outcome:
//!
//! ```text
//! {"input":0,"id":"events.jsonl:1","output":{...}}            one line per emitted event
//! {"input":1,"id":"events.jsonl:2","dropped":true}
//! {"input":2,"id":"events.jsonl:3","error":{"kind":"trap","message":"plugin x trapped: boom (lib.rs, line 9)","output":"..."}}
//! ```
//! A failed event's `output` is the end of what the plugin wrote to stdout and stderr in the call
//! that failed on it alone (a traceback, a panic message); what it writes otherwise is logged to
//! stderr, as `weir run` logs it.
//! Exit 0 if every event was processed, 1 if some failed, 2 if the plugin could not be loaded.
//!
//! Grants, as a pipeline gives them: `--allow-http PREFIX` (`--http-method`), `--table NAME=FILE`
//! (`--table-key`); plugin_grants.rs.

pub use super::plugin_grants::GrantArgs;
use super::plugin_grants::grants;
use crate::event::{Envelope, Payload};
use crate::exit;
use crate::pipeline::plugin_stage::{from_wit, metadata, to_wit};
use crate::plugin::config::Limits;
use crate::plugin::instance::{Loaded, Settings};
use crate::plugin::runner::{Outcome, Runner};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct TestArgs {
    pub plugin: PathBuf,
    pub input: PathBuf,
    /// The plugin's config as JSON text (`{}` if none).
    pub config: Option<String>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub batch_size: usize,
    /// Where compiled plugins are cached (the host's state dir); None compiles every time.
    pub state_dir: Option<PathBuf>,
    /// What it may reach: HTTP prefixes, file tables.
    pub grants: GrantArgs,
}

pub fn test(args: &TestArgs) -> i32 {
    let config_json = match args.config.as_deref().map(text_or_file) {
        None => "{}".to_owned(),
        Some(Err(e)) => {
            eprintln!("error: --config: {e}");
            return exit::USAGE;
        }
        Some(Ok(text)) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) if v.is_object() => v.to_string(),
            Ok(_) => {
                eprintln!("error: --config must be a JSON object");
                return exit::USAGE;
            }
            Err(e) => {
                eprintln!("error: --config is not JSON: {e}");
                return exit::USAGE;
            }
        },
    };
    let input = match std::fs::read(&args.input) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.input.display());
            return exit::USAGE;
        }
    };
    let name = args
        .plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let grants = match grants(&args.grants, &name) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let settings = Settings {
        pipeline: "plugin-test".into(),
        name: name.as_str().into(),
        path: args.plugin.clone(),
        limits: Limits::given(args.timeout_ms, None, args.memory_mb),
        config_json,
        cache_dir: args.state_dir.as_ref().map(|d| d.join(".plugin-cache")),
        grants,
    };
    let (loaded, instance) = match Loaded::load(&settings) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let events = envelopes(&args.input, &input);
    let mut runner = Runner::new(loaded, instance);
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let (mut emitted, mut dropped, mut failed) = (0usize, 0usize, 0usize);
    for (chunk_no, chunk) in events.chunks(args.batch_size.max(1)).enumerate() {
        let wit: Vec<_> = chunk.iter().map(to_wit).collect();
        let outcomes = runner.run(&wit, &|j| metadata(&chunk[j]));
        for (j, (event, outcome)) in chunk.iter().zip(outcomes).enumerate() {
            let index = chunk_no * args.batch_size.max(1) + j;
            let mut line = serde_json::Map::new();
            line.insert("input".into(), index.into());
            match outcome {
                Outcome::Emitted(outputs) if outputs.is_empty() => {
                    dropped += 1;
                    line.insert("id".into(), event.id.clone().into());
                    line.insert("dropped".into(), true.into());
                    let _ = writeln!(stdout, "{}", serde_json::Value::Object(line));
                }
                Outcome::Emitted(outputs) => {
                    let n = outputs.len();
                    for (k, out) in outputs.into_iter().enumerate() {
                        let e = match from_wit(event, out, n, k) {
                            Ok(e) => e,
                            Err(why) => {
                                failed += 1;
                                let mut l = line.clone();
                                l.insert("id".into(), event.id.clone().into());
                                l.insert(
                                    "error".into(),
                                    serde_json::json!({"kind": "malformed", "message": why}),
                                );
                                let _ = writeln!(stdout, "{}", serde_json::Value::Object(l));
                                break;
                            }
                        };
                        emitted += 1;
                        let mut l = line.clone();
                        l.insert("id".into(), e.id.clone().into());
                        if let Some(key) = &e.key {
                            l.insert("key".into(), key.clone().into());
                        }
                        l.insert("output".into(), e.data.to_value());
                        let _ = writeln!(stdout, "{}", serde_json::Value::Object(l));
                    }
                }
                Outcome::Failed {
                    kind,
                    message,
                    output,
                } => {
                    failed += 1;
                    line.insert("id".into(), event.id.clone().into());
                    let mut error = serde_json::json!({"kind": kind, "message": message});
                    if !output.is_empty() {
                        error["output"] = output.into();
                    }
                    line.insert("error".into(), error);
                    let _ = writeln!(stdout, "{}", serde_json::Value::Object(line));
                }
            }
        }
    }
    if let Err(e) = stdout.flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: {e}");
        return exit::FAILED;
    }
    eprintln!(
        "{} events in: {emitted} emitted, {dropped} dropped, {failed} failed",
        events.len()
    );
    if failed > 0 { exit::FAILED } else { exit::OK }
}

/// An argument that is not JSON and names no file that can be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
struct Unreadable {
    path: String,
    #[source]
    source: std::io::Error,
}

/// The argument if it looks like JSON, else the contents of the file it names.
fn text_or_file(arg: &str) -> Result<String, Unreadable> {
    if arg.trim_start().starts_with('{') {
        return Ok(arg.to_owned());
    }
    std::fs::read_to_string(arg).map_err(|source| Unreadable {
        path: arg.to_owned(),
        source,
    })
}

/// One envelope per line, as the file source would make them.
fn envelopes(path: &Path, input: &[u8]) -> Vec<Envelope> {
    let now = crate::event::now_rfc3339();
    let name = path.display().to_string();
    input
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let mut meta = serde_json::Map::new();
            meta.insert("path".into(), name.clone().into());
            meta.insert("line".into(), (i + 1).into());
            Envelope {
                id: format!("{name}:{}", i + 1),
                source: "file",
                key: None,
                time: now.clone(),
                received_at: now.clone(),
                data: Payload::decode(line).payload,
                meta,
            }
        })
        .collect()
}
