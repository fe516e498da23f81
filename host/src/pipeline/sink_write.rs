//! One write call to a sink (a target's or a DLQ), with what became of each entry.

use crate::sink::{Outgoing, Sink, SinkError, SinkFailure};

/// The outcome of one write attempt, per entry of the attempted batch.
pub(super) enum Attempt {
    Written,
    Failed(SinkError),
}

/// Writes `batch`, returning one result per entry.
pub(super) async fn write(sink: &dyn Sink, batch: &[Outgoing<'_>]) -> Vec<Attempt> {
    match sink.write(batch).await {
        Ok(()) => batch.iter().map(|_| Attempt::Written).collect(),
        Err(SinkFailure::All(e)) => batch.iter().map(|_| Attempt::Failed(e.clone())).collect(),
        Err(SinkFailure::Some(failures)) => {
            let mut r: Vec<Attempt> = batch.iter().map(|_| Attempt::Written).collect();
            for (i, e) in failures {
                if let Some(slot) = r.get_mut(i) {
                    *slot = Attempt::Failed(e);
                }
            }
            r
        }
    }
}
