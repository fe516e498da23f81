//! Wasm plugins: transforms and enrichments written in any language that builds a WIT component
//! for the `weir:plugin` contract (`wit/plugin.wit`).
//!
//! ```text
//! config.rs   the `[[plugin]]` table
//! wasm_file.rs reading a `.wasm`: a regular file of bounded size only
//! engine.rs   one shared wasmtime Engine, its epoch ticker and the Linker (WASI with nothing granted)
//! cache.rs    compiled components on disk, keyed by content hash and engine settings
//! call.rs     running a call to its end within a wall-clock deadline, waits in host calls included
//! limits.rs   per-Store state: the memory limit, the WASI context, the `log` import
//! stdio.rs    what a plugin writes to stdout and stderr: logged, and its end kept per call
//! log_limit.rs the cap on a plugin's log lines
//! last_words.rs why a plugin failed, in its own words (a traceback, a panic message)
//! metadata.rs the `metadata` import: an event's metadata, built only when a plugin asks
//! instance.rs the bindings; a loaded plugin (InstancePre + config) and its instances
//! runner.rs   one plugin's batch call, and isolating the event that traps or is too slow
//! reload.rs   the version to run now; watching the `.wasm` and preparing a new one off the hot path
//! stage.rs    the pipeline's plugin set, and each lane's stage: plugins in order over a batch
//! ```

pub mod cache;
pub mod call;
pub mod config;
pub mod engine;
pub mod instance;
pub mod last_words;
pub mod limits;
pub mod log_limit;
pub mod metadata;
pub mod reload;
pub mod runner;
pub mod stage;
pub mod stdio;
pub mod wasm_file;

pub use config::PluginConfig;
pub use stage::{PluginSet, PluginStage};

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
    #[error("plugin {name}: init failed: {message}")]
    Init { name: String, message: String },
    #[error("plugin engine: {0}")]
    Engine(String),
}
