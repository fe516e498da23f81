//! Where a Kafka partition without a committed offset starts, across a crash: `start =
//! "latest"` and `start = "timestamp:..."` resolve once, at the partition's first assignment,
//! and that position is the group's from then on. A process killed before it delivered
//! anything resumes where it began, instead of resolving `start` again and skipping what was
//! written while it was down.
//!
//! Real broker (tansu), real binary, SIGKILL.

use crate::kafka_broker::{Broker, Producer};
use crate::support::*;

const PARTITIONS: u32 = 2;
const KEYS: u64 = 5;

/// Kafka `in` (group `g`, starting at `start`) -> file `out.jsonl`.
fn pipeline(broker: &Broker, start: &str) -> String {
    format!(
        "[pipeline]\nname = \"start\"\ncheckpoint_interval_ms = 100\n\
         [source]\ntype = \"kafka\"\nbrokers = {:?}\ntopics = \"in\"\ngroup = \"g\"\nstart = {start:?}\nbatch_window_ms = 5\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
        broker.addr()
    )
}

/// Events `seq` in `range`, keyed `K0`..`K4`: `{"k": .., "seq": ..}`.
fn events(range: std::ops::Range<u64>) -> Vec<(String, String)> {
    range
        .map(|seq| {
            let k = format!("K{}", seq % KEYS);
            (k.clone(), format!("{{\"k\":\"{k}\",\"seq\":{seq}}}"))
        })
        .collect()
}

fn assigned(s: &Scratch) -> usize {
    s.log().matches("kafka partitions assigned").count()
}

/// Runs weir, kills it (SIGKILL) once its partitions are assigned and before any event came,
/// checks that the group holds `began` as its committed offsets, produces `down` while weir is
/// down, restarts it, produces `up`; returns the delivered events once every one of `up`
/// arrived (a key's events arrive in order, so by then every earlier event of each key that is
/// going to arrive has).
fn crash_before_the_first_event(
    broker: &Broker,
    start: &str,
    began: &[Option<i64>],
    down: impl FnOnce(),
    up: &[(String, String)],
) -> (Scratch, Vec<serde_json::Value>) {
    let s = Scratch::new();
    let p = s.write("k.toml", pipeline(broker, start));
    let first = s.spawn_logged(&p);
    wait_logged(&s, "the partitions assigned", || assigned(&s) >= 1);
    signal(&first, libc::SIGKILL);
    let _ = wait_exit(first);
    assert!(
        lines(&s.path("out.jsonl")).is_empty(),
        "nothing was produced yet"
    );
    assert_eq!(
        broker.committed("g", "in", PARTITIONS),
        began,
        "the group's position is where the killed process began;\nlog:\n{}",
        s.log()
    );

    down();
    let second = s.spawn_logged(&p);
    wait_logged(&s, "the partitions assigned again", || assigned(&s) >= 2);
    broker.produce("in", up);
    // Every one of `up`, not only the last: partitions are fetched independently, so the last
    // record of one can arrive before the others' records.
    let wanted: Vec<serde_json::Value> = up
        .iter()
        .map(|(_, v)| serde_json::from_str(v).unwrap())
        .collect();
    wait_logged(&s, "the events produced after the restart", || {
        let got: Vec<serde_json::Value> = lines(&s.path("out.jsonl"))
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        wanted.iter().all(|w| got.contains(w))
    });
    signal(&second, libc::SIGTERM);
    assert_eq!(wait_exit(second).0, Some(0), "{}", s.log());
    let out = json_lines(&s.path("out.jsonl"));
    (s, out)
}

/// Every event of `seqs` exactly once, each key's in order.
fn check(out: &[serde_json::Value], seqs: std::ops::Range<u64>, log: &str) {
    let got: Vec<u64> = out.iter().filter_map(|v| v["seq"].as_u64()).collect();
    let want: Vec<u64> = seqs.collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        want,
        "{} of {} events delivered, each once (got {got:?});\nlog:\n{log}",
        got.len(),
        want.len()
    );
    for k in 0..KEYS {
        let of_key: Vec<u64> = got.iter().copied().filter(|s| s % KEYS == k).collect();
        assert!(of_key.is_sorted(), "key K{k} in order: {of_key:?}");
    }
    assert!(
        out.iter().all(|v| v.get("old").is_none()),
        "nothing from before the start: {out:?};\nlog:\n{log}"
    );
}

#[test]
fn latest_start_survives_a_crash_before_the_first_commit() {
    let broker = Broker::start();
    broker.create_topic("in", PARTITIONS);
    // An older record (on K0's partition), which `latest` must never read.
    broker.produce("in", &[("K0".into(), "{\"old\":1}".into())]);
    let ends: Vec<Option<i64>> = (0..PARTITIONS as i32)
        .map(|p| Some(broker.end_offset("in", p)))
        .collect();
    let (s, out) = crash_before_the_first_event(
        &broker,
        "latest",
        &ends,
        || broker.produce("in", &events(0..100)),
        &events(100..200),
    );
    check(&out, 0..200, &s.log());
}

/// The partitions are empty when the first run resolves the time (there is nothing at or after
/// it: they start at their end); while weir is down, a mirror copies in records that keep
/// their original, older timestamps. They come after where the first run began, so they are
/// read. Resolving the time again at the restart would skip them on Kafka (nothing at or after
/// it: the end again). tansu answers that lookup with offset 0 rather than Kafka's -1, so the
/// loss itself does not show here: the group's committed position after the kill does.
#[test]
fn timestamp_start_is_not_resolved_again_after_a_crash() {
    let broker = Broker::start();
    broker.create_topic("in", PARTITIONS);
    let now = chrono::Utc::now();
    let from = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let older = (now - chrono::Duration::hours(1)).timestamp_millis();
    let (s, out) = crash_before_the_first_event(
        &broker,
        &format!("timestamp:{from}"),
        &[Some(0); PARTITIONS as usize],
        || Producer::new(&broker.addr()).produce_at("in", &events(0..100), older),
        &events(100..200),
    );
    check(&out, 0..200, &s.log());
}
