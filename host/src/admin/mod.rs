//! The admin HTTP server of `weir run` (default 127.0.0.1:9464):
//!
//! ```text
//! GET  /                           the status page: a live view of /pipelines, for a browser
//! GET  /healthz                    200 while the process serves
//! GET  /readyz                     200 when every pipeline started, else 503 and which are not
//! GET  /metrics                    Prometheus text
//! GET  /pipelines                  every pipeline's status (JSON), and files a reload rejected
//! GET  /pipelines/{name}           one pipeline's status
//! GET  /pipelines/{name}/tap       events passing a stage, one JSON line each (`weir tap`):
//!                                  ?stage=source|filter|plugin:NAME|sink&limit=N
//! POST /reload                     reads the pipeline files again; what it did (JSON)
//! ```
//! With `admin.token` set, every route but the two probes and the status page's shell needs
//! `Authorization: Bearer <token>` (the scheme in any case, as RFC 9110 says). The page holds
//! no data: it asks for the token and sends it with its own requests, since a browser cannot
//! send a header when it opens a page. Connections are capped and closed when idle
//! (`admin.max_connections`, `admin.idle_timeout_s`; see [`serve`]).
//! Without one, the server listens only on a loopback address: anyone who can reach the port
//! can read events (tap) and reload pipelines.

pub(crate) mod metrics;
mod process;
mod serve;

use crate::config::host::AdminSettings;
use crate::service::Service;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
struct App {
    service: Arc<Service>,
    prometheus: PrometheusHandle,
    token: Option<Arc<str>>,
}

/// Why the admin server did not start; each names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// Refused as `weir check` refuses it (why, in its words).
    #[error("admin.address {0}")]
    Refused(#[source] crate::config::host::AdminRefusal),
    #[error("admin.address {0:?}: resolves to nothing")]
    Unresolved(String),
    #[error("admin.address {address:?}: cannot listen on {addr}: {source}")]
    Listen {
        address: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The bound socket has no address to say (the system's words).
    #[error(transparent)]
    Bound(std::io::Error),
}

/// Binds the admin address (refusing a non-loopback one without a token) and serves until
/// the process ends (it answers during a shutdown's drain: `/readyz` then says 503).
pub(crate) async fn start(
    settings: &AdminSettings,
    service: Arc<Service>,
    prometheus: PrometheusHandle,
) -> Result<SocketAddr, StartError> {
    // The same refusals as `weir check` (and the settings' load for `weir run`).
    let addrs = settings.check().map_err(StartError::Refused)?;
    let token = settings.token.as_deref().filter(|t| !t.is_empty());
    let addr = *addrs
        .first()
        .ok_or_else(|| StartError::Unresolved(settings.address.clone()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            address: settings.address.clone(),
            addr,
            source,
        })?;
    let bound = listener.local_addr().map_err(StartError::Bound)?;
    let app = App {
        service,
        prometheus,
        token: token.map(Into::into),
    };
    let router = Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/pipelines", get(pipelines))
        .route("/pipelines/{name}", get(pipeline))
        .route("/pipelines/{name}/tap", get(tap))
        .route("/reload", post(reload))
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app);
    let limits = serve::Limits {
        idle_timeout: (settings.idle_timeout_s > 0)
            .then(|| std::time::Duration::from_secs(settings.idle_timeout_s)),
        // Checked to be 1..=MAX_ADMIN_CONNECTIONS when the settings were loaded.
        max_connections: usize::try_from(settings.max_connections)
            .unwrap_or(1)
            .max(1),
    };
    tokio::spawn(serve::serve(listener, router, limits));
    tracing::info!(address = %bound, "admin server listening");
    Ok(bound)
}

/// Checks the bearer token on every route but the probes.
async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(req).await;
    };
    // Probes (a kubelet, a load balancer) cannot be given a secret header; these say no more
    // than whether weir is up and ready. The status page's shell is static and holds no data
    // (it asks for the token, and sends it to /pipelines).
    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/") {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        _ => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (admin.token)\n",
            )
                .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// The credentials of an `Authorization: Bearer <token>` header. The scheme is matched in any
/// case (`bearer`, `BEARER`: RFC 9110, 11.1) and may be followed by several spaces.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start_matches(' '))
}

/// Compares without stopping at the first difference, so that timing does not reveal how much
/// of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The status page: one self-contained HTML file, built into the binary. Its policy lets it
/// load nothing from elsewhere and talk only to this server (it writes event text into the
/// page as text, never as markup).
async fn status_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'",
            ),
        ],
        include_str!("status_page.html"),
    )
        .into_response()
}

async fn readyz(State(app): State<App>) -> Response {
    let waiting = app.service.not_ready();
    let body = serde_json::json!({ "ready": waiting.is_empty(), "not_ready": waiting });
    let code = match waiting.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics_text(State(app): State<App>) -> Response {
    let text = metrics::render(&app.prometheus, &app.service.statuses());
    let text = crate::redact::redact(&text).into_owned();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// A JSON response with secrets masked: a status's last error or a rejected file's error may
/// quote a `${VAR}` value (crate::redact).
fn redacted_json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => (
            [(header::CONTENT_TYPE, "application/json")],
            crate::redact::redact(&text).into_owned(),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn pipelines(State(app): State<App>) -> Response {
    let views: Vec<_> = app.service.statuses().iter().map(|s| s.view()).collect();
    redacted_json(&serde_json::json!({
        "pipelines": views,
        "rejected": app.service.rejected(),
    }))
}

async fn pipeline(State(app): State<App>, Path(name): Path<String>) -> Response {
    match app.service.status(&name) {
        Some(s) => redacted_json(&s.view()),
        None => not_found(&name),
    }
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no pipeline named {name:?}\n"),
    )
        .into_response()
}

async fn reload(State(app): State<App>) -> Response {
    redacted_json(&app.service.reload().await)
}

#[derive(serde::Deserialize)]
struct TapQuery {
    #[serde(default = "default_stage")]
    stage: String,
    limit: Option<u64>,
}

fn default_stage() -> String {
    "sink".into()
}

/// Streams the events passing a stage as JSON lines, until `limit` events or the client
/// leaves. A client that reads too slowly misses events (`{"missed": N}` lines say how many).
async fn tap(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<TapQuery>,
) -> Response {
    let Some(status) = app.service.status(&name) else {
        return not_found(&name);
    };
    let known = matches!(q.stage.as_str(), "source" | "filter" | "sink")
        || q.stage
            .strip_prefix("plugin:")
            .is_some_and(|p| status.view().plugins.iter().any(|v| v.name == p));
    if !known {
        let plugins: Vec<String> = status
            .view()
            .plugins
            .iter()
            .map(|p| format!("plugin:{}", p.name))
            .collect();
        let mut stages = vec!["source".to_owned(), "filter".into()];
        stages.extend(plugins);
        stages.push("sink".into());
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "unknown stage {:?}: one of {}\n",
                q.stage,
                stages.join(", ")
            ),
        )
            .into_response();
    }
    let watch = status.tap.watch(&q.stage);
    let limit = q.limit.unwrap_or(u64::MAX);
    let lines = futures_util::stream::unfold((watch, 0u64), move |(mut watch, sent)| async move {
        use tokio::sync::broadcast::error::RecvError;
        if sent >= limit {
            return None;
        }
        let line = match watch.rx.recv().await {
            // An event may carry a secret a plugin was configured with.
            Ok(json) => format!("{}\n", crate::redact::redact(&json)),
            Err(RecvError::Lagged(n)) => format!("{{\"missed\":{n}}}\n"),
            Err(RecvError::Closed) => return None,
        };
        let counted = sent + u64::from(!line.starts_with("{\"missed\""));
        Some((Ok::<_, std::convert::Infallible>(line), (watch, counted)))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k"] {
            assert_eq!(bearer_token(header), Some("t0k"), "{header}");
        }
        for header in ["Basic t0k", "Bearer", "Bearert0k", "Token t0k"] {
            assert_eq!(bearer_token(header), None, "{header}");
        }
    }
}
