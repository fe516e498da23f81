//! `weir check FILE|DIR...`: the pre-flight check. It finds what `weir run` would refuse at
//! start, without running anything: mistakes in the host settings (weir.toml, `WEIR_*`
//! variables) and in each pipeline file (every one of each file), and then what each valid
//! pipeline needs to start: its plugins compiled (through the compile cache, as `weir run` does)
//! and initialised with their config and limits, its input file, and where its sink and
//! dead-letter files go. It opens no source or sink for good, takes no lock, and writes nothing
//! but the compile cache. With `--connect` it also reaches the brokers and queues of each valid
//! pipeline (`super::connect`).

use crate::config::component::KeyError;
use crate::config::{ConfigError, ConfigErrors, HostSettings, KeyPath, SourceText};
use crate::exit;
use crate::pipeline::PipelineConfig;
use crate::pipeline::config::read_pipelines;
use crate::pipeline::plugin_stage::PluginSet;
use crate::sink::SinkConfig;
use std::path::{Path, PathBuf};

/// `settings` as loaded (or why they did not load): they are checked too. `connect`: also
/// reach each valid pipeline's brokers and queues (`super::connect`).
pub fn check(
    paths: &[PathBuf],
    settings: Result<HostSettings, ConfigErrors>,
    connect: bool,
) -> i32 {
    let mut errors = Vec::new();
    let state_root = match settings {
        Ok(s) => Some(s.state_dir),
        Err(e) => {
            errors.extend(e.0);
            None
        }
    };
    let (pipelines, found) = read_pipelines(paths);
    errors.extend(found);
    let mut valid = Vec::new();
    for p in &pipelines {
        let mut found = preflight(p, state_root.as_deref());
        let mut reached = Vec::new();
        if found.is_empty() && connect {
            let text = std::fs::read_to_string(&p.file).unwrap_or_default();
            match SourceText::parse(&p.file, &text) {
                Ok(src) => (found, reached) = super::connect::connect(p, &src),
                Err(e) => found.push(e),
            }
        }
        if found.is_empty() {
            valid.push((p, reached));
        }
        errors.extend(found);
    }
    for (p, reached) in valid {
        // What was reached names brokers and queues, which may come from `${VAR}` secrets.
        let said = format!("ok: {} ({})", p.file.display(), p.name);
        println!("{}", crate::redact::redact(&said));
        for r in reached {
            println!("  reached {}", crate::redact::redact(&r));
        }
    }
    if errors.is_empty() {
        return exit::OK;
    }
    let n = errors.len();
    eprintln!("{}", ConfigErrors(errors));
    eprintln!("\n{n} error{} found", if n == 1 { "" } else { "s" });
    exit::FAILED
}

/// What would stop a valid pipeline from starting. `state_root` holds the compile cache (none
/// if the settings did not load: then plugins are compiled without it).
fn preflight(p: &PipelineConfig, state_root: Option<&Path>) -> Vec<ConfigError> {
    let text = std::fs::read_to_string(&p.file).unwrap_or_default();
    let src = match SourceText::parse(&p.file, &text) {
        Ok(src) => src,
        Err(e) => return vec![e],
    };
    let root = KeyPath::default();
    let mut errors = Vec::new();
    let mut refused = |at: KeyPath, found: Result<(), KeyError>| {
        if let Err((key, e)) = found {
            errors.push(src.error(&at.dotted(key), e.to_string()));
        }
    };
    refused(root.key("source"), p.source.preflight());
    for t in &p.targets {
        refused(t.at.clone(), t.sink.preflight());
        if let Some(dlq) = &t.dlq {
            refused(t.at.key("dlq"), dlq.preflight());
        }
    }
    match &p.dlq {
        Some(dlq) => refused(root.key("dlq"), dlq.preflight()),
        None => {
            if let Some(state) = state_root
                && let Err((_, e)) = SinkConfig::default_dlq(&state.join(&p.name)).preflight()
            {
                errors.push(src.error(
                    &root,
                    format!("the default dead-letter file (set `[dlq]` for another): {e}"),
                ));
            }
        }
    }
    // One at a time, so that every plugin at fault is named, each loaded exactly as `weir run`
    // loads it (compiled or from the cache, then an instance initialised).
    let tables = match p.open_tables() {
        Ok(t) => t,
        Err(e) => {
            errors.push(src.error(&root.key("table"), e.to_string()));
            None
        }
    };
    for (i, plugin) in p.plugins.iter().enumerate() {
        if let Err(e) = PluginSet::load(
            &p.name,
            std::slice::from_ref(plugin),
            tables.as_ref(),
            state_root,
            false,
        ) {
            let at = p
                .plugin_key(&e)
                .unwrap_or_else(|| root.key("plugin").index(i));
            errors.push(src.error(&at, e.to_string()));
        }
    }
    errors
}
