//! What an HTTP answer means for the events it carried: delivered, retryable (no sooner than its
//! `Retry-After`) or permanent with the status and the first KiB of the body; and how an
//! attempt ended, as the metrics count it. Shared by the requests (exchange.rs) and the token
//! endpoint (oauth2.rs).

use crate::sink::SinkError;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;

/// How much of an error response's body the message quotes.
pub(super) const EXCERPT_BYTES: usize = 1024;
/// The longest a `Retry-After` is honoured for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

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

    pub(super) fn of(status: StatusCode) -> Outcome {
        match status.as_u16() {
            200..=299 => Outcome::S2xx,
            300..=399 => Outcome::S3xx,
            400..=499 => Outcome::S4xx,
            500..=599 => Outcome::S5xx,
            _ => Outcome::Error,
        }
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
