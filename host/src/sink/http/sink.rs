//! The open sink and its `write`: each event's request prepared, consecutive ones grouped into
//! requests of up to `batch_size`, then sent in per-key order.
//!
//! Order: a call's entries come from one lane, in lane order. Requests that carry entries of
//! the same key go one after the other, the next only once the previous ended; entries without a
//! key count as one key. Once a request fails, the later requests with any of its keys are not
//! sent in this call (they fail retryable: "not sent"), so a key's entries are never written
//! past one that failed. Requests of different keys go side by side, up to `max_concurrency`
//! for the sink as a whole (exchange.rs).

use super::answer::Outcome;
use super::request::Outbound;
use super::oauth2::Tokens;
use super::request::{Prepared, Requests};
use crate::http_client::{HttpsClient, RateLimit};
use crate::sink::{Outgoing, Sink, SinkError, SinkFailure};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sha2::Digest;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::Semaphore;

pub(super) struct HttpSink {
    pub(super) requests: Requests,
    pub(super) client: HttpsClient,
    pub(super) timeout: Duration,
    pub(super) batch_size: usize,
    /// `max_concurrency`: requests in flight, all lanes together.
    pub(super) slots: Semaphore,
    pub(super) rate: Option<RateLimit>,
    pub(super) tokens: Option<Tokens>,
    pub(super) metrics: Metrics,
}

/// `weir_http_target_requests_total{pipeline, target, outcome}` and
/// `weir_http_target_seconds{pipeline, target}`, registered once.
pub(super) struct Metrics {
    requests: Vec<metrics::Counter>,
    pub(super) seconds: metrics::Histogram,
}

impl Metrics {
    pub(super) fn new(pipeline: &str, target: &str) -> Metrics {
        let requests = Outcome::ALL
            .iter()
            .map(|o| {
                metrics::counter!("weir_http_target_requests_total",
                    "pipeline" => pipeline.to_owned(), "target" => target.to_owned(),
                    "outcome" => o.label())
            })
            .collect();
        let seconds = metrics::histogram!("weir_http_target_seconds",
            "pipeline" => pipeline.to_owned(), "target" => target.to_owned());
        Metrics { requests, seconds }
    }

    pub(super) fn count(&self, outcome: Outcome) {
        if let Some(c) = self.requests.get(outcome as usize) {
            c.increment(1);
        }
    }
}

/// An entry's ordering key: entries without one are one key together.
type Key<'b> = Option<&'b str>;

/// What a write does, in order: a request to send, or an entry that cannot be sent.
enum Unit<'b> {
    Send {
        indexes: Vec<usize>,
        keys: Vec<Key<'b>>,
        out: Outbound,
    },
    Refused {
        index: usize,
        key: Key<'b>,
        error: SinkError,
    },
}

impl<'b> Unit<'b> {
    fn keys(&self) -> &[Key<'b>] {
        match self {
            Unit::Send { keys, .. } => keys,
            Unit::Refused { key, .. } => std::slice::from_ref(key),
        }
    }

    fn indexes(&self) -> Vec<usize> {
        match self {
            Unit::Send { indexes, .. } => indexes.clone(),
            Unit::Refused { index, .. } => vec![*index],
        }
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        let units = self.units(batch);
        let single = units.len() == 1;
        let results = self.run(units, batch.len()).await;
        let mut failures: Vec<(usize, SinkError)> = results
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|e| (i, e)))
            .collect();
        if failures.is_empty() {
            Ok(())
        } else if single && failures.len() == batch.len() {
            Err(SinkFailure::All(failures.swap_remove(0).1))
        } else {
            Err(SinkFailure::Some(failures))
        }
    }

    async fn sync(&self) -> Result<(), SinkError> {
        // A write returns once the API answered every request.
        Ok(())
    }
}

impl HttpSink {
    /// The call's requests in order: one per entry, or with `batch_size` N > 1, consecutive
    /// entries bound for the same URL with the same headers, up to N.
    fn units<'b>(&self, batch: &'b [Outgoing<'_>]) -> Vec<Unit<'b>> {
        let mut units = Vec::new();
        let mut group: Vec<(usize, Key<'b>, Prepared)> = Vec::new();
        for (index, o) in batch.iter().enumerate() {
            let key = o.event.key.as_deref();
            let prepared = self.requests.prepare(o).and_then(|p| {
                if self.batch_size > 1 {
                    let body = Bytes::from(array_element(&p.body)?);
                    Ok(Prepared { body, ..p })
                } else {
                    Ok(p)
                }
            });
            match prepared {
                Err(error) => {
                    self.flush(&mut group, &mut units);
                    units.push(Unit::Refused { index, key, error });
                }
                Ok(p) => {
                    let joins = group.first().is_some_and(|(_, _, first)| {
                        group.len() < self.batch_size
                            && first.url == p.url
                            && first.headers == p.headers
                    });
                    if !joins {
                        self.flush(&mut group, &mut units);
                    }
                    group.push((index, key, p));
                }
            }
        }
        self.flush(&mut group, &mut units);
        units
    }

    /// Makes the entries of `group` one request.
    fn flush<'b>(&self, group: &mut Vec<(usize, Key<'b>, Prepared)>, units: &mut Vec<Unit<'b>>) {
        if group.is_empty() {
            return;
        }
        let entries = std::mem::take(group);
        let mut keys: Vec<Key<'b>> = Vec::new();
        for (_, k, _) in &entries {
            if !keys.contains(k) {
                keys.push(*k);
            }
        }
        let indexes = entries.iter().map(|(i, _, _)| *i).collect();
        // One event: its key. Several: a digest of theirs, the same for the same events.
        let idempotency: Vec<&str> = entries
            .iter()
            .filter_map(|(_, _, p)| p.idempotency_key.as_deref())
            .collect();
        let idempotency = match idempotency.as_slice() {
            [] => None,
            [one] => Some((*one).to_owned()),
            many => Some(hex(&sha2::Sha256::digest(many.join("\n").as_bytes()))),
        };
        let body = if self.batch_size > 1 {
            let mut array = Vec::with_capacity(entries.iter().map(|(_, _, p)| p.body.len() + 1).sum::<usize>() + 2);
            array.push(b'[');
            for (n, (_, _, p)) in entries.iter().enumerate() {
                if n > 0 {
                    array.push(b',');
                }
                // Made an array element in `units`.
                array.extend_from_slice(&p.body);
            }
            array.push(b']');
            Bytes::from(array)
        } else {
            entries[0].2.body.clone()
        };
        let Some((_, _, first)) = entries.into_iter().next() else {
            return;
        };
        let mut headers = first.headers;
        if let (Some(name), Some(key)) = (&self.requests.idempotency_header, idempotency)
            && let Ok(value) = http::HeaderValue::from_str(&key)
        {
            headers.insert(name.clone(), value);
        }
        units.push(Unit::Send {
            indexes,
            keys,
            out: Outbound {
                uri: first.uri,
                url: first.url,
                headers,
                body,
            },
        });
    }

    /// Sends the units in per-key order; one result per entry of the call.
    async fn run(&self, units: Vec<Unit<'_>>, entries: usize) -> Vec<Option<SinkError>> {
        let mut results: Vec<Option<SinkError>> = vec![None; entries];
        let mut pending: Vec<Unit<'_>> = units;
        let mut busy: HashSet<Key<'_>> = HashSet::new();
        let mut failed: HashSet<Key<'_>> = HashSet::new();
        let mut running = FuturesUnordered::new();
        loop {
            // Start every unit none of whose keys is in flight or held by an earlier unit.
            let mut blocked = busy.clone();
            let mut i = 0;
            while i < pending.len() {
                if pending[i].keys().iter().any(|k| blocked.contains(k)) {
                    blocked.extend(pending[i].keys().iter().copied());
                    i += 1;
                    continue;
                }
                let unit = pending.remove(i);
                if let Some(k) = unit.keys().iter().find(|k| failed.contains(*k)) {
                    let error = not_sent(*k);
                    for index in unit.indexes() {
                        results[index] = Some(error.clone());
                    }
                    failed.extend(unit.keys().iter().copied());
                    continue;
                }
                match unit {
                    Unit::Refused { index, key, error } => {
                        results[index] = Some(error);
                        failed.insert(key);
                    }
                    Unit::Send { indexes, keys, out } => {
                        busy.extend(keys.iter().copied());
                        blocked.extend(keys.iter().copied());
                        running.push(async move {
                            let result = self.send(&out).await;
                            (indexes, keys, result)
                        });
                    }
                }
            }
            let Some((indexes, keys, result)) = running.next().await else {
                // Nothing in flight: nothing blocks what is left, and the pass above took it all.
                debug_assert!(pending.is_empty());
                break;
            };
            for k in &keys {
                busy.remove(k);
            }
            if let Err(e) = result {
                for index in indexes {
                    results[index] = Some(e.clone());
                }
                failed.extend(keys);
            }
        }
        results
    }
}

fn not_sent(key: Key<'_>) -> SinkError {
    SinkError::retryable(match key {
        Some(k) => format!("not sent: an earlier event with key {k:?} failed"),
        None => "not sent: an earlier event without a key failed".to_owned(),
    })
}

/// A body as an element of a request's JSON array: as it is if it is JSON, as a JSON string if
/// it is other text; bytes that are not UTF-8 cannot be sent in a JSON array.
fn array_element(body: &[u8]) -> Result<Vec<u8>, SinkError> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Ok(body.to_vec());
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        SinkError::permanent(format!(
            "http: the body is not valid UTF-8 ({e}), and batch_size > 1 sends a JSON array"
        ))
    })?;
    serde_json::to_vec(text).map_err(|e| SinkError::permanent(format!("http: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
