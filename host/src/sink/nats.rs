//! The NATS JetStream sink: each event is published to the subject its template renders, with
//! a `Nats-Msg-Id` header (by default the event's id, stable across re-reads), and the write
//! returns once the stream has acknowledged every message (a PubAck: stored). A message weir
//! publishes again after a crash is dropped by the stream if it comes within the stream's
//! duplicate window, so a re-sent event is stored once.
//!
//! A write publishes its messages in order without waiting, then awaits their acknowledgements
//! in that order; once one of a key's messages fails, the key's later messages of the write
//! fail too (retried after it, de-duplicated by their ids if they were stored). A subject no
//! stream takes is a permanent failure ("no stream for subject X"): the event goes to the DLQ.

use super::{Outgoing, Render, Rendered, Sink, SinkContext, SinkError, SinkFailure, SinkKind};
use crate::config::component::KeyError;
use crate::event::Envelope;
use crate::http_client::Secret;
use crate::nats::{Connection, Link, Servers};
use crate::template::Template;
use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_trait::async_trait;
use serde::Deserialize;
use schemars::JsonSchema;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NatsSinkConfig {
    pub servers: Servers,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default = "crate::nats::default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The subject, or a template (`"orders.<$.data.region>"`).
    pub subject: String,
    /// The `Nats-Msg-Id` header as a template; by default the event's id; `""` sends none.
    #[serde(default)]
    pub msg_id: Option<String>,
    /// Headers to set: name = template.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Copy the headers of events read from NATS (`meta.headers`, but `Nats-*` ones).
    #[serde(default = "yes")]
    pub carry_headers: bool,
    /// The header that carries each event's correlation id; `""` sends none.
    #[serde(default = "correlation_header")]
    pub correlation_header: String,
    /// How long a message's acknowledgement is awaited before it fails (retryable).
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn correlation_header() -> String {
    "correlation-id".to_owned()
}
fn default_ack_timeout_ms() -> u64 {
    10_000
}

#[async_trait]
impl SinkKind for NatsSinkConfig {
    const KIND: &'static str = "nats";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        self.connection().validate()?;
        if self.subject.is_empty() {
            return Err(("subject", "must not be empty".into()));
        }
        let template = |key: &'static str, text: &str| {
            Template::parse(text)
                .map(|_| ())
                .map_err(|e| (key, format!("invalid template: {e}")))
        };
        template("subject", &self.subject)?;
        if let Some(constant) = Template::parse(&self.subject)
            .ok()
            .and_then(|t| t.constant("p"))
            && !valid_subject(&constant)
        {
            return Err((
                "subject",
                format!("`{constant}` is not a subject to publish to (no spaces, `*` or `>`; no empty tokens)"),
            ));
        }
        if let Some(m) = &self.msg_id {
            template("msg_id", m)?;
        }
        for (name, text) in &self.headers {
            if !header_name_ok(name) {
                return Err((
                    "headers",
                    format!("`{name}` is not a header name (printable ASCII, no `:` or spaces)"),
                ));
            }
            template("headers", text)?;
        }
        if !self.correlation_header.is_empty() && !header_name_ok(&self.correlation_header) {
            return Err((
                "correlation_header",
                format!("`{}` is not a header name", self.correlation_header),
            ));
        }
        if !(100..=600_000).contains(&self.ack_timeout_ms) {
            return Err(("ack_timeout_ms", "must be between 100 and 600000".into()));
        }
        Ok(())
    }

    fn preview(&self, pipeline: &str) -> Result<Box<dyn Render>, SinkError> {
        Ok(Box::new(Addressing::new(self, pipeline)?))
    }

    fn preflight(&self) -> Result<(), KeyError> {
        self.connection()
            .preflight()
            .map_err(|(k, m)| (k, m.into()))
    }

    async fn reach(&self, pipeline: &str, timeout: Duration) -> Result<Option<String>, KeyError> {
        let fixed = Template::parse(&self.subject)
            .ok()
            .and_then(|t| t.constant(pipeline));
        crate::nats::reach_subject(&self.connection(), fixed.as_deref(), timeout)
            .await
            .map(Some)
            .map_err(|(k, e)| (k, e.into()))
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        let pipeline = ctx.pipeline.clone();
        let target = ctx.target.clone();
        let events: Box<dyn Fn(Link) + Send + Sync> = Box::new(move |link| match link {
            Link::Connected => {
                tracing::info!(pipeline = %pipeline, target = %target, "nats sink connected");
            }
            Link::Disconnected => {
                tracing::warn!(pipeline = %pipeline, target = %target, "nats sink disconnected; reconnecting");
            }
            // A sink subscribes only to the answers of its own requests.
            Link::SlowConsumer => {}
        });
        let client = self
            .connection()
            .connect(&format!("weir {}", ctx.pipeline), Some(events))
            .await
            .map_err(|e| SinkError::permanent(format!("servers: {e}")))?;
        let js =
            crate::nats::jetstream(client.clone(), Duration::from_millis(self.ack_timeout_ms));
        let addressing = Addressing::new(self, &ctx.pipeline)?;
        if let Some(subject) = &addressing.fixed_subject
            && js.stream_by_subject(subject.as_str()).await.is_err()
        {
            tracing::warn!(pipeline = %ctx.pipeline, subject = %subject,
                "no stream takes this subject yet: its events go to the DLQ until one does");
        }
        tracing::info!(pipeline = %ctx.pipeline, servers = %self.servers.shown(), subject = %self.subject,
            "nats sink started");
        Ok(Box::new(NatsSink {
            client,
            js,
            addressing,
        }))
    }
}

impl NatsSinkConfig {
    fn connection(&self) -> Connection<'_> {
        Connection {
            servers: &self.servers,
            user: self.user.as_deref(),
            password: self.password.as_ref(),
            token: self.token.as_ref(),
            tls_ca: self.tls_ca.as_ref(),
            tls_cert: self.tls_cert.as_ref(),
            tls_key: self.tls_key.as_ref(),
            tls_required: self.tls_required,
            connect_timeout_ms: self.connect_timeout_ms,
        }
    }
}

/// A subject messages can be published to: tokens separated by dots, none empty, no wildcards
/// or white space.
fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">" && !t.contains(char::is_whitespace))
}

/// Where and how each event is published: its templates, rendered per event. Needs no
/// connection, so that `weir dry-run` can show a message without connecting.
struct Addressing {
    pipeline: String,
    subject: Template,
    fixed_subject: Option<String>,
    /// None: the event id; Some(None): no id.
    msg_id: Option<Option<Template>>,
    headers: Vec<(String, Template)>,
    carry_headers: bool,
    correlation_header: Option<String>,
}

struct Address {
    subject: String,
    headers: HeaderMap,
}

const MSG_ID: &str = "Nats-Msg-Id";

impl Addressing {
    fn new(cfg: &NatsSinkConfig, pipeline: &str) -> Result<Self, SinkError> {
        let subject = Template::parse(&cfg.subject)
            .map_err(|e| SinkError::permanent(format!("subject: invalid template: {e}")))?;
        let msg_id = match cfg.msg_id.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(t) => Some(Some(Template::parse(t).map_err(|e| {
                SinkError::permanent(format!("msg_id: invalid template: {e}"))
            })?)),
        };
        Ok(Addressing {
            pipeline: pipeline.to_owned(),
            fixed_subject: subject.constant(pipeline),
            subject,
            msg_id,
            headers: super::named_templates("headers", &cfg.headers)?,
            carry_headers: cfg.carry_headers,
            correlation_header: super::correlation_name(&cfg.correlation_header),
        })
    }

    fn address(&self, event: &Envelope) -> Result<Address, SinkError> {
        let subject = match &self.fixed_subject {
            Some(s) => s.clone(),
            None => self.subject.render(event, &self.pipeline),
        };
        if !valid_subject(&subject) {
            return Err(SinkError::permanent(format!(
                "sink.subject: the template rendered `{subject}`, not a subject to publish to"
            )));
        }
        let mut headers = HeaderMap::new();
        if self.carry_headers
            && let Some(serde_json::Value::Object(carried)) = event.meta.get("headers")
        {
            for (name, value) in carried {
                // The server's own headers (ids, expectations) are not the publisher's to copy.
                if name.to_ascii_lowercase().starts_with("nats-") || !header_name_ok(name) {
                    continue;
                }
                match value {
                    serde_json::Value::String(s) => headers.append(name.as_str(), clean(s)),
                    serde_json::Value::Array(values) => {
                        for v in values.iter().filter_map(|v| v.as_str()) {
                            headers.append(name.as_str(), clean(v));
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(name) = &self.correlation_header
            && !self.headers.iter().any(|(n, _)| n == name)
            && headers.get(name.as_str()).is_none()
        {
            headers.insert(name.as_str(), clean(event.correlation_id()));
        }
        for (name, t) in &self.headers {
            headers.insert(name.as_str(), clean(&t.render(event, &self.pipeline)));
        }
        let id = match &self.msg_id {
            None => Some(event.id.clone()),
            Some(None) => None,
            Some(Some(t)) => Some(t.render(event, &self.pipeline)).filter(|s| !s.is_empty()),
        };
        if let Some(id) = id {
            headers.insert(MSG_ID, clean(&id));
        }
        Ok(Address { subject, headers })
    }
}

/// A header value on one line (NATS headers are lines).
fn clean(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn header_name_ok(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

impl Render for Addressing {
    /// The message the sink would publish for `event` (`subject`, `headers` as `[name, value]`
    /// pairs in name order, `body`), or why it would refuse it.
    fn render(&self, body: Rendered<'_>, event: &Envelope) -> Result<serde_json::Value, SinkError> {
        let address = self.address(event)?;
        let mut headers: Vec<(String, String)> = address
            .headers
            .iter()
            .flat_map(|(n, vs)| vs.iter().map(move |v| (n.to_string(), v.as_str().to_owned())))
            .collect();
        headers.sort();
        let headers: Vec<serde_json::Value> = headers
            .into_iter()
            .map(|(n, v)| serde_json::json!([n, v]))
            .collect();
        Ok(serde_json::json!({
            "subject": address.subject,
            "headers": headers,
            "body": body.preview(),
        }))
    }
}

struct NatsSink {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    addressing: Addressing,
}

#[async_trait]
impl Sink for NatsSink {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        let mut failures: Vec<(usize, SinkError)> = Vec::new();
        let mut pending = Vec::with_capacity(batch.len());
        for (i, o) in batch.iter().enumerate() {
            let address = match self.addressing.address(o.event) {
                Ok(a) => a,
                Err(e) => {
                    failures.push((i, e));
                    continue;
                }
            };
            let payload = bytes::Bytes::copy_from_slice(o.body.bytes().unwrap_or_default());
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(payload)
                .headers(address.headers);
            match self.js.send_publish(address.subject.clone(), message).await {
                Ok(ack) => pending.push((i, address.subject, ack)),
                Err(e) => failures.push((i, classify(&e, &address.subject))),
            }
        }
        // The acknowledgements, in publication order: a key whose message failed fails its
        // later ones too, so that none is counted delivered ahead of an earlier one.
        let mut failed_keys: HashSet<&str> = failures
            .iter()
            .filter(|(_, e)| e.retryable)
            .filter_map(|(i, _)| batch[*i].event.key.as_deref())
            .collect();
        for (i, subject, ack) in pending {
            let result = ack.await;
            let key = batch[i].event.key.as_deref();
            match result {
                Ok(_) if key.is_some_and(|k| failed_keys.contains(k)) => failures.push((
                    i,
                    SinkError::retryable(format!(
                        "an earlier event with key {} failed; sent again after it",
                        key.unwrap_or_default()
                    )),
                )),
                Ok(_) => {}
                Err(e) => {
                    let e = classify(&e, &subject);
                    if e.retryable
                        && let Some(k) = key
                    {
                        failed_keys.insert(k);
                    }
                    failures.push((i, e));
                }
            }
        }
        failures.sort_by_key(|(i, _)| *i);
        SinkFailure::of(batch.len(), failures)
    }

    async fn sync(&self) -> Result<(), SinkError> {
        // Every write already waited for the stream's acknowledgements.
        Ok(())
    }

    fn max_body_bytes(&self, event: &Envelope) -> Option<usize> {
        let address = self.addressing.address(event).ok()?;
        let headers: usize = address
            .headers
            .iter()
            .flat_map(|(n, vs)| {
                let n = n.to_string().len();
                vs.iter().map(move |v| n + v.as_str().len() + 4)
            })
            .sum();
        let max = self.client.server_info().max_payload;
        max.checked_sub(headers + 16)
    }
}

/// Whether a publish failure can pass (a timeout, the connection lost) or is a refusal that
/// retrying will not change (no stream takes the subject, a message too large).
fn classify(e: &async_nats::jetstream::context::PublishError, subject: &str) -> SinkError {
    match e.kind() {
        PublishErrorKind::StreamNotFound => {
            SinkError::permanent(format!("nats: no stream for subject {subject}"))
        }
        PublishErrorKind::MaxPayloadExceeded => {
            SinkError::permanent(format!("nats: message too large for the server: {e}"))
        }
        _ => SinkError::retryable(format!("nats: publishing to {subject}: {e}")),
    }
}
