//! Wasm plugins: transforms and enrichments written in any language that builds a WIT component
//! for the `weir:plugin` contract (`wit/plugin.wit`).
//!
//! ```text
//! config.rs   the `[[plugin]]` table
//! wasm_file.rs reading a `.wasm`: a regular file of bounded size only
//! engine.rs   one shared wasmtime Engine, its epoch ticker and the Linker (WASI with nothing granted)
//! cache.rs    compiled components on disk, keyed by content hash and engine settings
//! call.rs     running a call to its end within a wall-clock deadline, waits in host calls included
//! bindings.rs the `bindgen!` of the WIT contract (@0.3.0, @0.2.0 and @0.1.0), alone
//! packed.rs   @0.3.0's packed batches: events packed for the call, outputs read back and checked
//! store.rs    per-Store state: the memory limit, the WASI context, the imports' state
//! memory.rs   the cap on an instance's linear memory
//! grants.rs   what a plugin may reach (HTTP, lookup tables), shared by its instances
//! http/       the `http` grant: its client, limits and cache, for `http` and `wasi:http` calls
//! tables.rs   the `lookup` import: a plugin's lookups, checked against its `tables` grant
//! requests.rs the `http` import: a plugin's requests, through its `http` grant
//! io_clock.rs telling a call's work (bound by `timeout_ms`) from its waiting (`io_budget_ms`)
//! imports.rs  the host functions a plugin imports, bound to the files that implement them
//! stdio.rs    what a plugin writes to stdout and stderr and its `log` import: logged, and its end kept per call
//! log_limit.rs the cap on a plugin's log lines
//! last_words.rs why a plugin failed, in its own words (a traceback, a panic message)
//! metadata.rs the `metadata` import: an event's metadata, built only when a plugin asks
//! versions.rs the contract version a component was built against, and its calls
//! instance.rs a loaded plugin (InstancePre + config) and its instances
//! runner.rs   one plugin's batch call, and isolating the event that traps or is too slow
//! reload.rs   the version to run now; watching the `.wasm` and preparing a new one off the hot path
//! ```

pub(crate) mod bindings;
pub(crate) mod cache;
pub(crate) mod call;
pub mod config;
pub mod engine;
pub mod grants;
pub mod http;
mod imports;
pub mod instance;
pub(crate) mod io_clock;
pub(crate) mod last_words;
pub(crate) mod log_limit;
pub(crate) mod memory;
pub(crate) mod metadata;
pub(crate) mod packed;
pub(crate) mod reload;
pub(crate) mod requests;
pub mod runner;
pub(crate) mod stdio;
pub(crate) mod store;
pub(crate) mod tables;
mod versions;
pub(crate) mod wasm_file;

pub use config::PluginConfig;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {name}: cannot read {path}: {message}")]
    Read {
        name: String,
        path: String,
        message: String,
    },
    #[error("plugin {name}: {path} is not a valid weir plugin component: {message}")]
    Compile {
        name: String,
        path: String,
        message: String,
    },
    #[error("plugin {name}: init failed: {source}")]
    Init {
        name: String,
        #[source]
        source: instance::InitError,
    },
    /// Its grants could not be set up (a CA file that cannot be read, a secret not set).
    #[error("plugin {name}: {message}")]
    Grant { name: String, message: String },
    #[error("plugin engine: {0}")]
    Engine(String),
}

/// The fault fixture plugin (plugins/fixtures/faults), which the unit tests of the plugin host
/// and of the pipeline's plugin stage run.
#[cfg(test)]
pub(crate) fn faults_fixture() -> std::path::PathBuf {
    fixture("faults")
}

/// A fixture plugin, plugins/fixtures/NAME/NAME.wasm, built by scripts/build-plugins.sh.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../plugins/fixtures/{name}/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    path
}
