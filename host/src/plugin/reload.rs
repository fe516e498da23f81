//! Hot reload: a thread per plugin watches its `.wasm` file, and when it changes, compiles and
//! initialises the new version there, off the hot path, then publishes it in the plugin's
//! [`Current`]. Each lane picks the new version up at its next batch boundary, so a batch runs
//! entirely through one version and no event runs through both.
//!
//! Polling the file's size and modification time (and comparing content hashes before
//! reloading) rather than inotify: it works the same for a file replaced by rename, a file
//! rewritten in place, a symlink swapped, and on network or container file systems; a few
//! `stat` calls a second cost nothing.
//!
//! A version that cannot be loaded (not a regular file, too large, not a component, `init`
//! failing or too slow) is refused: the running one goes on, the refusal is logged and kept in
//! [`Current::refused`] until a version loads (`/pipelines` shows it, `weir top` too), and the
//! pipeline's status hears of it through [`Current::on_refused`].

use super::instance::{Loaded, Settings};
use super::wasm_file;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

/// How often the file is checked.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// Told why a new version was refused (the plugin's stage, `plugin:NAME`, and the reason).
pub(crate) type OnRefused = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The version of one plugin that batches should run through now.
pub(crate) struct Current {
    loaded: Mutex<Arc<Loaded>>,
    /// Bumped on every swap: a lane compares it with the one its instance came from (one atomic
    /// load per batch) and only then takes the lock.
    generation: AtomicU64,
    /// Why the newest version on disk was refused, until one loads.
    refused: Mutex<Option<String>>,
    on_refused: OnceLock<OnRefused>,
}

impl Current {
    pub(crate) fn new(loaded: Arc<Loaded>) -> Arc<Self> {
        Arc::new(Current {
            loaded: Mutex::new(loaded),
            generation: AtomicU64::new(0),
            refused: Mutex::new(None),
            on_refused: OnceLock::new(),
        })
    }

    /// Why the newest version on disk is not running, if it was refused.
    pub(crate) fn refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tells `hook` of every version refused from now on (set once).
    pub(crate) fn on_refused(&self, hook: OnRefused) {
        let _ = self.on_refused.set(hook);
    }

    fn refuse(&self, settings: &Settings, why: String) {
        tracing::error!(pipeline = %settings.pipeline, plugin = %settings.name,
            path = %settings.path.display(), error = %why,
            "new plugin version not loaded; the previous one keeps running");
        let message = format!(
            "new version of {} not loaded (the previous one keeps running): {why}",
            settings.path.display()
        );
        if let Some(hook) = self.on_refused.get() {
            hook(&format!("plugin:{}", settings.name), &message);
        }
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current version and its generation.
    pub(crate) fn get(&self) -> (u64, Arc<Loaded>) {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        (self.generation(), loaded.clone())
    }

    fn set(&self, next: Arc<Loaded>) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        *loaded = next;
        // Under the lock: a reader that sees the new generation also gets the new version.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Starts watching `settings.path` for new versions of the plugin published in `current`. The
/// thread ends when `current` is dropped (the pipeline stopped).
pub(crate) fn watch(settings: Settings, current: &Arc<Current>) -> std::io::Result<()> {
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
                let bytes = match wasm_file::read(&settings.path) {
                    Ok(bytes) => bytes,
                    // Gone for a moment (being replaced): the next stat tells.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        // Something that is no plugin took its place (a directory, a FIFO, a
                        // device, a huge file): said once, until the file changes again.
                        let Some(target) = target.upgrade() else {
                            return;
                        };
                        target.refuse(&settings, format!("cannot read it: {e}"));
                        continue;
                    }
                };
                let hash = super::cache::sha256_hex(&bytes);
                if hash == running {
                    continue;
                }
                // Remember it either way: retrying the same bytes would fail the same way.
                running = hash.clone();
                // Loading initialises one instance, so a version whose `init` fails is refused
                // here, before any lane sees it.
                let loaded = Loaded::from_bytes(&settings, &bytes);
                let Some(target) = target.upgrade() else {
                    return;
                };
                match loaded {
                    Ok((next, _checked)) => {
                        // Logged here, once; each lane switches at its next batch boundary.
                        tracing::info!(pipeline = %settings.pipeline, plugin = %settings.name,
                            path = %settings.path.display(), hash = %&hash[..12],
                            "plugin reloaded; each lane switches at its next batch");
                        target.set(next);
                    }
                    Err(e) => target.refuse(&settings, e.to_string()),
                }
            }
        })?;
    Ok(())
}

fn stamp(s: &Settings) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(&s.path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
