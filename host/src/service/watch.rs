//! What triggers a reload besides `POST /reload`: the pipeline files changing, and SIGHUP.
//!
//! The files are polled (names, sizes and modification times), like plugin files
//! (`plugin/reload.rs`): it sees a file replaced by rename, edited in place or swapped by a
//! Kubernetes ConfigMap update (a symlink flip) alike, on any file system.

use super::Service;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Reloads whenever the pipeline files change, checking every `every`.
pub(crate) fn watch_files(service: &Arc<Service>, every: Duration) {
    let service = service.clone();
    tokio::spawn(async move {
        let mut seen = fingerprint(service.paths());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = service.shutdown.cancelled() => return,
            }
            let now = fingerprint(service.paths());
            if now != seen {
                // An editor may still be writing: wait until the files hold still.
                tokio::time::sleep(every.min(Duration::from_millis(200))).await;
                seen = fingerprint(service.paths());
                tracing::info!("pipeline files changed; reloading");
                service.reload().await;
            }
        }
    });
}

/// Reloads on every SIGHUP.
pub(crate) fn watch_sighup(service: &Arc<Service>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let service = service.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading pipelines");
            service.reload().await;
        }
    });
    Ok(())
}

/// Each pipeline file's path, size and modification time (following symlinks).
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
    let mut out = Vec::new();
    for path in paths {
        let files = match path.is_dir() {
            true => crate::pipeline::config::pipeline_files_in(path).unwrap_or_default(),
            false => vec![path.clone()],
        };
        for f in files {
            let stamp = std::fs::metadata(&f)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            out.push((f, stamp));
        }
    }
    out
}
