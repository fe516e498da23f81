//! A DLQ that refuses a record for good (too large for its topic or queue) must not hold the
//! lane: the whole record goes to the pipeline's fallback file, the DLQ gets it with its payload
//! cut when that fits, the other events flow and the source commits (real broker, real SQS
//! server, real binary). And a failing sink or DLQ is logged as a condition (once, then
//! summaries, then once when it works again), not once per attempt and lane.

use crate::delivery::SmallDisk;
use crate::kafka_broker::Broker;
use crate::sqs_server::SqsServer;
use crate::support::*;
use serde_json::Value;
use sha2::Digest;
use std::time::Duration;

/// `key=value` of the last "pipeline stopped" line, as numbers.
fn final_counts(log: &str) -> std::collections::BTreeMap<String, u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("pipeline stopped"))
        .unwrap_or_else(|| panic!("no final line in:\n{log}"));
    fields(line)
}

/// The numeric `key=value` fields of a log line.
fn fields(line: &str) -> std::collections::BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn sha256(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Four keys, five small events each, and one event of key `k1` far larger than the sink and
/// the DLQ take, in the middle of the stream.
fn stream(big_bytes: usize) -> (Vec<(String, String)>, String) {
    let big = format!("{{\"k\":\"k1\",\"big\":\"{}\"}}", "x".repeat(big_bytes));
    let mut out = Vec::new();
    for n in 0..5 {
        for k in 0..4 {
            out.push((format!("k{k}"), format!("{{\"k\":\"k{k}\",\"n\":{n}}}")));
        }
        if n == 2 {
            out.push(("k1".to_owned(), big.clone()));
        }
    }
    (out, big)
}

/// The final counts add up: of `received` events, every one but the big one delivered, the big
/// one dead-lettered through the fallback, nothing left unfinished.
fn one_fell_back(log: &str, received: usize) {
    let c = final_counts(log);
    assert_eq!(
        [
            c["received"],
            c["delivered"],
            c["dead_lettered"],
            c["dlq_fallback"],
            c["unfinished"]
        ],
        [received as u64, received as u64 - 1, 1, 1, 0],
        "{c:?}"
    );
}

/// The fallback file's one record: the whole event, and the sink's refusal.
fn check_fallback_file(s: &Scratch, pipeline: &str, big: &str) {
    let file = s.state_dir().join(pipeline).join("dlq-fallback.jsonl");
    let records = json_lines(&file);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    let data: Value = serde_json::from_str(big).unwrap();
    assert_eq!(r["event"]["data"], data, "the whole payload");
    assert_eq!(r["error"]["stage"], "sink");
    assert_eq!(r["pipeline"], pipeline);
}

#[test]
fn a_kafka_dlq_refusing_a_record_for_good_takes_it_cut_and_the_lane_flows_on() {
    let broker = Broker::start();
    for topic in ["in", "out", "dlq"] {
        broker.create_topic(topic, 1);
    }
    let (records, big) = stream(6000);
    broker.produce("in", &records);

    let s = Scratch::new();
    // One lane: every key waits behind the big event if its DLQ write holds the lane.
    // librdkafka refuses records over `message.max.bytes` itself, as a broker would.
    let p = s.write(
        "k.toml",
        format!(
            "[pipeline]\nname = \"big\"\ncheckpoint_interval_ms = 50\n\
             [source]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopics = \"in\"\ngroup = \"weir-big\"\nbatch_window_ms = 5\n\
             [ordering]\nlanes = 1\n[retry]\nbackoff_ms = [5, 200]\n\
             [sink]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopic = \"out\"\n\
             [sink.properties]\n\"message.max.bytes\" = 3000\n\
             [dlq]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopic = \"dlq\"\n\
             [dlq.properties]\n\"message.max.bytes\" = 3000\n",
            addr = broker.addr()
        ),
    );
    let child = s.spawn_logged(&p);
    let small = records.len() - 1;
    wait_logged(
        &s,
        "every small event delivered and the big one dead-lettered",
        || broker.count("out", 1) >= small as i64 && broker.count("dlq", 1) >= 1,
    );
    let out = broker.read_all("out", 1, small);
    assert_eq!(out.len(), small, "{out:?}");
    for k in 0..4 {
        let key = format!("k{k}");
        let ns: Vec<u64> = out
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_str()))
            .map(|r| {
                serde_json::from_str::<Value>(&r.value).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ns, [0, 1, 2, 3, 4], "key {key} in order");
    }

    // The DLQ holds the record with its payload cut to fit, saying so.
    let dlq = broker.read_all("dlq", 1, 1);
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].value.len() <= 3000, "{}", dlq[0].value.len());
    let r: Value = serde_json::from_str(&dlq[0].value).unwrap();
    assert_eq!(r["event"]["id"], "in/0/12");
    let kept = r["event"]["data"]
        .as_str()
        .expect("the cut payload, as text");
    assert!(kept.len() > 1000 && big.starts_with(kept), "{kept}");
    let cut = &r["cut"];
    assert_eq!(cut["data_bytes"], big.len());
    assert_eq!(cut["data_sha256"], sha256(&big));
    assert_eq!(cut["kept_bytes"], kept.len());
    assert!(
        cut["dlq_refused"].as_str().unwrap().contains("too large"),
        "{cut}"
    );
    assert!(
        cut["whole_record_in"]
            .as_str()
            .unwrap()
            .ends_with("big/dlq-fallback.jsonl"),
        "{cut}"
    );
    assert_eq!(r["error"]["kind"], "rejected");
    check_fallback_file(&s, "big", &big);
    let log = s.log();
    assert!(
        log.contains("ERROR")
            && log.contains("the dead-letter queue refused event in/0/12's record"),
        "{log}"
    );
    // The alarm: counted, and the pipeline's last error.
    let admin = admin_address(&log).expect("the admin address in the log");
    let metrics = admin_get(&admin, "/metrics").1;
    assert!(
        metrics.contains("weir_dlq_fallback_total{pipeline=\"big\",to=\"dlq\"} 1"),
        "{metrics}"
    );
    let status: Value = serde_json::from_str(&admin_get(&admin, "/pipelines/big").1).unwrap();
    assert_eq!(status["counts"]["dlq_fallback"], 1, "{status}");
    assert_eq!(status["last_error"]["stage"], "dlq", "{status}");

    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    one_fell_back(&s.log(), records.len());

    // The offsets were committed: a restart in the same group reads nothing again.
    crate::kafka::restart_reads_nothing(&s, &p);
}

#[test]
fn an_sqs_dlq_refusing_a_message_for_good_leaves_it_in_the_fallback_and_the_queue_empties() {
    let server = SqsServer::start();
    // 1024 bytes: SQS's smallest MaximumMessageSize.
    let small_queue = [("MaximumMessageSize", "1024".to_owned())];
    let (input, out, dlq) = (
        server.create_queue("in", &[]),
        server.create_queue("out", &small_queue),
        server.create_queue("dlq", &small_queue),
    );
    let (records, big) = stream(3000);
    let messages: Vec<(Option<String>, String)> =
        records.iter().map(|(_, v)| (None, v.clone())).collect();
    server.send(&input, &messages);

    let s = Scratch::new();
    let sqs = |table: &str, queue: &str| {
        format!(
            "[{table}]\ntype = \"sqs\"\nqueue_url = {queue:?}\nendpoint_url = {:?}\n",
            server.endpoint()
        )
    };
    let p = s.write(
        "s.toml",
        format!(
            "[pipeline]\nname = \"bigsqs\"\ncheckpoint_interval_ms = 50\n{}\
             wait_time_s = 1\nvisibility_timeout_s = 10\nreceivers = 1\n\
             [ordering]\nlanes = 1\n[retry]\nbackoff_ms = [5, 200]\n{}{}",
            sqs("source", &input),
            sqs("sink", &out),
            sqs("dlq", &dlq),
        ),
    );
    let child = s.spawn_logged(&p);
    let small = records.len() - 1;
    wait_logged(&s, "the input queue emptied", || {
        server.count(&out) >= small && server.count(&input) == 0
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    assert_eq!(server.drain(&out).len(), small);
    check_fallback_file(&s, "bigsqs", &big);
    // The record does not fit the DLQ queue even without its payload (the message's metadata
    // and the reason take more than 1024 bytes): the fallback file alone holds it.
    let in_dlq = server.drain(&dlq);
    assert!(in_dlq.is_empty(), "{in_dlq:?}");
    let log = s.log();
    assert!(log.contains("'s record (sqs: the message is"), "{log}");
    one_fell_back(&log, records.len());
}

/// Lines of `log` that contain `text`.
fn count(log: &str, text: &str) -> usize {
    log.lines().filter(|l| l.contains(text)).count()
}

#[test]
fn a_failing_sink_and_dlq_are_logged_once_then_once_more_when_they_work_again() {
    let s = Scratch::new();
    // Good and malformed lines spread over four lanes. A lane writes its good events to the
    // sink before its malformed ones to the DLQ: with the sink's disk and the DLQ's both full,
    // the sink fails first; once its disk has room, the DLQ fails until its disk has room too.
    let mut input = String::new();
    for n in 0..200 {
        match n % 2 {
            0 => input.push_str(&format!("{{\"n\":{n}}}\n")),
            _ => input.push_str(&format!("not json {n}\n")),
        }
    }
    s.write("in.jsonl", input);
    let disks = [
        SmallDisk::mount(s.path("sink"), 256),
        SmallDisk::mount(s.path("dlq"), 256),
    ];
    let fillers = [s.path("sink/filler"), s.path("dlq/filler")];
    for f in &fillers {
        crate::delivery::fill(f);
    }
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"full\"\n\
         [source]\ntype = \"file\"\npath = \"in.jsonl\"\nformat = \"json\"\n\
         [ordering]\nlanes = 4\nkey = \"<$.id>\"\n[retry]\nbackoff_ms = [5, 200]\n\
         [sink]\ntype = \"file\"\npath = \"sink/out.jsonl\"\n\
         [dlq]\ntype = \"file\"\npath = \"dlq/dlq.jsonl\"\n",
    );
    let child = s.spawn_logged(&p);
    // Long enough for every lane to retry many times (the DLQ's pace tops out at 5 s).
    wait_logged(&s, "the sink to fail", || {
        s.log().contains("sink write failed")
    });
    std::thread::sleep(Duration::from_secs(4));
    std::fs::remove_file(&fillers[0]).unwrap();
    wait_logged(&s, "the DLQ to fail", || {
        s.log().contains("dead-letter queue write failed")
    });
    std::thread::sleep(Duration::from_secs(8));
    std::fs::remove_file(&fillers[1]).unwrap();
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    let log = s.log();
    assert_eq!(json_lines(&s.path("sink/out.jsonl")).len(), 100);
    assert_eq!(lines(&s.path("dlq/dlq.jsonl")).len(), 100);
    // One line when each starts failing (the old code logged every attempt of every lane)...
    assert_eq!(count(&log, "sink write failed; retrying"), 1, "{log}");
    assert_eq!(
        count(&log, "dead-letter queue write failed; retrying"),
        1,
        "{log}"
    );
    // ... and one when each works again, with how long and how many.
    for what in ["sink write", "dead-letter queue write"] {
        let ok: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("{what} works again")))
            .collect();
        assert_eq!(ok.len(), 1, "{log}");
        let fields = fields(ok[0]);
        assert!(fields["events"] > 0 && fields["attempts"] > 1, "{}", ok[0]);
    }
    // `retried` counts the sink's retries only: each good event at least once.
    let c = final_counts(&log);
    assert!(c["retried"] >= 100, "{c:?}");
    assert_eq!([c["delivered"], c["dead_lettered"]], [100, 100], "{c:?}");
    drop(disks);
}
