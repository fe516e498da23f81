//! A lane's own thread for its plugin calls.
//!
//! A plugin call is CPU work (or waits inside the plugin host), so it cannot run on an async
//! worker. On tokio's blocking pool each call went to whichever pool thread was free, so over a
//! run one lane's calls spread over several threads, each keeping an allocator heap of its own
//! with the pages those calls used. On the one-lane plugin pipeline of docs/performance.md
//! ("Memory") a thread per lane took 0.84x the wall time (no hand-off to the pool per batch)
//! and about 4 MiB less memory. Lanes are few and live as long as their pipeline, so their
//! threads do too; a thread ends when its lane drops it. (The file source's reads were tried on
//! a thread of their own too: no gain, so they stay on the pool.)

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

pub(super) struct PluginThread {
    jobs: mpsc::Sender<Job>,
}

/// The call did not come back: it panicked, or the thread is gone.
#[derive(Debug)]
pub(super) struct Lost;

impl PluginThread {
    /// Starts the thread inside the current runtime (calls may use its timers and I/O).
    pub(super) fn start(name: String) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Handle::current();
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name(name).spawn(move || {
            let _in_runtime = runtime.enter();
            while let Ok(job) = rx.recv() {
                // A panic ends that call only (its caller sees `Lost`); the thread goes on.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            }
        })?;
        Ok(PluginThread { jobs })
    }

    /// Runs `f` on the thread, after the calls before it, and waits for its result without
    /// holding an async worker.
    pub(super) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Lost> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).map_err(|_| Lost)?;
        rx.await.map_err(|_| Lost)
    }

    /// Starts a thread for `owner`, or says why there is none: the lane then uses tokio's
    /// blocking pool (the process is out of threads; everything still works).
    pub(super) fn start_or_warn(name: String, owner: &str) -> Option<Self> {
        Self::start(name)
            .inspect_err(|e| {
                tracing::warn!(owner, error = %e,
                    "cannot start a thread; its work goes to the blocking pool")
            })
            .ok()
    }
}
