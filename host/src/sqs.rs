//! What the SQS source and sink share: the client, and how AWS errors become weir's.
//!
//! Credentials come from the standard AWS chain (environment, shared profiles, SSO, web
//! identity, container and instance metadata); the region from `region`, else the queue URL
//! (`https://sqs.<region>.amazonaws.com/...`), else that chain. `endpoint_url` points the
//! client at a local server.

mod reach;

pub(crate) use reach::reach;

use crate::aws_credentials::Problem;
use crate::backoff::Backoff;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::Region;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// Where a queue is and how to reach it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueRef<'a> {
    pub url: &'a str,
    pub region: Option<&'a str>,
    pub endpoint_url: Option<&'a str>,
}

/// Checks a queue URL and the connection settings; `(key, message)`.
pub(crate) fn validate(q: QueueRef<'_>) -> Result<(), (&'static str, String)> {
    if !(q.url.starts_with("https://") || q.url.starts_with("http://")) {
        return Err((
            "queue_url",
            format!(
                "`{}` is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)",
                q.url
            ),
        ));
    }
    if q.region.is_some_and(str::is_empty) {
        return Err(("region", "must not be empty".into()));
    }
    if let Some(u) = q.endpoint_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        return Err((
            "endpoint_url",
            format!("`{u}` is not a URL (http://host:port)"),
        ));
    }
    Ok(())
}

/// The region named in an AWS queue URL, if it is one.
fn region_of_url(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut parts = host.split('.');
    match (parts.next()?, parts.next()?) {
        ("sqs", region) => Some(region.to_owned()),
        (region, "queue") => Some(region.to_owned()), // the legacy form
        _ => None,
    }
}

/// Why no client for a queue was made. The messages name the key (`region`) where it is not
/// `queue_url`; the pipeline prefixes the table (`source`, `sink`, `dlq`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("region: no AWS region for {url}: set `region`, or AWS_REGION, or a profile's region")]
    NoRegion { url: String },
    #[error("cannot reach {url}: {}", .problem.message(chain))]
    Credentials {
        url: String,
        #[source]
        problem: Problem,
    },
}

/// A client for `q`. `attempt_timeout` bounds one HTTP attempt (a long poll needs more than its
/// wait).
pub(crate) async fn client(
    q: QueueRef<'_>,
    attempt_timeout: Duration,
) -> Result<Client, ClientError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = q.region.map(str::to_owned).or_else(|| region_of_url(q.url)) {
        loader = loader.region(Region::new(region));
    }
    if let Some(url) = q.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(ClientError::NoRegion {
            url: q.url.to_owned(),
        });
    }
    crate::aws_credentials::check(&shared)
        .await
        .map_err(|problem| ClientError::Credentials {
            url: q.url.to_owned(),
            problem,
        })?;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(attempt_timeout)
        .build();
    let conf = aws_sdk_sqs::config::Builder::from(&shared)
        .timeout_config(timeouts)
        .build();
    Ok(Client::from_conf(conf))
}

/// An AWS error as weir sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub(crate) struct AwsError {
    pub message: String,
    /// The service's error code, if it answered (`AWS.SimpleQueueService.NonExistentQueue`).
    pub code: Option<String>,
    /// Worth trying again: the network, a timeout, throttling, the service's own trouble. A
    /// service's refusal (no such queue, no permission, an invalid request) is not.
    pub retryable: bool,
}

/// Service error codes that go away by themselves.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "RequestThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "KmsThrottled",
    "RequestTimeout",
    "RequestExpired",
];

impl AwsError {
    pub(crate) fn from_sdk<E, R>(op: &str, e: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match e.as_service_error() {
            Some(service) => {
                let code = service.code().map(str::to_owned);
                let retryable = code
                    .as_deref()
                    .is_some_and(|c| RETRYABLE_CODES.iter().any(|r| c.ends_with(r)));
                let message = format!(
                    "{op}: {} ({})",
                    service.message().unwrap_or("no message"),
                    code.as_deref().unwrap_or("no code")
                );
                AwsError {
                    message,
                    code,
                    retryable,
                }
            }
            None => AwsError {
                message: format!("{op}: {}", chain(e)),
                code: None,
                retryable: true,
            },
        }
    }

    /// The queue does not exist (or is not visible with these credentials).
    pub(crate) fn no_such_queue(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.contains("NonExistentQueue") || c.contains("QueueDoesNotExist"))
    }
}

/// An error and its causes, `: `-separated (`dispatch failure: io error: ... Connection
/// refused`): the SDK's own context display appends debug dumps of every layer.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// The pace of retrying a receive during an outage: 0.2 s doubling to 10 s, exact. Unjittered:
/// each receiver keeps its own outage, and a few receivers of one queue retrying together put
/// no load on SQS worth spreading.
pub(crate) const OUTAGE_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(200),
    max: Duration::from_secs(10),
    jitter: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_queue_urls() {
        assert_eq!(
            region_of_url("https://sqs.eu-west-1.amazonaws.com/123456789012/orders").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of_url("https://us-east-2.queue.amazonaws.com/123456789012/orders").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(
            region_of_url("http://127.0.0.1:4566/123456789012/orders"),
            None
        );
    }
}
