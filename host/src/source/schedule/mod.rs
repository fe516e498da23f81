//! The schedule source (`type = "schedule"`): one event per firing of a `rate(...)`,
//! `cron(...)` or `at(...)` expression, as EventBridge Scheduler fires, with a stable id (the
//! schedule's name and the firing's time) so that a downstream can drop the duplicates a crash
//! may bring (at-least-once).
//!
//! Its position is the firing's time (ms since the epoch). The source saves which firings it
//! hands out before it does, the acker through which time they are finished ([`state`]); at
//! start, firings handed out and not finished are emitted again, and the ones missed while weir
//! was stopped are caught up as `catch_up` says.

mod cron;
mod expr;
mod firing;
mod state;
#[cfg(test)]
mod tests;

use super::prefix::PrefixTracker;
use super::{Acker, Format, ReadSettings, Source, SourceContext, SourceError, SourceEvent, SourceKind};
use crate::event::Position;
use crate::template::Template;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use expr::{Expr, Schedule};
use firing::Firing;
use serde::Deserialize;
use schemars::JsonSchema;
use state::StateFile;
use std::collections::VecDeque;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleSourceConfig {
    /// `rate(5 minutes)`, `cron(0 12 * * ? *)`, `cron(0 12 * * 1-5)` or `at(2026-12-24T18:00:00)`.
    pub schedule: String,
    /// The schedule's name in ids and `meta.name` (default: the pipeline's name).
    #[serde(default)]
    pub name: Option<String>,
    /// IANA time zone of cron and at() expressions and of local start/end times.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The event's data: a template over the firing's envelope (default: an EventBridge-like
    /// "Scheduled Event").
    #[serde(default)]
    pub data: Option<String>,
    /// What becomes of firings missed while weir was stopped.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// The most firings one catch-up emits (the newest; older ones are dropped with a warning).
    #[serde(default = "default_max_catch_up")]
    pub max_catch_up: usize,
    /// No firing before this time.
    #[serde(default)]
    pub start: Option<String>,
    /// No firing after this time.
    #[serde(default)]
    pub end: Option<String>,
    /// Firings per batch at most (catch-ups come several at a time).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CatchUp {
    None,
    #[default]
    Last,
    All,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_max_catch_up() -> usize {
    1000
}
fn default_batch_size() -> usize {
    100
}

/// The most firings counted when saying how many a catch-up dropped or skipped (a cron
/// expression's are counted one by one; beyond this the log says "at least").
const COUNT_CAP: u64 = 100_000;

impl ScheduleSourceConfig {
    /// The schedule and the data template, as `validate` checks them.
    fn compile(&self) -> Result<(Schedule, Template), (&'static str, String)> {
        let tz = expr::timezone(&self.timezone).map_err(|e| ("timezone", e))?;
        let expr = Expr::parse(&self.schedule).map_err(|e| ("schedule", e))?;
        let start = self
            .start
            .as_deref()
            .map(|s| expr::instant(s, tz))
            .transpose()
            .map_err(|e| ("start", e))?;
        let end = self
            .end
            .as_deref()
            .map(|s| expr::instant(s, tz))
            .transpose()
            .map_err(|e| ("end", e))?;
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(("end", format!("`{e}` is before start `{s}`")));
        }
        let template = Template::parse(self.data.as_deref().unwrap_or(firing::DEFAULT_DATA))
            .map_err(|e| ("data", format!("invalid template: {e}")))?;
        let schedule = Schedule {
            expr,
            tz,
            start,
            end,
        };
        // Feb 30, or a window without a firing: surely a mistake, and a source that would sit
        // idle for ever.
        let dawn = DateTime::UNIX_EPOCH - chrono::Duration::milliseconds(1);
        if schedule.next_after(dawn).is_none() {
            let window = if start.is_some() || end.is_some() {
                " between start and end"
            } else {
                ""
            };
            return Err(("schedule", format!("`{}` never fires{window}", self.schedule)));
        }
        Ok((schedule, template))
    }
}

#[async_trait]
impl SourceKind for ScheduleSourceConfig {
    const KIND: &'static str = "schedule";

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(("name", "must not be empty".into()));
        }
        self.compile()?;
        if !(1..=100_000).contains(&self.max_catch_up) {
            return Err((
                "max_catch_up",
                format!("must be between 1 and 100000, got {}", self.max_catch_up),
            ));
        }
        super::check_batch_size(self.batch_size)
    }

    fn read_settings(&self) -> ReadSettings {
        // The data is the rendered template: JSON when it is JSON (`weir dry-run` reads sample
        // events as any source's).
        ReadSettings::unlimited(Format::Auto, self.batch_size)
    }

    async fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<(Box<dyn Source>, Box<dyn Acker>), SourceError> {
        open(self, ctx)
    }
}

/// An opened source: its reader and its acker.
type Opened = (Box<dyn Source>, Box<dyn Acker>);

fn open(cfg: &ScheduleSourceConfig, ctx: &SourceContext) -> Result<Opened, SourceError> {
    let (schedule, template) = cfg
        .compile()
        .map_err(|(key, e)| SourceError::Config(format!("source.{key}: {e}")))?;
    let name = cfg.name.clone().unwrap_or_else(|| ctx.pipeline.clone());
    let file = StateFile::new(&ctx.state_dir);
    let saved = file.load().map_err(SourceError::Other)?;
    let now = Utc::now();
    let pipeline = ctx.pipeline.clone();
    let mut queue = VecDeque::new();
    let cannot_save = |e| {
        SourceError::io(
            format!("cannot save schedule state {}", file.path().display()),
            e,
        )
    };
    let cursor = match saved {
        None => {
            // A fresh pipeline starts from now; a one-time at() already past fires at once,
            // as a catch-up, unless catch_up = "none".
            if let Expr::At(_) = schedule.expr
                && cfg.catch_up != CatchUp::None
                && let Some(at) = schedule.last_at_or_before(now)
            {
                queue.push_back((at, true));
                tracing::info!(pipeline, at = %at, "one-time schedule was due before this pipeline's first start: firing it now");
            }
            file.begin(now).map_err(cannot_save)?;
            now
        }
        Some(saved) => {
            // Emitted and not finished before weir stopped: again, whatever catch_up says.
            if !saved.pending.is_empty() {
                tracing::info!(pipeline, firings = saved.pending.len(), after = %saved.done,
                    "emitting again the firings that had not finished when weir stopped");
            }
            queue.extend(saved.pending.iter().map(|t| (*t, false)));
            let from = saved.emitted.max(saved.done);
            catch_up(cfg, &schedule, from, now, &pipeline, &mut queue);
            now.max(from)
        }
    };
    let source = ScheduleSource {
        firing: Firing {
            name,
            pipeline: pipeline.clone(),
            expression: cfg.schedule.clone(),
            timezone: cfg.timezone.clone(),
            template,
        },
        schedule,
        batch_size: cfg.batch_size,
        max_behind: cfg.max_catch_up,
        queue,
        cursor,
        file: file.clone(),
        idle_logged: false,
        next_gauge: metrics::gauge!("weir_schedule_next_firing_seconds", "pipeline" => pipeline.clone()),
    };
    let acker = ScheduleAcker {
        tracker: PrefixTracker::default(),
        file,
        status: ctx.status.clone(),
    };
    Ok((Box::new(source), Box::new(acker)))
}

/// Queues the firings missed in `(from, now]` as `catch_up` says, `max_catch_up` at most.
fn catch_up(
    cfg: &ScheduleSourceConfig,
    schedule: &Schedule,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    pipeline: &str,
    queue: &mut VecDeque<(DateTime<Utc>, bool)>,
) {
    let missed = match cfg.catch_up {
        CatchUp::None => {
            let n = schedule.count_between(from, now, COUNT_CAP);
            if n > 0 {
                tracing::info!(pipeline, missed = n, since = %from, "catch_up = \"none\": skipping the firings missed while weir was stopped");
            }
            return;
        }
        CatchUp::Last => schedule.latest_between(from, now, 1, COUNT_CAP),
        CatchUp::All => schedule.latest_between(from, now, cfg.max_catch_up, COUNT_CAP),
    };
    let (firings, older) = missed;
    if firings.is_empty() {
        return;
    }
    if cfg.catch_up == CatchUp::All && older > 0 {
        let more = if older >= COUNT_CAP { "at least " } else { "" };
        tracing::warn!(pipeline, dropped = older, kept = firings.len(),
            "catch-up: {more}{older} missed firings are older than the newest {} (max_catch_up) and are dropped", firings.len());
    } else {
        tracing::info!(pipeline, firings = firings.len(), skipped = older, since = %from,
            "catching up the firings missed while weir was stopped");
    }
    metrics::counter!("weir_schedule_catch_up_total", "pipeline" => pipeline.to_owned())
        .increment(firings.len() as u64);
    queue.extend(firings.into_iter().map(|t| (t, true)));
}

struct ScheduleSource {
    firing: Firing,
    schedule: Schedule,
    batch_size: usize,
    /// The most firings emitted at once when weir finds itself behind (a clock jump, a pause).
    max_behind: usize,
    /// Firings due now (again, caught up, or late), oldest first, with whether they catch up.
    queue: VecDeque<(DateTime<Utc>, bool)>,
    /// Every firing up to here is queued or emitted (or skipped): the next is after it.
    cursor: DateTime<Utc>,
    file: StateFile,
    idle_logged: bool,
    next_gauge: metrics::Gauge,
}

/// The longest one sleep lasts: the wall clock is looked at again at least this often, so a
/// clock set forward does not make a firing late by the jump.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(5);

#[async_trait]
impl Source for ScheduleSource {
    async fn next_batch(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        loop {
            if stop.is_cancelled() {
                return Ok(None);
            }
            if !self.queue.is_empty() {
                return self.emit().map(Some);
            }
            let Some(next) = self.schedule.next_after(self.cursor) else {
                // A one-time schedule that fired, or past its end: nothing more, but the
                // pipeline stays up (a service does not end because one schedule did).
                if !self.idle_logged {
                    self.idle_logged = true;
                    self.next_gauge.set(f64::NAN);
                    tracing::info!(pipeline = %self.firing.pipeline, "schedule has no more firings");
                }
                stop.cancelled().await;
                return Ok(None);
            };
            self.next_gauge.set(next.timestamp() as f64);
            let now = Utc::now();
            if next <= now {
                // Behind (a pause, a clock set forward, a pipeline that held the source back):
                // every firing due is emitted, the newest `max_catch_up` at most.
                let (due, older) = self.schedule.latest_between(self.cursor, now, self.max_behind, COUNT_CAP);
                if older > 0 {
                    tracing::warn!(pipeline = %self.firing.pipeline, dropped = older,
                        "the schedule fell behind by more than max_catch_up firings: dropping the {older} oldest");
                }
                self.queue.extend(due.into_iter().map(|t| (t, false)));
                self.cursor = now;
                continue;
            }
            let wait = (next - now).to_std().unwrap_or_default().min(MAX_SLEEP);
            tokio::select! {
                _ = stop.cancelled() => return Ok(None),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

impl ScheduleSource {
    /// Hands out up to `batch_size` queued firings, after saving that they were emitted.
    fn emit(&mut self) -> Result<Vec<SourceEvent>, SourceError> {
        let n = self.queue.len().min(self.batch_size);
        let batch: Vec<_> = self.queue.drain(..n).collect();
        let Some(&(last, _)) = batch.last() else {
            return Ok(Vec::new());
        };
        let times: Vec<_> = batch.iter().map(|(t, _)| *t).collect();
        let file = &self.file;
        tokio::task::block_in_place(|| file.emitted(&times)).map_err(|e| {
            SourceError::io(
                format!("cannot save schedule state {}", file.path().display()),
                e,
            )
        })?;
        self.cursor = self.cursor.max(last);
        let fired_at = Utc::now();
        Ok(batch
            .into_iter()
            .map(|(t, catch_up)| self.firing.event(t, fired_at, catch_up))
            .collect())
    }
}

struct ScheduleAcker {
    tracker: PrefixTracker,
    file: StateFile,
    status: Option<std::sync::Arc<crate::observe::status::Status>>,
}

#[async_trait]
impl Acker for ScheduleAcker {
    fn track(&mut self, position: Position) {
        self.tracker.track(position);
    }

    fn finish(&mut self, position: Position) {
        self.tracker.finish(position);
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        let Some(done) = self.tracker.committed() else {
            return Ok(());
        };
        let Some(done) = DateTime::from_timestamp_millis(done.offset as i64) else {
            return Ok(());
        };
        let file = &self.file;
        tokio::task::block_in_place(|| file.finished(done)).map_err(|e| {
            let message = format!("cannot save schedule state {}: {e}", file.path().display());
            if let Some(s) = &self.status {
                s.error("source", &message);
            }
            SourceError::io(
                format!("cannot save schedule state {}", file.path().display()),
                e,
            )
        })
    }
}
