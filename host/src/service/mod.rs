//! `weir run` as a service: the set of running pipelines, and live reload of their files.
//!
//! Pipelines are known by the file they come from. A reload (the files changed, SIGHUP, or
//! `POST /reload`) reads every file again and then:
//! - a new file's pipeline starts;
//! - a file whose text changed, or whose `${VAR}` / `${file:...}` references now resolve to
//!   other values (a rotated secret; the files `${file:...}` reads are watched too): its
//!   pipeline drains (stops reading, finishes what is in flight, saves its checkpoint) and the
//!   new version starts;
//! - a removed file's pipeline drains and stops;
//! - an unchanged file's pipeline is not touched (one that failed is started again: a reload is
//!   how an operator says "try again");
//! - a file that does not load is rejected with its error, and the version that runs (if any)
//!   keeps running.
//!
//! Reloads run one at a time. Each pipeline reports into a [`Status`] kept per name for the life
//! of the process, so its counts carry on across restarts.

mod watch;

use crate::config::ConfigErrors;
use crate::config::interpolate::Resolved;
use crate::exit;
use crate::observe::status::{State, Status};
use crate::pipeline::Pipeline;
use crate::pipeline::config::pipeline_files_in;
use crate::pipeline::{PipelineConfig, parse_pipeline};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch as tokio_watch};
use tokio_util::sync::CancellationToken;

pub(crate) use watch::{watch_files, watch_sighup};

pub(crate) struct Service {
    /// What `weir run` was given: pipeline files and directories of them.
    paths: Vec<PathBuf>,
    state_root: PathBuf,
    /// Cancelled on SIGTERM/SIGINT: every pipeline's token is a child of it.
    shutdown: CancellationToken,
    /// How long a draining pipeline may take before it is abandoned.
    drain_timeout: Duration,
    inner: Mutex<Inner>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Signalled whenever a pipeline ends, so `run` can tell when all have.
    ended: Notify,
}

#[derive(Default)]
struct Inner {
    /// By file.
    running: BTreeMap<PathBuf, Running>,
    /// By pipeline name, for the life of the process (also once removed: a pipeline added again
    /// goes on counting where it was, as Prometheus counters must).
    statuses: BTreeMap<String, Arc<Status>>,
    /// Files that did not load at the last reload, with why.
    rejected: BTreeMap<PathBuf, String>,
}

impl Inner {
    /// The exit code: 1 if a pipeline's last run failed (and was not started again) or left
    /// events unfinished (a supervisor must be able to tell that not everything was handled),
    /// else 0.
    fn exit_code(&self) -> i32 {
        let failed = self.loaded().any(|s| s.state() == State::Failed);
        match failed || !self.unfinished().is_empty() {
            true => exit::FAILED,
            false => exit::OK,
        }
    }

    /// The pipelines whose last run stopped with events unfinished (a shutdown while their sink
    /// or DLQ was failing), with how many.
    fn unfinished(&self) -> Vec<(&str, u64)> {
        self.loaded()
            .map(|s| (s.name.as_str(), s.unfinished()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The statuses of the pipelines of the files now loaded.
    fn loaded(&self) -> impl Iterator<Item = &Arc<Status>> {
        self.running
            .values()
            .filter_map(|r| self.statuses.get(&r.name))
    }
}

struct Running {
    name: String,
    /// The file's text when it started, and what its `${...}` references resolved to: a
    /// reload compares both (a rotated secret restarts the pipeline too).
    text: String,
    resolved: Resolved,
    stop: CancellationToken,
    /// True once the pipeline's task has ended.
    ended: tokio_watch::Receiver<bool>,
    task: tokio::task::AbortHandle,
}

impl Running {
    /// Whether `cfg`, read from `text`, is the version that runs.
    fn same(&self, cfg: &PipelineConfig, text: &str) -> bool {
        self.text == text && self.resolved == cfg.resolved
    }
}

/// What a reload did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ReloadReport {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub unchanged: Vec<String>,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Rejected {
    pub file: String,
    pub error: String,
}

/// One file's pipeline as a reload found it.
enum Found {
    Valid(Box<PipelineConfig>, String),
    Invalid(String),
    Gone,
}

impl Service {
    pub(crate) fn new(
        paths: Vec<PathBuf>,
        state_root: PathBuf,
        shutdown: CancellationToken,
        drain_timeout: Duration,
    ) -> Arc<Service> {
        Arc::new(Service {
            paths,
            state_root,
            shutdown,
            drain_timeout,
            inner: Mutex::default(),
            reloading: tokio::sync::Mutex::new(()),
            ended: Notify::new(),
        })
    }

    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The files the running pipelines' `${file:...}` references read (a rotated secret is a
    /// changed pipeline).
    pub(crate) fn secret_files(&self) -> Vec<PathBuf> {
        let inner = self.lock();
        let mut files: Vec<PathBuf> = (inner.running.values())
            .flat_map(|r| r.resolved.files.iter().cloned())
            .collect();
        files.sort();
        files.dedup();
        files
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the pipelines of `configs` (validated together at start-up).
    pub(crate) fn start_all(self: &Arc<Self>, configs: Vec<(PipelineConfig, String)>) {
        for (cfg, text) in configs {
            self.start(cfg, text);
        }
    }

    /// Runs until every pipeline has ended, or a shutdown has drained them (or its timeout
    /// passed). Returns the exit code: 0, or 1 if a pipeline's last run failed, left events
    /// unfinished, or did not drain in time.
    pub(crate) async fn run(self: &Arc<Self>) -> i32 {
        loop {
            let ended = self.ended.notified();
            if self.shutdown.is_cancelled() {
                return self.drain_all().await;
            }
            {
                let inner = self.lock();
                // All ended by themselves (sources that end, such as a file read once). With no
                // pipelines at all (every file removed) the service waits for new files.
                if !inner.running.is_empty() && inner.running.values().all(|r| *r.ended.borrow()) {
                    return inner.exit_code();
                }
            }
            tokio::select! {
                _ = ended => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    /// Waits for every pipeline to drain after a shutdown, at most the drain timeout.
    async fn drain_all(&self) -> i32 {
        let waits: Vec<_> = {
            let inner = self.lock();
            inner.running.values().map(|r| r.ended.clone()).collect()
        };
        let all = futures_util::future::join_all(waits.into_iter().map(wait_ended));
        let drained = tokio::time::timeout(self.drain_timeout, all).await.is_ok();
        let inner = self.lock();
        if !drained {
            let late: Vec<&str> = inner
                .running
                .values()
                .filter(|r| !*r.ended.borrow())
                .map(|r| r.name.as_str())
                .collect();
            tracing::error!(pipelines = ?late, timeout_s = self.drain_timeout.as_secs(),
                "shutdown timeout: exiting with events in flight; they will be read again");
            return exit::FAILED;
        }
        let unfinished = inner.unfinished();
        if unfinished.is_empty() {
            tracing::info!("every pipeline drained; exiting");
        } else {
            let total: u64 = unfinished.iter().map(|(_, n)| n).sum();
            let by_pipeline: Vec<String> =
                unfinished.iter().map(|(p, n)| format!("{p}:{n}")).collect();
            tracing::error!(unfinished = total, pipelines = %by_pipeline.join(","),
                "stopped with events unfinished (their sink or DLQ kept failing): not committed, they are read again at the next start; exiting 1");
        }
        inner.exit_code()
    }

    /// The status of every pipeline, in name order.
    pub(crate) fn statuses(&self) -> Vec<Arc<Status>> {
        let inner = self.lock();
        let mut names: Vec<&String> = inner.running.values().map(|r| &r.name).collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| inner.statuses.get(n).cloned())
            .collect()
    }

    pub(crate) fn status(&self, name: &str) -> Option<Arc<Status>> {
        let inner = self.lock();
        let known = inner.running.values().any(|r| r.name == name);
        known.then(|| inner.statuses.get(name).cloned()).flatten()
    }

    pub(crate) fn rejected(&self) -> Vec<Rejected> {
        let inner = self.lock();
        inner
            .rejected
            .iter()
            .map(|(file, error)| Rejected {
                file: file.display().to_string(),
                error: error.clone(),
            })
            .collect()
    }

    /// Ready: not shutting down, and every pipeline started with its source connected (or
    /// ended by itself: a file read to its end), none starting or failed. The names of those
    /// that are not, if any.
    pub(crate) fn not_ready(&self) -> Vec<String> {
        if self.shutdown.is_cancelled() {
            return vec!["(shutting down)".into()];
        }
        self.statuses()
            .iter()
            .filter(|s| match s.state() {
                State::Starting | State::Failed => true,
                State::Running => !s.source_connected(),
                State::Stopping | State::Stopped => false,
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// Starts one pipeline's task.
    fn start(self: &Arc<Self>, cfg: PipelineConfig, text: String) {
        let name = cfg.name.clone();
        let file = cfg.file.clone();
        let resolved = cfg.resolved.clone();
        let status = {
            let mut inner = self.lock();
            inner
                .statuses
                .entry(name.clone())
                .or_insert_with(|| Status::new(&name))
                .clone()
        };
        let stop = self.shutdown.child_token();
        let (ended_tx, ended_rx) = tokio_watch::channel(false);
        let pipeline = Pipeline::new(cfg, &self.state_root).with_status(status.clone());
        let this = self.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let result = pipeline.run(token).await;
            let error = result.err().map(|e| e.to_string());
            if let Some(e) = &error {
                tracing::error!(pipeline = %status.name, error = %e, "pipeline failed");
                // For a person reading text logs, the reason on a line of its own; JSON logs
                // hold only JSON lines.
                if !crate::logging::json(None) {
                    eprintln!("error: {}", crate::redact::redact(e));
                }
            }
            status.end(error);
            let _ = ended_tx.send(true);
            this.ended.notify_waiters();
        });
        let running = Running {
            name,
            text,
            resolved,
            stop,
            ended: ended_rx,
            task: task.abort_handle(),
        };
        self.lock().running.insert(file, running);
        // The task may have ended before it was listed: let `run` look again.
        self.ended.notify_waiters();
    }

    /// Drains the pipelines of `files` and forgets them; each gets the drain timeout, then is
    /// abandoned (its unfinished events are read again when it next starts).
    async fn stop_files(&self, files: &[PathBuf]) {
        let stopping: Vec<Running> = {
            let mut inner = self.lock();
            files
                .iter()
                .filter_map(|f| inner.running.remove(f))
                .collect()
        };
        for r in &stopping {
            if let Some(s) = self.lock().statuses.get(&r.name)
                && !*r.ended.borrow()
            {
                s.set_state(State::Stopping);
            }
            r.stop.cancel();
        }
        let timeout = self.drain_timeout;
        let waits = stopping.iter().map(|r| async move {
            if tokio::time::timeout(timeout, wait_ended(r.ended.clone()))
                .await
                .is_err()
            {
                tracing::error!(pipeline = %r.name, timeout_s = timeout.as_secs(),
                    "did not drain in time; abandoning it (its unfinished events will be read again)");
                r.task.abort();
            }
        });
        futures_util::future::join_all(waits).await;
    }

    /// Reads the pipeline files again and applies what changed (module docs).
    pub(crate) async fn reload(self: &Arc<Self>) -> ReloadReport {
        let _one = self.reloading.lock().await;
        let mut report = ReloadReport::default();
        if self.shutdown.is_cancelled() {
            return report;
        }
        let found = self.find_files();

        // Decide, per file.
        let mut to_stop: Vec<PathBuf> = Vec::new();
        let mut to_start: Vec<(PipelineConfig, String, bool)> = Vec::new();
        let mut rejected: BTreeMap<PathBuf, String> = BTreeMap::new();
        {
            let inner = self.lock();
            // Names the new set will hold: unchanged running files keep theirs.
            let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
            for (file, f) in &found {
                if let (Found::Valid(cfg, text), Some(r)) = (f, inner.running.get(file))
                    && r.same(cfg, text)
                {
                    names.insert(r.name.clone(), file.clone());
                }
            }
            for (file, f) in found {
                let running = inner.running.get(&file);
                match f {
                    Found::Gone => {
                        if let Some(r) = running {
                            report.stopped.push(r.name.clone());
                            to_stop.push(file);
                        }
                    }
                    Found::Invalid(error) => {
                        tracing::error!(file = %file.display(), error = %error,
                            "pipeline file rejected; the running version (if any) keeps running");
                        rejected.insert(file, error);
                    }
                    Found::Valid(cfg, text) => {
                        let same = running.is_some_and(|r| r.same(&cfg, &text));
                        let failed = running.is_some_and(|r| {
                            *r.ended.borrow()
                                && inner
                                    .statuses
                                    .get(&r.name)
                                    .is_some_and(|s| s.state() == State::Failed)
                        });
                        if same && !failed {
                            report.unchanged.push(cfg.name.clone());
                            continue;
                        }
                        if let Some(other) = names.get(&cfg.name).filter(|o| **o != file) {
                            let error = format!(
                                "pipeline name `{}` is already used by {}; names must be unique",
                                cfg.name,
                                other.display()
                            );
                            tracing::error!(file = %file.display(), error = %error, "pipeline file rejected");
                            rejected.insert(file, error);
                            continue;
                        }
                        names.insert(cfg.name.clone(), file.clone());
                        let restart = running.is_some();
                        if restart {
                            to_stop.push(file.clone());
                        }
                        to_start.push((*cfg, text, restart));
                    }
                }
            }
        }
        // Pipelines that were running are drained before their new versions take their state.
        self.stop_files(&to_stop).await;
        for (cfg, text, restart) in to_start {
            match restart {
                true => report.restarted.push(cfg.name.clone()),
                false => report.started.push(cfg.name.clone()),
            }
            self.start(cfg, text);
        }
        report.rejected = rejected
            .iter()
            .map(|(file, error)| Rejected {
                file: file.display().to_string(),
                error: error.clone(),
            })
            .collect();
        self.lock().rejected = rejected;
        tracing::info!(started = ?report.started, restarted = ?report.restarted, stopped = ?report.stopped,
            unchanged = report.unchanged.len(), rejected = report.rejected.len(), "pipelines reloaded");
        self.ended.notify_waiters();
        report
    }

    /// Every pipeline file now, with its text parsed; plus the running ones that are gone.
    fn find_files(&self) -> BTreeMap<PathBuf, Found> {
        let mut found = BTreeMap::new();
        for path in &self.paths {
            let files = if path.is_dir() {
                match pipeline_files_in(path) {
                    Ok(f) => f,
                    Err(e) => {
                        // Cannot list it now: leave its pipelines as they are.
                        tracing::error!(dir = %path.display(), error = %e, "cannot list the pipeline directory");
                        let inner = self.lock();
                        for f in inner.running.keys().filter(|f| f.starts_with(path)) {
                            found.insert(
                                f.clone(),
                                Found::Invalid(format!("cannot list {}: {e}", path.display())),
                            );
                        }
                        continue;
                    }
                }
            } else {
                vec![path.clone()]
            };
            for file in files {
                let f = match std::fs::read_to_string(&file) {
                    Ok(text) => match parse_pipeline(&file, &text) {
                        Ok(cfg) => Found::Valid(Box::new(cfg), text),
                        Err(e) => Found::Invalid(e.to_string()),
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Found::Gone,
                    Err(e) => Found::Invalid(format!("cannot read pipeline file: {e}")),
                };
                found.insert(file, f);
            }
        }
        let inner = self.lock();
        for file in inner.running.keys() {
            found.entry(file.clone()).or_insert(Found::Gone);
        }
        found
    }
}

async fn wait_ended(mut ended: tokio_watch::Receiver<bool>) {
    // An error means the task is gone, which is ended too.
    let _ = ended.wait_for(|e| *e).await;
}

/// Loads the files `weir run` was given, all of them valid or none (at start-up a mistake stops
/// weir with every error; later, a reload rejects only the file at fault).
pub(crate) fn load_initial(
    paths: &[PathBuf],
) -> Result<Vec<(PipelineConfig, String)>, ConfigErrors> {
    let configs = crate::pipeline::load_pipelines(paths)?;
    Ok(configs
        .into_iter()
        .map(|c| {
            let text = std::fs::read_to_string(&c.file).unwrap_or_default();
            (c, text)
        })
        .collect())
}
