//! Events handed over in memory (dead-lettered events being redriven): not a `[source]` kind,
//! but the same two halves, so that they run through the real pipeline. The acker records which
//! ones ended, for the caller to remove from the DLQ.

use super::{Acker, Source, SourceError, SourceEvent};
use crate::event::{Envelope, Position};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

const BATCH: usize = 256;

pub struct Replay {
    events: std::vec::IntoIter<Envelope>,
    next: u64,
}

/// Which of the replayed events ended (by index).
#[derive(Clone, Default)]
pub struct Ended(Arc<Mutex<Vec<bool>>>);

impl Ended {
    pub fn get(&self) -> Vec<bool> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct ReplayAcker {
    ended: Ended,
}

/// A source yielding `events` in order, and its acker.
pub fn open(events: Vec<Envelope>) -> (Box<dyn Source>, Box<dyn Acker>, Ended) {
    let ended = Ended(Arc::new(Mutex::new(vec![false; events.len()])));
    let source = Replay {
        events: events.into_iter(),
        next: 0,
    };
    let acker = ReplayAcker {
        ended: ended.clone(),
    };
    (Box::new(source), Box::new(acker), ended)
}

fn position(index: u64) -> Position {
    Position {
        partition: 0,
        offset: index + 1,
        ordinal: index,
    }
}

#[async_trait]
impl Source for Replay {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        if stop.is_cancelled() {
            return Ok(None);
        }
        let batch: Vec<SourceEvent> = self
            .events
            .by_ref()
            .take(BATCH)
            .map(|envelope| {
                let ev = SourceEvent {
                    envelope,
                    position: position(self.next),
                    problem: None,
                    release_on_failure: false,
                };
                self.next += 1;
                ev
            })
            .collect();
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }
}

#[async_trait]
impl Acker for ReplayAcker {
    fn track(&mut self, _position: Position) {}

    fn finish(&mut self, position: Position) {
        let mut ended = self.ended.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = ended.get_mut(position.ordinal as usize) {
            *e = true;
        }
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}
