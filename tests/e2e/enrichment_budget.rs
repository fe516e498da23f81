//! A plugin's work and its waiting are bounded apart (#20): `timeout_ms` bounds what the plugin
//! does, `io_budget_ms` what a batch call waits on HTTP and lookups. Real binary, the Rust
//! enrichment plugin, the test API (api_server.rs) made slow.

use crate::api_server::ApiServer;
use crate::enrich_support::*;
use crate::support::*;
use std::time::Duration;

/// The Rust plugin asking `api` for rates, with its own `timeout_ms` and `io_budget_ms`.
fn plugin(api: &ApiServer, timeout_ms: u64, io_budget_ms: u64) -> String {
    format!(
        "[[plugin]]\npath = {:?}\ntimeout_ms = {timeout_ms}\nio_budget_ms = {io_budget_ms}\n\
         config = {{ rates_url = {:?} }}\n[plugin.http]\nallow = [{:?}]\ntimeout_ms = 5000\n",
        enrich_rs(),
        api.rates_url(),
        api.rates_url()
    )
}

/// Waiting on an API far longer than `timeout_ms` is not work: on the old host (wall-time
/// deadline) every event failed as "exceeded 50 ms".
#[test]
fn waiting_on_a_slow_api_does_not_count_against_timeout_ms() {
    let api = ApiServer::start();
    api.set_latency(Duration::from_millis(300));
    api.set_rate("USD", 0.5);
    let s = Scratch::new();
    s.write("in.jsonl", events(0..6, 3, usd));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "patient",
            false,
            "max_attempts = 1",
            &plugin(&api, 50, 5000),
        ),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = Outcome::read(&s);
    assert!(o.check(0..6).is_empty(), "{:?}", o.dlq);
    assert_eq!(o.event(5)["amount_eur"].as_f64(), Some(2.5));
}

/// The I/O budget bounds waiting: a request is cut at the call's `timeout_ms + io_budget_ms`
/// even though its own `timeout_ms` (5 s) would let it wait for the 1.5 s answer. The plugin sees
/// a timeout, fails the event retryably, and when `[retry]` runs out the event is dead-lettered
/// as exhausted. Each key's events stay in order.
#[test]
fn waiting_past_the_io_budget_cuts_the_requests_then_retries() {
    let api = ApiServer::start();
    api.set_latency(Duration::from_millis(1500));
    let s = Scratch::new();
    s.write("in.jsonl", events(0..8, 2, usd));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "impatient",
            false,
            "max_attempts = 2",
            &plugin(&api, 1000, 200),
        ),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let o = Outcome::read(&s);
    assert_eq!(o.check(0..8).len(), 8, "{:?}", o.out);
    for (r, reason) in o.dlq.iter().zip(reasons(&o.dlq, "enrich-rs")) {
        assert_eq!(r["error"]["kind"], "exhausted", "{r}");
        assert_eq!(r["error"]["attempts"], 2, "{r}");
        // The request is cut a little before the call is, so the plugin can say so itself.
        assert!(reason.to_lowercase().contains("timeout"), "{reason}");
    }
    assert_eq!(
        api.total(),
        16,
        "two attempts of one request per event: {:?}\n{err}",
        o.dlq
    );
    assert!(stat(&err, "retried") > 0, "{err}");
}

/// A plugin that waits without a request timeout to end it (here a WASI sleep) is stopped at
/// `timeout_ms + io_budget_ms`: its whole batch fails as `io_budget`, is retried as a batch
/// (isolating events one at a time would cost a budget each: the runner's unit tests check that
/// none is), then dead-lettered with the reason.
#[test]
fn a_call_waiting_past_its_io_budget_fails_its_batch_as_io_budget() {
    let api = ApiServer::start();
    let s = Scratch::new();
    let mut input = String::new();
    for n in 0..4 {
        input.push_str(&format!(
            "{{\"seq\":{n},\"k\":\"k{}\",\"fault\":\"sleep\",\"ms\":3000}}\n",
            n % 2
        ));
    }
    s.write("in.jsonl", input);
    let faults = crate::plugins::plugin("fixtures/faults/faults.wasm");
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "sleepy",
            false,
            "max_attempts = 2",
            &format!(
                "[[plugin]]\npath = {faults:?}\nname = \"faults\"\ntimeout_ms = 100\nio_budget_ms = 200\n\
                 [plugin.http]\nallow = [{:?}]\n",
                api.rates_url()
            ),
        ),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let o = Outcome::read(&s);
    assert_eq!(o.check(0..4).len(), 4, "{:?}", o.out);
    for (r, reason) in o.dlq.iter().zip(reasons(&o.dlq, "faults")) {
        assert_eq!(r["error"]["kind"], "exhausted", "{r}");
        assert_eq!(r["error"]["attempts"], 2, "{r}");
        assert!(reason.contains("I/O budget of 200 ms"), "{reason}");
    }
    assert!(stat(&err, "retried") > 0, "{err}");
}
