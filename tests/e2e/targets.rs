//! Several targets per pipeline (`[[target]]`), routed by their rules: each gets exactly the
//! events its rule matches, each key in the order it was read; one event reaching several
//! targets is committed when all of them have it; killing weir mid-stream loses nothing at any
//! target. Also what `weir dry-run` and `weir check` say about targets.

use crate::support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Three file targets over `order_lines`: billing orders, big orders (amount > 400, any
/// department), and everything but support (support orders under 400 match no target).
fn routed_pipeline(name: &str, extra: &str) -> String {
    format!(
        r#"[pipeline]
name = "{name}"
checkpoint_interval_ms = 20
[source]
type = "file"
path = "in.jsonl"
batch_size = 100
[ordering]
key = "<$.data.detail.customerId>"
lanes = 4
{extra}
[[target]]
name = "billing"
when = '{{"data": {{"detail": {{"department": ["billing"]}}}}}}'
type = "file"
path = "billing.jsonl"

[[target]]
name = "big"
when = ['{{"data": {{"detail": {{"amount": [{{"numeric": [">", 400]}}]}}}}}}']
type = "file"
path = "big.jsonl"

[[target]]
name = "not-support"
when = ['{{"data": {{"detail": {{"department": ["billing"]}}}}}}', '{{"data": {{"detail": {{"department": ["shipping"]}}}}}}']
type = "file"
path = "rest.jsonl"
"#
    )
}

/// What each target's rule takes of `order_lines(0..n)`, by seq.
fn expected(n: u64) -> BTreeMap<&'static str, BTreeSet<u64>> {
    let mut want: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for seq in 0..n {
        let dept = seq % 3; // 0 billing, 1 shipping, 2 support
        let amount = (seq % 500) as f64 + 0.5;
        if dept == 0 {
            want.entry("billing").or_default().insert(seq);
        }
        if amount > 400.0 {
            want.entry("big").or_default().insert(seq);
        }
        if dept != 2 {
            want.entry("not-support").or_default().insert(seq);
        }
    }
    want
}

fn unrouted(n: u64) -> u64 {
    (0..n)
        .filter(|seq| seq % 3 == 2 && ((seq % 500) as f64 + 0.5) <= 400.0)
        .count() as u64
}

/// The seqs in a target's file, in order, with each customer's checked to only step forward
/// (or back, after a restart re-read: `restarts_allowed`).
fn read_target(path: &Path, restarts_allowed: bool) -> Vec<u64> {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut seqs = Vec::new();
    for line in lines(path) {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            assert!(restarts_allowed, "a torn line without a kill: {line:?}");
            continue;
        };
        let seq = v["seq"].as_u64().expect("seq");
        let customer = v["detail"]["customerId"]
            .as_str()
            .expect("customer")
            .to_owned();
        if let Some(&before) = last.get(&customer) {
            assert!(
                seq > before || restarts_allowed,
                "{}: customer {customer} went from {before} to {seq}",
                path.display()
            );
        }
        last.insert(customer, seq);
        seqs.push(seq);
    }
    seqs
}

/// `"target stopped"` log lines: target → (routed, delivered).
fn target_counts(log: &str) -> BTreeMap<String, (u64, u64)> {
    let field = |line: &str, name: &str| -> u64 {
        let at = line.find(&format!("{name}=")).expect(name) + name.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .expect("a number")
    };
    log.lines()
        .filter(|l| l.contains("target stopped"))
        .map(|l| {
            let at = l.find("target=").expect("target=") + 7;
            let name = l[at..].split_whitespace().next().unwrap().to_owned();
            (name, (field(l, "routed"), field(l, "delivered")))
        })
        .collect()
}

#[test]
fn each_target_gets_exactly_what_its_rule_matches_each_key_in_order() {
    const N: u64 = 6000;
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..N));
    let p = s.write("p.toml", routed_pipeline("routed", ""));
    let out = s.run(&p);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");

    let want = expected(N);
    for (target, file) in [
        ("billing", "billing.jsonl"),
        ("big", "big.jsonl"),
        ("not-support", "rest.jsonl"),
    ] {
        let got = read_target(&s.path(file), false);
        let set: BTreeSet<u64> = got.iter().copied().collect();
        assert_eq!(got.len(), set.len(), "{target}: an event came twice");
        assert_eq!(
            &set, &want[target],
            "{target}: not exactly what its rule matches"
        );
    }
    // Every target's count, and the pipeline's: an event reaching several targets is one
    // delivered event; one reaching none is filtered.
    let counts = target_counts(&log);
    for (target, seqs) in &want {
        let n = seqs.len() as u64;
        assert_eq!(counts.get(*target), Some(&(n, n)), "{target}: {log}");
    }
    let filtered = unrouted(N);
    assert!(
        log.contains(&format!(
            "received={N} delivered={} filtered={filtered} dead_lettered=0",
            N - filtered
        )),
        "{log}"
    );
}

#[test]
fn a_dry_run_shows_the_targets_each_event_reaches_and_why_none() {
    let s = Scratch::new();
    let p = s.write("p.toml", routed_pipeline("dry", ""));
    // seq 0: billing (amount 0.5); seq 403: shipping, amount 403.5 (big, not-support);
    // seq 2: support, small (none).
    let input = order_lines(0..1) + &order_lines(403..404) + &order_lines(2..3);
    let input_file = s.write("sample.jsonl", input);
    let out = weir()
        .arg("dry-run")
        .arg(&p)
        .arg("--input")
        .arg(&input_file)
        .current_dir(s.path(""))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let targets = |i: usize| -> Vec<String> {
        lines[i]["targets"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(lines[0]["outcome"], "delivered", "{text}");
    assert_eq!(targets(0), ["billing", "not-support"]);
    assert!(
        lines[0]["targets"]["billing"]["body"]
            .as_str()
            .unwrap()
            .contains("\"seq\":0")
    );
    assert_eq!(targets(1), ["big", "not-support"]);
    assert_eq!(lines[2]["outcome"], "filtered", "{text}");
    let why: Vec<&str> = lines[2]["why"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["target"].as_str().unwrap())
        .collect();
    assert_eq!(why, ["billing", "big", "not-support"], "{text}");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn killed_mid_stream_every_target_gets_every_matching_event_in_key_order() {
    const N: u64 = 60_000;
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..N));
    let p = s.write("p.toml", routed_pipeline("crashy-targets", ""));
    let size = |f: &str| std::fs::metadata(s.path(f)).map(|m| m.len()).unwrap_or(0);
    let mut kills = 0;
    for round in 0..6u64 {
        let mut child = s.spawn(&p);
        let before = size("rest.jsonl");
        wait_for("progress", || {
            size("rest.jsonl") > before + 50_000 + round * 30_000
                || child.try_wait().unwrap().is_some()
        });
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let done = s.run(&p);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert!(
        kills >= 2,
        "finished before it was killed often enough ({kills})"
    );
    let want = expected(N);
    for (target, file) in [
        ("billing", "billing.jsonl"),
        ("big", "big.jsonl"),
        ("not-support", "rest.jsonl"),
    ] {
        let got = read_target(&s.path(file), true);
        let set: BTreeSet<u64> = got.iter().copied().collect();
        assert_eq!(&set, &want[target], "{target}: events lost or misrouted");
        assert_no_skips(target, &got, &want[target]);
    }
}

/// Per customer, the target's events go forward one at a time through what its rule matches,
/// stepping back only where a restart read them again: never skipping one ahead.
pub(crate) fn assert_no_skips(target: &str, got: &[u64], want: &BTreeSet<u64>) {
    let customer = |seq: u64| seq % 17; // as order_lines makes them
    let mut expected: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &seq in want {
        expected.entry(customer(seq)).or_default().push(seq);
    }
    let mut at: BTreeMap<u64, usize> = BTreeMap::new();
    for &seq in got {
        let list = &expected[&customer(seq)];
        let i = list
            .binary_search(&seq)
            .unwrap_or_else(|_| panic!("{target}: seq {seq} does not match its rule"));
        if let Some(&prev) = at.get(&customer(seq)) {
            assert!(
                i <= prev + 1,
                "{target}: customer C{:03} skipped from {} to {seq}",
                customer(seq),
                list[prev]
            );
        } else {
            assert_eq!(
                i,
                0,
                "{target}: customer C{:03} starts at {seq}",
                customer(seq)
            );
        }
        at.insert(customer(seq), i);
    }
}

/// Two targets taking every event: `good` in the scratch dir, `full` on a small disk. `retry`
/// is `full`'s `[target.retry]`.
fn full_disk_pipeline(name: &str, full: &Path, retry: &str) -> String {
    format!(
        r#"[pipeline]
name = "{name}"
checkpoint_interval_ms = 20
[source]
type = "file"
path = "in.jsonl"
batch_size = 100
[ordering]
key = "<$.data.detail.customerId>"
lanes = 4
max_in_flight = 100000
[[target]]
name = "good"
type = "file"
path = "good.jsonl"
[[target]]
name = "full"
type = "file"
path = "{}"
[target.retry]
{retry}
"#,
        full.display()
    )
}

#[test]
fn a_target_that_is_down_holds_up_only_itself_and_gets_everything_when_it_is_back() {
    const N: u64 = 3000;
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..N));
    let disk = crate::delivery::SmallDisk::mount(s.path("disk"), 1024);
    let full = disk.dir.join("full.jsonl");
    crate::delivery::fill(&disk.dir.join("filler"));
    let p = s.write(
        "p.toml",
        full_disk_pipeline("half-down", &full, "backoff_ms = [10, 200]"),
    );
    let mut child = s.spawn_logged(&p);
    // The good target takes every event while the other cannot write a byte.
    wait_logged(&s, "the good target to have every event", || {
        lines(&s.path("good.jsonl")).len() as u64 == N
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "weir ended with a target down"
    );
    assert!(lines(&full).is_empty());
    let address = admin_address(&s.log()).expect("the admin address in the log");
    let (_, body) = admin_get(&address, "/pipelines");
    let status: Value = serde_json::from_str(&body).unwrap();
    let targets = &status["pipelines"][0]["targets"];
    assert_eq!(targets[0]["name"], "good", "{body}");
    assert_eq!(targets[0]["delivered"], N, "{body}");
    assert_eq!(targets[1]["name"], "full", "{body}");
    assert_eq!(targets[1]["delivered"], 0, "{body}");
    assert_eq!(targets[1]["in_flight"], N, "{body}");
    assert!(targets[1]["retried"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        status["pipelines"][0]["in_flight"], N,
        "nothing is committed yet: {body}"
    );
    let (_, metrics) = admin_get(&address, "/metrics");
    let metric = |target: &str, outcome: &str| -> Option<String> {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("weir_target_events_total{")
                    && l.contains(&format!("target=\"{target}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_owned)
    };
    assert_eq!(
        metric("good", "delivered").as_deref(),
        Some(N.to_string().as_str()),
        "{metrics}"
    );
    assert_eq!(
        metric("full", "routed").as_deref(),
        Some(N.to_string().as_str()),
        "{metrics}"
    );
    assert_eq!(
        metric("full", "delivered").as_deref(),
        Some("0"),
        "{metrics}"
    );
    // `weir top` shows each target on a line of its own, the one that is down with its events
    // in flight.
    let top = weir()
        .args(["top", "--iterations", "1", "--admin", &address])
        .output()
        .unwrap();
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    let line = |name: &str| {
        top.lines()
            .find(|l| l.trim_start().starts_with(&format!("-> {name}")))
            .unwrap_or_else(|| panic!("no line for target {name}: {top}"))
            .to_owned()
    };
    assert!(
        line("full").split_whitespace().any(|w| w == N.to_string()),
        "{top}"
    );
    assert!(line("good").split_whitespace().any(|w| w == "0"), "{top}");

    // Room again: the held-up target gets every event, in key order, and the run ends.
    std::fs::remove_file(disk.dir.join("filler")).unwrap();
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    let want: BTreeSet<u64> = (0..N).collect();
    for path in [s.path("good.jsonl"), full.clone()] {
        let got = read_target(&path, false);
        assert_eq!(
            got.len() as u64,
            N,
            "{}: an event twice or missing",
            path.display()
        );
        assert_eq!(got.iter().copied().collect::<BTreeSet<u64>>(), want);
    }
    let counts = target_counts(&s.log());
    assert_eq!(counts["good"], (N, N));
    assert_eq!(counts["full"], (N, N));
}

#[test]
fn an_event_a_target_dead_lettered_is_redriven_to_that_target_only() {
    const N: u64 = 300;
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..N));
    let disk = crate::delivery::SmallDisk::mount(s.path("disk"), 1024);
    let full = disk.dir.join("full.jsonl");
    crate::delivery::fill(&disk.dir.join("filler"));
    let p = s.write(
        "p.toml",
        full_disk_pipeline(
            "redrive-one",
            &full,
            "max_attempts = 2\nbackoff_ms = [10, 20]",
        ),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lines(&s.path("good.jsonl")).len() as u64, N);
    let dlq = json_lines(&s.state_dir().join("redrive-one/dlq.jsonl"));
    assert_eq!(dlq.len() as u64, N);
    assert!(
        dlq.iter()
            .all(|r| r["error"]["stage"] == "target:full" && r["error"]["kind"] == "exhausted"),
        "{:?}",
        dlq[0]
    );

    std::fs::remove_file(disk.dir.join("filler")).unwrap();
    let redrive = weir()
        .args(["dlq", "redrive", "p.toml", "--state-dir"])
        .arg(s.state_dir())
        .current_dir(s.path(""))
        .output()
        .unwrap();
    assert_eq!(redrive.status.code(), Some(0), "{}", stderr(&redrive));
    // The full target has them now, once each; the good one did not get them again.
    let got = read_target(&full, false);
    assert_eq!(
        got.iter().copied().collect::<BTreeSet<u64>>(),
        (0..N).collect()
    );
    assert_eq!(got.len() as u64, N);
    assert_eq!(
        lines(&s.path("good.jsonl")).len() as u64,
        N,
        "the good target got them twice"
    );
}

#[test]
fn the_routing_example_sends_each_order_where_its_rules_say() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let s = Scratch::new();
    for rel in ["pipelines/routing.toml", "pipelines/data/orders.jsonl"] {
        s.write(rel, std::fs::read(root.join(rel)).unwrap());
    }
    s.write(
        "plugins/redact/redact.wasm",
        std::fs::read(crate::plugins::plugin("redact/redact.wasm")).unwrap(),
    );
    assert_eq!(
        s.check(&s.path("pipelines/routing.toml")).status.code(),
        Some(0)
    );
    let out = s.run(&s.path("pipelines/routing.toml"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let orders = json_lines(&s.path("pipelines/data/orders.jsonl"));
    let archive = json_lines(&s.path("var/out/routing-archive.jsonl"));
    assert_eq!(archive.len(), orders.len());
    assert!(
        archive
            .iter()
            .all(|e| e["data"]["detail"]["email"] == "***"),
        "redacted before routing"
    );
    let billing = json_lines(&s.path("var/out/routing-billing.jsonl"));
    let want = orders
        .iter()
        .filter(|o| o["detail"]["department"] == "billing")
        .count();
    assert!(want > 0 && billing.len() == want);
    let big = json_lines(&s.path("var/out/routing-big.jsonl"));
    let want: Vec<&Value> = orders
        .iter()
        .filter(|o| o["detail"]["amount"].as_f64().unwrap() > 200.0)
        .collect();
    assert_eq!(big.len(), want.len());
    assert!(
        big.iter()
            .all(|b| b["amount"].as_f64().unwrap() > 200.0 && b.get("order").is_some())
    );
}
