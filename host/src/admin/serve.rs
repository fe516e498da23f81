//! The admin server's connection handling: HTTP/1 with an idle timeout and a cap on open
//! connections, so that clients that connect and say nothing (or too many at once) cannot hold
//! the process's sockets and tasks forever.
//!
//! The idle timeout is hyper's header read timeout: it runs while a connection waits for a
//! request (the first one, or the next one of a keep-alive connection) and stops once the
//! request's head is in, so a long response (a `tap` stream on a quiet pipeline) is never cut.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What a client over the cap is told before its connection is closed.
const TOO_MANY: &str = "too many admin connections (admin.max_connections)\n";

/// How long the refusal above may take to write: a client that does not read it is dropped.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) struct Limits {
    /// `None`: connections may wait for a request forever.
    pub idle_timeout: Option<Duration>,
    pub max_connections: usize,
}

/// Accepts and serves connections until the process ends.
pub(super) async fn serve(listener: TcpListener, router: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused: u64 = 0;
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, mostly: wait for some to be closed rather than spin.
                tracing::warn!(error = %e, "admin server cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            // Once per burst, not once per connection: a flood must not flood the log too.
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, max_connections = limits.max_connections,
                    "admin server: too many connections; refusing");
            }
            tokio::spawn(async move {
                let response = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\n\
                     content-length: {}\r\n\r\n{TOO_MANY}",
                    TOO_MANY.len()
                );
                let write = stream.write_all(response.as_bytes());
                let _ = tokio::time::timeout(REFUSAL_TIMEOUT, write).await;
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout);
        tokio::spawn(async move {
            let conn = http.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
            drop(slot);
        });
    }
}
