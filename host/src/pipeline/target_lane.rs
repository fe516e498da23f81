//! A target's lane: the events of one lane that were routed to one target, delivered to it in
//! the order the lane sent them, so each key keeps its order at every target. Each target has
//! one such lane per pipeline lane; a target that is down (retrying) holds up only its own
//! lanes, while the other targets deliver on, until `max_in_flight` stops the source.
//!
//! Delivered, dead-lettered, dropped or handed back: each ending is counted for the target and
//! reported to the router, which acknowledges the event once every target it went to has ended
//! it ([`super::fanout`]).

use super::deliver::Outlets;
use super::hold::Held;
use super::lane::Finished;
use super::slot::Slot;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) struct TargetLane {
    pub lane: usize,
    pub target: Arc<str>,
    pub pipeline: Arc<str>,
    pub rx: mpsc::UnboundedReceiver<Slot>,
    pub outlets: Arc<Outlets>,
    pub done: mpsc::UnboundedSender<Finished>,
    /// Most events delivered at once.
    pub batch_size: usize,
}

impl TargetLane {
    /// Runs until its lane closes it and it has delivered everything queued, or until `stop`
    /// leaves an event unfinished (its sink or DLQ failing): then the rest of the queue is left
    /// unacknowledged too, so that nothing of this lane overtakes that event at this target.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        // Grown when events come: a pipeline may have a thousand targets, most lanes idle.
        let mut buf: Vec<Slot> = Vec::new();
        // A failed event handed back to its source takes its key's later events with it.
        let mut held = Held::default();
        loop {
            if self.rx.recv_many(&mut buf, self.batch_size).await == 0 {
                return; // closed and drained
            }
            let mut slots = std::mem::take(&mut buf);
            held.apply(&mut slots);
            self.outlets.deliver(&mut slots, &stop).await;
            held.apply(&mut slots); // learns the keys that failed at the sink
            self.outlets.dead_letter(&mut slots, &stop).await;
            let complete = slots.iter().all(|s| s.fate.ended().is_some());
            let finished = self.ended(&slots);
            if !finished.is_empty() && self.done.send(finished).is_err() {
                return; // the router is gone
            }
            if !complete {
                tracing::warn!(pipeline = %self.pipeline, target = %self.target, lane = self.lane,
                    "stopping with undelivered events; they and the lane's later events will be read again on restart");
                self.rx.close();
                return;
            }
        }
    }

    /// Counts the slots that ended here for the target, and gives the events that have now
    /// ended at every target they went to.
    fn ended(&self, slots: &[Slot]) -> Finished {
        let counts = self.outlets.counts();
        let mut finished = Vec::with_capacity(slots.len());
        for slot in slots {
            let Some(how) = slot.fate.ended() else {
                continue;
            };
            counts.ended(how);
            match &slot.fanout {
                None => finished.push((slot.position, how)),
                Some(fanout) => {
                    if let Some(how) = fanout.end(how) {
                        finished.push((slot.position, how));
                    }
                }
            }
        }
        finished
    }
}
