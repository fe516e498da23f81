//! The bounds around every call a table makes to Redis or PostgreSQL: at most `max_concurrency`
//! under way at once (for all plugins and lanes), each cut at `timeout_ms`, and none going past
//! the deadline of the plugin call that asked (its I/O budget). Waiting for a turn counts
//! against the deadline but not against `timeout_ms`, which is about the backend.

use super::TableError;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub(super) struct CallLimit {
    /// `table NAME: redis HOST:PORT`, the start of every error, naming no password.
    what: String,
    permits: Semaphore,
    timeout: Duration,
}

impl CallLimit {
    pub(super) fn new(what: String, max_concurrency: usize, timeout: Duration) -> Self {
        CallLimit {
            what,
            permits: Semaphore::new(max_concurrency.clamp(1, Semaphore::MAX_PERMITS)),
            timeout,
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `call` within the bounds; its errors are said after `what`.
    pub(super) async fn run<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = Result<T, TableError>>,
    ) -> Result<T, TableError> {
        let unavailable = |why: String| TableError::Unavailable(format!("{}: {why}", self.what));
        let named = |e: TableError| match e {
            TableError::Unknown(why) => TableError::Unknown(format!("{}: {why}", self.what)),
            TableError::Unavailable(why) => unavailable(why),
        };
        if deadline <= Instant::now() {
            return Err(unavailable(
                "not tried: the plugin's I/O budget for this call is spent".to_owned(),
            ));
        }
        let bounded = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| TableError::Unavailable("the table is closing".to_owned()))?;
            match tokio::time::timeout(self.timeout, call).await {
                Ok(answer) => answer,
                Err(_) => Err(TableError::Unavailable(format!(
                    "no answer within {} ms (timeout_ms)",
                    self.timeout.as_millis()
                ))),
            }
        };
        match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), bounded).await {
            Ok(answer) => answer.map_err(named),
            Err(_) => Err(unavailable(
                "no answer before the plugin's I/O deadline".to_owned(),
            )),
        }
    }
}
