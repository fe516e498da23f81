//! The messages this process holds: delivered and not yet acknowledged. Each is kept in
//! progress (`+WPI`) before its `ack_wait` runs out; at each checkpoint the ended ones are
//! answered: `+ACK` (delivered, filtered), `+TERM` (dead-lettered: never delivered again) or
//! `-NAK` with a delay (handed back for redelivery). The last answer of each checkpoint asks for
//! the server's confirmation, and the messages answered at that checkpoint leave the table only
//! once it came: the server takes a consumer's answers in the order they were sent, so the last
//! one's confirmation says that all before it were taken too (one confirmation per checkpoint,
//! not one message back per event). Answers not confirmed within `CONFIRM_WAIT` (lost with the
//! connection) are sent again at the next checkpoint. The checkpoint does not wait for the
//! confirmation: the pipeline goes on meanwhile.
//!
//! Each message gets a sequence number of weir's as it arrives (its position's offset).

use crate::backoff::Backoff;
use async_nats::Subject;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    Ack,
    Term,
    Nak,
}

struct Entry {
    /// The message's acknowledgement subject; `None` for one that is not a JetStream message.
    reply: Option<Subject>,
    delivered: i64,
    /// When it was delivered or last said to be in progress.
    progress_at: Instant,
    ended: Option<Ending>,
    /// When its answer was sent, and the checkpoint round it was sent in (then it waits for
    /// that round's confirmation).
    answered: Option<(Instant, u64)>,
}

/// A handed-back message comes again after this, growing with its deliveries.
const NAK_DELAY: Backoff = Backoff {
    min: Duration::from_secs(1),
    max: Duration::from_secs(60),
    jitter: false,
};

/// How long an answer waits for the server's confirmation before it is sent again.
const CONFIRM_WAIT: Duration = Duration::from_secs(10);

pub(super) struct InFlight {
    client: async_nats::Client,
    pipeline: String,
    ack_wait: Duration,
    /// By sequence number: in arrival order, the order answers are sent in (a hash map needed a
    /// sort of each checkpoint's answers, and a hash per message).
    messages: Mutex<BTreeMap<u64, Entry>>,
    next_seq: AtomicU64,
    /// Confirmations of answers arrive at `<inbox>.<round>`.
    inbox: String,
    /// Checkpoint rounds that sent answers, numbered.
    rounds: AtomicU64,
    /// Notified when many ended messages wait for a checkpoint.
    pub(super) ack_wanted: std::sync::Arc<Notify>,
    ack_early_at: usize,
    ended: AtomicU64,
}

impl InFlight {
    pub(super) async fn new(
        client: async_nats::Client,
        pipeline: &str,
        ack_wait: Duration,
        ack_early_at: usize,
    ) -> Result<(Self, async_nats::Subscriber), String> {
        let inbox = client.new_inbox();
        let confirmations = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| format!("source: nats: cannot subscribe to confirmations: {e}"))?;
        let inflight = InFlight {
            client,
            pipeline: pipeline.to_owned(),
            ack_wait,
            messages: Mutex::new(BTreeMap::new()),
            next_seq: AtomicU64::new(1),
            inbox,
            rounds: AtomicU64::new(0),
            ack_wanted: Default::default(),
            ack_early_at,
            ended: AtomicU64::new(0),
        };
        Ok((inflight, confirmations))
    }

    /// Until `stop`: takes in the server's confirmations of answers; the messages answered in a
    /// confirmed round leave the table.
    pub(super) async fn take_confirmations(
        self: std::sync::Arc<Self>,
        mut confirmations: async_nats::Subscriber,
        stop: CancellationToken,
    ) {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = confirmations.next() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            let round = msg
                .subject
                .as_str()
                .rsplit('.')
                .next()
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(round) = round {
                self.table()
                    .retain(|_, e| e.answered.is_none_or(|(_, r)| r != round));
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a delivered message; returns its sequence number.
    pub(super) fn add(&self, reply: Option<Subject>, delivered: i64) -> u64 {
        let seq = self.next_seq.fetch_add(1, Relaxed);
        let entry = Entry {
            reply,
            delivered,
            progress_at: Instant::now(),
            ended: None,
            answered: None,
        };
        self.table().insert(seq, entry);
        seq
    }

    pub(super) fn end(&self, seq: u64, how: Ending) {
        if let Some(e) = self.table().get_mut(&seq)
            && e.ended.is_none()
        {
            e.ended = Some(how);
            let n = self.ended.fetch_add(1, Relaxed) + 1;
            if n as usize >= self.ack_early_at {
                self.ack_wanted.notify_one();
            }
        }
    }

    /// Answers every ended message not answered yet, and again those whose answer was not
    /// confirmed within `CONFIRM_WAIT` (at a checkpoint: the sink has made the delivered ones
    /// durable), in the order they arrived; the last answer asks for the confirmation of the
    /// round, taken in by [`InFlight::take_confirmations`].
    pub(super) async fn acknowledge(&self) -> Result<(), String> {
        let now = Instant::now();
        let round = self.rounds.fetch_add(1, Relaxed) + 1;
        let mut unconfirmed = 0;
        let due: Vec<(Subject, Ending, i64)> = {
            let mut table = self.table();
            // Ended messages without an acknowledgement subject have nothing to answer.
            table.retain(|_, e| !(e.ended.is_some() && e.reply.is_none()));
            table
                .values_mut()
                .filter_map(|e| {
                    let how = e.ended?;
                    match e.answered {
                        Some((t, _)) if now.duration_since(t) < CONFIRM_WAIT => return None,
                        Some(_) => unconfirmed += 1,
                        None => {}
                    }
                    e.answered = Some((now, round));
                    Some((e.reply.clone()?, how, e.delivered))
                })
                .collect()
        };
        self.ended.store(0, Relaxed);
        let mut send_error = None;
        let last = due.len().saturating_sub(1);
        for (i, (reply, how, delivered)) in due.into_iter().enumerate() {
            let answer: bytes::Bytes = match how {
                Ending::Ack => async_nats::jetstream::AckKind::Ack.into(),
                Ending::Term => async_nats::jetstream::AckKind::Term.into(),
                Ending::Nak => {
                    let delay = NAK_DELAY.delay(u32::try_from(delivered - 1).unwrap_or(0));
                    async_nats::jetstream::AckKind::Nak(Some(delay)).into()
                }
            };
            let sent = if i == last {
                let confirm = format!("{}.{round}", self.inbox);
                self.client
                    .publish_with_reply(reply, confirm, answer)
                    .await
            } else {
                self.client.publish(reply, answer).await
            };
            if let Err(e) = sent {
                send_error = Some(e.to_string());
                break;
            }
        }
        if let Err(e) = self.client.flush().await {
            send_error.get_or_insert(e.to_string());
        }
        match (send_error, unconfirmed) {
            (None, 0) => Ok(()),
            (error, n) => Err(format!(
                "nats: {n} answers (acks) not confirmed by the server within {} s, sent again{}",
                CONFIRM_WAIT.as_secs(),
                error
                    .map(|e| format!("; sending failed: {e}"))
                    .unwrap_or_default()
            )),
        }
    }

    /// Until `stop`: tells the server that the messages held are in progress once half of
    /// their `ack_wait` is used up, so that it does not deliver them again meanwhile.
    pub(super) async fn keep_in_progress(self: std::sync::Arc<Self>, stop: CancellationToken) {
        let tick = (self.ack_wait / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let margin = self.ack_wait / 2;
        let progress: bytes::Bytes = async_nats::jetstream::AckKind::Progress.into();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let now = Instant::now();
            let due: Vec<Subject> = {
                let mut table = self.table();
                table
                    .values_mut()
                    .filter(|e| {
                        e.answered.is_none() && now.duration_since(e.progress_at) >= margin
                    })
                    .filter_map(|e| {
                        e.progress_at = now;
                        e.reply.clone()
                    })
                    .collect()
            };
            for reply in due {
                if let Err(e) = self.client.publish(reply, progress.clone()).await {
                    tracing::warn!(pipeline = %self.pipeline, error = %e,
                        "could not tell the server that messages are in progress: they may be delivered twice");
                    break;
                }
            }
        }
    }

    /// Hands messages read but never given to the pipeline back at once (`-NAK` without a
    /// delay), for another consumer, or this one after a restart.
    pub(super) async fn hand_back(&self, seqs: &[u64]) {
        let replies: Vec<Subject> = {
            let mut table = self.table();
            seqs.iter()
                .filter_map(|seq| table.remove(seq).and_then(|e| e.reply))
                .collect()
        };
        let nak: bytes::Bytes = async_nats::jetstream::AckKind::Nak(None).into();
        for reply in replies {
            if self.client.publish(reply, nak.clone()).await.is_err() {
                break;
            }
        }
        let _ = self.client.flush().await;
    }
}
