//! Tests of the `http` grant against real HTTP servers started by each test on 127.0.0.1:0,
//! counting at the server what reached it.

mod allow_list;
mod cache_and_secrets;
mod limits;
mod tls;
mod wasi;

use super::{HttpAccess, HttpGrant};
use crate::config::{KeyPath, SourceText};
use crate::plugin::bindings::v2::weir::plugin::http::{HttpError, Request, Response};
use axum::body::Body;
use axum::extract::State;
use http::HeaderMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the test server saw.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) requests: AtomicUsize,
    in_flight: AtomicUsize,
    pub(super) max_in_flight: AtomicUsize,
    pub(super) arrivals: Mutex<Vec<Instant>>,
    pub(super) headers: Mutex<Vec<HeaderMap>>,
}

impl Seen {
    pub(super) fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Routes:
/// - `/rates/{code}`: `{"rate": 1.5}`; `/rates/XXX`: 404
/// - `/hold`: answers after 100 ms (for concurrency counts)
/// - `/slow`: answers after 30 s
/// - `/big`: 10 000 bytes with a Content-Length; `/stream`: 10 000 bytes in chunks, without
/// - anything else: 200 "other"
async fn handle(State(seen): State<Arc<Seen>>, request: axum::extract::Request) -> Answer {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    seen.arrivals
        .lock()
        .expect("not poisoned")
        .push(Instant::now());
    seen.headers
        .lock()
        .expect("not poisoned")
        .push(request.headers().clone());
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let path = request.uri().path().to_owned();
    let answer = match path.as_str() {
        "/rates/XXX" => (404, Body::from("no such currency")),
        p if p.starts_with("/rates/") => (200, Body::from(r#"{"rate": 1.5}"#)),
        "/hold" => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            (200, Body::from("held"))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (200, Body::from("late"))
        }
        "/big" => (200, Body::from(vec![b'x'; 10_000])),
        "/stream" => {
            let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1000]));
            (200, Body::from_stream(futures_util::stream::iter(chunks)))
        }
        _ => (200, Body::from("other")),
    };
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    Answer(answer)
}

pub(super) struct Answer((u16, Body));

impl axum::response::IntoResponse for Answer {
    fn into_response(self) -> axum::response::Response {
        let (status, body) = self.0;
        let mut response = axum::response::Response::new(body);
        *response.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
        response
    }
}

pub(super) fn router(seen: Arc<Seen>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(seen)
}

/// A plain HTTP test server; its address, and what it saw.
pub(super) async fn server() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    let app = router(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A grant from its TOML, as a `[plugin.http]` table would hold it.
pub(super) fn grant(text: &str) -> HttpGrant {
    let src = SourceText::parse(Path::new("p.toml"), text).expect("valid TOML");
    let table: toml::Table = toml::from_str(text).expect("valid TOML");
    HttpGrant::parse(&src, &KeyPath::default(), table).expect("a valid grant")
}

pub(super) fn access(text: &str) -> Arc<HttpAccess> {
    HttpAccess::new(grant(text), "test", "enrich").expect("set up")
}

pub(super) fn get(url: &str) -> Request {
    Request {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body: vec![],
    }
}

pub(super) fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

pub(super) async fn send(access: &HttpAccess, request: Request) -> Result<Response, HttpError> {
    access.send_one(request, far()).await
}
