//! Three targets of three kinds with different rules, one of them (the HTTP API) failing for a
//! while, weir killed with SIGKILL several times mid-stream: every target gets every event its
//! rule matches at least once, none it does not match, each key in order; the counts add up.

use crate::sqs_server::SqsServer;
use crate::support::*;
use crate::target_server::TargetServer;
use crate::targets::assert_no_skips;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const N: u64 = 900;

/// seq → customer, department (0 billing, 1 shipping, 2 support), as `order_lines` makes them.
fn customer(seq: u64) -> u64 {
    seq % 17
}

fn dept(seq: u64) -> u64 {
    seq % 3
}

/// Every event of `want` is in `got`, and per customer they go forward one at a time,
/// stepping back only where a restart read them again.
fn assert_in_order(target: &str, got: &[u64], want: &BTreeSet<u64>) {
    assert_no_skips(target, got, want);
    let set: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(&set, want, "{target}: events missing");
}

#[test]
fn http_file_and_sqs_targets_each_get_their_events_through_failures_and_kills() {
    let api = TargetServer::start();
    let sqs = SqsServer::start();
    let queue = sqs.create_queue("refunds.fifo", &[]);
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..N));
    let p = s.write(
        "p.toml",
        format!(
            r#"[pipeline]
name = "kinds"
checkpoint_interval_ms = 20
[source]
type = "file"
path = "in.jsonl"
batch_size = 20
[ordering]
key = "<$.data.detail.customerId>"
lanes = 4
[retry]
backoff_ms = [10, 300]

[[target]]
name = "api"
when = '{{"data": {{"detail": {{"department": ["billing"]}}}}}}'
type = "http"
url = "{}"
max_concurrency = 4

[[target]]
name = "archive"
type = "file"
path = "archive.jsonl"

[[target]]
name = "shipping"
when = '{{"data": {{"detail": {{"department": ["shipping"]}}}}}}'
type = "sqs"
queue_url = "{queue}"
endpoint_url = "{}"
"#,
            api.url("/orders"),
            sqs.endpoint()
        ),
    );
    // The API fails the first requests (503), then recovers.
    api.fail_next(30, 503, "");
    api.set_latency(std::time::Duration::from_millis(5));
    let mut kills = 0;
    for round in 0..3u32 {
        api.set_run(round);
        let mut child = s.spawn(&p);
        let before = api.delivered_count();
        wait_for("progress at the API", || {
            api.delivered_count() > before + 40 || child.try_wait().unwrap().is_some()
        });
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    api.set_run(99);
    let done = s.run(&p);
    let log = stderr(&done);
    assert_eq!(done.status.code(), Some(0), "{log}");
    assert!(
        kills >= 2,
        "finished before it was killed often enough ({kills})"
    );
    assert!(api.count_status(503) >= 30, "the API's failures were seen");

    let billing: BTreeSet<u64> = (0..N).filter(|&n| dept(n) == 0).collect();
    let shipping: BTreeSet<u64> = (0..N).filter(|&n| dept(n) == 1).collect();
    // HTTP: per run, each customer's events in order (a kill cuts a run; the next one starts
    // over from the last commit).
    let requests = api.requests();
    let runs: BTreeSet<u32> = requests.iter().map(|r| r.run).collect();
    let mut all = Vec::new();
    for run in runs {
        let got: Vec<u64> = requests
            .iter()
            .filter(|r| r.run == run && r.ok())
            .flat_map(|r| r.events())
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        let mut last: BTreeMap<u64, u64> = BTreeMap::new();
        for &seq in &got {
            assert!(billing.contains(&seq), "api: {seq} is not a billing order");
            if let Some(&before) = last.get(&customer(seq)) {
                assert!(
                    seq > before,
                    "api run {run}: C{:03} went from {before} to {seq}",
                    customer(seq)
                );
            }
            last.insert(customer(seq), seq);
        }
        all.extend(got);
    }
    assert_eq!(
        all.iter().copied().collect::<BTreeSet<u64>>(),
        billing,
        "api: events missing"
    );

    // File: everything, each customer in order modulo re-reads.
    let archive: Vec<u64> = lines(&s.path("archive.jsonl"))
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_in_order("archive", &archive, &(0..N).collect());

    // SQS FIFO: shipping orders only, each group in order modulo re-sends.
    let got: Vec<u64> = sqs
        .drain(&queue)
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(&m.body).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_in_order("shipping", &got, &shipping);

    // The last run's counts: every target's routed events ended there, delivered.
    for target in ["api", "archive", "shipping"] {
        let line = log
            .lines()
            .find(|l| l.contains("target stopped") && l.contains(&format!("target={target} ")))
            .unwrap_or_else(|| panic!("no final line for {target}: {log}"));
        assert!(
            line.contains("unfinished=0") && line.contains("dead_lettered=0"),
            "{line}"
        );
    }
    assert!(log.contains("unfinished=0"), "{log}");
}
