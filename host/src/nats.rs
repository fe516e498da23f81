//! What the NATS JetStream source and sink share: how to reach the servers (URLs, user and
//! password or a token, TLS), connecting within a timeout, and what `weir check --connect` asks.
//!
//! async-nats is built without its `server_2_10`+ features, so that every request it makes is
//! one a 2.9 server understands, and without `nkeys`: credentials files and nkeys are not
//! offered.

use crate::http_client::{Secret, SecretError};
use schemars::JsonSchema;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// A server URL or a list of them: `servers = "nats://127.0.0.1:4222"` or `["a:4222", "b:4222"]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Servers {
    One(String),
    Many(Vec<String>),
}

impl Servers {
    pub(crate) fn list(&self) -> Vec<&str> {
        match self {
            Servers::One(s) => vec![s.as_str()],
            Servers::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// The URLs as they may be shown: a password in one is replaced by `***`.
    pub(crate) fn shown(&self) -> String {
        self.list()
            .into_iter()
            .map(redact)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `nats://user:secret@host` → `nats://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    match rest.split_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}:***@{host}"),
            None => format!("{scheme}***@{host}"),
        },
        None => url.to_owned(),
    }
}

/// How to reach the servers: the keys source and sink tables both take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connection<'a> {
    pub servers: &'a Servers,
    pub user: Option<&'a str>,
    pub password: Option<&'a Secret>,
    pub token: Option<&'a Secret>,
    /// A CA certificate (PEM) to trust besides the system's.
    pub tls_ca: Option<&'a PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify clients.
    pub tls_cert: Option<&'a PathBuf>,
    pub tls_key: Option<&'a PathBuf>,
    /// Refuse a server that does not offer TLS.
    pub tls_required: bool,
    pub connect_timeout_ms: u64,
}

/// The default `connect_timeout_ms`.
pub(crate) fn default_connect_timeout_ms() -> u64 {
    5000
}

/// What the owner of a connection hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Connected,
    Disconnected,
    /// The client dropped messages for a subscription that did not keep up with them (they
    /// never reach it, as if lost on the way).
    SlowConsumer,
}

impl Connection<'_> {
    /// Checks the settings: `(key, message)`.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        let servers = self.servers.list();
        if servers.is_empty() {
            return Err(("servers", "must name at least one server".into()));
        }
        for s in servers {
            let host = s.split_once("://").map_or(s, |(scheme, rest)| {
                if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
                    return "";
                }
                rest
            });
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err((
                    "servers",
                    format!(
                        "`{}` is not a NATS server URL (nats://host:4222 or host:4222)",
                        redact(s)
                    ),
                ));
            }
        }
        match (self.user, self.password, self.token) {
            (Some(_), None, _) => {
                // Worded as a missing key, so that a `password` refused for its value (written
                // in the file) is not reported a second time as missing.
                return Err((
                    "password",
                    "missing required key `password`: `user` needs one".into(),
                ));
            }
            (None, Some(_), _) => {
                return Err((
                    "user",
                    "missing required key `user`: `password` needs one".into(),
                ));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err((
                    "token",
                    "set either `user` and `password` or `token`, not both".into(),
                ));
            }
            _ => {}
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            let key = if self.tls_cert.is_some() {
                "tls_key"
            } else {
                "tls_cert"
            };
            return Err((key, "`tls_cert` and `tls_key` go together".into()));
        }
        if !(100..=600_000).contains(&self.connect_timeout_ms) {
            return Err((
                "connect_timeout_ms",
                "must be between 100 and 600000".into(),
            ));
        }
        Ok(())
    }

    /// The files the settings name that do not exist (`weir check`): `(key, message)`.
    pub(crate) fn preflight(&self) -> Result<(), (&'static str, String)> {
        for (key, path) in [
            ("tls_ca", self.tls_ca),
            ("tls_cert", self.tls_cert),
            ("tls_key", self.tls_key),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err((key, format!("{} is not a readable file", p.display())));
            }
        }
        Ok(())
    }

    /// Connects, within `connect_timeout_ms`. `events` hears of disconnections and reconnections
    /// (the client reconnects by itself, without end).
    pub(crate) async fn connect(
        &self,
        name: &str,
        events: Option<Box<dyn Fn(Link) + Send + Sync>>,
    ) -> Result<async_nats::Client, NatsError> {
        let mut opts = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_millis(self.connect_timeout_ms))
            .max_reconnects(None);
        if let (Some(user), Some(password)) = (self.user, self.password) {
            opts = opts.user_and_password(user.to_owned(), password.read()?);
        }
        if let Some(token) = self.token {
            opts = opts.token(token.read()?);
        }
        if let Some(ca) = self.tls_ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls_required {
            opts = opts.require_tls(true);
        }
        if let Some(events) = events {
            let events = std::sync::Arc::new(events);
            opts = opts.event_callback(move |event| {
                let events = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => events(Link::Connected),
                        async_nats::Event::Disconnected => events(Link::Disconnected),
                        async_nats::Event::SlowConsumer(_) => events(Link::SlowConsumer),
                        _ => {}
                    }
                }
            });
        }
        let servers: Vec<async_nats::ServerAddr> = self
            .servers
            .list()
            .into_iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::io::Error| NatsError::Connect {
                servers: self.servers.shown(),
                message: e.to_string(),
            })?;
        let timeout = Duration::from_millis(self.connect_timeout_ms);
        match tokio::time::timeout(timeout, opts.connect(servers)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(NatsError::Connect {
                servers: self.servers.shown(),
                message: e.to_string(),
            }),
            Err(_) => Err(NatsError::Connect {
                servers: self.servers.shown(),
                message: format!("no answer within {} ms", self.connect_timeout_ms),
            }),
        }
    }
}

/// A JetStream context whose requests (and publish acknowledgements) wait at most `timeout`.
pub(crate) fn jetstream(
    client: async_nats::Client,
    timeout: Duration,
) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(timeout)
        .max_ack_inflight(65_536)
        .backpressure_on_inflight(true)
        .build(client)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum NatsError {
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error("cannot connect to nats {servers}: {message}")]
    Connect { servers: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// Whether `e` says the stream does not exist.
pub(crate) fn stream_missing(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::context::GetStreamErrorKind;
    matches!(e.kind(), GetStreamErrorKind::JetStream(j)
        if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// Whether `e` says the consumer does not exist.
pub(crate) fn consumer_missing(e: &async_nats::jetstream::context::ConsumerInfoError) -> bool {
    use async_nats::jetstream::context::ConsumerInfoErrorKind;
    match e.kind() {
        ConsumerInfoErrorKind::NotFound => true,
        ConsumerInfoErrorKind::JetStream(j) => {
            j.error_code() == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND
        }
        _ => false,
    }
}

/// What `weir check --connect` reports of a source: connected, the stream found, and the
/// consumer found (or, with `create_consumer`, to be created).
pub(crate) async fn reach_consumer(
    c: &Connection<'_>,
    stream: &str,
    consumer: &str,
    create: bool,
    timeout: Duration,
) -> Result<String, (&'static str, NatsError)> {
    let client = c
        .connect("weir check", None)
        .await
        .map_err(|e| ("servers", e))?;
    let js = jetstream(client, timeout);
    let s = js.get_stream(stream).await.map_err(|e| {
        let message = if stream_missing(&e) {
            format!("no stream `{stream}` on nats {}", c.servers.shown())
        } else {
            format!("stream `{stream}`: {e}")
        };
        ("stream", NatsError::Other(message))
    })?;
    let found = s.consumer_info(consumer).await;
    match found {
        Ok(_) => Ok(format!(
            "nats {} stream {stream} consumer {consumer}",
            c.servers.shown()
        )),
        Err(e) if consumer_missing(&e) && create => Ok(format!(
            "nats {} stream {stream} (consumer {consumer} does not exist yet: weir creates it)",
            c.servers.shown()
        )),
        Err(e) if consumer_missing(&e) => Err((
            "consumer",
            NatsError::Other(format!(
                "no consumer `{consumer}` on stream `{stream}` (set create_consumer = true to have weir create it)"
            )),
        )),
        Err(e) => Err((
            "consumer",
            NatsError::Other(format!("consumer `{consumer}`: {e}")),
        )),
    }
}

/// What `weir check --connect` reports of a sink: connected, and a stream found for the subject
/// when it does not depend on the event.
pub(crate) async fn reach_subject(
    c: &Connection<'_>,
    subject: Option<&str>,
    timeout: Duration,
) -> Result<String, (&'static str, NatsError)> {
    let client = c
        .connect("weir check", None)
        .await
        .map_err(|e| ("servers", e))?;
    let js = jetstream(client, timeout);
    let Some(subject) = subject else {
        return Ok(format!(
            "nats {} (the subject is rendered per event)",
            c.servers.shown()
        ));
    };
    match js.stream_by_subject(subject).await {
        Ok(stream) => Ok(format!(
            "nats {} stream {stream} for subject {subject}",
            c.servers.shown()
        )),
        Err(e) => Err((
            "subject",
            NatsError::Other(format!("no stream for subject {subject} ({e})")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_not_shown() {
        assert_eq!(redact("nats://u:p@h:4222"), "nats://u:***@h:4222");
        assert_eq!(redact("nats://tok@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("h:4222"), "h:4222");
    }
}
