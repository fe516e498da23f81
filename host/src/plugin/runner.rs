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

/// The outputs of one input event.
pub type Outputs = smallvec::SmallVec<[Output; 1]>;

/// What became of one input event.
#[derive(Debug)]
pub enum Outcome {
    /// Its outputs, in order (none: dropped). One, the usual case, is held in place: a `Vec`
    /// would be an allocation per event.
    Emitted(Outputs),
    /// The plugin reported a failure for it (`kind` "error", or "retryable" if it said so), or it
    /// alone trapped, timed out or ran out of memory.
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
            .map(|_| Outcome::Emitted(Outputs::new()))
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
        // Waiting too long on a slow backend is no event's fault: isolating one would cost a
        // budget per event. They all fail, to be tried again later as a batch (lane.rs).
        if let CallError::IoBudget(_) = error {
            let message = error.message(&self.loaded.settings.name);
            for o in &mut out[base..base + events.len()] {
                *o = Outcome::Failed {
                    kind: error.kind(),
                    message: message.clone(),
                    output: output.clone(),
                };
            }
            return;
        }
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
                    // The pipeline's name for a failure worth trying again (pipeline/slot.rs).
                    kind: if failure.retryable {
                        "retryable"
                    } else {
                        "error"
                    },
                    message: failure.message,
                    output: String::new(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! With the real fixture plugin `plugins/fixtures/faults` (built by
    //! `scripts/build-plugins.sh`), which traps, loops or fails on the events that ask for it.
    //! How many calls failed is read from the runner's own debug lines: one "batch failed" per
    //! failed call over several events, one "isolated" per failed call over one.

    use super::super::config::Limits;
    use super::super::instance::Settings;
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    /// The fixture plugin, loaded with this call deadline.
    fn faults(timeout: Duration) -> Runner {
        faults_waiting(timeout, Duration::ZERO)
    }

    /// The fixture plugin, loaded with this call deadline and I/O budget.
    fn faults_waiting(timeout: Duration, io_budget: Duration) -> Runner {
        let settings = Settings {
            pipeline: "p".into(),
            name: "faults".into(),
            path: crate::plugin::faults_fixture(),
            limits: Limits {
                timeout,
                init_timeout: Duration::from_secs(60),
                ..Limits::default()
            },
            config_json: "{}".into(),
            cache_dir: None,
            grants: crate::plugin::grants::Grants {
                io_budget,
                ..Default::default()
            },
        };
        let (loaded, instance) = Loaded::load(&settings).unwrap_or_else(|e| panic!("{e}"));
        Runner::new(loaded, instance)
    }

    /// Collects the message of every event logged.
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "message" {
                        self.0 = format!("{v:?}");
                    }
                }
            }
            let mut m = Message(String::new());
            event.record(&mut m);
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(m.0);
        }
    }

    /// What became of each payload, as a word ("ok" or the failure's kind), and how many calls
    /// failed over several events and over one.
    struct Run {
        outcomes: Vec<String>,
        failed_batches: usize,
        isolated: usize,
    }

    /// Ids `in:1`, `in:2`, ... for `n` events.
    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|n| format!("in:{n}")).collect()
    }

    fn events<'a>(ids: &'a [String], payloads: &[&'a str]) -> Vec<Event<'a>> {
        ids.iter()
            .zip(payloads)
            .map(|(id, p)| Event {
                id,
                key: None,
                payload: p.as_bytes(),
            })
            .collect()
    }

    /// `n` times `plain`, but `odd` at `at`.
    fn all_but_one(
        n: usize,
        plain: &'static str,
        at: usize,
        odd: &'static str,
    ) -> Vec<&'static str> {
        let mut v = vec![plain; n];
        v[at] = odd;
        v
    }

    fn run(runner: &mut Runner, payloads: &[&str]) -> Run {
        let ids = ids(payloads.len());
        let events = events(&ids, payloads);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Lines(lines.clone()));
        let outcomes =
            tracing::subscriber::with_default(subscriber, || runner.run(&events, &|_| Vec::new()));
        let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        let count = |start: &str| lines.iter().filter(|l| l.starts_with(start)).count();
        Run {
            outcomes: outcomes
                .iter()
                .map(|o| match o {
                    Outcome::Emitted(list) if list.len() == 1 => "ok".to_owned(),
                    Outcome::Emitted(list) => format!("{} outputs", list.len()),
                    Outcome::Failed { kind, .. } => kind.to_string(),
                })
                .collect(),
            failed_batches: count("batch failed"),
            isolated: count("isolated the event"),
        }
    }

    const PLAIN: &str = r#"{"a": 1}"#;

    #[test]
    fn a_trapping_event_is_isolated_by_halving_and_the_others_are_processed() {
        let mut runner = faults(Duration::from_secs(30));
        let r = run(
            &mut runner,
            &all_but_one(8, PLAIN, 5, r#"{"fault": "trap"}"#),
        );
        assert_eq!(r.outcomes, all_but_one(8, "ok", 5, "trap"));
        // 0..8, then 4..8, then 4..6 failed; 5 alone; the halves without it ran once each.
        assert_eq!((r.failed_batches, r.isolated), (3, 1));
        // The runner made a fresh instance and goes on with it.
        assert_eq!(run(&mut runner, &[PLAIN, PLAIN]).outcomes, ["ok", "ok"]);
    }

    #[test]
    fn every_trapping_event_is_isolated() {
        let mut runner = faults(Duration::from_secs(30));
        let trap = r#"{"fault": "trap"}"#;
        let r = run(&mut runner, &[trap, PLAIN, PLAIN, trap, PLAIN]);
        assert_eq!(r.outcomes, ["trap", "ok", "ok", "trap", "ok"]);
        assert_eq!(r.isolated, 2);
    }

    #[test]
    fn a_slow_event_costs_two_deadlines_whatever_the_batch_size() {
        let mut runner = faults(Duration::from_millis(500));
        let r = run(
            &mut runner,
            &all_but_one(16, PLAIN, 9, r#"{"fault": "loop"}"#),
        );
        assert_eq!(r.outcomes, all_but_one(16, "ok", 9, "timeout"));
        // The batch, then the slow event alone: each other event ran once more, alone, and
        // passed; halving would have run the slow one on every level (five deadlines).
        assert_eq!((r.failed_batches, r.isolated), (1, 1));
    }

    #[test]
    fn waiting_past_the_io_budget_fails_the_batch_without_isolating_an_event() {
        let mut runner = faults_waiting(Duration::from_millis(100), Duration::from_millis(200));
        let sleep = r#"{"fault": "sleep", "ms": 5000}"#;
        let r = run(&mut runner, &[PLAIN, sleep, PLAIN, sleep]);
        assert_eq!(r.outcomes, ["io_budget"; 4]);
        // One call, no event run again on its own: a slow backend is no event's fault.
        assert_eq!((r.failed_batches, r.isolated), (0, 0));
        // The budget is for waiting: work past `timeout_ms` is still a timeout, isolated.
        let r = run(
            &mut runner,
            &all_but_one(4, PLAIN, 2, r#"{"fault": "loop"}"#),
        );
        assert_eq!(r.outcomes, all_but_one(4, "ok", 2, "timeout"));
    }

    #[test]
    fn a_failure_the_plugin_reports_costs_no_retry() {
        let mut runner = faults(Duration::from_secs(30));
        let r = run(
            &mut runner,
            &[
                PLAIN,
                r#"{"fault": "error"}"#,
                r#"{"fault": "split", "n": 3}"#,
                r#"{"fault": "drop"}"#,
            ],
        );
        assert_eq!(r.outcomes, ["ok", "error", "3 outputs", "0 outputs"]);
        assert_eq!((r.failed_batches, r.isolated), (0, 0));
    }

    #[test]
    fn outputs_are_filed_under_their_inputs() {
        let mut runner = faults(Duration::from_secs(30));
        let ids = ids(2);
        let events = events(&ids, &[r#"{"fault": "split", "n": 2}"#, r#"{"b": 2}"#]);
        let out = runner.run(&events, &|_| Vec::new());
        let parsed = |o: &Outcome| -> Vec<serde_json::Value> {
            match o {
                Outcome::Emitted(list) => list
                    .iter()
                    .map(|o| serde_json::from_slice(&o.payload).expect("JSON"))
                    .collect(),
                Outcome::Failed { message, .. } => panic!("failed: {message}"),
            }
        };
        let first = parsed(&out[0]);
        assert_eq!(first.len(), 2);
        assert_eq!(
            (first[0]["part"].as_u64(), first[1]["part"].as_u64()),
            (Some(0), Some(1))
        );
        assert_eq!(
            parsed(&out[1]),
            [serde_json::json!({"b": 2, "seen_by": "faults"})]
        );
        assert!(runner.run(&[], &|_| Vec::new()).is_empty());
    }
}
