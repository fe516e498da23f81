//! Watching a table file: inotify (through `notify`) on its folder, so that a file renamed into
//! place, the usual atomic write, is seen as well as one written over; and a look every second
//! besides, for file systems where events do not come (network mounts, some containers). Either
//! way a change is loaded only if the file's fingerprint moved.

use super::{Fingerprint, Shared};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

/// How often the file is looked at when no event comes.
const POLL: Duration = Duration::from_secs(1);
/// After an event, how long to wait for the writer's next one: a file written in several
/// steps is read once it is quiet, not after its first write.
const SETTLE: Duration = Duration::from_millis(100);

/// Starts a thread that reloads the table when its file changes, until the table is gone.
pub(super) fn spawn(shared: Weak<Shared>, loaded: Fingerprint) -> Result<(), String> {
    let Some(table) = shared.upgrade() else {
        return Ok(());
    };
    let path = table.path.clone();
    let name = format!("table-{}", table.table);
    drop(table);
    let (tx, rx) = channel();
    let file_name = path.file_name().map(ToOwned::to_owned);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let ours = match &event {
            Ok(e) => e
                .paths
                .iter()
                .any(|p| p.file_name() == file_name.as_deref()),
            // An overflowed queue may have hidden our file's event.
            Err(_) => true,
        };
        if ours {
            // The receiver goes only with the thread, which is ending.
            let _ = tx.send(());
        }
    });
    let watcher = match watcher {
        Ok(mut w) => match w.watch(&folder(&path), RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} for changes ({e}); looking at it every {}s instead",
                    path.display(),
                    POLL.as_secs()
                );
                None
            }
        },
        Err(e) => {
            tracing::warn!(
                "cannot watch files ({e}); looking at table files every {}s instead",
                POLL.as_secs()
            );
            None
        }
    };
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            // Kept alive by the thread: dropping it stops the events.
            let _watcher = watcher;
            let mut last = Some(loaded);
            loop {
                match rx.recv_timeout(POLL) {
                    // At most a second of settling: a file written without pause is still read.
                    Ok(()) => {
                        for _ in 0..10 {
                            if rx.recv_timeout(SETTLE).is_err() {
                                break;
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    // No watcher: only the polling is left.
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(POLL),
                }
                let Some(table) = shared.upgrade() else {
                    return;
                };
                table.reload_if_changed(&mut last);
            }
        })
        .map(drop)
        .map_err(|e| {
            format!(
                "cannot start the thread that watches {}: {e}",
                path.display()
            )
        })
}

/// The folder holding `path` (`.` for a bare file name).
fn folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}
