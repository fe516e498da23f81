//! Compiled components on disk. Compiling a component takes from milliseconds (Rust) to seconds
//! (JS and Python runtimes: ~9 s measured); loading a compiled artifact takes 0.3–20 ms. The key
//! is the component's SHA-256 and the engine's fingerprint, so a changed file or a different
//! wasmtime/settings never loads a stale artifact.

use super::engine::PluginEngine;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// Where the component came from this time (logged, and checked by tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    Cached,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads the component from `dir` if it was compiled before, else compiles it and stores it
/// there. A cache that cannot be read or written only costs time: it is logged and bypassed.
pub(crate) fn load(
    engine: &PluginEngine,
    bytes: &[u8],
    hash: &str,
    dir: Option<&Path>,
) -> Result<(Component, Origin), String> {
    let file = dir.map(|d| d.join(format!("{hash}-{}.cwasm", engine.fingerprint)));
    if let Some(file) = &file
        && file.is_file()
    {
        // SAFETY: deserializing runs native code produced by wasmtime. The file is ours: it is
        // written below (atomically, by rename) under the host's state directory, and its name
        // binds it to this engine's settings. Whoever can write the state directory can
        // already change what weir runs.
        match unsafe { Component::deserialize_file(&engine.engine, file) } {
            Ok(c) => return Ok((c, Origin::Cached)),
            Err(e) => tracing::warn!(file = %file.display(), error = %e,
                    "cached plugin artifact is unusable; compiling again"),
        }
    }
    let compiled = engine
        .engine
        .precompile_component(bytes)
        .map_err(|e| one_line(&format!("{e:#}")))?;
    if let Some(file) = &file
        && let Err(e) = store(file, &compiled)
    {
        tracing::warn!(file = %file.display(), error = %e, "cannot cache the compiled plugin");
    }
    // SAFETY: `compiled` was produced just now by this engine.
    let component = unsafe { Component::deserialize(&engine.engine, &compiled) }
        .map_err(|e| format!("{e:#}"))?;
    Ok((component, Origin::Compiled))
}

/// wasmtime's parse errors can run over many lines (byte dumps); a log line and a CLI error
/// need the first.
fn one_line(message: &str) -> String {
    match message.split_once('\n') {
        Some((first, _)) => format!("{} ...", first.trim_end()),
        None => message.to_owned(),
    }
}

fn store(file: &PathBuf, compiled: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write aside, then rename: a crash or a concurrent loader never sees half an artifact.
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, compiled)?;
    std::fs::rename(&tmp, file)
}
