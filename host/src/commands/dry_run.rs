//! `weir dry-run PIPELINE.toml --input events.jsonl`: runs a pipeline's filters, plugins and
//! templates on sample events without touching its source, sink, DLQ or state directory, and
//! prints what would become of each input, one JSON line per outcome:
//!
//! ```text
//! {"input":0,"id":"events.jsonl:1","outcome":"delivered","key":"C1","sink":{"body":"...",...}}
//! {"input":1,"id":"events.jsonl:2#0","outcome":"delivered","sink":{...}}      one line per event
//! {"input":1,"id":"events.jsonl:2#1","outcome":"delivered","sink":{...}}      a plugin emitted
//! {"input":2,"id":"events.jsonl:3","outcome":"filtered","why":[{"filter":0,"field":"data.dept","reason":"\"sales\" does not match [\"billing\"]"}]}
//! {"input":3,"id":"events.jsonl:4","outcome":"dead-lettered","stage":"plugin:redact","kind":"trap","reason":"plugin redact trapped: called `Option::unwrap()` on a `None` value (lib.rs, line 31)"}
//! {"input":4,"id":"events.jsonl:5","outcome":"dropped","stage":"plugin:split-order"}
//! ```
//!
//! - The input is read as the file source reads its file: one record per line (blank lines
//!   skipped), decoded with the pipeline's source `format`, lines longer than a file source's
//!   `max_line_bytes` cut; ids are `PATH:LINE` with PATH as given to `--input`. Whatever the
//!   source kind, events look like a file source's (`"source": "file"`, `meta.path`,
//!   `meta.line`, `meta.offset`). A record that does not decode is dead-lettered at stage
//!   `source`, kind `malformed`.
//! - `filtered`: no `[[filter]]` matched; `why` says, for each filter (by index), the first
//!   field that failed, as `weir pattern test` does (`field` is absent when the event as a
//!   whole is at fault).
//! - Then `[ordering] key` and `[pipeline] correlation_id` are applied, and the plugins run in
//!   order, as a lane runs them (same limits and failure isolation). `dropped`: the plugin
//!   named by `stage` emitted nothing (`weir run` counts such an event as filtered).
//! - `delivered`: one line per event that reaches the sink, with its ordering `key` if it has
//!   one, and `sink`: what the sink would send, its body (`body`, the text as written; bytes
//!   that are not UTF-8 as `{"base64": ...}`; a Kafka sink's tombstone as `null`) and, by
//!   kind, `path` (file); `topic`, `key`, `partition`, `headers` (`[name, value]` pairs) (Kafka);
//!   `message_group_id`, `message_deduplication_id`, `delay_seconds`, `attributes`, `bytes`
//!   (SQS). Nothing connects: an SQS queue is taken to be FIFO if its name ends in `.fifo`, and
//!   to take 256 KiB messages.
//! - `dead-lettered`: `stage` (`source`, `plugin:NAME`, `sink`), `kind` and `reason`, as the
//!   DLQ record would say; for `sink`, what the sink refuses before sending (a partition
//!   template that is not a number, an empty SQS body, a message too large, ...), and `output`:
//!   the id of the refused event when a plugin split the input. Failures that only sending
//!   reveals (a broker's refusal) cannot be foreseen. With `[retry] on_failure = "drop"` or
//!   `"block"`, `weir run` would drop or retry such an event instead of dead-lettering it.
//!
//! - With `[[target]]` entries instead of `[sink]`, each event a plugin left is routed by the
//!   targets' rules as `weir run` routes it: a `delivered` line has `targets` instead of
//!   `sink`, an object with what each target it reaches would send (`{"billing": {...},
//!   "audit": {...}}`), and a target that refuses the event has `{"refused": "why", "stage":
//!   "target:NAME"}` there (the input then counts as dead-lettered). An event no target's rule
//!   matches is `filtered`, its `why` saying per target (`"target": NAME`) the first field
//!   that failed.
//!
//! A summary goes to stderr: `N inputs: a delivered, b filtered, c dead-lettered, d dropped`.
//! Exit 0 if nothing would be dead-lettered, 1 otherwise, 2 if the pipeline is invalid, a
//! plugin does not load, or the input cannot be read.

use crate::event::Envelope;
use crate::exit;
use crate::pipeline::filter::FilterStage;
use crate::pipeline::plugin_stage::{PluginSet, PluginStage};
use crate::pipeline::route::{Router, Rules};
use crate::pipeline::slot::{Failure, Fate, Slot};
use crate::pipeline::{PipelineConfig, load_pipeline};
use crate::plugin::PluginError;
use crate::sink::{Preview, SinkError};
use crate::source::ReadSettings;
use crate::source::file::ReadOnce;
use serde::Serialize;
use serde_json::Value;
use std::io::{BufWriter, Write};
use std::path::Path;
use weir_pattern::Pattern;

/// Events a lane hands its plugins at most in one call (as `weir run` does).
const PLUGIN_BATCH: usize = 256;

/// One output line.
#[derive(Serialize, Default)]
struct Line<'a> {
    input: usize,
    id: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sink: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    targets: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'a [Why]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a str>,
}

/// What the dry run learned about a slot besides its fate.
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

#[derive(Default)]
struct Totals {
    inputs: usize,
    delivered: usize,
    filtered: usize,
    dead_lettered: usize,
    dropped: usize,
}

/// The pipeline's stages, loaded as `weir run` loads them, minus the source, sink and DLQ.
struct Stages {
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

pub fn dry_run(pipeline: &Path, input: &Path) -> i32 {
    let cfg = match load_pipeline(pipeline) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!("\n{n} error{} found", if n == 1 { "" } else { "s" });
            return exit::USAGE;
        }
    };
    let ReadSettings {
        format,
        batch_size,
        max_record_bytes: max_line_bytes,
    } = cfg.source.read_settings();
    let mut reader = match ReadOnce::open(input, format, max_line_bytes) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --input: {e}");
            return exit::USAGE;
        }
    };
    let mut stages = match Stages::load(cfg) {
        Ok(s) => s,
        Err(e) => {
            let said = format!("{}: {e}", pipeline.display());
            eprintln!("error: {}", crate::redact::redact(&said));
            return exit::USAGE;
        }
    };

    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let mut totals = Totals::default();
    let mut code = None;
    loop {
        let batch = match reader.next_batch(batch_size) {
            Ok(b) if b.is_empty() => break,
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: --input: {e}");
                code = Some(exit::USAGE);
                break;
            }
        };
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
        let notes = stages.run(&mut slots);
        if let Err(e) = print(&mut stdout, &slots, &notes, &mut totals) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("error: {e}");
                code = Some(exit::FAILED);
            }
            break;
        }
    }
    if let Err(e) = stdout.flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: {e}");
        code.get_or_insert(exit::FAILED);
    }
    eprintln!(
        "{} input{}: {} delivered, {} filtered, {} dead-lettered, {} dropped",
        totals.inputs,
        if totals.inputs == 1 { "" } else { "s" },
        totals.delivered,
        totals.filtered,
        totals.dead_lettered,
        totals.dropped
    );
    code.unwrap_or(if totals.dead_lettered > 0 {
        exit::FAILED
    } else {
        exit::OK
    })
}

/// Why a stage of the pipeline did not load.
#[derive(Debug, thiserror::Error)]
enum LoadError {
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
    fn load(cfg: PipelineConfig) -> Result<Self, LoadError> {
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
#[derive(Serialize)]
struct Why {
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<usize>,
    /// For an event no target's rule matches: the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    field: String,
    reason: String,
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

/// Writes the lines of a batch and counts its outcomes.
fn print(
    out: &mut impl Write,
    slots: &[Slot],
    notes: &[Note],
    totals: &mut Totals,
) -> std::io::Result<()> {
    for (slot, note) in slots.iter().zip(notes) {
        let input = totals.inputs;
        totals.inputs += 1;
        let base = Line {
            input,
            id: &slot.event.id,
            ..Line::default()
        };
        match (&slot.fate, note) {
            (Fate::Delivered, Note::Sent(sent)) => {
                totals.delivered += 1;
                for (id, key, sink) in sent {
                    let line = Line {
                        id,
                        outcome: "delivered",
                        key: key.as_deref(),
                        sink: Some(sink),
                        ..base
                    };
                    write_line(out, &line)?;
                }
            }
            (Fate::Delivered | Fate::Failed(_), Note::Routed(lines)) => {
                let failed = match &slot.fate {
                    Fate::Failed(_) => {
                        totals.dead_lettered += 1;
                        true
                    }
                    _ => {
                        totals.delivered += 1;
                        false
                    }
                };
                for (id, key, targets) in lines {
                    let line = Line {
                        id,
                        outcome: if failed { "dead-lettered" } else { "delivered" },
                        key: key.as_deref(),
                        targets: Some(targets),
                        ..base
                    };
                    write_line(out, &line)?;
                }
            }
            (Fate::Filtered, Note::Dropped(stage)) => {
                totals.dropped += 1;
                let line = Line {
                    outcome: "dropped",
                    stage: Some(stage),
                    ..base
                };
                write_line(out, &line)?;
            }
            (Fate::Filtered, note) => {
                totals.filtered += 1;
                let why = match note {
                    Note::Filters(why) => why.as_slice(),
                    _ => &[],
                };
                let line = Line {
                    outcome: "filtered",
                    why: Some(why),
                    ..base
                };
                write_line(out, &line)?;
            }
            (Fate::Failed(f), note) => {
                totals.dead_lettered += 1;
                let output = match note {
                    Note::Refused(id) if *id != slot.event.id => Some(id.as_str()),
                    _ => None,
                };
                let line = Line {
                    outcome: "dead-lettered",
                    stage: Some(&f.stage),
                    kind: Some(&f.kind),
                    reason: Some(&f.message),
                    output,
                    ..base
                };
                write_line(out, &line)?;
            }
            // `Stages::run` ends every slot one of the ways above.
            (fate, _) => {
                totals.dead_lettered += 1;
                let reason = format!("dry run: unexpected end {fate:?}");
                let line = Line {
                    outcome: "dead-lettered",
                    reason: Some(&reason),
                    ..base
                };
                write_line(out, &line)?;
            }
        }
    }
    Ok(())
}

fn write_line(out: &mut impl Write, line: &Line<'_>) -> std::io::Result<()> {
    let text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    // What a sink would send may hold a `${VAR}` secret (a header, a URL): masked.
    writeln!(out, "{}", crate::redact::redact(&text))
}
