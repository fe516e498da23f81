//! Hot reload: a thread per plugin watches its `.wasm` file, and when it changes, compiles and
//! initialises the new version there, off the hot path, then publishes it in the plugin's
//! [`Current`]. Each lane picks the new version up at its next batch boundary, so a batch runs
//! entirely through one version and no event runs through both.
//!
//! Polling the file's size and modification time (and comparing content hashes before
//! reloading) rather than inotify: it works the same for a file replaced by rename, a file
//! rewritten in place, a symlink swapped, and on network or container file systems; a few
//! `stat` calls a second cost nothing.

use super::instance::{Loaded, Settings};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

/// How often the file is checked.
pub const POLL: Duration = Duration::from_millis(250);

/// The version of one plugin that batches should run through now.
pub struct Current {
    loaded: Mutex<Arc<Loaded>>,
    /// Bumped on every swap: a lane compares it with the one its instance came from (one atomic
    /// load per batch) and only then takes the lock.
    generation: AtomicU64,
}

impl Current {
    pub fn new(loaded: Arc<Loaded>) -> Arc<Self> {
        Arc::new(Current {
            loaded: Mutex::new(loaded),
            generation: AtomicU64::new(0),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current version and its generation.
    pub fn get(&self) -> (u64, Arc<Loaded>) {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        (self.generation(), loaded.clone())
    }

    fn set(&self, next: Arc<Loaded>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        *loaded = next;
        // Under the lock: a reader that sees the new generation also gets the new version.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Starts watching `settings.path` for new versions of the plugin published in `current`. The
/// thread ends when `current` is dropped (the pipeline stopped).
pub fn watch(settings: Settings, current: &Arc<Current>) -> std::io::Result<()> {
    let target: Weak<Current> = Arc::downgrade(current);
    let mut running = current.get().1.hash.clone();
    std::thread::Builder::new()
        .name(format!("weir-reload-{}", settings.name))
        .spawn(move || {
            let mut seen = stamp(&settings);
            while target.strong_count() > 0 {
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
                if hash == running {
                    continue;
                }
                // Remember it either way: retrying the same bytes would fail the same way.
                running = hash.clone();
                // Loading initialises one instance, so a version whose `init` fails is refused
                // here, before any lane sees it.
                match Loaded::from_bytes(&settings, &bytes) {
                    Ok((next, _checked)) => {
                        let Some(target) = target.upgrade() else { return };
                        tracing::info!(pipeline = %settings.pipeline, plugin = %settings.name,
                            path = %settings.path.display(), hash = %&hash[..12],
                            "new plugin version compiled and initialised; switching at the next batch");
                        target.set(next);
                    }
                    Err(e) => {
                        tracing::error!(pipeline = %settings.pipeline, plugin = %settings.name,
                            path = %settings.path.display(), error = %e,
                            "new plugin version not loaded; the previous one keeps running");
                    }
                }
            }
        })?;
    Ok(())
}

fn stamp(s: &Settings) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(&s.path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
