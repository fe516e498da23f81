//! What `weir check --connect` asks of an SQS queue: credentials found and the queue's
//! attributes read, as opening a source or sink does. It sends and receives no message.

use super::{AwsError, ClientError, QueueRef, client};
use std::time::Duration;

/// What would stop a source or sink at start (both at its `queue_url`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReachError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("sqs queue {url}: {}", .error.message)]
    Queue {
        url: String,
        #[source]
        error: AwsError,
    },
}

/// Finds credentials and reads the queue's attributes, each call within `timeout`: what was
/// reached (`sqs queue URL`).
pub(crate) async fn reach(q: QueueRef<'_>, timeout: Duration) -> Result<String, ReachError> {
    let client = client(q, timeout).await?;
    let answer = client
        .get_queue_attributes()
        .queue_url(q.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await;
    match answer {
        Ok(_) => Ok(format!("sqs queue {}", q.url)),
        Err(e) => Err(ReachError::Queue {
            url: q.url.to_owned(),
            error: AwsError::from_sdk("GetQueueAttributes", &e),
        }),
    }
}
