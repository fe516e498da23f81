//! The `[sink]` (or `[[target]]`) table of `type = "http"`, and its checks.

use crate::http_client::Secret;
use crate::template::Template;
use http::{HeaderName, Method};
use serde::Deserialize;
use schemars::JsonSchema;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSinkConfig {
    /// Where each request goes, as a template; values inserted are percent-encoded (url.rs).
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Header name = a template, or a secret (`{ env = "VAR" }`, `{ file = "path" }`).
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderSetting>,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// A template whose value is sent in `idempotency_header`, so that the API can drop a
    /// request it already took (a retry, a re-read after a crash).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default = "default_idempotency_header")]
    pub idempotency_header: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Requests in flight for the sink, all lanes together.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Requests started per second for the sink, all lanes together.
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
    /// Events per request: above 1, a request's body is a JSON array of up to this many bodies.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    #[serde(default)]
    pub auth: Option<AuthTable>,
}

/// A header's value: a template rendered per event, or a secret read when the sink opens.
#[derive(Debug, Clone)]
pub(crate) enum HeaderSetting {
    Template(String),
    Secret(Secret),
}

/// A template (a string), or a secret (a table).
impl JsonSchema for HeaderSetting {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HeaderSetting".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let secret = generator.subschema_for::<Secret>();
        schemars::json_schema!({
            "description": "A template that renders the header's value, or a secret that holds it.",
            "anyOf": [{ "type": "string" }, secret],
        })
    }
}

/// A string is a template; a table is a secret, with the secret's own messages.
impl<'de> Deserialize<'de> for HeaderSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Setting;
        impl<'de> serde::de::Visitor<'de> for Setting {
            type Value = HeaderSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a template, or a secret: {}", crate::http_client::SECRET_SHAPE)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HeaderSetting, E> {
                Ok(HeaderSetting::Template(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<HeaderSetting, A::Error> {
                Secret::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(HeaderSetting::Secret)
            }
        }
        d.deserialize_any(Setting)
    }
}

/// `[sink.auth]` as written: one table for every type, so that a mistake is named at its key;
/// [`AuthTable::auth`] checks it and gives the typed [`Auth`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HttpSinkAuth")]
pub(crate) struct AuthTable {
    #[serde(rename = "type")]
    kind: AuthKind,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    value: Option<Secret>,
    #[serde(default)]
    token_url: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<Secret>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    audience: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "HttpSinkAuthType")]
enum AuthKind {
    Basic,
    ApiKey,
    Oauth2,
}

/// How requests authenticate.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: Secret },
    /// `header: value`.
    ApiKey { header: String, value: Secret },
    /// OAuth 2 client credentials: a bearer token from `token_url` (oauth2.rs).
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: Option<String>,
        audience: Option<String>,
    },
}

impl AuthTable {
    /// The auth this table describes, or the key at fault: each type's keys present, no other
    /// type's.
    pub(super) fn auth(&self) -> Result<Auth, Invalid> {
        let t = self.clone();
        let given: [(&'static str, bool, &[AuthKind]); 9] = [
            ("auth.username", t.username.is_some(), &[AuthKind::Basic]),
            ("auth.password", t.password.is_some(), &[AuthKind::Basic]),
            ("auth.header", t.header.is_some(), &[AuthKind::ApiKey]),
            ("auth.value", t.value.is_some(), &[AuthKind::ApiKey]),
            ("auth.token_url", t.token_url.is_some(), &[AuthKind::Oauth2]),
            ("auth.client_id", t.client_id.is_some(), &[AuthKind::Oauth2]),
            ("auth.client_secret", t.client_secret.is_some(), &[AuthKind::Oauth2]),
            ("auth.scope", t.scope.is_some(), &[AuthKind::Oauth2]),
            ("auth.audience", t.audience.is_some(), &[AuthKind::Oauth2]),
        ];
        let name = match t.kind {
            AuthKind::Basic => "basic",
            AuthKind::ApiKey => "api_key",
            AuthKind::Oauth2 => "oauth2",
        };
        for (key, present, kinds) in given {
            if present && !kinds.contains(&t.kind) {
                return Err((key, format!("not a key of `type = \"{name}\"` auth")));
            }
        }
        let missing = |key: &'static str| (key, format!("`type = \"{name}\"` auth needs it"));
        Ok(match t.kind {
            AuthKind::Basic => Auth::Basic {
                username: t.username.ok_or_else(|| missing("auth.username"))?,
                password: t.password.ok_or_else(|| missing("auth.password"))?,
            },
            AuthKind::ApiKey => Auth::ApiKey {
                header: t.header.ok_or_else(|| missing("auth.header"))?,
                value: t.value.ok_or_else(|| missing("auth.value"))?,
            },
            AuthKind::Oauth2 => Auth::OAuth2 {
                token_url: t.token_url.ok_or_else(|| missing("auth.token_url"))?,
                client_id: t.client_id.ok_or_else(|| missing("auth.client_id"))?,
                client_secret: t.client_secret.ok_or_else(|| missing("auth.client_secret"))?,
                scope: t.scope,
                audience: t.audience,
            },
        })
    }
}

fn default_method() -> String {
    "POST".into()
}
fn default_content_type() -> String {
    "application/json".into()
}
fn default_idempotency_header() -> String {
    "Idempotency-Key".into()
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_concurrency() -> usize {
    16
}
fn default_batch_size() -> usize {
    1
}

/// The methods a sink may use.
pub(super) const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Headers the HTTP layer or another key sets: `headers` may not.
const RESERVED: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "content-type",
];

const MAX_TIMEOUT_MS: u64 = 600_000;

type Invalid = (&'static str, String);

impl HttpSinkConfig {
    pub(super) fn method(&self) -> Result<Method, Invalid> {
        let upper = self.method.to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            return Err((
                "method",
                format!(
                    "unknown method {:?}; expected one of {}",
                    self.method,
                    METHODS.join(", ")
                ),
            ));
        }
        Method::from_bytes(upper.as_bytes()).map_err(|e| ("method", e.to_string()))
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        let template = |key: &'static str, text: &str| {
            Template::parse(text)
                .map(|_| ())
                .map_err(|e| (key, format!("invalid template: {e}")))
        };
        template("url", &self.url)?;
        let literal = Template::parse(&self.url)
            .ok()
            .and_then(|t| t.constant("pipeline"));
        if let Some(url) = literal {
            super::url::check(&url).map_err(|why| ("url", format!("{url:?} is not a valid URL: {why}")))?;
        }
        self.method()?;
        for (name, setting) in &self.headers {
            header_name(name).map_err(|why| ("headers", why))?;
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return Err((
                    "headers",
                    format!("{name:?} is set by the HTTP layer or by another key (content_type)"),
                ));
            }
            if let HeaderSetting::Template(t) = setting {
                Template::parse(t)
                    .map_err(|e| ("headers", format!("{name}: invalid template: {e}")))?;
            }
        }
        http::HeaderValue::from_str(&self.content_type)
            .map_err(|_| ("content_type", "not a valid header value".to_owned()))?;
        if let Some(t) = &self.idempotency_key {
            template("idempotency_key", t)?;
        }
        header_name(&self.idempotency_header).map_err(|why| ("idempotency_header", why))?;
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err((
                "timeout_ms",
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        if self.max_concurrency < 1 {
            return Err(("max_concurrency", "must be at least 1".into()));
        }
        if self.rate_limit_per_s == Some(0) {
            return Err(("rate_limit_per_s", "must be at least 1".into()));
        }
        if self.batch_size < 1 {
            return Err(("batch_size", "must be at least 1".into()));
        }
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => {
                return Err(("client_key", "client_cert needs client_key too".into()));
            }
            (None, Some(_)) => {
                return Err(("client_cert", "client_key needs client_cert too".into()));
            }
            _ => {}
        }
        match self.auth()? {
            Some(Auth::Basic { username, .. }) if username.is_empty() => {
                Err(("auth.username", "is empty".into()))
            }
            Some(Auth::ApiKey { header, .. }) => header_name(&header)
                .map(|_| ())
                .map_err(|why| ("auth.header", why)),
            Some(Auth::OAuth2 {
                token_url,
                client_id,
                ..
            }) => {
                super::url::check(&token_url)
                    .map_err(|why| ("auth.token_url", format!("{token_url:?}: {why}")))?;
                if client_id.is_empty() {
                    return Err(("auth.client_id", "is empty".into()));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The auth, checked.
    pub(super) fn auth(&self) -> Result<Option<Auth>, Invalid> {
        self.auth.as_ref().map(AuthTable::auth).transpose()
    }

    /// Every secret the table refers to, with the key it is at (for messages).
    pub(super) fn secrets(&self) -> Vec<(String, &Secret)> {
        let mut all: Vec<(String, &Secret)> = self
            .headers
            .iter()
            .filter_map(|(name, s)| match s {
                HeaderSetting::Secret(secret) => Some((format!("headers.{name}"), secret)),
                HeaderSetting::Template(_) => None,
            })
            .collect();
        if let Some(a) = &self.auth {
            for (key, secret) in [
                ("auth.password", &a.password),
                ("auth.value", &a.value),
                ("auth.client_secret", &a.client_secret),
            ] {
                if let Some(s) = secret {
                    all.push((key.to_owned(), s));
                }
            }
        }
        all
    }
}

pub(super) fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a valid header name"))
}
