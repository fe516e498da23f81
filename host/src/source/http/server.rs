//! The listener: HTTP/1.1 (over TLS if configured), POSTs to the configured paths. A request is
//! checked (path, method, size, credentials, back-pressure, body), its events are handed to the
//! log's writer, and it is answered 200 only once they are fsynced there.

use super::auth::Verifier;
use super::body;
use super::wal::{Append, RequestMeta, Wal};
use crate::source::Format;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What every request needs.
pub(super) struct Shared {
    pub pipeline: String,
    pub paths: Vec<String>,
    pub format: Format,
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    pub max_log_bytes: u64,
    pub headers: Vec<String>,
    pub verifier: Option<Verifier>,
    pub wal: Arc<Wal>,
    pub appends: mpsc::Sender<Append>,
    /// Cancelled when the source stops: new requests are answered 503.
    pub closing: CancellationToken,
}

/// Binds `addr`. A pipeline reloaded in place binds while its old source lets go of the port:
/// an address in use is tried again for a few seconds.
pub(super) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Accepts and serves connections until `closing`; then lets each connection finish the
/// request under way.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shared.closing.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(pipeline = %shared.pipeline, error = %e, "http source cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(TokioIo::new(stream), peer, shared).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(s)) => connection(TokioIo::new(s), peer, shared).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "http source: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "http source: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn connection<I>(io: I, peer: SocketAddr, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let closing = shared.closing.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&shared, peer, req).await) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = closing.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "http source connection ended");
    }
}

type Answer = Response<Full<Bytes>>;

/// How long a request's body may take to arrive: a sender that stalls does not hold a
/// connection for ever.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

fn answer(status: StatusCode, body: impl Into<Bytes>, retry_after: Option<u32>) -> Answer {
    let body: Bytes = body.into();
    let mut r = Response::builder().status(status);
    if !body.is_empty() {
        let kind = if body.starts_with(b"{") {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        r = r.header(http::header::CONTENT_TYPE, kind);
    }
    if let Some(s) = retry_after {
        r = r.header(http::header::RETRY_AFTER, s.to_string());
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r = r.header(http::header::ALLOW, "POST");
    }
    r.body(Full::new(body)).unwrap_or_else(|_| {
        let mut plain = Response::new(Full::new(Bytes::new()));
        *plain.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        plain
    })
}

async fn handle(shared: &Shared, peer: SocketAddr, req: Request<Incoming>) -> Answer {
    let response = respond(shared, peer, req).await;
    metrics::counter!("weir_http_requests_total",
        "pipeline" => shared.pipeline.clone(), "status" => response.status().as_u16().to_string())
    .increment(1);
    response
}

async fn respond(shared: &Shared, peer: SocketAddr, req: Request<Incoming>) -> Answer {
    if shared.closing.is_cancelled() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n", Some(1));
    }
    let path = req.uri().path().to_owned();
    if !shared.paths.contains(&path) {
        return answer(StatusCode::NOT_FOUND, "", None);
    }
    if req.method() != http::Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "", None);
    }
    let unauthorized = || answer(StatusCode::UNAUTHORIZED, "", None);
    if let Some(v) = &shared.verifier
        && !v.headers_ok(req.headers())
    {
        return unauthorized();
    }
    let too_large = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is longer than max_body_bytes ({})\n", shared.max_body_bytes),
            None,
        )
    };
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_body_bytes as u64) {
        return too_large();
    }
    // Back-pressure before the body is read: a full pipeline or log costs the sender nothing
    // but a retry.
    let needs_body = shared.verifier.as_ref().is_some_and(Verifier::needs_body);
    if !needs_body && let Some(busy) = back_pressure(shared, declared.unwrap_or(0)) {
        return busy;
    }
    let (parts, incoming) = req.into_parts();
    let reading = Limited::new(incoming, shared.max_body_bytes).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, reading).await {
        Err(_) => {
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time\n",
                None,
            );
        }
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "http source: cannot read a request body");
            return answer(StatusCode::BAD_REQUEST, "cannot read the body\n", None);
        }
    };
    if let Some(v) = &shared.verifier
        && !v.body_ok(&parts.headers, &body, unix_now())
    {
        return unauthorized();
    }
    if let Some(busy) = back_pressure(shared, body.len() as u64) {
        return busy;
    }
    let ranges = match body::split(&body, shared.format) {
        Ok(r) => r,
        Err(why) => return answer(StatusCode::BAD_REQUEST, format!("{why}\n"), None),
    };
    if ranges.is_empty() {
        return answer(
            StatusCode::OK,
            "{\"accepted\":0,\"first_id\":null}",
            None,
        );
    }
    let meta = request_meta(shared, &path, &parts.headers, peer);
    let records: Vec<Vec<u8>> = ranges.into_iter().map(|r| body[r].to_vec()).collect();
    let accepted = records.len();
    let (reply, written) = oneshot::channel();
    let append = Append {
        meta: Arc::new(meta),
        records,
        reply,
    };
    let unavailable = || answer(StatusCode::SERVICE_UNAVAILABLE, "cannot write the events to the log; try again\n", Some(1));
    if shared.appends.send(append).await.is_err() {
        return unavailable();
    }
    match written.await {
        Ok(Ok(first)) => answer(
            StatusCode::OK,
            format!("{{\"accepted\":{accepted},\"first_id\":\"{first}\"}}"),
            None,
        ),
        _ => unavailable(),
    }
}

/// 429 while too many events are unfinished, 503 while the log is at its quota.
fn back_pressure(shared: &Shared, body_bytes: u64) -> Option<Answer> {
    if shared.wal.in_flight.load(Relaxed) >= shared.max_in_flight {
        return Some(answer(
            StatusCode::TOO_MANY_REQUESTS,
            "too many events in flight (max_in_flight); try again\n",
            Some(1),
        ));
    }
    if shared.wal.bytes.load(Relaxed) + body_bytes > shared.max_log_bytes {
        return Some(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the log is full (max_log_bytes); try again\n",
            Some(1),
        ));
    }
    None
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `meta` of the request's events: its path, when it came, from where, and the chosen headers.
fn request_meta(
    shared: &Shared,
    path: &str,
    headers: &http::HeaderMap,
    peer: SocketAddr,
) -> RequestMeta {
    let mut map = serde_json::Map::new();
    map.insert("path".into(), path.into());
    map.insert("received_at".into(), crate::event::now_rfc3339().into());
    map.insert("remote_addr".into(), peer.to_string().into());
    if !shared.headers.is_empty() {
        let mut chosen = serde_json::Map::new();
        for name in &shared.headers {
            if let Some(v) = headers.get(name.as_str()) {
                chosen.insert(
                    name.clone(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
                );
            }
        }
        map.insert("headers".into(), chosen.into());
    }
    let json = serde_json::to_vec(&map).unwrap_or_default();
    RequestMeta { json, map }
}
