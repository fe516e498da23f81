//! Graceful shutdown: the first SIGINT or SIGTERM asks every pipeline to stop taking events,
//! finish the ones in flight and save its checkpoint; a second one exits at once (safe, since
//! delivery is at-least-once: unfinished events are read again on restart).

use tokio_util::sync::CancellationToken;

/// Starts listening for signals; the token is cancelled on the first one.
pub(crate) fn on_signals() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        for n in 0.. {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if n == 0 {
                tracing::info!(
                    signal = name,
                    "stopping: finishing in-flight events and saving checkpoints"
                );
                t.cancel();
            } else {
                tracing::warn!(
                    signal = name,
                    "second signal: exiting now; unfinished events will be read again"
                );
                std::process::exit(130);
            }
        }
    });
    Ok(token)
}
