//! A real HTTP API that weir's HTTP target delivers to, for the end-to-end tests and the
//! benchmark: on 127.0.0.1 (plain, TLS with a test CA, or TLS requiring a client certificate
//! that CA signed), on a runtime of its own. It records every request (when it arrived, method,
//! path and query, headers, body, the status it answered) and answers as the test scripts it:
//! failures with a status and a body, 429 with `Retry-After`, latency, going down (connections
//! refused) and coming back on the same port, and authentication (basic, an API key header, or
//! OAuth 2 bearer tokens from its own token endpoint `POST /oauth/token`, which expire).
//!
//! Self-contained but for api_server.rs (the port, the TLS test CA, the HTTP serving loop): the
//! benchmark (host/benches/http_target.rs) includes both.

use crate::api_server::{Body, Switchable, TestCa, json, serve_http};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Where the token endpoint listens.
pub(crate) const TOKEN_PATH: &str = "/oauth/token";

/// What the API asks of each request (the token endpoint is always open).
#[derive(Clone, Debug, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    /// `Authorization: Basic base64(user:password)`.
    Basic { user: String, password: String },
    /// A header holding a fixed value.
    ApiKey { header: String, value: String },
    /// `Authorization: Bearer T`, T a token the token endpoint handed out that has not expired.
    /// The endpoint takes the form `grant_type=client_credentials&client_id=..&client_secret=..`
    /// and answers a new token each time, valid for `expires_in`.
    OAuth2 {
        client_id: String,
        client_secret: String,
        expires_in: Duration,
    },
}

/// One request the API received (token requests are counted apart).
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// When it arrived, since the server started.
    pub at: Duration,
    /// The run it came in ([`TargetServer::set_run`]).
    pub run: u32,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered.
    pub status: u16,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The body as JSON: one event, or several (an array, from a batching target).
    pub(crate) fn events(&self) -> Vec<Value> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Array(events)) => events,
            Ok(event) => vec![event],
            Err(e) => panic!(
                "a body that is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            ),
        }
    }

    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A scripted failure of the next requests: how many, the status, the body, `Retry-After`.
struct Failing {
    left: u64,
    status: u16,
    body: String,
    retry_after_s: Option<u64>,
}

#[derive(Default)]
struct Control {
    latency: Duration,
    fail: Option<Failing>,
    auth: Auth,
    /// Tokens handed out and when each expires.
    tokens: HashMap<String, Instant>,
    run: u32,
}

struct Shared {
    control: Mutex<Control>,
    seen: Mutex<Vec<Received>>,
    /// The forms posted to the token endpoint, in order.
    token_forms: Mutex<Vec<BTreeMap<String, String>>>,
    token_fetches: AtomicU64,
    /// Requests answered 401 because their bearer token had expired.
    expired: AtomicU64,
    /// TLS handshakes that failed (e.g. no client certificate where one is required).
    handshakes_failed: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    started: Instant,
}

/// Files a TLS server wrote for its clients.
pub(crate) struct TlsFiles {
    /// The test CA's certificate (`ca_file`).
    pub ca: PathBuf,
    /// A client certificate the CA signed and its key (`client_cert`, `client_key`).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub(crate) struct TargetServer {
    shared: Arc<Shared>,
    port: Switchable,
    scheme: &'static str,
    tls: Option<TlsFiles>,
}

impl TargetServer {
    /// A plain HTTP server on a free port.
    pub(crate) fn start() -> Self {
        Self::serve(None, None)
    }

    /// An HTTPS server with a certificate a fresh test CA signed; the CA and a client
    /// certificate are written into `dir` ([`TargetServer::tls_files`]). With
    /// `require_client_cert`, a client without a certificate the CA signed is refused at the
    /// handshake (mTLS).
    pub(crate) fn start_tls(dir: &Path, require_client_cert: bool) -> Self {
        let ca = TestCa::new();
        let (cert, key) = ca.client_cert();
        let files = TlsFiles {
            ca: dir.join("test-ca.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        };
        std::fs::write(&files.ca, &ca.pem).expect("write the test CA");
        std::fs::write(&files.client_cert, cert).expect("write the client certificate");
        std::fs::write(&files.client_key, key).expect("write the client key");
        let acceptor = TlsAcceptor::from(Arc::new(ca.server_config(require_client_cert)));
        Self::serve(Some(acceptor), Some(files))
    }

    fn serve(tls: Option<TlsAcceptor>, files: Option<TlsFiles>) -> Self {
        let shared = Arc::new(Shared {
            control: Mutex::new(Control::default()),
            seen: Mutex::new(Vec::new()),
            token_forms: Mutex::new(Vec::new()),
            token_fetches: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            handshakes_failed: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            started: Instant::now(),
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let for_conns = shared.clone();
        let port = Switchable::open("target server", move |stream, closed| {
            connection(stream, tls.clone(), for_conns.clone(), closed)
        });
        TargetServer {
            shared,
            port,
            scheme,
            tls: files,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.port
    }

    /// `http://127.0.0.1:PORT` + `path` (https for the TLS variants).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port.port)
    }

    /// The token endpoint's URL.
    pub(crate) fn token_url(&self) -> String {
        self.url(TOKEN_PATH)
    }

    /// The files a TLS variant wrote.
    pub(crate) fn tls_files(&self) -> &TlsFiles {
        self.tls.as_ref().expect("a TLS server")
    }

    fn control<T>(&self, f: impl FnOnce(&mut Control) -> T) -> T {
        f(&mut self.shared.control.lock().unwrap())
    }

    /// Every request waits this long before it is answered.
    pub(crate) fn set_latency(&self, latency: Duration) {
        self.control(|c| c.latency = latency);
    }

    /// The next `n` requests (that pass authentication) are answered `status` with `body`.
    pub(crate) fn fail_next(&self, n: u64, status: u16, body: &str) {
        self.control(|c| {
            c.fail = (n > 0).then(|| Failing {
                left: n,
                status,
                body: body.to_owned(),
                retry_after_s: None,
            })
        });
    }

    /// The next `n` requests are answered 429 with `Retry-After: retry_after_s`.
    pub(crate) fn throttle_next(&self, n: u64, retry_after_s: u64) {
        self.control(|c| {
            c.fail = (n > 0).then(|| Failing {
                left: n,
                status: 429,
                body: "{\"error\":\"slow down\"}".into(),
                retry_after_s: Some(retry_after_s),
            })
        });
    }

    /// Scripted failures still to come.
    pub(crate) fn failures_left(&self) -> u64 {
        self.control(|c| c.fail.as_ref().map_or(0, |f| f.left))
    }

    pub(crate) fn set_auth(&self, auth: Auth) {
        self.control(|c| c.auth = auth);
    }

    /// Every token handed out so far stops being accepted (as if the provider rotated keys):
    /// the next request with one is answered 401.
    pub(crate) fn revoke_tokens(&self) {
        self.control(|c| c.tokens.clear());
    }

    /// Requests from now on are recorded as coming in run `run` (a test that restarts weir
    /// tells the server which run it is).
    pub(crate) fn set_run(&self, run: u32) {
        self.control(|c| c.run = run);
    }

    /// Stops accepting (connecting is refused) and drops every open connection; returns once
    /// the port is closed.
    pub(crate) fn down(&self) {
        self.port.close();
    }

    /// Listens again on the same port.
    pub(crate) fn up(&self) {
        self.port.reopen();
    }

    /// Every request the API received (not the token endpoint's), in the order they were
    /// answered (a key's next request only starts after the previous one's answer).
    pub(crate) fn requests(&self) -> Vec<Received> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests received in all (not the token endpoint's).
    pub(crate) fn total(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    /// Requests answered `status`.
    pub(crate) fn count_status(&self, status: u16) -> usize {
        let seen = self.shared.seen.lock().unwrap();
        seen.iter().filter(|r| r.status == status).count()
    }

    /// The events of every request answered 2xx, in order (a batch's events in its order).
    pub(crate) fn delivered(&self) -> Vec<Value> {
        let seen = self.shared.seen.lock().unwrap();
        seen.iter()
            .filter(|r| r.ok())
            .flat_map(|r| r.events())
            .collect()
    }

    /// [`TargetServer::delivered`] per value of the field `key`, each key's in order.
    pub(crate) fn delivered_by_key(&self, key: &str) -> BTreeMap<String, Vec<Value>> {
        let mut by_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for event in self.delivered() {
            let k = match &event[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            by_key.entry(k).or_default().push(event);
        }
        by_key
    }

    /// Events delivered (answered 2xx) so far.
    pub(crate) fn delivered_count(&self) -> usize {
        let seen = self.shared.seen.lock().unwrap();
        seen.iter()
            .filter(|r| r.ok())
            .map(|r| r.events().len())
            .sum()
    }

    /// The most requests that arrived within any window of `window` (sliding).
    pub(crate) fn most_within(&self, window: Duration) -> usize {
        let seen = self.shared.seen.lock().unwrap();
        crate::api_server::most_within(seen.iter().map(|r| r.at).collect(), window)
    }

    /// The most requests that were being answered at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Tokens the token endpoint handed out.
    pub(crate) fn token_fetches(&self) -> u64 {
        self.shared.token_fetches.load(Ordering::SeqCst)
    }

    /// The forms posted to the token endpoint, in order.
    pub(crate) fn token_forms(&self) -> Vec<BTreeMap<String, String>> {
        self.shared.token_forms.lock().unwrap().clone()
    }

    /// Requests answered 401 because their token had expired.
    pub(crate) fn expired_tokens_refused(&self) -> u64 {
        self.shared.expired.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed.
    pub(crate) fn handshakes_failed(&self) -> u64 {
        self.shared.handshakes_failed.load(Ordering::SeqCst)
    }

    /// Forgets what was received (not the settings).
    pub(crate) fn reset_counts(&self) {
        self.shared.seen.lock().unwrap().clear();
        self.shared.max_in_flight.store(0, Ordering::SeqCst);
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    closed: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let for_answers = shared.clone();
    let answer = move |req| {
        let shared = for_answers.clone();
        async move { answer(&shared, req).await }
    };
    match tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => serve_http(stream, closed, answer).await,
            Err(_) => {
                shared.handshakes_failed.fetch_add(1, Ordering::SeqCst);
            }
        },
        None => serve_http(stream, closed, answer).await,
    }
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let at = shared.started.elapsed();
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return json(400, "{\"error\":\"unreadable body\"}".into());
    };
    if parts.uri.path() == TOKEN_PATH {
        return token(shared, &parts.method, &body);
    }
    let _in_flight = InFlight::enter(shared);
    let (latency, run) = {
        let c = shared.control.lock().unwrap();
        (c.latency, c.run)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Checked after the latency: a token valid when the request arrived may have expired by
    // the time it would be accepted.
    let (status, text, retry_after) = {
        let mut c = shared.control.lock().unwrap();
        if let Some(refused) = authenticate(shared, &mut c, &parts.headers) {
            (401, refused, None)
        } else if let Some(f) = &mut c.fail {
            let answer = (f.status, f.body.clone(), f.retry_after_s);
            f.left -= 1;
            if f.left == 0 {
                c.fail = None;
            }
            answer
        } else {
            (200, "{\"ok\":true}".to_owned(), None)
        }
    };
    shared.seen.lock().unwrap().push(Received {
        at,
        run,
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.to_string()),
        headers: parts.headers,
        body,
        status,
    });
    let mut response = json(status, text);
    if let Some(s) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    response
}

/// Why a request is refused (401), or `None` if it may pass.
fn authenticate(shared: &Shared, c: &mut Control, headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match &c.auth {
        Auth::None => None,
        Auth::Basic { user, password } => {
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            (header("authorization") != Some(&format!("Basic {expected}")))
                .then(|| "{\"error\":\"bad credentials\"}".into())
        }
        Auth::ApiKey {
            header: name,
            value,
        } => (header(name) != Some(value.as_str()))
            .then(|| format!("{{\"error\":\"missing or wrong {name}\"}}")),
        Auth::OAuth2 { .. } => {
            let token = header("authorization").and_then(|a| a.strip_prefix("Bearer "));
            match token.and_then(|t| c.tokens.get(t)) {
                None => Some("{\"error\":\"invalid_token\"}".into()),
                Some(expires) if *expires <= Instant::now() => {
                    shared.expired.fetch_add(1, Ordering::SeqCst);
                    Some("{\"error\":\"invalid_token\",\"error_description\":\"expired\"}".into())
                }
                Some(_) => None,
            }
        }
    }
}

/// The token endpoint: client credentials in a form, a new token each time.
fn token(shared: &Shared, method: &hyper::Method, body: &[u8]) -> Response<Body> {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    shared.token_forms.lock().unwrap().push(form.clone());
    let mut c = shared.control.lock().unwrap();
    let Auth::OAuth2 {
        client_id,
        client_secret,
        expires_in,
    } = c.auth.clone()
    else {
        return json(404, "{\"error\":\"no token endpoint\"}".into());
    };
    let field = |k: &str| form.get(k).map(String::as_str);
    if method != hyper::Method::POST || field("grant_type") != Some("client_credentials") {
        return json(400, "{\"error\":\"unsupported_grant_type\"}".into());
    }
    if field("client_id") != Some(&client_id) || field("client_secret") != Some(&client_secret) {
        return json(401, "{\"error\":\"invalid_client\"}".into());
    }
    let n = shared.token_fetches.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("t{n}");
    c.tokens.insert(token.clone(), Instant::now() + expires_in);
    json(
        200,
        format!(
            "{{\"access_token\":\"{token}\",\"expires_in\":{},\"token_type\":\"Bearer\"}}",
            expires_in.as_secs()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blocking client for the server's own tests: status and body (status 0 if refused).
    fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let result = if method == "GET" {
            let mut r = agent.get(url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call()
        } else {
            let mut r = agent.post(url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.send(body)
        };
        match result {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    #[test]
    fn it_records_fails_throttles_and_goes_down_on_demand() {
        let api = TargetServer::start();
        let post = |body: &str| call("POST", &api.url("/orders/a%2Fb?x=1"), &[], body).0;
        assert_eq!(post("{\"k\":\"a\",\"seq\":1}"), 200);
        api.fail_next(2, 400, "no such order");
        assert_eq!(
            call("POST", &api.url("/o"), &[], "{}"),
            (400, "no such order".into())
        );
        assert_eq!(post("[{\"k\":\"a\",\"seq\":2}]"), 400);
        api.throttle_next(1, 3);
        assert_eq!(post("{}"), 429);
        assert_eq!(api.failures_left(), 0);
        api.set_run(1);
        assert_eq!(
            post("[{\"k\":\"b\",\"seq\":3},{\"k\":\"a\",\"seq\":4}]"),
            200
        );
        api.down();
        assert_eq!(post("{}"), 0, "refused while down");
        api.up();
        assert_eq!(post("{\"k\":\"a\",\"seq\":5}"), 200);

        let r = api.requests();
        assert_eq!(r.len(), 6, "the refused one is not recorded");
        assert_eq!(
            (r[0].method.as_str(), r[0].target.as_str()),
            ("POST", "/orders/a%2Fb?x=1")
        );
        assert_eq!((r[0].run, r[4].run), (0, 1));
        assert_eq!(r[3].status, 429);
        assert!(r.windows(2).all(|w| w[0].at <= w[1].at));
        let seqs = |v: &[Value]| {
            v.iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(&api.delivered()), [1, 3, 4, 5]);
        assert_eq!(api.delivered_count(), 4);
        let by_key = api.delivered_by_key("k");
        assert_eq!(seqs(&by_key["a"]), [1, 4, 5]);
        assert_eq!(seqs(&by_key["b"]), [3]);
        assert_eq!((api.count_status(400), api.total()), (2, 6));
        assert_eq!(api.most_within(Duration::from_secs(3600)), 6);
        assert!(api.max_in_flight() >= 1);
        api.reset_counts();
        assert_eq!(api.total(), 0);
    }

    #[test]
    fn basic_and_api_key_credentials_are_checked() {
        let api = TargetServer::start();
        api.set_auth(Auth::Basic {
            user: "u".into(),
            password: "p w".into(),
        });
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:p w")
        );
        assert_eq!(
            call("POST", &api.url("/"), &[("authorization", &basic)], "{}").0,
            200
        );
        assert_eq!(
            call(
                "POST",
                &api.url("/"),
                &[("authorization", "Basic eDp5")],
                "{}"
            )
            .0,
            401
        );
        assert_eq!(call("POST", &api.url("/"), &[], "{}").0, 401);
        api.set_auth(Auth::ApiKey {
            header: "x-api-key".into(),
            value: "k1".into(),
        });
        assert_eq!(
            call("POST", &api.url("/"), &[("x-api-key", "k1")], "{}").0,
            200
        );
        assert_eq!(
            call("POST", &api.url("/"), &[("x-api-key", "k2")], "{}").0,
            401
        );
        // A refused request is still recorded, answered 401.
        assert_eq!(api.count_status(401), 3);
    }

    #[test]
    fn oauth_tokens_are_handed_out_checked_expire_and_can_be_revoked() {
        let api = TargetServer::start();
        api.set_auth(Auth::OAuth2 {
            client_id: "weir".into(),
            client_secret: "s3cret".into(),
            expires_in: Duration::from_secs(1),
        });
        let form = "grant_type=client_credentials&client_id=weir&client_secret=s3cret&scope=orders";
        let form_type = [("content-type", "application/x-www-form-urlencoded")];
        let (status, body) = call("POST", &api.token_url(), &form_type, form);
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["access_token"].as_str(), v["expires_in"].as_u64()),
            (Some("t1"), Some(1))
        );
        assert_eq!(v["token_type"], "Bearer");
        let with = |t: &str| {
            call(
                "POST",
                &api.url("/x"),
                &[("authorization", &format!("Bearer {t}"))],
                "{}",
            )
            .0
        };
        assert_eq!(with("t1"), 200);
        assert_eq!(with("t9"), 401, "unknown token");
        assert_eq!(call("POST", &api.url("/x"), &[], "{}").0, 401, "no token");
        let bad = "grant_type=client_credentials&client_id=weir&client_secret=nope";
        assert_eq!(call("POST", &api.token_url(), &form_type, bad).0, 401);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(with("t1"), 401, "expired");
        assert_eq!(api.expired_tokens_refused(), 1);
        assert_eq!(call("POST", &api.token_url(), &form_type, form).0, 200);
        assert_eq!(with("t2"), 200);
        api.revoke_tokens();
        assert_eq!(with("t2"), 401, "revoked");
        assert_eq!(api.token_fetches(), 2);
        let forms = api.token_forms();
        assert_eq!(forms.len(), 3);
        assert_eq!(forms[0]["scope"], "orders");
        assert_eq!(api.total(), 6, "token requests are not API requests");
    }

    #[test]
    fn tls_and_mtls_accept_a_client_the_ca_trusts_and_refuse_one_without_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let api = TargetServer::start_tls(dir.path(), false);
        let files = api.tls_files();
        assert!(api.url("/").starts_with("https://"));
        assert!(tls_post(api.port(), &files.ca, None).starts_with("HTTP/1.1 200"));

        let dir = tempfile::tempdir().unwrap();
        let api = TargetServer::start_tls(dir.path(), true);
        let files = api.tls_files();
        let client = Some((files.client_cert.as_path(), files.client_key.as_path()));
        let answer = tls_post(api.port(), &files.ca, client);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(
            tls_post(api.port(), &files.ca, None),
            "",
            "no client certificate"
        );
        assert_eq!((api.total(), api.handshakes_failed()), (1, 1));
    }

    /// `POST /` over TLS trusting only `ca`, with a client certificate if given: the whole
    /// answer ("" if the handshake or the request failed).
    fn tls_post(port: u16, ca: &Path, client: Option<(&Path, &Path)>) -> String {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(cert).unwrap()],
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let Ok(mut tls) = connector.connect(name, tcp).await else {
                return String::new();
            };
            let request = "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
            if tls.write_all(request.as_bytes()).await.is_err() {
                return String::new();
            }
            let mut answer = String::new();
            let _ = tls.read_to_string(&mut answer).await;
            answer
        })
    }
}
