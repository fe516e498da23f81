//! The plugin stage: every `[[plugin]]` in order, over the pending slots of a batch.
//!
//! A slot enters with its source event; each plugin turns every event the slot carries into zero
//! or more events. One output of the slot's own event (a map, the usual case) changes that event
//! in place, the slot keeping what it replaced (`Slot::change_event`); a split or drop makes a
//! list (`Slot::outputs`). A slot whose events a plugin fails (an error it reported, or a trap,
//! deadline or memory hit isolated to it) becomes `Failed` with stage `plugin:NAME`, and its
//! other outputs are discarded: the event is put back as the source produced it
//! (`Slot::restore`), which is what its DLQ record keeps. A slot left with no events is
//! `Filtered`.
//!
//! [`PluginSet`] is loaded once per pipeline (compiled, initialised, watched for hot reload);
//! each lane makes its own [`PluginStage`] from it, with instances of its own, so lanes run
//! plugins in parallel. Calls are synchronous and CPU-bound: lanes run [`PluginStage::apply`] on
//! a thread of their own (plugin_thread.rs), never on an async worker.

use super::slot::{Change, Failure, Fate, Slot};
use crate::event::{Envelope, KEY_BASE64, Payload, RAW_BASE64};
use crate::lookup::Tables;
use crate::observe::status::{PluginVersion, PluginVersions};
use crate::observe::tap::Tap;
use crate::plugin::PluginError;
use crate::plugin::config::PluginConfig;
use crate::plugin::grants::Grants;
use crate::plugin::http::HttpAccess;
use crate::plugin::instance::{Event, Output, Settings};
use crate::plugin::reload::{self, Current};
use crate::plugin::runner::{Outcome, Runner};
use crate::source::Format;
use std::path::Path;
use std::sync::Arc;

/// The pipeline's plugins, in order: the version each should run now.
#[derive(Clone)]
pub(crate) struct PluginSet {
    plugins: Vec<(String, Arc<Current>)>,
    /// What each plugin is granted, in words (its status).
    grants: Vec<Vec<String>>,
    /// Where each plugin publishes what it emitted (`weir tap --stage plugin:NAME`).
    tap: Option<Arc<Tap>>,
}

impl PluginSet {
    /// Loads every plugin (reading its file, compiling it or reading the cache under
    /// `state_root/.plugin-cache`) and checks that an instance of each initialises within its
    /// `init_timeout_ms`. `None` when there are no plugins. With `watch`, each plugin's file is
    /// watched for hot reload while the set lives. What `weir run` does at a pipeline's start,
    /// and what a pre-flight check should do (with `watch` false) to refuse what it would.
    /// `tables`: the pipeline's lookup tables, for the plugins granted some.
    pub(crate) fn load(
        pipeline: &str,
        configs: &[PluginConfig],
        tables: Option<&Arc<Tables>>,
        state_root: Option<&Path>,
        watch: bool,
    ) -> Result<Option<Self>, PluginError> {
        if configs.is_empty() {
            return Ok(None);
        }
        let pipeline: Arc<str> = pipeline.into();
        let mut plugins = Vec::with_capacity(configs.len());
        let summaries = configs.iter().map(PluginConfig::grant_summary).collect();
        for c in configs {
            let settings = Settings {
                pipeline: pipeline.clone(),
                name: c.name.as_str().into(),
                path: c.path.clone(),
                limits: c.limits,
                config_json: c.config_json.clone(),
                cache_dir: state_root.map(|r| r.join(".plugin-cache")),
                grants: grants(&pipeline, c, tables)?,
            };
            let (loaded, _checked) = crate::plugin::instance::Loaded::load(&settings)?;
            tracing::info!(pipeline = %pipeline, plugin = %c.name, path = %c.path.display(),
                hash = %&loaded.hash[..12], origin = ?loaded.origin, "plugin loaded");
            let current = Current::new(loaded);
            if watch && let Err(e) = reload::watch(settings, &current) {
                tracing::warn!(pipeline = %pipeline, plugin = %c.name, error = %e,
                    "cannot watch the plugin file; hot reload is off for it");
            }
            plugins.push((format!("plugin:{}", c.name), current));
        }
        Ok(Some(PluginSet {
            plugins,
            grants: summaries,
            tap: None,
        }))
    }

    /// Tells `hook` (stage `plugin:NAME`, message) of each new version hot reload refuses.
    pub(crate) fn on_reload_refused(
        self,
        hook: impl Fn(&str, &str) + Send + Sync + 'static,
    ) -> Self {
        let hook: reload::OnRefused = Arc::new(hook);
        for (_, current) in &self.plugins {
            current.on_refused(hook.clone());
        }
        self
    }

    /// Publishes each plugin's outputs on `tap`.
    pub(crate) fn with_tap(mut self, tap: Arc<Tap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// A stage for one lane: its own instances, made on first use.
    pub(crate) fn stage(&self) -> PluginStage {
        let plugins = self
            .plugins
            .iter()
            .map(|(stage, current)| {
                let (generation, loaded) = current.get();
                let labels = [
                    ("pipeline", loaded.settings.pipeline.to_string()),
                    ("plugin", loaded.settings.name.to_string()),
                ];
                Plugin {
                    call_seconds: metrics::histogram!("weir_plugin_call_seconds", &labels),
                    failures: [
                        "error",
                        "retryable",
                        "trap",
                        "timeout",
                        "memory",
                        "io_budget",
                    ]
                    .map(|kind| {
                        let mut l = labels.to_vec();
                        l.push(("kind", kind.to_owned()));
                        (kind, metrics::counter!("weir_plugin_failures_total", &l))
                    })
                    .to_vec(),
                    tap: self.tap.clone(),
                    stage: stage.clone(),
                    current: current.clone(),
                    generation,
                    runner: Runner::lazy(loaded),
                }
            })
            .collect();
        PluginStage { plugins }
    }
}

/// What plugin `c` may reach: an HTTP client of its own (its limits and cache are its own, shared
/// by its instances in every lane), the pipeline's tables if it is granted some.
fn grants(
    pipeline: &str,
    c: &PluginConfig,
    tables: Option<&Arc<Tables>>,
) -> Result<Grants, PluginError> {
    let http = match &c.http {
        None => None,
        Some(grant) => Some(
            HttpAccess::new(grant.clone(), pipeline, &c.name).map_err(|e| PluginError::Grant {
                name: c.name.clone(),
                message: e.to_string(),
            })?,
        ),
    };
    let tables = match (c.tables.is_empty(), tables) {
        (true, _) => None,
        (false, Some(t)) => Some((t.clone(), c.tables.clone())),
        (false, None) => {
            return Err(PluginError::Grant {
                name: c.name.clone(),
                message: "granted lookup tables, but the pipeline opened none".into(),
            });
        }
    };
    Ok(Grants {
        http,
        tables,
        io_budget: c.io_budget,
    })
}

impl PluginVersions for PluginSet {
    /// The version each plugin runs now.
    fn versions(&self) -> Vec<PluginVersion> {
        self.plugins
            .iter()
            .zip(&self.grants)
            .map(|((_, current), grants)| {
                let (generation, loaded) = current.get();
                PluginVersion {
                    name: loaded.settings.name.to_string(),
                    path: loaded.settings.path.display().to_string(),
                    version: loaded.hash.clone(),
                    reloads: generation,
                    reload_refused: current.refused(),
                    grants: grants.clone(),
                }
            })
            .collect()
    }
}

/// One lane's plugins.
pub(crate) struct PluginStage {
    plugins: Vec<Plugin>,
}

struct Plugin {
    stage: String,
    /// Time per batch call (with any bisection after a trap).
    call_seconds: metrics::Histogram,
    /// Events failed, by kind (`error` or `retryable` reported by the plugin, `trap`, `timeout`,
    /// `memory`, `io_budget`).
    failures: Vec<(&'static str, metrics::Counter)>,
    tap: Option<Arc<Tap>>,
    current: Arc<Current>,
    /// The generation of `current` that `runner` runs.
    generation: u64,
    runner: Runner,
}

impl PluginStage {
    /// [`PluginStage::apply`], with a panic in the host's plugin code (a bug, not a plugin's
    /// trap) failing the pending events rather than losing them. False if it panicked: the
    /// instances may be in any state, so the caller makes a fresh stage.
    pub(crate) fn apply_or_fail(&mut self, slots: &mut [Slot]) -> bool {
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.apply(&mut *slots)));
        let Err(panic) = result else { return true };
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        for slot in slots.iter_mut() {
            if matches!(slot.fate, Fate::Pending) {
                let message = format!("the plugin host panicked: {why}");
                slot.fate = Fate::Failed(Failure::now("plugin", "panic", message, 1, None));
                slot.restore();
            }
        }
        false
    }

    /// Runs the pending slots through every plugin, in order.
    pub(crate) fn apply(&mut self, slots: &mut [Slot]) {
        for plugin in &mut self.plugins {
            // A batch boundary: the only place a new version may take over.
            if plugin.current.generation() != plugin.generation {
                let (generation, loaded) = plugin.current.get();
                // The reload itself was logged once, by the watcher (reload.rs).
                tracing::debug!(pipeline = %loaded.settings.pipeline, plugin = %loaded.settings.name,
                    hash = %&loaded.hash[..12], "lane switched to the new plugin version");
                plugin.generation = generation;
                plugin.runner = Runner::lazy(loaded);
            }
            plugin.apply(slots);
        }
    }
}

impl Plugin {
    fn apply(&mut self, slots: &mut [Slot]) {
        // Flatten: the events every pending slot carries, each remembering its slot. `None`
        // stands for the slot's own source event, read in place rather than copied.
        let mut owners: Vec<usize> = Vec::new();
        let mut inputs: Vec<Option<Envelope>> = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            if !matches!(slot.fate, Fate::Pending) {
                continue;
            }
            match slot.outputs.take() {
                Some(outs) => {
                    owners.extend(std::iter::repeat_n(i, outs.len()));
                    inputs.extend(outs.into_iter().map(Some));
                }
                None => {
                    owners.push(i);
                    inputs.push(None);
                }
            }
        }
        if inputs.is_empty() {
            return;
        }
        let input = |j: usize| inputs[j].as_ref().unwrap_or(&slots[owners[j]].event);
        let events: Vec<Event> = (0..inputs.len()).map(|j| to_wit(input(j))).collect();
        let started = std::time::Instant::now();
        let outcomes = self.runner.run(&events, &|j| metadata(input(j)));
        self.call_seconds.record(started.elapsed().as_secs_f64());
        drop(events);

        // Rebuild each slot's events from the outcomes of the events it carried; a failure of
        // any of them fails the slot. A one-for-one output changes the event it was made from in
        // place (the slot's own event keeps what was replaced, to put back for the DLQ record
        // and retries); an event handed back unchanged is left as it is.
        let mut fresh: Vec<Vec<Envelope>> = (0..slots.len()).map(|_| Vec::new()).collect();
        let mut own: Vec<bool> = vec![false; slots.len()];
        let mut failed: Vec<Option<Failure>> = (0..slots.len()).map(|_| None).collect();
        for (j, (outcome, carried)) in outcomes.into_iter().zip(inputs).enumerate() {
            let owner = owners[j];
            if failed[owner].is_some() {
                continue;
            }
            let outputs = match outcome {
                Outcome::Failed { kind, message, .. } => {
                    if let Some((_, c)) = self.failures.iter().find(|(k, _)| *k == kind) {
                        c.increment(1);
                    }
                    failed[owner] = Some(Failure::now(&self.stage, kind, message, 1, None));
                    continue;
                }
                Outcome::Emitted(outputs) => outputs,
            };
            let malformed = |why| Some(Failure::now(&self.stage, "malformed", why, 1, None));
            let n = outputs.len();
            match (carried, outputs.into_inner()) {
                (None, Ok([out])) => match change(&slots[owner].event, out, 0) {
                    Ok(change) => {
                        slots[owner].change_event(change);
                        own[owner] = true;
                    }
                    Err(why) => failed[owner] = malformed(why),
                },
                (Some(mut event), Ok([out])) => match change(&event, out, 0) {
                    Ok(change) => {
                        change.apply_to(&mut event);
                        fresh[owner].push(event);
                    }
                    Err(why) => failed[owner] = malformed(why),
                },
                (carried, Err(outputs)) => {
                    let input = carried.as_ref().unwrap_or(&slots[owner].event);
                    for (k, out) in outputs.into_iter().enumerate() {
                        match change(input, out, k) {
                            Ok(change) => fresh[owner].push(changed_copy(input, change, n, k)),
                            Err(why) => {
                                failed[owner] = malformed(why);
                                break;
                            }
                        }
                    }
                }
            }
        }
        for (((slot, list), failure), own) in slots.iter_mut().zip(fresh).zip(failed).zip(own) {
            if !matches!(slot.fate, Fate::Pending) {
                continue;
            }
            if let Some(f) = failure {
                slot.fate = Fate::Failed(f);
                slot.restore();
                continue;
            }
            if own {
                // `outputs` is None: the slot delivers its own event.
                continue;
            }
            if list.is_empty() {
                tracing::trace!(pipeline = %self.runner.loaded.settings.pipeline, event = %slot.event.id,
                    stage = %self.stage, "dropped by the plugin");
                slot.fate = Fate::Filtered;
            }
            slot.outputs = Some(list);
        }
        if let Some(tap) = self.tap.as_ref().filter(|t| t.active()) {
            tap.publish(
                &self.stage,
                slots
                    .iter()
                    .filter(|s| matches!(s.fate, Fate::Pending))
                    .flat_map(Slot::deliverables),
            );
        }
    }
}

/// The envelope as the contract passes it (wit/plugin.wit, `event`), borrowed from it.
pub(crate) fn to_wit(e: &Envelope) -> Event<'_> {
    let payload = match &e.data {
        Payload::Json(raw) => raw.get().as_bytes(),
        Payload::Text(text) => text.as_bytes(),
    };
    Event {
        id: &e.id,
        key: e.key.as_deref(),
        payload,
    }
}

/// What the `metadata` import returns for an event: `source`, `time`, and `meta.NAME` for each
/// field of its `meta` (strings as they are, other values as JSON text).
pub(crate) fn metadata(e: &Envelope) -> Vec<(String, String)> {
    let mut metadata = Vec::with_capacity(2 + e.meta.len());
    metadata.push(("source".to_owned(), e.source.to_owned()));
    metadata.push(("time".to_owned(), e.time.clone()));
    for (k, v) in &e.meta {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        metadata.push((format!("meta.{k}"), v));
    }
    metadata
}

/// What output `k` of `input` changes in it: its payload, decoded as a source record is (invalid
/// UTF-8 keeps its exact bytes in `meta.raw_base64`), and its key. An output byte for byte the
/// payload the plugin was given is the input's data unchanged: it keeps what the input kept of
/// the record as it came (a value that is not UTF-8, which the plugin saw decoded lossily). An
/// output no later stage could read (JSON nested deeper than `event::MAX_DATA_DEPTH`) is an
/// error: the event fails as `malformed` rather than travel on as a string.
pub(crate) fn change(input: &Envelope, mut out: Output, k: usize) -> Result<Change, String> {
    let mut change = Change::default();
    if out.payload.as_slice() != to_wit(input).payload {
        let payload = std::mem::take(&mut out.payload);
        let (data, problem) = Format::Auto.decode_output(&input.data, payload, &mut change.set);
        if let Some(problem) = problem {
            return Err(format!("output {k}: {problem}"));
        }
        change.data = Some(data);
        // Looked up before it is listed: most events have no such field, and the list then
        // costs nothing.
        if input.meta.contains_key(RAW_BASE64) {
            change.unset.push(RAW_BASE64);
        }
    }
    if let Some(key) = out.key
        && input.key.as_deref() != Some(key.as_str())
    {
        // The record key's exact bytes are not this key's.
        if input.meta.contains_key(KEY_BASE64) {
            change.unset.push(KEY_BASE64);
        }
        change.key = Some(key);
    }
    Ok(change)
}

/// Output `k` of `of` made from `input`, as an envelope of its own (`weir plugin test`).
pub(crate) fn from_wit(
    input: &Envelope,
    out: Output,
    of: usize,
    k: usize,
) -> Result<Envelope, String> {
    change(input, out, k).map(|change| changed_copy(input, change, of, k))
}

/// Output `k` of `of` made from `input` (a split, or a drop's none), as an envelope of its own:
/// `input` with the change made, its id `ID#k` when there are several so they can be told apart
/// downstream. The input's data is not copied only to be replaced.
pub(crate) fn changed_copy(input: &Envelope, mut change: Change, of: usize, k: usize) -> Envelope {
    let mut e = Envelope {
        id: if of > 1 {
            format!("{}#{k}", input.id)
        } else {
            input.id.clone()
        },
        source: input.source,
        key: input.key.clone(),
        time: input.time.clone(),
        received_at: input.received_at.clone(),
        data: change.data.take().unwrap_or_else(|| input.data.clone()),
        meta: input.meta.clone(),
    };
    change.apply_to(&mut e);
    e
}

#[cfg(test)]
#[path = "plugin_stage_tests.rs"]
mod tests;
