//! A pipeline's filters, plugins and templates run on sample events as `weir run` runs them, with
//! neither its source, sink, DLQ nor state: what becomes of each input, and why. `weir dry-run`
//! prints it (dry_run.rs says the lines' fields); `weir test` checks it against expectations.

use crate::event::Envelope;
use crate::pipeline::PipelineConfig;
use crate::pipeline::filter::FilterStage;
use crate::pipeline::plugin_stage::{PluginSet, PluginStage};
use crate::pipeline::route::{Router, Rules};
use crate::pipeline::slot::{Failure, Fate, Slot};
use crate::plugin::PluginError;
use crate::sink::{Preview, SinkError};
use crate::source::{ReadSettings, SourceEvent};
use serde::Serialize;
use serde_json::Value;
use weir_pattern::Pattern;

/// Events a lane hands its plugins at most in one call (as `weir run` does).
const PLUGIN_BATCH: usize = 256;

/// How one input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Delivered,
    Filtered,
    DeadLettered,
    /// A plugin emitted nothing for it (`weir run` counts it as filtered).
    Dropped,
}

impl End {
    pub(crate) fn name(self) -> &'static str {
        match self {
            End::Delivered => "delivered",
            End::Filtered => "filtered",
            End::DeadLettered => "dead-lettered",
            End::Dropped => "dropped",
        }
    }
}

/// What became of one input: how it ended, and one line per event it became (several when a
/// plugin split it), as `weir dry-run` prints them.
pub(crate) struct Outcome {
    pub(crate) end: End,
    pub(crate) lines: Vec<Line>,
}

/// One event's end, as `weir dry-run` prints it (without the input's number).
#[derive(Serialize, Default, Debug)]
pub(crate) struct Line {
    pub(crate) id: String,
    pub(crate) outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// What the `[sink]` would send: `body` and, by kind, its key, headers, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sink: Option<Value>,
    /// What each `[[target]]` it reaches would send, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) targets: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) why: Option<Vec<Why>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<String>,
}

/// What the run learned about a slot besides its fate.
#[derive(Default)]
enum Note {
    #[default]
    None,
    /// Filtered by the filters: why each pattern did not match.
    Filters(Vec<Why>),
    /// A plugin (this stage) emitted nothing.
    Dropped(String),
    /// Delivered: what the sink would send for each event, by id and key.
    Sent(Vec<(String, Option<String>, Value)>),
    /// Routed to targets: for each event, by id and key, what each target would send.
    Routed(Vec<(String, Option<String>, Value)>),
    /// The sink refuses this event of a split.
    Refused(String),
}

/// The pipeline's stages, loaded as `weir run` loads them, minus the source, sink and DLQ.
pub(crate) struct Stages {
    cfg: PipelineConfig,
    filter: Option<FilterStage>,
    /// Each filter compiled alone, to explain why an event did not match.
    patterns: Vec<Pattern>,
    /// Each plugin in a set of its own, so that a drop can be told apart by plugin.
    plugins: Vec<(String, PluginSet, PluginStage)>,
    /// Each target's rendering, in the pipeline's order.
    previews: Vec<Preview>,
    router: Router,
    /// Each target's rule compiled alone, to explain why an event reaches none.
    rules: Vec<(String, Vec<Pattern>)>,
}

/// Why a stage of the pipeline did not load.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("filter: {0}")]
    Filter(#[source] weir_pattern::PatternError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("{0}")]
    Tables(String),
    #[error("plugin {0} did not load")]
    NotLoaded(String),
    #[error("sink: {0}")]
    Sink(#[source] SinkError),
}

impl Stages {
    pub(crate) fn load(cfg: PipelineConfig) -> Result<Self, LoadError> {
        let filter = FilterStage::new(&cfg.filters).map_err(LoadError::Filter)?;
        let patterns = cfg
            .filters
            .iter()
            .map(|p| Pattern::compile(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(LoadError::Filter)?;
        let mut plugins = Vec::with_capacity(cfg.plugins.len());
        // The plugins reach their grants for real: dry-run shows what the pipeline would send.
        let tables =
            (cfg.open_tables()).map_err(|e| LoadError::Tables(cfg.error_at("table", e)))?;
        for c in &cfg.plugins {
            // No compile cache (it would be written under the state directory), no hot reload.
            let set = PluginSet::load(
                &cfg.name,
                std::slice::from_ref(c),
                tables.as_ref(),
                None,
                false,
            )?
            .ok_or_else(|| LoadError::NotLoaded(c.name.to_string()))?;
            let stage = set.stage();
            plugins.push((format!("plugin:{}", c.name), set, stage));
        }
        let previews = (cfg.targets.iter())
            .map(|t| t.sink.preview(&cfg.name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(LoadError::Sink)?;
        let rules = Rules::new(&cfg.targets).map_err(|(_, e)| LoadError::Filter(e))?;
        let router = Router::new(std::sync::Arc::new(rules));
        let rules = (cfg.targets.iter())
            .map(|t| {
                let patterns = t.when.iter().filter_map(|p| Pattern::compile(p).ok());
                (t.name.clone(), patterns.collect())
            })
            .collect();
        Ok(Stages {
            cfg,
            filter,
            patterns,
            plugins,
            previews,
            router,
            rules,
        })
    }

    /// How the pipeline's source reads records: the sample events are read the same way.
    pub(crate) fn read_settings(&self) -> ReadSettings {
        self.cfg.source.read_settings()
    }

    /// Takes a batch of events through the stages: what becomes of each, in order.
    pub(crate) fn evaluate(&mut self, batch: Vec<SourceEvent>) -> Vec<Outcome> {
        let mut slots: Vec<Slot> = batch
            .into_iter()
            .map(|ev| {
                let fate = match ev.problem {
                    None => Fate::Pending,
                    Some(why) => Fate::Failed(Failure::now("source", "malformed", why, 1, None)),
                };
                Slot::new(ev.position, ev.envelope, fate)
            })
            .collect();
        let notes = self.run(&mut slots);
        slots
            .iter()
            .zip(notes)
            .map(|(slot, note)| outcome(slot, note))
            .collect()
    }

    /// Takes a batch through the stages as `weir run` would: filters, key, plugins, then what
    /// the sink would make of what is left. Every slot ends `Filtered`, `Failed` or `Delivered`.
    fn run(&mut self, slots: &mut [Slot]) -> Vec<Note> {
        let mut notes: Vec<Note> = slots.iter().map(|_| Note::None).collect();
        if let Some(filter) = &mut self.filter {
            filter.apply(slots);
            for (slot, note) in slots.iter().zip(&mut notes) {
                if matches!(slot.fate, Fate::Filtered) {
                    *note = Note::Filters(explain(&self.patterns, &slot.event));
                }
            }
        }
        let pipeline = &self.cfg.name;
        for slot in slots.iter_mut() {
            if !matches!(slot.fate, Fate::Pending) {
                continue;
            }
            crate::pipeline::identify(
                &mut slot.event,
                self.cfg.ordering.key.as_ref(),
                self.cfg.correlation_id.as_ref(),
                pipeline,
            );
        }
        for (name, set, stage) in &mut self.plugins {
            for (chunk, notes) in slots
                .chunks_mut(PLUGIN_BATCH)
                .zip(notes.chunks_mut(PLUGIN_BATCH))
            {
                let pending: Vec<bool> = chunk
                    .iter()
                    .map(|s| matches!(s.fate, Fate::Pending))
                    .collect();
                apply(stage, set, chunk);
                for ((slot, note), was_pending) in chunk.iter().zip(notes.iter_mut()).zip(pending) {
                    // A plugin that emits nothing for an event filters it out.
                    if was_pending && matches!(slot.fate, Fate::Filtered) {
                        *note = Note::Dropped(name.clone());
                    }
                }
            }
        }
        let shorthand = self.cfg.targets[0].is_shorthand();
        for (slot, note) in slots.iter_mut().zip(&mut notes) {
            if !matches!(slot.fate, Fate::Pending) {
                continue;
            }
            if !shorthand {
                *note = self.route(slot);
                continue;
            }
            let preview = &self.previews[0];
            let mut sent = Vec::new();
            let mut refused = None;
            for event in slot.deliverables() {
                match preview.render(event) {
                    Ok(v) => sent.push((event.id.clone(), event.key.clone(), v)),
                    Err(e) => {
                        refused = Some((event.id.clone(), e.message));
                        break;
                    }
                }
            }
            match refused {
                Some((id, why)) => {
                    slot.fate = Fate::Failed(Failure::now("sink", "rejected", why, 1, None));
                    *note = Note::Refused(id);
                }
                None => {
                    slot.fate = Fate::Delivered;
                    *note = Note::Sent(sent);
                }
            }
        }
        notes
    }
}

impl Stages {
    /// Routes a slot to the targets as `weir run` would, and renders what each would send.
    fn route(&mut self, slot: &mut Slot) -> Note {
        let routed = self.router.route(slot);
        let events = slot.deliverables();
        if routed.is_empty() {
            let why = self.unrouted(events);
            slot.fate = Fate::Filtered;
            return Note::Filters(why);
        }
        let mut refused: Option<(String, String)> = None;
        let mut lines = Vec::with_capacity(events.len());
        for (k, event) in events.iter().enumerate() {
            let mut to = serde_json::Map::new();
            for (t, which) in &routed {
                if !which.contains(&k) {
                    continue;
                }
                let target = &self.cfg.targets[*t];
                let value = match self.previews[*t].render(event) {
                    Ok(v) => v,
                    Err(e) => {
                        let stage = target.stage();
                        let v = serde_json::json!({"refused": e.message, "stage": stage});
                        refused.get_or_insert((stage, e.message));
                        v
                    }
                };
                to.insert(target.name.clone(), value);
            }
            if !to.is_empty() {
                lines.push((event.id.clone(), event.key.clone(), Value::Object(to)));
            }
        }
        slot.fate = match refused {
            Some((stage, why)) => Fate::Failed(Failure::now(&stage, "rejected", why, 1, None)),
            None => Fate::Delivered,
        };
        Note::Routed(lines)
    }

    /// Why no target's rule matches any of `events`: per target with a rule, its first
    /// pattern's first failing field for the first event.
    fn unrouted(&self, events: &[Envelope]) -> Vec<Why> {
        let Some(event) = events.first() else {
            return Vec::new(); // unreachable: a pending slot delivers at least one event
        };
        let json = event.to_json();
        let mut why = Vec::new();
        for (target, patterns) in &self.rules {
            if let Some(m) = patterns.iter().find_map(|p| p.explain(json.as_bytes())) {
                why.push(Why {
                    filter: None,
                    target: Some(target.clone()),
                    field: m.path,
                    reason: m.reason,
                });
            }
        }
        why
    }
}

/// Runs one plugin over a chunk. A panic in the host's plugin code fails the chunk's pending
/// events, as a lane does, and the next chunk gets fresh instances.
fn apply(stage: &mut PluginStage, set: &PluginSet, slots: &mut [Slot]) {
    if !stage.apply_or_fail(slots) {
        *stage = set.stage();
    }
}

/// Why one filter did not match an event.
#[derive(Serialize, Debug)]
pub(crate) struct Why {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) filter: Option<usize>,
    /// For an event no target's rule matches: the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(crate) field: String,
    pub(crate) reason: String,
}

/// Why each filter does not match `event`, as `weir pattern test` says it.
fn explain(patterns: &[Pattern], event: &Envelope) -> Vec<Why> {
    let json = event.to_json();
    patterns
        .iter()
        .enumerate()
        .filter_map(|(filter, p)| {
            let m = p.explain(json.as_bytes())?;
            Some(Why {
                filter: Some(filter),
                target: None,
                field: m.path,
                reason: m.reason,
            })
        })
        .collect()
}

/// What became of a slot that [`Stages::run`] ended.
fn outcome(slot: &Slot, note: Note) -> Outcome {
    let base = || Line {
        id: slot.event.id.clone(),
        ..Line::default()
    };
    let (end, lines) = match (&slot.fate, note) {
        (Fate::Delivered, Note::Sent(sent)) => {
            let lines = sent.into_iter().map(|(id, key, sink)| Line {
                id,
                outcome: "delivered",
                key,
                sink: Some(sink),
                ..Line::default()
            });
            (End::Delivered, lines.collect())
        }
        (Fate::Delivered | Fate::Failed(_), Note::Routed(routed)) => {
            let end = match slot.fate {
                Fate::Failed(_) => End::DeadLettered,
                _ => End::Delivered,
            };
            let lines = routed.into_iter().map(|(id, key, targets)| Line {
                id,
                outcome: end.name(),
                key,
                targets: Some(targets),
                ..Line::default()
            });
            (end, lines.collect())
        }
        (Fate::Filtered, Note::Dropped(stage)) => {
            let line = Line {
                outcome: "dropped",
                stage: Some(stage),
                ..base()
            };
            (End::Dropped, vec![line])
        }
        (Fate::Filtered, note) => {
            let why = match note {
                Note::Filters(why) => why,
                _ => Vec::new(),
            };
            let line = Line {
                outcome: "filtered",
                why: Some(why),
                ..base()
            };
            (End::Filtered, vec![line])
        }
        (Fate::Failed(f), note) => {
            let output = match note {
                Note::Refused(id) if id != slot.event.id => Some(id),
                _ => None,
            };
            let line = Line {
                outcome: "dead-lettered",
                stage: Some(f.stage.clone()),
                kind: Some(f.kind.clone()),
                reason: Some(f.message.clone()),
                output,
                ..base()
            };
            (End::DeadLettered, vec![line])
        }
        // `Stages::run` ends every slot one of the ways above.
        (fate, _) => {
            let line = Line {
                outcome: "dead-lettered",
                reason: Some(format!("dry run: unexpected end {fate:?}")),
                ..base()
            };
            (End::DeadLettered, vec![line])
        }
    };
    Outcome { end, lines }
}
