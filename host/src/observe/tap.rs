//! `weir tap`: a live sample of the events passing one stage of a running pipeline.
//!
//! Stages publish what passes them (`source`: as read; `filter`: what the filters kept;
//! `plugin:NAME`: what that plugin emitted; `sink`: what was delivered). With nobody watching,
//! publishing costs one atomic load per batch; the events are encoded as JSON only for a stage
//! someone watches. A watcher that falls behind loses events (it is a sample, never a brake on
//! the pipeline).

use crate::event::Envelope;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events a slow watcher may fall behind before it misses some.
const BUFFER: usize = 1024;

#[derive(Default)]
pub struct Tap {
    /// Watchers of any stage: the hot path's only check.
    watchers: AtomicUsize,
    stages: Mutex<HashMap<String, broadcast::Sender<String>>>,
}

/// A subscription to one stage; dropping it stops the publishing when it was the last.
pub struct Watch {
    tap: Arc<Tap>,
    pub rx: broadcast::Receiver<String>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.tap.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Tap {
    pub fn watch(self: &Arc<Self>, stage: &str) -> Watch {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let rx = stages
            .entry(stage.to_owned())
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe();
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watch {
            tap: self.clone(),
            rx,
        }
    }

    /// True if anyone watches any stage: check before gathering events to publish.
    pub fn active(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Publishes `events` at `stage` if someone watches it.
    pub fn publish<'e>(&self, stage: &str, events: impl Iterator<Item = &'e Envelope>) {
        if !self.active() {
            return;
        }
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = stages.get(stage) else { return };
        if tx.receiver_count() == 0 {
            return;
        }
        for e in events {
            // Fails only when the last watcher just left.
            let _ = tx.send(e.to_json());
        }
    }
}
