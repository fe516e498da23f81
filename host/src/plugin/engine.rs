//! One wasmtime Engine for the whole process, shared by every pipeline and plugin.
//!
//! One engine means one epoch counter, so one ticker thread serves every deadline, and one set of
//! settings, so one cache key. A deadline is enforced twice, because a plugin can be late in two
//! ways: running Wasm is stopped by epoch interruption (not fuel: measured here, fuel costs
//! 27–37% of the throughput and epochs 18–22%, DESIGN.md "Plugins"); a plugin waiting in a host
//! call (a WASI sleep, a clock subscription, a poll) runs no Wasm that could check the epoch, so
//! calls are async and a wall-clock timer drops the waiting call (call.rs).

use super::PluginError;
use super::bindings::{v1, v2, v3};
use super::store::StoreData;
use crate::config::host::PluginProfiler;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the shared ticker advances the epoch: the granularity of every deadline. Finer costs
/// a thread wake-up more often; coarser makes a 10 ms timeout imprecise.
pub const TICK: Duration = Duration::from_millis(5);

/// The host setting `plugin_profiler`, read when the engine is created.
static PROFILER: OnceLock<PluginProfiler> = OnceLock::new();

/// Applies the host setting `plugin_profiler`; call before the first plugin loads (later calls,
/// or calls after the engine exists, change nothing).
pub fn set_profiler(profiler: PluginProfiler) {
    let _ = PROFILER.set(profiler);
}

/// Cleared only by [`measure_without_deadlines`].
static DEADLINES: AtomicBool = AtomicBool::new(true);

/// Compiles plugins without epoch checks, so no call can be stopped at its deadline: for the
/// plugin benchmark's `--no-deadline` run alone, which measures what deadlines cost. Nothing a
/// user sets (pipeline, settings, command line) reaches it. Call before the first plugin loads.
#[doc(hidden)]
pub fn measure_without_deadlines() {
    DEADLINES.store(false, Ordering::Relaxed);
}

pub struct PluginEngine {
    pub engine: Engine,
    pub linker: Linker<StoreData>,
    /// Identifies the engine's settings and wasmtime version: part of the cache key, so that a
    /// compiled artifact is only ever loaded by an engine that can run it.
    pub fingerprint: String,
}

impl PluginEngine {
    /// The process-wide engine, created (with its ticker) on first use.
    pub fn shared() -> Result<Arc<PluginEngine>, PluginError> {
        static SHARED: OnceLock<Result<Arc<PluginEngine>, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                PluginEngine::new()
                    .map(Arc::new)
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
            .map_err(PluginError::Engine)
    }

    fn new() -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(DEADLINES.load(Ordering::Relaxed));
        // A 32-bit memory has its whole 4 GiB reserved (wasmtime's default), so it never needs to
        // move; saying so lets compiled code keep the memory's base in a register across loops.
        config.memory_may_move(false);
        // A trap comes with handles on the instance's globals and memories (no copy), so that a
        // stack overflow in linear memory can be told from a stray pointer (instance.rs).
        config.coredump_on_trap(true);
        if PROFILER.get() == Some(&PluginProfiler::Perfmap) {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;

        let mut linker = Linker::<StoreData>::new(&engine);
        // WASI is linked because every toolchain's output imports it (even a Rust guest imports
        // clocks, random and stdio); the context in each Store grants nothing but stdout and
        // stderr, which the host captures (store.rs, stdio.rs). Its async flavour: a plugin
        // blocked in a WASI wait yields to the caller, whose deadline can then end it.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // wasi:http, for toolchains whose HTTP client speaks it: every request goes through the
        // plugin's `http` grant, and without one is denied (plugin/http/wasi.rs).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        // Every contract version: a component built against @0.1.0 imports its host interface;
        // one built against @0.3.0 imports @0.2.0's (bound here by v2) and its own `types`.
        v2::Transform::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |s| s)?;
        v3::weir::plugin0_3_0::types::add_to_linker::<StoreData, HasSelf<StoreData>>(
            &mut linker,
            |s| s,
        )?;
        v1::Transform::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |s| s)?;

        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let fingerprint = format!("{:016x}", h.finish());

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("weir-plugin-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })?;
        Ok(PluginEngine {
            engine,
            linker,
            fingerprint,
        })
    }
}

/// The epoch deadline, in ticks, for a call that may take `timeout`. One extra tick because the
/// current tick is already partly over.
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_micros() / TICK.as_micros()).max(1) as u64 + 1
}
