//! A plugin's HTTP access: its grant, one client, its limits and cache, shared by every instance
//! and lane of the plugin. Both the `http` import and wasi:http (wasi.rs) send through
//! [`HttpAccess::send_one`], so the same checks hold whichever a plugin uses.
//!
//! A request goes: method and URL checked against the grant (a denial never leaves weir), headers
//! checked and the grant's secret headers put in, the cache asked (GET), then a
//! `max_concurrency` slot and a `rate_limit_per_s` start awaited, then the exchange, bounded by
//! `timeout_ms` and the call's deadline, reading at most `max_response_bytes`. Redirects are not
//! followed: a 3xx goes back to the plugin, and the request it makes next is checked again.

use super::super::bindings::v2::weir::plugin::http::{HttpError, Request, Response};
use super::allow::{self, Refusal};
use super::cache::ResponseCache;
use super::denials::DenialLog;
pub use super::error::HttpSetupError;
use super::grant::{HttpGrant, RESERVED_HEADERS};
use crate::http_client::{HttpsClient, RateLimit, Secret, SecretError, TlsError, error_chain};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::{BodyExt, Full};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use url::Url;

/// A plugin's `http` grant, its client, limits and cache: shared by its instances.
pub struct HttpAccess {
    pipeline: Arc<str>,
    plugin: Arc<str>,
    grant: HttpGrant,
    /// The grant's headers with their values, marked sensitive.
    secret_headers: Vec<(HeaderName, HeaderValue)>,
    client: HttpsClient,
    slots: Semaphore,
    rate: Option<RateLimit>,
    cache: Option<ResponseCache>,
    denials: DenialLog,
}

impl fmt::Debug for HttpAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The grant says where each secret comes from; the values themselves are never shown.
        f.debug_struct("HttpAccess")
            .field("pipeline", &self.pipeline)
            .field("plugin", &self.plugin)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl HttpAccess {
    /// Reads the grant's secret headers and CA file and builds its client.
    pub fn new(
        grant: HttpGrant,
        pipeline: &str,
        plugin: &str,
    ) -> Result<Arc<HttpAccess>, HttpSetupError> {
        let mut secret_headers = Vec::new();
        for (name, secret) in &grant.headers {
            secret_headers.push((name.clone(), read_secret(plugin, name, secret)?));
        }
        let tls = crate::http_client::client_config(grant.ca_file.as_deref(), None).map_err(
            |e| match e {
                TlsError::CaFile { path, message } => HttpSetupError::CaFile {
                    plugin: plugin.to_owned(),
                    path,
                    message,
                },
                other => HttpSetupError::Tls {
                    plugin: plugin.to_owned(),
                    message: other.to_string(),
                },
            },
        )?;
        let client = crate::http_client::https_client(tls);
        Ok(Arc::new(HttpAccess {
            pipeline: pipeline.into(),
            plugin: plugin.into(),
            slots: Semaphore::new(grant.max_concurrency),
            rate: grant.rate_limit_per_s.map(RateLimit::new),
            cache: grant.cache.map(ResponseCache::new),
            denials: DenialLog::default(),
            secret_headers,
            client,
            grant,
        }))
    }

    /// The plugin this access is for.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Sends the requests concurrently; one answer per request, in order. None waits past
    /// `deadline`.
    pub async fn send_all(
        &self,
        requests: Vec<Request>,
        deadline: Instant,
    ) -> Vec<Result<Response, HttpError>> {
        futures_util::future::join_all(requests.into_iter().map(|r| self.send_one(r, deadline)))
            .await
    }

    /// Sends one request, within the grant, by `deadline` at the latest.
    pub async fn send_one(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, HttpError> {
        let answer = self.answer(request, deadline).await;
        let outcome = match &answer {
            Ok(_) => "ok",
            Err(HttpError::Denied(why)) => {
                self.denials.record(&self.pipeline, &self.plugin, why);
                "denied"
            }
            Err(HttpError::Invalid(_)) => "invalid",
            Err(HttpError::Timeout(_)) => "timeout",
            Err(HttpError::Unavailable(_)) => "unavailable",
            Err(HttpError::TooLarge(_)) => "too_large",
        };
        count(&self.pipeline, &self.plugin, outcome);
        answer
    }

    async fn answer(&self, request: Request, deadline: Instant) -> Result<Response, HttpError> {
        let prepared = self.prepare(request)?;
        let cache = self.cache.as_ref().filter(|_| prepared.cacheable());
        if let Some(cache) = cache {
            let key = prepared.cache_key();
            let hit = cache.get(&key);
            metrics::counter!("weir_plugin_http_cache_total",
                "pipeline" => self.pipeline.to_string(), "plugin" => self.plugin.to_string(),
                "result" => if hit.is_some() { "hit" } else { "miss" })
            .increment(1);
            if let Some(response) = hit {
                return Ok(response);
            }
            let response = self.exchange(prepared, deadline).await?;
            if (200..300).contains(&response.status) {
                cache.put(key, response.clone());
            }
            return Ok(response);
        }
        self.exchange(prepared, deadline).await
    }

    /// Checks a request against the grant and adds the secret headers.
    fn prepare(&self, request: Request) -> Result<Prepared, HttpError> {
        let Request {
            method,
            url,
            headers,
            body,
        } = request;
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return Err(HttpError::Invalid(format!("invalid method {method:?}")));
        };
        let denied = |why: &str| {
            HttpError::Denied(format!(
                "plugin {} may not {method} {url}: {why}",
                self.plugin
            ))
        };
        let parsed = match allow::check(&self.grant.allow, &url) {
            Ok(parsed) => parsed,
            Err(Refusal::Invalid(why)) => {
                return Err(HttpError::Invalid(format!("{method} {url}: {why}")));
            }
            Err(Refusal::Denied(why)) => return Err(denied(&why)),
        };
        if !self.grant.methods.contains(&method) {
            let granted: Vec<&str> = self.grant.methods.iter().map(Method::as_str).collect();
            return Err(denied(&format!(
                "method not granted (granted: {})",
                granted.join(", ")
            )));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let invalid =
                |why: &str| HttpError::Invalid(format!("{method} {url}: header {name:?}: {why}"));
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("not a valid header name"))?;
            // The body's length is the client's to say: it knows it, and a wrong one is refused.
            if name == http::header::CONTENT_LENGTH {
                continue;
            }
            if RESERVED_HEADERS.contains(&name.as_str()) {
                return Err(invalid("set by the HTTP layer alone"));
            }
            let value =
                HeaderValue::from_str(&value).map_err(|_| invalid("not a valid header value"))?;
            // A header the grant sets is the grant's: the plugin's own is dropped.
            if !self.secret_headers.iter().any(|(n, _)| *n == name) {
                map.append(name, value);
            }
        }
        let plugin_headers = map.clone();
        for (name, value) in &self.secret_headers {
            map.insert(name.clone(), value.clone());
        }
        Ok(Prepared {
            method,
            url: parsed,
            plugin_headers,
            headers: map,
            body: Bytes::from(body),
        })
    }

    /// Waits for a slot and a start, then sends and reads the answer, by the earlier of
    /// `timeout_ms` and the call's deadline.
    async fn exchange(&self, prepared: Prepared, deadline: Instant) -> Result<Response, HttpError> {
        let what = format!("{} {}", prepared.method, prepared.url);
        let tokio_deadline = tokio::time::Instant::from_std(deadline);
        let _slot = match tokio::time::timeout_at(tokio_deadline, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(HttpError::Unavailable(format!("{what}: shutting down"))),
            Err(_) => {
                return Err(HttpError::Timeout(format!(
                    "{what}: no free slot (max_concurrency {}) before the call's I/O budget ran out",
                    self.grant.max_concurrency
                )));
            }
        };
        if let Some(rate) = &self.rate {
            let Some(start) = rate.reserve(deadline) else {
                return Err(HttpError::Timeout(format!(
                    "{what}: rate_limit_per_s {} leaves no start before the call's I/O budget runs out",
                    rate.per_s()
                )));
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
        }
        let started = Instant::now();
        let by_timeout = started + self.grant.timeout;
        let until = by_timeout.min(deadline);
        let sent = tokio::time::timeout_at(
            tokio::time::Instant::from_std(until),
            self.round_trip(prepared, &what),
        )
        .await;
        metrics::histogram!("weir_plugin_http_request_seconds",
            "pipeline" => self.pipeline.to_string(), "plugin" => self.plugin.to_string())
        .record(started.elapsed().as_secs_f64());
        match sent {
            Ok(answer) => answer,
            Err(_) if until < by_timeout => Err(HttpError::Timeout(format!(
                "{what}: no answer before the call's I/O budget ran out"
            ))),
            Err(_) => Err(HttpError::Timeout(format!(
                "{what}: no answer within timeout_ms {}",
                self.grant.timeout.as_millis()
            ))),
        }
    }

    async fn round_trip(&self, prepared: Prepared, what: &str) -> Result<Response, HttpError> {
        let unavailable = |e: &dyn std::error::Error| {
            HttpError::Unavailable(format!("{what}: {}", error_chain(e)))
        };
        let mut request = http::Request::new(Full::new(prepared.body));
        *request.method_mut() = prepared.method;
        *request.uri_mut() = prepared
            .url
            .as_str()
            .parse()
            .map_err(|e| HttpError::Invalid(format!("{what}: {e}")))?;
        *request.headers_mut() = prepared.headers;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| unavailable(&e))?;
        let max = self.grant.max_response_bytes;
        let too_large = || {
            HttpError::TooLarge(format!(
                "{what}: the response is larger than max_response_bytes ({max})"
            ))
        };
        let (parts, mut body) = response.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| unavailable(&e))?;
            if let Ok(data) = frame.into_data() {
                if (bytes.len() + data.len()) as u64 > max {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        let headers = header_pairs(&parts.headers);
        Ok(Response {
            status: parts.status.as_u16(),
            headers,
            body: bytes,
        })
    }
}

/// Counts a request's outcome in `weir_plugin_http_requests_total`: a request of a plugin with no
/// `http` grant is counted too (`denied`), though it never gets as far as an [`HttpAccess`].
pub(crate) fn count(pipeline: &str, plugin: &str, outcome: &'static str) {
    metrics::counter!("weir_plugin_http_requests_total",
        "pipeline" => pipeline.to_owned(), "plugin" => plugin.to_owned(), "outcome" => outcome)
    .increment(1);
}

/// A request that passed the grant's checks.
struct Prepared {
    method: Method,
    url: Url,
    /// The plugin's own headers: what the cache key is made of (the grant's are the same for
    /// every request of the plugin).
    plugin_headers: HeaderMap,
    /// What is sent: the plugin's headers and the grant's.
    headers: HeaderMap,
    body: Bytes,
}

impl Prepared {
    fn cacheable(&self) -> bool {
        self.method == Method::GET && self.body.is_empty()
    }

    fn cache_key(&self) -> String {
        let mut key = self.url.to_string();
        for (name, value) in &self.plugin_headers {
            key.push('\n');
            key.push_str(name.as_str());
            key.push(':');
            key.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        key
    }
}

fn read_secret(
    plugin: &str,
    name: &HeaderName,
    secret: &Secret,
) -> Result<HeaderValue, HttpSetupError> {
    let header = name.as_str().to_owned();
    let text = secret.read().map_err(|e| match e {
        SecretError::NotSet(var) | SecretError::NotUnicode(var) => HttpSetupError::SecretEnv {
            plugin: plugin.to_owned(),
            header: header.clone(),
            var,
        },
        SecretError::File { path, message } => HttpSetupError::SecretFile {
            plugin: plugin.to_owned(),
            header: header.clone(),
            path,
            message,
        },
    })?;
    let mut value = HeaderValue::from_str(&text).map_err(|_| HttpSetupError::SecretValue {
        plugin: plugin.to_owned(),
        header,
        from: secret.origin(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Headers as the `http` interface carries them: name and value pairs, a value that is not UTF-8
/// decoded lossily.
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}
