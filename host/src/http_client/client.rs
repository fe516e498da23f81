//! The pooled HTTP/1 client over rustls that plugins' `http` grant and the HTTP sink send with.

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A client for `http://` and `https://` URLs, keeping idle connections for reuse.
pub(crate) type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client trusting what `tls` says; idle connections are kept 30 s.
pub(crate) fn https_client(tls: rustls::ClientConfig) -> HttpsClient {
    let mut http = HttpConnector::new();
    // https:// URLs go to the TLS layer wrapped around this connector.
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// An error and its causes, on one line: hyper's own message ("client error (Connect)") says
/// little without them.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
