//! Running a plugin call (instantiation, `init`, `process`) to its end on the calling thread,
//! within a wall-clock deadline.
//!
//! Calls are async (engine.rs): when a plugin waits in a host call (a WASI sleep, a clock
//! subscription, a poll), the call's future yields, and the timer here can drop it at the
//! deadline; dropping it unwinds the plugin's stack, and the instance is then discarded as after a
//! trap. A plugin that runs Wasm without waiting never yields: the epoch deadline stops that
//! (engine.rs). Both deadlines are the same, so whichever way a plugin is late, the call ends
//! after `timeout` (plus one epoch tick).
//!
//! Lanes call plugins on threads of their own inside the runtime, `weir plugin test` and `weir
//! dry-run` outside any runtime: the call is driven by the runtime of the thread if there is one
//! (its timers and WASI's own tasks live there), else by a small runtime of the plugin host's
//! own. Callers in async code use a thread of their own or `spawn_blocking` (a plugin call is CPU
//! work); on a worker of a multi-threaded runtime it also works (`block_in_place`), but not in a
//! task of a current-thread runtime.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::runtime::{Builder, Handle, Runtime, RuntimeFlavor};

/// Why a call did not finish.
#[derive(Debug)]
pub(crate) enum Unfinished {
    /// The deadline passed; the call was dropped.
    Elapsed,
    /// No runtime could be started to drive the call (the process is out of threads or files).
    NoRuntime(String),
}

/// Runs `call` to its end, or drops it once `timeout` has passed.
pub(crate) fn within<F: Future>(timeout: Duration, call: F) -> Result<F::Output, Unfinished> {
    let bounded = async move { tokio::time::timeout(timeout, call).await };
    let finished = match Handle::try_current() {
        // A lane's plugin thread (or a blocking-pool thread): block_in_place is a no-op there, and
        // keeps an async worker that would call this usable by its other tasks.
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(bounded))
        }
        Ok(handle) => handle.block_on(bounded),
        Err(_) => own_runtime()?.block_on(bounded),
    };
    finished.map_err(|_| Unfinished::Elapsed)
}

/// The plugin host's runtime, for callers that have none: one worker for the timers and WASI's
/// tasks; the call itself runs on the caller's thread.
fn own_runtime() -> Result<&'static Runtime, Unfinished> {
    static OWN: OnceLock<Result<Runtime, String>> = OnceLock::new();
    OWN.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-plugin-timer")
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Unfinished::NoRuntime(e.clone()))
}
