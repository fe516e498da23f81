//! The messages this process holds: received and not yet deleted or handed back. Their
//! visibility is extended before it runs out, so that a slow plugin or sink does not let another
//! consumer receive them again; at the next checkpoint, finished ones are deleted and released
//! ones made visible again.
//!
//! Each message gets a sequence number when it arrives (its position's offset): the pipeline
//! reports finished and released events by it.
//!
//! A message received again while this process still holds it (its visibility ran out before an
//! extension reached SQS, on a stalled network or a starved machine) is the same message: the
//! held copy takes the new receipt handle and the new copy is not delivered, so one process never
//! writes one message twice.

use crate::sqs::AwsError;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput;
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why some finished messages were not deleted.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} of {finished} finished messages not deleted (tried again at the next checkpoint): {}",
    .failures.len(),
    .failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub(super) struct NotDeleted {
    /// The messages there were to delete.
    finished: usize,
    failures: Vec<CallError>,
}

/// Why one batch call, or one entry of it, failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("sqs call task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// SQS refused this entry.
    #[error("{code}: {message}")]
    Entry { code: String, message: String },
}

/// Entries per batch call (an SQS limit).
const BATCH: usize = 10;
/// Batch calls under way at once when deleting or extending many messages.
const CONCURRENT_CALLS: usize = 8;

pub(super) struct InFlight {
    client: Client,
    queue_url: String,
    pipeline: String,
    /// The visibility timeout that receives ask for and extensions renew.
    visibility: Duration,
    messages: Mutex<Table>,
    next_seq: AtomicU64,
    next_receive: AtomicU32,
}

/// The messages held, by sequence number and by message id.
#[derive(Default)]
struct Table {
    entries: HashMap<u64, Entry>,
    /// The sequence number of each held message id: a message that comes again while held is
    /// recognised by it.
    by_id: HashMap<String, u64>,
}

impl Table {
    fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        if self.by_id.get(&e.message_id) == Some(&seq) {
            self.by_id.remove(&e.message_id);
        }
        Some(e)
    }
}

struct Entry {
    /// The latest receipt handle: SQS deletes a message received twice only with the latest.
    receipt: String,
    message_id: String,
    /// When the message becomes visible again unless extended (counted from before the call
    /// that set it, so never later than SQS's own clock).
    visible_until: Instant,
    /// Finished: to delete at the next checkpoint (and kept invisible until then).
    finished: bool,
    /// Failed and handed back: to make visible again at the next checkpoint.
    released: bool,
    /// Its visibility could not be extended (it ran out first): it may be received again.
    lost: bool,
}

impl InFlight {
    pub(super) fn new(client: Client, queue_url: &str, pipeline: &str, visibility: Duration) -> Self {
        InFlight {
            client,
            queue_url: queue_url.to_owned(),
            pipeline: pipeline.to_owned(),
            visibility,
            messages: Mutex::new(Table::default()),
            next_seq: AtomicU64::new(1),
            next_receive: AtomicU32::new(1),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A number for one receive call: its messages' positions' partition (see
    /// `pipeline::hold`).
    pub(super) fn receive_id(&self) -> u32 {
        self.next_receive.fetch_add(1, Relaxed)
    }

    /// Registers a received message; `asked_at` is when its receive call was sent. Returns its
    /// sequence number, or `None` for a message this process already holds, unreleased: the
    /// held copy takes the new receipt and visibility, and the new copy is not to be delivered.
    /// (moto also hands one message to two receives under way at once.) A released message
    /// that comes back before it was handed back is a new delivery of it.
    pub(super) fn add(&self, receipt: String, message_id: String, asked_at: Instant) -> Option<u64> {
        let visible_until = asked_at + self.visibility;
        let mut table = self.table();
        if let Some(&held) = table.by_id.get(&message_id) {
            match table.entries.get_mut(&held) {
                Some(e) if !e.released => {
                    e.receipt = receipt;
                    e.visible_until = visible_until;
                    e.lost = false;
                    drop(table);
                    self.received_again(&message_id);
                    return None;
                }
                _ => {
                    table.remove(held);
                }
            }
        }
        let seq = self.next_seq.fetch_add(1, Relaxed);
        if !message_id.is_empty() {
            table.by_id.insert(message_id.clone(), seq);
        }
        let entry = Entry {
            receipt,
            message_id,
            visible_until,
            finished: false,
            released: false,
            lost: false,
        };
        table.entries.insert(seq, entry);
        Some(seq)
    }

    fn received_again(&self, message_id: &str) {
        metrics::counter!("weir_sqs_received_again_total", "pipeline" => self.pipeline.clone())
            .increment(1);
        tracing::warn!(pipeline = %self.pipeline, message = %message_id,
            "message received again while this process holds it (its visibility ran out before an extension reached SQS): delivered once; a longer visibility_timeout_s leaves more room");
    }

    pub(super) fn finish(&self, seq: u64) {
        if let Some(e) = self.table().entries.get_mut(&seq) {
            e.finished = true;
        }
    }

    pub(super) fn release(&self, seq: u64) {
        if let Some(e) = self.table().entries.get_mut(&seq) {
            e.released = true;
        }
    }

    /// Makes the released messages visible again, for the queue to hand out anew (or to move to
    /// its dead-letter queue once they reach its maxReceiveCount). At once rather than when
    /// their visibility runs out: weir already retried what `[retry]` allows, and a FIFO group
    /// stays blocked until all of its held messages are back, then comes again in order.
    pub(super) async fn return_released(&self) {
        let released: Vec<u64> = self
            .table()
            .entries
            .iter()
            .filter(|(_, e)| e.released)
            .map(|(&seq, _)| seq)
            .collect();
        self.return_to_queue(&released).await;
    }

    /// Deletes the finished messages (at a checkpoint: the sink has made them durable).
    pub(super) async fn delete_finished(&self) -> Result<(), NotDeleted> {
        let mut finished: Vec<(u64, String)> = self
            .table()
            .entries
            .iter()
            .filter(|(_, e)| e.finished)
            .map(|(&seq, e)| (seq, e.receipt.clone()))
            .collect();
        finished.sort_unstable_by_key(|(seq, _)| *seq);
        let mut failures = Vec::new();
        let call = |chunk: &[(u64, String)]| {
            let entries = chunk
                .iter()
                .filter_map(|(seq, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(seq.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .ok()
                })
                .collect();
            let call = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries));
            async move {
                call.send()
                    .await
                    .map_err(|e| AwsError::from_sdk("DeleteMessageBatch", &e).into())
            }
        };
        in_batches(&finished, call, |result| {
            self.deleted(result, &finished, &mut failures)
        })
        .await;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(NotDeleted {
                finished: finished.len(),
                failures,
            })
        }
    }

    /// Takes in one DeleteMessageBatch's result: deleted messages leave the table. `sent` is
    /// what was asked, sorted by sequence number.
    fn deleted(
        &self,
        result: Result<DeleteMessageBatchOutput, CallError>,
        sent: &[(u64, String)],
        failures: &mut Vec<CallError>,
    ) {
        let out = match result {
            Ok(out) => out,
            Err(e) => return failures.push(e),
        };
        let mut table = self.table();
        for ok in &out.successful {
            if let Ok(seq) = ok.id.parse::<u64>() {
                table.remove(seq);
            }
        }
        for failed in &out.failed {
            let Ok(seq) = failed.id.parse::<u64>() else {
                continue;
            };
            if failed.code == "ReceiptHandleIsInvalid" {
                if receipt_changed(&table, sent, seq) {
                    // Received again here while the delete was under way: deleted with the new
                    // receipt at the next checkpoint.
                    continue;
                }
                // It was received again elsewhere after its visibility ran out: that copy will
                // be delivered again.
                if let Some(e) = table.remove(seq) {
                    tracing::warn!(pipeline = %self.pipeline, message = %e.message_id,
                        "finished message could not be deleted (its visibility had run out and it was received again): it will be delivered again");
                }
                continue;
            }
            failures.push(CallError::Entry {
                code: failed.code.clone(),
                message: failed.message.as_deref().unwrap_or("no message").to_owned(),
            });
        }
    }

    /// Until `stop`: renews the visibility of every message held once half of it is used up.
    pub(super) async fn extend_visibility(self: std::sync::Arc<Self>, stop: CancellationToken) {
        let tick = (self.visibility / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let margin = self.visibility / 2;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let now = Instant::now();
            let due: Vec<(u64, String)> = self
                .table()
                .entries
                .iter()
                .filter(|(_, e)| !e.lost && e.visible_until <= now + margin)
                .map(|(&seq, e)| (seq, e.receipt.clone()))
                .collect();
            if !due.is_empty() {
                self.change_visibility(&due, self.visibility).await;
            }
        }
    }

    /// Makes messages visible again at once: released ones, and ones read but never handed to
    /// the pipeline (another consumer, or this one after a restart, has them without waiting).
    pub(super) async fn return_to_queue(&self, seqs: &[u64]) {
        let list: Vec<(u64, String)> = {
            let mut table = self.table();
            seqs.iter()
                .filter_map(|&seq| table.remove(seq).map(|e| (seq, e.receipt)))
                .collect()
        };
        if !list.is_empty() {
            self.change_visibility(&list, Duration::ZERO).await;
        }
    }

    /// Sets the visibility of `list` to `timeout` from now, updating the table.
    async fn change_visibility(&self, list: &[(u64, String)], timeout: Duration) {
        let asked_at = Instant::now();
        let call = |chunk: &[(u64, String)]| {
            let entries = chunk
                .iter()
                .filter_map(|(seq, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(seq.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(timeout.as_secs() as i32)
                        .build()
                        .ok()
                })
                .collect();
            let call = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries));
            async move {
                call.send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ChangeMessageVisibilityBatch", &e).into())
            }
        };
        let mut sent = list.to_vec();
        sent.sort_unstable_by_key(|(seq, _)| *seq);
        in_batches(list, call, |result| {
            self.changed(result, &sent, asked_at, timeout)
        })
        .await;
    }

    /// Takes in one ChangeMessageVisibilityBatch's result; `sent` is what was asked, sorted by
    /// sequence number.
    fn changed(
        &self,
        result: Result<ChangeMessageVisibilityBatchOutput, CallError>,
        sent: &[(u64, String)],
        asked_at: Instant,
        timeout: Duration,
    ) {
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                // Extensions are tried again at the next tick, while there is time left; a
                // message that could not be made visible at once reappears when it times out.
                tracing::warn!(pipeline = %self.pipeline, error = %e, "could not change the visibility of received messages");
                return;
            }
        };
        let mut table = self.table();
        for ok in &out.successful {
            let Ok(seq) = ok.id.parse::<u64>() else {
                continue;
            };
            if receipt_changed(&table, sent, seq) {
                continue; // received again meanwhile: its new visibility counts
            }
            if let Some(e) = table.entries.get_mut(&seq) {
                e.visible_until = asked_at + timeout;
            }
        }
        for failed in &out.failed {
            let Ok(seq) = failed.id.parse::<u64>() else {
                continue;
            };
            if receipt_changed(&table, sent, seq) {
                continue; // the old receipt failed; the new one is good
            }
            if let Some(e) = table.entries.get_mut(&seq) {
                e.lost = true;
                tracing::warn!(pipeline = %self.pipeline, message = %e.message_id, code = %failed.code,
                    reason = failed.message.as_deref().unwrap_or(""),
                    "could not extend a message's visibility (it ran out first?): it may be delivered twice");
            }
        }
    }
}

/// Whether the message `seq` holds a receipt other than the one `sent` (sorted by sequence
/// number) used: it was received again while the call was under way.
fn receipt_changed(table: &Table, sent: &[(u64, String)], seq: u64) -> bool {
    let used = sent
        .binary_search_by_key(&seq, |(s, _)| *s)
        .ok()
        .map(|i| sent[i].1.as_str());
    match (table.entries.get(&seq), used) {
        (Some(e), Some(used)) => e.receipt != used,
        _ => false,
    }
}

/// Runs `call` on each 10 of `items` (an SQS batch), at most `CONCURRENT_CALLS` at once, and
/// hands each result to `done` as it arrives.
async fn in_batches<T, F, Fut>(
    items: &[(u64, String)],
    call: F,
    mut done: impl FnMut(Result<T, CallError>),
) where
    F: Fn(&[(u64, String)]) -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>> + Send + 'static,
    T: Send + 'static,
{
    let mut calls = JoinSet::new();
    let joined = |r: Result<Result<T, CallError>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(CallError::Task(e)))
    };
    for chunk in items.chunks(BATCH) {
        while calls.len() >= CONCURRENT_CALLS {
            if let Some(r) = calls.join_next().await {
                done(joined(r));
            }
        }
        calls.spawn(call(chunk));
    }
    while let Some(r) = calls.join_next().await {
        done(joined(r));
    }
}

#[cfg(test)]
mod tests {
    //! Against a stand-in for SQS: a local HTTP server that speaks the two batch calls (the
    //! JSON protocol the SDK uses), records them, and answers per receipt handle: `gone-...` was
    //! received again elsewhere (`ReceiptHandleIsInvalid`), `refused-...` fails otherwise,
    //! anything else succeeds. A stand-in because the bookkeeping is about failures on chosen
    //! receipts, which a real server (moto, in the e2e tests) cannot be made to give; the
    //! e2e SQS tests run the same code against moto for everything that succeeds or expires.

    use super::*;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use serde_json::{Value, json};
    use std::sync::Arc;

    /// One batch call the server answered: its operation and `(receipt, visibility timeout)`
    /// per entry.
    #[derive(Debug, Clone)]
    struct Call {
        op: String,
        entries: Vec<(String, Option<i64>)>,
    }

    type Calls = Arc<Mutex<Vec<Call>>>;

    async fn answer(State(calls): State<Calls>, headers: HeaderMap, body: String) -> String {
        let op = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim_start_matches("AmazonSQS.")
            .to_owned();
        let request: Value = serde_json::from_str(&body).unwrap_or_default();
        let entries = request["Entries"].as_array().cloned().unwrap_or_default();
        let (mut successful, mut failed) = (Vec::new(), Vec::new());
        let mut seen = Vec::new();
        for e in &entries {
            let id = e["Id"].as_str().unwrap_or("");
            let receipt = e["ReceiptHandle"].as_str().unwrap_or("");
            seen.push((receipt.to_owned(), e["VisibilityTimeout"].as_i64()));
            let code = match receipt {
                r if r.starts_with("gone-") => "ReceiptHandleIsInvalid",
                r if r.starts_with("refused-") => "InternalError",
                _ => {
                    successful.push(json!({"Id": id}));
                    continue;
                }
            };
            failed.push(json!({"Id": id, "SenderFault": false, "Code": code, "Message": "no"}));
        }
        calls.lock().unwrap().push(Call { op, entries: seen });
        json!({"Successful": successful, "Failed": failed}).to_string()
    }

    /// The stand-in server, and an InFlight whose client talks to it.
    async fn in_flight(visibility: Duration) -> (Arc<InFlight>, Calls) {
        let calls = Calls::default();
        let app = axum::Router::new()
            .route("/", axum::routing::post(answer))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
            .endpoint_url(format!("http://{addr}"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        let client = Client::from_conf(conf);
        let queue = format!("http://{addr}/000000000000/q");
        (
            Arc::new(InFlight::new(client, &queue, "p", visibility)),
            calls,
        )
    }

    fn taken(calls: &Calls) -> Vec<Call> {
        std::mem::take(&mut *calls.lock().unwrap())
    }

    /// The receipts of `calls` of `op`, sorted.
    fn receipts(calls: &[Call], op: &str) -> Vec<String> {
        let mut r: Vec<String> = calls
            .iter()
            .filter(|c| c.op == op)
            .flat_map(|c| c.entries.iter().map(|(r, _)| r.clone()))
            .collect();
        r.sort();
        r
    }

    fn held(f: &InFlight) -> Vec<u64> {
        let mut seqs: Vec<u64> = f.table().entries.keys().copied().collect();
        seqs.sort_unstable();
        seqs
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn finished_messages_are_deleted_at_a_checkpoint_and_forgotten() {
        let (f, calls) = in_flight(LONG).await;
        let now = Instant::now();
        let seqs: Vec<u64> = ["r1", "r2", "r3"]
            .iter()
            .map(|r| f.add(r.to_string(), format!("m-{r}"), now).expect("new"))
            .collect();
        assert_eq!(seqs.len(), 3);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "numbered in order");
        f.finish(seqs[0]);
        f.finish(seqs[2]);
        f.finish(9999); // unknown: ignored
        f.delete_finished().await.expect("deleted");
        let made = taken(&calls);
        assert_eq!(receipts(&made, "DeleteMessageBatch"), ["r1", "r3"]);
        assert_eq!(held(&f), vec![seqs[1]], "the unfinished one stays");
        f.delete_finished().await.expect("nothing to delete");
        assert!(taken(&calls).is_empty(), "no call for nothing");
    }

    #[tokio::test]
    async fn many_finished_messages_are_deleted_ten_to_a_call() {
        let (f, calls) = in_flight(LONG).await;
        let now = Instant::now();
        for i in 0..25 {
            let seq = f.add(format!("r{i}"), format!("m{i}"), now).expect("new");
            f.finish(seq);
        }
        f.delete_finished().await.expect("deleted");
        let mut sizes: Vec<usize> = taken(&calls).iter().map(|c| c.entries.len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![5, 10, 10]);
        assert!(held(&f).is_empty());
    }

    #[tokio::test]
    async fn a_failed_delete_is_tried_again_at_the_next_checkpoint() {
        let (f, calls) = in_flight(LONG).await;
        let now = Instant::now();
        let gone = f.add("gone-1".into(), "m1".into(), now).expect("new");
        let refused = f.add("refused-2".into(), "m2".into(), now).expect("new");
        f.finish(gone);
        f.finish(refused);
        let e = f.delete_finished().await.expect_err("one not deleted");
        let e = e.to_string();
        assert!(
            e.starts_with("1 of 2 finished messages not deleted (tried again at the next checkpoint): InternalError"),
            "{e}"
        );
        // Received again elsewhere: that copy will be delivered again, this one is forgotten.
        assert_eq!(held(&f), vec![refused]);
        taken(&calls);
        assert!(f.delete_finished().await.is_err());
        assert_eq!(
            receipts(&taken(&calls), "DeleteMessageBatch"),
            ["refused-2"]
        );
    }

    #[tokio::test]
    async fn released_messages_are_made_visible_at_once_and_forgotten() {
        let (f, calls) = in_flight(LONG).await;
        let now = Instant::now();
        let kept = f.add("r1".into(), "m1".into(), now).expect("new");
        let released = f.add("r2".into(), "m2".into(), now).expect("new");
        let finished = f.add("r3".into(), "m3".into(), now).expect("new");
        f.release(released);
        f.finish(finished);
        f.return_released().await;
        let made = taken(&calls);
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].op, "ChangeMessageVisibilityBatch");
        assert_eq!(made[0].entries, vec![("r2".to_owned(), Some(0))]);
        assert_eq!(held(&f), vec![kept, finished]);
        // Read but never handed to the pipeline: returned the same way; unknown ones skipped.
        f.return_to_queue(&[kept, 12345]).await;
        assert_eq!(taken(&calls)[0].entries, vec![("r1".to_owned(), Some(0))]);
        f.return_to_queue(&[12345]).await;
        assert!(taken(&calls).is_empty(), "no call for nothing");
        assert_eq!(held(&f), vec![finished]);
    }

    #[tokio::test]
    async fn a_message_received_again_while_held_is_not_delivered_twice() {
        let (f, calls) = in_flight(LONG).await;
        let now = Instant::now();
        let first = f.add("r1-old".into(), "m1".into(), now).expect("new");
        // Its visibility ran out and the queue handed it out again: the same message.
        assert_eq!(f.add("r1-new".into(), "m1".into(), now), None);
        assert_eq!(held(&f), vec![first]);
        // Finished, and received a third time before the checkpoint: still one message.
        f.finish(first);
        assert_eq!(f.add("r1-third".into(), "m1".into(), now), None);
        f.delete_finished().await.expect("deleted");
        assert_eq!(
            receipts(&taken(&calls), "DeleteMessageBatch"),
            ["r1-third"],
            "deleted with the latest receipt"
        );
        assert!(held(&f).is_empty());
        // Deleted and forgotten: a message with that id now is a new delivery.
        assert!(f.add("r1-fourth".into(), "m1".into(), now).is_some());
    }

    #[tokio::test]
    async fn a_released_message_that_comes_back_is_a_new_delivery() {
        let (f, calls) = in_flight(LONG).await;
        let now = Instant::now();
        let failed = f.add("r2-old".into(), "m2".into(), now).expect("new");
        f.release(failed);
        let again = f.add("r2-new".into(), "m2".into(), now).expect("delivered again");
        assert_ne!(again, failed);
        assert_eq!(held(&f), vec![again]);
        f.return_released().await;
        assert!(taken(&calls).is_empty(), "the old copy is not handed back");
    }

    #[tokio::test]
    async fn a_stale_receipt_refused_leaves_the_message_for_its_new_receipt() {
        let (f, _calls) = in_flight(LONG).await;
        let now = Instant::now();
        let seq = f.add("r-old".into(), "m1".into(), now).expect("new");
        f.finish(seq);
        // The delete went out with the old receipt; the message came again before its answer.
        let sent = vec![(seq, "r-old".to_owned())];
        assert_eq!(f.add("r-new".into(), "m1".into(), now), None);
        let refused = aws_sdk_sqs::types::BatchResultErrorEntry::builder()
            .id(seq.to_string())
            .code("ReceiptHandleIsInvalid")
            .sender_fault(true)
            .build()
            .unwrap();
        let out = DeleteMessageBatchOutput::builder()
            .set_successful(Some(vec![]))
            .failed(refused)
            .build()
            .unwrap();
        let mut failures = Vec::new();
        f.deleted(Ok(out), &sent, &mut failures);
        assert!(failures.is_empty());
        assert_eq!(held(&f), vec![seq], "kept, to delete with the new receipt");
        assert_eq!(f.table().entries[&seq].receipt, "r-new");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn visibility_is_extended_before_it_runs_out_until_an_extension_fails() {
        let visibility = Duration::from_secs(2);
        let (f, calls) = in_flight(visibility).await;
        let now = Instant::now();
        // Received a visibility ago: due now. Received in an hour: not due for long.
        let due = f.add("r-due".into(), "m1".into(), now - visibility).expect("new");
        let lost = f.add("refused-due".into(), "m2".into(), now - visibility).expect("new");
        let later = f.add("r-later".into(), "m3".into(), now + LONG).expect("new");
        let stop = CancellationToken::new();
        let extender = tokio::spawn(f.clone().extend_visibility(stop.clone()));
        // Two rounds of extensions (a tick is half a second; the first extension is due again
        // after half the visibility), waited for generously.
        let mut made = Vec::new();
        for _ in 0..600 {
            made.extend(taken(&calls));
            if made.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.cancel();
        extender.await.expect("extender");
        assert!(made.len() >= 2, "{made:?}");
        assert!(made.iter().all(|c| c.op == "ChangeMessageVisibilityBatch"));
        let mut first = made[0].entries.clone();
        first.sort();
        assert_eq!(
            first,
            vec![
                ("r-due".to_owned(), Some(2)),
                ("refused-due".to_owned(), Some(2))
            ]
        );
        // The one SQS refused is lost (it may be received again): never tried again.
        assert_eq!(made[1].entries, vec![("r-due".to_owned(), Some(2))]);
        let table = f.table();
        assert!(table.entries[&lost].lost);
        assert!(!table.entries[&due].lost);
        assert!(table.entries[&due].visible_until > now, "extended");
        assert!(table.entries.contains_key(&later));
    }
}
