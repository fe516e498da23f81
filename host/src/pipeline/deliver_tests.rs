//! Unit tests of delivery (deliver.rs), with a stand-in sink that fails the events it is told
//! to: retries, then the DLQ; order within a key; partial failures.

use super::*;
use crate::event::{Envelope, Payload, Position};
use crate::sink::{Outgoing, SinkFailure};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// How the stand-in treats one event id.
#[derive(Clone, Copy)]
enum Fault {
    /// Fails retryably this many times, then succeeds.
    Times(u32),
    /// Fails retryably every time.
    Always,
    /// Refuses it for good.
    Refuse,
}

/// A sink that records what it wrote and fails the events `faults` names.
#[derive(Default)]
struct Stand {
    faults: Mutex<HashMap<String, Fault>>,
    /// An entry also fails when an earlier entry of its key failed in the same call, as in a
    /// Kafka partition or an SQS FIFO group (the sink's part of keeping a key's order).
    keyed: bool,
    /// Each call's event ids, in the order they came.
    calls: Mutex<Vec<Vec<String>>>,
    /// What was written: (event id, body).
    written: Mutex<Vec<(String, String)>>,
    /// Cancelled once this many calls were made (to end a delivery that would never end).
    stop_after: Option<(usize, CancellationToken)>,
}

impl Stand {
    fn failing(faults: &[(&str, Fault)]) -> Self {
        let faults = faults.iter().map(|(id, f)| (id.to_string(), *f)).collect();
        Stand {
            faults: Mutex::new(faults),
            ..Stand::default()
        }
    }

    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }

    fn written(&self) -> Vec<(String, String)> {
        self.written.lock().unwrap().clone()
    }

    fn written_ids(&self) -> Vec<String> {
        self.written().into_iter().map(|(id, _)| id).collect()
    }
}

#[async_trait]
impl Sink for Stand {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        let mut faults = self.faults.lock().unwrap();
        let mut failures = Vec::new();
        let mut failed_keys: Vec<&str> = Vec::new();
        for (i, o) in batch.iter().enumerate() {
            let id = &o.event.id;
            let key = o.event.key.as_deref().unwrap_or("");
            let error = match faults.get_mut(id) {
                Some(Fault::Times(0)) | None => None,
                Some(Fault::Times(n)) => {
                    *n -= 1;
                    Some(SinkError::retryable(format!("{id} not now")))
                }
                Some(Fault::Always) => Some(SinkError::retryable(format!("{id} never"))),
                Some(Fault::Refuse) => Some(SinkError::permanent(format!("{id} refused"))),
            };
            let error = error.or_else(|| {
                (self.keyed && failed_keys.contains(&key))
                    .then(|| SinkError::retryable(format!("{id} after a failed one")))
            });
            match error {
                Some(e) => {
                    failed_keys.push(key);
                    failures.push((i, e));
                }
                None => {
                    let body = String::from_utf8_lossy(o.body.or_null()).into_owned();
                    self.written.lock().unwrap().push((id.clone(), body));
                }
            }
        }
        let ids = batch.iter().map(|o| o.event.id.clone()).collect();
        let mut calls = self.calls.lock().unwrap();
        calls.push(ids);
        if let Some((n, stop)) = &self.stop_after
            && calls.len() >= *n
        {
            stop.cancel();
        }
        match failures.len() {
            0 => Ok(()),
            n if n == batch.len() => Err(SinkFailure::All(failures.swap_remove(0).1)),
            _ => Err(SinkFailure::Some(failures)),
        }
    }

    async fn sync(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Delivery to `sink` and `dlq` under `retry` (the `[retry]` table's lines), in a state
/// directory of its own.
fn outlets(
    sink: Arc<Stand>,
    dlq: Arc<Stand>,
    retry: &str,
) -> (Outlets, Arc<Counters>, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("state dir");
    let text = format!(
        "[pipeline]\nname = \"p\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [sink]\ntype = \"stdout\"\n[retry]\n{retry}\n"
    );
    let cfg = crate::pipeline::config::parse_pipeline(std::path::Path::new("p.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = SinkContext {
        pipeline: "p".into(),
        target: "sink".into(),
        state_dir: state.path().to_owned(),
    };
    let counters = Arc::new(Counters::default());
    let dead = Arc::new(DeadLetters::new(
        &ctx,
        Box::new(Handle(dlq)),
        counters.clone(),
        cfg.retry.backoff,
        Status::new("p"),
    ));
    let outlets = Outlets::new(
        &ctx,
        "sink",
        Box::new(Handle(sink)),
        Body::default(),
        dead,
        counters.clone(),
        cfg.retry,
        Status::new("p"),
    );
    (outlets, counters, state)
}

/// A sink the test keeps a handle on while Outlets owns it.
struct Handle(Arc<Stand>);

#[async_trait]
impl Sink for Handle {
    async fn write(&self, batch: &[Outgoing<'_>]) -> Result<(), SinkFailure> {
        self.0.write(batch).await
    }
    async fn sync(&self) -> Result<(), SinkError> {
        self.0.sync().await
    }
}

/// Pending slots of events `ids` (id `eN` is line N), keyed as `keys` says (none if shorter).
fn slots(ids: &[&str], keys: &[&str]) -> Vec<Slot> {
    ids.iter()
        .enumerate()
        .map(|(n, id)| {
            let event = Envelope {
                id: id.to_string(),
                source: "file",
                key: keys.get(n).map(|k| k.to_string()),
                time: "2026-12-06T10:00:00.000Z".into(),
                received_at: "2026-12-06T10:00:00.000Z".into(),
                data: Payload::Text(format!("data of {id}")),
                meta: serde_json::Map::new(),
            };
            let position = Position {
                partition: 0,
                offset: n as u64 + 1,
                ordinal: n as u64,
            };
            Slot::new(position, event, Fate::Pending)
        })
        .collect()
}

/// How each slot ended, as a short word, with the failure's kind and attempts.
fn fates(slots: &[Slot]) -> Vec<String> {
    slots
        .iter()
        .map(|s| match &s.fate {
            Fate::Pending => "pending".to_owned(),
            Fate::Filtered => "filtered".to_owned(),
            Fate::Delivered => "delivered".to_owned(),
            Fate::Failed(f) => format!("failed {} {} x{}", f.stage, f.kind, f.attempts),
            Fate::DeadLettered => "dead-lettered".to_owned(),
            Fate::Dropped => "dropped".to_owned(),
            Fate::Released => "released".to_owned(),
        })
        .collect()
}

const QUICK: &str = "backoff_ms = [1, 1]";

#[tokio::test]
async fn a_failed_write_is_retried_for_the_failed_entries_only() {
    let sink = Arc::new(Stand::failing(&[("e2", Fault::Times(2))]));
    let dlq = Arc::new(Stand::default());
    let (outlets, counters, _state) = outlets(sink.clone(), dlq.clone(), QUICK);
    let mut slots = slots(&["e1", "e2", "e3"], &[]);
    outlets.deliver(&mut slots, &CancellationToken::new()).await;
    assert_eq!(fates(&slots), ["delivered", "delivered", "delivered"]);
    assert_eq!(
        sink.calls(),
        [vec!["e1", "e2", "e3"], vec!["e2"], vec!["e2"]]
    );
    assert_eq!(sink.written_ids(), ["e1", "e3", "e2"]);
    assert_eq!(sink.written()[0].1, "data of e1", "the body as encoded");
    assert_eq!(counters.snapshot().retried, 2);
    assert!(dlq.calls().is_empty());
}

#[tokio::test]
async fn retries_run_out_then_the_event_is_dead_lettered_with_why() {
    let sink = Arc::new(Stand::failing(&[("e2", Fault::Always)]));
    let dlq = Arc::new(Stand::default());
    let retry = format!("{QUICK}\nmax_attempts = 3");
    let (outlets, _counters, _state) = outlets(sink.clone(), dlq.clone(), &retry);
    let mut slots = slots(&["e1", "e2"], &[]);
    let stop = CancellationToken::new();
    outlets.deliver(&mut slots, &stop).await;
    assert_eq!(fates(&slots), ["delivered", "failed sink exhausted x3"]);
    assert_eq!(sink.calls().len(), 3);
    outlets.dead_letter(&mut slots, &stop).await;
    assert_eq!(fates(&slots), ["delivered", "dead-lettered"]);
    let records = dlq.written();
    assert_eq!(records.len(), 1);
    let record: serde_json::Value = serde_json::from_str(&records[0].1).expect("JSON");
    assert_eq!(record["event"]["id"], "e2");
    assert_eq!(record["event"]["data"], "data of e2");
    assert_eq!(record["error"]["stage"], "sink");
    assert_eq!(record["error"]["kind"], "exhausted");
    assert_eq!(record["error"]["attempts"], 3);
    assert_eq!(
        record["error"]["message"],
        "gave up after 3 attempts: e2 never"
    );
    assert_eq!(record["pipeline"], "p");
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let sink = Arc::new(Stand::failing(&[("e1", Fault::Refuse)]));
    let dlq = Arc::new(Stand::default());
    let (outlets, counters, _state) = outlets(sink.clone(), dlq.clone(), QUICK);
    let mut slots = slots(&["e1", "e2"], &[]);
    outlets.deliver(&mut slots, &CancellationToken::new()).await;
    assert_eq!(fates(&slots), ["failed sink rejected x1", "delivered"]);
    assert_eq!(sink.calls().len(), 1);
    assert_eq!(counters.snapshot().retried, 0);
}

#[tokio::test]
async fn a_keys_events_reach_the_sink_in_order_through_retries() {
    // e1 fails once; the sink fails e2 and e4 with it (same key, later in the call), as a Kafka
    // partition would, and writes e3 (another key). The retry resends e1, e2, e4 in order.
    let sink = Arc::new(Stand {
        keyed: true,
        ..Stand::failing(&[("e1", Fault::Times(1))])
    });
    let dlq = Arc::new(Stand::default());
    let (outlets, _counters, _state) = outlets(sink.clone(), dlq, QUICK);
    let mut slots = slots(&["e1", "e2", "e3", "e4"], &["a", "a", "b", "a"]);
    outlets.deliver(&mut slots, &CancellationToken::new()).await;
    assert_eq!(fates(&slots), ["delivered"; 4]);
    assert_eq!(sink.calls()[1], ["e1", "e2", "e4"]);
    assert_eq!(sink.written_ids(), ["e3", "e1", "e2", "e4"]);
}

#[tokio::test]
async fn a_split_event_fails_whole_and_its_dlq_record_keeps_the_original() {
    let sink = Arc::new(Stand::failing(&[("e1#1", Fault::Refuse)]));
    let dlq = Arc::new(Stand::default());
    let (outlets, _counters, _state) = outlets(sink.clone(), dlq.clone(), QUICK);
    let mut slots = slots(&["e1"], &[]);
    let part = |n: usize| Envelope {
        id: format!("e1#{n}"),
        data: Payload::Text(format!("part {n}")),
        ..slots[0].event.clone()
    };
    slots[0].outputs = Some(vec![part(0), part(1)]);
    let stop = CancellationToken::new();
    outlets.deliver(&mut slots, &stop).await;
    assert_eq!(fates(&slots), ["failed sink rejected x1"]);
    assert_eq!(sink.written_ids(), ["e1#0"], "the other part was written");
    outlets.dead_letter(&mut slots, &stop).await;
    let record: serde_json::Value = serde_json::from_str(&dlq.written()[0].1).expect("JSON");
    assert_eq!(record["event"]["id"], "e1");
    assert_eq!(record["event"]["data"], "data of e1");
    assert_eq!(record["error"]["message"], "e1#1 refused");
}

#[tokio::test]
async fn an_event_a_plugin_changed_in_place_is_delivered_changed_and_dead_lettered_as_it_came() {
    let sink = Arc::new(Stand::failing(&[("e2", Fault::Refuse)]));
    let dlq = Arc::new(Stand::default());
    let (outlets, _counters, _state) = outlets(sink.clone(), dlq.clone(), QUICK);
    let mut slots = slots(&["e1", "e2"], &["a", "b"]);
    for slot in &mut slots {
        let data = format!("enriched {}", slot.event.id);
        slot.change_event(crate::pipeline::slot::Change {
            data: Some(Payload::Text(data)),
            key: Some("rekeyed".into()),
            ..Default::default()
        });
    }
    let stop = CancellationToken::new();
    outlets.deliver(&mut slots, &stop).await;
    assert_eq!(fates(&slots), ["delivered", "failed sink rejected x1"]);
    let written = sink.written();
    assert!(written[0].1.contains("enriched e1"), "{written:?}");
    outlets.dead_letter(&mut slots, &stop).await;
    let record: serde_json::Value = serde_json::from_str(&dlq.written()[0].1).expect("JSON");
    assert_eq!(record["event"]["id"], "e2");
    assert_eq!(record["event"]["data"], "data of e2", "the source's data");
    assert_eq!(record["event"]["key"], "b", "the source's key");
}

#[tokio::test]
async fn a_failing_dlq_is_retried_until_it_takes_the_record() {
    let sink = Arc::new(Stand::failing(&[("e1", Fault::Refuse)]));
    let dlq = Arc::new(Stand::failing(&[("e1", Fault::Times(2))]));
    let (outlets, _counters, _state) = outlets(sink, dlq.clone(), QUICK);
    let mut slots = slots(&["e1"], &[]);
    let stop = CancellationToken::new();
    outlets.deliver(&mut slots, &stop).await;
    outlets.dead_letter(&mut slots, &stop).await;
    assert_eq!(fates(&slots), ["dead-lettered"]);
    assert_eq!(dlq.calls().len(), 3);
    assert_eq!(dlq.written().len(), 1);
}

// The fallback file is a file sink, which writes in `block_in_place`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_dlq_refuses_goes_to_the_fallback_file() {
    let sink = Arc::new(Stand::failing(&[("e1", Fault::Refuse)]));
    let dlq = Arc::new(Stand::failing(&[("e1", Fault::Refuse)]));
    let (outlets, counters, state) = outlets(sink, dlq.clone(), QUICK);
    let mut slots = slots(&["e1"], &[]);
    let stop = CancellationToken::new();
    outlets.deliver(&mut slots, &stop).await;
    outlets.dead_letter(&mut slots, &stop).await;
    assert_eq!(fates(&slots), ["dead-lettered"]);
    assert!(dlq.written().is_empty());
    assert_eq!(counters.snapshot().dlq_fallback, 1);
    let file = state.path().join(crate::pipeline::dlq_fallback::FILE);
    let text = std::fs::read_to_string(&file).expect("fallback file");
    let record: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a record")).expect("JSON");
    assert_eq!(record["event"]["id"], "e1");
    assert_eq!(record["error"]["kind"], "rejected");
}

#[tokio::test]
async fn on_failure_drop_counts_and_drops() {
    let sink = Arc::new(Stand::failing(&[("e1", Fault::Refuse)]));
    let dlq = Arc::new(Stand::default());
    let retry = format!("{QUICK}\non_failure = \"drop\"");
    let (outlets, counters, _state) = outlets(sink, dlq.clone(), &retry);
    let mut slots = slots(&["e1", "e2"], &[]);
    let stop = CancellationToken::new();
    outlets.deliver(&mut slots, &stop).await;
    outlets.dead_letter(&mut slots, &stop).await;
    assert_eq!(fates(&slots), ["dropped", "delivered"]);
    assert!(dlq.calls().is_empty());
    assert_eq!(counters.failed_stages(), [("sink".to_owned(), 1)]);
}

#[tokio::test]
async fn on_failure_block_retries_even_a_refusal_until_stopped() {
    let stop = CancellationToken::new();
    let sink = Arc::new(Stand {
        stop_after: Some((4, stop.clone())),
        ..Stand::failing(&[("e1", Fault::Refuse)])
    });
    let dlq = Arc::new(Stand::default());
    let retry = format!("{QUICK}\non_failure = \"block\"\nmax_attempts = 2");
    let (outlets, _counters, _state) = outlets(sink.clone(), dlq, &retry);
    let mut slots = slots(&["e1", "e2"], &[]);
    outlets.deliver(&mut slots, &stop).await;
    assert_eq!(
        fates(&slots),
        ["pending", "delivered"],
        "left for the next run"
    );
    assert!(sink.calls().len() >= 4);
    assert!(sink.calls()[1..].iter().all(|c| c == &["e1"]));
}

#[tokio::test]
async fn a_failed_event_handed_back_to_its_source_takes_its_keys_later_events_along() {
    // SQS: a failure goes back to the queue, and with it the key's later events of the same
    // receive (which a FIFO queue fails in the same call), so that they come again in order
    // rather than being retried after it; other keys go on.
    let sink = Arc::new(Stand {
        keyed: true,
        ..Stand::failing(&[("e1", Fault::Refuse)])
    });
    let dlq = Arc::new(Stand::default());
    let (outlets, _counters, _state) = outlets(sink.clone(), dlq.clone(), QUICK);
    let mut slots = slots(&["e1", "e2", "e3"], &["g", "h", "g"]);
    for s in &mut slots {
        s.release_on_failure = true;
    }
    let stop = CancellationToken::new();
    outlets.deliver(&mut slots, &stop).await;
    outlets.dead_letter(&mut slots, &stop).await;
    assert_eq!(fates(&slots), ["released", "delivered", "released"]);
    assert_eq!(sink.calls().len(), 1, "e3 is not retried");
    assert!(dlq.calls().is_empty());
}
