//! A loaded plugin (compiled, linked, its config) and its instances.

use super::PluginError;
use super::cache::{self, Origin};
use super::call::{self, Unfinished};
use super::config::Limits;
use super::engine::{self, PluginEngine};
use super::last_words::last_words;
use super::log_limit::LogLimit;
use super::metadata::{self, Lookup};
use super::store::StoreData;
use super::wasm_file;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Store, Trap};

pub use super::bindings::{BatchResult, Event, Failure, Output};
use super::grants::Grants;
use super::versions::{Exports, Pre};

/// One version of a plugin, ready to instantiate (cheaply: 8 µs for Rust, ~0.5 ms for JS or
/// Python, measured) as often as a trap requires.
pub struct Loaded {
    /// Name, pipeline, path, limits and config: what it was loaded with.
    pub settings: Settings,
    /// SHA-256 of the `.wasm`: which version this is.
    pub hash: String,
    pub origin: Origin,
    pre: Pre,
    engine: Arc<PluginEngine>,
    /// The budget of log lines its instances share (log_limit.rs).
    log_limit: Arc<LogLimit>,
}

/// Everything that identifies a plugin apart from its code.
#[derive(Clone)]
pub struct Settings {
    pub pipeline: Arc<str>,
    pub name: Arc<str>,
    pub path: PathBuf,
    pub limits: Limits,
    pub config_json: String,
    /// `<state_dir>/.plugin-cache`, or None to always compile.
    pub cache_dir: Option<PathBuf>,
    /// What it may reach (HTTP, tables) and its I/O budget.
    pub grants: Grants,
}

/// Why a call failed. Each makes the instance unusable.
#[derive(Debug, Clone)]
pub enum CallError {
    /// Why, in the plugin's words if it said something (last_words.rs), else the trap's name.
    Trap(String),
    Timeout(Duration),
    Memory(u64),
    /// It waited on HTTP or lookups past its I/O budget (`io_budget_ms`): a slow backend, which
    /// says nothing about any one event and may pass later.
    IoBudget(Duration),
}

/// Why a fresh instance is not ready for calls.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The plugin's `init` refused its configuration, in its own words.
    #[error("{0}")]
    Refused(String),
    #[error("did not finish within {} ms (init_timeout_ms)", .0.as_millis())]
    Timeout(Duration),
    /// It trapped or ran out of memory, as [`CallError::message`] says.
    #[error("{0}")]
    Failed(String),
}

/// A failed call, with what the plugin wrote to stdout and stderr during it (its end).
#[derive(Debug, Clone)]
pub struct Failed {
    pub error: CallError,
    pub output: String,
}

impl CallError {
    /// The DLQ record's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Timeout(_) => "timeout",
            CallError::Memory(_) => "memory",
            CallError::IoBudget(_) => "io_budget",
        }
    }

    pub fn message(&self, plugin: &str) -> String {
        match self {
            CallError::Trap(why) => format!("plugin {plugin} trapped: {why}"),
            CallError::Timeout(t) => format!("plugin {plugin} exceeded {} ms", t.as_millis()),
            CallError::Memory(mb) => format!("plugin {plugin} exceeded {mb} MiB"),
            CallError::IoBudget(t) => format!(
                "plugin {plugin} waited on HTTP or lookups for more than its I/O budget of {} ms (io_budget_ms)",
                t.as_millis()
            ),
        }
    }
}

impl Loaded {
    /// Reads (a regular file of bounded size only: wasm_file.rs), compiles (or loads from the
    /// cache) and links the component, then checks that one instance initialises with the
    /// configuration within its init deadline; that instance is returned for first use.
    pub fn load(s: &Settings) -> Result<(Arc<Loaded>, Instance), PluginError> {
        let bytes = wasm_file::read(&s.path).map_err(|e| PluginError::Read {
            name: s.name.to_string(),
            path: s.path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_bytes(s, &bytes)
    }

    pub fn from_bytes(s: &Settings, bytes: &[u8]) -> Result<(Arc<Loaded>, Instance), PluginError> {
        let engine = PluginEngine::shared()?;
        let compile_err = |message: String| PluginError::Compile {
            name: s.name.to_string(),
            path: s.path.display().to_string(),
            message,
        };
        let hash = cache::sha256_hex(bytes);
        let (component, origin) =
            cache::load(&engine, bytes, &hash, s.cache_dir.as_deref()).map_err(compile_err)?;
        let pre = engine
            .linker
            .instantiate_pre(&component)
            .map_err(|e| compile_err(format!("{e:#}")))?;
        let pre = Pre::new(pre).map_err(|e| compile_err(format!("{e:#}")))?;
        let loaded = Arc::new(Loaded {
            settings: s.clone(),
            hash,
            origin,
            pre,
            engine,
            log_limit: Arc::new(LogLimit::new(s.pipeline.clone(), s.name.clone())),
        });
        let instance = loaded.instantiate().map_err(|source| PluginError::Init {
            name: s.name.to_string(),
            source,
        })?;
        Ok((loaded, instance))
    }

    /// A fresh instance, initialised within the init deadline.
    pub fn instantiate(&self) -> Result<Instance, InitError> {
        let data = StoreData::new(
            self.settings.pipeline.clone(),
            self.settings.name.clone(),
            self.settings.limits.memory_mb,
            self.log_limit.clone(),
            self.settings.grants.clone(),
        );
        let mut store = Store::new(&self.engine.engine, data);
        store.limiter(|d| &mut d.limits);
        let deadline = self.settings.limits.init_timeout;
        let io_budget = self.settings.grants.io_budget;
        store.set_epoch_deadline(engine::ticks(deadline));
        if self.settings.grants.any() {
            store.epoch_deadline_callback(work_deadline);
        }
        store.data().stdio.begin("init".into());
        store.data_mut().work_limit = deadline;
        store.data().io.start(deadline + io_budget);
        let pre = &self.pre;
        let config = &self.settings.config_json;
        let clock = store.data().io.clone();
        let started = call::within(
            deadline + io_budget,
            clock.timed(async {
                let bindings = pre.instantiate(&mut store).await?;
                let init = bindings.init(&mut store, config).await?;
                Ok::<_, wasmtime::Error>((bindings, init))
            }),
        );
        let output = store.data().stdio.end(true);
        let failed = |error: CallError| match error {
            CallError::Timeout(t) => InitError::Timeout(t),
            other => InitError::Failed(other.message(&self.settings.name)),
        };
        match started {
            Ok(Ok((bindings, Ok(())))) => Ok(Instance {
                store,
                bindings,
                limits: self.settings.limits,
            }),
            Ok(Ok((_, Err(message)))) => Err(InitError::Refused(message)),
            Ok(Err(e)) => Err(failed(classify(
                &mut store,
                e,
                deadline,
                self.settings.limits.memory_mb,
                &output,
            ))),
            Err(unfinished) => Err(failed(unfinished_error(unfinished, deadline))),
        }
    }
}

/// One instance: its own Store, so its memory and its failure are its own.
pub struct Instance {
    store: Store<StoreData>,
    bindings: Exports,
    limits: Limits,
}

impl Instance {
    /// Runs `process` on a batch within the deadline; `metadata(i)` answers the plugin's
    /// `metadata` calls for event `i`. `call` names the batch in the plugin's log lines (an
    /// event id, or a range of them). On failure, the end of what the plugin wrote comes along.
    pub fn process(
        &mut self,
        events: &[Event<'_>],
        metadata: &Lookup<'_>,
        call: String,
    ) -> Result<BatchResult, Failed> {
        let timeout = self.limits.timeout;
        let bound = timeout + self.store.data().grants.io_budget;
        self.store.set_epoch_deadline(engine::ticks(timeout));
        self.store.data().stdio.begin(call);
        self.store.data_mut().work_limit = timeout;
        self.store.data().io.start(bound);
        let clock = self.store.data().io.clone();
        let bindings = &self.bindings;
        let result = metadata::lend(&mut self.store, metadata, events.len(), |store| {
            call::within(bound, clock.timed(bindings.process(store, events)))
        });
        // A batch that failed runs again, event by event or in halves (runner.rs): what it said
        // is logged then.
        let failed_batch = events.len() > 1 && !matches!(result, Ok(Ok(_)));
        let output = self.store.data().stdio.end(!failed_batch);
        let error = match result {
            Ok(Ok(batch)) => return Ok(batch),
            Ok(Err(e)) => classify(&mut self.store, e, timeout, self.limits.memory_mb, &output),
            // Past `timeout + io_budget` of wall time with at most `timeout` of work (the epoch
            // deadline sees to that): the rest was waiting.
            Err(Unfinished::Elapsed) if !self.store.data().grants.io_budget.is_zero() => {
                CallError::IoBudget(self.store.data().grants.io_budget)
            }
            Err(unfinished) => unfinished_error(unfinished, timeout),
        };
        Err(Failed { error, output })
    }
}

/// The epoch callback of a plugin with grants: the epoch deadline (the call's `timeout`) has
/// passed in wall time, but time spent waiting on HTTP or lookups is not work (io_clock.rs).
fn work_deadline(
    store: wasmtime::StoreContextMut<'_, StoreData>,
) -> wasmtime::Result<wasmtime::UpdateDeadline> {
    let data = store.data();
    match data.io.extend(data.work_limit) {
        Some(left) => Ok(wasmtime::UpdateDeadline::Continue(engine::ticks(left))),
        None => Err(Trap::Interrupt.into()),
    }
}

fn unfinished_error(unfinished: Unfinished, timeout: Duration) -> CallError {
    match unfinished {
        Unfinished::Elapsed => CallError::Timeout(timeout),
        Unfinished::NoRuntime(why) => CallError::Trap(format!("cannot run the call: {why}")),
    }
}

/// Names what went wrong in words a DLQ reader understands: the plugin's own if it wrote any
/// (`output`, the end of its stdout and stderr), else the trap's.
fn classify(
    store: &mut Store<StoreData>,
    e: wasmtime::Error,
    timeout: Duration,
    memory_mb: u64,
    output: &str,
) -> CallError {
    if store.data().limits.exceeded {
        // A refused memory.grow usually surfaces as an abort (`unreachable`) in the guest.
        return CallError::Memory(memory_mb);
    }
    let trap = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => return CallError::Timeout(timeout),
        // Wasm's own stack (wasmtime's `max_wasm_stack`) ran out: deep or endless recursion.
        Some(Trap::StackOverflow) => "stack overflow".to_owned(),
        Some(Trap::MemoryOutOfBounds) if shadow_stack_overflow(store, &e) => {
            "stack overflow (the stack in the plugin's memory ran out)".to_owned()
        }
        Some(Trap::UnreachableCodeReached) => "unreachable".into(),
        Some(Trap::MemoryOutOfBounds) => "out-of-bounds memory access".into(),
        Some(Trap::IntegerDivisionByZero) => "integer division by zero".into(),
        Some(trap) => trap.to_string(),
        // Not a trap: the component broke the canonical ABI (bad string, bad list), or a host
        // resource failed. The instance is as unusable as after a trap.
        None => format!("{e:#}"),
    };
    match last_words(output) {
        // An overflow is named as such even when a runtime said something on the way down.
        Some(words) if trap.starts_with("stack overflow") => {
            CallError::Trap(format!("{trap}: {words}"))
        }
        Some(words) => CallError::Trap(words),
        None => CallError::Trap(trap),
    }
}

/// Whether an out-of-bounds access was the guest's own stack running out. Toolchains that
/// compile to Wasm (Rust, C) keep the locals whose address is taken in a stack in linear memory,
/// at its start, and move a stack pointer (a global) down through it: past its bottom, the
/// pointer wraps around below address 0 to the top of the 4 GiB address space, and the next
/// access through it is out of bounds. A stack pointer there, beyond every memory's end, is that
/// stack overflowing, not a stray pointer into the heap.
fn shadow_stack_overflow(store: &mut Store<StoreData>, e: &wasmtime::Error) -> bool {
    let Some(dump) = e.downcast_ref::<wasmtime::WasmCoreDump>() else {
        return false;
    };
    let memory_end = dump
        .memories()
        .iter()
        .map(|m| m.data_size(&*store) as u64)
        .max()
        .unwrap_or(0);
    dump.globals().iter().any(|g| {
        let ty = g.ty(&*store);
        if ty.mutability() != wasmtime::Mutability::Var {
            return false;
        }
        // A few MiB below zero, as a 32-bit address.
        match g.get(&mut *store) {
            wasmtime::Val::I32(sp) => {
                let sp = sp as u32 as u64;
                sp >= 0xF000_0000 && sp > memory_end
            }
            _ => false,
        }
    })
}
