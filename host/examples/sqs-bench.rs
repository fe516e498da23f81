//! The SQS benchmark's helpers (scripts/bench-sqs.sh), with the same client library as weir
//! (aws-sdk-sqs):
//!
//! - `create ENDPOINT NAME...`: creates the queues and prints their URLs.
//! - `load ENDPOINT QUEUE_URL COUNT`: sends COUNT ~400-byte order events.
//! - `copy ENDPOINT FROM_URL TO_URL WORKERS`: the baseline, a plain receive -> send -> delete
//!   loop in WORKERS tasks (10 messages per call, long polling): what weir does minus the
//!   filter, the plugin and weir's bookkeeping (visibility extension, per-event tracking).
//!   Short polls: moto's long polls hang when several wait on one queue.
//! - `wait ENDPOINT QUEUE_URL COUNT`: waits until the queue holds COUNT messages and prints the
//!   rate from the first message's arrival to the last.

#[path = "common/arrivals.rs"]
mod arrivals;
#[path = "common/orders.rs"]
mod orders;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("usage: sqs-bench load|copy|wait ENDPOINT QUEUE_URL ...");
            std::process::exit(2)
        })
    };
    let client = client(arg(1));
    match arg(0) {
        "create" => {
            for name in &args[2..] {
                let out = client.create_queue().queue_name(name).send().await;
                println!(
                    "{}",
                    out.expect("create queue").queue_url.unwrap_or_default()
                );
            }
        }
        "load" => load(client, arg(2), arg(3).parse().expect("COUNT")).await,
        "copy" => copy(client, arg(2), arg(3), arg(4).parse().expect("WORKERS")).await,
        "wait" => wait(client, arg(2), arg(3).parse().expect("COUNT")).await,
        other => panic!("unknown command {other}"),
    }
}

fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .build();
    Client::from_conf(conf)
}

async fn load(client: Client, queue: &str, count: u64) {
    let mut calls = tokio::task::JoinSet::new();
    for start in (0..count).step_by(10) {
        if calls.len() >= 8 {
            calls.join_next().await.map(|r| r.expect("load call"));
        }
        let entries: Vec<SendMessageBatchRequestEntry> = (start..(start + 10).min(count))
            .map(|n| {
                SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(orders::order(n).1)
                    .build()
                    .expect("entry")
            })
            .collect();
        let call = client
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries));
        calls.spawn(async move { call.send().await.expect("load") });
    }
    while let Some(r) = calls.join_next().await {
        r.expect("load call");
    }
}

async fn copy(client: Client, from: &str, to: &str, workers: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, from, to) = (client.clone(), from.to_owned(), to.to_owned());
        tasks.spawn(async move {
            loop {
                let got = client
                    .receive_message()
                    .queue_url(&from)
                    .max_number_of_messages(10)
                    // No long polling: moto's long polls hang when several wait on one queue.
                    .wait_time_seconds(0)
                    .send()
                    .await
                    .expect("receive");
                let messages = got.messages.unwrap_or_default();
                if messages.is_empty() {
                    continue;
                }
                let sends = messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(m.body.clone().unwrap_or_default())
                            .build()
                            .expect("entry")
                    })
                    .collect();
                client
                    .send_message_batch()
                    .queue_url(&to)
                    .set_entries(Some(sends))
                    .send()
                    .await
                    .expect("send");
                let deletes = messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                            .build()
                            .expect("entry")
                    })
                    .collect();
                client
                    .delete_message_batch()
                    .queue_url(&from)
                    .set_entries(Some(deletes))
                    .send()
                    .await
                    .expect("delete");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn wait(client: Client, queue: &str, count: u64) {
    let total = || async {
        let out = client
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await;
        out.ok()
            .and_then(|o| o.attributes)
            .and_then(|a| {
                a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                    .cloned()
            })
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut arrivals = arrivals::Arrivals::new();
    loop {
        if let Some(line) = arrivals.observe(total().await, count, "messages") {
            println!("{line}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
