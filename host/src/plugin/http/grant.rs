//! `[plugin.http]`: what a plugin may request over HTTP, and the limits on it. Parsed with every
//! mistake named at its key; secrets are only ever referred to (`{ env = "VAR" }`,
//! `{ file = "/run/secrets/k" }`), never written here, and read when the plugin is set up
//! (access.rs).

use super::allow::Prefix;
use crate::config::component::deserialize_table;
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::http_client::{SECRET_SHAPE, Secret};
use http::{HeaderName, Method};
use schemars::JsonSchema;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

const MAX_TIMEOUT_MS: u64 = 600_000;
const MAX_RESPONSE_BYTES: u64 = 1 << 30;
const MAX_CONCURRENCY: u64 = 10_000;
const MAX_RATE_PER_S: u64 = 1_000_000;
const MAX_CACHE_TTL_S: u64 = 7 * 24 * 3600;
const MAX_CACHE_ENTRIES: u64 = 10_000_000;

/// Methods a grant may name: the standard ones. CONNECT and TRACE are left out on purpose.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers only the HTTP layer sets: neither a grant nor a plugin may.
pub(crate) const RESERVED_HEADERS: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "proxy-authorization",
    "http2-settings",
];

/// A plugin's `[plugin.http]` table, checked.
#[derive(Debug, Clone)]
pub struct HttpGrant {
    pub allow: Vec<Prefix>,
    pub methods: Vec<Method>,
    /// Per request, connecting to the last byte of the body.
    pub timeout: Duration,
    pub max_response_bytes: u64,
    /// Requests in flight at once, for the plugin as a whole.
    pub max_concurrency: usize,
    /// Requests started per second, for the plugin as a whole.
    pub rate_limit_per_s: Option<u32>,
    /// PEM certificates trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    pub cache: Option<CacheSettings>,
    /// Headers weir adds to every request; the values are read at set-up.
    pub(crate) headers: Vec<(HeaderName, Secret)>,
}

/// `cache = { ttl_s, max_entries }`: GET responses with a 2xx status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub ttl: Duration,
    pub max_entries: usize,
}

/// `[plugin.http]` as written.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HttpGrant")]
pub(crate) struct RawGrant {
    /// URL prefixes the plugin may request (`https://api.example.com/v1/`).
    allow: Vec<String>,
    /// HTTP methods allowed (default: `GET`).
    #[serde(default)]
    methods: Option<Vec<String>>,
    /// Per request, connecting to the last byte of the body (default 5000).
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// Longer response bodies are refused.
    #[serde(default)]
    max_response_bytes: Option<u64>,
    /// Requests in flight at once, for the plugin as a whole.
    #[serde(default)]
    max_concurrency: Option<u64>,
    /// Requests started per second, for the plugin as a whole (default: no limit).
    #[serde(default)]
    rate_limit_per_s: Option<u64>,
    /// PEM certificates trusted besides the system roots.
    #[serde(default)]
    ca_file: Option<String>,
    /// A cache of GET responses with a 2xx status.
    #[serde(default)]
    cache: Option<RawCache>,
    /// Headers weir adds to every request, each a secret (`{ env = "API_TOKEN" }`).
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, crate::http_client::Secret>")]
    headers: toml::Table,
}

/// `cache = { ttl_s, max_entries }`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HttpCache")]
struct RawCache {
    /// How long a response is kept (default 60).
    #[serde(default)]
    ttl_s: Option<u64>,
    /// Responses kept at most.
    #[serde(default)]
    max_entries: Option<u64>,
}

impl HttpGrant {
    /// Parses the `[plugin.http]` table that sits at `at`.
    pub fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        table: toml::Table,
    ) -> Result<HttpGrant, Vec<ConfigError>> {
        let raw: RawGrant = deserialize_table(src, at, table, &[]).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let mut range = |key: KeyPath, value: Option<u64>, max: u64, default: u64| match value {
            Some(v) if !(1..=max).contains(&v) => {
                errors.push(src.error(&key, format!("must be between 1 and {max}")));
                default
            }
            v => v.unwrap_or(default),
        };
        let timeout_ms = range(at.key("timeout_ms"), raw.timeout_ms, MAX_TIMEOUT_MS, 5000);
        let max_response_bytes = range(
            at.key("max_response_bytes"),
            raw.max_response_bytes,
            MAX_RESPONSE_BYTES,
            1 << 20,
        );
        let max_concurrency = range(
            at.key("max_concurrency"),
            raw.max_concurrency,
            MAX_CONCURRENCY,
            16,
        );
        let rate = raw
            .rate_limit_per_s
            .map(|r| range(at.key("rate_limit_per_s"), Some(r), MAX_RATE_PER_S, 1));
        let cache = raw.cache.map(|c| {
            let at = at.key("cache");
            CacheSettings {
                ttl: Duration::from_secs(range(at.key("ttl_s"), c.ttl_s, MAX_CACHE_TTL_S, 60)),
                max_entries: range(
                    at.key("max_entries"),
                    c.max_entries,
                    MAX_CACHE_ENTRIES,
                    10_000,
                ) as usize,
            }
        });

        let allow = parse_allow(src, at, &raw.allow, &mut errors);
        let methods = parse_methods(src, at, raw.methods, &mut errors);
        let ca_file = raw.ca_file.map(PathBuf::from);
        if let Some(path) = &ca_file {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => errors.push(src.error(
                    &at.key("ca_file"),
                    format!("{} is not a file of PEM certificates", path.display()),
                )),
                Err(e) => errors.push(src.error(
                    &at.key("ca_file"),
                    format!("cannot read {}: {e}", path.display()),
                )),
            }
        }
        let headers = parse_headers(src, &at.key("headers"), raw.headers, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(HttpGrant {
            allow,
            methods,
            timeout: Duration::from_millis(timeout_ms),
            max_response_bytes,
            max_concurrency: max_concurrency as usize,
            rate_limit_per_s: rate.map(|r| r as u32),
            ca_file,
            cache,
            headers,
        })
    }
}

fn parse_allow(
    src: &SourceText<'_>,
    at: &KeyPath,
    allow: &[String],
    errors: &mut Vec<ConfigError>,
) -> Vec<Prefix> {
    if allow.is_empty() {
        errors.push(src.error(
            &at.key("allow"),
            "must list at least one URL prefix (leave `[plugin.http]` out for no HTTP at all)",
        ));
    }
    let mut prefixes = Vec::new();
    for (i, written) in allow.iter().enumerate() {
        match Prefix::parse(written) {
            Ok(p) => prefixes.push(p),
            Err(why) => errors.push(src.error(&at.key("allow").index(i), why)),
        }
    }
    prefixes
}

fn parse_methods(
    src: &SourceText<'_>,
    at: &KeyPath,
    methods: Option<Vec<String>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Method> {
    let Some(methods) = methods else {
        return vec![Method::GET];
    };
    if methods.is_empty() {
        errors.push(src.error(&at.key("methods"), "must list at least one method"));
    }
    let mut parsed = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        match Method::from_bytes(m.as_bytes()) {
            Ok(method) if METHODS.contains(&m.as_str()) => parsed.push(method),
            _ => errors.push(src.error(
                &at.key("methods").index(i),
                format!(
                    "unknown method {m:?}; expected one of {}",
                    METHODS.join(", ")
                ),
            )),
        }
    }
    parsed
}

fn parse_headers(
    src: &SourceText<'_>,
    at: &KeyPath,
    headers: toml::Table,
    errors: &mut Vec<ConfigError>,
) -> Vec<(HeaderName, Secret)> {
    let mut parsed = Vec::new();
    for (name, value) in headers {
        let key = at.key(&name);
        let header = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) if RESERVED_HEADERS.contains(&h.as_str()) => {
                errors.push(src.error(&key, format!("{name:?} is set by the HTTP layer alone")));
                continue;
            }
            Ok(h) => h,
            Err(_) => {
                errors.push(src.error(&key, format!("{name:?} is not a valid header name")));
                continue;
            }
        };
        // The value is never echoed: it may be the very secret that must not be written here.
        let secret = match value {
            toml::Value::Table(t) if t.len() == 1 => match t.into_iter().next() {
                Some((k, toml::Value::String(v))) if k == "env" && !v.is_empty() => Secret::Env(v),
                Some((k, toml::Value::String(v))) if k == "file" && !v.is_empty() => {
                    Secret::File(PathBuf::from(v))
                }
                _ => {
                    errors.push(src.error(&key, SECRET_SHAPE));
                    continue;
                }
            },
            toml::Value::String(_) => {
                errors.push(src.error(
                    &key,
                    format!("a header value is never written in the pipeline file; {SECRET_SHAPE}"),
                ));
                continue;
            }
            _ => {
                errors.push(src.error(&key, SECRET_SHAPE));
                continue;
            }
        };
        parsed.push((header, secret));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<HttpGrant, Vec<ConfigError>> {
        let src = SourceText::parse(Path::new("p.toml"), text).map_err(|e| vec![e])?;
        let table: toml::Table = toml::from_str(text).expect("valid TOML");
        let Some(toml::Value::Table(http)) = table.get("http").cloned() else {
            panic!("no [http] table");
        };
        HttpGrant::parse(&src, &KeyPath::default().key("http"), http)
    }

    fn keys(text: &str) -> Vec<String> {
        let mut keys: Vec<String> = parse(text)
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.key)
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn defaults() {
        let g = parse("[http]\nallow = [\"http://127.0.0.1:8080/rates/\"]").expect("valid");
        assert_eq!(g.methods, vec![Method::GET]);
        assert_eq!(g.timeout, Duration::from_secs(5));
        assert_eq!(g.max_response_bytes, 1 << 20);
        assert_eq!(g.max_concurrency, 16);
        assert_eq!(g.rate_limit_per_s, None);
        assert_eq!(g.cache, None);
        assert!(g.headers.is_empty());
    }

    #[test]
    fn everything_given() {
        let g = parse(
            "[http]\nallow = [\"https://api.example/v1/\"]\nmethods = [\"GET\", \"POST\"]\n\
             timeout_ms = 2000\nmax_response_bytes = 10\nmax_concurrency = 2\n\
             rate_limit_per_s = 100\ncache = { ttl_s = 5 }\n\
             headers = { \"x-api-key\" = { env = \"K\" }, auth = { file = \"/s/k\" } }",
        )
        .expect("valid");
        assert_eq!(g.methods, vec![Method::GET, Method::POST]);
        assert_eq!(g.timeout, Duration::from_secs(2));
        assert_eq!(g.max_response_bytes, 10);
        assert_eq!(g.max_concurrency, 2);
        assert_eq!(g.rate_limit_per_s, Some(100));
        assert_eq!(
            g.cache,
            Some(CacheSettings {
                ttl: Duration::from_secs(5),
                max_entries: 10_000
            })
        );
        assert_eq!(g.headers.len(), 2);
        assert!(g.headers.contains(&(
            HeaderName::from_static("x-api-key"),
            Secret::Env("K".into())
        )));
    }

    #[test]
    fn every_mistake_is_named_at_its_key() {
        let text = "[http]\nallow = [\"http://h/ok/\", \"h/rates\", \"http://u:p@h/\"]\n\
             methods = [\"GET\", \"FETCH\"]\ntimeout_ms = 0\nmax_response_bytes = 0\n\
             max_concurrency = 0\nrate_limit_per_s = 0\ncache = { ttl_s = 0, max_entries = 0 }\n\
             ca_file = \"/nonexistent/ca.pem\"\n\
             headers = { \"x-api-key\" = \"s3cr3t-value\", host = { env = \"H\" }, \
             \"bad header\" = { env = \"B\" }, other = { env = \"A\", file = \"/f\" } }";
        assert_eq!(
            keys(text),
            [
                "http.allow[1]",
                "http.allow[2]",
                "http.ca_file",
                "http.cache.max_entries",
                "http.cache.ttl_s",
                "http.headers.bad header",
                "http.headers.host",
                "http.headers.other",
                "http.headers.x-api-key",
                "http.max_concurrency",
                "http.max_response_bytes",
                "http.methods[1]",
                "http.rate_limit_per_s",
                "http.timeout_ms",
            ]
        );
        let shown = format!("{:?}", parse(text).expect_err("invalid"));
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }

    #[test]
    fn allow_is_required_and_not_empty() {
        assert_eq!(keys("[http]\nmethods = [\"GET\"]"), ["http"]);
        assert_eq!(keys("[http]\nallow = []"), ["http.allow"]);
        assert_eq!(
            keys("[http]\nallow = [\"http://h/\"]\nretries = 3"),
            ["http.retries"]
        );
    }
}
