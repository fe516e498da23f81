//! The Kafka benchmark's helpers (scripts/bench-kafka.sh), with the same client library as weir
//! (rdkafka, bundled librdkafka):
//!
//! - `load BROKERS TOPIC COUNT`: writes COUNT ~400-byte order events keyed by customer.
//! - `copy BROKERS FROM TO`: the baseline, a plain consume-and-produce copy: one consumer,
//!   one idempotent `acks=all` producer, offsets auto-committed. It does what weir does minus
//!   the filter, the plugin and weir's bookkeeping (per-event commit tracking, ordering lanes).
//! - `wait BROKERS TOPIC COUNT`: waits until TOPIC holds COUNT records and prints the rate from
//!   the first record's arrival to the last, so that group-join time does not count.

#[path = "common/arrivals.rs"]
mod arrivals;
#[path = "common/orders.rs"]
mod orders;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("usage: kafka-bench load|copy|wait BROKERS ...");
            std::process::exit(2)
        })
    };
    match arg(0) {
        "load" => load(arg(1), arg(2), arg(3).parse().expect("COUNT")),
        "copy" => copy(arg(1), arg(2), arg(3)),
        "wait" => wait(arg(1), arg(2), arg(3).parse().expect("COUNT")),
        other => panic!("unknown command {other}"),
    }
}

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

fn producer(brokers: &str) -> BaseProducer {
    client(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

fn send(p: &BaseProducer, topic: &str, key: Option<&[u8]>, value: &[u8]) {
    let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
    if let Some(k) = key {
        record = record.key(k);
    }
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

fn load(brokers: &str, topic: &str, count: u64) {
    let p = producer(brokers);
    for n in 0..count {
        let (customer, value) = orders::order(n);
        send(&p, topic, Some(customer.as_bytes()), value.as_bytes());
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120)).expect("loaded");
}

fn copy(brokers: &str, from: &str, to: &str) {
    let consumer: BaseConsumer = client(brokers)
        .set("group.id", "bench-copy")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()
        .expect("consumer");
    consumer.subscribe(&[from]).expect("subscribe");
    let p = producer(brokers);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => send(&p, to, m.key(), m.payload().unwrap_or_default()),
            Some(Err(e)) => eprintln!("consume: {e}"),
            None => {}
        }
        p.poll(Duration::ZERO);
    }
}

fn wait(brokers: &str, topic: &str, count: u64) {
    let consumer: BaseConsumer = client(brokers)
        .set("group.id", "bench-wait")
        .create()
        .expect("consumer");
    let total = || -> i64 {
        let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
            return 0;
        };
        let Some(t) = md.topics().first() else {
            return 0;
        };
        t.partitions()
            .iter()
            .filter_map(|p| {
                consumer
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                    .ok()
            })
            .map(|(lo, hi)| hi - lo)
            .sum()
    };
    let mut arrivals = arrivals::Arrivals::new();
    loop {
        let n = total().max(0) as u64;
        if let Some(line) = arrivals.observe(n, count, "records") {
            println!("{topic}: {line}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
