//! The consumer: connects, sets the prefetch, consumes the queue with manual acknowledgements,
//! registers each delivery in the in-flight table as it arrives, and hands it on. When the
//! connection or channel is lost it reconnects with backoff (logged once as an outage); what the
//! lost channel delivered and weir had not acknowledged comes again on the new one.

use super::Reading;
use super::inflight::InFlight;
use super::message::to_event;
use crate::backoff::pause;
use crate::backoff::Outage;
use crate::rabbitmq::{RECONNECT, RabbitError};
use crate::source::SourceEvent;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) struct Consumer {
    pub reading: Reading,
    pub inflight: Arc<InFlight>,
    pub tx: mpsc::Sender<SourceEvent>,
    /// The batch number the source hands out next (positions' partition).
    pub batch: Arc<AtomicU32>,
}

/// Why consuming stopped.
enum Ended {
    /// `stop_consuming` was cancelled, or the source is gone.
    Stopped,
    Lost(RabbitError),
}

impl Consumer {
    /// Until `stop_all` (the acker is gone: nothing is left to acknowledge) the connection
    /// stays open; `stop_consuming` (the source stopped reading) only cancels the consumer, so
    /// that the final checkpoint can still acknowledge.
    pub(super) async fn run(self, stop_consuming: CancellationToken, stop_all: CancellationToken) {
        let mut outage = Outage::new(&self.reading.pipeline, "rabbitmq source connection", RECONNECT);
        loop {
            if stop_consuming.is_cancelled() {
                break;
            }
            let connected = tokio::select! {
                _ = stop_consuming.cancelled() => break,
                c = crate::rabbitmq::open_channel(self.reading.broker(), &self.reading.default_name) => c,
            };
            let (conn, channel) = match connected {
                Ok((conn, channel)) => (Arc::new(conn), channel),
                Err(e) => {
                    self.down(&mut outage, &e);
                    if !pause(outage.backoff(), &stop_consuming).await {
                        break;
                    }
                    continue;
                }
            };
            let ended = self
                .consume(conn.clone(), &channel, &mut outage, &stop_consuming)
                .await;
            match ended {
                Ended::Stopped => {
                    // Keep the connection until the acker is done with it (the final checkpoint
                    // closes it once everything is settled), then close it: what is still
                    // unacknowledged goes back to the queue.
                    stop_all.cancelled().await;
                    let _ = conn.close(200, "weir stopped".into()).await;
                    return;
                }
                Ended::Lost(e) => {
                    let _ = conn.close(200, "reconnecting".into()).await;
                    self.down(&mut outage, &e);
                    if !pause(outage.backoff(), &stop_consuming).await {
                        break;
                    }
                }
            }
        }
        stop_all.cancelled().await;
    }

    fn down(&self, outage: &mut Outage, e: &RabbitError) {
        outage.failed(&e.message);
        if let Some(s) = &self.reading.status {
            s.set_source_connected(false);
            s.error("source", &e.message);
        }
    }

    async fn consume(
        &self,
        conn: Arc<lapin::Connection>,
        channel: &lapin::Channel,
        outage: &mut Outage,
        stop: &CancellationToken,
    ) -> Ended {
        let r = &self.reading;
        let lost = |what: &str, e: lapin::Error| {
            Ended::Lost(RabbitError {
                message: format!("{what} on {}: {e}", r.broker().shown()),
                permanent: crate::rabbitmq::permanent(&e),
            })
        };
        if let Err(e) = channel
            .basic_qos(r.prefetch, BasicQosOptions::default())
            .await
        {
            return lost("basic.qos", e);
        }
        let consumer = channel
            .basic_consume(
                r.queue.as_str().into(),
                r.default_name.as_str().into(),
                BasicConsumeOptions::default(),
                Default::default(),
            )
            .await;
        let mut consumer = match consumer {
            Ok(c) => c,
            Err(e) => return lost(&format!("consuming queue `{}`", r.queue), e),
        };
        let generation = self.inflight.new_channel(conn, channel.clone());
        outage.ok();
        if let Some(s) = &r.status {
            s.set_source_connected(true);
        }
        tracing::info!(pipeline = %r.pipeline, queue = %r.queue, url = %r.broker().shown(),
            generation, prefetch = r.prefetch, "rabbitmq consumer started");
        let ended = loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break Ended::Stopped,
                n = consumer.next() => n,
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => break lost("consuming", e),
                None => {
                    break Ended::Lost(RabbitError {
                        message: format!(
                            "the broker cancelled the consumer of queue `{}` (deleted?)",
                            r.queue
                        ),
                        permanent: false,
                    });
                }
            };
            let seq = self.inflight.add(generation, delivery.delivery_tag);
            let now = crate::event::now_rfc3339();
            let batch = self.batch.load(Relaxed);
            let event = to_event(&delivery, generation, seq, batch, r, &now);
            let sent = tokio::select! {
                _ = stop.cancelled() => false,
                sent = self.tx.send(event) => sent.is_ok(),
            };
            if !sent {
                self.inflight.abandon(seq);
                break Ended::Stopped;
            }
        };
        match &ended {
            Ended::Lost(_) => self.inflight.channel_lost(generation),
            // No more deliveries; the ones already here are acknowledged on this channel by the
            // final checkpoint.
            Ended::Stopped => {
                let _ = channel
                    .basic_cancel(
                        r.default_name.as_str().into(),
                        lapin::options::BasicCancelOptions::default(),
                    )
                    .await;
            }
        }
        ended
    }
}
