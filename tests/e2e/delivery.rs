//! The delivery engine's promises under load, on the real binary: every event is delivered,
//! filtered or dead-lettered (accounting exact), a key's events are never reordered, retries
//! and poison events hold up only their own lane, and SIGKILL at any moment loses nothing.
//!
//! The transient sink failure is real: the sink writes to a small tmpfs that a "filler" thread
//! fills to the last byte and empties again, so writes fail with ENOSPC for a while and then
//! succeed. Mounting needs root, as the project's machines and CI run.

use crate::plugins::plugin;
use crate::support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// A tmpfs of a few MiB, unmounted when dropped.
pub(crate) struct SmallDisk {
    pub(crate) dir: PathBuf,
}

impl SmallDisk {
    pub(crate) fn mount(dir: PathBuf, size_kib: u64) -> Self {
        Self::mount_with(dir, &format!("size={size_kib}k"))
    }

    fn mount_with(dir: PathBuf, options: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to make the sink's disk fill up, and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the disk to the last byte, holds it full, empties it, and again, until stopped.
struct Filler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Filler {
    fn start(dir: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let path = dir.join("filler");
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut fills = 0;
            while !stopped.load(Relaxed) {
                fill(&path);
                fills += 1;
                std::thread::sleep(Duration::from_millis(40));
                let _ = std::fs::remove_file(&path);
                std::thread::sleep(Duration::from_millis(25));
            }
            fills
        });
        Filler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops filling (the disk is left empty of filler); returns how often it filled the disk.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Writes `path` until the disk is full, to the last byte.
pub(crate) fn fill(path: &Path) {
    use std::io::Write;
    let Ok(mut f) = std::fs::File::create(path) else {
        return;
    };
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
}

/// The test stream: `keys` keys, each with its own sequence numbers; about 5% of the events
/// (chosen by a seeded generator) ask the faults plugin to fail them.
pub(crate) struct Stream {
    pub lines: Vec<String>,
    /// Per key, the sequence numbers that must be delivered, in order.
    pub expected: BTreeMap<String, Vec<u64>>,
    /// (key, seq) of the events the plugin fails.
    pub faulty: BTreeSet<(String, u64)>,
}

impl Stream {
    pub(crate) fn new(events: u64, keys: u64, seed: u64) -> Self {
        let mut rng = seed;
        let mut next = || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rng >> 33
        };
        let mut seqs: BTreeMap<String, u64> = BTreeMap::new();
        let mut s = Stream {
            lines: Vec::new(),
            expected: BTreeMap::new(),
            faulty: BTreeSet::new(),
        };
        for _ in 0..events {
            let key = format!("K{:02}", next() % keys);
            let seq = seqs.entry(key.clone()).or_default();
            let fail = next() % 100 < 5;
            if fail {
                s.lines.push(format!(
                    "{{\"k\":\"{key}\",\"seq\":{seq},\"fault\":\"error\"}}\n"
                ));
                s.faulty.insert((key.clone(), *seq));
            } else {
                s.lines.push(format!(
                    "{{\"k\":\"{key}\",\"seq\":{seq},\"pad\":\"{}\"}}\n",
                    "x".repeat(40)
                ));
                s.expected.entry(key.clone()).or_default().push(*seq);
            }
            *seq += 1;
        }
        s
    }

    pub(crate) fn delivered_count(&self) -> usize {
        self.expected.values().map(Vec::len).sum()
    }
}

/// Appends the stream's lines to `path` a few at a time, so that weir sees a continuous load.
fn writer(
    lines: Vec<String>,
    path: PathBuf,
    per_tick: usize,
    tick: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        for chunk in lines.chunks(per_tick) {
            f.write_all(chunk.concat().as_bytes()).unwrap();
            std::thread::sleep(tick);
        }
    })
}

/// Waits until the running weir (the last one in the log) has no event of `pipeline` under way
/// and has read nothing new for 200 ms: its source is at the end of its input.
fn wait_until_idle(s: &Scratch, pipeline: &str) {
    // The newest process's admin address, read anew at each look: on a loaded machine the
    // process just started may not have said it yet, and the one before it was killed.
    let counts = || -> Option<(u64, u64)> {
        let log = s.log();
        let at = log.rfind("admin server listening address=")?;
        let admin = admin_address(&log[at..])?;
        let (code, body) = admin_get(&admin, &format!("/pipelines/{pipeline}"));
        let v: Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
        Some((v["in_flight"].as_u64()?, v["counts"]["received"].as_u64()?))
    };
    wait_logged(s, "the pipeline to end every event it read", || {
        let Some((0, received)) = counts() else {
            return false;
        };
        std::thread::sleep(Duration::from_millis(200));
        counts() == Some((0, received))
    });
}

fn engine_pipeline(out: &Path) -> String {
    format!(
        "[pipeline]\nname = \"engine\"\ncheckpoint_interval_ms = 20\n\
         [source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\npoll_interval_ms = 5\nbatch_size = 100\n\
         [[plugin]]\npath = {:?}\n\
         [ordering]\nkey = \"<$.data.k>\"\nlanes = 4\n\
         [retry]\nbackoff_ms = [5, 40]\n\
         [sink]\ntype = \"file\"\npath = {out:?}\n\
         [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
        plugin("fixtures/faults/faults.wasm")
    )
}

/// Checks the output against the stream: per key, every event to deliver appears, and a new
/// one never appears before an earlier one of its key; a repeat is allowed only if `repeats`
/// (re-delivery after a crash). Lines torn by SIGKILL are skipped and counted. Returns
/// (repeats, torn lines).
pub(crate) fn check_output(out: &Path, stream: &Stream, repeats: bool) -> (usize, usize) {
    let mut next: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    let (mut dups, mut torn) = (0, 0);
    for line in lines(out) {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            torn += 1;
            continue;
        };
        assert_eq!(v["seen_by"], "faults", "went through the plugin: {line}");
        let key = v["k"].as_str().unwrap().to_owned();
        let seq = v["seq"].as_u64().unwrap();
        assert!(
            !stream.faulty.contains(&(key.clone(), seq)),
            "a failed event was delivered: {line}"
        );
        if !seen.insert((key.clone(), seq)) {
            assert!(repeats, "delivered twice without a crash: {line}");
            dups += 1;
            continue;
        }
        let want = &stream.expected[key.as_str()];
        let i = next.entry(key.clone()).or_default();
        assert_eq!(
            want.get(*i),
            Some(&seq),
            "key {key}: expected seq {:?} next, got {seq} (reordered or lost)",
            want.get(*i)
        );
        *i += 1;
    }
    for (key, want) in &stream.expected {
        assert_eq!(
            next.get(key.as_str()).copied().unwrap_or(0),
            want.len(),
            "key {key}: events lost"
        );
    }
    (dups, torn)
}

/// The dead-letter queue holds exactly the failed events (each possibly more than once after a
/// crash), each with the plugin's reason and the original event.
pub(crate) fn check_dlq(dlq: &Path, stream: &Stream) {
    let mut got = BTreeSet::new();
    for line in lines(dlq) {
        let Ok(r) = serde_json::from_str::<Value>(&line) else {
            continue; // torn by SIGKILL, written again whole
        };
        assert_eq!(r["error"]["stage"], "plugin:faults", "{r}");
        assert_eq!(r["error"]["kind"], "error", "{r}");
        assert_eq!(
            r["event"]["data"]["fault"], "error",
            "the original event: {r}"
        );
        got.insert((
            r["event"]["data"]["k"].as_str().unwrap().to_owned(),
            r["event"]["data"]["seq"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        got, stream.faulty,
        "dead-lettered = the events the plugin failed"
    );
}

/// `key=value` of the last "pipeline stopped" line, checked to add up.
fn final_counts(log: &str) -> BTreeMap<String, u64> {
    let line = log
        .lines()
        .rfind(|l| l.contains("pipeline stopped"))
        .unwrap_or_else(|| panic!("no final counts in:\n{log}"));
    let counts: BTreeMap<String, u64> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect();
    assert_eq!(
        counts["received"],
        counts["delivered"] + counts["filtered"] + counts["dead_lettered"] + counts["dropped"],
        "received = delivered + filtered + dead_lettered + dropped: {line}"
    );
    assert_eq!(counts["unfinished"], 0, "{line}");
    counts
}

fn out_complete(out: &Path, stream: &Stream) -> bool {
    let want = stream.delivered_count();
    let have = lines(out);
    if have.len() < want {
        return false;
    }
    let unique: BTreeSet<&String> = have.iter().collect();
    unique.len() >= want
}

#[test]
fn continuous_load_with_failing_plugin_and_sink_loses_nothing_and_keeps_key_order() {
    let s = Scratch::new();
    let disk = SmallDisk::mount(s.path("disk"), 4096);
    let out = disk.dir.join("out.jsonl");
    let stream = Stream::new(20_000, 40, 7);
    s.write("in.jsonl", "");
    let p = s.write("p.toml", engine_pipeline(&out));
    let filler = Filler::start(&disk.dir);
    let child = s.spawn_logged(&p);
    let w = writer(
        stream.lines.clone(),
        s.path("in.jsonl"),
        200,
        Duration::from_millis(10),
    );
    w.join().unwrap();
    wait_logged(&s, "every event delivered", || out_complete(&out, &stream));
    let fills = filler.stop();
    wait_logged(&s, "every failed event dead-lettered", || {
        lines(&s.path("dlq.jsonl")).len() >= stream.faulty.len()
    });
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");

    check_output(&out, &stream, false);
    check_dlq(&s.path("dlq.jsonl"), &stream);
    let counts = final_counts(&log);
    assert_eq!(counts["received"], stream.lines.len() as u64);
    assert_eq!(counts["delivered"], stream.delivered_count() as u64);
    assert_eq!(counts["dead_lettered"], stream.faulty.len() as u64);
    assert!(
        log.contains(&format!(
            "failed_by_stage=plugin:faults:{}",
            stream.faulty.len()
        )),
        "dead letters counted by stage: {log}"
    );
    assert!(
        fills > 0 && counts["retried"] > 0,
        "the sink failed and was retried ({fills} fills): {log}"
    );
    assert!(
        log.contains("No space left on device"),
        "the failures were the full disk"
    );
}

#[test]
fn sigkill_twenty_times_under_load_loses_nothing_and_keeps_key_order() {
    let s = Scratch::new();
    let disk = SmallDisk::mount(s.path("disk"), 8192);
    let out = disk.dir.join("out.jsonl");
    let stream = Stream::new(30_000, 40, 11);
    s.write("in.jsonl", "");
    let p = s.write("p.toml", engine_pipeline(&out));
    let filler = Filler::start(&disk.dir);
    let w = writer(
        stream.lines.clone(),
        s.path("in.jsonl"),
        100,
        Duration::from_millis(10),
    );

    let mut rng = 3u64;
    for _ in 0..20 {
        let mut child = s.spawn_logged(&p);
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(80 + (rng >> 33) % 250));
        if let Some(status) = child.try_wait().unwrap() {
            let log = s.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "weir exited on its own ({status}); log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    w.join().unwrap();
    let child = s.spawn_logged(&p);
    wait_logged(&s, "every event delivered after the restarts", || {
        out_complete(&out, &stream)
    });
    filler.stop();
    wait_logged(&s, "every failed event dead-lettered", || {
        let got: BTreeSet<String> = lines(&s.path("dlq.jsonl")).into_iter().collect();
        got.len() >= stream.faulty.len()
    });
    // This run reads again what the last kill left uncommitted, and may still be delivering it
    // (into a disk that was full until the filler stopped): a SIGTERM then stops it with those
    // events unfinished, and weir exits 1 as it should. Stop it once it has read to the end and
    // ended every event.
    wait_until_idle(&s, "engine");
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");

    let (repeats, torn) = check_output(&out, &stream, true);
    assert!(torn <= 20, "{torn} torn lines for 20 kills");
    check_dlq(&s.path("dlq.jsonl"), &stream);
    final_counts(&log);
    eprintln!("{repeats} re-deliveries, {torn} torn lines after 20 kills");
}

/// The lane weir routes a key to (pipeline/mod.rs `lane_of`): std's DefaultHasher with its
/// fixed keys, so the test can pick keys that do not share the poisoned key's lane.
fn lane_of(key: &str, lanes: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() % lanes
}

#[test]
fn a_poison_event_holds_up_only_its_own_lane() {
    let s = Scratch::new();
    let lanes = 8;
    let poisoned = "P";
    let others: Vec<String> = (0..100)
        .map(|i| format!("K{i}"))
        .filter(|k| lane_of(k, lanes) != lane_of(poisoned, lanes))
        .take(6)
        .collect();
    // The poison never returns: each call that holds it runs into the 1 s deadline, and
    // bisection needs several such calls to isolate it.
    let mut input = format!("{{\"k\":\"{poisoned}\",\"seq\":0,\"fault\":\"loop\"}}\n");
    for seq in 1..6 {
        input.push_str(&format!("{{\"k\":\"{poisoned}\",\"seq\":{seq}}}\n"));
    }
    for seq in 0..50 {
        for k in &others {
            input.push_str(&format!("{{\"k\":\"{k}\",\"seq\":{seq}}}\n"));
        }
    }
    s.write("in.jsonl", input);
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"poison\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [[plugin]]\npath = {:?}\ntimeout_ms = 1000\n\
             [ordering]\nkey = \"<$.data.k>\"\nlanes = {lanes}\n\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            plugin("fixtures/faults/faults.wasm")
        ),
    );
    let run = s.run(&p);
    let log = stderr(&run);
    assert_eq!(run.status.code(), Some(0), "{log}");
    let got = json_lines(&s.path("out.jsonl"));
    let keys: Vec<&str> = got.iter().map(|v| v["k"].as_str().unwrap()).collect();
    // Every other key's 50 events were written while the poisoned lane was still bisecting.
    let first_p = keys
        .iter()
        .position(|k| *k == poisoned)
        .expect("P's later events delivered");
    assert_eq!(
        first_p,
        others.len() * 50,
        "other keys went first: {keys:?}"
    );
    let p_seqs: Vec<u64> = got[first_p..]
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(p_seqs, [1, 2, 3, 4, 5], "the poison's successors, in order");
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["error"]["kind"], "timeout");
    assert_eq!(dlq[0]["error"]["message"], "plugin faults exceeded 1000 ms");
    final_counts(&log);
}

/// A pipeline whose sink is on a full disk (every write fails with ENOSPC, fsync works).
fn failing_sink_pipeline(s: &Scratch, name: &str, retry: &str) -> (SmallDisk, PathBuf) {
    let disk = SmallDisk::mount(s.path("disk"), 64);
    fill(&disk.dir.join("filler"));
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"{name}\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [retry]\n{retry}\n[sink]\ntype = \"file\"\npath = {:?}\n\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            disk.dir.join("out.jsonl")
        ),
    );
    (disk, p)
}

#[test]
fn retries_end_after_max_attempts_in_the_dead_letter_queue() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..30));
    let (_disk, p) = failing_sink_pipeline(&s, "exhaust", "max_attempts = 3\nbackoff_ms = [1, 5]");
    let run = s.run(&p);
    let log = stderr(&run);
    assert_eq!(run.status.code(), Some(0), "{log}");
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 30);
    for (i, r) in dlq.iter().enumerate() {
        assert_eq!(r["event"]["data"]["seq"], i as u64, "in order");
        assert_eq!(r["error"]["stage"], "sink");
        assert_eq!(r["error"]["kind"], "exhausted");
        assert_eq!(r["error"]["attempts"], 3);
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("gave up after 3 attempts: ") && message.contains("No space left"),
            "{message}"
        );
    }
    let c = final_counts(&log);
    assert!(log.contains("failed_by_stage=sink:30"), "{log}");
    assert_eq!(
        (c["dead_lettered"], c["retried"]),
        (30, 60),
        "two retries of 30 events"
    );
}

/// SIGTERM while the sink keeps failing: weir stops at once (it does not wait out retries that
/// may never succeed), but it must not say it drained: the log says how many events were left
/// unfinished, the exit code is 1 (it was 0), and the next run delivers them.
#[test]
fn stopping_with_events_unfinished_exits_1_and_they_come_again() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..30));
    let (disk, p) = failing_sink_pipeline(&s, "stuck", "backoff_ms = [10, 50]");
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the sink write to be retried", || {
        s.log().contains("sink write failed")
    });
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("unfinished=30"), "{log}");
    assert!(log.contains("stopped with events unfinished"), "{log}");
    assert!(!log.contains("every pipeline drained"), "{log}");

    // Nothing was committed past them: with room on the disk, the next run delivers all 30.
    std::fs::remove_file(disk.dir.join("filler")).unwrap();
    let run = s.run(&p);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert_eq!(lines(&disk.dir.join("out.jsonl")).len(), 30);
}

#[test]
fn on_failure_drop_counts_and_drops() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..10));
    let (_disk, p) = failing_sink_pipeline(
        &s,
        "dropper",
        "max_attempts = 2\nbackoff_ms = [1, 1]\non_failure = \"drop\"",
    );
    let run = s.run(&p);
    let log = stderr(&run);
    assert_eq!(run.status.code(), Some(0), "{log}");
    assert!(lines(&s.path("dlq.jsonl")).is_empty());
    let c = final_counts(&log);
    assert_eq!((c["dropped"], c["dead_lettered"]), (10, 0));
    assert!(log.contains("event dropped"), "{log}");
}

#[test]
fn on_failure_block_holds_the_key_until_a_fixed_plugin_is_reloaded() {
    let s = Scratch::new();
    std::fs::copy(plugin("fixtures/faults/faults.wasm"), s.path("plugin.wasm")).unwrap();
    let mut input = String::new();
    for seq in 0..5 {
        let fault = if seq == 2 { ",\"fault\":\"error\"" } else { "" };
        input.push_str(&format!(
            "{{\"k\":\"B\",\"seq\":{seq},\"email\":\"b@x.org\"{fault}}}\n"
        ));
    }
    s.write("in.jsonl", input);
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"blocker\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\n\
         [[plugin]]\npath = \"plugin.wasm\"\nname = \"live\"\nconfig = { fields = [\"email\"] }\n\
         [ordering]\nkey = \"<$.data.k>\"\n[retry]\nbackoff_ms = [10, 100]\non_failure = \"block\"\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
    );
    let child = s.spawn_logged(&p);
    wait_for("the key to block", || {
        s.log().matches("blocking its lane").count() >= 3
    });
    let before: Vec<u64> = json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(before, [0, 1], "nothing after the blocked event");

    // The fix: a plugin that does not fail the event (redact). The blocked event and its
    // successors go through it.
    std::fs::copy(plugin("redact/redact.wasm"), s.path("plugin.wasm.tmp")).unwrap();
    std::fs::rename(s.path("plugin.wasm.tmp"), s.path("plugin.wasm")).unwrap();
    wait_for("the rest delivered", || {
        lines(&s.path("out.jsonl")).len() == 5
    });
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");
    let got = json_lines(&s.path("out.jsonl"));
    let seqs: Vec<u64> = got.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    assert_eq!(
        got[2]["email"], "***",
        "the blocked event went through the new version"
    );
    assert!(lines(&s.path("dlq.jsonl")).is_empty());
    let c = final_counts(&log);
    assert_eq!((c["delivered"], c["dead_lettered"]), (5, 0));
}

#[test]
fn a_sink_that_cannot_be_opened_for_a_while_is_waited_for() {
    let s = Scratch::new();
    // A file system out of inodes: the sink's file cannot be created until one is freed.
    let disk = SmallDisk::mount_with(s.path("disk"), "size=64k,nr_inodes=16");
    let mut fillers = Vec::new();
    for i in 0.. {
        let f = disk.dir.join(format!("filler{i}"));
        if std::fs::write(&f, "").is_err() {
            break;
        }
        fillers.push(f);
    }
    let out = disk.dir.join("out.jsonl");
    s.write("in.jsonl", order_lines(0..50));
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"late\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [retry]\nbackoff_ms = [10, 50]\n[sink]\ntype = \"file\"\npath = {out:?}\n"
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the open to be retried", || {
        s.log().contains("cannot open; retrying")
    });
    std::fs::remove_file(fillers.pop().unwrap()).unwrap();
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(lines(&out).len(), 50);
    final_counts(&log);
}

/// The test stream of a second pipeline: the same shape, its keys renamed (`J..` for `K..`),
/// so that the two can be told apart in a file they share.
fn renamed(stream: Stream) -> Stream {
    let j = |k: &str| k.replacen('K', "J", 1);
    Stream {
        lines: stream
            .lines
            .iter()
            .map(|l| l.replacen("\"k\":\"K", "\"k\":\"J", 1))
            .collect(),
        expected: stream
            .expected
            .into_iter()
            .map(|(k, v)| (j(&k), v))
            .collect(),
        faulty: stream.faulty.into_iter().map(|(k, s)| (j(&k), s)).collect(),
    }
}

/// Writes the lines of `file` whose key starts with `prefix` (as `"k":"PREFIX`, or in a DLQ
/// record's event) to `to`; returns the number of lines that are not JSON (torn).
fn split_by_key(file: &Path, prefix: &str, to: &Path) -> usize {
    let mut torn = 0;
    let mut mine = String::new();
    for line in lines(file) {
        match serde_json::from_str::<Value>(&line) {
            Err(_) => torn += 1,
            Ok(v) => {
                let key = v["k"].as_str().or(v["event"]["data"]["k"].as_str());
                if key.is_some_and(|k| k.starts_with(prefix)) {
                    mine.push_str(&line);
                    mine.push('\n');
                }
            }
        }
    }
    std::fs::write(to, mine).unwrap();
    torn
}

#[test]
fn two_pipelines_sharing_a_sink_and_a_dlq_on_a_disk_that_fills_lose_nothing() {
    let s = Scratch::new();
    let disk = SmallDisk::mount(s.path("disk"), 4096);
    let (out, dlq) = (disk.dir.join("out.jsonl"), disk.dir.join("dlq.jsonl"));
    let streams = [
        Stream::new(12_000, 20, 5),
        renamed(Stream::new(12_000, 20, 9)),
    ];
    for name in ["a", "b"] {
        s.write(&format!("{name}.jsonl"), "");
        s.write(
            &format!("pipelines/{name}.toml"),
            format!(
                "[pipeline]\nname = \"{name}\"\ncheckpoint_interval_ms = 20\n\
                 [source]\ntype = \"file\"\npath = \"{name}.jsonl\"\nfollow = true\npoll_interval_ms = 5\nbatch_size = 100\n\
                 [[plugin]]\npath = {:?}\n\
                 [ordering]\nkey = \"<$.data.k>\"\nlanes = 4\n\
                 [retry]\nbackoff_ms = [5, 40]\n\
                 [sink]\ntype = \"file\"\npath = {out:?}\n\
                 [dlq]\ntype = \"file\"\npath = {dlq:?}\n",
                plugin("fixtures/faults/faults.wasm")
            ),
        );
    }
    let filler = Filler::start(&disk.dir);
    let child = s.spawn_logged(&s.path("pipelines"));
    let writers: Vec<_> = [("a", &streams[0]), ("b", &streams[1])]
        .into_iter()
        .map(|(name, stream)| {
            writer(
                stream.lines.clone(),
                s.path(&format!("{name}.jsonl")),
                200,
                Duration::from_millis(10),
            )
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let delivered: usize = streams.iter().map(Stream::delivered_count).sum();
    let failed: usize = streams.iter().map(|st| st.faulty.len()).sum();
    // Lines lost to a cut would never come: the wait would time out.
    wait_logged(&s, "every event delivered and dead-lettered", || {
        lines(&out).len() >= delivered && lines(&dlq).len() >= failed
    });
    let fills = filler.stop();
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        fills > 0 && log.contains("No space left on device"),
        "the disk filled up ({fills} fills)"
    );

    // Each pipeline's events, exactly once (no crash: nothing to repeat), in key order; no
    // torn line in either file.
    for (prefix, stream) in [("K", &streams[0]), ("J", &streams[1])] {
        let (mine_out, mine_dlq) = (
            s.path(&format!("out-{prefix}")),
            s.path(&format!("dlq-{prefix}")),
        );
        assert_eq!(split_by_key(&out, prefix, &mine_out), 0, "torn sink lines");
        assert_eq!(split_by_key(&dlq, prefix, &mine_dlq), 0, "torn DLQ lines");
        check_output(&mine_out, stream, false);
        check_dlq(&mine_dlq, stream);
        assert_eq!(
            lines(&mine_dlq).len(),
            stream.faulty.len(),
            "each dead letter once"
        );
    }
    assert_eq!(lines(&out).len(), delivered, "nothing twice");
    for name in ["a", "b"] {
        let line = log
            .lines()
            .rfind(|l| l.contains("pipeline stopped") && l.contains(&format!("pipeline={name}")))
            .unwrap_or_else(|| panic!("no final counts of {name}: {log}"));
        let counts = final_counts(line);
        assert_eq!(counts["received"], 12_000, "{line}");
    }
}

#[test]
fn a_second_process_is_refused_the_files_weir_appends_to() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..10));
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"first\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
    );
    let child = s.spawn_logged(&p);
    wait_for("the first run's output", || {
        lines(&s.path("out.jsonl")).len() == 10
    });

    // The same pipeline with a state of its own: the sink file is taken.
    let second = weir()
        .arg("run")
        .arg(&p)
        .arg("--state-dir")
        .arg(s.path("state2"))
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("out.jsonl is locked by another process"),
        "names the file and why: {err}"
    );
    // Another sink, the same dead-letter file: taken too.
    let q = s.write(
        "q.toml",
        "[pipeline]\nname = \"second\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [sink]\ntype = \"file\"\npath = \"out2.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
    );
    let third = s.run(&q);
    let err = stderr(&third);
    assert_eq!(third.status.code(), Some(1), "{err}");
    assert!(
        err.contains("dlq.jsonl is locked by another process"),
        "names the file and why: {err}"
    );

    // Once the first has stopped, the files are free.
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    let fourth = s.run(&q);
    assert_eq!(fourth.status.code(), Some(0), "{}", stderr(&fourth));
    assert_eq!(lines(&s.path("out2.jsonl")).len(), 10);
}
