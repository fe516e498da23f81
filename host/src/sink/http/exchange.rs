//! One request and its answer: a `max_concurrency` slot and a `rate_limit_per_s` start awaited,
//! the bearer token put in (renewed once on a 401), then the exchange within `timeout_ms`.
//!
//! 2xx: delivered (the body is read, at most 1 MiB, so that the connection is kept). 429, 5xx,
//! 408, timeouts and connection errors: retryable, no sooner than a `Retry-After` says (capped
//! at 10 minutes). 3xx (redirects are not followed) and other 4xx: permanent, with the status and
//! the first KiB of the body.

use super::oauth2::Token;
use super::sink::HttpSink;
use crate::http_client::error_chain;
use crate::sink::SinkError;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use std::time::{Duration, Instant};

/// How much of an error response's body the message quotes.
pub(super) const EXCERPT_BYTES: usize = 1024;
/// How much of a successful response's body is read before it is dropped (and its connection
/// with it).
const DRAIN_BYTES: usize = 1 << 20;
/// The longest a `Retry-After` is honoured for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// A request ready to go: one event's, or several events' (a JSON array).
pub(super) struct Outbound {
    pub(super) uri: http::Uri,
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// How an attempt ended, as the metrics count it.
#[derive(Clone, Copy)]
pub(super) enum Outcome {
    S2xx,
    S3xx,
    S4xx,
    S5xx,
    Timeout,
    Error,
}

impl Outcome {
    pub(super) const ALL: [Outcome; 6] = [
        Outcome::S2xx,
        Outcome::S3xx,
        Outcome::S4xx,
        Outcome::S5xx,
        Outcome::Timeout,
        Outcome::Error,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Outcome::S2xx => "2xx",
            Outcome::S3xx => "3xx",
            Outcome::S4xx => "4xx",
            Outcome::S5xx => "5xx",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }

    fn of(status: StatusCode) -> Outcome {
        match status.as_u16() {
            200..=299 => Outcome::S2xx,
            300..=399 => Outcome::S3xx,
            400..=499 => Outcome::S4xx,
            500..=599 => Outcome::S5xx,
            _ => Outcome::Error,
        }
    }
}

/// Why an attempt failed, and whether it was a 401 (worth a new token).
struct Failed {
    error: SinkError,
    unauthorized: bool,
}

impl HttpSink {
    /// Sends `out` and waits for its answer: `Ok` once the API took it.
    pub(super) async fn send(&self, out: &Outbound) -> Result<(), SinkError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SinkError::retryable("http: the sink is closing"))?;
        let mut token = match &self.tokens {
            Some(tokens) => Some(tokens.get().await?),
            None => None,
        };
        let mut renewed = false;
        loop {
            if let Some(rate) = &self.rate {
                // A day: no deadline of its own; the pipeline's shutdown ends the wait.
                if let Some(start) = rate.reserve(Instant::now() + Duration::from_secs(86_400)) {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
                }
            }
            match self.attempt(out, token.as_ref()).await {
                Ok(()) => return Ok(()),
                Err(Failed {
                    unauthorized: true,
                    error,
                }) if !renewed => {
                    let (Some(tokens), Some(stale)) = (&self.tokens, &token) else {
                        return Err(error);
                    };
                    token = Some(tokens.renew(stale).await?);
                    renewed = true;
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    async fn attempt(&self, out: &Outbound, token: Option<&Token>) -> Result<(), Failed> {
        // A GET carries no body: servers may refuse one.
        let body = match self.requests.method {
            http::Method::GET => Bytes::new(),
            _ => out.body.clone(),
        };
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = self.requests.method.clone();
        *request.uri_mut() = out.uri.clone();
        let headers = request.headers_mut();
        *headers = out.headers.clone();
        self.requests.add_fixed(headers);
        if let Some(t) = token {
            headers.insert(http::header::AUTHORIZATION, t.header.clone());
        }
        let method = self.requests.method.as_str();
        let started = Instant::now();
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| Failed {
                error: SinkError::retryable(format!("http: {method} {}: {}", out.url, error_chain(&e))),
                unauthorized: false,
            })?;
            let (parts, body) = response.into_parts();
            let limit = if parts.status.is_success() {
                DRAIN_BYTES
            } else {
                EXCERPT_BYTES
            };
            // A body that breaks off does not change what the status said.
            let bytes = read_limited(body, limit).await.map_or(Bytes::new(), |(b, _)| b);
            Ok((parts, bytes))
        };
        let answer = tokio::time::timeout(self.timeout, exchange).await;
        self.metrics.seconds.record(started.elapsed().as_secs_f64());
        let (parts, body) = match answer {
            Err(_) => {
                self.metrics.count(Outcome::Timeout);
                return Err(Failed {
                    error: SinkError::retryable(format!(
                        "http: {method} {}: no answer within timeout_ms {}",
                        out.url,
                        self.timeout.as_millis()
                    )),
                    unauthorized: false,
                });
            }
            Ok(Err(failed)) => {
                self.metrics.count(Outcome::Error);
                return Err(failed);
            }
            Ok(Ok(answer)) => answer,
        };
        self.metrics.count(Outcome::of(parts.status));
        if parts.status.is_success() {
            return Ok(());
        }
        Err(Failed {
            error: status_error(parts.status, &parts.headers, &body, method, &out.url),
            unauthorized: parts.status == StatusCode::UNAUTHORIZED,
        })
    }
}

/// The error for a response that is not 2xx: retryable for 408, 429 and 5xx (no sooner than its
/// `Retry-After`), permanent otherwise.
pub(super) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    method: &str,
    url: &str,
) -> SinkError {
    let mut message = format!(
        "HTTP {} {} from {method} {url}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if status.is_redirection() {
        message.push_str(" (redirects are not followed");
        if let Some(to) = headers.get(http::header::LOCATION) {
            message.push_str(&format!("; Location: {}", String::from_utf8_lossy(to.as_bytes())));
        }
        message.push(')');
    }
    let excerpt = &body[..body.len().min(EXCERPT_BYTES)];
    if !excerpt.is_empty() {
        message.push_str(": ");
        message.push_str(&String::from_utf8_lossy(excerpt));
    }
    let retryable = matches!(status.as_u16(), 408 | 429 | 500..=599);
    if !retryable {
        return SinkError::permanent(message);
    }
    let error = SinkError::retryable(message);
    match retry_after(headers, std::time::SystemTime::now()) {
        Some(after) => error.after(after),
        None => error,
    }
}

/// A `Retry-After` in seconds or as an HTTP date, from `now`, at most 10 minutes.
pub(super) fn retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let text = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let after = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
            let at = std::time::SystemTime::from(at);
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(after.min(MAX_RETRY_AFTER))
}

/// Reads a body up to `limit` bytes: the bytes, and whether there was more (left unread).
pub(super) async fn read_limited(
    mut body: hyper::body::Incoming,
    limit: usize,
) -> Result<(Bytes, bool), hyper::Error> {
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > limit {
                bytes.truncate(limit);
                return Ok((bytes.freeze(), true));
            }
        }
    }
    Ok((bytes.freeze(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, retry_after.parse().unwrap());
        h
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_capped_at_ten_minutes() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(&headers("7"), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("86400"), now), Some(MAX_RETRY_AFTER));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(
            retry_after(&headers("Tue, 14 Nov 2023 22:13:50 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&headers("Tue, 14 Nov 2023 22:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_are_retryable_or_permanent_with_the_body_excerpt() {
        let long = vec![b'x'; 5000];
        let e = status_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), &long, "POST", "http://h/o");
        assert!(!e.retryable);
        assert_eq!(
            e.message,
            format!("HTTP 400 Bad Request from POST http://h/o: {}", "x".repeat(1024))
        );
        for status in [408, 429, 500, 503] {
            let e = status_error(StatusCode::from_u16(status).unwrap(), &headers("3"), b"", "PUT", "u");
            assert!(e.retryable, "{status}");
            assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        }
        let e = status_error(StatusCode::MOVED_PERMANENTLY, &HeaderMap::new(), b"", "POST", "u");
        assert!(!e.retryable);
        assert!(e.message.contains("redirects are not followed"), "{}", e.message);
        let e = status_error(StatusCode::NOT_FOUND, &headers("3"), b"", "POST", "u");
        assert_eq!((e.retryable, e.retry_after), (false, None));
    }
}
