//! Opening a pipeline's outputs: each target's sink and the dead-letter queues (the pipeline's,
//! and those of targets that have their own), and keeping them together so a checkpoint can
//! make all of them durable before the source commits.

use super::PipelineError;
use super::config::PipelineConfig;
use super::dead_letters::DeadLetters;
use super::deliver::Outlets;
use super::policy;
use crate::backoff;
use crate::observe::counters::Counters;
use crate::observe::status::Status;
use crate::sink::{Sink, SinkConfig, SinkContext, SinkError};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A pipeline's targets and dead-letter queues, open.
pub(super) struct Outputs {
    /// In the pipeline's order.
    pub targets: Vec<Arc<Outlets>>,
    /// The pipeline's DLQ (source and plugin failures, and targets without their own).
    pub dead: Arc<DeadLetters>,
    /// The targets' own DLQs.
    own_dead: Vec<Arc<DeadLetters>>,
}

impl Outputs {
    /// Opens every target and DLQ, waiting out errors that go away by themselves until `stop`.
    pub(super) async fn open(
        cfg: &PipelineConfig,
        state_dir: &Path,
        counters: &Arc<Counters>,
        status: &Arc<Status>,
        stop: &CancellationToken,
    ) -> Result<Self, PipelineError> {
        let name = &cfg.name;
        let fail = |message: String| PipelineError::Other {
            pipeline: name.clone(),
            message,
        };
        let ctx = |target: &str| SinkContext {
            pipeline: name.clone(),
            target: target.to_owned(),
            state_dir: state_dir.to_owned(),
        };
        // The targets' sinks first, then the DLQs (a sink that cannot open is the likelier
        // mistake, and is said first).
        let mut sinks = Vec::with_capacity(cfg.targets.len());
        for t in &cfg.targets {
            let retry = t.retry.as_ref().unwrap_or(&cfg.retry);
            let sink = open_sink(&t.sink, &ctx(&t.name), &t.stage(), status, retry, stop)
                .await
                .map_err(|e| fail(cfg.error_at_key(&t.at, e)))?;
            sinks.push(sink);
        }
        let dlq_cfg = cfg
            .dlq
            .clone()
            .unwrap_or_else(|| SinkConfig::default_dlq(state_dir));
        let dlq_ctx = ctx("dlq");
        let dlq = open_sink(&dlq_cfg, &dlq_ctx, "dlq", status, &cfg.retry, stop)
            .await
            .map_err(|e| match cfg.dlq {
                Some(_) => fail(cfg.error_at("dlq", e)),
                None => PipelineError::Sink {
                    pipeline: name.clone(),
                    what: "dlq".into(),
                    source: e,
                },
            })?;
        let dead = Arc::new(DeadLetters::new(
            &dlq_ctx,
            dlq,
            counters.clone(),
            cfg.retry.backoff,
            status.clone(),
        ));
        let mut targets = Vec::with_capacity(cfg.targets.len());
        let mut own_dead = Vec::new();
        for (t, sink) in cfg.targets.iter().zip(sinks) {
            let tctx = ctx(&t.name);
            let retry = t.retry.clone().unwrap_or_else(|| cfg.retry.clone());
            let stage = t.stage();
            let target_dead = match &t.dlq {
                None => dead.clone(),
                Some(dlq_cfg) => {
                    let what = format!("{stage} dlq");
                    let dlq = open_sink(dlq_cfg, &tctx, &what, status, &retry, stop)
                        .await
                        .map_err(|e| fail(cfg.error_at_key(&t.at.key("dlq"), e)))?;
                    let d = Arc::new(DeadLetters::new(
                        &tctx,
                        dlq,
                        counters.clone(),
                        retry.backoff,
                        status.clone(),
                    ));
                    own_dead.push(d.clone());
                    d
                }
            };
            targets.push(Arc::new(Outlets::new(
                &tctx,
                &stage,
                sink,
                t.sink.body.clone(),
                target_dead,
                counters.clone(),
                retry,
                status.clone(),
            )));
        }
        Ok(Outputs {
            targets,
            dead,
            own_dead,
        })
    }

    fn all_dead(&self) -> impl Iterator<Item = &Arc<DeadLetters>> {
        std::iter::once(&self.dead).chain(&self.own_dead)
    }

    /// Makes every target's and DLQ's writes durable. On error, says which (`sink`,
    /// `target:NAME`, `dlq`, `dlq fallback`).
    pub(super) async fn sync(&self) -> Result<(), (String, SinkError)> {
        for target in &self.targets {
            target
                .sync()
                .await
                .map_err(|e| (target.stage().to_owned(), e))?;
        }
        for dead in self.all_dead() {
            dead.sync()
                .await
                .map_err(|(what, e)| (what.to_owned(), e))?;
        }
        Ok(())
    }

    /// Logs the summaries of failed events whose interval is over (`all`: every one, at the end).
    pub(super) fn flush_failure_log(&self, all: bool) {
        for dead in self.all_dead() {
            dead.flush_failure_log(all);
        }
    }
}

/// Opens a sink, waiting out errors that go away by themselves (a full disk, a broker not up
/// yet) as `[retry]` paces it, until `stop`; meanwhile the error is the pipeline's `last_error`.
/// A permanent error (a bad path) fails at once.
async fn open_sink(
    cfg: &SinkConfig,
    ctx: &SinkContext,
    what: &str,
    status: &Status,
    retry: &policy::Retry,
    stop: &CancellationToken,
) -> Result<Box<dyn Sink>, SinkError> {
    let mut attempts = 0;
    loop {
        // Opening can itself wait (a Kafka sink waits for its topic): a stop ends that too.
        let opened = tokio::select! {
            opened = cfg.open(ctx) => opened,
            _ = stop.cancelled() => Err(SinkError::retryable(format!("stopped while opening the {what}"))),
        };
        match opened {
            Ok(sink) => return Ok(sink),
            Err(e) if e.retryable && stop.is_cancelled() => return Err(e),
            Err(e) if e.retryable => {
                attempts += 1;
                status.error(what, &format!("cannot open: {}", e.message));
                let delay = retry.backoff.delay(attempts);
                tracing::warn!(pipeline = %ctx.pipeline, what, error = %e, attempts,
                    retry_in_ms = delay.as_millis() as u64, "cannot open; retrying");
                if !backoff::pause(delay, stop).await {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}
