//! The receiver: one continuous pull on the durable consumer (async-nats keeps a pull request
//! open, renews it as messages are taken, and sends a new one after a reconnection). Each
//! message is registered in the in-flight table as it arrives, so that it is kept in progress
//! from then on, and becomes an event.

use super::Reading;
use super::ack_info;
use super::gaps::Gaps;
use super::inflight::InFlight;
use super::recovery::{Pulled, Recovery};
use crate::backoff::{Backoff, Outage, pause};
use crate::event::{Envelope, Position};
use crate::source::SourceEvent;
use async_nats::jetstream::consumer::PullConsumer;
use futures_util::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) struct Receiver {
    pub consumer: PullConsumer,
    pub reading: Reading,
    pub inflight: Arc<InFlight>,
    pub tx: mpsc::Sender<Vec<SourceEvent>>,
    /// How long to wait before the first pull (see `open`).
    pub wait_first: Duration,
    /// Set when a stopped process left messages unacknowledged, or a cut lost deliveries:
    /// redeliveries are gathered and put back in stream order before anything else goes on.
    pub recovery: Option<Recovery>,
    pub gaps: Gaps,
}

/// Messages one pull request asks for at least, whatever `batch_size` (which still bounds the
/// batches handed on): fewer, larger pulls took 200,000 messages through weir 15% faster than
/// pulls of 256 (docs/performance.md, "NATS JetStream source and sink").
const PULL_AT_LEAST: usize = 1024;

const RETRY: Backoff = Backoff {
    min: Duration::from_millis(200),
    max: Duration::from_secs(10),
    jitter: false,
};

impl Receiver {
    pub(super) async fn run(mut self, stop: CancellationToken) {
        if !self.wait_first.is_zero() && !pause(self.wait_first, &stop).await {
            return;
        }
        let mut outage = Outage::new(&self.reading.pipeline, "nats pull", RETRY);
        loop {
            let pulled = self
                .consumer
                .stream()
                .max_messages_per_batch(self.reading.batch_size.max(PULL_AT_LEAST))
                // No idle heartbeat: while the pipeline is full this stream is not polled, and
                // a heartbeat timer would report that as a failure. A pull the server never
                // answers is renewed after `expires` by the client anyway.
                .expires(self.reading.expires)
                .messages()
                .await;
            let mut messages = match pulled {
                Ok(m) => m,
                Err(e) => {
                    self.failed(&mut outage, &e.to_string());
                    if !pause(outage.backoff(), &stop).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let gathering_ends = self
                    .recovery
                    .as_ref()
                    .map(|r| tokio::time::Instant::from_std(r.ends_at(self.reading.expires)));
                let first = tokio::select! {
                    _ = stop.cancelled() => {
                        self.hand_back_recovered().await;
                        return;
                    }
                    m = messages.next() => m,
                    // Gathering redeliveries, and none came for a pull's wait (after a start)
                    // or they were due (after a cut): all that will come came.
                    _ = tokio::time::sleep_until(gathering_ends.unwrap_or_else(tokio::time::Instant::now)),
                        if gathering_ends.is_some() => {
                        if !self.finish_recovery(&stop).await {
                            return;
                        }
                        continue;
                    }
                };
                let Some(first) = first else {
                    if !self.finish_recovery(&stop).await {
                        return;
                    }
                    break;
                };
                let mut batch = Vec::with_capacity(self.reading.batch_size);
                let mut error = None;
                match first {
                    Ok(m) => batch.push(m),
                    Err(e) => error = Some(e.to_string()),
                }
                // Whatever else has already arrived, without waiting.
                while error.is_none() && batch.len() < self.reading.batch_size {
                    match messages.next().now_or_never() {
                        Some(Some(Ok(m))) => batch.push(m),
                        Some(Some(Err(e))) => error = Some(e.to_string()),
                        _ => break,
                    }
                }
                if let Some(e) = error {
                    // A missed heartbeat or a failed pull request: the stream goes on (it pulls
                    // again after a reconnection); said once per outage.
                    self.failed(&mut outage, &e);
                }
                if batch.is_empty() {
                    continue;
                }
                outage.ok();
                if let Some(s) = &self.reading.status {
                    s.set_source_connected(true);
                }
                let now = crate::event::now_rfc3339();
                let pulled: Vec<Pulled> =
                    batch.into_iter().map(|m| self.to_event(m, &now)).collect();
                self.watch_for_gaps(&pulled);
                let events: Vec<SourceEvent> = match self.recovery.take() {
                    None => pulled.into_iter().map(|p| p.event).collect(),
                    Some(mut recovery) => match recovery.take(pulled) {
                        Some(events) => events,
                        None => {
                            self.recovery = Some(recovery);
                            continue;
                        }
                    },
                };
                if !self.send(events, &stop).await {
                    return;
                }
            }
            // The stream ended (the consumer was deleted, or the pull was refused): pull anew.
            // What the server still sends to the old pull's inbox is lost, as in a cut.
            self.gaps.pull_ended();
            self.failed(&mut outage, "the pull ended (was the consumer deleted?)");
            if !pause(outage.backoff(), &stop).await {
                return;
            }
        }
    }

    /// Hands events on to the source; `false` once stopped (then they went back to the
    /// server).
    async fn send(&self, events: Vec<SourceEvent>, stop: &CancellationToken) -> bool {
        if events.is_empty() {
            return true;
        }
        let seqs: Vec<u64> = events.iter().map(|e| e.position.offset).collect();
        tokio::select! {
            _ = stop.cancelled() => {
                self.inflight.hand_back(&seqs).await;
                false
            }
            sent = self.tx.send(events) => {
                if sent.is_err() {
                    self.inflight.hand_back(&seqs).await;
                }
                sent.is_ok()
            }
        }
    }

    /// Deliveries lost in a cut: what comes from now on waits for their redeliveries.
    fn watch_for_gaps(&mut self, pulled: &[Pulled]) {
        for p in pulled {
            if let Some(lost) = self.gaps.see(p.consumer_seq, p.stream_seq) {
                match &mut self.recovery {
                    Some(r) => r.add_cut(lost),
                    None => self.recovery = Some(Recovery::after_cut(lost)),
                }
            }
        }
        self.gaps.look_for_reconnection();
    }

    /// Ends the gathering of redeliveries, if under way: what was gathered goes on, in stream
    /// order. `false` once stopped.
    async fn finish_recovery(&mut self, stop: &CancellationToken) -> bool {
        match self.recovery.take() {
            Some(mut r) => {
                if r.left() > 0 {
                    tracing::info!(pipeline = %self.reading.pipeline, not_come = r.left(),
                        "nats: going on without redeliveries that did not come in time (another process holds them, or they were acknowledged)");
                }
                self.send(r.finish(), stop).await
            }
            None => true,
        }
    }

    /// Stopping while gathering: the gathered messages go back to the server at once.
    async fn hand_back_recovered(&mut self) {
        if let Some(r) = self.recovery.take() {
            self.inflight.hand_back(&r.held_offsets()).await;
        }
    }

    fn failed(&self, outage: &mut Outage, e: &str) {
        outage.failed(e);
        if let Some(s) = &self.reading.status {
            s.error("source", &format!("nats pull: {e}"));
        }
    }

    /// The message as an event: its payload is the data, its subject the key (unless `key`
    /// says otherwise), and `meta` holds the subject, stream, sequences, delivery count,
    /// publication time and headers.
    ///
    /// With the event go the message's stream sequence (`u64::MAX` for a message without one),
    /// by which redeliveries are put back in order (see recovery.rs), and its delivery.
    fn to_event(&self, m: async_nats::jetstream::Message, now: &str) -> Pulled {
        let subject = m.message.subject.as_str().to_owned();
        let mut delivered: i64 = 1;
        let mut stream_seq = u64::MAX;
        let mut consumer_seq = 0;
        let mut id = None;
        let mut time = None;
        // `meta` is gathered in key order and built at once: a map built from sorted pairs
        // costs about half as much as nine inserts, each searching the keys before it.
        let mut meta: Vec<(String, Value)> = Vec::with_capacity(9);
        let info = m.message.reply.as_deref().and_then(ack_info::parse);
        if let Some(info) = &info {
            delivered = info.delivered;
            stream_seq = info.stream_seq;
            consumer_seq = info.consumer_seq;
            meta.push(("consumer".into(), info.consumer.into()));
            meta.push(("consumer_seq".into(), info.consumer_seq.into()));
            meta.push(("delivered".into(), info.delivered.into()));
            let published = chrono::DateTime::from_timestamp_nanos(info.published_nanos);
            time = Some(crate::event::rfc3339_millis(published));
            id = Some(stream_id(info.stream, info.stream_seq));
        }
        let mut headers = Map::new();
        if let Some(h) = &m.message.headers {
            for (name, values) in h.iter() {
                let value = match values.as_slice() {
                    [one] => Value::String(one.as_str().to_owned()),
                    many => Value::Array(
                        many.iter()
                            .map(|v| Value::String(v.as_str().to_owned()))
                            .collect(),
                    ),
                };
                headers.insert(name.to_string(), value);
            }
            // The publisher's id, which the stream de-duplicates on, is stable across
            // re-publications: the event's id.
            if let Some(msg_id) = h.get_last("Nats-Msg-Id") {
                id = Some(msg_id.as_str().to_owned());
            }
        }
        meta.push(("headers".into(), Value::Object(headers)));
        if let Some(info) = &info {
            meta.push(("pending".into(), info.pending.into()));
            meta.push(("stream".into(), info.stream.into()));
            meta.push(("stream_seq".into(), info.stream_seq.into()));
        }
        meta.push(("subject".into(), subject.clone().into()));
        // Only a payload that is not UTF-8 adds to `meta` (its exact bytes).
        let mut decoding = Map::new();
        let (data, problem) = self.reading.format.decode(&m.message.payload, &mut decoding);
        meta.extend(decoding);
        let meta: Map<String, Value> = meta.into_iter().collect();
        let seq = self.inflight.add(m.message.reply.clone(), delivered);
        let deliveries = delivered;
        let delivered = u32::try_from(delivered).unwrap_or(u32::MAX);
        // Input that cannot be read as it is will not read better next time: to the DLQ at once.
        let release_on_failure = problem.is_none()
            && match self.reading.dead_letter_from {
                Some(from) => delivered < from,
                None => true,
            };
        let mut envelope = Envelope {
            id: id.unwrap_or_else(|| format!("nats:{seq}")),
            source: "nats",
            key: None,
            time: time.unwrap_or_else(|| now.to_owned()),
            received_at: now.to_owned(),
            data,
            meta,
        };
        envelope.key = Some(match &self.reading.key {
            Some(t) => t.render(&envelope, &self.reading.pipeline),
            None => subject,
        });
        let event = SourceEvent {
            envelope,
            position: Position {
                partition: 0,
                offset: seq,
                ordinal: seq,
            },
            problem,
            release_on_failure,
        };
        Pulled {
            stream_seq,
            consumer_seq,
            delivered: deliveries,
            event,
        }
    }
}

/// `<stream>:<stream sequence>`: the id of a message without a `Nats-Msg-Id` (without
/// `format!`, which costs several times this per event).
fn stream_id(stream: &str, seq: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(seq);
    let mut id = String::with_capacity(stream.len() + 1 + digits.len());
    id.push_str(stream);
    id.push(':');
    id.push_str(digits);
    id
}
