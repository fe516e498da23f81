//! The consumer thread: polls librdkafka, gathers records into batches, hands them to the
//! pipeline, and answers rebalances.
//!
//! It is a thread of its own, not a task, because librdkafka runs rebalance callbacks inside
//! `poll`, and a revocation must block there until the revoked partitions' events are finished
//! and committed: a blocked thread costs nothing, a blocked async worker stalls the pipeline
//! that has to finish them.
//!
//! Back-pressure: when the pipeline does not take the next batch, the thread pauses its
//! partitions and keeps polling (without records), so it stays in the group and answers
//! rebalances however long the pipeline is held up (a sink down, `on_failure = "block"`).

use super::offsets::{Commit, Partition, Shared};
use super::start::{self, LOOKUP_TIMEOUT};
use super::{KafkaSourceConfig, Start, record};
use crate::kafka::Logged;
use crate::source::{Format, SourceEvent};
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the consumer thread asks the pipeline for a checkpoint while a partition's
/// resolved start is not committed (see [`Context::commit_starts`]).
const START_RETRY: Duration = Duration::from_secs(5);

pub(super) struct Context {
    pub logged: Logged,
    pub shared: Arc<Shared>,
    pub start: Start,
    pub revoke_timeout: Duration,
    /// Records read but not handed over yet. Here rather than in the thread's loop so that a
    /// revocation (which runs inside `poll`) can drop those of the revoked partitions.
    pending: Mutex<Vec<SourceEvent>>,
    /// Where the statistics callback reports each partition's lag.
    pub status: Option<Arc<crate::observe::status::Status>>,
    /// The consumer this is the context of (set once it is created), for a commit that a
    /// rebalance callback waits for a bounded time: librdkafka's synchronous commit waits
    /// without a bound, so it runs on a thread of its own, which needs the consumer.
    pub consumer: OnceLock<Weak<BaseConsumer<Context>>>,
}

impl Context {
    pub(super) fn new(logged: Logged, shared: Arc<Shared>, cfg: &KafkaSourceConfig) -> Self {
        Context {
            logged,
            shared,
            start: cfg.start.clone(),
            revoke_timeout: Duration::from_millis(cfg.revoke_timeout_ms),
            pending: Mutex::new(Vec::new()),
            status: None,
            consumer: OnceLock::new(),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<SourceEvent>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pipeline(&self) -> &str {
        &self.logged.pipeline
    }

    /// Partitions given to this process: where each starts (start.rs), the starts weir
    /// resolved committed for the group, then the assignment, so that records flow.
    fn assigned(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let starts = start::resolve(consumer, tpl, &self.start, self.pipeline());
        let parts = partitions(tpl);
        for p in &parts {
            let start = starts.iter().find(|(s, _)| s == p).map(|(_, o)| *o);
            self.shared.assign(p.clone(), start);
        }
        self.commit_starts(&starts);
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        match result {
            Ok(()) => {
                tracing::info!(pipeline = self.pipeline(), partitions = %list(&parts), "kafka partitions assigned")
            }
            Err(e) => {
                tracing::error!(pipeline = self.pipeline(), partitions = %list(&parts), error = %e, "kafka assignment failed")
            }
        }
    }

    /// Commits where newly assigned partitions start, before any of their records is read, so
    /// that the group's position exists from the first moment: a crash before the first
    /// finished event resumes there. Waits up to [`LOOKUP_TIMEOUT`] (a rebalance callback must
    /// not block for long); if the commit fails or is not confirmed by then, each checkpoint
    /// commits it again (the thread asks for one every [`START_RETRY`]) until it lands. Records
    /// flow meanwhile: their own commits, once they finish, replace it.
    fn commit_starts(&self, starts: &[(Partition, u64)]) {
        if starts.is_empty() {
            return;
        }
        let at = starts
            .iter()
            .map(|((t, p), o)| format!("{t}/{p}@{o}"))
            .collect::<Vec<_>>()
            .join(",");
        let commits: Vec<Commit> = starts.iter().map(|(p, o)| (0, p.clone(), *o)).collect();
        let outcome = match commit_list(&commits) {
            Ok(tpl) => self.commit_within(tpl, LOOKUP_TIMEOUT),
            Err(e) => Some(Err(e)),
        };
        match outcome {
            Some(Ok(())) => {
                tracing::info!(pipeline = self.pipeline(), start = %at, "kafka partitions without a committed offset start here; committed for the group")
            }
            Some(Err(e)) => {
                tracing::warn!(pipeline = self.pipeline(), start = %at, error = %e,
                    "cannot commit where kafka partitions start; the next checkpoint commits it again (a crash before then resolves `start` again)")
            }
            None => {
                tracing::warn!(pipeline = self.pipeline(), start = %at,
                    "the commit of where kafka partitions start was not confirmed within {} s; the next checkpoint commits it again (a crash before then resolves `start` again)", LOOKUP_TIMEOUT.as_secs())
            }
        }
    }

    /// A synchronous commit of `tpl`, on a thread of its own, waited for up to `timeout`:
    /// `None` if it has not ended by then (it goes on; when it lands, it is recorded).
    fn commit_within(&self, tpl: TopicPartitionList, timeout: Duration) -> Option<KafkaResult<()>> {
        let consumer = self.consumer.get().and_then(Weak::upgrade)?;
        let shared = self.shared.clone();
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kafka-commit".into())
            .spawn(move || {
                let result = consumer.commit(&tpl, CommitMode::Sync);
                if result.is_ok() {
                    shared.committed(&confirmed(&tpl));
                }
                let _ = done.send(result);
            })
            .ok()?;
        ended.recv_timeout(timeout).ok()
    }

    /// Partitions taken away: drop what was read from them and not handed over, wait for what
    /// was handed over to finish (up to `revoke_timeout_ms`), have the pipeline checkpoint, then
    /// let them go. What did not finish in time is read again by the next owner.
    fn revoked(&self, consumer: &BaseConsumer<Self>, parts: &[Partition]) {
        let streams = self.shared.streams_of(parts);
        self.pending()
            .retain(|e| !streams.contains(&e.position.partition));
        let closing = self.shared.closing.load(Ordering::Acquire);
        // Partitions lost (the session expired) already belong to another member: committing
        // for them would fail, and waiting only delays the new owner.
        if !closing && !consumer.assignment_lost() {
            let deadline = Instant::now() + self.revoke_timeout;
            self.shared.wait_finished(&streams, deadline);
            // What finished by now; the pipeline then syncs its sink and DLQ (a checkpoint that
            // starts after this point covers all of it), and it is committed here, with a
            // synchronous commit: librdkafka holds other commits back until this callback
            // returns, so the pipeline's own (asynchronous) commits could not land in time.
            let finished = self.shared.uncommitted(&streams);
            if !finished.is_empty() && self.shared.wait_synced(deadline) {
                self.commit(consumer, &finished);
            }
        }
        let abandoned = self.shared.revoke(parts);
        if let Some(status) = &self.status {
            status.forget_lag(parts.iter().map(|(t, p)| format!("{t}/{p}")));
        }
        if abandoned > 0 && !closing {
            tracing::warn!(pipeline = self.pipeline(), partitions = %list(parts), abandoned,
                "kafka partitions revoked before all their events finished; the next owner reads the unfinished ones again");
        } else {
            tracing::info!(pipeline = self.pipeline(), partitions = %list(parts), "kafka partitions revoked");
        }
    }
}

impl Context {
    fn commit(&self, consumer: &BaseConsumer<Self>, commits: &[Commit]) {
        if commits.is_empty() {
            return;
        }
        let result = commit_list(commits)
            .and_then(|tpl| consumer.commit(&tpl, CommitMode::Sync).map(|()| tpl));
        match result {
            Ok(tpl) => self.shared.committed(&confirmed(&tpl)),
            Err(e) => {
                tracing::warn!(pipeline = self.pipeline(), error = %e, "kafka commit of revoked partitions failed; the next owner reads their finished events again")
            }
        }
    }
}

/// The offsets to commit as librdkafka's list.
pub(super) fn commit_list(commits: &[Commit]) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for (_, (topic, partition), offset) in commits {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset as i64))?;
    }
    Ok(tpl)
}

/// The offsets of a confirmed commit.
fn confirmed(tpl: &TopicPartitionList) -> Vec<(Partition, u64)> {
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 && e.error().is_ok() => {
                Some(((e.topic().to_owned(), e.partition()), o as u64))
            }
            _ => None,
        })
        .collect()
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.logged.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The pipeline's newest error (`/pipelines`): brokers out of reach show there, not
        // only in the log.
        if let Some(status) = &self.status {
            status.error("source", &format!("kafka: {reason}"));
        }
        self.logged.error(error, reason);
    }

    /// librdkafka's periodic statistics: whether a broker is reachable, and the lag of each
    /// partition this consumer owns.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(status) = &self.status else { return };
        // Connected while some broker is up (librdkafka's own view of its connections).
        status.set_source_connected(statistics.brokers.values().any(|b| b.state == "UP"));
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1: the internal "unassigned" partition; lag -1: not owned or not known yet.
                // librdkafka goes on reporting partitions given away in a rebalance (their lag
                // removed then): only those owned now count.
                if *partition >= 0
                    && p.consumer_lag >= 0
                    && self.shared.stream_of(topic, *partition).is_some()
                {
                    status.set_lag(format!("{topic}/{partition}"), p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    /// The outcome of the pipeline's asynchronous commits (served by `poll`).
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.shared.committed(&confirmed(offsets)),
            Err(e) => tracing::warn!(pipeline = self.pipeline(), error = %e,
                "kafka offset commit failed; the next checkpoint commits again"),
        }
    }

    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assigned(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let parts = partitions(tpl);
                self.revoked(consumer, &parts);
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::error!(pipeline = self.pipeline(), error = %e, "kafka unassignment failed");
                }
            }
            other => {
                // librdkafka asks to drop the assignment on a rebalance error.
                tracing::error!(pipeline = self.pipeline(), error = ?other, "kafka rebalance failed; dropping the assignment");
                let owned = self.shared.owned();
                self.revoked(consumer, &owned);
                let _ = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
            }
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

fn list(parts: &[Partition]) -> String {
    parts
        .iter()
        .map(|(t, p)| format!("{t}/{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The poll loop. Returns when the pipeline stops taking batches (the receiver is closed).
pub(super) fn run(
    consumer: Arc<BaseConsumer<Context>>,
    tx: mpsc::Sender<Vec<SourceEvent>>,
    format: Format,
    batch_size: usize,
    window: Duration,
) {
    let ctx = consumer.context().clone();
    let pipeline = ctx.pipeline().to_owned();
    let mut opened: Option<Instant> = None; // when the pending batch got its first record
    let mut paused = false;
    let mut last_error: Option<(String, Instant)> = None;
    let mut now = crate::event::now_rfc3339();
    let mut now_at = Instant::now();
    let mut times = record::Times::default();
    let mut start_retry = Instant::now();
    while !tx.is_closed() {
        // A start whose commit failed at the assignment: the pipeline's checkpoint commits it.
        if start_retry.elapsed() >= START_RETRY {
            start_retry = Instant::now();
            if ctx.shared.start_uncommitted() {
                ctx.shared.checkpoint.notify_one();
            }
        }
        let due = {
            let pending = ctx.pending();
            !pending.is_empty()
                && (pending.len() >= batch_size || opened.is_some_and(|t| t.elapsed() >= window))
        };
        if due {
            match reserve(&tx, paused) {
                Ok(permit) => {
                    let batch = std::mem::take(&mut *ctx.pending());
                    // Tracked before the pipeline can see them, so that a revocation waits for
                    // them and a finish is never reported for an untracked event.
                    ctx.shared.track(batch.iter().map(|e| e.position));
                    permit.send(batch);
                    opened = None;
                    if paused {
                        paused = !set_paused(&consumer, false, &pipeline);
                    }
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    // Again each time round: a rebalance may have assigned new partitions.
                    paused = set_paused(&consumer, true, &pipeline) || paused;
                }
                Err(mpsc::error::TrySendError::Closed(())) => break,
            }
        }
        let timeout = match opened {
            _ if paused => Duration::from_millis(50),
            None => Duration::from_millis(100),
            Some(t) => window
                .saturating_sub(t.elapsed())
                .max(Duration::from_millis(1)),
        };
        match consumer.poll(timeout) {
            None => {}
            Some(Ok(msg)) => {
                // The reception time, refreshed at most every millisecond: formatting a
                // timestamp per record would cost more than the rest of the record.
                if now_at.elapsed() >= Duration::from_millis(1) {
                    now = crate::event::now_rfc3339();
                    now_at = Instant::now();
                }
                let Some(stream) = ctx.shared.stream_of(msg.topic(), msg.partition()) else {
                    continue; // a straggler of a partition just revoked
                };
                ctx.pending()
                    .push(record::to_event(&msg, stream, format, &now, &mut times));
                opened.get_or_insert_with(Instant::now);
            }
            Some(Err(e)) => {
                // Broker or topic trouble: librdkafka retries by itself; say so now and then.
                let text = e.to_string();
                let repeat = last_error
                    .as_ref()
                    .is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(30));
                if !repeat {
                    tracing::warn!(pipeline = %pipeline, error = %text, "kafka consumer error; retrying");
                    last_error = Some((text, Instant::now()));
                }
            }
        }
    }
    ctx.shared.closing.store(true, Ordering::Release);
}

/// How long the thread waits for the pipeline to take a batch before it pauses its partitions.
/// Pausing is for long stalls only: librdkafka drops what it fetched ahead for paused
/// partitions and fetches it again on resume, so pausing at every brief hold-up (the pipeline
/// is a little slower than the broker, which is normal) would fetch everything several times.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// Room in the channel for one batch: waits up to [`PAUSE_AFTER`] (without polling, which
/// would only fetch more), or not at all when already paused.
fn reserve(
    tx: &mpsc::Sender<Vec<SourceEvent>>,
    paused: bool,
) -> Result<mpsc::Permit<'_, Vec<SourceEvent>>, mpsc::error::TrySendError<()>> {
    let deadline = Instant::now() + PAUSE_AFTER;
    loop {
        match tx.try_reserve() {
            Err(mpsc::error::TrySendError::Full(())) if !paused && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(500));
            }
            other => return other,
        }
    }
}

/// Pauses or resumes every assigned partition. True if it worked.
fn set_paused(consumer: &BaseConsumer<Context>, pause: bool, pipeline: &str) -> bool {
    let result = consumer.assignment().and_then(|a| {
        if pause {
            consumer.pause(&a)
        } else {
            consumer.resume(&a)
        }
    });
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(pipeline, error = %e, pause, "cannot pause or resume kafka partitions");
            false
        }
    }
}
