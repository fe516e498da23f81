//! The pipeline runtime: read batches, filter them, route each event to the lane of its key,
//! then to the targets whose rules it matches, and acknowledge every event that ended so the
//! source can commit.
//!
//! ```text
//! reader ─bounded─▶ router: filter, key ─▶ lane 0 ─┐ plugins, ─▶ target A's lane 0 ─▶ sink A
//!                     ▲                 ─▶ lane 1 ─┤ route     ─▶ target B's lane 0 ─▶ sink B
//!                     │                 ─▶ ...    ─┘ (rules)      (failures: its DLQ)
//!                     └──── ended events ◀── lanes (filtered, failed) and targets' lanes
//!      (checkpoint: each written sink and the DLQs synced, acker.checkpoint of the finished prefix)
//! ```
//! A key's events all go to one lane, which is sequential, and from there to one lane of each
//! target, sequential too: a key is never reordered at any target. Lanes end events out of
//! order, so the source commits only the longest finished prefix of positions; an event sent to
//! several targets ends when the last of them has ended it (fanout.rs). The router stops taking
//! batches while `max_in_flight` events are under way; the bounded channel then stops the
//! reader: a slow target slows the source, and memory stays bounded.
//! An event is acknowledged only once it is delivered, filtered, dead-lettered, dropped or
//! released (handed back to a source that can take it, an SQS queue); one
//! that could be none of these (stopping while its sink is down) stays unacknowledged, so the
//! source reads it again after a restart.

pub(crate) mod config;
mod dead_letters;
mod deliver;
mod dlq_fallback;
mod failure_log;
mod fanout;
pub(crate) mod filter;
mod hold;
mod lane;
mod outputs;
pub(crate) mod plugin_stage;
mod plugin_thread;
pub(crate) mod policy;
mod retry_log;
pub(crate) mod route;
mod sink_write;
pub(crate) mod slot;
pub mod target;
mod target_lane;

use crate::observe::counters::{Counters, Snapshot};
use crate::observe::status::Status;
use crate::sink::SinkError;
use crate::source::{Acker, Source, SourceContext, SourceError, SourceEvent};
use crate::template::Template;
pub use config::{PipelineConfig, load_pipeline, load_pipelines, parse_pipeline};
use filter::FilterStage;
use lane::{Finished, Lane};
use outputs::Outputs;
use plugin_stage::PluginSet;
use route::{Router, Rules};
use slot::{Ended, Failure, Fate, Slot};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use target_lane::TargetLane;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Batches read ahead of the one being processed.
const READ_AHEAD_BATCHES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("pipeline {pipeline}: source: {source}")]
    Source {
        pipeline: String,
        source: SourceError,
    },
    #[error("pipeline {pipeline}: {what}: {source}")]
    Sink {
        pipeline: String,
        /// `sink`, `target:NAME`, `dlq`, `dlq fallback`.
        what: String,
        source: SinkError,
    },
    #[error("pipeline {pipeline}: {message}")]
    Other { pipeline: String, message: String },
}

/// One configured pipeline, ready to run.
pub struct Pipeline {
    cfg: PipelineConfig,
    /// The host's state directory (the plugin cache lives in it).
    state_root: PathBuf,
    state_dir: PathBuf,
    counters: Arc<Counters>,
    status: Arc<Status>,
}

impl Pipeline {
    /// `state_root` is the host's state directory; this pipeline keeps its state in
    /// `<state_root>/<name>`.
    pub fn new(cfg: PipelineConfig, state_root: &Path) -> Self {
        let state_dir = state_root.join(&cfg.name);
        Pipeline {
            status: Status::new(&cfg.name),
            cfg,
            state_root: state_root.to_owned(),
            state_dir,
            counters: Arc::default(),
        }
    }

    /// Reports into `status` (the service keeps one per pipeline name across restarts).
    pub fn with_status(mut self, status: Arc<Status>) -> Self {
        self.status = status;
        self
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The DLQ file, if the DLQ is a file (the default is `<state dir>/<name>/dlq.jsonl`).
    pub fn dlq_file(&self) -> Option<PathBuf> {
        match &self.cfg.dlq {
            None => Some(self.state_dir.join("dlq.jsonl")),
            Some(dlq) => dlq.local_file().map(Path::to_path_buf),
        }
    }

    /// Takes the pipeline's state directory for this process: a second weir running the same
    /// pipeline on the same state (or `weir dlq redrive` while it runs) would interleave
    /// checkpoints and DLQ writes. The lock is held while the returned file is open; the kernel
    /// drops it when the process dies, even by SIGKILL.
    pub fn lock_state(&self) -> Result<std::fs::File, PipelineError> {
        let fail = |message: String| PipelineError::Other {
            pipeline: self.cfg.name.clone(),
            message,
        };
        std::fs::create_dir_all(&self.state_dir).map_err(|e| {
            fail(format!(
                "cannot create state directory {}: {e}",
                self.state_dir.display()
            ))
        })?;
        let path = self.state_dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| fail(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(fail(format!(
                "already running: another weir process holds {} (one process per pipeline and state directory)",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(fail(format!("cannot lock {}: {e}", path.display())))
            }
        }
    }

    /// Runs until the source ends or `stop` is cancelled, then saves the checkpoint. Returns the
    /// final counts.
    pub async fn run(self, stop: CancellationToken) -> Result<Snapshot, PipelineError> {
        let run = crate::observe::status::Run {
            file: self.cfg.file.display().to_string(),
            source: self.cfg.source.kind(),
            sink: self.cfg.sink_kinds(),
        };
        self.status.begin(run, self.counters.clone());
        let _lock = self.lock_state()?;
        let sctx = SourceContext {
            pipeline: self.cfg.name.clone(),
            state_dir: self.state_dir.clone(),
            status: Some(self.status.clone()),
            max_in_flight: self.cfg.ordering.max_in_flight,
        };
        let (source, acker) =
            self.cfg
                .source
                .open(&sctx)
                .await
                .map_err(|source| PipelineError::Other {
                    pipeline: self.cfg.name.clone(),
                    message: self.cfg.error_at("source", source),
                })?;
        self.run_with(source, acker, stop).await
    }

    /// Runs the pipeline's stages, sink and DLQ on events from `source` instead of its own
    /// (`weir dlq redrive`). The caller holds [`Pipeline::lock_state`].
    pub async fn run_with(
        self,
        mut source: Box<dyn Source>,
        acker: Box<dyn Acker>,
        stop: CancellationToken,
    ) -> Result<Snapshot, PipelineError> {
        let name = self.cfg.name.clone();
        let fail = |message: String| PipelineError::Other {
            pipeline: name.clone(),
            message,
        };
        let source_err = |source| PipelineError::Source {
            pipeline: name.clone(),
            source,
        };

        let filter = FilterStage::new(&self.cfg.filters)
            .map_err(|e| fail(format!("invalid filter pattern: {e}")))?;
        // Compiling a plugin is CPU-bound (seconds for JS and Python without a cache): off the
        // async workers. Plugins are watched for hot reload while the pipeline runs.
        let plugin_cfgs = self.cfg.plugins.clone();
        let state_root = self.state_root.clone();
        let pname = name.clone();
        let tables = (self.cfg.open_tables()).map_err(|e| fail(self.cfg.error_at("table", e)))?;
        let plugins = tokio::task::spawn_blocking(move || {
            PluginSet::load(
                &pname,
                &plugin_cfgs,
                tables.as_ref(),
                Some(&state_root),
                true,
            )
        })
        .await
        .map_err(|e| fail(format!("plugin loading failed: {e}")))?
        .map_err(|e| fail(self.cfg.plugin_error(&e)))?
        .map(|p| {
            // A refused hot reload is the pipeline's newest error (`/pipelines`, `weir top`).
            // Weak: the status holds the plugin set while it runs.
            let status = Arc::downgrade(&self.status);
            p.with_tap(self.status.tap.clone())
                .on_reload_refused(move |stage, message| {
                    if let Some(status) = status.upgrade() {
                        status.error(stage, message);
                    }
                })
        });
        let rules = Rules::new(&self.cfg.targets).map_err(|(target, e)| {
            fail(format!(
                "target {target}: invalid event pattern in `when`: {e}"
            ))
        })?;
        let rules = Arc::new(rules);
        let outputs = Outputs::open(
            &self.cfg,
            &self.state_dir,
            &self.counters,
            &self.status,
            &stop,
        )
        .await?;
        let ordering = self.cfg.ordering.clone();
        self.status
            .running(plugins.clone().map(|p| Arc::new(p) as _));
        tracing::info!(pipeline = %name, source = self.cfg.source.kind(), sink = %self.cfg.sink_kinds(),
            targets = self.cfg.targets.len(), filters = self.cfg.filters.len(), plugins = self.cfg.plugins.len(), lanes = ordering.lanes,
            "pipeline started");

        let (tx, rx) = mpsc::channel(READ_AHEAD_BATCHES);
        let read_stop = stop.clone();
        let reader = tokio::spawn(async move {
            while let Some(batch) = source.next_batch(&read_stop).await? {
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
            Ok::<(), SourceError>(())
        });

        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut lanes = Vec::with_capacity(ordering.lanes);
        let mut lane_tasks = tokio::task::JoinSet::new();
        for index in 0..ordering.lanes {
            let (lane_tx, lane_rx) = mpsc::unbounded_channel();
            lanes.push(lane_tx);
            // This lane's part of each target: a lane of that target's own, in the same order.
            let mut targets = Vec::with_capacity(outputs.targets.len());
            for (outlets, t) in outputs.targets.iter().zip(&self.cfg.targets) {
                let (tx, rx) = mpsc::unbounded_channel();
                targets.push((tx, outlets.counts_handle()));
                let target_lane = TargetLane {
                    lane: index,
                    target: t.name.as_str().into(),
                    pipeline: name.as_str().into(),
                    rx,
                    outlets: outlets.clone(),
                    done: done_tx.clone(),
                    batch_size: LANE_BATCH,
                };
                lane_tasks.spawn(target_lane.run(stop.clone()));
            }
            let lane = Lane {
                index,
                pipeline: name.as_str().into(),
                rx: lane_rx,
                plugin_set: plugins.clone(),
                retry: self.cfg.retry.clone(),
                counters: self.counters.clone(),
                dead: outputs.dead.clone(),
                targets,
                done: done_tx.clone(),
                batch_size: LANE_BATCH,
                plugin_thread: None,
            };
            lane_tasks.spawn(lane.run(Router::new(rules.clone()), stop.clone()));
        }
        // Only the lanes hold senders now: the channel closes when the last lane ends (a target's
        // lane ends once its lane has, and it has delivered what it was sent).
        drop(done_tx);

        let mut run = Run {
            name: name.clone(),
            counters: self.counters.clone(),
            filter,
            key: ordering.key,
            correlation_id: self.cfg.correlation_id.clone(),
            status: self.status.clone(),
            filter_seconds: metrics::histogram!("weir_stage_seconds", "pipeline" => name.clone(), "stage" => "filter"),
            source_batch: metrics::histogram!("weir_batch_size", "pipeline" => name.clone(), "stage" => "source"),
            lanes,
            max_in_flight: ordering.max_in_flight,
            outputs,
            acker,
            checkpoint_interval: self.cfg.checkpoint_interval,
            last_checkpoint: Instant::now(),
            finished_since_checkpoint: false,
        };
        run.process(rx, done_rx).await;
        while let Some(joined) = lane_tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(pipeline = %name, error = %e, "lane task failed");
            }
        }
        let read = reader
            .await
            .map_err(|e| fail(format!("source task failed: {e}")))?;
        // Whatever happened, make what did finish durable.
        let saved = run.checkpoint().await;
        run.outputs.flush_failure_log(true);
        let snapshot = self.counters.snapshot();
        tracing::info!(pipeline = %name, received = snapshot.received, delivered = snapshot.delivered,
            filtered = snapshot.filtered, dead_lettered = snapshot.dead_lettered, dropped = snapshot.dropped,
            released = snapshot.released, retried = snapshot.retried, dlq_fallback = snapshot.dlq_fallback,
            unfinished = snapshot.in_flight(),
            failed_by_stage = %self.counters.failed_by_stage(), "pipeline stopped");
        if !self.cfg.targets[0].is_shorthand() {
            for (target, t) in self.counters.targets() {
                tracing::info!(pipeline = %name, target = %target, routed = t.routed, delivered = t.delivered,
                    dead_lettered = t.dead_lettered, dropped = t.dropped, released = t.released,
                    retried = t.retried, unfinished = t.in_flight(), "target stopped");
            }
        }
        if snapshot.in_flight() > 0 {
            tracing::warn!(pipeline = %name, unfinished = snapshot.in_flight(),
                "pipeline stopped with events unfinished (neither delivered, filtered nor dead-lettered): their positions were not committed, they are read again when it next starts");
        }
        read.map_err(source_err)?;
        saved?;
        Ok(snapshot)
    }
}

/// Most events a lane takes at once: one plugin call, one sink write.
const LANE_BATCH: usize = 256;

/// The router: the state of a running pipeline between its source and its lanes.
struct Run {
    name: String,
    counters: Arc<Counters>,
    filter: Option<FilterStage>,
    /// `[ordering] key`: overrides the source's key.
    key: Option<Template>,
    /// `[pipeline] correlation_id`: where the event's correlation id is.
    correlation_id: Option<Template>,
    status: Arc<Status>,
    filter_seconds: metrics::Histogram,
    source_batch: metrics::Histogram,
    /// Closed (emptied) once the source is finished, so that lanes drain and end.
    lanes: Vec<mpsc::UnboundedSender<Slot>>,
    max_in_flight: usize,
    outputs: Outputs,
    acker: Box<dyn Acker>,
    checkpoint_interval: std::time::Duration,
    last_checkpoint: Instant,
    finished_since_checkpoint: bool,
}

impl Run {
    /// Routes batches until the source is finished and every lane has ended.
    async fn process(
        &mut self,
        mut rx: mpsc::Receiver<Vec<SourceEvent>>,
        mut done: mpsc::UnboundedReceiver<Finished>,
    ) {
        let mut reading = true;
        let wanted = self.acker.checkpoint_requests().unwrap_or_default();
        loop {
            // Checkpoint on time even while the source is idle, so a crash then re-reads little.
            let deadline =
                tokio::time::Instant::from_std(self.last_checkpoint + self.checkpoint_interval);
            // Events read and not yet ended (the counters keep `received` and the endings).
            let room = self.counters.snapshot().in_flight() < self.max_in_flight as u64;
            tokio::select! {
                biased;
                // A source giving positions away (a Kafka rebalance) is waiting on this one.
                _ = wanted.notified() => {
                    // Even if nothing finished since the last one: the source waits for a
                    // checkpoint that completes after its request.
                    self.finished_since_checkpoint = true;
                    self.checkpoint_now().await;
                }
                // Then ended events: they make room and move the checkpoint on.
                finished = done.recv() => match finished {
                    Some(list) => self.finish(list),
                    None => return, // every lane has ended
                },
                batch = rx.recv(), if reading && room => match batch {
                    Some(batch) => self.dispatch(batch),
                    None => {
                        // The source is finished (or stopped): lanes drain what they have.
                        reading = false;
                        self.lanes.clear();
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.checkpoint_now().await;
                }
            }
            if self.last_checkpoint.elapsed() >= self.checkpoint_interval {
                self.checkpoint_now().await;
            }
        }
    }

    /// Filters a batch and sends each remaining event to the lane of its key.
    fn dispatch(&mut self, batch: Vec<SourceEvent>) {
        Counters::add(&self.counters.received, batch.len());
        self.source_batch.record(batch.len() as f64);
        self.status
            .tap
            .publish("source", batch.iter().map(|e| &e.envelope));
        let mut slots: Vec<Slot> = Vec::with_capacity(batch.len());
        for ev in batch {
            self.acker.track(ev.position);
            let fate = match ev.problem {
                None => Fate::Pending,
                Some(why) => Fate::Failed(Failure::now("source", "malformed", why, 1, None)),
            };
            let mut slot = Slot::new(ev.position, ev.envelope, fate);
            slot.release_on_failure = ev.release_on_failure;
            slots.push(slot);
        }
        if let Some(filter) = &mut self.filter {
            let started = Instant::now();
            filter.apply(&mut slots);
            self.filter_seconds.record(started.elapsed().as_secs_f64());
        }
        if self.status.tap.active() {
            let kept = slots.iter().filter(|s| s.fate.ended().is_none());
            self.status.tap.publish("filter", kept.map(|s| &s.event));
        }
        for mut slot in slots {
            if let Some(how) = slot.fate.ended() {
                self.end(slot.position, how);
                continue;
            }
            identify(
                &mut slot.event,
                self.key.as_ref(),
                self.correlation_id.as_ref(),
                &self.name,
            );
            let lane = lane_of(slot.event.key.as_deref(), self.lanes.len());
            // A send fails only if that lane stopped with an undelivered event: this one then
            // stays unacknowledged behind it and is read again after the restart.
            let _ = self.lanes[lane].send(slot);
        }
    }

    fn finish(&mut self, list: Finished) {
        for (position, how) in list {
            self.end(position, how);
        }
    }

    /// Acknowledges an ended event, and counts it.
    fn end(&mut self, position: crate::event::Position, how: Ended) {
        self.counters.ended(how);
        match how {
            Ended::Released => self.acker.release(position),
            Ended::DeadLettered => self.acker.finish_dead_lettered(position),
            _ => self.acker.finish(position),
        }
        self.finished_since_checkpoint = true;
    }

    /// A periodic checkpoint. Its failure is not fatal: finished events stay finished and the
    /// next checkpoint covers them; a crash before then re-reads them.
    async fn checkpoint_now(&mut self) {
        self.outputs.flush_failure_log(false);
        if let Err(e) = self.checkpoint().await {
            tracing::error!(pipeline = %self.name, error = %e, "checkpoint failed; will retry");
        }
    }

    /// Syncs the sink and DLQ, then saves the source's finished prefix (if anything finished
    /// since the last time).
    async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        self.last_checkpoint = Instant::now();
        if !self.finished_since_checkpoint {
            // Nothing new to save: the saved checkpoint is current.
            self.status.checkpointed();
            return Ok(());
        }
        self.outputs
            .sync()
            .await
            .map_err(|(what, source)| PipelineError::Sink {
                pipeline: self.name.clone(),
                what,
                source,
            })?;
        self.acker
            .checkpoint()
            .await
            .map_err(|source| PipelineError::Source {
                pipeline: self.name.clone(),
                source,
            })?;
        self.finished_since_checkpoint = false;
        self.status.checkpointed();
        Ok(())
    }
}

/// Gives an event that passed the filters its `[ordering] key` and its `[pipeline]
/// correlation_id` (an event in which that finds nothing keeps its id as correlation id).
pub(crate) fn identify(
    event: &mut crate::event::Envelope,
    key: Option<&Template>,
    correlation_id: Option<&Template>,
    pipeline: &str,
) {
    if let Some(key) = key {
        event.key = Some(key.render(event, pipeline));
    }
    if let Some(id) = correlation_id {
        let id = id.render(event, pipeline);
        if !id.is_empty() {
            let id = serde_json::Value::String(id);
            event.meta.insert(crate::event::CORRELATION_ID.into(), id);
        }
    }
}

/// The lane of a key. Events without a key share lane 0, so a keyless stream keeps its order
/// (set `[ordering] key` to spread it).
fn lane_of(key: Option<&str>, lanes: usize) -> usize {
    match key {
        None => 0,
        Some(k) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            k.hash(&mut h);
            (h.finish() % lanes as u64) as usize
        }
    }
}
