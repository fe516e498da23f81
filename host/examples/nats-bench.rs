//! The NATS benchmark's helpers (scripts/bench-nats.sh), with the same client library as weir
//! (async-nats), against the machine's nats-server:
//!
//! - `setup NAME`: (re)creates streams `NAME_in` (subjects `NAME.in.>`) and `NAME_out`
//!   (`NAME.out.>`), file storage.
//! - `load NAME COUNT`: publishes COUNT ~400-byte order events to `NAME.in.<customer>`.
//! - `file COUNT PATH`: writes the same events as JSON lines.
//! - `consume NAME COUNT PATH BATCH`: the source baseline: a durable pull consumer on `NAME_in`
//!   (pulls of BATCH), each message's payload appended to PATH as a line, and acknowledged
//!   (weir acknowledges at checkpoints, after the file is synced). Prints its rate. With a last
//!   argument `sync`, as weir does: messages are acknowledged only once the file holding them
//!   is fsynced (when no message is ready, or half the consumer's max_ack_pending is held, as
//!   the RabbitMQ baseline acknowledges every half prefetch).
//! - `publish NAME PATH COUNT WINDOW`: the sink baseline: each line of PATH published to
//!   `NAME.out.<customer>` with a `Nats-Msg-Id`, WINDOW messages under way, then their acks
//!   awaited (as a weir write does). Prints its rate.
//! - `wait-file PATH COUNT`, `wait-stream NAME COUNT`: wait until the file has COUNT lines or
//!   `NAME_out` COUNT messages, and print the rate from the first arrival to the last.
//! - `teardown NAME`: deletes both streams.

#[path = "common/arrivals.rs"]
mod arrivals;
#[path = "common/orders.rs"]
mod orders;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::{FutureExt, StreamExt};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

const SERVER: &str = "127.0.0.1:4222";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("usage: nats-bench setup|load|file|consume|publish|wait-file|wait-stream|teardown ...");
            std::process::exit(2)
        })
    };
    let num = |i: usize| -> u64 { arg(i).parse().expect("a number") };
    match arg(0) {
        "setup" => setup(arg(1)).await,
        "load" => load(arg(1), num(2)).await,
        "file" => file(num(1), arg(2)),
        "consume" => {
            let sync = args.get(5).is_some_and(|a| a == "sync");
            consume(arg(1), num(2), arg(3), num(4) as usize, sync).await
        }
        "publish" => publish(arg(1), arg(2), num(3), num(4) as usize).await,
        "wait-file" => wait_file(arg(1), num(2)),
        "wait-stream" => wait_stream(arg(1), num(2)).await,
        "teardown" => teardown(arg(1)).await,
        other => panic!("unknown command {other}"),
    }
}

async fn js() -> jetstream::Context {
    let client = async_nats::connect(SERVER)
        .await
        .expect("nats-server at 127.0.0.1:4222");
    jetstream::new(client)
}

async fn setup(name: &str) {
    let js = js().await;
    for part in ["in", "out"] {
        let _ = js.delete_stream(format!("{name}_{part}")).await;
        js.create_stream(stream::Config {
            name: format!("{name}_{part}"),
            subjects: vec![format!("{name}.{part}.>")],
            ..Default::default()
        })
        .await
        .expect("create stream");
    }
}

async fn teardown(name: &str) {
    let js = js().await;
    for part in ["in", "out"] {
        let _ = js.delete_stream(format!("{name}_{part}")).await;
    }
}

async fn load(name: &str, count: u64) {
    let js = js().await;
    let mut acks = Vec::with_capacity(1024);
    for n in 0..count {
        let (customer, value) = orders::order(n);
        acks.push(
            js.publish(format!("{name}.in.{customer}"), value.into())
                .await
                .expect("publish"),
        );
        if acks.len() == 1024 {
            for a in acks.drain(..) {
                a.await.expect("ack");
            }
        }
    }
    for a in acks {
        a.await.expect("ack");
    }
}

fn file(count: u64, path: &str) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for n in 0..count {
        writeln!(out, "{}", orders::order(n).1).expect("write");
    }
    out.flush().expect("flush");
}

/// The plain consumer's, and weir's default.
const MAX_ACK_PENDING: usize = 20_000;

async fn consume(name: &str, count: u64, path: &str, batch: usize, sync: bool) {
    let js = js().await;
    let s = js.get_stream(format!("{name}_in")).await.expect("stream");
    let c: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("plain".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: MAX_ACK_PENDING as i64,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = c
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await
        .expect("pull");
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut first = None;
    let mut n = 0u64;
    // With `sync`: messages written and not yet acknowledged, acknowledged once the file is
    // synced.
    let mut held = Vec::new();
    while n < count {
        let next = match messages.next().now_or_never() {
            Some(m) => m,
            None => {
                settle(&mut out, &mut held).await;
                messages.next().await
            }
        };
        let Some(Ok(m)) = next else {
            continue;
        };
        first.get_or_insert_with(Instant::now);
        out.write_all(&m.payload).expect("write");
        out.write_all(b"\n").expect("write");
        if sync {
            held.push(m);
            if held.len() >= MAX_ACK_PENDING / 2 {
                settle(&mut out, &mut held).await;
            }
        } else {
            m.ack().await.expect("ack");
        }
        n += 1;
    }
    settle(&mut out, &mut held).await;
    out.flush().expect("flush");
    out.get_ref().sync_data().expect("sync");
    let secs = first.map_or(1e-3, |t| t.elapsed().as_secs_f64());
    println!(
        "{n} messages, {:.0} messages/s (from the first to the last, {secs:.2} s)",
        n as f64 / secs
    );
}

/// Flushes and fsyncs the file, then acknowledges the messages it holds.
async fn settle(out: &mut std::io::BufWriter<std::fs::File>, held: &mut Vec<jetstream::Message>) {
    if held.is_empty() {
        return;
    }
    out.flush().expect("flush");
    out.get_ref().sync_data().expect("sync");
    for m in held.drain(..) {
        m.ack().await.expect("ack");
    }
}

async fn publish(name: &str, path: &str, count: u64, window: usize) {
    let js = js().await;
    let f = std::io::BufReader::new(std::fs::File::open(path).expect("open"));
    let lines: Vec<String> = f.lines().map(|l| l.expect("read")).collect();
    let started = Instant::now();
    let mut acks = Vec::with_capacity(window);
    for (i, line) in lines.iter().take(count as usize).enumerate() {
        let customer = line
            .split("\"customerId\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("none");
        let message = jetstream::message::PublishMessage::build()
            .payload(line.clone().into())
            .message_id(format!("{path}:{}", i + 1));
        acks.push(
            js.send_publish(format!("{name}.out.{customer}"), message)
                .await
                .expect("publish"),
        );
        if acks.len() == window {
            for a in acks.drain(..) {
                a.await.expect("ack");
            }
        }
    }
    for a in acks {
        a.await.expect("ack");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{count} messages, {:.0} messages/s ({secs:.2} s)",
        count as f64 / secs
    );
}

fn wait_file(path: &str, count: u64) {
    let mut arrivals = arrivals::Arrivals::new();
    loop {
        let n = std::fs::File::open(path)
            .map(|f| std::io::BufReader::new(f).lines().count() as u64)
            .unwrap_or(0);
        if let Some(line) = arrivals.observe(n, count, "messages") {
            println!("{line}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_stream(name: &str, count: u64) {
    let js = js().await;
    let s = js.get_stream(format!("{name}_out")).await.expect("stream");
    let mut arrivals = arrivals::Arrivals::new();
    loop {
        let n = s.get_info().await.map(|i| i.state.messages).unwrap_or(0);
        if let Some(line) = arrivals.observe(n, count, "messages") {
            println!("{line}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
