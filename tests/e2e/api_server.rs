//! A real HTTP API for the enrichment tests and benchmark: `GET /rates/{CUR}` answers
//! `{"rate": R}`, on 127.0.0.1 (plain, or TLS with a certificate from a test CA), served by a
//! runtime of its own so that it keeps answering whatever the test thread does. A test steers it
//! while weir runs (latency, failures with a status, 404s, slow, huge or malformed bodies, going
//! down and coming back on the same port) and reads what it saw (requests in all, per path, per
//! second, the most in flight at once, the headers), to check limits from the server's side.
//!
//! Self-contained (no `crate::` paths): the benchmark (host/benches/enrich.rs) includes it too.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How the body of a 200 answer is made.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum BodyMode {
    /// `{"rate": R}`.
    #[default]
    Normal,
    /// The same JSON, one byte at a time with this pause before each.
    Trickle(Duration),
    /// A JSON string of this many bytes: larger than a response cap.
    Huge(usize),
    /// Text that is not JSON.
    Malformed,
}

#[derive(Default)]
struct Control {
    rates: HashMap<String, f64>,
    latency: Duration,
    /// Requests still to fail, their status and `Retry-After` (seconds).
    fail: Option<(u64, u16, Option<u64>)>,
    missing: HashSet<String>,
    /// Currencies always answered with this status.
    broken: HashMap<String, u16>,
    body: BodyMode,
}

#[derive(Default)]
struct Seen {
    per_path: BTreeMap<String, u64>,
    /// When each request arrived, since the server started.
    arrivals: Vec<Duration>,
    /// The path (and query) of each request, in the order they arrived.
    order: Vec<String>,
    headers: Vec<HeaderMap>,
}

struct Shared {
    control: Mutex<Control>,
    seen: Mutex<Seen>,
    total: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    started: Instant,
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

/// The rate every currency has unless set otherwise.
pub(crate) const DEFAULT_RATE: f64 = 1.1;

pub(crate) struct ApiServer {
    shared: Arc<Shared>,
    port: Switchable,
    scheme: &'static str,
    ca_file: Option<PathBuf>,
}

impl ApiServer {
    /// A plain HTTP server on a free port.
    pub(crate) fn start() -> Self {
        Self::serve(None, None)
    }

    /// An HTTPS server whose certificate (for `127.0.0.1` and `localhost`) a fresh test CA
    /// signed; the CA's PEM is written to `dir/test-ca.pem` ([`ApiServer::ca_file`]).
    pub(crate) fn start_tls(dir: &Path) -> Self {
        let (config, ca_pem) = test_tls();
        let ca_file = dir.join("test-ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write the test CA");
        Self::serve(Some(TlsAcceptor::from(Arc::new(config))), Some(ca_file))
    }

    fn serve(tls: Option<TlsAcceptor>, ca_file: Option<PathBuf>) -> Self {
        let shared = Arc::new(Shared {
            control: Mutex::new(Control::default()),
            seen: Mutex::new(Seen::default()),
            total: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            started: Instant::now(),
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let for_conns = shared.clone();
        let port = Switchable::open("api server", move |stream, closed| {
            connection(stream, tls.clone(), for_conns.clone(), closed)
        });
        ApiServer {
            shared,
            port,
            scheme,
            ca_file,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.port
    }

    /// `http://127.0.0.1:PORT` + `path` (https for the TLS variant).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port.port)
    }

    /// The prefix plugins append a currency code to: `.../rates/`.
    pub(crate) fn rates_url(&self) -> String {
        self.url("/rates/")
    }

    /// The TLS variant's CA certificate file (for `ca_file`).
    pub(crate) fn ca_file(&self) -> &Path {
        self.ca_file.as_deref().expect("a TLS server")
    }

    fn control(&self, f: impl FnOnce(&mut Control)) {
        f(&mut self.shared.control.lock().unwrap());
    }

    pub(crate) fn set_rate(&self, currency: &str, rate: f64) {
        self.control(|c| {
            c.rates.insert(currency.to_owned(), rate);
        });
    }

    /// Every request waits this long before it is answered.
    pub(crate) fn set_latency(&self, latency: Duration) {
        self.control(|c| c.latency = latency);
    }

    /// The next `n` requests are answered `status` (with an empty JSON body).
    pub(crate) fn fail_next(&self, n: u64, status: u16) {
        self.control(|c| c.fail = (n > 0).then_some((n, status, None)));
    }

    /// The next `n` requests are answered 429 with `Retry-After: secs`.
    pub(crate) fn throttle_next(&self, n: u64, retry_after_s: u64) {
        self.control(|c| c.fail = (n > 0).then_some((n, 429, Some(retry_after_s))));
    }

    /// Requests failed so far by [`ApiServer::fail_next`] that are still to come.
    pub(crate) fn failures_left(&self) -> u64 {
        self.shared
            .control
            .lock()
            .unwrap()
            .fail
            .map_or(0, |(n, _, _)| n)
    }

    /// `currency` has no rate: 404.
    pub(crate) fn remove_currency(&self, currency: &str) {
        self.control(|c| {
            c.missing.insert(currency.to_owned());
        });
    }

    /// `currency` is always answered `status`.
    pub(crate) fn break_currency(&self, currency: &str, status: u16) {
        self.control(|c| {
            c.broken.insert(currency.to_owned(), status);
        });
    }

    /// `currency` is answered again.
    pub(crate) fn mend_currency(&self, currency: &str) {
        self.control(|c| {
            c.broken.remove(currency);
        });
    }

    pub(crate) fn set_body(&self, mode: BodyMode) {
        self.control(|c| c.body = mode);
    }

    /// Stops accepting (the listener is closed: connecting is refused) and drops every open
    /// connection; returns once the port is closed.
    pub(crate) fn down(&self) {
        self.port.close();
    }

    /// Listens again on the same port.
    pub(crate) fn up(&self) {
        self.port.reopen();
    }

    /// Requests received in all.
    pub(crate) fn total(&self) -> u64 {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// Requests received for `path` (e.g. `/rates/USD`).
    pub(crate) fn count(&self, path: &str) -> u64 {
        let seen = self.shared.seen.lock().unwrap();
        seen.per_path.get(path).copied().unwrap_or(0)
    }

    /// The path (and query) of every request received, in the order they arrived.
    pub(crate) fn arrivals(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().order.clone()
    }

    /// Requests received per path.
    pub(crate) fn per_path(&self) -> BTreeMap<String, u64> {
        self.shared.seen.lock().unwrap().per_path.clone()
    }

    /// Requests received in each whole second since the server started (index = second).
    pub(crate) fn per_second(&self) -> Vec<u64> {
        let seen = self.shared.seen.lock().unwrap();
        let mut buckets = Vec::new();
        for at in &seen.arrivals {
            let s = at.as_secs() as usize;
            if buckets.len() <= s {
                buckets.resize(s + 1, 0);
            }
            buckets[s] += 1;
        }
        buckets
    }

    /// The most requests that arrived within any window of `window` (sliding, not aligned to
    /// whole seconds like [`ApiServer::per_second`]).
    pub(crate) fn most_within(&self, window: Duration) -> usize {
        most_within(self.shared.seen.lock().unwrap().arrivals.clone(), window)
    }

    /// The most requests that were being answered at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// The value of header `name` in each request received, in order.
    pub(crate) fn header_values(&self, name: &str) -> Vec<Option<String>> {
        let seen = self.shared.seen.lock().unwrap();
        seen.headers
            .iter()
            .map(|h| {
                h.get(name)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect()
    }

    /// Forgets the counts (not the settings).
    pub(crate) fn reset_counts(&self) {
        *self.shared.seen.lock().unwrap() = Seen::default();
        self.shared.total.store(0, Ordering::SeqCst);
        self.shared.max_in_flight.store(0, Ordering::SeqCst);
    }
}

async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    closed: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let answer = move |req| {
        let shared = shared.clone();
        async move { answer(&shared, req).await }
    };
    match tls {
        Some(acceptor) => {
            // A client that refuses the certificate ends here: nothing to answer.
            if let Ok(stream) = acceptor.accept(stream).await {
                serve_http(stream, closed, answer).await;
            }
        }
        None => serve_http(stream, closed, answer).await,
    }
}

/// Serves HTTP/1.1 on one connection (plain or after a TLS handshake), each request answered
/// by `answer`, until the client closes it or the port closes (`closed` turns true).
pub(crate) async fn serve_http<IO, F, Fut>(io: IO, mut closed: watch::Receiver<bool>, answer: F)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let answered = answer(req);
        async move { Ok::<_, Infallible>(answered.await) }
    });
    let serve =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = serve => {}
        _ = closed.wait_for(|c| *c) => {}
    }
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let _in_flight = InFlight::enter(shared);
    let path = req.uri().path().to_owned();
    shared.total.fetch_add(1, Ordering::SeqCst);
    {
        let mut seen = shared.seen.lock().unwrap();
        *seen.per_path.entry(path.clone()).or_default() += 1;
        seen.arrivals.push(shared.started.elapsed());
        let target = req
            .uri()
            .path_and_query()
            .map_or(path.clone(), |p| p.to_string());
        seen.order.push(target);
        seen.headers.push(req.headers().clone());
    }
    let (latency, fail, currency, rate, body) = {
        let mut c = shared.control.lock().unwrap();
        let fail = match &mut c.fail {
            Some((n, status, retry_after)) => {
                let this = (*status, *retry_after);
                *n -= 1;
                if *n == 0 {
                    c.fail = None;
                }
                Some(this)
            }
            None => None,
        };
        let currency = path.strip_prefix("/rates/").map(str::to_owned);
        let broken = currency.as_ref().and_then(|cur| c.broken.get(cur).copied());
        let fail = fail.or(broken.map(|status| (status, None)));
        let known = currency.as_ref().filter(|cur| !c.missing.contains(*cur));
        let rate = known.map(|cur| c.rates.get(cur).copied().unwrap_or(DEFAULT_RATE));
        (c.latency, fail, currency, rate, c.body.clone())
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some((status, retry_after)) = fail {
        let mut r = json(status, "{}".into());
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert("retry-after", s.to_string().parse().unwrap());
        }
        return r;
    }
    let (Some(currency), Some(rate)) = (currency, rate) else {
        return json(404, format!("{{\"error\":\"no rate for {path}\"}}"));
    };
    let text = format!("{{\"rate\":{rate},\"currency\":\"{currency}\"}}");
    match body {
        BodyMode::Normal => json(200, text),
        BodyMode::Malformed => json(200, format!("<html>rate of {currency}: {rate}</html>")),
        BodyMode::Huge(n) => json(200, format!("\"{}\"", "x".repeat(n))),
        BodyMode::Trickle(pause) => {
            let bytes = Bytes::from(text);
            let stream = futures_util::stream::unfold(0usize, move |i| {
                let bytes = bytes.clone();
                async move {
                    if i >= bytes.len() {
                        return None;
                    }
                    tokio::time::sleep(pause).await;
                    let frame = Frame::data(bytes.slice(i..=i));
                    Some((Ok::<_, Infallible>(frame), i + 1))
                }
            });
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(StreamBody::new(stream).boxed_unsync())
                .unwrap()
        }
    }
}

pub(crate) fn json(status: u16, text: String) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)).boxed_unsync())
        .unwrap()
}

/// A server certificate for 127.0.0.1 and localhost signed by a fresh CA: the server's TLS
/// settings and the CA's PEM.
fn test_tls() -> (rustls::ServerConfig, String) {
    let ca = TestCa::new();
    (ca.server_config(false), ca.pem.clone())
}

/// A fresh certificate authority for one test: it signs a server certificate for 127.0.0.1
/// and localhost, and client certificates (mTLS).
pub(crate) struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA's certificate, PEM (what a client's `ca_file` holds).
    pub(crate) pem: String,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCa {
    pub(crate) fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "weir test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        TestCa {
            pem: ca_cert.pem(),
            der: ca_cert.der().clone(),
            issuer: Issuer::new(ca, ca_key),
        }
    }

    /// TLS settings of a server for 127.0.0.1 and localhost; with `client_auth`, a client must
    /// present a certificate this CA signed.
    pub(crate) fn server_config(&self, client_auth: bool) -> rustls::ServerConfig {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "weir test API");
        let cert = server.signed_by(&key, &self.issuer).unwrap();
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        // The provider named: whichever other crates enable, rustls then need not guess.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(vec![cert.der().clone()], key_der)
            .unwrap()
    }

    /// A client certificate this CA signed: its PEM and its private key's PEM.
    pub(crate) fn client_cert(&self) -> (String, String) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "weir test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = client.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// What a port does with one connection, until it ends or the port closes.
type Connection = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
type Handler = Arc<dyn Fn(TcpStream, watch::Receiver<bool>) -> Connection + Send + Sync>;

/// A port on 127.0.0.1 that can be closed (connecting is refused, open connections are
/// dropped) and opened again, each connection handed to `handler` with a signal that turns
/// true when the port closes. Runs on a runtime of its own.
pub(crate) struct Switchable {
    pub(crate) port: u16,
    what: &'static str,
    runtime: tokio::runtime::Runtime,
    handler: Handler,
    /// The open listener's close signal and its accept loop's end.
    open: Mutex<Option<(watch::Sender<bool>, std::sync::mpsc::Receiver<()>)>>,
}

impl Switchable {
    pub(crate) fn open<F, Fut>(what: &'static str, handler: F) -> Self
    where
        F: Fn(TcpStream, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(
            move |stream: TcpStream, closed: watch::Receiver<bool>| -> Connection {
                Box::pin(handler(stream, closed))
            },
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(what)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let s = Switchable {
            port,
            what,
            runtime,
            handler,
            open: Mutex::new(None),
        };
        s.accept(listener);
        s
    }

    fn accept(&self, listener: TcpListener) {
        let (close, closed) = watch::channel(false);
        let mut stop = closed.clone();
        let (ended, end) = std::sync::mpsc::channel();
        let handler = self.handler.clone();
        self.runtime.spawn(async move {
            // Every connection's task, so that closing can end them all before it returns:
            // a connection still forwarding after `close()` returned would let a test that
            // "cut" the server still get answers.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|c| *c) => break,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            connections.spawn(handler(stream, closed.clone()));
                        }
                        while connections.try_join_next().is_some() {}
                    }
                }
            }
            drop(listener);
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            let _ = ended.send(());
        });
        *self.open.lock().unwrap() = Some((close, end));
    }

    /// Closes the listener and every connection; returns once the port and every connection
    /// it accepted are closed.
    pub(crate) fn close(&self) {
        if let Some((close, end)) = self.open.lock().unwrap().take() {
            let _ = close.send(true);
            let _ = end.recv();
        }
    }

    /// Listens on the same port again (retrying while the OS still holds it).
    pub(crate) fn reopen(&self) {
        if self.open.lock().unwrap().is_some() {
            return;
        }
        let start = Instant::now();
        let listener = loop {
            match self
                .runtime
                .block_on(TcpListener::bind(("127.0.0.1", self.port)))
            {
                Ok(l) => break l,
                Err(e) if start.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{} cannot listen on {} again: {e}", self.what, self.port),
            }
        };
        self.accept(listener);
    }
}

impl Drop for Switchable {
    fn drop(&mut self) {
        self.close();
    }
}

/// The most of `arrivals` (times since a start) that fall within any window of `window`
/// (sliding): what a rate limit held at a server looks like.
pub(crate) fn most_within(mut arrivals: Vec<Duration>, window: Duration) -> usize {
    arrivals.sort();
    let mut most = 0;
    let mut start = 0;
    for end in 0..arrivals.len() {
        while arrivals[end] - arrivals[start] >= window {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str) -> (u16, String) {
        match ureq::get(url)
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .call()
        {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    #[test]
    fn the_api_answers_fails_on_demand_goes_down_and_comes_back() {
        let api = ApiServer::start();
        api.set_rate("USD", 0.9);
        let (status, body) = get(&api.url("/rates/USD"));
        assert_eq!(
            (status, body.as_str()),
            (200, "{\"rate\":0.9,\"currency\":\"USD\"}")
        );
        assert!(get(&api.url("/rates/GBP")).1.contains("\"rate\":1.1"));
        api.remove_currency("GBP");
        assert_eq!(get(&api.url("/rates/GBP")).0, 404);
        api.fail_next(2, 503);
        assert_eq!(get(&api.url("/rates/USD")).0, 503);
        assert_eq!(get(&api.url("/rates/USD")).0, 503);
        assert_eq!(get(&api.url("/rates/USD")).0, 200);
        api.throttle_next(1, 1);
        assert_eq!(get(&api.url("/rates/USD")).0, 429);
        api.set_body(BodyMode::Malformed);
        assert!(get(&api.url("/rates/USD")).1.starts_with("<html>"));
        api.set_body(BodyMode::Huge(1 << 20));
        assert!(get(&api.url("/rates/USD")).1.len() > 1 << 20);
        api.set_body(BodyMode::Trickle(Duration::from_millis(1)));
        assert!(get(&api.url("/rates/USD")).1.contains("0.9"));
        api.set_body(BodyMode::Normal);
        api.down();
        assert_eq!(get(&api.url("/rates/USD")).0, 0, "refused while down");
        api.up();
        assert_eq!(get(&api.url("/rates/USD")).0, 200);
        assert_eq!(api.count("/rates/USD"), 9);
        assert_eq!(api.count("/rates/GBP"), 2);
        assert_eq!(api.per_second().iter().sum::<u64>(), 11);
        assert!(api.most_within(Duration::from_secs(3600)) == 11);
        assert!(api.max_in_flight() >= 1);
        assert_eq!(api.per_path().len(), 2);
        assert_eq!(api.arrivals()[..2], ["/rates/USD", "/rates/GBP"]);
        assert!(api.url("/").contains(&api.port().to_string()));
        api.reset_counts();
        assert_eq!((api.total(), api.count("/rates/USD")), (0, 0));
    }

    #[test]
    fn the_tls_variant_writes_its_ca_and_answers_over_tls() {
        let dir = tempfile::tempdir().unwrap();
        let api = ApiServer::start_tls(dir.path());
        let pem = std::fs::read_to_string(api.ca_file()).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(api.url("/rates/EUR").starts_with("https://127.0.0.1:"));
        // Plain HTTP to the TLS port gets no answer.
        assert_eq!(get(&api.url("/rates/EUR").replace("https", "http")).0, 0);
        // A client trusting the CA gets the rate, for the name and for the address.
        for name in ["127.0.0.1", "localhost"] {
            let answer = tls_get(api.ca_file(), api.port(), name);
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(
                answer.ends_with("{\"rate\":1.1,\"currency\":\"EUR\"}"),
                "{answer}"
            );
        }
    }

    /// `GET /rates/EUR` over TLS, trusting only the CA in `ca_file`: the whole answer.
    fn tls_get(ca_file: &Path, port: u16, name: &str) -> String {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca_file).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let server = ServerName::try_from(name.to_owned()).unwrap();
            let mut tls = connector.connect(server, tcp).await.unwrap();
            let request =
                format!("GET /rates/EUR HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n");
            tls.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            let _ = tls.read_to_string(&mut answer).await;
            answer
        })
    }
}
