//! The sink's producer, replaced after a fatal error. librdkafka raises a fatal error when an
//! idempotent producer can no longer keep its guarantees (its sequence numbers out of step with
//! the broker's after the broker lost state, the producer fenced): from then on that producer
//! fails every record, and only a new producer (a new producer id) can write again. The records
//! the old one did not get acknowledged fail as retryable and go through `[retry]` in their
//! lane, in order, on the new one.

use super::SinkError;
use crate::kafka::Logged;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use std::sync::{Arc, Mutex};

pub(super) struct Producers {
    config: ClientConfig,
    pipeline: String,
    current: Mutex<Arc<FutureProducer<Logged>>>,
}

impl Producers {
    pub(super) fn new(config: ClientConfig, pipeline: &str) -> Result<Self, SinkError> {
        let first = create(&config, pipeline)?;
        Ok(Producers {
            config,
            pipeline: pipeline.to_owned(),
            current: Mutex::new(Arc::new(first)),
        })
    }

    /// The producer to write with: the current one, or a new one if the current one has failed
    /// for good.
    pub(super) fn get(&self) -> Arc<FutureProducer<Logged>> {
        let current = self.lock().clone();
        if self.replace_if_fatal(&current).is_none() {
            return current;
        }
        retire(current);
        self.lock().clone()
    }

    /// If `used` has hit a fatal error, replaces it (unless another lane already did) and
    /// returns the error.
    pub(super) fn replace_if_fatal(&self, used: &Arc<FutureProducer<Logged>>) -> Option<String> {
        use rdkafka::producer::Producer;
        let (code, reason) = used.client().fatal_error()?;
        let fatal = format!("{code:?}: {reason}");
        let mut current = self.lock();
        if Arc::ptr_eq(&current, used) {
            match create(&self.config, &self.pipeline) {
                Ok(fresh) => {
                    tracing::error!(pipeline = %self.pipeline, error = %fatal,
                        "kafka producer failed for good; replaced with a new one (its unacknowledged records are retried)");
                    retire(std::mem::replace(&mut *current, Arc::new(fresh)));
                }
                // Tried again on the next write.
                Err(e) => {
                    tracing::error!(pipeline = %self.pipeline, error = %fatal, replacement = %e,
                        "kafka producer failed for good and cannot be replaced yet")
                }
            }
        }
        Some(fatal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<FutureProducer<Logged>>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Lets go of a replaced producer on a thread of its own: destroying a librdkafka client waits
/// for its threads to end, which must not hold up the async runtime's. Whoever lets go last
/// (this, or a lane still finishing a write with it) destroys it.
pub(super) fn retire(producer: Arc<FutureProducer<Logged>>) {
    let _ = std::thread::Builder::new()
        .name("kafka-retire".into())
        .spawn(move || drop(producer));
}

fn create(config: &ClientConfig, pipeline: &str) -> Result<FutureProducer<Logged>, SinkError> {
    config
        .create_with_context(Logged::new(pipeline, "sink"))
        .map_err(|e| SinkError::permanent(format!("cannot create kafka producer: {e}")).caused_by(e))
}
