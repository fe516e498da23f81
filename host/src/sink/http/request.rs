//! What the sink sends for each event, without sending it: the method, the URL, the headers
//! (templates rendered, secrets put in) and the body. `weir dry-run` shows it through
//! [`Render`], with every secret as `"<secret>"`.

use super::config::{Auth, HeaderSetting, HttpSinkConfig, header_name};
use super::url;
use crate::event::Envelope;
use crate::sink::{Outgoing, Render, Rendered, SinkError};
use crate::template::Template;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// How shown where a secret goes.
const HIDDEN: &str = "<secret>";

/// The sink's templates and fixed headers.
pub(super) struct Requests {
    pipeline: String,
    pub(super) method: Method,
    url: Template,
    /// The URL when the template is plain text (the same for every event): parsed once.
    fixed_url: Option<(http::Uri, String)>,
    /// Headers rendered per event.
    templates: Vec<(HeaderName, Template)>,
    idempotency: Option<(HeaderName, Template)>,
    /// Headers every request carries: the content type, secret headers, basic or API-key auth.
    /// A secret's value is `None` until read (never, for `weir dry-run`).
    fixed: Vec<(HeaderName, Option<HeaderValue>)>,
    /// Where the idempotency key goes, for a request of several events.
    pub(super) idempotency_header: Option<HeaderName>,
    /// OAuth 2: each request carries a bearer token (oauth2.rs).
    bearer: bool,
}

/// One event's request, ready but for the headers every request carries.
pub(super) struct Prepared {
    pub(super) uri: http::Uri,
    pub(super) url: String,
    /// The headers rendered for this event (not the idempotency key).
    pub(super) headers: HeaderMap,
    pub(super) idempotency_key: Option<String>,
    pub(super) body: Bytes,
}

impl Requests {
    /// The templates and headers of `cfg`; with `read_secrets`, the secrets' values read now.
    pub(super) fn new(
        cfg: &HttpSinkConfig,
        pipeline: &str,
        read_secrets: bool,
    ) -> Result<Requests, SinkError> {
        let invalid = |(key, why): (&str, String)| SinkError::permanent(format!("{key}: {why}"));
        let method = cfg.method().map_err(invalid)?;
        let parse = |key: &str, text: &str| {
            Template::parse(text)
                .map_err(|e| SinkError::permanent(format!("{key}: invalid template: {e}")))
        };
        let name = |text: &str| header_name(text).map_err(SinkError::permanent);
        let secret = |key: &str, s: &crate::http_client::Secret| -> Result<Option<String>, SinkError> {
            if !read_secrets {
                return Ok(None);
            }
            s.read()
                .map(Some)
                .map_err(|e| SinkError::permanent(format!("{key}: {e}")))
        };
        let sensitive = |key: &str, text: String| {
            let mut v = HeaderValue::from_str(&text).map_err(|_| {
                SinkError::permanent(format!("{key}: the secret is not a valid header value"))
            })?;
            v.set_sensitive(true);
            Ok::<_, SinkError>(v)
        };
        let content_type = HeaderValue::from_str(&cfg.content_type)
            .map_err(|_| SinkError::permanent("content_type: not a valid header value"))?;
        let mut fixed = vec![(http::header::CONTENT_TYPE, Some(content_type))];
        let mut templates = Vec::new();
        for (header, setting) in &cfg.headers {
            let key = format!("headers.{header}");
            match setting {
                HeaderSetting::Template(t) => templates.push((name(header)?, parse(&key, t)?)),
                HeaderSetting::Secret(s) => {
                    let value = secret(&key, s)?.map(|v| sensitive(&key, v)).transpose()?;
                    fixed.push((name(header)?, value));
                }
            }
        }
        let auth = cfg
            .auth()
            .map_err(|(key, why)| SinkError::permanent(format!("{key}: {why}")))?;
        match &auth {
            Some(Auth::Basic { username, password }) => {
                let value = secret("auth.password", password)?
                    .map(|p| {
                        let pair = base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{p}"));
                        sensitive("auth.password", format!("Basic {pair}"))
                    })
                    .transpose()?;
                fixed.push((http::header::AUTHORIZATION, value));
            }
            Some(Auth::ApiKey { header, value }) => {
                let v = secret("auth.value", value)?
                    .map(|v| sensitive("auth.value", v))
                    .transpose()?;
                fixed.push((name(header)?, v));
            }
            // The token is fetched when a request needs it (oauth2.rs).
            Some(Auth::OAuth2 { .. }) | None => {}
        }
        let idempotency = match &cfg.idempotency_key {
            Some(t) => Some((
                name(&cfg.idempotency_header)?,
                parse("idempotency_key", t)?,
            )),
            None => None,
        };
        Ok(Requests {
            pipeline: pipeline.to_owned(),
            method,
            url: parse("url", &cfg.url)?,
            fixed_url: parse("url", &cfg.url)?
                .constant(pipeline)
                .filter(|text| *text == cfg.url)
                .and_then(|text| Some((http::Uri::try_from(text.as_str()).ok()?, text)))
                .filter(|(_, text)| url::check(text).is_ok()),
            templates,
            idempotency_header: idempotency.as_ref().map(|(n, _)| n.clone()),
            idempotency,
            fixed,
            bearer: matches!(auth, Some(Auth::OAuth2 { .. })),
        })
    }

    /// The request for one event, or why it cannot be sent (for good: it would fail the same
    /// way every time).
    pub(super) fn prepare(&self, o: &Outgoing<'_>) -> Result<Prepared, SinkError> {
        let event = o.event;
        let (uri, url) = match &self.fixed_url {
            Some(fixed) => fixed.clone(),
            None => url::render(&self.url, event, &self.pipeline).map_err(SinkError::permanent)?,
        };
        let mut headers = HeaderMap::with_capacity(self.templates.len());
        for (name, t) in &self.templates {
            let text = t.render(event, &self.pipeline);
            let value = HeaderValue::from_str(&text).map_err(|_| {
                SinkError::permanent(format!(
                    "headers.{name}: the template rendered {text:?}, not a valid header value"
                ))
            })?;
            headers.append(name.clone(), value);
        }
        let idempotency_key = match &self.idempotency {
            Some((_, t)) => {
                let key = t.render(event, &self.pipeline);
                HeaderValue::from_str(&key).map_err(|_| {
                    SinkError::permanent(format!(
                        "idempotency_key: the template rendered {key:?}, not a valid header value"
                    ))
                })?;
                Some(key)
            }
            None => None,
        };
        Ok(Prepared {
            uri,
            url,
            headers,
            idempotency_key,
            body: Bytes::copy_from_slice(o.body.or_null()),
        })
    }

    /// Puts the headers every request carries into `headers`.
    pub(super) fn add_fixed(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.fixed {
            if let Some(v) = value {
                headers.insert(name.clone(), v.clone());
            }
        }
    }
}

impl Render for Requests {
    /// `{"method", "url", "headers", "body"}`, secrets as `"<secret>"`; or why the event could
    /// not be sent (a URL that is not one).
    fn render(&self, body: Rendered<'_>, event: &Envelope) -> Result<serde_json::Value, SinkError> {
        let preview = body.preview();
        let p = self.prepare(&Outgoing { body, event })?;
        let mut headers = serde_json::Map::new();
        for (name, value) in &self.fixed {
            let shown = match value {
                Some(v) if !v.is_sensitive() => String::from_utf8_lossy(v.as_bytes()).into(),
                _ => HIDDEN.to_owned(),
            };
            headers.insert(name.to_string(), shown.into());
        }
        for (name, value) in &p.headers {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers.insert(name.to_string(), text.into());
        }
        if let (Some(name), Some(key)) = (&self.idempotency_header, &p.idempotency_key) {
            headers.insert(name.to_string(), key.clone().into());
        }
        if self.bearer {
            headers.insert("authorization".into(), "Bearer <secret>".into());
        }
        Ok(serde_json::json!({
            "method": self.method.as_str(),
            "url": p.url,
            "headers": headers,
            "body": preview,
        }))
    }
}

/// A request ready to go: one event's, or several events' (a JSON array).
pub(super) struct Outbound {
    pub(super) uri: http::Uri,
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}
