//! What an operator can see of one pipeline while it runs: its state, counts, last error, last
//! checkpoint, plugin versions and source lag (the admin API's `/pipelines` and `/metrics`), and
//! its [`Tap`] (`weir tap`).
//!
//! A `Status` belongs to a pipeline *name* for the life of the process: when a changed file
//! restarts the pipeline, the new run starts with fresh [`Counters`] (its in-flight accounting
//! must not inherit the old run's unfinished events) and the finished run's counts move into
//! `earlier`, so that the totals the metrics report never go down (also when a pipeline is
//! removed and added again: Prometheus counters must not go back).

use super::counters::{Counters, Snapshot, TargetSnapshot};
use super::reasons::{ReasonCount, Reasons};
use super::tap::Tap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Opening its source and sinks, loading plugins.
    Starting,
    Running,
    /// Draining: no new events, finishing those in flight (a reload, a removal, a shutdown).
    Stopping,
    /// Ended: its source ended, or it was stopped.
    Stopped,
    /// Ended with an error (`last_error` says which).
    Failed,
}

/// The plugins a run has loaded, as the status reports them: asked anew at each look, since hot
/// reloads change their versions while the run goes on.
pub trait PluginVersions: Send + Sync {
    fn versions(&self) -> Vec<PluginVersion>;
}

/// What a run is, as the status shows it: its pipeline file and its source and sink kinds.
pub struct Run {
    pub file: String,
    pub source: &'static str,
    /// The targets' sink kinds, `,`-separated.
    pub sink: String,
}

/// The newest error seen, and when.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub time: String,
    /// `pipeline`, `source`, `plugin:NAME`, `sink`, `dlq`.
    pub stage: String,
    pub message: String,
}

pub struct Status {
    pub name: String,
    pub tap: Arc<Tap>,
    inner: Mutex<Inner>,
    /// Unix milliseconds of the last completed checkpoint (0: none yet).
    last_checkpoint_ms: AtomicU64,
    /// The source reaches its broker or queue. Sources that cannot tell leave it true.
    source_connected: AtomicBool,
    /// Files the file source could not read to their end (rotated away and deleted first).
    files_lost: AtomicU64,
}

struct Inner {
    state: State,
    file: String,
    source: &'static str,
    sink: String,
    started_at: String,
    /// Runs of this pipeline so far in this process (a changed file restarts it).
    runs: u64,
    current: Option<Arc<Counters>>,
    plugins: Option<Arc<dyn PluginVersions>>,
    /// Counts of earlier runs, and their failures by stage.
    earlier: Snapshot,
    earlier_failed: BTreeMap<String, u64>,
    /// Earlier runs' counts per target (a target the file no longer has keeps its totals).
    earlier_targets: Vec<(String, TargetSnapshot)>,
    last_error: Option<LastError>,
    /// Why events were dead-lettered (all runs).
    dlq_reasons: Reasons,
    /// Source lag by partition (`topic/partition`), where the source knows it (Kafka).
    lag: BTreeMap<String, i64>,
    /// Events the last run left unfinished when it stopped (its sink or DLQ failing at a
    /// shutdown): not committed, read again at the next start.
    unfinished: u64,
}

/// Reasons `/pipelines` shows per pipeline.
const TOP_REASONS: usize = 5;

/// A copy of the status, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub name: String,
    pub state: State,
    pub file: String,
    pub source: &'static str,
    pub sink: String,
    pub started_at: String,
    pub runs: u64,
    /// The source reaches its broker or queue (as far as it can tell).
    pub source_connected: bool,
    /// Totals since weir started (all runs).
    pub counts: Snapshot,
    pub in_flight: u64,
    /// Dead-lettered, dropped and released events by the stage they failed at.
    pub failed_by_stage: BTreeMap<String, u64>,
    /// Each target's counts (all runs), in the pipeline's order; the `[sink]` shorthand's is
    /// `sink`.
    pub targets: Vec<TargetView>,
    pub last_error: Option<LastError>,
    /// The most frequent reasons events were dead-lettered for (all runs), most frequent first.
    pub dlq_reasons: Vec<ReasonCount>,
    pub plugins: Vec<PluginVersion>,
    /// Total source lag (events not yet read), where known.
    pub lag: Option<i64>,
    pub lag_by_partition: BTreeMap<String, i64>,
    /// Seconds since the last checkpoint; none before the first.
    pub checkpoint_age_s: Option<f64>,
    /// Files the file source could not read to their end (since weir started).
    pub files_lost: u64,
}

/// One target's totals.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    pub name: String,
    #[serde(flatten)]
    pub counts: TargetSnapshot,
    /// Routed to it and not yet ended there (this run).
    pub in_flight: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginVersion {
    pub name: String,
    pub path: String,
    /// sha256 of the `.wasm` running now.
    pub version: String,
    /// Hot reloads since the pipeline started.
    pub reloads: u64,
    /// Why the newest version on disk was refused, until a version loads (the one above runs).
    pub reload_refused: Option<String>,
    /// What it may reach: `table NAME`, `http METHODS PREFIX` (empty: nothing).
    pub grants: Vec<String>,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Status({})", self.name)
    }
}

impl Status {
    pub fn new(name: &str) -> Arc<Status> {
        Arc::new(Status {
            name: name.to_owned(),
            tap: Arc::default(),
            last_checkpoint_ms: AtomicU64::new(0),
            source_connected: AtomicBool::new(true),
            files_lost: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                state: State::Starting,
                file: String::new(),
                source: "",
                sink: String::new(),
                started_at: now(),
                runs: 0,
                current: None,
                plugins: None,
                earlier: Snapshot::default(),
                earlier_failed: BTreeMap::new(),
                earlier_targets: Vec::new(),
                last_error: None,
                dlq_reasons: Reasons::default(),
                lag: BTreeMap::new(),
                unfinished: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new run starts, counting into `counters`.
    pub fn begin(&self, run: Run, counters: Arc<Counters>) {
        let mut s = self.lock();
        s.state = State::Starting;
        s.file = run.file;
        s.source = run.source;
        s.sink = run.sink;
        s.started_at = now();
        s.runs += 1;
        s.current = Some(counters);
        s.plugins = None;
        s.lag.clear();
        self.source_connected.store(true, Relaxed);
    }

    /// The run's source, sinks and plugins are open and events flow.
    pub fn running(&self, plugins: Option<Arc<dyn PluginVersions>>) {
        let mut s = self.lock();
        s.state = State::Running;
        s.plugins = plugins;
    }

    pub fn set_state(&self, state: State) {
        self.lock().state = state;
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Events the last run that ended left unfinished (0 while a run is under way).
    pub fn unfinished(&self) -> u64 {
        let s = self.lock();
        if s.current.is_some() { 0 } else { s.unfinished }
    }

    /// The run ended (with `error` if it failed): its counts join the totals of earlier runs,
    /// and the events it left unfinished are remembered ([`Status::unfinished`]).
    pub fn end(&self, error: Option<String>) {
        let mut s = self.lock();
        s.unfinished = 0;
        if let Some(c) = s.current.take() {
            let s = &mut *s;
            s.unfinished = c.snapshot().in_flight();
            add_run(&mut s.earlier, &mut s.earlier_failed, &c);
            for (name, counts) in c.targets() {
                match s.earlier_targets.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, earlier)) => earlier.add(&counts),
                    None => s.earlier_targets.push((name, counts)),
                }
            }
        }
        s.plugins = None;
        s.lag.clear();
        s.state = match &error {
            Some(_) => State::Failed,
            None => State::Stopped,
        };
        if let Some(message) = error {
            s.last_error = Some(LastError {
                time: now(),
                stage: "pipeline".into(),
                message,
            });
        }
    }

    /// Remembers the newest failure (an event dead-lettered, a sink retrying).
    pub fn error(&self, stage: &str, message: &str) {
        self.lock().last_error = Some(LastError {
            time: now(),
            stage: stage.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Counts an event dead-lettered for this reason.
    pub fn dead_lettered(&self, stage: &str, kind: &str, message: &str) {
        self.lock().dlq_reasons.add(stage, kind, message);
    }

    pub fn checkpointed(&self) {
        self.last_checkpoint_ms.store(unix_ms(), Relaxed);
    }

    /// The file source could not read a file to its end: `what` names it and why.
    pub fn file_lost(&self, what: &str) {
        self.files_lost.fetch_add(1, Relaxed);
        self.error("source", &format!("file lost: {what}"));
    }

    /// Whether the source reaches its broker or queue now (readiness).
    pub fn set_source_connected(&self, up: bool) {
        self.source_connected.store(up, Relaxed);
    }

    pub fn source_connected(&self) -> bool {
        self.source_connected.load(Relaxed)
    }

    /// The source's lag on one partition (events behind the end of the log).
    pub fn set_lag(&self, partition: String, lag: i64) {
        self.lock().lag.insert(partition, lag);
    }

    /// The source gave these partitions away (a rebalance): their lag is another's now.
    pub fn forget_lag(&self, partitions: impl Iterator<Item = String>) {
        let mut s = self.lock();
        for p in partitions {
            s.lag.remove(&p);
        }
    }

    pub fn view(&self) -> View {
        let s = self.lock();
        let mut counts = s.earlier;
        let mut failed_by_stage = s.earlier_failed.clone();
        let mut in_flight = 0;
        let mut targets: Vec<TargetView> = s
            .earlier_targets
            .iter()
            .map(|(name, counts)| TargetView {
                name: name.clone(),
                counts: *counts,
                in_flight: 0,
            })
            .collect();
        if let Some(c) = &s.current {
            in_flight = c.snapshot().in_flight();
            add_run(&mut counts, &mut failed_by_stage, c);
            for (name, now) in c.targets() {
                match targets.iter_mut().find(|t| t.name == name) {
                    Some(t) => {
                        t.counts.add(&now);
                        t.in_flight = now.in_flight();
                    }
                    None => targets.push(TargetView {
                        name,
                        counts: now,
                        in_flight: now.in_flight(),
                    }),
                }
            }
        }
        let last = self.last_checkpoint_ms.load(Relaxed);
        let checkpoint_age_s = (last > 0).then(|| unix_ms().saturating_sub(last) as f64 / 1000.0);
        View {
            name: self.name.clone(),
            state: s.state,
            file: s.file.clone(),
            source: s.source,
            sink: s.sink.clone(),
            started_at: s.started_at.clone(),
            runs: s.runs,
            source_connected: self.source_connected(),
            counts,
            in_flight,
            failed_by_stage,
            targets,
            last_error: s.last_error.clone(),
            dlq_reasons: s.dlq_reasons.top(TOP_REASONS),
            plugins: s.plugins.as_ref().map(|p| p.versions()).unwrap_or_default(),
            lag: (!s.lag.is_empty()).then(|| s.lag.values().sum()),
            lag_by_partition: s.lag.clone(),
            checkpoint_age_s,
            files_lost: self.files_lost.load(Relaxed),
        }
    }
}

/// Adds a run's counts and failures by stage to totals.
fn add_run(counts: &mut Snapshot, failed: &mut BTreeMap<String, u64>, run: &Counters) {
    counts.add(&run.snapshot());
    for (stage, k) in run.failed_stages() {
        *failed.entry(stage).or_default() += k;
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
