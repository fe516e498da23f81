//! The RabbitMQ benchmark's helpers (scripts/bench-rabbitmq.sh), with the same client library as
//! weir (lapin):
//!
//! - `declare URL QUEUE...`: declares durable queues (purged if they exist).
//! - `delete URL QUEUE...`: deletes them.
//! - `load URL QUEUE COUNT`: publishes COUNT ~400-byte order events, persistent, with confirms.
//! - `consume URL QUEUE COUNT PREFETCH FILE`: the source's baseline: a consumer with manual
//!   acknowledgements and the same prefetch, writing each body as a JSON line to FILE, and
//!   acknowledging (`multiple`) every half prefetch after flushing the file; ends after COUNT.
//!   With a last argument `sync`, the file is also fsynced before each acknowledgement, as weir
//!   does at its checkpoints (a message is acknowledged only once it would survive a power cut).
//! - `publish URL EXCHANGE ROUTING_KEY FILE BATCH`: the sink's baseline: publishes FILE's lines,
//!   persistent and mandatory, BATCH at a time pipelined, then waits for their confirms.
//! - `wait-file FILE COUNT` / `wait-queue URL QUEUE COUNT`: waits until the file has COUNT lines
//!   or the queue COUNT messages, and prints the rate from the first arrival to the last.

#[path = "common/arrivals.rs"]
mod arrivals;
#[path = "common/orders.rs"]
mod orders;

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::io::{BufRead, Write};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!(
                "usage: rabbitmq-bench declare|delete|load|consume|publish|wait-file|wait-queue ..."
            );
            std::process::exit(2)
        })
    };
    if arg(0) == "wait-file" {
        return wait_file(arg(1), arg(2).parse().expect("COUNT")).await;
    }
    let ch = channel(arg(1)).await;
    match arg(0) {
        "declare" => {
            for q in &args[2..] {
                declare(&ch, q).await;
                let _ = ch
                    .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
                    .await;
            }
        }
        "delete" => {
            for q in &args[2..] {
                let _ = ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
        "load" => load(&ch, arg(2), arg(3).parse().expect("COUNT")).await,
        "consume" => {
            consume(
                &ch,
                arg(2),
                arg(3).parse().expect("COUNT"),
                arg(4).parse().expect("PREFETCH"),
                arg(5),
                args.get(6).is_some_and(|a| a == "sync"),
            )
            .await
        }
        "publish" => publish(&ch, arg(2), arg(3), arg(4), arg(5).parse().expect("BATCH")).await,
        "wait-queue" => wait_queue(&ch, arg(2), arg(3).parse().expect("COUNT")).await,
        other => panic!("unknown command {other}"),
    }
}

async fn channel(url: &str) -> Channel {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    // The connection lives as long as the process.
    std::mem::forget(conn);
    ch
}

async fn declare(ch: &Channel, q: &str) -> u32 {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare")
    .message_count()
}

async fn load(ch: &Channel, queue: &str, count: u64) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for start in (0..count).step_by(1000) {
        for n in start..(start + 1000).min(count) {
            let (_, body) = orders::order(n);
            // Confirms are awaited together below.
            drop(
                ch.basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish"),
            );
        }
        ch.wait_for_confirms().await.expect("confirms");
    }
}

async fn consume(ch: &Channel, queue: &str, count: u64, prefetch: u16, file: &str, sync: bool) {
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).expect("output file"));
    let every = u64::from(prefetch / 2).max(1);
    let mut n = 0u64;
    while let Some(d) = consumer.next().await {
        let d = d.expect("delivery");
        out.write_all(&d.data).expect("write");
        out.write_all(b"\n").expect("write");
        n += 1;
        if n.is_multiple_of(every) || n == count {
            out.flush().expect("flush");
            if sync {
                out.get_ref().sync_data().expect("fsync");
            }
            ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                .await
                .expect("ack");
        }
        if n == count {
            break;
        }
    }
}

async fn publish(ch: &Channel, exchange: &str, routing_key: &str, file: &str, batch: usize) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(file).expect("input"))
        .lines()
        .map(|l| l.expect("line"))
        .collect();
    for chunk in lines.chunks(batch) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for (i, line) in chunk.iter().enumerate() {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(i.to_string().into());
            confirms.push(
                ch.basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    line.as_bytes(),
                    props,
                )
                .await
                .expect("publish"),
            );
        }
        for c in confirms {
            assert!(c.await.expect("confirm").is_ack());
        }
    }
}

async fn wait_queue(ch: &Channel, queue: &str, count: u64) {
    let mut arrivals = arrivals::Arrivals::new();
    loop {
        let n = u64::from(declare(ch, queue).await);
        if let Some(line) = arrivals.observe(n, count, "events") {
            println!("{line}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_file(file: &str, count: u64) {
    let mut arrivals = arrivals::Arrivals::new();
    loop {
        let n = std::fs::read(file)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
            .unwrap_or(0);
        if let Some(line) = arrivals.observe(n, count, "events") {
            println!("{line}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
