//! Byte-faithful relays: with `encoding = "data"`, a record that no stage changed is written as
//! it came, whatever the source: a Kafka tombstone stays a tombstone, a value or line that is not
//! JSON is not turned into a JSON string, an empty value stays empty, bytes that are not UTF-8
//! and record keys that are not UTF-8 keep their exact bytes (and so their partition). Filters,
//! templates and plugins still see the decoded event.

use crate::kafka_broker::Broker;
use crate::plugins::plugin;
use crate::sqs_server::SqsServer;
use crate::support::*;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// A Kafka record as bytes: `None` is no key, or no value (a tombstone).
#[derive(Clone, PartialEq, Eq)]
struct Raw {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    partition: i32,
}

/// Bytes as escaped ASCII (`b"\xff\x01"`), so that a failure shows which bytes changed.
impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |b: &Option<Vec<u8>>| match b {
            Some(b) => format!("b\"{}\"", b.escape_ascii()),
            None => "none".to_owned(),
        };
        write!(
            f,
            "(key {}, value {}, partition {})",
            show(&self.key),
            show(&self.value),
            self.partition
        )
    }
}

const PARTITIONS: u32 = 4;

/// Two keys that differ only in a byte that is not UTF-8: decoded lossily they are one key
/// (`\u{fffd}\x01`). With 4 partitions, librdkafka's default partitioner (CRC32 of the key
/// bytes) puts them in partitions 3 and 2, and their lossy decoding in partition 0.
const BINARY_KEYS: [&[u8]; 2] = [b"\xff\x01", b"\xfe\x01"];

/// The records of the relay: `(key, value)`, each a case that used to change on the way.
/// A Kafka record as produced: its key and its value, each possibly absent.
type Record = (Option<Vec<u8>>, Option<Vec<u8>>);

fn cases() -> Vec<Record> {
    let v = |b: &[u8]| Some(b.to_vec());
    vec![
        (v(b"tombstone"), None),
        (v(b"text"), v(b"this is not json")),
        (v(b"empty"), v(b"")),
        (v(b"binary"), v(b"\xff\xfe\x00 not UTF-8 \x80")),
        (v(BINARY_KEYS[0]), v(br#"{"which": "ff01"}"#)),
        (v(BINARY_KEYS[1]), v(br#"{"which": "fe01"}"#)),
        // Already kept before: JSON as it came (spacing, number forms), `null`, a JSON string.
        (v(b"json"), v(br#"{"b": 1.50,  "a": [1,2]}"#)),
        (v(b"null"), v(b"null")),
        (v(b"string"), v(br#""a JSON string""#)),
        (None, v(b"no key")),
        // Filtered out by its decoded key: filters see the event as before.
        (v(b"dropped"), v(b"filtered out")),
    ]
}

fn client(broker: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.addr());
    c
}

/// Produces the records in order, partitioned by librdkafka's default partitioner (as weir's
/// sink is), and waits for them.
fn produce(broker: &Broker, topic: &str, records: &[Record]) {
    let producer: BaseProducer = client(broker)
        .set("enable.idempotence", "true")
        .create()
        .expect("test producer");
    for (key, value) in records {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic);
        if let Some(k) = key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = value {
            record = record.payload(v.as_slice());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("test records acknowledged");
}

/// Every record of `topic` as bytes, once it holds `count`, in partition and offset order.
fn read(broker: &Broker, topic: &str, count: usize) -> Vec<Raw> {
    let consumer: BaseConsumer = client(broker)
        .set("group.id", "fidelity-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let start = Instant::now();
    let mut out: Vec<(i64, Raw)> = Vec::new();
    while out.len() < count {
        assert!(
            start.elapsed() < PATIENCE,
            "{topic} holds {} of {count} records: {out:?}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                Raw {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    partition: m.partition(),
                },
            )),
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out.sort_by_key(|(offset, r)| (r.partition, *offset));
    out.into_iter().map(|(_, r)| r).collect()
}

/// Kafka `in` -> filter -> (plugin) -> Kafka `out`, default encoding (`data`).
fn relay(broker: &Broker, name: &str, plugin_path: Option<&str>) -> String {
    let plugin = plugin_path
        .map(|p| format!("[[plugin]]\npath = {p:?}\n"))
        .unwrap_or_default();
    format!(
        "[pipeline]\nname = {name:?}\ncheckpoint_interval_ms = 50\n\
         [source]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopics = \"in\"\ngroup = {name:?}\nbatch_window_ms = 5\n\
         [[filter]]\npattern = '{{\"key\": [{{\"anything-but\": [\"dropped\"]}}]}}'\n\
         {plugin}\
         [sink]\ntype = \"kafka\"\nbrokers = {addr:?}\ntopic = \"out-{name}\"\n",
        addr = broker.addr(),
    )
}

/// Runs `pipeline` until `out` holds `count` records, and returns them.
fn run_relay(broker: &Broker, s: &Scratch, pipeline: &str, out: &str, count: usize) -> Vec<Raw> {
    let p = s.write(&format!("{out}.toml"), pipeline);
    let child = s.spawn_logged(&p);
    let records = read(broker, out, count);
    // Nothing more comes (the filtered record stays out).
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    assert_eq!(read(broker, out, count).len(), count, "{}", s.log());
    records
}

/// The input records as read back: keys, values and the partitions the test producer's
/// partitioner chose, which the sink's must choose again for the same key bytes.
fn expected(broker: &Broker) -> Vec<Raw> {
    read(broker, "in", cases().len())
        .into_iter()
        .filter(|r| r.key.as_deref() != Some(b"dropped"))
        .collect()
}

/// Sorted, so that input and output compare whatever the order of partitions; a record
/// without a key goes to any partition.
fn sorted(records: Vec<Raw>) -> Vec<Raw> {
    let mut records: Vec<Raw> = records
        .into_iter()
        .map(|r| Raw {
            partition: if r.key.is_some() { r.partition } else { -1 },
            ..r
        })
        .collect();
    records.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    records
}

#[test]
fn kafka_relay_writes_every_record_as_it_came() {
    let broker = Broker::start();
    broker.create_topic("in", PARTITIONS);
    broker.create_topic("out-plain", PARTITIONS);
    produce(&broker, "in", &cases());
    let want = expected(&broker);
    let partition_of = |key: &[u8]| {
        want.iter()
            .find(|r| r.key.as_deref() == Some(key))
            .map(|r| r.partition)
            .unwrap()
    };
    assert_ne!(
        partition_of(BINARY_KEYS[0]),
        partition_of(BINARY_KEYS[1]),
        "the test's two binary keys are meant to land in different partitions"
    );

    let s = Scratch::new();
    let got = run_relay(
        &broker,
        &s,
        &relay(&broker, "plain", None),
        "out-plain",
        want.len(),
    );
    // Key, value (or none) and partition of every record, byte for byte.
    assert_eq!(sorted(got.clone()), sorted(want), "{}", s.log());
    let tombstone = got.iter().find(|r| r.key.as_deref() == Some(b"tombstone"));
    assert_eq!(tombstone.map(|r| r.value.clone()), Some(None), "{got:?}");
}

/// A plugin that passes a record's payload on byte for byte keeps the record as it came; one
/// that changes it writes its own output.
#[test]
fn kafka_relay_through_a_plugin_keeps_what_it_passes_on_unchanged() {
    let broker = Broker::start();
    broker.create_topic("in", PARTITIONS);
    broker.create_topic("out-plugin", PARTITIONS);
    produce(&broker, "in", &cases());
    let want = expected(&broker);

    let s = Scratch::new();
    // The faults plugin passes what is not JSON on as it got it (text, empty, and the lossy
    // decoding of bytes that are not UTF-8) and adds `"seen_by"` to JSON, making the tombstone's
    // `null` an object.
    let faults = plugin("fixtures/faults/faults.wasm");
    let cases_through = [
        (b"text".as_slice(), Some(b"this is not json".to_vec())),
        (b"empty", Some(Vec::new())),
        (b"binary", Some(b"\xff\xfe\x00 not UTF-8 \x80".to_vec())),
        (b"tombstone", Some(br#"{"seen_by":"faults"}"#.to_vec())),
        (
            BINARY_KEYS[0],
            Some(br#"{"seen_by":"faults","which":"ff01"}"#.to_vec()),
        ),
        (
            BINARY_KEYS[1],
            Some(br#"{"seen_by":"faults","which":"fe01"}"#.to_vec()),
        ),
    ];
    // The JSON string makes the plugin trap (it cannot add a field to a string): dead-lettered.
    let got = run_relay(
        &broker,
        &s,
        &relay(&broker, "plugin", Some(faults.to_str().unwrap())),
        "out-plugin",
        want.len() - 1,
    );
    for (key, value) in cases_through {
        let r = got
            .iter()
            .find(|r| r.key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no record keyed {key:?} in {got:?}"));
        assert_eq!(r.value, value, "key {key:?}: {got:?}");
        let partition = want.iter().find(|w| w.key == r.key).unwrap().partition;
        assert_eq!(r.partition, partition, "key {key:?} keeps its partition");
    }
}

/// Writes `lines` (each without its newline) as a file, relays it file -> file, and returns
/// what the sink wrote.
fn file_relay(s: &Scratch, input: &[&[u8]], extra: &str) -> Vec<u8> {
    let mut text = Vec::new();
    for line in input {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    s.write("in.txt", &text);
    let p = s.write(
        "f.toml",
        format!(
            "[pipeline]\nname = \"lines\"\n\
             [source]\ntype = \"file\"\npath = \"in.txt\"\n{extra}\n\
             [sink]\ntype = \"file\"\npath = \"out.txt\"\n"
        ),
    );
    let out = s.run(&p);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read(s.path("out.txt")).unwrap()
}

#[test]
fn file_relay_writes_lines_as_they_came() {
    let input: &[&[u8]] = &[
        br#"{"a": 1,   "b": "x"}"#,
        b"this is not json",
        b"caf\xe9 latin-1, not UTF-8",
        br#""a JSON string""#,
        b"null",
        b"  spaced text  ",
    ];
    let mut want = Vec::new();
    for line in input {
        want.extend_from_slice(line);
        want.push(b'\n');
    }
    // `format = "text"` takes every line as text: written as it came too.
    for format in ["", "format = \"text\""] {
        let got = file_relay(&Scratch::new(), input, format);
        assert!(
            got == want,
            "{format:?}: wrote\n{}\ninstead of\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }
}

#[test]
fn sqs_relay_writes_bodies_that_are_not_json_as_they_came() {
    let server = SqsServer::start();
    let input = server.create_queue("in", &[]);
    let output = server.create_queue("out", &[]);
    let bodies = [
        "this is not json",
        r#"{"a": 1,   "b": "x"}"#,
        r#""a JSON string""#,
        "line one\nline two",
    ];
    server.send(
        &input,
        &bodies
            .iter()
            .map(|b| (None, (*b).to_owned()))
            .collect::<Vec<_>>(),
    );
    let s = Scratch::new();
    let p = s.write(
        "q.toml",
        format!(
            "[pipeline]\nname = \"bodies\"\ncheckpoint_interval_ms = 50\n\
             [source]\ntype = \"sqs\"\nqueue_url = {input:?}\nendpoint_url = {e:?}\nwait_time_s = 1\n\
             [sink]\ntype = \"sqs\"\nqueue_url = {output:?}\nendpoint_url = {e:?}\n",
            e = server.endpoint()
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "every message relayed", || {
        server.count(&output) >= bodies.len()
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    let mut got: Vec<String> = server.drain(&output).into_iter().map(|m| m.body).collect();
    let mut want: Vec<String> = bodies.iter().map(|b| (*b).to_owned()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// A file or stdout sink cannot write "no value": a tombstone relayed to a file is the line
/// `null` (its data), while a value that was not JSON is its text.
#[test]
fn kafka_to_file_writes_a_tombstone_as_null() {
    let broker = Broker::start();
    broker.create_topic("in", 1);
    // One key, so that the lines keep the records' order.
    let v = |b: &[u8]| Some(b.to_vec());
    produce(
        &broker,
        "in",
        &[
            (v(b"k"), None),
            (v(b"k"), v(b"plain text")),
            (v(b"k"), v(b"")),
            (v(b"k"), v(b"\xff\x00 bytes")),
        ],
    );
    let s = Scratch::new();
    let p = s.write(
        "k.toml",
        format!(
            "[pipeline]\nname = \"tofile\"\ncheckpoint_interval_ms = 50\n\
             [source]\ntype = \"kafka\"\nbrokers = {:?}\ntopics = \"in\"\ngroup = \"tofile\"\nbatch_window_ms = 5\n\
             [sink]\ntype = \"file\"\npath = \"out.txt\"\n",
            broker.addr()
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "four lines", || {
        std::fs::read(s.path("out.txt"))
            .is_ok_and(|b| b.iter().filter(|&&c| c == b'\n').count() >= 4)
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
    assert_eq!(
        std::fs::read(s.path("out.txt")).unwrap(),
        b"null\nplain text\n\n\xff\x00 bytes\n"
    );
}

/// `weir dlq redrive` writes a dead-lettered record back as it came: a JSON string stays a JSON
/// string, although in the DLQ record it is a string like the text of a record that was not
/// JSON (`meta.text` tells them apart; event.rs's tests cover text going through the DLQ).
#[test]
fn redrive_writes_dead_lettered_records_as_they_came() {
    let s = Scratch::new();
    // The faults plugin traps on a JSON string (it cannot add a field to one) and passes text
    // on as it is.
    s.write("in.txt", "\"a JSON string\"\nthis is not json\n");
    let pipeline = |plugin: &str| {
        format!(
            "[pipeline]\nname = \"again\"\n\
             [source]\ntype = \"file\"\npath = \"in.txt\"\n\
             {plugin}\
             [sink]\ntype = \"file\"\npath = \"out.txt\"\n"
        )
    };
    let faults = plugin("fixtures/faults/faults.wasm");
    let p = s.write(
        "p.toml",
        pipeline(&format!("[[plugin]]\npath = {faults:?}\n")),
    );
    let run = s.run(&p);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let dlq = s.state_dir().join("again/dlq.jsonl");
    assert_eq!(lines(&dlq).len(), 1, "the JSON string trapped");
    assert_eq!(lines(&s.path("out.txt")), ["this is not json"]);

    // The cause fixed (no plugin), the redriven record is written as it was read.
    s.write("p.toml", pipeline(""));
    let out = weir()
        .args(["dlq", "redrive", "p.toml", "--state-dir"])
        .arg(s.state_dir())
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        lines(&s.path("out.txt")),
        ["this is not json", "\"a JSON string\""]
    );
}
