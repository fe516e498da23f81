//! `[source]` with `type = "http"`: the table as written, and its checks (`weir check`).

use super::auth::AuthTable;
use crate::config::component::KeyError;
use crate::source::Format;
use serde::Deserialize;
use schemars::JsonSchema;
use std::net::SocketAddr;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSourceConfig {
    /// The address to listen on, `host:port`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The paths that accept POSTs; any other path is answered 404.
    #[serde(default = "default_paths")]
    pub paths: Vec<String>,
    /// How a body's records become events' data.
    #[serde(default)]
    pub format: Format,
    /// Events per batch handed to the pipeline at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longer bodies are refused with 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Events accepted and not yet finished past which requests are answered 429.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// The write-ahead log's disk quota: past it requests are answered 503.
    #[serde(default = "default_max_log_bytes")]
    pub max_log_bytes: u64,
    /// The size at which the log starts a new segment file.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Request headers copied into `meta.headers` (names, any case; never `authorization`).
    #[serde(default)]
    pub headers: Vec<String>,
    /// The events' ordering key, a template (`"<$.data.customer>"`); none by default.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub auth: Option<AuthTable>,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

/// `[source.tls]`: serve HTTPS with this certificate chain and key (PEM files).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TlsFiles {
    /// The server's TLS configuration from these files, or the key at fault (`weir check`
    /// loads it too).
    pub(super) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, KeyError> {
        let files = self;
        let cert = std::fs::read(&files.cert_file)
            .map_err(|e| -> KeyError { ("tls.cert_file", format!("cannot read {}: {e}", files.cert_file.display()).into()) })?;
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| -> KeyError { ("tls.cert_file", format!("{}: not PEM certificates: {e}", files.cert_file.display()).into()) })?;
        if chain.is_empty() {
            return Err((
                "tls.cert_file",
                format!("{} holds no PEM certificate", files.cert_file.display()).into(),
            ));
        }
        let key = std::fs::read(&files.key_file)
            .map_err(|e| -> KeyError { ("tls.key_file", format!("cannot read {}: {e}", files.key_file.display()).into()) })?;
        let key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| -> KeyError { ("tls.key_file", format!("{}: no PEM private key: {e}", files.key_file.display()).into()) })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| -> KeyError { ("tls", e.to_string().into()) })?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| -> KeyError { ("tls.key_file", format!("does not go with cert_file: {e}").into()) })?;
        Ok(Arc::new(config))
    }
}

fn default_listen() -> String {
    "127.0.0.1:8088".into()
}
fn default_paths() -> Vec<String> {
    vec!["/events".into()]
}
fn default_batch_size() -> usize {
    256
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_max_in_flight() -> usize {
    10_000
}
fn default_max_log_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}

/// Headers that never go into an event: they carry credentials.
const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

impl HttpSourceConfig {
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        self.listen_addr().map_err(|e| ("listen", e))?;
        if self.paths.is_empty() {
            return Err(("paths", "must list at least one path".into()));
        }
        for p in &self.paths {
            if !p.starts_with('/') {
                return Err(("paths", format!("{p:?} must start with `/`")));
            }
            if p.contains(['?', '#']) || p.chars().any(char::is_whitespace) {
                return Err((
                    "paths",
                    format!("{p:?} must be a plain path (no query, fragment or spaces)"),
                ));
            }
        }
        crate::source::check_batch_size(self.batch_size)?;
        if self.max_body_bytes == 0 {
            return Err(("max_body_bytes", "must be at least 1".into()));
        }
        if self.max_in_flight == 0 {
            return Err(("max_in_flight", "must be at least 1".into()));
        }
        if self.segment_bytes < 4096 {
            return Err(("segment_bytes", "must be at least 4096".into()));
        }
        if self.max_log_bytes < self.segment_bytes {
            return Err((
                "max_log_bytes",
                format!(
                    "must be at least segment_bytes ({}): the log needs room for one segment",
                    self.segment_bytes
                ),
            ));
        }
        for h in &self.headers {
            let lower = h.to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                return Err(("headers", format!("{h:?} is not a header name")));
            }
            if SECRET_HEADERS.contains(&lower.as_str()) {
                return Err((
                    "headers",
                    format!("{h:?} carries credentials and is never copied into events"),
                ));
            }
        }
        if let Some(k) = &self.key {
            crate::template::Template::parse(k)
                .map_err(|e| ("key", format!("invalid template: {e}")))?;
        }
        if let Some(a) = &self.auth {
            a.check()?;
        }
        Ok(())
    }

    pub(super) fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "{:?} is not an address to listen on; give `IP:PORT` (\"127.0.0.1:8088\", \"0.0.0.0:8088\")",
                self.listen
            )
        })
    }

    /// Header names to copy, lower-cased.
    pub(super) fn header_names(&self) -> Vec<String> {
        self.headers.iter().map(|h| h.to_ascii_lowercase()).collect()
    }

    pub(super) fn preflight(&self) -> Result<(), KeyError> {
        if let Some(a) = &self.auth {
            a.verifier()?;
        }
        if let Some(t) = &self.tls {
            t.server_config()?;
        }
        Ok(())
    }
}
