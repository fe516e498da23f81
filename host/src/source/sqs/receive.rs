//! A receiver: one long-polling loop. Several run side by side for batches larger than the 10
//! messages one receive call returns. Each message is registered in the in-flight table as soon
//! as it arrives, so that its visibility is kept extended while it waits for the pipeline.

use super::Reading;
use super::inflight::InFlight;
use super::message::to_event;
use crate::backoff::pause;
use crate::source::SourceEvent;
use crate::backoff::Outage;
use crate::sqs::{AwsError, OUTAGE_BACKOFF};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) struct Receiver {
    client: Client,
    reading: Reading,
    inflight: Arc<InFlight>,
    tx: mpsc::Sender<Vec<SourceEvent>>,
}

impl Receiver {
    pub(super) fn new(
        client: Client,
        reading: Reading,
        inflight: Arc<InFlight>,
        tx: mpsc::Sender<Vec<SourceEvent>>,
    ) -> Self {
        Receiver {
            client,
            reading,
            inflight,
            tx,
        }
    }

    pub(super) async fn run(self, stop: CancellationToken) {
        let mut outage = Outage::new(&self.reading.pipeline, "sqs receive", OUTAGE_BACKOFF);
        loop {
            let asked_at = Instant::now();
            let call = self
                .client
                .receive_message()
                .queue_url(&self.reading.queue_url)
                .max_number_of_messages(self.reading.per_receive)
                .wait_time_seconds(self.reading.wait_time_s)
                .visibility_timeout(self.reading.visibility.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send();
            let received = tokio::select! {
                // A long poll in progress holds no message yet: dropping it loses nothing
                // (a message SQS handed out as the call was dropped reappears after the
                // visibility timeout).
                _ = stop.cancelled() => return,
                r = call => r,
            };
            let messages = match received {
                Ok(out) => {
                    outage.ok();
                    self.reading.connected(true);
                    out.messages.unwrap_or_default()
                }
                Err(e) => {
                    let e = AwsError::from_sdk("ReceiveMessage", &e);
                    outage.failed(&e.message);
                    self.reading.failed(&e);
                    if !pause(outage.backoff(), &stop).await {
                        return;
                    }
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let receive = self.inflight.receive_id();
            let now = crate::event::now_rfc3339();
            // A message this process already holds (received again) is not delivered twice.
            let events: Vec<SourceEvent> = messages
                .into_iter()
                .filter_map(|m| {
                    let seq = self.inflight.add(
                        m.receipt_handle.clone().unwrap_or_default(),
                        m.message_id.clone().unwrap_or_default(),
                        asked_at,
                    )?;
                    Some(to_event(m, receive, seq, &self.reading, &now))
                })
                .collect();
            if events.is_empty() {
                continue;
            }
            let seqs: Vec<u64> = events.iter().map(|e| e.position.offset).collect();
            tokio::select! {
                _ = stop.cancelled() => {
                    self.inflight.return_to_queue(&seqs).await;
                    return;
                }
                sent = self.tx.send(events) => if sent.is_err() {
                    self.inflight.return_to_queue(&seqs).await;
                    return;
                },
            }
        }
    }
}
