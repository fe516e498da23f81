//! A lane: one strictly sequential stream of the pipeline's events. The router sends each event
//! to the lane of its key, so a key's events are handled in order; lanes run side by side.
//!
//! A lane takes what has queued up (up to a batch), runs it through its own plugin instances
//! (on its own thread, plugin_thread.rs), dead-letters what failed there, and routes the rest to
//! the targets whose rules they match: to each target's lane of the same index
//! ([`super::target_lane`]), which delivers them in the order they came. Events that ended here
//! (filtered, dead-lettered) are reported to the router, which acknowledges them.
//!
//! An event a plugin fails retryably (an API that is down, a lookup that timed out) is tried
//! again through the plugins as `[retry]` says, and nothing after it in the lane is routed
//! meanwhile, so its key keeps its order; when the policy runs out it is dead-lettered. With
//! `on_failure = "block"` every plugin failure is tried so (a fixed version may have been
//! hot-reloaded), without end; sink failures block inside [`super::deliver::Outlets::deliver`].

use super::dead_letters::DeadLetters;
use super::fanout::Fanout;
use super::hold::Held;
use super::plugin_stage::{PluginSet, PluginStage};
use super::plugin_thread::PluginThread;
use super::policy::{OnFailure, Retry};
use super::route::Router;
use super::slot::{Ended, Failure, Fate, RETRYABLE, Slot};
use crate::backoff::pause;
use crate::event::Position;
use crate::observe::counters::{Counters, TargetCounters};
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
    /// The pipeline's `[retry]`: plugin failures are tried again as it says.
    pub retry: Retry,
    pub counters: Arc<Counters>,
    /// The pipeline's dead-letter queue: source and plugin failures end there.
    pub dead: Arc<DeadLetters>,
    /// Each target's lane of this index, and the target's counts, in the pipeline's order.
    pub targets: Vec<(mpsc::UnboundedSender<Slot>, Arc<TargetCounters>)>,
    pub done: mpsc::UnboundedSender<Finished>,
    /// Most events taken at once.
    pub batch_size: usize,
    /// Where plugin calls run: started by `run` when there are plugins.
    pub plugin_thread: Option<PluginThread>,
}

impl Lane {
    /// Runs until the router closes the lane and it has handled everything queued, or until
    /// `stop` leaves an event unfinished (its sink or DLQ failing): then the rest of the queue
    /// is left unacknowledged too, so that nothing of this lane overtakes that event.
    /// `router`: this lane's routing to the targets.
    pub(super) async fn run(mut self, mut router: Router, stop: CancellationToken) {
        let mut plugins = self.plugin_set.as_ref().map(PluginSet::stage);
        if plugins.is_some() {
            let owner = format!("pipeline {} lane {} plugins", self.pipeline, self.index);
            self.plugin_thread =
                PluginThread::start_or_warn(format!("weir-plugins-{}", self.index), &owner);
        }
        let mut buf: Vec<Slot> = Vec::with_capacity(self.batch_size);
        let mut held = Held::default();
        loop {
            if self.rx.recv_many(&mut buf, self.batch_size).await == 0 {
                return; // closed and drained
            }
            let mut slots = std::mem::replace(&mut buf, Vec::with_capacity(self.batch_size));
            // What ended here is reported as it is forwarded; what could not end is not.
            let complete = self
                .handle(&mut slots, &mut plugins, &mut held, &mut router, &stop)
                .await;
            if !complete {
                tracing::warn!(pipeline = %self.pipeline, lane = self.index,
                    "stopping with undelivered events; they and the lane's later events will be read again on restart");
                self.rx.close();
                return;
            }
        }
    }

    /// Takes `slots` through plugins, the DLQ and routing. False if some could not end or be
    /// routed (stopped while the DLQ was failing).
    async fn handle(
        &self,
        slots: &mut Vec<Slot>,
        plugins: &mut Option<PluginStage>,
        held: &mut Held,
        router: &mut Router,
        stop: &CancellationToken,
    ) -> bool {
        self.apply_plugins(plugins, slots, 0..slots.len()).await;
        held.apply(slots);
        let block = self.retry.on_failure == OnFailure::Block;
        let mut tries = Tries::new(slots.len());
        loop {
            // Route up to the first event a plugin failed that is to be tried again, then try
            // it again: the events after it in this lane (its key's among them) wait.
            let end = (0..slots.len())
                .find(|&i| to_retry(&slots[i], block))
                .unwrap_or(slots.len());
            let rest = slots.split_off(end);
            let ready = std::mem::replace(slots, rest);
            tries.advance(end);
            if !self.forward(ready, router, stop).await {
                return false;
            }
            if slots.is_empty() {
                return true;
            }
            if !self
                .retry_plugins(plugins, slots, 0, &mut tries, block, stop)
                .await
            {
                return false;
            }
            held.apply(slots);
        }
    }

    /// Sends the pending slots to the targets their rules pick, in order, then ends what failed
    /// (in the pipeline's DLQ) or was filtered out. False if a failed event could not be
    /// dead-lettered before `stop`: it stays unacknowledged, and the lane stops.
    async fn forward(
        &self,
        slots: Vec<Slot>,
        router: &mut Router,
        stop: &CancellationToken,
    ) -> bool {
        let mut finished: Finished = Vec::new();
        let mut failed: Vec<Slot> = Vec::new();
        for mut slot in slots {
            match slot.fate {
                Fate::Pending => {}
                Fate::Failed(_) => {
                    failed.push(slot);
                    continue;
                }
                _ => {
                    if let Some(how) = slot.fate.ended() {
                        finished.push((slot.position, how));
                    }
                    continue;
                }
            }
            let mut routed = router.route(&slot);
            let Some((last, which)) = routed.pop() else {
                // No target's rule matches: filtered, as by `[[filter]]`.
                finished.push((slot.position, Ended::Filtered));
                continue;
            };
            if !routed.is_empty() {
                slot.fanout = Some(Arc::new(Fanout::new(routed.len() + 1)));
            }
            for (t, which) in routed {
                self.send(t, copy_for(&slot, &which));
            }
            self.send(last, take_for(slot, &which));
        }
        // Failures go to the DLQ once the others are on their way (a DLQ that is down then
        // holds up this lane, not those events).
        self.dead
            .dead_letter(&mut failed, self.retry.on_failure, stop)
            .await;
        let ended = failed
            .iter()
            .filter_map(|s| s.fate.ended().map(|how| (s.position, how)));
        finished.extend(ended);
        if !finished.is_empty() && self.done.send(finished).is_err() {
            return false; // the router is gone
        }
        failed.iter().all(|s| s.fate.ended().is_some())
    }

    /// Sends a routed slot to target `t`'s lane of this index. The send fails only if that
    /// lane stopped with an undelivered event: this one then stays unacknowledged behind it
    /// and is read again after the restart.
    fn send(&self, t: usize, slot: Slot) {
        let (tx, counts) = &self.targets[t];
        Counters::add(&counts.routed, 1);
        let _ = tx.send(slot);
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
        tries: &mut Tries,
        block: bool,
        stop: &CancellationToken,
    ) -> bool {
        let retry = &self.retry;
        let Tries { attempts, first } = tries;
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
            Counters::add(&self.counters.retried, again.len());
            for &j in &again {
                if let Fate::Failed(f) = &slots[j].fate {
                    first[j].get_or_insert_with(|| f.first_failed_at.clone());
                }
                attempts[j] += 1;
                slots[j].fate = Fate::Pending;
                slots[j].restore();
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

    /// Runs `slots[range]` through the plugins on the lane's plugin thread (on the blocking pool
    /// if it could not be started). A panic in the host's
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
        let call = move || {
            let healthy = stage.apply_or_fail(&mut owned[range]);
            (healthy.then_some(stage), owned)
        };
        let joined = match &self.plugin_thread {
            Some(thread) => thread
                .run(call)
                .await
                .map_err(|_| "the call was lost".to_owned()),
            None => tokio::task::spawn_blocking(call)
                .await
                .map_err(|e| e.to_string()),
        };
        match joined {
            Ok((stage, owned)) => {
                *slots = owned;
                *plugins = stage.or_else(|| self.plugin_set.as_ref().map(PluginSet::stage));
            }
            // The closure catches the plugin host's panics, so this is a cancelled runtime
            // (shutting down) or a lost thread: the events are gone from this lane,
            // unacknowledged, and will be read again. The lane's next events still go through
            // the plugins, on fresh instances.
            Err(e) => {
                tracing::error!(pipeline = %self.pipeline, lane = self.index, error = %e, "plugin task failed");
                *plugins = self.plugin_set.as_ref().map(PluginSet::stage);
            }
        }
    }
}

/// Attempts and first failure time of each slot of a batch, as the lane counts them: a slot
/// tried again along with an earlier one has its attempts counted when its own turn comes.
struct Tries {
    attempts: Vec<u32>,
    first: Vec<Option<String>>,
}

impl Tries {
    fn new(n: usize) -> Self {
        Tries {
            attempts: vec![1; n],
            first: vec![None; n],
        }
    }

    /// Forgets the first `n` slots' (forwarded): the rest are counted from 0 again.
    fn advance(&mut self, n: usize) {
        self.attempts.drain(..n);
        self.first.drain(..n);
    }
}

/// The copy of `slot` target-bound with its deliverables at `which` (the others go elsewhere).
fn copy_for(slot: &Slot, which: &[usize]) -> Slot {
    let outputs = slot
        .outputs
        .as_ref()
        .map(|list| which.iter().filter_map(|&k| list.get(k).cloned()).collect());
    slot.copy(outputs)
}

/// `slot` itself, target-bound with its deliverables at `which`.
fn take_for(mut slot: Slot, which: &[usize]) -> Slot {
    if let Some(list) = &mut slot.outputs
        && which.len() != list.len()
    {
        let mut k = 0;
        list.retain(|_| {
            let keep = which.binary_search(&k).is_ok();
            k += 1;
            keep
        });
    }
    slot
}

/// Whether a plugin failed the slot in a way that is tried again: it said the failure was
/// retryable, or the pipeline blocks on every failure.
fn to_retry(slot: &Slot, block: bool) -> bool {
    matches!(&slot.fate, Fate::Failed(f) if f.stage.starts_with("plugin") && (block || RETRYABLE.contains(&f.kind.as_str())))
}
