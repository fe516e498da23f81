//! RabbitMQ in and out, on the real binary against the machine's broker (127.0.0.1:5672,
//! guest/guest): content and counts, per-key order, poison messages and plugin failures to the
//! DLQ with their reason, redrive to the queue's dead-letter exchange, SIGKILL mid-stream, the
//! connection cut mid-stream (a proxy the test controls), the sink's confirms and unroutable
//! messages, and `weir check --connect`.
//!
//! Each test declares its own queues and exchanges (named after the process and a counter) and
//! deletes them when it ends, failed or not. The stream is delivery.rs's: keyed events with
//! per-key sequence numbers, 5% of which the faults plugin fails; each message carries its key
//! in the `k` header too.

use crate::delivery::{Stream, check_dlq, check_output};
use crate::plugins::plugin;
use crate::support::*;
use crate::tcp_proxy::TcpProxy;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A connection of the test's own, and what it declared (deleted on drop).
struct Mq {
    rt: tokio::runtime::Runtime,
    _conn: Connection,
    ch: Channel,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Mq {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (conn, ch) = rt.block_on(async {
            let conn = Connection::connect(URL, ConnectionProperties::default())
                .await
                .expect("RabbitMQ at 127.0.0.1:5672 (guest/guest)");
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            (conn, ch)
        });
        Mq {
            rt,
            _conn: conn,
            ch,
            queues: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    fn name(what: &str) -> String {
        format!(
            "weir-test-{}-{}-{what}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// A durable queue; `dead_letter_exchange` sets its DLX.
    fn queue(&mut self, what: &str, dead_letter_exchange: Option<&str>) -> String {
        let name = Self::name(what);
        let mut args = FieldTable::default();
        if let Some(x) = dead_letter_exchange {
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(x.into()),
            );
        }
        self.rt
            .block_on(self.ch.queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            ))
            .unwrap();
        self.queues.push(name.clone());
        name
    }

    fn exchange(&mut self, what: &str, kind: ExchangeKind) -> String {
        let name = Self::name(what);
        self.rt
            .block_on(self.ch.exchange_declare(
                name.as_str().into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ))
            .unwrap();
        self.exchanges.push(name.clone());
        name
    }

    fn bind(&self, queue: &str, exchange: &str, key: &str) {
        self.rt
            .block_on(self.ch.queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ))
            .unwrap();
    }

    /// Publishes the stream's lines to `queue` (the default exchange), each with its key in the
    /// `k` header, and waits for the broker's confirms.
    fn publish_lines(&self, queue: &str, lines: &[String]) {
        self.rt.block_on(async {
            for chunk in lines.chunks(1000) {
                for line in chunk {
                    let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
                    let mut headers = FieldTable::default();
                    if let Some(k) = v["k"].as_str() {
                        headers.insert("k".into(), AMQPValue::LongString(LongString::from(k)));
                    }
                    let props = BasicProperties::default()
                        .with_headers(headers)
                        .with_delivery_mode(2)
                        .with_app_id("weir-test".into());
                    // Confirms are awaited together below.
                    let confirm = self
                        .ch
                        .basic_publish(
                            "".into(),
                            queue.into(),
                            BasicPublishOptions::default(),
                            line.trim_end().as_bytes(),
                            props,
                        )
                        .await
                        .unwrap();
                    drop(confirm);
                }
                self.ch.wait_for_confirms().await.unwrap();
            }
        });
    }

    /// Messages ready in `queue` (not counting ones delivered and unacknowledged).
    fn ready(&self, queue: &str) -> u32 {
        self.rt
            .block_on(self.ch.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ))
            .map(|q| q.message_count())
            .unwrap_or(0)
    }

    /// Takes every message of `queue`: body and properties, in order.
    fn drain(&self, queue: &str) -> Vec<(String, BasicProperties)> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            while let Some(m) = self
                .ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                let d = m.delivery;
                out.push((String::from_utf8_lossy(&d.data).into_owned(), d.properties));
            }
            out
        })
    }
}

impl Drop for Mq {
    fn drop(&mut self) {
        self.rt.block_on(async {
            for q in &self.queues {
                let _ = self
                    .ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for x in &self.exchanges {
                let _ = self
                    .ch
                    .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
            }
        });
    }
}

fn source(url: &str, queue: &str, extra: &str) -> String {
    format!(
        "[source]\ntype = \"rabbitmq\"\nurl = {url:?}\nqueue = {queue:?}\nformat = \"json\"\n\
         key_header = \"k\"\nbatch_size = 200\n{extra}\n"
    )
}

/// The faults plugin, four lanes, quick retries, a small in-flight limit (the prefetch).
fn middle() -> String {
    format!(
        "[[plugin]]\npath = {:?}\n[ordering]\nlanes = 4\nmax_in_flight = 2000\n\
         [retry]\nmax_attempts = 2\nbackoff_ms = [5, 50]\n",
        plugin("fixtures/faults/faults.wasm")
    )
}

fn file_out() -> &'static str {
    "[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n"
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

/// Dead-letter records of `dlq` whose stage is `stage`.
fn dlq_records(path: &std::path::Path, stage: &str) -> Vec<Value> {
    lines(path)
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["error"]["stage"] == stage)
        .collect()
}

#[test]
fn rabbitmq_queue_to_file_every_event_once_in_key_order_and_poison_to_the_dlq() {
    let mut mq = Mq::new();
    let queue = mq.queue("in", None);
    let stream = Stream::new(20_000, 20, 11);
    let mut all = stream.lines.clone();
    // Poison: not JSON, with `format = "json"`.
    for i in 0..5 {
        all.insert(i * 3000 + 7, format!("not json {i}\n"));
    }
    mq.publish_lines(&queue, &all);

    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"rmq\"\ncheckpoint_interval_ms = 100\n{}{}{}",
            source(URL, &queue, ""),
            middle(),
            file_out()
        ),
    );
    let child = s.spawn_logged(&p);
    let total = stream.delivered_count();
    wait_logged(&s, "every event delivered and dead-lettered", || {
        lines(&s.path("out.jsonl")).len() >= total
            && lines(&s.path("dlq.jsonl")).len() >= stream.faulty.len() + 5
    });
    let last = stop(&s, child);
    for want in [
        format!("received={}", all.len()),
        format!("delivered={total}"),
        format!("dead_lettered={}", stream.faulty.len() + 5),
        "unfinished=0".to_owned(),
    ] {
        assert!(last.contains(&want), "{want} in {last}");
    }
    // Each key in order, every event once (no crash: no repeats).
    let (dups, torn) = check_output(&s.path("out.jsonl"), &stream, false);
    assert_eq!((dups, torn), (0, 0));
    let dlq = s.path("dlq.jsonl");
    let poison = dlq_records(&dlq, "source");
    assert_eq!(poison.len(), 5, "the poison messages are dead-lettered");
    for r in &poison {
        assert_eq!(r["error"]["kind"], "malformed", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON"),
            "{r}"
        );
        assert!(r["event"]["data"].as_str().unwrap().starts_with("not json"));
        // The delivery's properties and headers are in meta.
        assert_eq!(r["event"]["source"], "rabbitmq", "{r}");
        assert_eq!(r["event"]["meta"]["queue"], queue.as_str(), "{r}");
        assert_eq!(r["event"]["meta"]["routing_key"], queue.as_str(), "{r}");
        assert_eq!(r["event"]["meta"]["app_id"], "weir-test", "{r}");
        assert_eq!(r["event"]["meta"]["delivery_mode"], 2, "{r}");
        assert_eq!(r["event"]["meta"]["redelivered"], false, "{r}");
    }
    let faulted = dlq_records(&dlq, "plugin:faults");
    assert_eq!(faulted.len(), stream.faulty.len());
    for r in &faulted {
        // The key came from the `k` header.
        assert_eq!(r["event"]["key"], r["event"]["data"]["k"], "{r}");
        assert_eq!(r["event"]["meta"]["headers"]["k"], r["event"]["data"]["k"]);
    }
    let only_plugin: String = lines(&dlq)
        .into_iter()
        .filter(|l| l.contains("plugin:faults"))
        .map(|l| l + "\n")
        .collect();
    check_dlq(&s.write("plugin-dlq.jsonl", only_plugin), &stream);
    // Everything was acknowledged: nothing came back when weir's connection closed.
    assert_eq!(mq.ready(&queue), 0, "messages left in the queue");
}

#[test]
fn rabbitmq_sigkill_mid_stream_and_restarts_lose_nothing_and_keep_key_order() {
    let mut mq = Mq::new();
    let queue = mq.queue("crash", None);
    let stream = Stream::new(20_000, 16, 5);
    mq.publish_lines(&queue, &stream.lines);

    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"rmq-crash\"\ncheckpoint_interval_ms = 20\n{}{}{}",
            // The prefetch said outright: it bounds the repeats below (by default it is
            // max_in_flight or 10,000, whichever is more).
            source(URL, &queue, "prefetch = 2000"),
            middle(),
            file_out()
        ),
    );
    let out = s.path("out.jsonl");
    let mut kills = 0;
    for round in 1..=3 {
        let mut child = s.spawn_logged(&p);
        let before = lines(&out).len();
        wait_logged(&s, "progress before the kill", || {
            lines(&out).len() > before + round * 1500
        });
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let child = s.spawn_logged(&p);
    let total = stream.delivered_count();
    let firsts = || {
        let mut seen = BTreeSet::new();
        for l in lines(&out) {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                seen.insert((v["k"].as_str().unwrap_or("").to_owned(), v["seq"].as_u64()));
            }
        }
        seen.len()
    };
    wait_logged(&s, "every event delivered after the restarts", || {
        firsts() >= total && mq.ready(&queue) == 0
    });
    let _ = stop(&s, child);
    // Every event at least once, each key's first occurrences in order; repeats bounded by
    // what the broker can hold unacknowledged when a channel is lost (the prefetch, 2000): at
    // each kill, and at each reconnect within a process (a loaded machine can miss a
    // heartbeat), which shows as a consumer started again. Every channel but the last, stopped
    // cleanly, was lost. (This test once ran on the default prefetch, 10,000, while it assumed
    // 2,000: written events wait for their ack until the next checkpoint, so a kill can
    // repeat more than max_in_flight, and one loaded run counted 6,278 for three kills.) A
    // replay of the stream would still fail it.
    let channels = s.log().matches("rabbitmq consumer started").count();
    let lost = channels.saturating_sub(1).max(kills);
    let (dups, torn) = check_output(&out, &stream, true);
    assert!(torn <= kills, "{torn} torn lines for {kills} kills");
    assert!(
        dups <= lost * 2000,
        "{dups} repeats for {kills} kills and {channels} channels opened"
    );
    eprintln!(
        "rabbitmq SIGKILL: {kills} kills, {channels} channels, {dups} repeats, {torn} torn lines"
    );
    // Faulty events are dead-lettered at least once each.
    let got: BTreeSet<(String, u64)> = dlq_records(&s.path("dlq.jsonl"), "plugin:faults")
        .iter()
        .map(|r| {
            (
                r["event"]["data"]["k"].as_str().unwrap().to_owned(),
                r["event"]["data"]["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, stream.faulty);
    assert_eq!(mq.ready(&queue), 0, "nothing left or unacknowledged");
}

#[test]
fn rabbitmq_connection_cut_mid_stream_reconnects_and_loses_nothing() {
    let mut mq = Mq::new();
    let queue = mq.queue("cut", None);
    let stream = Stream::new(8_000, 8, 3);
    mq.publish_lines(&queue, &stream.lines);
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap());
    let via = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port());

    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"rmq-cut\"\ncheckpoint_interval_ms = 50\n{}{}{}",
            source(&via, &queue, "prefetch = 500"),
            middle(),
            file_out()
        ),
    );
    let out = s.path("out.jsonl");
    let child = s.spawn_logged(&p);
    wait_logged(&s, "progress before the cut", || lines(&out).len() > 1000);
    proxy.cut();
    wait_logged(&s, "the lost connection logged", || {
        s.log().contains("rabbitmq source connection failing")
    });
    proxy.restore();
    let total = stream.delivered_count();
    let firsts = || {
        let mut seen = BTreeSet::new();
        for l in lines(&out) {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                seen.insert((v["k"].as_str().unwrap_or("").to_owned(), v["seq"].as_u64()));
            }
        }
        seen.len()
    };
    wait_logged(&s, "every event delivered after the reconnect", || {
        firsts() >= total
    });
    wait_logged(&s, "the queue to empty", || mq.ready(&queue) == 0);
    let _ = stop(&s, child);
    assert!(s.log().contains("rabbitmq source connection works again"));
    let (dups, _) = check_output(&out, &stream, true);
    assert!(dups <= 500, "{dups} repeats: at most one prefetch");
    assert_eq!(mq.ready(&queue), 0, "nothing left or unacknowledged");
}

#[test]
fn rabbitmq_redrive_rejects_failed_messages_to_the_queues_dead_letter_exchange() {
    let mut mq = Mq::new();
    let dlx = mq.exchange("dlx", ExchangeKind::Fanout);
    let dead = mq.queue("dead", None);
    mq.bind(&dead, &dlx, "");
    let queue = mq.queue("redrive", Some(&dlx));
    let stream = Stream::new(600, 6, 9);
    mq.publish_lines(&queue, &stream.lines);

    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"rmq-redrive\"\ncheckpoint_interval_ms = 50\n{}{}{}",
            source(URL, &queue, "on_failure = \"redrive\""),
            middle(),
            file_out()
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "every event delivered or redriven", || {
        lines(&s.path("out.jsonl")).len() + mq.ready(&dead) as usize >= stream.lines.len()
            && mq.ready(&queue) == 0
    });
    let _ = stop(&s, child);
    assert!(
        lines(&s.path("dlq.jsonl")).is_empty(),
        "redrive: nothing in weir's DLQ"
    );
    let dead_letters = mq.drain(&dead);
    let mut got = BTreeSet::new();
    for (body, props) in &dead_letters {
        let v: Value = serde_json::from_str(body).unwrap();
        got.insert((
            v["k"].as_str().unwrap().to_owned(),
            v["seq"].as_u64().unwrap(),
        ));
        // The broker's x-death header names the queue it was rejected from.
        let headers = props.headers().as_ref().expect("x-death");
        assert!(headers.inner().contains_key("x-death"), "{body}");
    }
    // Every failed event is there; so may be later events of its key held back with it.
    assert!(got.is_superset(&stream.faulty), "{got:?}");
    let delivered: BTreeSet<(String, u64)> = lines(&s.path("out.jsonl"))
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["k"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeSet<(String, u64)> = stream
        .expected
        .iter()
        .flat_map(|(k, seqs)| seqs.iter().map(move |&q| (k.clone(), q)))
        .collect();
    // Every good event was delivered or went along with its key's failed one.
    let accounted: BTreeSet<_> = delivered.union(&got).cloned().collect();
    assert!(accounted.is_superset(&want));
    assert_eq!(mq.ready(&queue), 0);
}

#[test]
fn rabbitmq_sink_publishes_confirmed_in_key_order_and_dead_letters_unroutable() {
    let mut mq = Mq::new();
    let exchange = mq.exchange("out", ExchangeKind::Topic);
    let bound = mq.queue("bound", None);
    mq.bind(&bound, &exchange, "orders.#");
    let stream = Stream::new(3_000, 10, 4);
    // Every 100th event goes to a routing key nothing is bound to.
    let mut input = String::new();
    let mut unroutable = 0;
    for (i, line) in stream.lines.iter().enumerate() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        v["rk"] = if i % 100 == 50 && v["fault"].is_null() {
            unroutable += 1;
            Value::from("nowhere")
        } else {
            Value::from("orders.created")
        };
        input.push_str(&format!("{v}\n"));
    }
    let s = Scratch::new();
    s.write("in.jsonl", &input);
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"rmq-sink\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [ordering]\nkey = \"<$.data.k>\"\nlanes = 4\n[[plugin]]\npath = {:?}\n\
             [retry]\nmax_attempts = 2\nbackoff_ms = [5, 50]\n\
             [sink]\ntype = \"rabbitmq\"\nurl = \"amqp://guest@127.0.0.1:5672/%2f\"\n\
             password = {{ env = \"RMQ_TEST_PASSWORD\" }}\nexchange = {exchange:?}\n\
             routing_key = \"<$.data.rk>\"\nheaders = {{ key = \"<$.data.k>\" }}\n\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            plugin("fixtures/faults/faults.wasm")
        ),
    );
    let out = s
        .weir_run(&p)
        .env("RMQ_TEST_PASSWORD", "guest")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = mq.drain(&bound);
    assert_eq!(got.len(), stream.delivered_count() - unroutable);
    // Per key, in order, each once.
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    for (body, props) in &got {
        let v: Value = serde_json::from_str(body).unwrap();
        let k = v["k"].as_str().unwrap().to_owned();
        let seq = v["seq"].as_u64().unwrap();
        let prev = next.insert(k.clone(), seq);
        assert!(prev.is_none_or(|p| p < seq), "key {k}: {prev:?} then {seq}");
        assert_eq!(props.delivery_mode(), &Some(2), "persistent");
        assert_eq!(
            props.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert!(props.message_id().is_some());
        let h = props.headers().as_ref().unwrap();
        assert_eq!(
            h.inner().get("key"),
            Some(&AMQPValue::LongString(k.as_str().into()))
        );
    }
    let unroutable_records = dlq_records(&s.path("dlq.jsonl"), "sink");
    assert_eq!(unroutable_records.len(), unroutable);
    for r in &unroutable_records {
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!(
                "unroutable: exchange {exchange} routing key nowhere (312 NO_ROUTE)"
            )),
            "{msg}"
        );
    }
    assert_eq!(
        dlq_records(&s.path("dlq.jsonl"), "plugin:faults").len(),
        stream.faulty.len()
    );
    // The password came from the environment and is in no log line.
    assert!(!stderr(&out).contains("guest@"), "{}", stderr(&out));
}

#[test]
fn rabbitmq_check_connect_names_a_missing_queue_and_exchange() {
    let mut mq = Mq::new();
    let queue = mq.queue("here", None);
    let s = Scratch::new();
    let missing = Mq::name("missing");
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"rmq-check\"\n{}[sink]\ntype = \"rabbitmq\"\nurl = {URL:?}\nexchange = {missing:?}\nrouting_key = \"x\"\n",
            source(URL, &queue, "")
        ),
    );
    let out = weir()
        .args(["check", "--connect"])
        .arg(&p)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let err = stderr(&out) + &String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("exchange `{missing}` does not exist")),
        "{err}"
    );
    assert!(!err.contains("guest:guest"), "password shown: {err}");
    let p = s.write(
        "q.toml",
        format!(
            "[pipeline]\nname = \"rmq-check2\"\n{}[sink]\ntype = \"stdout\"\n",
            source(URL, &missing, "")
        ),
    );
    let out = weir()
        .args(["check", "--connect"])
        .arg(&p)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let err = stderr(&out) + &String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("queue `{missing}` does not exist")),
        "{err}"
    );
}

#[test]
fn rabbitmq_sink_connection_cut_mid_stream_retries_and_keeps_key_order() {
    let mut mq = Mq::new();
    let bound = mq.queue("sink-cut", None);
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap());
    let n = 30_000u64;
    let s = Scratch::new();
    let input: String = (0..n)
        .map(|i| format!("{{\"k\":\"K{}\",\"seq\":{}}}\n", i % 7, i / 7))
        .collect();
    s.write("in.jsonl", &input);
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"rmq-sink-cut\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [ordering]\nkey = \"<$.data.k>\"\nlanes = 4\n[retry]\nbackoff_ms = [20, 200]\n\
             [sink]\ntype = \"rabbitmq\"\nurl = \"amqp://guest:guest@127.0.0.1:{}/%2f\"\n\
             exchange = \"\"\nrouting_key = {bound:?}\nconfirm_timeout_ms = 2000\n",
            proxy.port()
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "progress before the cut", || mq.ready(&bound) > 2000);
    proxy.cut();
    wait_logged(&s, "the sink's failure logged", || {
        let log = s.log();
        log.contains("no confirm") || log.contains("publish:") || log.contains("cannot connect")
    });
    proxy.restore();
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
    let got = mq.drain(&bound);
    let mut firsts: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (body, _) in &got {
        let v: Value = serde_json::from_str(body).unwrap();
        let (k, seq) = (
            v["k"].as_str().unwrap().to_owned(),
            v["seq"].as_u64().unwrap(),
        );
        if !seen.insert((k.clone(), seq)) {
            continue; // sent again after the cut: at least once
        }
        let prev = firsts.insert(k.clone(), seq);
        assert_eq!(
            prev.map_or(0, |p| p + 1),
            seq,
            "key {k}: {prev:?} then {seq}"
        );
    }
    assert_eq!(seen.len() as u64, n, "every event delivered");
    eprintln!("rabbitmq sink cut: {} messages for {n} events", got.len());
}

#[test]
fn rabbitmq_dry_run_shows_the_message_without_connecting() {
    let s = Scratch::new();
    s.write(
        "events.jsonl",
        "{\"k\":\"C1\",\"type\":\"created\"}\nnot json\n",
    );
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"rmq-dry\"\n\
         [source]\ntype = \"rabbitmq\"\nurl = \"amqp://weir@127.0.0.1:1/%2f\"\nqueue = \"in\"\nformat = \"json\"\n\
         [sink]\ntype = \"rabbitmq\"\nurl = \"amqp://weir@127.0.0.1:1/%2f\"\nexchange = \"orders\"\n\
         routing_key = \"orders.<$.data.type>\"\nheaders = { customer = \"<$.data.k>\" }\n",
    );
    let out = weir()
        .arg("dry-run")
        .arg(&p)
        .arg("--input")
        .arg("events.jsonl")
        .env("WEIR_STATE_DIR", s.state_dir())
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", stderr(&out));
    let sink = &lines[0]["sink"];
    assert_eq!(lines[0]["outcome"], "delivered", "{sink}");
    assert_eq!(sink["exchange"], "orders");
    assert_eq!(sink["routing_key"], "orders.created");
    assert_eq!(sink["headers"]["customer"], "C1");
    assert_eq!(sink["properties"]["delivery_mode"], 2);
    assert_eq!(sink["mandatory"], true);
    assert_eq!(lines[1]["outcome"], "dead-lettered", "{}", lines[1]);
    assert_eq!(lines[1]["stage"], "source");
}
