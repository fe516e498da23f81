//! The HTTP sink (`type = "http"`): each event, or up to `batch_size` events as a JSON array,
//! sent as one request to a URL rendered from the event, in per-key order, with basic, API-key
//! or OAuth 2 client-credentials auth, a rate limit and a concurrency cap shared by all lanes,
//! and TLS through rustls (system roots, a CA file, a client certificate).
//!
//! ```text
//! config.rs    the table and its checks
//! url.rs       the URL template rendered with values percent-encoded, and checked
//! request.rs   what is sent for an event (method, URL, headers, body); `weir dry-run`'s view
//! sink.rs      `write`: requests grouped and sent in per-key order
//! exchange.rs  one request: slot, rate, token, timeout; the answer made a result
//! oauth2.rs    the client-credentials token, cached and renewed
//! ```

mod answer;
mod config;
mod exchange;
mod oauth2;
mod request;
mod sink;
#[cfg(test)]
mod tests;
mod url;

pub(crate) use self::config::HttpSinkConfig;

use super::{Render, Sink, SinkContext, SinkError, SinkKind};
use crate::config::component::KeyError;
use crate::http_client::{ClientIdentity, RateLimit, client_config, https_client};
use crate::template::Template;
use async_trait::async_trait;
use self::config::Auth;
use request::Requests;
use std::time::Duration;

#[async_trait]
impl SinkKind for HttpSinkConfig {
    const KIND: &'static str = "http";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        self.check()
    }

    /// Reads no secret: they are shown as `"<secret>"`.
    fn preview(&self, pipeline: &str) -> Result<Box<dyn Render>, SinkError> {
        Ok(Box::new(Requests::new(self, pipeline, false)?))
    }

    /// The CA file, client certificate and key readable and usable; every secret present.
    fn preflight(&self) -> Result<(), KeyError> {
        self.tls().map_err(|(key, e)| (key, e.into()))?;
        for (key, secret) in self.secrets() {
            secret
                .read()
                .map_err(|e| (secret_key(&key), format!("{key}: {e}").into()))?;
        }
        Ok(())
    }

    /// Connects (TCP, and TLS for https) to the URL's host and port when the template writes
    /// them out; a URL whose host comes from the event cannot be reached before there is one.
    async fn reach(&self, _pipeline: &str, timeout: Duration) -> Result<Option<String>, KeyError> {
        let Some(origin) = literal_origin(&self.url) else {
            return Ok(None);
        };
        let tls = self.tls().map_err(|(key, e)| (key, e.into()))?;
        reach(&origin, tls, timeout)
            .await
            .map(Some)
            .map_err(|e| ("url", e.into()))
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        let requests = Requests::new(self, &ctx.pipeline, true)?;
        let tls = self
            .tls()
            .map_err(|(_, e)| SinkError::permanent(format!("http: {e}")))?;
        let client = https_client(tls);
        let timeout = Duration::from_millis(self.timeout_ms);
        let auth = self
            .auth()
            .map_err(|(key, why)| SinkError::permanent(format!("{key}: {why}")))?;
        let tokens = match &auth {
            Some(Auth::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            }) => {
                let secret = client_secret
                    .read()
                    .map_err(|e| SinkError::permanent(format!("auth.client_secret: {e}")))?;
                Some(oauth2::Tokens::new(
                    token_url,
                    client_id,
                    &secret,
                    scope.as_deref(),
                    audience.as_deref(),
                    client.clone(),
                    timeout,
                )?)
            }
            _ => None,
        };
        Ok(Box::new(sink::HttpSink {
            requests,
            client,
            timeout,
            batch_size: self.batch_size,
            slots: tokio::sync::Semaphore::new(self.max_concurrency),
            rate: self.rate_limit_per_s.map(RateLimit::new),
            tokens,
            metrics: sink::Metrics::new(&ctx.pipeline, &ctx.target),
        }))
    }
}

impl HttpSinkConfig {
    /// The TLS client configuration, or the key at fault and why.
    fn tls(&self) -> Result<rustls::ClientConfig, (&'static str, crate::http_client::TlsError)> {
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity { cert, key }),
            _ => None,
        };
        client_config(self.ca_file.as_deref(), identity).map_err(|e| {
            let key = match &e {
                crate::http_client::TlsError::CaFile { .. } => "ca_file",
                crate::http_client::TlsError::ClientCert { .. } => "client_cert",
                crate::http_client::TlsError::ClientKey { .. } => "client_key",
                crate::http_client::TlsError::Setup(_) => "url",
            };
            (key, e)
        })
    }
}

/// The table key a secret sits under, as `weir check` points at it.
fn secret_key(path: &str) -> &'static str {
    match path {
        "auth.password" => "auth.password",
        "auth.value" => "auth.value",
        "auth.client_secret" => "auth.client_secret",
        _ => "headers",
    }
}

/// `scheme://host:port` of a URL template that writes them out (no reference before the path).
fn literal_origin(template: &str) -> Option<::url::Url> {
    let (scheme, rest) = template.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..end]);
    let parsed = Template::parse(&origin).ok()?;
    parsed.constant("")?;
    if parsed.references_event() || origin.contains("<weir.") {
        return None;
    }
    ::url::Url::parse(&origin).ok()
}

/// Connects to `origin` (and for https, completes the TLS handshake) within `timeout`.
async fn reach(
    origin: &::url::Url,
    tls: rustls::ClientConfig,
    timeout: Duration,
) -> Result<String, String> {
    let host = origin.host_str().ok_or("no host")?.to_owned();
    let port = origin.port_or_known_default().ok_or("no port")?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        if origin.scheme() != "https" {
            return Ok::<String, String>(format!("connected to {host}:{port} (http)"));
        }
        let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
            .map_err(|e| format!("{host}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
        let version = stream
            .get_ref()
            .1
            .protocol_version()
            .map_or("TLS".to_owned(), |v| format!("{v:?}"));
        Ok(format!("connected to {host}:{port} ({version}, certificate trusted)"))
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(format!("no connection to {host}:{port} within {timeout:?}")))
}
