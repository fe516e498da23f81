//! A loaded plugin (compiled, linked, its config) and its instances.

use super::PluginError;
use super::cache::{self, Origin};
use super::engine::{self, PluginEngine};
use super::limits::StoreData;
use super::metadata::{self, Lookup};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Store, Trap};

// Borrowing: the events a call lowers into the guest (`Event<'_>`) are read from the pipeline's
// envelopes in place, not copied into owned strings first.
wasmtime::component::bindgen!({
    world: "transform",
    path: "../wit",
    ownership: Borrowing { duplicate_if_necessary: true },
});

pub use self::weir::plugin::types::Output;

/// Instantiation and `init` get at least this long: a language runtime's start-up is not the
/// per-batch work that `timeout_ms` is about, and a tight timeout must not make loading flaky.
const MIN_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// One version of a plugin, ready to instantiate (cheaply: 8 µs for Rust, ~0.5 ms for JS or
/// Python, measured) as often as a trap requires.
pub struct Loaded {
    /// Name, pipeline, path, limits and config: what it was loaded with.
    pub settings: Settings,
    /// SHA-256 of the `.wasm`: which version this is.
    pub hash: String,
    pub origin: Origin,
    pre: TransformPre<StoreData>,
    engine: Arc<PluginEngine>,
}

/// Everything that identifies a plugin apart from its code.
#[derive(Clone)]
pub struct Settings {
    pub pipeline: Arc<str>,
    pub name: Arc<str>,
    pub path: PathBuf,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub config_json: String,
    /// `<state_dir>/.plugin-cache`, or None to always compile.
    pub cache_dir: Option<PathBuf>,
}

/// Why a call failed. Each makes the instance unusable.
#[derive(Debug, Clone)]
pub enum CallError {
    Trap(String),
    Timeout(Duration),
    Memory(u64),
}

impl CallError {
    /// The DLQ record's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Timeout(_) => "timeout",
            CallError::Memory(_) => "memory",
        }
    }

    pub fn message(&self, plugin: &str) -> String {
        match self {
            CallError::Trap(why) => format!("plugin {plugin} trapped: {why}"),
            CallError::Timeout(t) => format!("plugin {plugin} exceeded {} ms", t.as_millis()),
            CallError::Memory(mb) => format!("plugin {plugin} exceeded {mb} MiB"),
        }
    }
}

impl Loaded {
    /// Reads, compiles (or loads from the cache) and links the component, then checks that one
    /// instance initialises with the configuration; that instance is returned for first use.
    pub fn load(s: &Settings) -> Result<(Arc<Loaded>, Instance), PluginError> {
        let bytes = std::fs::read(&s.path).map_err(|e| PluginError::Read {
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
        let pre = TransformPre::new(pre).map_err(|e| compile_err(format!("{e:#}")))?;
        let loaded = Arc::new(Loaded {
            settings: s.clone(),
            hash,
            origin,
            pre,
            engine,
        });
        let instance = loaded.instantiate().map_err(|e| PluginError::Init {
            name: s.name.to_string(),
            message: e,
        })?;
        Ok((loaded, instance))
    }

    /// A fresh instance, initialised. The error is the plugin's own `init` message, or why the
    /// instance could not be created.
    pub fn instantiate(&self) -> Result<Instance, String> {
        let data = StoreData::new(
            self.settings.pipeline.clone(),
            self.settings.name.clone(),
            self.settings.memory_mb,
        );
        let mut store = Store::new(&self.engine.engine, data);
        store.limiter(|d| &mut d.limits);
        store.set_epoch_deadline(engine::ticks(self.settings.timeout.max(MIN_INIT_TIMEOUT)));
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.describe(&store, e, MIN_INIT_TIMEOUT))?;
        match bindings.call_init(&mut store, &self.settings.config_json) {
            Ok(Ok(())) => Ok(Instance {
                store,
                bindings,
                timeout: self.settings.timeout,
                memory_mb: self.settings.memory_mb,
            }),
            Ok(Err(message)) => Err(message),
            Err(e) => Err(self.describe(&store, e, MIN_INIT_TIMEOUT)),
        }
    }

    fn describe(&self, store: &Store<StoreData>, e: wasmtime::Error, timeout: Duration) -> String {
        classify(
            store,
            e,
            timeout.max(self.settings.timeout),
            self.settings.memory_mb,
        )
        .message(&self.settings.name)
    }
}

/// One instance: its own Store, so its memory and its failure are its own.
pub struct Instance {
    store: Store<StoreData>,
    bindings: Transform,
    timeout: Duration,
    memory_mb: u64,
}

impl Instance {
    /// Runs `process` on a batch within the deadline; `metadata(i)` answers the plugin's
    /// `metadata` calls for event `i`.
    pub fn process(
        &mut self,
        events: &[Event<'_>],
        metadata: &Lookup<'_>,
    ) -> Result<BatchResult, CallError> {
        self.store.set_epoch_deadline(engine::ticks(self.timeout));
        let bindings = &self.bindings;
        metadata::lend(&mut self.store, metadata, events.len(), |store| {
            bindings.call_process(store, events)
        })
        .map_err(|e| classify(&self.store, e, self.timeout, self.memory_mb))
    }
}

/// Names what went wrong in words a DLQ reader understands.
fn classify(
    store: &Store<StoreData>,
    e: wasmtime::Error,
    timeout: Duration,
    memory_mb: u64,
) -> CallError {
    if store.data().limits.exceeded {
        // A refused memory.grow usually surfaces as an abort (`unreachable`) in the guest.
        return CallError::Memory(memory_mb);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout(timeout),
        Some(Trap::UnreachableCodeReached) => CallError::Trap("unreachable".into()),
        Some(Trap::StackOverflow) => CallError::Trap("stack overflow".into()),
        Some(Trap::MemoryOutOfBounds) => CallError::Trap("out-of-bounds memory access".into()),
        Some(Trap::IntegerDivisionByZero) => CallError::Trap("integer division by zero".into()),
        Some(trap) => CallError::Trap(trap.to_string()),
        // Not a trap: the component broke the canonical ABI (bad string, bad list), or a host
        // resource failed. The instance is as unusable as after a trap.
        None => CallError::Trap(format!("{e:#}")),
    }
}
