//! Kafka in and out, on the real binary against a real broker (tansu): content, per-key order
//! and completeness; SIGKILL mid-stream; two processes sharing a group; the broker going away.
//!
//! Each test gets a broker of its own (kafka_broker.rs). The stream is delivery.rs's: keyed
//! events with per-key sequence numbers, 5% of which the faults plugin fails into the DLQ.

use crate::delivery::{Stream, check_dlq, check_output};
use crate::kafka_broker::{Broker, Record};
use crate::plugins::plugin;
use crate::support::*;
use std::time::Duration;

const PARTITIONS: u32 = 4;

/// Kafka `in` -> filter (drops `"skip"` events) -> faults plugin -> Kafka `out`, DLQ topic `dlq`.
fn pipeline(broker: &Broker, name: &str) -> String {
    format!(
        "[pipeline]\nname = {name:?}\ncheckpoint_interval_ms = 50\n\
         [source]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopics = \"in\"\ngroup = \"weir-test\"\nbatch_window_ms = 5\n\
         [source.properties]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n\
         [[filter]]\npattern = '{{\"data\": {{\"skip\": [{{\"exists\": false}}]}}}}'\n\
         [[plugin]]\npath = {plugin:?}\n\
         [ordering]\nlanes = 4\n\
         [retry]\nbackoff_ms = [5, 200]\n\
         [sink]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopic = \"out\"\n\
         [dlq]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopic = \"dlq\"\n",
        addr = broker.addr(),
        plugin = plugin("fixtures/faults/faults.wasm"),
    )
}

fn setup(broker: &Broker) {
    for topic in ["in", "out", "dlq"] {
        broker.create_topic(topic, PARTITIONS);
    }
}

/// The stream as Kafka records keyed by the event's key, with `skip` events (to be filtered)
/// mixed in every 10th record.
fn records(stream: &Stream) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, line) in stream.lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = v["k"].as_str().unwrap().to_owned();
        if i % 10 == 0 {
            out.push((key.clone(), format!("{{\"k\":\"{key}\",\"skip\":true}}")));
        }
        out.push((key, line.trim_end().to_owned()));
    }
    out
}

/// Writes record values as lines, for delivery.rs's checks.
fn as_lines(s: &Scratch, name: &str, records: &[Record]) -> std::path::PathBuf {
    let text: String = records.iter().map(|r| format!("{}\n", r.value)).collect();
    s.write(name, text)
}

/// Checks what reached `out` and `dlq` against the stream.
fn check(s: &Scratch, broker: &Broker, stream: &Stream, repeats: bool) -> usize {
    let out = broker.read_all("out", PARTITIONS, stream.delivered_count());
    for r in &out {
        let v: serde_json::Value = serde_json::from_str(&r.value).unwrap();
        assert_eq!(
            r.key.as_deref(),
            v["k"].as_str(),
            "record key is the event key: {r:?}"
        );
        assert!(
            r.headers.contains(&("origin".into(), "test".into())),
            "headers carried over: {r:?}"
        );
        // No `[pipeline] correlation_id`: the input record's id (`topic/partition/offset`).
        let correlation = r.headers.iter().find(|(k, _)| k == "correlation-id");
        assert!(
            correlation.is_some_and(|(_, v)| v.starts_with("in/")),
            "correlation id header: {r:?}"
        );
    }
    let (dups, torn) = check_output(&as_lines(s, "out.jsonl", &out), stream, repeats);
    assert_eq!(torn, 0, "kafka records are whole");
    let dlq = broker.read_all("dlq", PARTITIONS, stream.faulty.len());
    check_dlq(&as_lines(s, "dlq.jsonl", &dlq), stream);
    dups
}

/// Waits until `out` holds every event to deliver and `dlq` every failed one, by identity, not
/// by count: after a crash or an outage, re-delivered duplicates make the count reach the total
/// while the last events are still on their way.
fn wait_complete(s: &Scratch, broker: &Broker, stream: &Stream) {
    let ids = |topic: &str| -> std::collections::BTreeSet<(String, u64)> {
        broker
            .read_all(topic, PARTITIONS, 0)
            .iter()
            .filter_map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.value).ok()?;
                // An output record is the event's data; a DLQ record holds the event.
                let data = if v["event"].is_object() {
                    &v["event"]["data"]
                } else {
                    &v
                };
                Some((data["k"].as_str()?.to_owned(), data["seq"].as_u64()?))
            })
            .collect()
    };
    let want: std::collections::BTreeSet<(String, u64)> = stream
        .expected
        .iter()
        .flat_map(|(k, seqs)| seqs.iter().map(move |&q| (k.clone(), q)))
        .collect();
    let mut last_check = std::time::Instant::now() - Duration::from_secs(1);
    wait_logged(s, "every event delivered and dead-lettered", || {
        if last_check.elapsed() < Duration::from_millis(500) {
            return false;
        }
        last_check = std::time::Instant::now();
        ids("out").is_superset(&want) && ids("dlq").is_superset(&stream.faulty)
    });
}

fn final_counts(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("pipeline stopped"))
        .unwrap_or_else(|| panic!("no final line in:\n{log}"))
        .to_owned()
}

#[test]
fn kafka_to_kafka_through_filter_and_plugin() {
    let broker = Broker::start();
    setup(&broker);
    let stream = Stream::new(2000, 20, 11);
    let recs = records(&stream);
    broker.produce("in", &recs);

    let s = Scratch::new();
    let p = s.write("k.toml", pipeline(&broker, "k2k"));
    let child = s.spawn_logged(&p);
    let total = stream.delivered_count();
    wait_logged(&s, "every event delivered", || {
        s.log().contains("kafka partitions assigned")
            && broker.count("out", PARTITIONS) >= total as i64
    });
    check(&s, &broker, &stream, false);
    // The admin API knows the consumer's lag (librdkafka statistics, every 5 s): none left.
    let admin = admin_address(&s.log()).expect("the admin address in the log");
    wait_logged(&s, "lag 0 and the source connected", || {
        let (_, body) = admin_get(&admin, "/pipelines/k2k");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["lag"] == 0
            && v["source_connected"] == true
            && v["lag_by_partition"]
                .as_object()
                .is_some_and(|m| m.len() == PARTITIONS as usize)
    });
    assert_eq!(admin_get(&admin, "/readyz").0, 200);
    let metrics = admin_get(&admin, "/metrics").1;
    assert!(
        metrics.contains("weir_source_lag{pipeline=\"k2k\",partition=\"in/0\"} 0"),
        "{metrics}"
    );
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    let last = final_counts(&s.log());
    let filtered = recs.len() - stream.lines.len();
    for want in [
        format!("received={}", recs.len()),
        format!("delivered={total}"),
        format!("filtered={filtered}"),
        format!("dead_lettered={}", stream.faulty.len()),
        "unfinished=0".to_owned(),
    ] {
        assert!(last.contains(&want), "{want} in {last}");
    }

    restart_reads_nothing(&s, &p);
    assert_eq!(broker.read_all("out", PARTITIONS, total).len(), total);
}

/// The offsets were committed: `p` run again (the second run in `s`'s log), in the same group,
/// reads nothing.
pub(crate) fn restart_reads_nothing(s: &Scratch, p: &std::path::Path) {
    let child = s.spawn_logged(p);
    wait_logged(s, "the restarted consumer to join", || {
        s.log().matches("kafka partitions assigned").count() >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0));
    assert!(
        final_counts(&s.log()).contains("received=0"),
        "{}",
        final_counts(&s.log())
    );
}

/// Produces the records a few at a time in the background, as a live stream.
fn trickle(broker: &Broker, records: Vec<(String, String)>) -> std::thread::JoinHandle<()> {
    let addr = broker.addr();
    std::thread::spawn(move || {
        let b = crate::kafka_broker::Producer::new(&addr);
        for chunk in records.chunks(25) {
            b.produce("in", chunk);
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

#[test]
fn kafka_sigkill_mid_stream_loses_nothing() {
    let broker = Broker::start();
    setup(&broker);
    let stream = Stream::new(3000, 20, 12);
    let writer = trickle(&broker, records(&stream));
    let s = Scratch::new();
    // Commits half a second apart: each kill leaves delivered events uncommitted, which the
    // restart delivers again (at-least-once), in key order.
    let p = s.write(
        "k.toml",
        pipeline(&broker, "crash").replace(
            "checkpoint_interval_ms = 50",
            "checkpoint_interval_ms = 500",
        ),
    );
    // Each round kills weir soon after it delivered something: mid-stream, with events in
    // flight and offsets not yet committed.
    let total = stream.delivered_count();
    for round in 0..4 {
        let before = broker.count("out", PARTITIONS);
        let child = s.spawn_logged(&p);
        wait_logged(&s, "progress before the kill", || {
            broker.count("out", PARTITIONS) > before
                || (writer.is_finished() && before >= total as i64)
        });
        std::thread::sleep(Duration::from_millis(50 + 100 * round));
        eprintln!(
            "round {round}: killing at {} records out",
            broker.count("out", PARTITIONS)
        );
        signal(&child, libc::SIGKILL);
        let _ = wait_exit(child);
    }
    writer.join().unwrap();
    let child = s.spawn_logged(&p);
    wait_complete(&s, &broker, &stream);
    let dups = check(&s, &broker, &stream, true);
    eprintln!(
        "re-delivered after SIGKILLs: {dups} ({} records in out for {total} events)",
        broker.count("out", PARTITIONS)
    );
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
}

#[test]
fn two_processes_share_the_partitions_and_take_over() {
    let broker = Broker::start();
    setup(&broker);
    let stream = Stream::new(3000, 20, 13);
    let (a, b) = (Scratch::new(), Scratch::new());
    let pa = a.write("k.toml", pipeline(&broker, "shared"));
    let pb = b.write("k.toml", pipeline(&broker, "shared"));
    let assigned = |s: &Scratch| s.log().matches("kafka partitions assigned").count();
    // The survivor starts first, so that it leads the group: tansu 0.6.0 never evicts a dead
    // group leader (the other members then rejoin without end), while Kafka would.
    let survivor = b.spawn_logged(&pb);
    wait_logged(&b, "the first process to get the partitions", || {
        assigned(&b) >= 1
    });
    let doomed = a.spawn_logged(&pa);
    // The second joins and gets a share: cooperative rebalancing moves only that share.
    wait_logged(&a, "the second process to get a share", || {
        a.log()
            .contains("kafka partitions assigned pipeline=\"shared\" partitions=in/")
    });
    wait_logged(&b, "the first to give a share away", || {
        b.log().contains("kafka partitions revoked")
    });
    let writer = trickle(&broker, records(&stream));
    wait_logged(&a, "both processes to deliver", || {
        a.log().contains("event dead-lettered") && b.log().contains("event dead-lettered")
    });
    // One dies; after its session times out the other takes its partitions over.
    signal(&doomed, libc::SIGKILL);
    let _ = wait_exit(doomed);
    let before = assigned(&b);
    writer.join().unwrap();
    wait_complete(&b, &broker, &stream);
    check(&b, &broker, &stream, true);
    assert!(
        assigned(&b) > before,
        "the survivor was assigned the dead one's partitions:\n{}",
        b.log()
    );
    signal(&survivor, libc::SIGTERM);
    assert_eq!(wait_exit(survivor).0, Some(0), "{}", b.log());
}

#[test]
fn broker_down_for_a_while_then_back() {
    let mut broker = Broker::start();
    setup(&broker);
    let stream = Stream::new(2000, 20, 14);
    let recs = records(&stream);
    let (early, late) = recs.split_at(recs.len() / 2);
    broker.produce("in", early);
    let s = Scratch::new();
    let p = s.write("k.toml", pipeline(&broker, "outage"));
    let mut child = s.spawn_logged(&p);
    wait_logged(&s, "the first half delivered", || {
        broker.count("out", PARTITIONS) > 300
    });
    broker.stop();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().unwrap().is_none(),
        "weir keeps running while the broker is down:\n{}",
        s.log()
    );
    broker.restart();
    broker.produce("in", late);
    wait_complete(&s, &broker, &stream);
    check(&s, &broker, &stream, true);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
}

#[test]
fn start_at_a_timestamp_skips_older_records() {
    let broker = Broker::start();
    broker.create_topic("in", 2);
    let batch = |tag: &str, n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                (
                    format!("K{}", i % 3),
                    format!("{{\"tag\":\"{tag}\",\"i\":{i}}}"),
                )
            })
            .collect()
    };
    broker.produce("in", &batch("old", 30));
    std::thread::sleep(Duration::from_millis(1500));
    let from = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(Duration::from_millis(1500));
    broker.produce("in", &batch("new", 20));

    let s = Scratch::new();
    let p = s.write(
        "ts.toml",
        format!(
            "[pipeline]\nname = \"ts\"\n\
             [source]\ntype = \"kafka\"\nbrokers = {:?}\ntopics = \"in\"\ngroup = \"ts\"\nstart = \"timestamp:{from}\"\n\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
            broker.addr()
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the newer records", || {
        lines(&s.path("out.jsonl")).len() >= 20
    });
    std::thread::sleep(Duration::from_secs(1));
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    let out = json_lines(&s.path("out.jsonl"));
    assert_eq!(out.len(), 20, "only records after {from}: {out:?}");
    assert!(out.iter().all(|v| v["tag"] == "new"), "{out:?}");
}
