//! What each plugin instance's Store holds: its memory limit, a WASI context that grants nothing
//! but captured stdout and stderr, where its `log` calls go and what its `metadata` calls answer.

use super::instance::weir::plugin::host::{Host, Level};
use super::log_limit::LogLimit;
use super::metadata::Lent;
use super::stdio::Capture;
use std::sync::Arc;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub struct StoreData {
    pub limits: MemoryLimit,
    wasi: WasiCtx,
    table: ResourceTable,
    /// `pipeline` and `plugin` fields of the plugin's log lines.
    pub pipeline: Arc<str>,
    pub plugin: Arc<str>,
    /// What it writes to stdout and stderr, and its `log` calls.
    pub stdio: Capture,
    /// What `metadata` answers during a `process` call.
    pub metadata: Lent,
}

impl StoreData {
    pub fn new(pipeline: Arc<str>, plugin: Arc<str>, memory_mb: u64, limit: Arc<LogLimit>) -> Self {
        // Nothing is granted: no preopened directories, no environment, no arguments, no network
        // (sockets are denied by default and switched off here too), no stdin. stdout and stderr
        // go to the host's log and explain traps (stdio.rs). Clocks and random are available:
        // language runtimes need them to start.
        let stdio = Capture::new(pipeline.clone(), plugin.clone(), limit);
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(stdio.stdout())
            .stderr(stdio.stderr())
            .build();
        StoreData {
            limits: MemoryLimit::new(memory_mb),
            wasi,
            table: ResourceTable::new(),
            pipeline,
            plugin,
            stdio,
            metadata: Lent::default(),
        }
    }
}

/// Caps the total linear memory of an instance (all its memories together: JS and Python
/// runtimes may have more than one). A refused `memory.grow` returns -1 to the guest, which
/// usually aborts; `exceeded` lets the host say "exceeded 64 MiB" instead of "unreachable".
pub struct MemoryLimit {
    pub max_bytes: usize,
    total: usize,
    pub exceeded: bool,
}

impl MemoryLimit {
    fn new(memory_mb: u64) -> Self {
        MemoryLimit {
            max_bytes: (memory_mb as usize).saturating_mul(1 << 20),
            total: 0,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(desired.saturating_sub(current));
        if total > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real runtime's needs.
        Ok(desired <= 1_000_000)
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

// The shared types interface has no functions, but bindgen still asks for its (empty) host trait.
impl super::instance::weir::plugin::types::Host for StoreData {}

impl Host for StoreData {
    fn log(&mut self, level: Level, message: String) {
        self.stdio.log(level, &message);
    }

    fn metadata(&mut self, input: u32) -> Vec<(String, String)> {
        self.metadata.get(input)
    }
}
