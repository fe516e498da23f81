//! The deliveries this process holds unacknowledged, and acknowledging them.
//!
//! A delivery tag means something only on the channel that delivered it: tags start again at 1
//! on every new channel, and acknowledging a tag on another channel would acknowledge the wrong
//! message or close the channel. So each delivery gets a weir sequence number (its position's
//! offset) and remembers its channel's generation and its tag. At a checkpoint (after the sink
//! made the deliveries durable) the finished deliveries of the current channel are acknowledged
//! (a contiguous run at once with `multiple`), and released ones rejected without requeue (the
//! queue's dead-letter exchange takes them). A finished delivery of a channel that is gone can
//! no longer be acknowledged: the broker hands it out again (at least once) and it is forgotten.

use lapin::{Channel, Connection};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Finished,
    Released,
}

struct Entry {
    generation: u32,
    tag: u64,
    state: State,
}

#[derive(Default)]
struct Table {
    /// The channel deliveries now come on, and its generation (0: none yet).
    channel: Option<Channel>,
    /// Its connection: closed by the checkpoint that settles the last delivery once the source
    /// stopped, so that the acknowledgements reach the broker before the process exits.
    conn: Option<Arc<Connection>>,
    generation: u32,
    next_seq: u64,
    /// By sequence number, so by arrival.
    entries: BTreeMap<u64, Entry>,
}

pub(super) struct InFlight {
    table: Mutex<Table>,
    /// Finished or released, not yet acknowledged or rejected.
    done: AtomicUsize,
    /// This many done and the pipeline is asked for a checkpoint now: the broker sends no more
    /// than `prefetch` unacknowledged deliveries, so waiting for the interval would stall it.
    eager_at: usize,
    /// Notified for an early checkpoint ([`crate::source::Acker::checkpoint_requests`]).
    pub(super) wanted: std::sync::Arc<Notify>,
    /// The source stopped reading: no delivery comes any more.
    stopping: AtomicBool,
    pipeline: String,
}

/// What a checkpoint did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Settled {
    pub acked: usize,
    pub rejected: usize,
    /// Finished on a channel that is gone: they come again.
    pub orphaned: usize,
}

impl InFlight {
    pub(super) fn new(pipeline: &str, prefetch: u16) -> Self {
        InFlight {
            table: Mutex::new(Table {
                next_seq: 1,
                ..Default::default()
            }),
            done: AtomicUsize::new(0),
            eager_at: (usize::from(prefetch) / 2).max(1),
            wanted: Default::default(),
            stopping: AtomicBool::new(false),
            pipeline: pipeline.to_owned(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new channel consumes: its generation. Deliveries of the older ones still held can no
    /// longer be acknowledged.
    pub(super) fn new_channel(&self, conn: Arc<Connection>, channel: Channel) -> u32 {
        let mut t = self.table();
        t.generation += 1;
        t.channel = Some(channel);
        t.conn = Some(conn);
        t.generation
    }

    /// The source stopped reading; what it read and never handed on is `abandoned`.
    pub(super) fn stop_reading(&self) {
        self.stopping.store(true, Relaxed);
    }

    /// A delivery never handed to the pipeline: it is not acknowledged (the broker hands it
    /// out again once the connection closes).
    pub(super) fn abandon(&self, seq: u64) {
        self.table().entries.remove(&seq);
    }

    /// The channel of `generation` is gone.
    pub(super) fn channel_lost(&self, generation: u32) {
        let mut t = self.table();
        if t.generation == generation {
            t.channel = None;
            t.conn = None;
        }
    }

    /// Registers a delivery of channel `generation`: its sequence number.
    pub(super) fn add(&self, generation: u32, tag: u64) -> u64 {
        let mut t = self.table();
        let seq = t.next_seq;
        t.next_seq += 1;
        t.entries.insert(
            seq,
            Entry {
                generation,
                tag,
                state: State::Pending,
            },
        );
        seq
    }

    fn settle(&self, seq: u64, state: State) {
        let changed = match self.table().entries.get_mut(&seq) {
            Some(e) if e.state == State::Pending => {
                e.state = state;
                true
            }
            _ => false,
        };
        if changed && self.done.fetch_add(1, Relaxed) + 1 == self.eager_at {
            self.wanted.notify_one();
        }
    }

    pub(super) fn finish(&self, seq: u64) {
        self.settle(seq, State::Finished);
    }

    pub(super) fn release(&self, seq: u64) {
        self.settle(seq, State::Released);
    }

    /// Acknowledges the finished deliveries of the current channel and rejects the released
    /// ones (at a checkpoint: the sink has made them durable); forgets those of channels that
    /// are gone. A channel failing meanwhile leaves its deliveries to come again.
    pub(super) async fn settle_done(&self) -> Settled {
        let (channel, plan, close) = {
            let mut t = self.table();
            let has_channel = t.channel.is_some();
            let generation = t.generation;
            let plan = plan(&mut t.entries, generation, has_channel);
            self.done.store(0, Relaxed);
            let last = self.stopping.load(Relaxed) && t.entries.is_empty();
            let close = if last { t.conn.take() } else { None };
            (t.channel.clone(), plan, close)
        };
        if let Some(channel) = channel {
            let result = ack_all(&channel, plan.multiple_up_to, &plan.singles, &plan.rejects).await;
            if let Err(e) = result {
                tracing::warn!(pipeline = %self.pipeline, error = %e,
                    "could not acknowledge finished deliveries (the channel is gone?): the broker will deliver them again");
            }
        }
        if let Some(conn) = close {
            // Waits for the broker's close-ok: every acknowledgement before it was applied.
            let _ = conn.close(200, "weir stopped".into()).await;
            self.table().channel = None;
        }
        if plan.settled.orphaned > 0 {
            tracing::warn!(pipeline = %self.pipeline, deliveries = plan.settled.orphaned,
                "finished deliveries of a lost connection cannot be acknowledged: the broker delivers them again (at least once)");
        }
        plan.settled
    }
}

/// What a checkpoint sends on the current channel.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Acknowledge every tag up to this one at once (`multiple`).
    multiple_up_to: Option<u64>,
    singles: Vec<u64>,
    /// Reject without requeue.
    rejects: Vec<u64>,
    settled: Settled,
}

/// Takes the finished and released deliveries out of `entries`: what to acknowledge and reject
/// on the channel of `generation` (if it is still there), and what is orphaned.
fn plan(entries: &mut BTreeMap<u64, Entry>, generation: u32, has_channel: bool) -> Plan {
    let mut p = Plan::default();
    // The lowest tag of the current channel still outstanding (not finished): every finished
    // tag below it can go in one `multiple` acknowledgement.
    let lowest_open = entries
        .values()
        .filter(|e| e.generation == generation && e.state != State::Finished)
        .map(|e| e.tag)
        .min()
        .unwrap_or(u64::MAX);
    entries.retain(|_, e| {
        if e.state == State::Pending {
            return true;
        }
        if e.generation != generation || !has_channel {
            p.settled.orphaned += 1;
            return false;
        }
        match e.state {
            State::Finished if e.tag < lowest_open => {
                p.multiple_up_to = p.multiple_up_to.max(Some(e.tag));
                p.settled.acked += 1;
            }
            State::Finished => {
                p.singles.push(e.tag);
                p.settled.acked += 1;
            }
            _ => {
                p.rejects.push(e.tag);
                p.settled.rejected += 1;
            }
        }
        false
    });
    p
}

async fn ack_all(
    channel: &Channel,
    multiple_up_to: Option<u64>,
    singles: &[u64],
    rejects: &[u64],
) -> Result<(), lapin::Error> {
    if let Some(tag) = multiple_up_to {
        channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await?;
    }
    for &tag in singles {
        channel.basic_ack(tag, BasicAckOptions::default()).await?;
    }
    for &tag in rejects {
        channel
            .basic_reject(tag, BasicRejectOptions { requeue: false })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(generation: u32, tag: u64, state: State) -> Entry {
        Entry {
            generation,
            tag,
            state,
        }
    }

    #[test]
    fn a_finished_run_is_acked_at_once_others_singly_old_channels_orphaned() {
        use State::*;
        let mut entries: BTreeMap<u64, Entry> = [
            entry(1, 7, Finished), // a lost channel's: cannot be acked
            entry(2, 1, Finished),
            entry(2, 2, Finished),
            entry(2, 3, Pending),
            entry(2, 4, Finished),
            entry(2, 5, Released),
            entry(2, 6, Finished),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, e))
        .collect();
        let p = plan(&mut entries, 2, true);
        assert_eq!(p.multiple_up_to, Some(2));
        assert_eq!(p.singles, vec![4, 6]);
        assert_eq!(p.rejects, vec![5]);
        assert_eq!(
            p.settled,
            Settled {
                acked: 4,
                rejected: 1,
                orphaned: 1
            }
        );
        // Only the pending one is left; once it finishes it is acked at once.
        assert_eq!(entries.len(), 1);
        entries.values_mut().for_each(|e| e.state = Finished);
        let p = plan(&mut entries, 2, true);
        assert_eq!((p.multiple_up_to, p.singles.len()), (Some(3), 0));
    }

    #[test]
    fn without_a_channel_nothing_is_acked() {
        let mut entries: BTreeMap<u64, Entry> =
            [(1, entry(3, 1, State::Finished))].into_iter().collect();
        let p = plan(&mut entries, 3, false);
        assert_eq!(p.multiple_up_to, None);
        assert_eq!(p.settled.orphaned, 1);
    }
}
