//! `weir dlq redrive` killed (SIGKILL) at several moments over a large DLQ: each next redrive
//! cleans up what the killed one left and resumes where it stopped, so in the end every event is
//! delivered, and a kill delivers again at most what was in flight.

use crate::support::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

const EVENTS: u64 = 30_000;
/// The test pipeline's `[ordering] max_in_flight`.
const IN_FLIGHT: u64 = 1_000;
/// Records between two saves of the redrive's progress, and a lane's batch.
const BATCH: u64 = 256;

/// A DLQ record as weir writes it: a plugin failed this event, keyed over 8 lanes.
fn record(n: u64) -> String {
    format!(
        "{{\"event\":{{\"id\":\"in.jsonl:{}\",\"source\":\"file\",\"key\":\"k{}\",\"time\":\"2026-11-22T10:00:00.000Z\",\
         \"data\":{{\"n\":{n},\"pad\":\"{}\"}},\"meta\":{{\"line\":{}}}}},\"error\":{{\"stage\":\"plugin:p\",\"kind\":\"error\",\
         \"message\":\"down\",\"attempts\":1,\"first_failed_at\":\"2026-11-22T10:00:01.000Z\",\
         \"last_failed_at\":\"2026-11-22T10:00:01.000Z\"}},\"pipeline\":\"r\"}}\n",
        n + 1,
        n % 8,
        "x".repeat(64),
        n + 1
    )
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn a_killed_dlq_redrive_resumes_where_it_stopped_and_cleans_up() {
    let s = Scratch::new();
    s.write("in.jsonl", "");
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"r\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [ordering]\nmax_in_flight = {IN_FLIGHT}\n\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n"
        ),
    );
    let dlq_dir = s.state_dir().join("r");
    let dlq = dlq_dir.join("dlq.jsonl");
    s.write(
        "state/r/dlq.jsonl",
        (0..EVENTS).map(record).collect::<String>(),
    );
    // What an earlier version's killed redrive left: a temporary copy named after its pid.
    s.write("state/r/dlq.tmp4242", "x".repeat(1 << 20));

    let out = s.path("out.jsonl");
    let redrive = || {
        weir()
            .args(["dlq", "redrive"])
            .arg(&p)
            .arg("--state-dir")
            .arg(s.state_dir())
            .current_dir(s.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Kill moments: as soon as the records are set aside (before the first delivery), then at
    // growing amounts of output; once stopped rather than killed (Ctrl-C: what it started ends,
    // the rest waits for the next redrive). A run that ends before its moment is left alone.
    let bytes_per_event = 100; // {"n":N,"pad":"x...x"} and its newline: about this much
    let moments = [
        (0, libc::SIGKILL),
        (3_000, libc::SIGKILL),
        (8_000, libc::SIGINT),
        (13_000, libc::SIGKILL),
        (20_000, libc::SIGKILL),
        (26_000, libc::SIGKILL),
    ];
    let mut kills = 0u64;
    for (moment, sig) in moments {
        let mut child = redrive();
        wait_for("the kill moment", || {
            child.try_wait().unwrap().is_some()
                || match moment {
                    0 => dlq_dir.join("dlq.jsonl.redrive").exists(),
                    m => size(&out) >= m * bytes_per_event,
                }
        });
        let running = child.try_wait().unwrap().is_none();
        if running {
            signal(&child, sig);
        }
        let (code, log) = wait_exit(child);
        if running && sig == libc::SIGKILL {
            kills += 1;
        } else if running && code != Some(0) {
            eprintln!("stopped redrive: exit {code:?}");
            assert_eq!(code, Some(1), "{log}");
            assert!(log.contains("resumes them"), "{log}");
        }
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed: the redrive is too fast for this test"
    );
    let last = weir()
        .args(["dlq", "redrive"])
        .arg(&p)
        .arg("--state-dir")
        .arg(s.state_dir())
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&last.stdout).into_owned();
    assert_eq!(last.status.code(), Some(0), "{text}{}", stderr(&last));

    // Nothing lost, and no more delivered twice than was in flight at each kill.
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut torn = 0;
    for l in lines(&out) {
        // A kill in the middle of a write may leave a line torn (its event was not finished,
        // so it is delivered again): at most one per kill.
        match serde_json::from_str::<serde_json::Value>(&l) {
            Ok(v) => *seen.entry(v["n"].as_u64().unwrap()).or_default() += 1,
            Err(_) => torn += 1,
        }
    }
    assert!(torn <= kills, "{torn} torn lines after {kills} kills");
    let missing: Vec<u64> = (0..EVENTS).filter(|n| !seen.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{} events lost: {:?}...",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let delivered: u64 = seen.values().sum();
    let duplicates = delivered - EVENTS;
    eprintln!(
        "{kills} kills: {delivered} lines for {EVENTS} events ({duplicates} delivered twice)"
    );
    assert!(
        duplicates <= kills * (IN_FLIGHT + 2 * BATCH),
        "{duplicates} events delivered again after {kills} kills"
    );

    // The DLQ is empty, and nothing is left beside it.
    assert!(lines(&dlq).is_empty(), "{} records left", lines(&dlq).len());
    let mut left: Vec<String> = std::fs::read_dir(&dlq_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("lock"))
        .collect();
    left.sort();
    assert_eq!(left, ["dlq.jsonl"], "left beside the DLQ");
}
