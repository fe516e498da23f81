//! One plugin's batch call, and failure isolation.
//!
//! A trap, a deadline or the memory limit leaves the instance unusable, and says nothing about
//! which event caused it. So the instance is dropped, a fresh one made from the InstancePre, and
//! the events of the batch retried until the one that fails alone is found; every other event is
//! processed normally. Plugins are meant to be deterministic; a failure that does not recur on a
//! retry simply lets those events through.
//!
//! How they are retried depends on the failure's cost. A trap or the memory limit fails fast: the
//! batch is retried in halves, about 2·log2(n) extra quick calls for a batch of n. A deadline
//! costs the whole deadline every time it is hit: halving would run the slow event again on every
//! level, log2(n) + 1 deadlines (9 for a batch of 256). So after a deadline the batch's events are
//! retried one at a time instead: the slow event is run once more, alone, and never again (it is
//! dead-lettered), and a batch with one slow event costs two deadlines whatever its size, one per
//! slow event more.

use super::instance::{BatchResult, CallError, Event, Failed, InitError, Instance, Loaded, Output};
use super::metadata::Lookup;
use std::sync::Arc;

/// What became of one input event.
#[derive(Debug)]
pub enum Outcome {
    /// Its outputs, in order (none: dropped).
    Emitted(Vec<Output>),
    /// The plugin reported a failure for it, or it alone trapped, timed out or ran out of memory.
    /// `output`: the end of what the plugin wrote to stdout and stderr in the call that failed
    /// on it alone (empty for a failure the plugin reported).
    Failed {
        kind: &'static str,
        message: String,
        output: String,
    },
}

pub struct Runner {
    pub loaded: Arc<Loaded>,
    /// None after a failure, until the next call needs one.
    instance: Option<Instance>,
}

impl Runner {
    pub fn new(loaded: Arc<Loaded>, instance: Instance) -> Self {
        Runner {
            loaded,
            instance: Some(instance),
        }
    }

    /// A runner that instantiates on its first call.
    pub fn lazy(loaded: Arc<Loaded>) -> Self {
        Runner {
            loaded,
            instance: None,
        }
    }

    /// Runs the plugin over `events`; one outcome per event, in order. `metadata(i)` is event
    /// `i`'s metadata, built only if the plugin asks for it.
    pub fn run(&mut self, events: &[Event<'_>], metadata: &Lookup<'_>) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = events
            .iter()
            .map(|_| Outcome::Emitted(Vec::new()))
            .collect();
        if !events.is_empty() {
            self.run_range(events, metadata, 0, &mut out);
        }
        out
    }

    fn run_range(
        &mut self,
        events: &[Event<'_>],
        metadata: &Lookup<'_>,
        base: usize,
        out: &mut [Outcome],
    ) {
        let call = match events {
            [one] => one.id.to_owned(),
            [first, .., last] => format!("{} .. {} ({} events)", first.id, last.id, events.len()),
            [] => return,
        };
        let result = match self.instance() {
            // The plugin numbers the events of this call from 0.
            Ok(instance) => instance.process(events, &|i| metadata(base + i), call),
            Err(message) => {
                // The same code initialised before; if it cannot now, these events cannot be
                // processed by it.
                let message = format!(
                    "plugin {}: cannot instantiate: {message}",
                    self.loaded.settings.name
                );
                for o in &mut out[base..base + events.len()] {
                    *o = Outcome::Failed {
                        kind: "trap",
                        message: message.clone(),
                        output: String::new(),
                    };
                }
                return;
            }
        };
        let Failed { error, output } = match result {
            Ok(result) => return self.distribute(result, events.len(), base, out),
            Err(failed) => failed,
        };
        self.instance = None;
        if events.len() == 1 {
            self.isolated(&events[0], &error);
            out[base] = Outcome::Failed {
                kind: error.kind(),
                message: error.message(&self.loaded.settings.name),
                output,
            };
            return;
        }
        tracing::debug!(pipeline = %self.loaded.settings.pipeline, plugin = %self.loaded.settings.name,
            events = events.len(), error = %error.message(&self.loaded.settings.name), "batch failed; isolating the event");
        if let CallError::Timeout(_) = error {
            for (i, event) in events.iter().enumerate() {
                self.run_range(std::slice::from_ref(event), metadata, base + i, out);
            }
        } else {
            let mid = events.len() / 2;
            self.run_range(&events[..mid], metadata, base, out);
            self.run_range(&events[mid..], metadata, base + mid, out);
        }
    }

    fn isolated(&self, event: &Event<'_>, e: &CallError) {
        tracing::debug!(pipeline = %self.loaded.settings.pipeline, plugin = %self.loaded.settings.name, event = %event.id,
            error = %e.message(&self.loaded.settings.name), "isolated the event that makes the plugin fail");
    }

    fn instance(&mut self) -> Result<&mut Instance, InitError> {
        let instance = match self.instance.take() {
            Some(instance) => instance,
            None => self.loaded.instantiate()?,
        };
        Ok(self.instance.insert(instance))
    }

    /// Files each output and failure under its input (indices are relative to the call's slice).
    fn distribute(&self, result: BatchResult, len: usize, base: usize, out: &mut [Outcome]) {
        for output in result.outputs {
            let i = output.input as usize;
            if i >= len {
                tracing::warn!(pipeline = %self.loaded.settings.pipeline, plugin = %self.loaded.settings.name, input = i,
                    "plugin emitted an output for an input index outside the batch; ignored");
                continue;
            }
            if let Outcome::Emitted(list) = &mut out[base + i] {
                list.push(output);
            }
        }
        for failure in result.failures {
            let i = failure.input as usize;
            if i >= len {
                tracing::warn!(pipeline = %self.loaded.settings.pipeline, plugin = %self.loaded.settings.name, input = i,
                    "plugin reported a failure for an input index outside the batch; ignored");
                continue;
            }
            if !matches!(out[base + i], Outcome::Failed { .. }) {
                out[base + i] = Outcome::Failed {
                    kind: "error",
                    message: failure.message,
                    output: String::new(),
                };
            }
        }
    }
}
