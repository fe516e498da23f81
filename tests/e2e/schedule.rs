//! The schedule source: a `rate(1 second)` schedule's firings counted from their own scheduled
//! times (consecutive seconds, no gap, no repeat), stable ids, catch-up after a stop as
//! `catch_up` says, SIGKILL without a lost firing, and data too deep to read dead-lettered.

use crate::support::*;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A schedule name of this test's own.
fn unique(what: &str) -> String {
    format!(
        "{what}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn pipeline(s: &Scratch, name: &str, catch_up: &str, extra: &str) -> std::path::PathBuf {
    s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"sched\"\ncheckpoint_interval_ms = 50\n\
             [source]\ntype = \"schedule\"\nname = \"{name}\"\nschedule = \"rate(1 second)\"\n\
             catch_up = \"{catch_up}\"\ndata = '{{\"job\": \"tick\", \"at\": <$.meta.scheduled_time>}}'\n{extra}\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\nencoding = \"envelope\"\n"
        ),
    )
}

/// A firing as the sink wrote it.
#[derive(Debug, Clone)]
struct Fired {
    at: DateTime<Utc>,
    catch_up: bool,
}

/// The envelopes written so far (a line torn by SIGKILL is skipped: it is written again whole),
/// each checked: id, time, data and meta agree.
fn fired(s: &Scratch, name: &str) -> Vec<Fired> {
    let text = std::fs::read_to_string(s.path("out.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| {
            let scheduled = e["meta"]["scheduled_time"].as_str().unwrap().to_owned();
            assert_eq!(e["id"], format!("{name}:{scheduled}"), "{e}");
            assert_eq!(e["source"], "schedule");
            assert_eq!(
                e["data"],
                serde_json::json!({"job": "tick", "at": scheduled})
            );
            assert_eq!(e["meta"]["name"], name);
            assert_eq!(e["meta"]["schedule"], "rate(1 second)");
            let at = DateTime::parse_from_rfc3339(&scheduled)
                .unwrap()
                .with_timezone(&Utc);
            let time = DateTime::parse_from_rfc3339(e["time"].as_str().unwrap()).unwrap();
            assert_eq!(time, at, "the event's time is the scheduled time");
            assert!(e["meta"]["fired_at"].is_string());
            Fired {
                at,
                catch_up: e["meta"]["catch_up"].as_bool().unwrap(),
            }
        })
        .collect()
}

/// How many times each scheduled second was written.
fn counts(f: &[Fired]) -> BTreeMap<DateTime<Utc>, usize> {
    let mut m = BTreeMap::new();
    for x in f {
        *m.entry(x.at).or_insert(0) += 1;
    }
    m
}

/// Every second from the first firing to the last is there.
fn assert_no_gap(f: &[Fired]) {
    let seconds: Vec<_> = counts(f).into_keys().collect();
    for w in seconds.windows(2) {
        assert_eq!(
            (w[1] - w[0]).num_seconds(),
            1,
            "gap between {} and {}",
            w[0],
            w[1]
        );
    }
}

/// Runs until `more` firings were written after the `n` already there, then SIGTERM.
fn run_until(s: &Scratch, p: &std::path::Path, name: &str, more: usize) -> Vec<Fired> {
    let before = fired(s, name).len();
    let child = s.spawn_logged(p);
    wait_logged(s, "firings", || fired(s, name).len() >= before + more);
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    fired(s, name)
}

#[test]
fn schedule_rate_fires_every_second_and_catches_up_all() {
    let s = Scratch::new();
    let name = unique("all");
    let p = pipeline(&s, &name, "all", "");
    let child = s.spawn_logged(&p);
    wait_logged(&s, "4 firings", || fired(&s, &name).len() >= 4);
    // Metrics: the next firing's time, in the future of the last one written.
    let address = admin_address(&s.log()).expect("admin address in the log");
    let (status, metrics) = admin_get(&address, "/metrics");
    assert_eq!(status, 200);
    let next: f64 = metrics
        .lines()
        .find(|l| l.starts_with("weir_schedule_next_firing_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no next-firing gauge in\n{metrics}"));
    assert_eq!(admin_get(&address, "/readyz").0, 200);
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    let first = fired(&s, &name);
    assert!(next >= first[3].at.timestamp() as f64, "next firing {next}");
    assert!(first.iter().all(|f| !f.catch_up));
    assert!(
        counts(&first).values().all(|n| *n == 1),
        "a firing repeated: {first:?}"
    );
    assert_no_gap(&first);
    let last = first.last().unwrap().at;

    std::thread::sleep(Duration::from_secs(3));
    let all = run_until(&s, &p, &name, 2);
    let after: Vec<_> = all.iter().filter(|f| f.at > last).cloned().collect();
    assert!(
        counts(&all).values().all(|n| *n == 1),
        "a firing repeated: {all:?}"
    );
    assert_no_gap(&all);
    // The missed seconds came first, marked, then the regular firings.
    let caught: Vec<_> = after.iter().take_while(|f| f.catch_up).collect();
    assert!(caught.len() >= 2, "missed firings caught up: {after:?}");
    assert!(
        after[caught.len()..].iter().all(|f| !f.catch_up),
        "{after:?}"
    );
}

#[test]
fn schedule_catch_up_last_and_none() {
    for catch_up in ["last", "none"] {
        let s = Scratch::new();
        let name = unique(catch_up);
        let p = pipeline(&s, &name, catch_up, "");
        let first = run_until(&s, &p, &name, 2);
        let last = first.last().unwrap().at;
        std::thread::sleep(Duration::from_secs(3));
        let all = run_until(&s, &p, &name, 2);
        assert!(
            counts(&all).values().all(|n| *n == 1),
            "{catch_up}: a firing repeated: {all:?}"
        );
        let after: Vec<_> = all.iter().filter(|f| f.at > last).cloned().collect();
        let caught: Vec<_> = after.iter().filter(|f| f.catch_up).collect();
        let regular: Vec<_> = after.iter().filter(|f| !f.catch_up).collect();
        // The stop lasted 3 s: at least 2 firings were missed.
        match catch_up {
            "last" => {
                assert_eq!(caught.len(), 1, "{after:?}");
                assert_eq!(after[0].at, caught[0].at, "the catch-up comes first");
                assert!(
                    (caught[0].at - last).num_seconds() >= 3,
                    "only the latest missed: {after:?}"
                );
                assert_eq!(
                    (regular[0].at - caught[0].at).num_seconds(),
                    1,
                    "the latest missed one: {after:?}"
                );
            }
            _ => {
                assert!(caught.is_empty(), "{after:?}");
                assert!(
                    (regular[0].at - last).num_seconds() >= 3,
                    "missed ones skipped: {after:?}"
                );
            }
        }
    }
}

#[test]
fn schedule_sigkill_loses_no_firing() {
    let s = Scratch::new();
    let name = unique("kill");
    let p = pipeline(&s, &name, "all", "");
    for round in 0..3 {
        let before = fired(&s, &name).len();
        let mut child = s.spawn_logged(&p);
        wait_logged(&s, "firings", || fired(&s, &name).len() >= before + 2);
        // Mid-firing at times: half a second after a firing, or right away.
        if round == 1 {
            std::thread::sleep(Duration::from_millis(500));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let all = run_until(&s, &p, &name, 2);
    assert_no_gap(&all);
    let repeats: usize = counts(&all).values().map(|n| n - 1).sum();
    // At-least-once: a kill repeats at most the firings emitted and not yet checkpointed
    // (a checkpoint every 50 ms at one firing a second: one or two).
    assert!(
        repeats <= 6,
        "{repeats} repeated firings over 3 kills: {all:?}"
    );
    eprintln!("3 kills: {} firings, {repeats} repeated", all.len());
}

#[test]
fn schedule_data_too_deep_is_dead_lettered_and_check_reports_errors() {
    let s = Scratch::new();
    let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"deep\"\ncheckpoint_interval_ms = 50\n\
             [source]\ntype = \"schedule\"\nschedule = \"rate(1 second)\"\ndata = '{deep}'\n\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n"
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "a dead-lettered firing", || {
        !lines(&s.path("dlq.jsonl")).is_empty()
    });
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    let record = &json_lines(&s.path("dlq.jsonl"))[0];
    assert_eq!(record["error"]["stage"], "source", "{record}");
    assert!(
        record["event"]["id"].as_str().unwrap().starts_with("deep:"),
        "{record}"
    );
    assert!(lines(&s.path("out.jsonl")).is_empty());

    // `weir check`: the key and line of a bad expression.
    let bad = s.write(
        "bad.toml",
        "[pipeline]\nname = \"b\"\n[source]\ntype = \"schedule\"\nschedule = \"cron(0 12 ? * 8 *)\"\n[sink]\ntype = \"stdout\"\n",
    );
    let out = s.check(&bad);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "bad.toml:5:1: `source.schedule`: cron day-of-week `8`: must be 1-7 or SUN-SAT"
        ),
        "{}",
        stderr(&out)
    );
    // `weir dry-run` runs a schedule pipeline's stages on sample events.
    let input = s.write("in.jsonl", "{\"job\": \"x\"}\n");
    let good = s.write(
        "good.toml",
        "[pipeline]\nname = \"g\"\n[source]\ntype = \"schedule\"\nschedule = \"rate(5 minutes)\"\n[sink]\ntype = \"stdout\"\n",
    );
    let out = weir()
        .arg("dry-run")
        .arg(&good)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"outcome\":\"delivered\""));
}
