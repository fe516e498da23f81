//! Hot reload: a thread per plugin watches its `.wasm` file, and when it changes, compiles and
//! initialises the new version there, off the hot path. The stage picks the new version up at
//! its next batch boundary ([`Watch::take`]), so a batch runs entirely through one version.
//!
//! Polling the file's size and modification time (and comparing content hashes before
//! reloading) rather than inotify: it works the same for a file replaced by rename, a file
//! rewritten in place, a symlink swapped, and on network or container file systems; a few
//! `stat` calls a second cost nothing.

use super::instance::{Instance, Loaded, Settings};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::{Duration, SystemTime};

/// How often the file is checked.
pub const POLL: Duration = Duration::from_millis(250);

pub struct Watch {
    rx: Receiver<(Arc<Loaded>, Instance)>,
    stop: Arc<AtomicBool>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Watch {
    /// Starts watching `settings.path`; `current` is the hash of the version now running.
    pub fn start(settings: Settings, current: String) -> std::io::Result<Watch> {
        // Capacity 1: a second version found while the first waits for a batch boundary
        // replaces nothing; the thread blocks until the stage took the first, then sends it.
        let (tx, rx) = sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name(format!("weir-reload-{}", settings.name))
            .spawn(move || {
                let mut seen = stamp(&settings);
                let mut current = current;
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL);
                    let now = stamp(&settings);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    let Ok(bytes) = std::fs::read(&settings.path) else {
                        continue; // gone for a moment (being replaced); the next stat tells
                    };
                    let hash = super::cache::sha256_hex(&bytes);
                    if hash == current {
                        continue;
                    }
                    match Loaded::from_bytes(&settings, &bytes) {
                        Ok(next) => {
                            tracing::info!(pipeline = %settings.pipeline, plugin = %settings.name,
                                path = %settings.path.display(), hash = %&hash[..12],
                                "new plugin version compiled and initialised; switching at the next batch");
                            current = hash;
                            if tx.send(next).is_err() {
                                return; // the stage is gone
                            }
                        }
                        Err(e) => {
                            // Remember it as seen: retrying the same bytes would fail the same way.
                            current = hash;
                            tracing::error!(pipeline = %settings.pipeline, plugin = %settings.name,
                                path = %settings.path.display(), error = %e,
                                "new plugin version not loaded; the previous one keeps running");
                        }
                    }
                }
            })?;
        Ok(Watch { rx, stop })
    }

    /// The new version, if one is ready.
    pub fn take(&self) -> Option<(Arc<Loaded>, Instance)> {
        match self.rx.try_recv() {
            Ok(next) => Some(next),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }
}

fn stamp(s: &Settings) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(&s.path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
