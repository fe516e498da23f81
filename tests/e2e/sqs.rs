//! SQS in and out, on the real binary against a real SQS-protocol server (moto): content and
//! completeness; FIFO order per group; failures handed back to the queue (its redrive policy)
//! or dead-lettered by weir after `max_attempts`; visibility kept extended under a slow plugin;
//! SIGKILL mid-stream.
//!
//! Each test gets a server of its own (sqs_server.rs). The stream is delivery.rs's: keyed events
//! with per-key sequence numbers, 5% of which the faults plugin fails.

use crate::delivery::{Stream, check_dlq, check_output};
use crate::plugins::plugin;
use crate::sqs_server::{Msg, SqsServer};
use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// One receive at a time wherever a test counts deliveries exactly. moto does not lock a queue
/// while it receives: two concurrent receives can both hand out the same message (real SQS
/// keeps a received message invisible to every other receive), and its FIFO group lock races
/// the same way (each long poll takes its snapshot of the groups in flight when it starts).
/// The SIGKILL test, which allows repeats, keeps several receivers.
const ONE_RECEIVER: &str = "receivers = 1";

/// `[source]` for `queue`: short long-polls and visibility, so that the tests run quickly.
fn source(server: &SqsServer, queue: &str, extra: &str) -> String {
    format!(
        "[source]\ntype = \"sqs\"\nqueue_url = {queue:?}\nendpoint_url = {:?}\n\
         wait_time_s = 1\nvisibility_timeout_s = 10\nbatch_size = 50\n{extra}\n",
        server.endpoint()
    )
}

fn sqs_table(table: &str, server: &SqsServer, queue: &str, extra: &str) -> String {
    format!(
        "[{table}]\ntype = \"sqs\"\nqueue_url = {queue:?}\nendpoint_url = {:?}\n{extra}\n",
        server.endpoint()
    )
}

/// The common middle of the pipelines: filter out `"skip"` events, then the faults plugin.
fn middle() -> String {
    format!(
        "[[filter]]\npattern = '{{\"data\": {{\"skip\": [{{\"exists\": false}}]}}}}'\n\
         [[plugin]]\npath = {:?}\n\
         [ordering]\nlanes = 4\n\
         [retry]\nbackoff_ms = [5, 200]\n",
        plugin("fixtures/faults/faults.wasm")
    )
}

/// The stream as `(group, body)` messages, with a `skip` event (to be filtered) every 10th.
fn messages(stream: &Stream, grouped: bool) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for (i, line) in stream.lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        let key = v["k"].as_str().unwrap().to_owned();
        let group = grouped.then(|| key.clone());
        if i % 10 == 0 {
            out.push((group.clone(), format!("{{\"k\":\"{key}\",\"skip\":true}}")));
        }
        out.push((group, line.trim_end().to_owned()));
    }
    out
}

fn as_lines(s: &Scratch, name: &str, msgs: &[Msg]) -> std::path::PathBuf {
    let text: String = msgs.iter().map(|m| format!("{}\n", m.body)).collect();
    s.write(name, text)
}

/// `key=value` pairs of the last "pipeline stopped" line.
fn final_line(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("pipeline stopped"))
        .unwrap_or_else(|| panic!("no final line in:\n{log}"))
        .to_owned()
}

fn stop(s: &Scratch, child: std::process::Child) -> String {
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    final_line(&s.log())
}

/// Every event to deliver was delivered exactly once (at least once if `repeats`: after a
/// crash), through the plugin. A standard queue keeps no order, so the check is by set.
/// Returns the repeats.
fn check_delivered<'a>(
    bodies: impl Iterator<Item = &'a str>,
    stream: &Stream,
    repeats: bool,
) -> usize {
    let mut seen = BTreeSet::new();
    let mut dups = 0;
    for body in bodies {
        let Ok(v) = serde_json::from_str::<Value>(body) else {
            assert!(repeats, "a torn line without a crash: {body}");
            continue; // torn by SIGKILL, written again whole
        };
        assert_eq!(v["seen_by"], "faults", "{body}");
        let id = (
            v["k"].as_str().unwrap().to_owned(),
            v["seq"].as_u64().unwrap(),
        );
        if !seen.insert(id) {
            assert!(repeats, "delivered twice: {body}");
            dups += 1;
        }
    }
    let want: BTreeSet<(String, u64)> = stream
        .expected
        .iter()
        .flat_map(|(k, seqs)| seqs.iter().map(move |&q| (k.clone(), q)))
        .collect();
    assert_eq!(seen, want, "every event delivered");
    dups
}

#[test]
fn sqs_to_sqs_through_filter_and_plugin() {
    let server = SqsServer::start();
    let (input, out, dlq) = (
        server.create_queue("in", &[]),
        server.create_queue("out", &[]),
        server.create_queue("dlq", &[]),
    );
    let stream = Stream::new(300, 10, 7);
    let msgs = messages(&stream, false);
    server.send(&input, &msgs);

    let s = Scratch::new();
    let p = s.write(
        "s.toml",
        format!(
            "[pipeline]\nname = \"s2s\"\ncheckpoint_interval_ms = 50\ncorrelation_id = \"o-<$.data.seq>\"\n{}{}{}{}",
            source(&server, &input, ONE_RECEIVER),
            middle(),
            sqs_table("sink", &server, &out, "attributes = { seq = \"<$.data.seq>\", from = \"<$.meta.message_attributes.origin>\" }"),
            sqs_table("dlq", &server, &dlq, ""),
        ),
    );
    let child = s.spawn_logged(&p);
    let total = stream.delivered_count();
    wait_logged(&s, "every event delivered and dead-lettered", || {
        server.count(&out) >= total && server.count(&dlq) >= stream.faulty.len()
    });
    // Delivered, filtered and dead-lettered messages are all deleted from the input.
    wait_logged(&s, "the input queue to empty", || server.count(&input) == 0);
    let last = stop(&s, child);
    for want in [
        format!("received={}", msgs.len()),
        format!("delivered={total}"),
        format!("filtered={}", msgs.len() - stream.lines.len()),
        format!("dead_lettered={}", stream.faulty.len()),
        "unfinished=0".to_owned(),
    ] {
        assert!(last.contains(&want), "{want} in {last}");
    }

    let got = server.drain(&out);
    for m in &got {
        let v: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            m.attributes.get("seq"),
            Some(&v["seq"].to_string()),
            "{m:?}"
        );
        assert_eq!(
            m.attributes.get("from").map(String::as_str),
            Some("test"),
            "{m:?}"
        );
        // `[pipeline] correlation_id` finds it in the event; the sink carries it.
        assert_eq!(
            m.attributes.get("correlation-id"),
            Some(&format!("o-{}", v["seq"])),
            "{m:?}"
        );
    }
    check_delivered(got.iter().map(|m| m.body.as_str()), &stream, false);
    check_dlq(&as_lines(&s, "dlq.jsonl", &server.drain(&dlq)), &stream);
}

#[test]
fn fifo_to_fifo_keeps_each_group_in_order() {
    let server = SqsServer::start();
    let (input, out) = (
        server.create_queue("in.fifo", &[]),
        server.create_queue("out.fifo", &[]),
    );
    let stream = Stream::new(400, 8, 3);
    let msgs = messages(&stream, true);
    server.send(&input, &msgs);

    let s = Scratch::new();
    let p = s.write(
        "f.toml",
        format!(
            "[pipeline]\nname = \"fifo\"\ncheckpoint_interval_ms = 50\n{}{}{}\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            source(&server, &input, ONE_RECEIVER),
            middle(),
            sqs_table("sink", &server, &out, ""),
        ),
    );
    let child = s.spawn_logged(&p);
    let total = stream.delivered_count();
    wait_logged(&s, "every event delivered", || {
        server.count(&out) >= total && server.count(&input) == 0
    });
    let last = stop(&s, child);
    assert!(last.contains("unfinished=0"), "{last}");

    let got = server.drain(&out);
    for m in &got {
        let v: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            m.group.as_deref(),
            v["k"].as_str(),
            "group = the event's key: {m:?}"
        );
    }
    // The queue hands a group's messages out in the order they were written.
    let (dups, _) = check_output(&as_lines(&s, "out.jsonl", &got), &stream, false);
    assert_eq!(dups, 0);
    check_dlq(&s.path("dlq.jsonl"), &stream);
}

/// A failed message of a FIFO group goes back to the queue with the rest of its group (so the
/// group keeps its order), and to weir's DLQ on its `max_attempts`-th receive.
#[test]
fn fifo_failure_goes_back_with_its_group_then_to_weirs_dlq() {
    let server = SqsServer::start();
    let input = server.create_queue("in.fifo", &[]);
    let ok = |seq: u64| format!("{{\"k\":\"A\",\"seq\":{seq}}}");
    let msgs: Vec<(Option<String>, String)> = vec![
        (Some("A".into()), ok(0)),
        (
            Some("A".into()),
            "{\"k\":\"A\",\"seq\":1,\"fault\":\"error\"}".into(),
        ),
        (Some("A".into()), ok(2)),
        (Some("A".into()), ok(3)),
        (Some("B".into()), "{\"k\":\"B\",\"seq\":0}".into()),
    ];
    server.send(&input, &msgs);

    let s = Scratch::new();
    let p = s.write(
        "f.toml",
        format!(
            "[pipeline]\nname = \"attempts\"\ncheckpoint_interval_ms = 50\n{}{}\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            source(
                &server,
                &input,
                &format!("visibility_timeout_s = 5\nmax_attempts = 2\n{ONE_RECEIVER}")
            ),
            middle(),
        )
        .replace("visibility_timeout_s = 10\n", ""),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the failed message dead-lettered", || {
        !lines(&s.path("dlq.jsonl")).is_empty() && server.count(&input) == 0
    });
    let last = stop(&s, child);

    let out: Vec<Value> = json_lines(&s.path("out.jsonl"));
    let a: Vec<u64> = out
        .iter()
        .filter(|v| v["k"] == "A")
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        a,
        [0, 2, 3],
        "group A in order, each once, without the failed one"
    );
    assert_eq!(out.iter().filter(|v| v["k"] == "B").count(), 1);
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["event"]["data"]["seq"], 1);
    assert_eq!(dlq[0]["event"]["meta"]["receive_count"], 2, "{}", dlq[0]);
    assert_eq!(dlq[0]["error"]["stage"], "plugin:faults");
    // First time round: the failed one and the two behind it went back to the queue.
    assert!(last.contains("released=3"), "{last}");
    assert!(last.contains("dead_lettered=1"), "{last}");
}

/// `on_failure = "redrive"`: weir never dead-letters a failed message itself; the queue's
/// redrive policy moves it to the queue's DLQ after `maxReceiveCount` receives.
#[test]
fn failing_messages_go_to_the_queues_redrive_dlq() {
    let server = SqsServer::start();
    let queue_dlq = server.create_queue("in-dlq", &[]);
    let policy = format!(
        "{{\"deadLetterTargetArn\":\"{}\",\"maxReceiveCount\":\"2\"}}",
        server.arn(&queue_dlq)
    );
    let input = server.create_queue("in", &[("RedrivePolicy", policy)]);
    let stream = Stream::new(100, 5, 5);
    server.send(&input, &messages(&stream, false));

    let s = Scratch::new();
    let p = s.write(
        "r.toml",
        format!(
            "[pipeline]\nname = \"redrive\"\ncheckpoint_interval_ms = 50\n{}{}\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            source(
                &server,
                &input,
                &format!("visibility_timeout_s = 5\non_failure = \"redrive\"\n{ONE_RECEIVER}")
            )
            .replace("visibility_timeout_s = 10\n", ""),
            middle(),
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the failed messages to reach the queue's DLQ", || {
        server.count(&queue_dlq) >= stream.faulty.len() && server.count(&input) == 0
    });
    stop(&s, child);
    assert!(
        lines(&s.path("dlq.jsonl")).is_empty(),
        "weir's DLQ stays empty"
    );
    check_dlq_bodies(&server.drain(&queue_dlq), &stream);
    check_delivered(
        lines(&s.path("out.jsonl")).iter().map(String::as_str),
        &stream,
        false,
    );
}

/// The queue's DLQ holds exactly the events the plugin fails, as they were sent.
fn check_dlq_bodies(msgs: &[Msg], stream: &Stream) {
    let got: BTreeSet<(String, u64)> = msgs
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(&m.body).unwrap();
            assert_eq!(v["fault"], "error", "{m:?}");
            (
                v["k"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(&got, &stream.faulty);
    assert!(msgs.iter().all(|m| m.receive_count >= 2), "{msgs:?}");
}

/// weir running four messages the faults plugin takes `ms` each on, from a queue of their own.
struct SlowRun {
    server: SqsServer,
    input: String,
    msgs: Vec<(Option<String>, String)>,
    s: Scratch,
    child: std::process::Child,
}

/// Starts a `SlowRun`: one receiver with `source_extra` (visibility and waits), two lanes, to
/// a file.
fn slow_messages(ms: u64, source_extra: &str) -> SlowRun {
    let server = SqsServer::start();
    let input = server.create_queue("in", &[]);
    let slow = |i: u64| format!("{{\"k\":\"K{i}\",\"seq\":0,\"fault\":\"slow\",\"ms\":{ms}}}");
    let msgs: Vec<(Option<String>, String)> = (0..4).map(|i| (None, slow(i))).collect();
    server.send(&input, &msgs);
    // `source_extra` sets the visibility, and may set the long polls' wait.
    let mut src = source(&server, &input, &format!("{source_extra}\n{ONE_RECEIVER}"))
        .replace("visibility_timeout_s = 10\n", "");
    if source_extra.contains("wait_time_s") {
        src = src.replace("wait_time_s = 1\n", "");
    }
    let s = Scratch::new();
    let p = s.write(
        "slow.toml",
        format!(
            "[pipeline]\nname = \"slow\"\ncheckpoint_interval_ms = 50\n{}\
             [[plugin]]\npath = {:?}\ntimeout_ms = 20000\n\
             [ordering]\nlanes = 2\n\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
            src,
            plugin("fixtures/faults/faults.wasm"),
        ),
    );
    let child = s.spawn_logged(&p);
    SlowRun {
        server,
        input,
        msgs,
        s,
        child,
    }
}

/// A plugin slower than the visibility timeout: weir extends the messages' visibility, so none
/// is received twice.
#[test]
fn a_slow_plugin_does_not_make_messages_come_twice() {
    let SlowRun {
        server,
        input,
        msgs,
        s,
        child,
    } = slow_messages(7000, "visibility_timeout_s = 3");
    wait_logged(&s, "every message delivered and deleted", || {
        lines(&s.path("out.jsonl")).len() >= msgs.len() && server.count(&input) == 0
    });
    // Longer than a visibility timeout more, for a message that would come back.
    std::thread::sleep(Duration::from_secs(4));
    let last = stop(&s, child);
    assert!(last.contains(&format!("received={}", msgs.len())), "{last}");
    assert_eq!(lines(&s.path("out.jsonl")).len(), msgs.len());
    assert!(!s.log().contains("may be delivered twice"), "{}", s.log());
}

/// A message the queue hands out again while weir still holds it is delivered once. Here weir
/// is frozen (SIGSTOP) for three visibility timeouts while its long poll waits at the server:
/// no extension can go out, the held messages become visible, and that poll returns them again.
#[test]
fn a_message_received_again_while_held_is_delivered_once() {
    // Long polls of 20 s: one is under way at the server whenever weir is frozen.
    let SlowRun {
        server,
        input,
        msgs,
        s,
        child,
    } = slow_messages(1500, "visibility_timeout_s = 1\nwait_time_s = 20");
    wait_logged(&s, "weir to receive every message", || {
        server.not_visible(&input) == msgs.len()
    });
    // Its next long poll is under way (20 s); freeze weir for three visibilities.
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, libc::SIGCONT);
    wait_logged(&s, "every message delivered and deleted", || {
        lines(&s.path("out.jsonl")).len() >= msgs.len() && server.count(&input) == 0
    });
    std::thread::sleep(Duration::from_secs(2));
    let last = stop(&s, child);
    let log = s.log();
    assert!(
        log.contains("message received again while this process holds it"),
        "the queue handed the messages out again (the case under test):\n{log}"
    );
    assert_eq!(lines(&s.path("out.jsonl")).len(), msgs.len(), "{log}");
    assert!(last.contains(&format!("received={}", msgs.len())), "{last}");
}

/// SIGKILL at random points of the stream: restarted, weir delivers everything (repeats allowed:
/// a message delivered and not yet deleted comes again once its visibility runs out). A standard
/// queue: moto hands a FIFO group whose messages time out together back out of order (it frees
/// the group as it passes its last message), which real SQS does not; FIFO order is checked by
/// the tests above, where weir hands messages back itself.
#[test]
fn killed_mid_stream_loses_nothing() {
    let server = SqsServer::start();
    let input = server.create_queue("in", &[]);
    let stream = Stream::new(600, 12, 9);
    server.send(&input, &messages(&stream, false));

    let s = Scratch::new();
    let p = s.write(
        "k.toml",
        format!(
            "[pipeline]\nname = \"kill\"\ncheckpoint_interval_ms = 300\n{}{}\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            source(&server, &input, "visibility_timeout_s = 3\nbatch_size = 20")
                .replace("visibility_timeout_s = 10\n", "")
                .replace("batch_size = 50\n", ""),
            middle(),
        ),
    );
    let mut kills = 0;
    for _ in 0..3 {
        let before = lines(&s.path("out.jsonl")).len();
        let child = s.spawn_logged(&p);
        wait_logged(&s, "progress", || {
            lines(&s.path("out.jsonl")).len() > before + 40
        });
        signal(&child, libc::SIGKILL);
        let _ = wait_exit(child);
        kills += 1;
    }
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the queue to empty", || server.count(&input) == 0);
    stop(&s, child);
    assert_eq!(kills, 3);
    let out = lines(&s.path("out.jsonl"));
    let dups = check_delivered(out.iter().map(String::as_str), &stream, true);
    eprintln!("re-delivered after kills: {dups}");
    check_dlq(&s.path("dlq.jsonl"), &stream);
}

/// Large messages: the sink packs each SendMessageBatch under 256 KiB per call (two ~100 KiB
/// messages per call here, a ~200 KiB one alone), and a message over the queue's
/// `MaximumMessageSize` goes to weir's DLQ with the reason, without holding up the others.
#[test]
fn large_messages_fit_the_calls_and_too_large_ones_are_dead_lettered() {
    let server = SqsServer::start();
    let input = server.create_queue("in", &[]);
    let out = server.create_queue("out", &[("MaximumMessageSize", "262144".into())]);
    let pad = "x".repeat(100 * 1024);
    let mut msgs: Vec<(Option<String>, String)> = (0..3)
        .map(|i| {
            (
                None,
                format!(
                    "{{\"k\":\"K{i}\",\"seq\":0,\"fault\":\"split\",\"n\":2,\"pad\":\"{pad}\"}}"
                ),
            )
        })
        .collect();
    // Split in three, each output ~200 KiB with its `part`: fine alone, never two in one call.
    let big = "y".repeat(200 * 1024);
    msgs.push((
        None,
        format!("{{\"k\":\"BIG\",\"seq\":0,\"fault\":\"split\",\"n\":3,\"pad\":\"{big}\"}}"),
    ));
    // Just under SQS's limit with the test's `origin` attribute (moto takes it); over it once
    // the plugin has added `,"seen_by":"faults"` (19 bytes).
    let huge = "z".repeat(256 * 1024 - 46);
    msgs.push((
        None,
        format!("{{\"k\":\"HUGE\",\"seq\":0,\"pad\":\"{huge}\"}}"),
    ));
    server.send(&input, &msgs);

    let s = Scratch::new();
    let p = s.write(
        "l.toml",
        format!(
            "[pipeline]\nname = \"large\"\ncheckpoint_interval_ms = 50\n{}\
             [[plugin]]\npath = {:?}\n\
             {}\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            source(&server, &input, ONE_RECEIVER),
            plugin("fixtures/faults/faults.wasm"),
            sqs_table("sink", &server, &out, ""),
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "every message delivered or dead-lettered", || {
        server.count(&input) == 0
    });
    let last = stop(&s, child);
    assert!(last.contains("delivered=4"), "{last}");
    assert!(last.contains("dead_lettered=1"), "{last}");
    let got = server.drain(&out);
    assert_eq!(
        got.len(),
        3 * 2 + 3,
        "every split output delivered: {}",
        got.len()
    );
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["event"]["data"]["k"], "HUGE");
    assert_eq!(dlq[0]["error"]["stage"], "sink");
    let reason = dlq[0]["error"]["message"].as_str().unwrap();
    assert!(
        reason.contains("the queue takes at most 262144"),
        "{reason}"
    );
}
