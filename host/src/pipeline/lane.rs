//! A lane: one strictly sequential stream of the pipeline's events. The router sends each event
//! to the lane of its key, so a key's events are handled in order; lanes run side by side.
//!
//! A lane takes what has queued up (up to a batch), runs it through its own plugin instances
//! (on the blocking pool), delivers it with retries, dead-letters what failed, and reports every
//! event that ended to the router, which acknowledges it. A retry holds up this lane only.
//!
//! An event a plugin fails retryably (an API that is down, a lookup that timed out) is tried
//! again through the plugins as `[retry]` says, and nothing after it in the lane is delivered
//! meanwhile, so its key keeps its order; when the policy runs out it is dead-lettered. With
//! `on_failure = "block"` every plugin failure is tried so (a fixed version may have been
//! hot-reloaded), without end; sink failures block inside [`Outlets::deliver`].

use super::deliver::Outlets;
use super::hold::Held;
use super::plugin_stage::{PluginSet, PluginStage};
use super::policy::OnFailure;
use super::slot::{Ended, Failure, Fate, RETRYABLE, Slot};
use crate::backoff::pause;
use crate::event::Position;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a lane reports: the events that ended, and how.
pub(super) type Finished = Vec<(Position, Ended)>;

pub(super) struct Lane {
    pub index: usize,
    pub pipeline: Arc<str>,
    pub rx: mpsc::UnboundedReceiver<Slot>,
    pub plugin_set: Option<PluginSet>,
    pub outlets: Arc<Outlets>,
    pub done: mpsc::UnboundedSender<Finished>,
    /// Most events taken at once.
    pub batch_size: usize,
}

impl Lane {
    /// Runs until the router closes the lane and it has handled everything queued, or until
    /// `stop` leaves an event unfinished (its sink or DLQ failing): then the rest of the queue
    /// is left unacknowledged too, so that nothing of this lane overtakes that event.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        let mut plugins = self.plugin_set.as_ref().map(PluginSet::stage);
        let mut buf: Vec<Slot> = Vec::with_capacity(self.batch_size);
        let mut held = Held::default();
        loop {
            if self.rx.recv_many(&mut buf, self.batch_size).await == 0 {
                return; // closed and drained
            }
            let mut slots = std::mem::replace(&mut buf, Vec::with_capacity(self.batch_size));
            let complete = self
                .handle(&mut slots, &mut plugins, &mut held, &stop)
                .await;
            let finished: Finished = slots
                .iter()
                .filter_map(|s| s.fate.ended().map(|how| (s.position, how)))
                .collect();
            if !finished.is_empty() && self.done.send(finished).is_err() {
                return; // the router is gone
            }
            if !complete {
                tracing::warn!(pipeline = %self.pipeline, lane = self.index,
                    "stopping with undelivered events; they and the lane's later events will be read again on restart");
                self.rx.close();
                return;
            }
        }
    }

    /// Takes `slots` through plugins, delivery and the DLQ. False if some could not end.
    async fn handle(
        &self,
        slots: &mut Vec<Slot>,
        plugins: &mut Option<PluginStage>,
        held: &mut Held,
        stop: &CancellationToken,
    ) -> bool {
        self.apply_plugins(plugins, slots, 0..slots.len()).await;
        held.apply(slots);
        let block = self.outlets.retry().on_failure == OnFailure::Block;
        let mut start = 0;
        loop {
            // Deliver up to the first event a plugin failed that is to be tried again, then try
            // it again: the events after it in this lane (its key's among them) wait.
            let end = (start..slots.len())
                .find(|&i| to_retry(&slots[i], block))
                .unwrap_or(slots.len());
            self.outlets.deliver(&mut slots[start..end], stop).await;
            held.apply(&mut slots[start..end]); // learns the keys that failed at the sink
            self.outlets.dead_letter(&mut slots[start..end], stop).await;
            if slots[start..end].iter().any(|s| s.fate.ended().is_none()) {
                return false;
            }
            if end == slots.len() {
                return true;
            }
            if !self.retry_plugins(plugins, slots, end, block, stop).await {
                return false;
            }
            start = end;
        }
    }

    /// Tries slot `i` again through the plugins, as `[retry]` says, until it passes or fails
    /// for good (then it goes to the DLQ with the reason). The later slots of the batch a plugin
    /// also failed retryably are tried again with it, in the same call: an API that is down
    /// fails the whole batch, and one call per round costs far less than one per event. With
    /// `on_failure = "block"`, every plugin failure is tried again, without end. False if
    /// stopped first.
    async fn retry_plugins(
        &self,
        plugins: &mut Option<PluginStage>,
        slots: &mut Vec<Slot>,
        i: usize,
        block: bool,
        stop: &CancellationToken,
    ) -> bool {
        let retry = self.outlets.retry();
        // Attempts and first failure time of each slot from `i` on, as this lane counts them.
        let mut attempts: Vec<u32> = vec![1; slots.len()];
        let mut first: Vec<Option<String>> = vec![None; slots.len()];
        while let Fate::Failed(f) = &slots[i].fate {
            if !to_retry(&slots[i], block) {
                break; // failed for good this time
            }
            if !retry.may_retry(attempts[i], slots[i].received.elapsed()) {
                let message = format!("gave up after {} attempts: {}", attempts[i], f.message);
                let failure =
                    Failure::now(&f.stage, "exhausted", message, attempts[i], first[i].take());
                slots[i].fate = Fate::Failed(failure);
                break;
            }
            let again: Vec<usize> = (i..slots.len())
                .filter(|&j| to_retry(&slots[j], block))
                .collect();
            let delay = retry.backoff.delay(attempts[i]);
            let (event, retry_in_ms) = (&slots[i].event.id, delay.as_millis() as u64);
            if block {
                tracing::error!(pipeline = %self.pipeline, lane = self.index, %event, stage = %f.stage,
                    reason = %f.message, attempts = attempts[i], events = again.len(), retry_in_ms,
                    "event failed; blocking its lane until it passes (on_failure = \"block\")");
            } else {
                tracing::warn!(pipeline = %self.pipeline, lane = self.index, %event, stage = %f.stage,
                    reason = %f.message, attempts = attempts[i], events = again.len(), retry_in_ms,
                    "a plugin failed retryably; trying again, the lane's later events waiting");
            }
            if !pause(delay, stop).await {
                return false;
            }
            self.outlets.count_retried(again.len());
            for &j in &again {
                if let Fate::Failed(f) = &slots[j].fate {
                    first[j].get_or_insert_with(|| f.first_failed_at.clone());
                }
                attempts[j] += 1;
                slots[j].fate = Fate::Pending;
                slots[j].outputs = None;
            }
            if !self.apply_plugins_to(plugins, slots, &again).await {
                return false;
            }
            // A failure now counts every attempt, and dates from the first.
            for &j in &again {
                if let Fate::Failed(f) = &mut slots[j].fate {
                    f.attempts = attempts[j];
                    if let Some(t) = &first[j] {
                        f.first_failed_at = t.clone();
                    }
                }
            }
        }
        true
    }

    /// Runs the slots at `which` (in order) through the plugins, leaving the others as they are
    /// (their plugins already ran). False if the slots were lost (the runtime is shutting down).
    async fn apply_plugins_to(
        &self,
        plugins: &mut Option<PluginStage>,
        slots: &mut Vec<Slot>,
        which: &[usize],
    ) -> bool {
        let mut picked = Vec::with_capacity(which.len());
        let mut rest = Vec::with_capacity(slots.len() - which.len());
        for (k, slot) in std::mem::take(slots).into_iter().enumerate() {
            match which.binary_search(&k) {
                Ok(_) => picked.push(slot),
                Err(_) => rest.push(slot),
            }
        }
        let n = picked.len();
        self.apply_plugins(plugins, &mut picked, 0..n).await;
        if picked.len() != n {
            return false;
        }
        let (mut picked, mut rest) = (picked.into_iter(), rest.into_iter());
        let total = n + rest.len();
        for k in 0..total {
            let next = match which.binary_search(&k) {
                Ok(_) => picked.next(),
                Err(_) => rest.next(),
            };
            slots.extend(next);
        }
        true
    }

    /// Runs `slots[range]` through the plugins on the blocking pool. A panic in the host's
    /// plugin code (a bug, not a plugin's trap) fails those events rather than losing them, and
    /// the lane starts over with fresh instances.
    async fn apply_plugins(
        &self,
        plugins: &mut Option<PluginStage>,
        slots: &mut Vec<Slot>,
        range: std::ops::Range<usize>,
    ) {
        let Some(mut stage) = plugins.take() else {
            return;
        };
        let mut owned = std::mem::take(slots);
        let joined = tokio::task::spawn_blocking(move || {
            let healthy = stage.apply_or_fail(&mut owned[range]);
            (healthy.then_some(stage), owned)
        })
        .await;
        match joined {
            Ok((stage, owned)) => {
                *slots = owned;
                *plugins = stage.or_else(|| self.plugin_set.as_ref().map(PluginSet::stage));
            }
            // The closure catches panics, so this is a cancelled runtime (shutting down): the
            // events are gone from this lane, unacknowledged, and will be read again.
            Err(e) => {
                tracing::error!(pipeline = %self.pipeline, lane = self.index, error = %e, "plugin task failed");
            }
        }
    }
}

/// Whether a plugin failed the slot in a way that is tried again: it said the failure was
/// retryable, or the pipeline blocks on every failure.
fn to_retry(slot: &Slot, block: bool) -> bool {
    matches!(&slot.fate, Fate::Failed(f) if f.stage.starts_with("plugin") && (block || RETRYABLE.contains(&f.kind.as_str())))
}
