//! One request and its answer: a `max_concurrency` slot and a `rate_limit_per_s` start awaited,
//! the bearer token put in (renewed once on a 401), then the exchange within `timeout_ms`.
//!
//! 2xx: delivered (the body is read, at most 1 MiB, so that the connection is kept). 429, 5xx,
//! 408, timeouts and connection errors: retryable, no sooner than a `Retry-After` says (capped
//! at 10 minutes). 3xx (redirects are not followed) and other 4xx: permanent, with the status and
//! the first KiB of the body.

use super::answer::{EXCERPT_BYTES, Outcome, read_limited, status_error};
use super::oauth2::Token;
use super::request::Outbound;
use super::sink::HttpSink;
use crate::http_client::error_chain;
use crate::sink::SinkError;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use std::time::{Duration, Instant};

/// How much of a successful response's body is read before it is dropped (and its connection
/// with it).
const DRAIN_BYTES: usize = 1 << 20;
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

