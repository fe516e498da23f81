//! The Kafka sink against a real broker (tansu), and the librdkafka properties both Kafka ends
//! take: aliases of the properties weir owns, a topic that does not exist (rendered by a
//! template, or not created yet at start), librdkafka's errors in the log, a producer that
//! failed for good.

use crate::kafka_broker::Broker;
use crate::support::*;
use std::time::Duration;

/// `weir check` on a pipeline with these source and sink property tables (TOML lines).
fn check_properties(s: &Scratch, source: &str, sink: &str) -> (bool, String) {
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"props\"\n\
             [source]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopics = \"in\"\ngroup = \"g\"\n\
             [source.properties]\n{source}\n\
             [sink]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopic = \"out\"\n\
             [sink.properties]\n{sink}\n"
        ),
    );
    let out = s.check(&p);
    (out.status.success(), stderr(&out))
}

#[test]
fn aliases_of_owned_properties_are_refused_like_the_properties() {
    let s = Scratch::new();
    // Each name librdkafka takes for a property weir sets, and the setting to use instead.
    let cases = [
        (
            "source",
            "\"metadata.broker.list\" = \"127.0.0.1:1\"",
            "use `brokers`",
        ),
        (
            "source",
            "\"topic.auto.offset.reset\" = \"latest\"",
            "use `start`",
        ),
        (
            "sink",
            "\"metadata.broker.list\" = \"127.0.0.1:1\"",
            "use `brokers`",
        ),
        (
            "sink",
            "\"request.required.acks\" = 1",
            "all in-sync replicas",
        ),
        ("sink", "\"topic.acks\" = 1", "all in-sync replicas"),
        (
            "sink",
            "\"topic.request.required.acks\" = 0",
            "all in-sync replicas",
        ),
    ];
    for (end, line, instead) in cases {
        let (ok, err) = match end {
            "source" => check_properties(&s, line, ""),
            _ => check_properties(&s, "", line),
        };
        let name = line.split('"').nth(1).unwrap();
        assert!(!ok, "{end} {line} passed weir check");
        assert!(
            err.contains(&format!("`{end}.properties`"))
                && err.contains(&format!("`{name}`"))
                && err.contains("which weir sets")
                && err.contains(instead),
            "{end} {line}: {err}"
        );
    }
    // One property under two names: which value librdkafka got would depend on hash order.
    let (ok, err) = check_properties(
        &s,
        "",
        "\"linger.ms\" = 20\n\"queue.buffering.max.ms\" = 50",
    );
    assert!(!ok, "two names for one property passed");
    assert!(
        err.contains("`linger.ms`")
            && err.contains("`queue.buffering.max.ms`")
            && err.contains("keep one"),
        "{err}"
    );
    let (ok, err) = check_properties(
        &s,
        "\"auto.commit.interval.ms\" = 100\n\"topic.auto.commit.interval.ms\" = 200",
        "\"compression.type\" = \"zstd\"",
    );
    assert!(
        ok,
        "distinct properties (global and topic scope) pass: {err}"
    );
}

/// A file pipeline into a Kafka sink whose topic is `orders-<region>`, one lane per key.
fn regional(broker: &Broker, extra_sink: &str) -> String {
    format!(
        "[pipeline]\nname = \"regional\"\n\
         [source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\n\
         [ordering]\nkey = \"<$.data.k>\"\nlanes = 4\n\
         [retry]\nbackoff_ms = [5, 200]\n\
         [sink]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopic = \"orders-<$.data.region>\"\n{extra_sink}\n\
         [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
        addr = broker.addr()
    )
}

fn events(n: usize, region: impl Fn(usize) -> &'static str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"k\":\"K{}\",\"seq\":{i},\"region\":\"{}\"}}\n",
                i % 7,
                region(i)
            )
        })
        .collect()
}

#[test]
fn a_rendered_topic_that_does_not_exist_is_dead_lettered_at_once() {
    let broker = Broker::start();
    broker.create_topic("orders-eu", 2);
    let s = Scratch::new();
    // Every third event renders `orders-us`, which does not exist; the default `[retry]` has no
    // attempt limit, so only recognizing the missing topic ends those events.
    let region = |i: usize| if i.is_multiple_of(3) { "us" } else { "eu" };
    s.write("in.jsonl", events(60, region));
    let p = s.write("p.toml", regional(&broker, ""));
    let child = s.spawn_logged(&p);
    let missing = (0..60).filter(|&i| region(i) == "us").count();
    wait_logged(&s, "the eu events delivered", || {
        broker.count("orders-eu", 2) >= (60 - missing) as i64
    });
    wait_logged(&s, "the us events dead-lettered", || {
        lines(&s.path("dlq.jsonl")).len() >= missing
    });
    for r in json_lines(&s.path("dlq.jsonl")) {
        assert_eq!(r["event"]["data"]["region"], "us", "{r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("`orders-us` does not exist"),
            "the reason names the topic: {r}"
        );
        assert_eq!(r["error"]["stage"], "sink", "{r}");
    }
    assert_eq!(lines(&s.path("dlq.jsonl")).len(), missing);
    // The others delivered in order per key.
    let out = broker.read_all("orders-eu", 2, 60 - missing);
    let mut last: std::collections::BTreeMap<String, i64> = Default::default();
    for r in &out {
        let v: serde_json::Value = serde_json::from_str(&r.value).unwrap();
        let (k, seq) = (
            v["k"].as_str().unwrap().to_owned(),
            v["seq"].as_i64().unwrap(),
        );
        assert!(
            last.get(&k).is_none_or(|&l| l < seq),
            "{k} out of order: {out:?}"
        );
        last.insert(k, seq);
    }
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
}

/// A file pipeline into a Kafka sink with topic `out`.
fn into_out(broker: &Broker, extra_sink: &str) -> String {
    format!(
        "[pipeline]\nname = \"late\"\n\
         [source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\n\
         [retry]\nbackoff_ms = [5, 200]\n\
         [sink]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopic = \"out\"\n{extra_sink}\n\
         [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
        addr = broker.addr()
    )
}

#[test]
fn the_sink_waits_for_a_topic_created_after_it_starts() {
    let broker = Broker::start();
    let s = Scratch::new();
    s.write("in.jsonl", events(20, |_| "eu"));
    let p = s.write("p.toml", into_out(&broker, ""));
    let child = s.spawn_logged(&p);
    wait_logged(&s, "weir to say it waits for the topic", || {
        s.log().contains("waiting for it") && s.log().contains("topic=\"out\"")
    });
    std::thread::sleep(Duration::from_secs(2));
    broker.create_topic("out", 1);
    wait_logged(&s, "every event delivered", || broker.count("out", 1) >= 20);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    assert_eq!(broker.read_all("out", 1, 20).len(), 20);
}

#[test]
fn a_topic_that_never_appears_fails_after_topic_wait_s() {
    let broker = Broker::start();
    let s = Scratch::new();
    s.write("in.jsonl", events(5, |_| "eu"));
    let p = s.write("p.toml", into_out(&broker, "topic_wait_s = 2"));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("kafka topic `out` does not exist (waited 2 s"),
        "{err}"
    );
    assert!(err.contains("waiting for it"), "it said it waited: {err}");
}

/// The message of a log line from librdkafka (`librdkafka: ...` or `kafka: ...`), without the
/// level, time and fields.
fn librdkafka_message(line: &str) -> Option<&str> {
    let at = line
        .find(" librdkafka: ")
        .map(|i| i + " librdkafka: ".len())
        .or_else(|| line.find(" kafka: ").map(|i| i + " kafka: ".len()))?;
    let rest = &line[at..];
    Some(rest.split(" pipeline=").next().unwrap_or(rest).trim())
}

#[test]
fn an_unreachable_broker_is_logged_once_per_condition() {
    let mut broker = Broker::start();
    broker.create_topic("out", 1);
    let s = Scratch::new();
    s.write("in.jsonl", events(10, |_| "eu"));
    let p = s.write("p.toml", into_out(&broker, ""));
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the first events delivered", || {
        broker.count("out", 1) >= 10
    });
    broker.stop();
    // Events keep coming while the broker is down: the producer keeps trying to connect.
    s.append("in.jsonl", events(10, |_| "eu"));
    std::thread::sleep(Duration::from_secs(8));
    signal(&child, libc::SIGTERM);
    let _ = wait_exit(child);
    // Up to the stop: stopping waits for the records librdkafka holds, longer than the 30 s
    // after which a condition still going on is logged again.
    let log = s.log();
    let messages: Vec<&str> = log
        .lines()
        .take_while(|l| !l.contains("stopping:"))
        .filter_map(librdkafka_message)
        .map(|m| {
            m.split_once("]: ")
                .filter(|_| m.starts_with("[thrd:"))
                .map_or(m, |(_, t)| t)
        })
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("Connection refused")),
        "the broker going away is logged:\n{log}"
    );
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in &messages {
        *counts.entry(m).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "each condition once: {repeated:?}\n{log}"
    );
}

/// The broker loses its latest state (its storage put back as it was earlier, as after an
/// unclean failover): the producer's sequence numbers no longer match the broker's, and
/// librdkafka's idempotent producer fails for good ("sequence desynchronization"). weir replaces
/// it, and the events written after that are delivered.
#[test]
fn a_producer_that_failed_for_good_is_replaced() {
    let mut broker = Broker::start();
    broker.create_topic("out", 1);
    let s = Scratch::new();
    let numbered = |from: usize, n: usize| -> String {
        (from..from + n)
            .map(|i| format!("{{\"k\":\"K{}\",\"seq\":{i}}}\n", i % 3))
            .collect()
    };
    s.write("in.jsonl", numbered(0, 10));
    let p = s.write("p.toml", into_out(&broker, ""));
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the first events delivered", || {
        broker.count("out", 1) >= 10
    });
    broker.stop();
    broker.save_storage("before");
    broker.restart();
    s.append("in.jsonl", numbered(10, 10));
    wait_logged(&s, "the next events delivered", || {
        broker.count("out", 1) >= 20
    });
    broker.stop();
    broker.restore_storage("before");
    broker.restart();
    s.append("in.jsonl", numbered(20, 10));
    let seqs = |broker: &Broker| -> Vec<i64> {
        broker
            .read_all("out", 1, 0)
            .iter()
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.value).ok())
            .filter_map(|v| v["seq"].as_i64())
            .collect()
    };
    let mut last_check = std::time::Instant::now();
    wait_logged(&s, "the events after the broker's loss delivered", || {
        if last_check.elapsed() < Duration::from_millis(500) {
            return false;
        }
        last_check = std::time::Instant::now();
        let got = seqs(&broker);
        (20..30).all(|q| got.contains(&q))
    });
    assert!(
        s.log()
            .contains("kafka producer failed for good; replaced with a new one"),
        "{}",
        s.log()
    );
    // Each key's events in order (first deliveries; a retry may repeat some), none
    // dead-lettered.
    let got = seqs(&broker);
    for k in 0..3 {
        let mut first: Vec<i64> = Vec::new();
        for q in got.iter().copied().filter(|q| q % 3 == k) {
            if !first.contains(&q) {
                first.push(q);
            }
        }
        assert!(first.is_sorted(), "key K{k} in order: {got:?}");
    }
    assert!(lines(&s.path("dlq.jsonl")).is_empty());
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
}
