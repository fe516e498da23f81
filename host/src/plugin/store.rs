//! What each plugin instance's Store holds: its memory limit, a WASI context that grants nothing
//! but captured stdout and stderr, where its `log` calls go, what its `metadata` calls answer,
//! and what its grants let it reach (HTTP, lookup tables), on the clock of the call under way.

use super::grants::Grants;
use super::io_clock::IoClock;
use super::log_limit::LogLimit;
use super::memory::MemoryLimit;
use super::metadata::{Lends, Lent};
use super::stdio::Capture;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub struct StoreData {
    pub limits: MemoryLimit,
    wasi: WasiCtx,
    /// WASI's resources (streams, pollables) and wasi:http's (requests, responses).
    pub(crate) table: ResourceTable,
    /// `pipeline` and `plugin` fields of the plugin's log lines.
    pub pipeline: Arc<str>,
    pub plugin: Arc<str>,
    /// What it writes to stdout and stderr, and its `log` calls.
    pub stdio: Capture,
    /// What `metadata` answers during a `process` call.
    pub metadata: Lent,
    /// What the plugin may reach: shared by every instance of the plugin.
    pub grants: Grants,
    /// The call under way: its deadline for requests, its time spent waiting (io_clock.rs).
    pub io: IoClock,
    /// The call under way's `timeout` (or `init_timeout`): how much work it may do.
    pub work_limit: std::time::Duration,
    /// wasi:http: its context, and hooks that send through the plugin's `http` grant.
    http: WasiHttpCtx,
    http_hooks: super::http::wasi::Hooks,
}

impl StoreData {
    pub fn new(
        pipeline: Arc<str>,
        plugin: Arc<str>,
        memory_mb: u64,
        limit: Arc<LogLimit>,
        grants: Grants,
    ) -> Self {
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
        let io = IoClock::default();
        let http_hooks =
            super::http::wasi::Hooks::new(grants.http.clone(), plugin.clone(), io.clone());
        StoreData {
            limits: MemoryLimit::new(memory_mb),
            wasi,
            table: ResourceTable::new(),
            pipeline,
            plugin,
            stdio,
            metadata: Lent::default(),
            grants,
            io,
            work_limit: std::time::Duration::ZERO,
            http: WasiHttpCtx::new(),
            http_hooks,
        }
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

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl Lends for StoreData {
    fn lent(&mut self) -> &mut Lent {
        &mut self.metadata
    }
}
