//! What triggers a reload besides `POST /reload`: the pipeline files changing (or the files
//! their `${file:...}` references read), and SIGHUP.
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
        let mut seen = fingerprint(&service);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = service.shutdown.cancelled() => return,
            }
            let now = fingerprint(&service);
            if now != seen {
                // An editor may still be writing: wait until the files hold still.
                tokio::time::sleep(every.min(Duration::from_millis(200))).await;
                seen = fingerprint(&service);
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

/// Each pipeline file's and secret file's path, size and modification time (following
/// symlinks: a Kubernetes Secret's update flips one).
fn fingerprint(service: &Service) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
    let mut files = Vec::new();
    for path in service.paths() {
        match path.is_dir() {
            true => {
                files.extend(crate::pipeline::config::pipeline_files_in(path).unwrap_or_default())
            }
            false => files.push(path.clone()),
        }
    }
    files.extend(service.secret_files());
    files
        .into_iter()
        .map(|f| {
            let stamp = std::fs::metadata(&f)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            (f, stamp)
        })
        .collect()
}
