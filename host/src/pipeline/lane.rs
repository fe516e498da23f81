//! A lane: one strictly sequential stream of the pipeline's events. The router sends each event
//! to the lane of its key, so a key's events are handled in order; lanes run side by side.
//!
//! A lane takes what has queued up (up to a batch), runs it through its own plugin instances
//! (on the blocking pool), delivers it with retries, dead-letters what failed, and reports every
//! event that ended to the router, which acknowledges it. A retry holds up this lane only.
//!
//! `on_failure = "block"`: an event a plugin fails is retried (through the plugins again: a
//! fixed version may have been hot-reloaded) until it passes, and nothing after it in the lane
//! is delivered meanwhile; sink failures block inside [`Outlets::deliver`].

use super::deliver::Outlets;
use super::hold::Held;
use super::plugin_stage::{PluginSet, PluginStage};
use super::policy::OnFailure;
use super::slot::{Ended, Fate, Slot};
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
            // With `block`, deliver up to the first event a plugin failed, then hold it.
            let end = match block {
                true => (start..slots.len())
                    .find(|&i| failed_in_plugin(&slots[i]))
                    .unwrap_or(slots.len()),
                false => slots.len(),
            };
            self.outlets.deliver(&mut slots[start..end], stop).await;
            held.apply(&mut slots[start..end]); // learns the keys that failed at the sink
            self.outlets.dead_letter(&mut slots[start..end], stop).await;
            if slots[start..end].iter().any(|s| s.fate.ended().is_none()) {
                return false;
            }
            if end == slots.len() {
                return true;
            }
            if !self.unblock(plugins, slots, end, stop).await {
                return false;
            }
            start = end;
        }
    }

    /// Retries slot `i`, failed by a plugin, through the plugins until it passes. False if
    /// stopped first.
    async fn unblock(
        &self,
        plugins: &mut Option<PluginStage>,
        slots: &mut Vec<Slot>,
        i: usize,
        stop: &CancellationToken,
    ) -> bool {
        let mut attempts = 1;
        while let Fate::Failed(f) = &slots[i].fate {
            let delay = self.outlets.retry().backoff.delay(attempts);
            tracing::error!(pipeline = %self.pipeline, lane = self.index, event = %slots[i].event.id,
                stage = %f.stage, reason = %f.message, attempts, retry_in_ms = delay.as_millis() as u64,
                "event failed; blocking its lane until it passes (on_failure = \"block\")");
            if !pause(delay, stop).await {
                return false;
            }
            attempts += 1;
            slots[i].fate = Fate::Pending;
            slots[i].outputs = None;
            self.apply_plugins(plugins, slots, i..i + 1).await;
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

fn failed_in_plugin(slot: &Slot) -> bool {
    matches!(&slot.fate, Fate::Failed(f) if f.stage.starts_with("plugin"))
}
