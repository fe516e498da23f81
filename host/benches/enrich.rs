//! Enrichment throughput (#20), side by side with baselines in the same run.
//!
//! HTTP: an in-process API (tests/e2e/api_server.rs) answering each `GET /rates/{CUR}` after
//! 2 ms. (a) a plain Rust tokio client (hyper-util) doing N GETs at concurrency C; (b) weir,
//! `weir run` on a file of N events -> enrich-rs with `rates_url` -> file, the plugin's
//! `max_concurrency = C`. Target: weir >= 0.5 x the plain client.
//!
//! Redis: a table of 1,000 customers (hashes on the machine's Redis, 127.0.0.1:6379, under a
//! prefix of this run's own, deleted after), one lookup per event (enrich-rs with `table`),
//! with the table's cache off and on, against the same pipeline without the plugin. Target with
//! the cache on: >= 0.7 x the pipeline without enrichment.
//!
//! Every weir row runs the real binary (built with the bench profile) after a short warm-up run
//! that compiles the plugin into the state directory's cache, so the rows time enrichment, not
//! compilation; a row's time is the whole run, start to exit.
//!
//! Run: `scripts/bench-enrich.sh` (builds the plugins, then this), or
//! `cargo bench -p weir --bench enrich -- [EVENTS] [--concurrency=C]` (default 100000, 64).

#[path = "../../tests/e2e/api_server.rs"]
#[allow(dead_code)] // the tests' controls this benchmark does not use
mod api_server;
#[path = "../../tests/e2e/redis_client.rs"]
#[allow(dead_code)]
mod redis_client;

use api_server::ApiServer;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use redis_client::redis;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEYS: u64 = 1000;

fn main() {
    let mut events: u64 = 100_000;
    let mut concurrency: usize = 64;
    for arg in std::env::args().skip(1) {
        if let Some(c) = arg.strip_prefix("--concurrency=") {
            concurrency = c.parse().expect("--concurrency=C");
        } else if let Ok(n) = arg.parse() {
            events = n;
        }
    }
    let plugin =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/enrich-rs/enrich-rs.wasm");
    assert!(
        plugin.is_file(),
        "{} is missing: run scripts/build-plugins.sh",
        plugin.display()
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    write_events(&dir.join("in.jsonl"), events);
    let mut rows: Vec<(String, f64, String)> = Vec::new();

    let api = ApiServer::start();
    api.set_latency(Duration::from_millis(2));
    let plain = plain_client(&api, events, concurrency);
    rows.push((
        format!("plain tokio client, GET after 2 ms, C={concurrency}"),
        plain,
        String::new(),
    ));
    api.reset_counts();
    let http = format!(
        "[[plugin]]\npath = {plugin:?}\ntimeout_ms = 10000\nio_budget_ms = 60000\n\
         config = {{ rates_url = {:?} }}\n\
         [plugin.http]\nallow = [{:?}]\nmax_concurrency = {concurrency}\ntimeout_ms = 10000\n",
        api.rates_url(),
        api.rates_url()
    );
    let weir_http = weir_rate(dir, "http", &http, events);
    assert_eq!(api.total(), events + WARM_UP, "one GET per event");
    rows.push((
        format!("weir, enrich-rs rates_url, max_concurrency={concurrency}"),
        weir_http,
        format!("{:.2} x plain (target >= 0.5)", weir_http / plain),
    ));

    let prefix = format!("weir-bench:{}:", std::process::id());
    for n in 0..KEYS {
        redis(&[
            "HSET",
            &format!("{prefix}c{n}"),
            "tier",
            &format!("tier{}", n % 5),
            "region",
            "eu",
        ]);
    }
    let baseline = weir_rate(dir, "none", "", events);
    rows.push((
        "weir, same pipeline without the plugin".into(),
        baseline,
        String::new(),
    ));
    // The plugin alone, doing no step: what the boundary costs before any lookup.
    let alone = weir_rate(
        dir,
        "plugin-alone",
        &format!("[[plugin]]\npath = {plugin:?}\nconfig = {{}}\n"),
        events,
    );
    rows.push((
        "weir, enrich-rs configured to do nothing".into(),
        alone,
        format!("{:.2} x without", alone / baseline),
    ));
    for (cache, ttl) in [("off", 0), ("on", 60)] {
        let table = format!(
            "[[table]]\nname = \"customers\"\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\n\
             key_prefix = {prefix:?}\ncommand = \"hgetall\"\ncache_ttl_s = {ttl}\n\
             [[plugin]]\npath = {plugin:?}\ntables = [\"customers\"]\ntimeout_ms = 10000\n\
             io_budget_ms = 60000\nconfig = {{ table = \"customers\" }}\n"
        );
        let rate = weir_rate(dir, &format!("redis-{cache}"), &table, events);
        let target = if cache == "on" {
            " (target >= 0.7)"
        } else {
            ""
        };
        rows.push((
            format!("weir, enrich-rs Redis lookup, cache {cache}"),
            rate,
            format!(
                "{:.2} x without, {:.2} x the plugin alone{target}",
                rate / baseline,
                rate / alone
            ),
        ));
    }
    redis_client::redis_clear(&prefix);

    println!("\n{events} events, {KEYS} customers");
    println!("{:<56} {:>12}  ratio", "", "events/s");
    for (what, rate, ratio) in rows {
        println!("{what:<56} {rate:>12.0}  {ratio}");
    }
}

/// Events of the tests' shape: key `k{n % 1000}`, customer `c{n % 1000}`, one of four
/// currencies.
fn write_events(path: &Path, n: u64) {
    let currencies = ["USD", "GBP", "JPY", "CHF"];
    let mut text = String::with_capacity(n as usize * 100);
    for i in 0..n {
        text.push_str(&format!(
            "{{\"seq\":{i},\"k\":\"k{}\",\"customer\":\"c{}\",\"currency\":\"{}\",\"amount\":{}.25}}\n",
            i % KEYS,
            i % KEYS,
            currencies[(i % 4) as usize],
            i % 500
        ));
    }
    std::fs::write(path, text).expect("write the events");
}

/// (a): N GETs at concurrency C, each body read and parsed as the plugin does; events/s.
fn plain_client(api: &ApiServer, n: u64, concurrency: usize) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let base = api.rates_url();
    runtime.block_on(async move {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(concurrency)
            .build_http();
        let next = Arc::new(AtomicU64::new(0));
        let currencies = ["USD", "GBP", "JPY", "CHF"];
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (client, next, base) = (client.clone(), next.clone(), base.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let uri: hyper::Uri = format!("{base}{}", currencies[(i % 4) as usize])
                        .parse()
                        .expect("a URI");
                    let response = client.get(uri).await.expect("GET");
                    assert!(response.status().is_success());
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .expect("body")
                        .to_bytes();
                    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                    assert!(v["rate"].is_number());
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        n as f64 / start.elapsed().as_secs_f64()
    })
}

/// Events in the warm-up run, which compiles the plugin into the state directory's cache.
const WARM_UP: u64 = 100;

/// `weir run` over the events with these tables and plugins: events/s of the whole run.
fn weir_rate(dir: &Path, name: &str, parts: &str, events: u64) -> f64 {
    let pipeline = |input: &str, out: &str| {
        format!(
            "[pipeline]\nname = \"{name}\"\n[source]\ntype = \"file\"\npath = {:?}\nbatch_size = 1024\n\
             [ordering]\nkey = \"<$.data.k>\"\nlanes = 8\n{parts}\n\
             [sink]\ntype = \"file\"\npath = {:?}\n[dlq]\ntype = \"file\"\npath = {:?}\n",
            dir.join(input),
            dir.join(out),
            dir.join(format!("{name}-dlq.jsonl"))
        )
    };
    let state = dir.join(format!("state-{name}"));
    let run = |input: &str, out: &str| {
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(&p, pipeline(input, out)).expect("write the pipeline");
        // A fresh start each time (the compiled plugin's cache beside it is kept).
        let _ = std::fs::remove_dir_all(state.join(name));
        let start = Instant::now();
        let result = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&p)
            .arg("--state-dir")
            .arg(&state)
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
        took
    };
    let warm: String = std::fs::read_to_string(dir.join("in.jsonl"))
        .expect("the events")
        .lines()
        .take(WARM_UP as usize)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("warm.jsonl"), warm).expect("write the warm-up");
    run("warm.jsonl", &format!("{name}-warm-out.jsonl"));
    let out = format!("{name}-out.jsonl");
    let took = run("in.jsonl", &out);
    let written = std::fs::read_to_string(dir.join(&out)).map_or(0, |t| t.lines().count()) as u64;
    assert_eq!(written, events, "{name}: every event delivered");
    events as f64 / took.as_secs_f64()
}
