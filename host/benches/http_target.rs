//! The HTTP target's throughput (#21), side by side with a plain client in the same run.
//!
//! An in-process API (tests/e2e/target_server.rs) answers each request after 2 ms. (a) a plain
//! Rust client (hyper-util's pooled client) POSTs the N event bodies (~300-byte JSON) at
//! concurrency C; (b) weir, `weir run` on a file of the same N events keyed by `k` (1,000 keys,
//! C lanes) -> `[sink] type = "http"` with `max_concurrency = C`; (c) the same with
//! `batch_size = 10` (a JSON array of up to 10 events per request). Target: (b) >= 0.8 x (a).
//!
//! Every weir row runs the real binary (built with the bench profile); its time is the whole
//! run, start to exit. Each row checks the server got every event.
//!
//! Run: `scripts/bench-http-target.sh [EVENTS] [CONCURRENCY]`, or
//! `cargo bench -p weir --bench http_target -- [EVENTS] [--concurrency=C]` (default 50000, 64).

#[path = "../../tests/e2e/api_server.rs"]
#[allow(dead_code)] // the tests' controls this benchmark does not use
mod api_server;
#[path = "../../tests/e2e/target_server.rs"]
#[allow(dead_code)]
mod target_server;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use target_server::TargetServer;

const KEYS: u64 = 1000;

fn main() {
    let mut events: u64 = 50_000;
    let mut concurrency: usize = 64;
    for arg in std::env::args().skip(1) {
        if let Some(c) = arg.strip_prefix("--concurrency=") {
            concurrency = c.parse().expect("--concurrency=C");
        } else if let Ok(n) = arg.parse() {
            events = n;
        }
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    let bodies = event_bodies(events);
    let mut input = bodies.join("\n");
    input.push('\n');
    std::fs::write(dir.join("in.jsonl"), input).expect("write the events");
    let size = bodies.iter().map(String::len).sum::<usize>() / bodies.len().max(1);

    let api = TargetServer::start();
    api.set_latency(Duration::from_millis(2));
    let mut rows: Vec<(String, f64, String)> = Vec::new();

    let plain = plain_client(&api, bodies, concurrency);
    assert_eq!(api.total() as u64, events, "plain: one request per event");
    rows.push((
        format!("plain hyper-util client, POST, answer after 2 ms, C={concurrency}"),
        plain,
        String::new(),
    ));

    for batch in [1usize, 10] {
        api.reset_counts();
        let rate = weir_rate(dir, &api, concurrency, batch, events);
        let requests = api.total() as u64;
        if batch == 1 {
            assert_eq!(requests, events, "one request per event");
        }
        let ratio = rate / plain;
        let (what, note) = if batch == 1 {
            (
                format!("weir, [sink] type = \"http\", max_concurrency={concurrency}"),
                format!("{ratio:.2} x plain (target >= 0.8)"),
            )
        } else {
            (
                format!("weir, the same with batch_size={batch}"),
                format!("{ratio:.2} x plain, {requests} requests"),
            )
        };
        rows.push((what, rate, note));
    }

    println!("\n{events} events of ~{size} bytes, {KEYS} keys");
    println!("{:<64} {:>12}  ratio", "", "events/s");
    for (what, rate, ratio) in rows {
        println!("{what:<64} {rate:>12.0}  {ratio}");
    }
}

/// N event bodies of ~300 bytes: key `k{n % 1000}`.
fn event_bodies(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{{\"seq\":{i},\"k\":\"k{}\",\"type\":\"OrderCreated\",\"source\":\"shop.orders\",\
                 \"time\":\"2026-11-22T10:00:00Z\",\"order\":{{\"id\":\"O{i:010}\",\"customer\":\"C{:05}\",\
                 \"amount\":{}.25,\"currency\":\"EUR\",\"items\":[{{\"sku\":\"SKU-{:03}\",\"qty\":{}}},\
                 {{\"sku\":\"SKU-{:03}\",\"qty\":1}}]}},\"note\":\"bench event for the http target\"}}",
                i % KEYS,
                i % 5000,
                i % 500,
                i % 997,
                1 + i % 5,
                (i * 7) % 997
            )
        })
        .collect()
}

/// (a): the bodies POSTed at concurrency C, each answer's body read; events/s.
fn plain_client(api: &TargetServer, bodies: Vec<String>, concurrency: usize) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let url: hyper::Uri = api.url("/orders").parse().expect("a URI");
    let n = bodies.len() as u64;
    let bodies: Arc<Vec<Bytes>> = Arc::new(bodies.into_iter().map(Bytes::from).collect());
    runtime.block_on(async move {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(concurrency)
            .build_http();
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (client, next, bodies, url) =
                (client.clone(), next.clone(), bodies.clone(), url.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let request = hyper::Request::post(url.clone())
                        .header("content-type", "application/json")
                        .body(Full::new(bodies[i as usize].clone()))
                        .expect("a request");
                    let response = client.request(request).await.expect("POST");
                    assert!(response.status().is_success());
                    let _ = response.into_body().collect().await.expect("body");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        n as f64 / start.elapsed().as_secs_f64()
    })
}

/// (b), (c): `weir run` from the file to the API: events/s of the whole run.
fn weir_rate(dir: &Path, api: &TargetServer, concurrency: usize, batch: usize, events: u64) -> f64 {
    let name = format!("http-batch-{batch}");
    let pipeline = format!(
        "[pipeline]\nname = \"{name}\"\n[source]\ntype = \"file\"\npath = {:?}\nbatch_size = 1024\n\
         [ordering]\nkey = \"<$.data.k>\"\nlanes = {concurrency}\n\
         [sink]\ntype = \"http\"\nurl = {:?}\nmax_concurrency = {concurrency}\nbatch_size = {batch}\n\
         [dlq]\ntype = \"file\"\npath = {:?}\n",
        dir.join("in.jsonl"),
        api.url("/orders"),
        dir.join(format!("{name}-dlq.jsonl"))
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, pipeline).expect("write the pipeline");
    let start = Instant::now();
    let result = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&p)
        .arg("--state-dir")
        .arg(dir.join(format!("state-{name}")))
        .env("WEIR_ADMIN__ADDRESS", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .output()
        .expect("run weir");
    let took = start.elapsed();
    assert!(
        result.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let dead = std::fs::read_to_string(dir.join(format!("{name}-dlq.jsonl"))).unwrap_or_default();
    assert!(dead.is_empty(), "{name}: dead-lettered: {dead}");
    let delivered: usize = api
        .requests()
        .iter()
        .filter(|r| r.ok())
        .map(|r| r.events().len())
        .sum();
    assert_eq!(delivered as u64, events, "{name}: every event delivered");
    events as f64 / took.as_secs_f64()
}
