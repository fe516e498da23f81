//! NATS JetStream in and out, on the real binary against the machine's nats-server: content and
//! counts, per-key order, SIGKILL mid-stream, the connection cut mid-stream (through a proxy),
//! poison messages to the DLQ (and terminated), two processes sharing one durable consumer,
//! in-progress signals holding a slow message, and the sink's de-duplication after a crash.
//!
//! Each test makes streams and consumers of its own (names with the process id and a counter)
//! and deletes them when it ends, even when it fails.

use crate::support::*;
use crate::tcp_proxy::TcpProxy;
use async_nats::jetstream::{self, stream};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const SERVER: &str = "127.0.0.1:4222";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A stream of the test's own on the machine's server, deleted when dropped.
struct TestStream {
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
    name: String,
    /// Its subjects' prefix: `<prefix>.>`.
    prefix: String,
}

impl TestStream {
    fn new(what: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("weir_{what}_{}_{n}", std::process::id());
        let prefix = format!("t{}x{n}{what}", std::process::id());
        let js = rt.block_on(async {
            let client = async_nats::connect(SERVER)
                .await
                .expect("nats-server with JetStream at 127.0.0.1:4222 (nats-server -js)");
            let js = jetstream::new(client);
            js.create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.>")],
                storage: stream::StorageType::Memory,
                ..Default::default()
            })
            .await
            .expect("create stream");
            js
        });
        TestStream {
            rt,
            js,
            name,
            prefix,
        }
    }

    /// Publishes `(subject suffix, payload)` messages, awaiting every acknowledgement.
    fn publish(&self, msgs: &[(String, String)]) {
        self.rt.block_on(async {
            let mut acks = Vec::new();
            for (suffix, body) in msgs {
                let subject = format!("{}.{suffix}", self.prefix);
                acks.push(
                    self.js
                        .publish(subject, body.clone().into())
                        .await
                        .expect("publish"),
                );
                if acks.len() >= 1000 {
                    for a in acks.drain(..) {
                        a.await.expect("ack");
                    }
                }
            }
            for a in acks {
                a.await.expect("ack");
            }
        });
    }

    /// The stream's messages: (subject, payload, Nats-Msg-Id).
    fn messages(&self) -> Vec<(String, String, Option<String>)> {
        self.rt.block_on(async {
            let s = self.js.get_stream(&self.name).await.unwrap();
            let last = s.get_info().await.unwrap().state.last_sequence;
            let mut out = Vec::new();
            for seq in 1..=last {
                if let Ok(m) = s.get_raw_message(seq).await {
                    let id = m
                        .headers
                        .get_last("Nats-Msg-Id")
                        .map(|v| v.as_str().to_owned());
                    out.push((
                        m.subject.to_string(),
                        String::from_utf8_lossy(&m.payload).into_owned(),
                        id,
                    ));
                }
            }
            out
        })
    }

    fn count(&self) -> u64 {
        self.rt.block_on(async {
            let s = self.js.get_stream(&self.name).await.unwrap();
            s.get_info().await.unwrap().state.messages
        })
    }

    /// The consumer's (pending, ack pending, redelivered).
    fn consumer_state(&self, consumer: &str) -> (u64, usize, usize) {
        self.rt.block_on(async {
            let s = self.js.get_stream(&self.name).await.unwrap();
            let i = s.consumer_info(consumer).await.unwrap();
            (i.num_pending, i.num_ack_pending, i.num_redelivered)
        })
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let _ = self
            .rt
            .block_on(async { self.js.delete_stream(&self.name).await });
    }
}

/// `keys` keys, `n` messages `{"k":"kI","seq":S}` on subjects `T.kI`, seqs per key from 0.
fn keyed(n: u64, keys: u64) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let k = format!("k{}", i % keys);
            let seq = i / keys;
            (
                format!("T.{k}"),
                format!(
                    "{{\"k\":\"{k}\",\"seq\":{seq},\"pad\":\"{}\"}}",
                    "x".repeat(40)
                ),
            )
        })
        .collect()
}

/// `[source]` for `stream`: a short `ack_wait` (3 s unless `extra` sets one), so that what a
/// killed process held comes back soon.
fn source(stream: &TestStream, server: &str, extra: &str) -> String {
    let ack_wait = if extra.contains("ack_wait_s") {
        ""
    } else {
        "ack_wait_s = 3\n"
    };
    format!(
        "[source]\ntype = \"nats\"\nservers = \"nats://{server}\"\nstream = {:?}\n\
         consumer = \"weir\"\n{ack_wait}expires_ms = 1000\n{extra}\n",
        stream.name
    )
}

/// Per key, the seqs in output order; checks that every key's first occurrences come in
/// order and that each of `0..n/keys` is there. Returns the repeats.
fn check_keyed(out: &Path, n: u64, keys: u64, repeats: bool) -> usize {
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut dups = 0;
    for line in lines(out) {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            assert!(repeats, "a torn line without a crash: {line}");
            continue;
        };
        let k = v["k"].as_str().unwrap().to_owned();
        let seq = v["seq"].as_u64().unwrap();
        if !seen.insert((k.clone(), seq)) {
            assert!(repeats, "delivered twice without a crash: {line}");
            dups += 1;
            continue;
        }
        let want = next.entry(k.clone()).or_default();
        assert_eq!(
            seq, *want,
            "key {k}: expected seq {want} next (lost or reordered)"
        );
        *want += 1;
    }
    assert_eq!(seen.len() as u64, n, "every message delivered");
    assert_eq!(next.len() as u64, keys);
    dups
}

/// `check_keyed` with repeats allowed, after a cut: if a key was reordered, weir's log is shown,
/// since what the source said of the gap (lost deliveries waited for, or a shared consumer
/// assumed, or the wait given up) is what explains it.
fn check_keyed_logged(s: &Scratch, out: &Path, n: u64, keys: u64) -> usize {
    match std::panic::catch_unwind(|| check_keyed(out, n, keys, true)) {
        Ok(repeats) => repeats,
        Err(failed) => {
            eprintln!("weir's log:\n{}", s.log());
            std::panic::resume_unwind(failed)
        }
    }
}

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

fn sink_file(name: &str) -> String {
    format!("[sink]\ntype = \"file\"\npath = \"{name}\"\n")
}

#[test]
fn nats_stream_to_file_every_message_once_in_key_order() {
    let st = TestStream::new("all");
    let (n, keys) = (20_000, 20);
    st.publish(&keyed(n, keys));
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-all\"\ncheckpoint_interval_ms = 100\n{}[ordering]\nlanes = 4\n{}",
            source(&st, SERVER, "format = \"json\""),
            sink_file("out.jsonl"),
        ),
    );
    let child = s.spawn_logged(&p);
    let out = s.path("out.jsonl");
    wait_logged(&s, "every message written", || {
        lines(&out).len() as u64 >= n
    });
    wait_logged(&s, "every message acknowledged", || {
        st.consumer_state("weir").1 == 0
    });
    let last = stop(&s, child);
    assert!(last.contains(&format!("received={n}")), "{last}");
    assert!(last.contains(&format!("delivered={n}")), "{last}");
    assert!(last.contains("unfinished=0"), "{last}");
    assert_eq!(check_keyed(&out, n, keys, false), 0);
    assert_eq!(st.consumer_state("weir"), (0, 0, 0));
}

#[test]
fn nats_envelope_holds_subject_headers_and_sequences() {
    let st = TestStream::new("meta");
    st.rt.block_on(async {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", "order-1");
        h.insert("tenant", "acme");
        st.js
            .publish_with_headers(format!("{}.orders.eu", st.prefix), h, "{\"a\":1}".into())
            .await
            .unwrap()
            .await
            .unwrap();
        st.js
            .publish(format!("{}.orders.us", st.prefix), "{\"a\":2}".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-meta\"\ncheckpoint_interval_ms = 100\n{}[sink]\ntype = \"file\"\npath = \"out.jsonl\"\nencoding = \"envelope\"\n",
            source(&st, SERVER, "key = \"<$.meta.headers.tenant>\""),
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "both written", || {
        lines(&s.path("out.jsonl")).len() >= 2
    });
    stop(&s, child);
    let mut out = json_lines(&s.path("out.jsonl"));
    // Two keys: two lanes, in either order.
    out.sort_by_key(|v| v["meta"]["stream_seq"].as_u64());
    let first = &out[0];
    assert_eq!(first["source"], "nats");
    assert_eq!(first["id"], "order-1", "the Nats-Msg-Id: {first}");
    assert_eq!(first["key"], "acme", "{first}");
    assert_eq!(first["meta"]["subject"], format!("{}.orders.eu", st.prefix));
    assert_eq!(first["meta"]["stream"], st.name.as_str());
    assert_eq!(first["meta"]["stream_seq"], 1);
    assert_eq!(first["meta"]["delivered"], 1);
    assert_eq!(first["meta"]["headers"]["tenant"], "acme");
    assert_eq!(first["data"]["a"], 1);
    let second = &out[1];
    assert_eq!(second["id"], format!("{}:2", st.name), "{second}");
    // Without the header, the template renders empty.
    assert_eq!(second["key"], "", "{second}");
}

#[test]
fn nats_sigkill_mid_stream_loses_nothing_and_keeps_key_order() {
    let st = TestStream::new("kill");
    let (n, keys) = (20_000, 20);
    st.publish(&keyed(n, keys));
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-kill\"\ncheckpoint_interval_ms = 100\n{}[ordering]\nlanes = 4\n{}",
            source(&st, SERVER, "format = \"json\"\nbatch_size = 100"),
            sink_file("out.jsonl"),
        ),
    );
    let out = s.path("out.jsonl");
    for kill in 1..=3u64 {
        let child = s.spawn_logged(&p);
        let at = kill * n / 5;
        wait_logged(&s, "some progress", || lines(&out).len() as u64 >= at);
        signal(&child, libc::SIGKILL);
        wait_exit(child);
    }
    let child = s.spawn_logged(&p);
    wait_logged(&s, "every message written", || {
        let got: BTreeSet<(String, u64)> = lines(&out)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                (
                    v["k"].as_str().unwrap().to_owned(),
                    v["seq"].as_u64().unwrap(),
                )
            })
            .collect();
        got.len() as u64 >= n
    });
    wait_logged(&s, "every message acknowledged", || {
        let (pending, ack_pending, _) = st.consumer_state("weir");
        pending == 0 && ack_pending == 0
    });
    stop(&s, child);
    let dups = check_keyed(&out, n, keys, true);
    // At least once: what was in flight at each kill (unacknowledged) comes again, at most the
    // consumer's max_ack_pending (20,000 by default) per kill, in practice far fewer.
    eprintln!("repeats after 3 kills: {dups}");
    assert!(dups as u64 <= 3 * 20_000, "{dups}");
}

/// A process that died holding messages leaves deadlines out of stream order: the older half,
/// said to be in progress shortly before it died, is due again after the newer half. The server
/// delivers them again in the order they came due; weir must still write the key in order.
#[test]
fn nats_a_dead_processs_messages_come_back_in_stream_order_whatever_their_deadlines() {
    use async_nats::jetstream::AckKind;
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    use futures_util::StreamExt;
    let st = TestStream::new("deadlines");
    let n = 200;
    st.publish(&keyed(n, 1));
    st.rt.block_on(async {
        let client = async_nats::connect(SERVER).await.unwrap();
        let js = jetstream::new(client.clone());
        let stream = js.get_stream(&st.name).await.unwrap();
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some("weir".into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(3),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut taken = Vec::new();
        while taken.len() < n as usize {
            let mut batch = consumer
                .fetch()
                .max_messages(n as usize - taken.len())
                .messages()
                .await
                .unwrap();
            while let Some(m) = batch.next().await {
                taken.push(m.unwrap());
            }
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for m in &taken[..n as usize / 2] {
            m.ack_with(AckKind::Progress).await.unwrap();
        }
        client.flush().await.unwrap();
    });
    assert_eq!(
        st.consumer_state("weir").1,
        n as usize,
        "all held, none acknowledged"
    );
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-deadlines\"\ncheckpoint_interval_ms = 100\n{}{}",
            source(&st, SERVER, "format = \"json\""),
            sink_file("out.jsonl"),
        ),
    );
    let out = s.path("out.jsonl");
    let child = s.spawn_logged(&p);
    wait_logged(&s, "every message written", || {
        lines(&out).len() as u64 >= n
    });
    wait_logged(&s, "every message acknowledged", || {
        st.consumer_state("weir").1 == 0
    });
    stop(&s, child);
    assert_eq!(check_keyed(&out, n, 1, false), 0);
}

/// weir reading `st` to `out.jsonl` through a proxy the test controls, in batches of 50.
fn through_proxy(st: &TestStream) -> (TcpProxy, Scratch, std::process::Child) {
    let proxy = TcpProxy::start(SERVER.parse().unwrap());
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-cut\"\ncheckpoint_interval_ms = 100\n{}{}",
            source(
                st,
                &format!("127.0.0.1:{}", proxy.port()),
                "format = \"json\"\nbatch_size = 50"
            ),
            sink_file("out.jsonl"),
        ),
    );
    let child = s.spawn_logged(&p);
    (proxy, s, child)
}

/// Waits until `n` distinct messages are written and the consumer holds nothing, then stops
/// weir: its final line.
fn written_and_acknowledged(
    st: &TestStream,
    s: &Scratch,
    child: std::process::Child,
    n: u64,
) -> String {
    let out = s.path("out.jsonl");
    wait_logged(s, "every message written", || {
        let got: BTreeSet<String> = lines(&out).into_iter().collect();
        got.len() as u64 >= n
    });
    wait_logged(s, "every message acknowledged", || {
        let (pending, ack_pending, _) = st.consumer_state("weir");
        pending == 0 && ack_pending == 0
    });
    stop(s, child)
}

#[test]
fn nats_connection_cut_mid_stream_recovers_without_loss() {
    let st = TestStream::new("cut");
    let (n, keys) = (6_000, 10);
    st.publish(&keyed(n, keys));
    let (proxy, s, child) = through_proxy(&st);
    let out = s.path("out.jsonl");
    wait_logged(&s, "some progress", || lines(&out).len() >= 1000);
    proxy.cut();
    std::thread::sleep(Duration::from_millis(1500));
    proxy.restore();
    let last = written_and_acknowledged(&st, &s, child, n);
    assert!(last.contains("unfinished=0"), "{last}");
    let log = s.log();
    assert!(log.contains("nats source disconnected"), "{log}");
    assert!(
        proxy.connections() >= 2,
        "weir reconnected through the proxy"
    );
    let dups = check_keyed_logged(&s, &out, n, keys);
    eprintln!("repeats after the cut: {dups}");
}

/// Deliveries the server sent as the connection broke never reach weir, and the server sends
/// them again only after `ack_wait`, after the newer messages the resumed pull brings at once.
/// weir holds the newer ones back until the lost ones came, so each key keeps its order. Here
/// the proxy throws away what the server sends for a while (the deliveries of that while are
/// lost), then cuts, while a publisher keeps publishing.
#[test]
fn nats_deliveries_lost_in_a_cut_come_before_newer_messages() {
    let (repeats, log) = publishing_through_a_cut("lost", |proxy| {
        proxy.lose_replies(true);
        std::thread::sleep(Duration::from_millis(400));
        proxy.cut();
        proxy.lose_replies(false);
    });
    eprintln!("repeats after the cut: {repeats}");
    assert!(
        log.contains("nats deliveries lost in the connection cut"),
        "deliveries were lost in the cut (the case under test):\n{log}"
    );
}

/// The cut loses acknowledgements too: messages weir wrote and acknowledged come again, and
/// before the lost deliveries (their `ack_wait` ran out first). They must not count as the lost
/// ones, or the newer messages held back would go on before the lost ones came (a full run saw
/// a key's 305 written before its 304). Here the proxy throws away what weir sends (its
/// acknowledgements), then what the server sends too (the deliveries of that while are lost),
/// then cuts.
#[test]
fn nats_acknowledgements_lost_in_a_cut_do_not_end_the_wait_for_lost_deliveries() {
    let (repeats, log) = publishing_through_a_cut("lostacks", |proxy| {
        // What weir acknowledges from now on is lost, while deliveries go on (the pull under
        // way has room for about a second of them), then the deliveries are lost too.
        proxy.lose_requests(true);
        std::thread::sleep(Duration::from_millis(250));
        proxy.lose_replies(true);
        std::thread::sleep(Duration::from_millis(250));
        proxy.cut();
        proxy.lose_replies(false);
        proxy.lose_requests(false);
    });
    eprintln!("repeats after the cut: {repeats}");
    assert!(
        log.contains("nats deliveries lost in the connection cut"),
        "deliveries were lost in the cut (the case under test):\n{log}"
    );
    assert!(
        repeats > 0,
        "acknowledgements were lost in the cut (the case under test): their messages came again"
    );
}

/// 4,000 messages of 8 keys published at about 2,000 a second (so that deliveries are under
/// way at the cut) to weir through a proxy; once 800 are written, `cut` does what it does to
/// the proxy and leaves it cut, and 300 ms later the proxy is restored. Checks that every
/// message was written and acknowledged with each key in order; returns the repeats and weir's
/// log.
fn publishing_through_a_cut(name: &str, cut: impl FnOnce(&TcpProxy)) -> (usize, String) {
    let st = TestStream::new(name);
    let (n, keys) = (4_000, 8);
    let msgs = keyed(n, keys);
    let (proxy, s, child) = through_proxy(&st);
    let out = s.path("out.jsonl");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for chunk in msgs.chunks(40) {
                st.publish(chunk);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        wait_logged(&s, "some progress", || lines(&out).len() >= 800);
        cut(&proxy);
        std::thread::sleep(Duration::from_millis(300));
        proxy.restore();
    });
    let last = written_and_acknowledged(&st, &s, child, n);
    assert!(last.contains("unfinished=0"), "{last}");
    (check_keyed_logged(&s, &out, n, keys), s.log())
}

#[test]
fn nats_poison_goes_to_the_dlq_and_is_terminated() {
    let st = TestStream::new("poison");
    let mut msgs = keyed(100, 5);
    msgs.insert(10, ("T.k0".into(), "not json".into()));
    msgs.insert(50, ("T.k1".into(), "{broken".into()));
    st.publish(&msgs);
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-poison\"\ncheckpoint_interval_ms = 100\n{}{}\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            source(&st, SERVER, "format = \"json\"\nack_wait_s = 1"),
            sink_file("out.jsonl"),
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "all ended", || {
        lines(&s.path("out.jsonl")).len() >= 100 && lines(&s.path("dlq.jsonl")).len() >= 2
    });
    wait_logged(&s, "every message answered", || {
        st.consumer_state("weir").1 == 0
    });
    // Past ack_wait: a message that was only acknowledged, not terminated, would be back.
    std::thread::sleep(Duration::from_millis(2500));
    let last = stop(&s, child);
    assert!(last.contains("received=102"), "not delivered again: {last}");
    assert!(last.contains("dead_lettered=2"), "{last}");
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 2);
    for r in &dlq {
        assert_eq!(r["error"]["stage"], "source", "{r}");
        assert_eq!(r["error"]["kind"], "malformed", "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("JSON"),
            "{r}"
        );
        assert_eq!(r["event"]["source"], "nats");
    }
    assert_eq!(st.consumer_state("weir"), (0, 0, 0));
    assert_eq!(check_keyed(&s.path("out.jsonl"), 100, 5, false), 0);
}

#[test]
fn nats_two_processes_share_one_consumer() {
    let st = TestStream::new("share");
    let (n, keys) = (4_000, 10);
    let s = Scratch::new();
    let pipeline = |name: &str, out: &str| {
        s.write(
            &format!("{name}.toml"),
            format!(
                "[pipeline]\nname = \"{name}\"\ncheckpoint_interval_ms = 100\n{}{}",
                source(&st, SERVER, "format = \"json\"\nbatch_size = 20"),
                sink_file(out),
            ),
        )
    };
    let (pa, pb) = (
        pipeline("share-a", "a.jsonl"),
        pipeline("share-b", "b.jsonl"),
    );
    let a = s.spawn_logged(&pa);
    wait_logged(&s, "the first to start", || {
        s.log().contains("nats source started")
    });
    let b = s.spawn_logged(&pb);
    wait_logged(&s, "the second to start", || {
        s.log().matches("nats source started").count() >= 2
    });
    // Published once both pull, in small slices so that both get some.
    let msgs = keyed(n, keys);
    for chunk in msgs.chunks(200) {
        st.publish(chunk);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (fa, fb) = (s.path("a.jsonl"), s.path("b.jsonl"));
    wait_logged(&s, "every message written", || {
        lines(&fa).len() + lines(&fb).len() >= n as usize
    });
    wait_logged(&s, "every message acknowledged", || {
        st.consumer_state("weir").1 == 0
    });
    stop(&s, a);
    stop(&s, b);
    let (la, lb) = (lines(&fa), lines(&fb));
    assert!(
        !la.is_empty() && !lb.is_empty(),
        "each got some: {} {}",
        la.len(),
        lb.len()
    );
    let all: BTreeSet<String> = la.iter().chain(lb.iter()).cloned().collect();
    assert_eq!(all.len(), n as usize, "together every message");
    assert_eq!(la.len() + lb.len(), n as usize, "each once");
}

#[test]
fn nats_in_progress_keeps_a_slow_message_from_coming_again() {
    let st = TestStream::new("slow");
    let mut msgs = vec![(
        "T.k0".to_owned(),
        "{\"k\":\"k0\",\"seq\":0,\"fault\":\"sleep\",\"ms\":4000}".to_owned(),
    )];
    msgs.extend((1..20).map(|i| ("T.k0".to_owned(), format!("{{\"k\":\"k0\",\"seq\":{i}}}"))));
    st.publish(&msgs);
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-slow\"\ncheckpoint_interval_ms = 100\n{}\
             [[plugin]]\npath = {:?}\ntimeout_ms = 20000\n{}",
            source(&st, SERVER, "format = \"json\"\nack_wait_s = 1"),
            crate::plugins::plugin("fixtures/faults/faults.wasm"),
            sink_file("out.jsonl"),
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "all written", || {
        lines(&s.path("out.jsonl")).len() >= 20
    });
    wait_logged(&s, "every message acknowledged", || {
        st.consumer_state("weir").1 == 0
    });
    let last = stop(&s, child);
    assert!(last.contains("received=20"), "none delivered twice: {last}");
    assert_eq!(check_keyed(&s.path("out.jsonl"), 20, 1, false), 0);
    assert_eq!(st.consumer_state("weir").2, 0, "nothing redelivered");
}

/// file → JetStream: counts, order per subject, `Nats-Msg-Id`, and after a SIGKILL the events
/// sent again are de-duplicated by the stream.
#[test]
fn nats_sink_publishes_in_order_and_dedups_after_sigkill() {
    let st = TestStream::new("sink");
    let (n, keys) = (10_000u64, 10u64);
    let s = Scratch::new();
    let input: String = keyed(n, keys)
        .into_iter()
        .map(|(_, body)| format!("{body}\n"))
        .collect();
    s.write("in.jsonl", input);
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-sink\"\ncheckpoint_interval_ms = 500\n\
             [source]\ntype = \"file\"\npath = \"in.jsonl\"\nbatch_size = 100\n\
             [ordering]\nkey = \"<$.data.k>\"\nlanes = 4\n\
             [sink]\ntype = \"nats\"\nservers = \"{SERVER}\"\nsubject = \"{}.out.<$.data.k>\"\n\
             headers = {{ seq = \"<$.data.seq>\" }}\n",
            st.prefix
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "some published", || st.count() >= n / 3);
    signal(&child, libc::SIGKILL);
    wait_exit(child);
    let out = s.run(&p);
    assert!(out.status.success(), "{}", stderr(&out));
    let msgs = st.messages();
    assert_eq!(
        msgs.len() as u64,
        n,
        "each event stored once: re-sent ones de-duplicated"
    );
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    for (subject, body, id) in &msgs {
        let v: Value = serde_json::from_str(body).unwrap();
        let k = v["k"].as_str().unwrap();
        assert_eq!(subject, &format!("{}.out.{k}", st.prefix));
        let id = id.as_deref().expect("a Nats-Msg-Id");
        assert!(id.starts_with("in.jsonl:"), "the event id: {id}");
        let want = next.entry(k.to_owned()).or_default();
        assert_eq!(v["seq"].as_u64().unwrap(), *want, "key {k} in order");
        *want += 1;
    }
}

#[test]
fn nats_sink_subject_without_a_stream_goes_to_the_dlq() {
    let st = TestStream::new("nostream");
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        format!(
            "{{\"to\":\"{0}.a\"}}\n{{\"to\":\"weir-no-stream-here.b\"}}\n{{\"to\":\"{0}.c\"}}\n",
            st.prefix
        ),
    );
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-nostream\"\n\
             [source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [sink]\ntype = \"nats\"\nservers = \"{SERVER}\"\nsubject = \"<$.data.to>\"\nmsg_id = \"\"\n\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n"
        ),
    );
    let out = s.run(&p);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(st.count(), 2);
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["error"]["stage"], "sink", "{}", dlq[0]);
    let message = dlq[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no stream for subject weir-no-stream-here.b"),
        "{message}"
    );
}

#[test]
fn nats_check_connect_names_a_missing_stream() {
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-check\"\n\
             [source]\ntype = \"nats\"\nservers = \"{SERVER}\"\nstream = \"weir_no_such_stream\"\nconsumer = \"c\"\n\
             [sink]\ntype = \"stdout\"\n"
        ),
    );
    let out = weir()
        .arg("check")
        .arg("--connect")
        .arg(&p)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no stream `weir_no_such_stream`"), "{err}");
    assert!(err.contains("stream"), "{err}");
}

/// A failed message is handed back (`-NAK` with a delay) until its `max_attempts`-th delivery,
/// then dead-lettered and terminated; the key's other messages go on.
#[test]
fn nats_failure_is_redelivered_then_dead_lettered() {
    let st = TestStream::new("nak");
    st.publish(&[
        ("T.a".to_owned(), "{\"k\":\"a\",\"seq\":0}".to_owned()),
        (
            "T.b".to_owned(),
            "{\"k\":\"b\",\"seq\":0,\"fault\":\"error\"}".to_owned(),
        ),
        ("T.a".to_owned(), "{\"k\":\"a\",\"seq\":1}".to_owned()),
    ]);
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"nats-nak\"\ncheckpoint_interval_ms = 100\n{}\
             [[plugin]]\npath = {:?}\n[retry]\nmax_attempts = 1\n{}\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            source(&st, SERVER, "format = \"json\"\nmax_attempts = 2"),
            crate::plugins::plugin("fixtures/faults/faults.wasm"),
            sink_file("out.jsonl"),
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the failed message dead-lettered", || {
        !lines(&s.path("dlq.jsonl")).is_empty()
    });
    wait_logged(&s, "every message answered", || {
        st.consumer_state("weir").1 == 0
    });
    let last = stop(&s, child);
    assert!(last.contains("released=1"), "{last}");
    assert!(last.contains("dead_lettered=1"), "{last}");
    assert!(last.contains("delivered=2"), "{last}");
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["event"]["meta"]["delivered"], 2, "{}", dlq[0]);
    assert_eq!(dlq[0]["error"]["stage"], "plugin:faults");
    assert_eq!(check_keyed(&s.path("out.jsonl"), 2, 1, false), 0);
}
