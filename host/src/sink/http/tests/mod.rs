//! The HTTP sink against a real HTTP server started by each test on 127.0.0.1:0, which records
//! what reached it and answers as the test says.

mod auth;
mod batching;
mod config;
mod order;
mod responses;
mod tls;

use super::HttpSinkConfig;
use crate::event::{Envelope, Payload};
use crate::sink::{Outgoing, Rendered, Sink, SinkContext, SinkError, SinkFailure, SinkKind};
use axum::body::Body;
use http::HeaderMap;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the server saw.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) method: String,
    /// The path and query exactly as sent.
    pub(super) target: String,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
    pub(super) started: Instant,
    pub(super) ended: Instant,
}

/// What the server answers: a status, headers, a body, after a delay.
#[derive(Clone)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: String,
    pub(super) delay: Duration,
}

impl Reply {
    pub(super) fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub(super) fn ok() -> Reply {
        Reply::status(200)
    }
    pub(super) fn body(mut self, body: impl Into<String>) -> Reply {
        self.body = body.into();
        self
    }
    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
    pub(super) fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Answer = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub(super) struct Server {
    pub(super) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// A server answering each request with `answer(request)`.
    pub(super) async fn start(answer: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Server {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let answer: Answer = Arc::new(answer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        let state = (seen.clone(), answer);
        let app = axum::Router::new().fallback(handle).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { addr, seen }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }

    pub(super) fn bodies(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.body).collect()
    }
}

async fn handle(
    axum::extract::State((seen, answer)): axum::extract::State<(Arc<Mutex<Vec<Seen>>>, Answer)>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let mut request = Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or(String::new(), |p| p.to_string()),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        started,
        ended: started,
    };
    let reply = answer(&request);
    tokio::time::sleep(reply.delay).await;
    request.ended = Instant::now();
    seen.lock().expect("not poisoned").push(request);
    let mut response = axum::response::Response::new(Body::from(reply.body));
    *response.status_mut() = http::StatusCode::from_u16(reply.status).expect("a status");
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a header value"));
    }
    response
}

/// The sink's table from TOML, checked as `weir check` would.
pub(super) fn config(text: &str) -> HttpSinkConfig {
    let cfg: HttpSinkConfig = toml::from_str(text).expect("a valid table");
    cfg.validate().expect("valid");
    cfg
}

pub(super) async fn open(text: &str) -> Box<dyn Sink> {
    open_config(&config(text)).await.expect("opens")
}

pub(super) async fn open_config(cfg: &HttpSinkConfig) -> Result<Box<dyn Sink>, SinkError> {
    let ctx = SinkContext {
        pipeline: "test".into(),
        target: "sink".into(),
        state_dir: std::env::temp_dir(),
    };
    cfg.open(&ctx).await
}

/// An event with `key` and JSON `data`.
pub(super) fn event(id: &str, key: Option<&str>, data: &str) -> Envelope {
    Envelope {
        id: id.into(),
        source: "file",
        key: key.map(str::to_owned),
        time: "2026-11-22T10:00:00.000Z".into(),
        received_at: "2026-11-22T10:00:01.000Z".into(),
        data: Payload::decode(data.as_bytes()).payload,
        meta: serde_json::Map::new(),
    }
}

/// Writes the events, each with its data as the body; one result per event.
pub(super) async fn write(sink: &dyn Sink, events: &[Envelope]) -> Vec<Result<(), SinkError>> {
    let batch: Vec<Outgoing<'_>> = events
        .iter()
        .map(|e| Outgoing {
            body: match e.data_bytes() {
                Some(b) => Rendered::Bytes(b),
                None => Rendered::Bytes(Cow::Borrowed(b"null")),
            },
            event: e,
        })
        .collect();
    match sink.write(&batch).await {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(SinkFailure::All(e)) => batch.iter().map(|_| Err(e.clone())).collect(),
        Err(SinkFailure::Some(failed)) => {
            let mut r: Vec<Result<(), SinkError>> = batch.iter().map(|_| Ok(())).collect();
            for (i, e) in failed {
                r[i] = Err(e);
            }
            r
        }
    }
}

/// The one error of a write of one event.
pub(super) async fn write_one_err(sink: &dyn Sink, e: Envelope) -> SinkError {
    write(sink, &[e])
        .await
        .remove(0)
        .expect_err("the write fails")
}
