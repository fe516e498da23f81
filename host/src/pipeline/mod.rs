//! The pipeline runtime: read a batch, run it through the stages, deliver it, dead-letter what
//! failed, and acknowledge every finished event so the source can commit.
//!
//! ```text
//! reader task ──bounded channel──▶ slots ─▶ filter ─▶ sink ─▶ DLQ ─▶ acker.finish
//!                                                 (checkpoint: sink.sync, dlq.sync, acker.checkpoint)
//! ```
//! The bounded channel is the backpressure: a slow sink stops the reader after a few batches.
//! An event is acknowledged only once it is delivered, filtered or written to the DLQ; an event
//! that could be none of these (stopping while its sink is down) stays unacknowledged, so the
//! source reads it again after a restart.

pub mod counters;
mod deliver;
mod filter;
pub mod slot;

use crate::config::PipelineConfig;
use crate::plugin::PluginStage;
use crate::sink::{SinkConfig, SinkContext, SinkError};
use crate::source::{Acker, SourceContext, SourceError};
use counters::{Counters, Snapshot};
use filter::FilterStage;
use slot::{Failure, Fate, Slot};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
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
        what: &'static str,
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
}

impl Pipeline {
    /// `state_root` is the host's state directory; this pipeline keeps its state in
    /// `<state_root>/<name>`.
    pub fn new(cfg: PipelineConfig, state_root: &Path) -> Self {
        let state_dir = state_root.join(&cfg.name);
        Pipeline {
            cfg,
            state_root: state_root.to_owned(),
            state_dir,
            counters: Arc::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Runs until the source ends or `stop` is cancelled, then saves the checkpoint. Returns the
    /// final counts.
    pub async fn run(self, stop: CancellationToken) -> Result<Snapshot, PipelineError> {
        let name = self.cfg.name.clone();
        let fail = |message: String| PipelineError::Other {
            pipeline: name.clone(),
            message,
        };
        let source_err = |source| PipelineError::Source {
            pipeline: name.clone(),
            source,
        };
        let sink_err = |what, source| PipelineError::Sink {
            pipeline: name.clone(),
            what,
            source,
        };

        tokio::fs::create_dir_all(&self.state_dir)
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot create state directory {}: {e}",
                    self.state_dir.display()
                ))
            })?;
        let filter = FilterStage::new(&self.cfg.filters)
            .map_err(|e| fail(format!("invalid filter pattern: {e}")))?;
        // Compiling a plugin is CPU-bound (seconds for JS and Python without a cache): off the
        // async workers. Plugins are watched for hot reload while the pipeline runs.
        let plugin_cfgs = self.cfg.plugins.clone();
        let state_root = self.state_root.clone();
        let pname = name.clone();
        let plugins = tokio::task::spawn_blocking(move || {
            PluginStage::load(&pname, &plugin_cfgs, Some(&state_root), true)
        })
        .await
        .map_err(|e| fail(format!("plugin loading failed: {e}")))?
        .map_err(|e| fail(e.to_string()))?;
        let sctx = SourceContext {
            pipeline: name.clone(),
            state_dir: self.state_dir.clone(),
        };
        let kctx = SinkContext {
            pipeline: name.clone(),
            state_dir: self.state_dir.clone(),
        };
        let (mut source, acker) = self.cfg.source.open(&sctx).await.map_err(source_err)?;
        let sink = self
            .cfg
            .sink
            .open(&kctx)
            .await
            .map_err(|e| sink_err("sink", e))?;
        let dlq_cfg = self
            .cfg
            .dlq
            .clone()
            .unwrap_or_else(|| SinkConfig::default_dlq(&self.state_dir));
        let dlq = dlq_cfg.open(&kctx).await.map_err(|e| sink_err("dlq", e))?;
        tracing::info!(pipeline = %name, source = self.cfg.source.kind(), sink = self.cfg.sink.kind(),
            filters = self.cfg.filters.len(), plugins = self.cfg.plugins.len(), "pipeline started");

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

        let mut run = Run {
            name: name.clone(),
            counters: self.counters.clone(),
            filter,
            plugins,
            delivery: deliver::Delivery::new(
                name.clone(),
                sink,
                self.cfg.sink.body.clone(),
                dlq,
                self.counters.clone(),
            ),
            acker,
            checkpoint_interval: self.cfg.checkpoint_interval,
            last_checkpoint: Instant::now(),
            finished_since_checkpoint: false,
        };
        let processed = run.process(rx, &stop).await;
        let read = reader
            .await
            .map_err(|e| fail(format!("source task failed: {e}")))?;
        // Whatever happened, make what did finish durable.
        let saved = run.checkpoint().await;
        let snapshot = self.counters.snapshot();
        tracing::info!(pipeline = %name, received = snapshot.received, delivered = snapshot.delivered,
            filtered = snapshot.filtered, dead_lettered = snapshot.dead_lettered,
            unfinished = snapshot.in_flight(), "pipeline stopped");
        processed?;
        read.map_err(source_err)?;
        saved?;
        Ok(snapshot)
    }
}

/// The state of a running pipeline's processing loop.
struct Run {
    name: String,
    counters: Arc<Counters>,
    filter: Option<FilterStage>,
    plugins: Option<PluginStage>,
    delivery: deliver::Delivery,
    acker: Box<dyn Acker>,
    checkpoint_interval: std::time::Duration,
    last_checkpoint: Instant,
    finished_since_checkpoint: bool,
}

impl Run {
    async fn process(
        &mut self,
        mut rx: mpsc::Receiver<Vec<crate::source::SourceEvent>>,
        stop: &CancellationToken,
    ) -> Result<(), PipelineError> {
        loop {
            // Checkpoint on time even while the source is idle, so a crash then re-reads little.
            let deadline =
                tokio::time::Instant::from_std(self.last_checkpoint + self.checkpoint_interval);
            let batch = tokio::select! {
                batch = rx.recv() => match batch {
                    Some(b) => b,
                    None => return Ok(()),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.checkpoint_now().await;
                    continue;
                }
            };
            Counters::add(&self.counters.received, batch.len());
            let mut slots: Vec<Slot> = Vec::with_capacity(batch.len());
            for ev in batch {
                self.acker.track(ev.position);
                let fate = match ev.problem {
                    None => Fate::Pending,
                    Some(why) => Fate::Failed(Failure::now("source", "malformed", why, 1, None)),
                };
                slots.push(Slot {
                    position: ev.position,
                    event: ev.envelope,
                    outputs: None,
                    fate,
                });
            }
            if let Some(filter) = &mut self.filter {
                filter.apply(&mut slots);
            }
            if let Some(stage) = self.plugins.take() {
                // Plugin calls are synchronous and CPU-bound: the blocking pool, not this worker.
                let (stage, done) = tokio::task::spawn_blocking(move || {
                    let mut stage = stage;
                    stage.apply(&mut slots);
                    (stage, slots)
                })
                .await
                .map_err(|e| PipelineError::Other {
                    pipeline: self.name.clone(),
                    message: format!("plugin stage failed: {e}"),
                })?;
                self.plugins = Some(stage);
                slots = done;
            }
            self.delivery.deliver(&mut slots, stop).await;
            self.delivery.dead_letter(&mut slots, stop).await;
            self.finish(&slots);
            if slots
                .iter()
                .any(|s| matches!(s.fate, Fate::Pending | Fate::Failed(_)))
            {
                // Stopped while the sink or DLQ was failing: these events stay unacknowledged
                // and are read again after a restart. Delivering later batches now would put
                // their events ahead of these, so nothing more is processed.
                tracing::warn!(pipeline = %self.name, "stopping with undelivered events; they will be read again on restart");
                return Ok(());
            }
            if self.last_checkpoint.elapsed() >= self.checkpoint_interval {
                self.checkpoint_now().await;
            }
        }
    }

    /// A periodic checkpoint. Its failure is not fatal: finished events stay finished and the
    /// next checkpoint covers them; a crash before then re-reads them.
    async fn checkpoint_now(&mut self) {
        if let Err(e) = self.checkpoint().await {
            tracing::error!(pipeline = %self.name, error = %e, "checkpoint failed; will retry");
        }
    }

    /// Acknowledges the events that ended, and counts them. A slot still `Pending` or `Failed`
    /// (its sink or DLQ was down when we stopped) stays unacknowledged, to be read again.
    fn finish(&mut self, slots: &[Slot]) {
        let (mut filtered, mut delivered, mut dead) = (0, 0, 0);
        for slot in slots {
            match slot.fate {
                Fate::Filtered => filtered += 1,
                Fate::Delivered => delivered += 1,
                Fate::DeadLettered => dead += 1,
                Fate::Pending | Fate::Failed(_) => continue,
            }
            self.acker.finish(slot.position);
            self.finished_since_checkpoint = true;
        }
        Counters::add(&self.counters.filtered, filtered);
        Counters::add(&self.counters.delivered, delivered);
        Counters::add(&self.counters.dead_lettered, dead);
    }

    /// Syncs the sink and DLQ, then saves the source's finished prefix (if anything finished
    /// since the last time).
    async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        self.last_checkpoint = Instant::now();
        if !self.finished_since_checkpoint {
            return Ok(());
        }
        self.delivery
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
        Ok(())
    }
}
