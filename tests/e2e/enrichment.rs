//! Enrichment over HTTP (#20), end to end: the real binary, the Rust enrichment plugin
//! (plugins/enrich-rs) and a real API started by the test (api_server.rs) that the test makes
//! slow, failing, throttling or absent. Every test counts every event (delivered or
//! dead-lettered, exactly once) and checks each key's order.

use crate::api_server::{ApiServer, BodyMode};
use crate::enrich_support::*;
use crate::support::*;
use std::time::Duration;

/// The Rust plugin with only `rates_url`, and an HTTP grant of `http`.
fn rates_plugin(rates_url: &str, http: &str) -> String {
    plugin_toml(
        &enrich_rs(),
        &format!("{{ rates_url = {rates_url:?} }}"),
        &[],
        Some(http),
    )
}

fn allow(api: &ApiServer) -> String {
    format!("allow = [{:?}]\n", api.rates_url())
}

/// What a finished run of the rates pipeline left, its exit checked clean.
struct Ran {
    s: Scratch,
    o: Outcome,
    err: String,
}

/// Runs `input` through enrich-rs asking `rates_url` under the grant `http`, with `[retry]`
/// as given (a file pipeline named `name`, keyed by `k`: enrich_support.rs).
fn run_rates(name: &str, input: &str, retry: &str, rates_url: &str, http: &str) -> Ran {
    let s = Scratch::new();
    s.write("in.jsonl", input);
    let p = s.write(
        "p.toml",
        enrich_pipeline(name, false, retry, &rates_plugin(rates_url, http)),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let o = Outcome::read(&s);
    Ran { s, o, err }
}

#[test]
fn every_event_gets_its_rate_and_each_batch_sends_its_requests_at_once() {
    let api = ApiServer::start();
    api.set_rate("USD", 0.5);
    api.set_rate("GBP", 2.0);
    api.set_latency(Duration::from_millis(20));
    let cur = |n: u64| if n.is_multiple_of(2) { "USD" } else { "GBP" }.to_owned();
    let Ran { s: _, o, err: _ } = run_rates(
        "rates",
        &events(0..200, 7, cur),
        "",
        &api.rates_url(),
        &allow(&api),
    );
    assert!(o.check(0..200).is_empty(), "{:?}", o.dlq);
    let e = o.event(3);
    assert_eq!(
        (e["rate"].as_f64(), e["amount_eur"].as_f64()),
        (Some(2.0), Some(6.0))
    );
    assert_eq!(e["currency"], "GBP");
    assert_eq!(o.event(4)["amount_eur"].as_f64(), Some(2.0));
    assert_eq!(api.total(), 200, "one GET per event");
    assert!(
        api.max_in_flight() > 4,
        "a batch's requests are under way together, not one per lane at a time: {}",
        api.max_in_flight()
    );
}

#[test]
fn a_denied_url_and_a_denied_method_are_dead_lettered_at_once_naming_plugin_and_url() {
    let api = ApiServer::start();
    let s = Scratch::new();
    s.write("in.jsonl", events(0..20, 3, usd));
    // The plugin asks for a URL outside its grant.
    let outside = api.url("/admin/");
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "denied-url",
            false,
            "max_attempts = 5",
            &rates_plugin(&outside, &allow(&api)),
        ),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let o = Outcome::read(&s);
    assert_eq!(o.check(0..20).len(), 20);
    // The record names the plugin (its stage) and the URL (the plugin's message); weir's
    // warning names both.
    for (r, reason) in o.dlq.iter().zip(reasons(&o.dlq, "enrich-rs")) {
        assert!(reason.contains(&format!("{outside}USD")), "{reason}");
        assert_eq!(r["error"]["attempts"], 1, "permanent: not retried: {r}");
    }
    assert!(
        err.lines().any(|l| l.contains("WARN")
            && l.contains("enrich-rs")
            && l.contains(&format!("{outside}USD"))),
        "{err}"
    );
    assert_eq!(api.total(), 0, "nothing left the process");

    // The URL is allowed but GET is not.
    let s = Scratch::new();
    s.write("in.jsonl", events(0..20, 3, usd));
    let http = format!("{}methods = [\"POST\"]\n", allow(&api));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "denied-method",
            false,
            "max_attempts = 5",
            &rates_plugin(&api.rates_url(), &http),
        ),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = Outcome::read(&s);
    assert_eq!(o.check(0..20).len(), 20);
    for reason in reasons(&o.dlq, "enrich-rs") {
        assert!(
            reason.contains("GET") && reason.contains(&api.url("/rates/USD")),
            "{reason}"
        );
    }
    assert_eq!(api.total(), 0, "nothing left the process");
}

#[test]
fn a_server_that_is_down_is_retried_then_dead_lettered_in_key_order() {
    let api = ApiServer::start();
    api.down();
    let s = Scratch::new();
    // One key: its events wait for each other, so the DLQ holds them in order.
    s.write("in.jsonl", events(0..6, 1, usd));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "down",
            false,
            "max_attempts = 3",
            &rates_plugin(&api.rates_url(), &allow(&api)),
        ),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let o = Outcome::read(&s);
    assert_eq!(o.check(0..6).len(), 6);
    let order: Vec<u64> = o.dlq.iter().map(|r| seq(&r["event"]["data"])).collect();
    assert_eq!(
        order,
        [0, 1, 2, 3, 4, 5],
        "the key's events dead-lettered in order"
    );
    for (r, reason) in o.dlq.iter().zip(reasons(&o.dlq, "enrich-rs")) {
        assert_eq!(r["error"]["attempts"], 3, "retried up to max_attempts: {r}");
        assert!(
            reason.contains(&api.url("/rates/USD")),
            "names the URL: {reason}"
        );
    }
    assert!(stat(&err, "retried") >= 12, "{err}");
}

#[test]
fn a_failing_event_holds_back_its_key_while_other_keys_go_on() {
    let api = ApiServer::start();
    api.break_currency("BAD", 503);
    let s = Scratch::new();
    // Keys k0..k7; seq 2, the first event of key k2, asks for the broken currency.
    let cur = |n: u64| if n == 2 { "BAD" } else { "USD" }.to_owned();
    s.write("in.jsonl", events(0..40, 8, cur));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "holds",
            true,
            "",
            &rates_plugin(&api.rates_url(), &allow(&api)),
        ),
    );
    let child = s.spawn_logged(&p);
    let of_key = |o: &Outcome, k: &str| -> Vec<u64> {
        o.out.iter().filter(|e| e["k"] == k).map(seq).collect()
    };
    // While seq 2 is retried, keys on other lanes are delivered whole; k2 waits.
    wait_logged(&s, "another key delivered while seq 2 is retried", || {
        let o = Outcome::read(&s);
        api.count("/rates/BAD") >= 3
            && (0..8).any(|k| k != 2 && of_key(&o, &format!("k{k}")).len() == 5)
    });
    assert_eq!(
        of_key(&Outcome::read(&s), "k2"),
        [0u64; 0],
        "k2's later events wait for seq 2"
    );
    // The API comes back for seq 2: it is delivered, then the rest of its key, in order.
    api.mend_currency("BAD");
    wait_logged(&s, "every event", || Outcome::read(&s).out.len() == 40);
    let log = stop(&s, child);
    let o = Outcome::read(&s);
    assert!(o.check(0..40).is_empty(), "{log}");
    assert_eq!(of_key(&o, "k2"), [2, 10, 18, 26, 34]);
    assert!(stat(&log, "retried") >= 2, "{log}");
}

#[test]
fn a_server_failing_for_a_while_then_recovering_loses_nothing_and_keeps_order() {
    let api = ApiServer::start();
    api.fail_next(40, 500);
    let Ran { s: _, o, err } = run_rates(
        "recovers",
        &events(0..100, 5, |n| format!("C{}", n % 3)),
        "",
        &api.rates_url(),
        &allow(&api),
    );
    assert!(
        o.check(0..100).is_empty(),
        "nothing dead-lettered: {:?}",
        o.dlq
    );
    assert!(o.out.iter().all(|e| e["rate"].as_f64() == Some(1.1)));
    assert_eq!(api.failures_left(), 0);
    assert!(stat(&err, "retried") > 0, "{err}");
}

#[test]
fn throttled_with_429_then_served() {
    let api = ApiServer::start();
    api.throttle_next(10, 1);
    let Ran { s, o: _, err } = run_rates(
        "throttled",
        &events(0..30, 3, usd),
        "",
        &api.rates_url(),
        &allow(&api),
    );
    assert!(Outcome::read(&s).check(0..30).is_empty());
    assert!(stat(&err, "retried") > 0, "{err}");
    assert!(
        api.total() >= 40,
        "the 429s and then every event: {}",
        api.total()
    );
}

#[test]
fn a_slow_server_past_the_request_timeout_is_retryable() {
    let api = ApiServer::start();
    api.set_latency(Duration::from_secs(3));
    let s = Scratch::new();
    s.write("in.jsonl", events(0..4, 2, usd));
    let http = format!("{}timeout_ms = 200\n", allow(&api));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "slow",
            false,
            "max_attempts = 2",
            &rates_plugin(&api.rates_url(), &http),
        ),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let o = Outcome::read(&s);
    assert_eq!(o.check(0..4).len(), 4);
    for (r, reason) in o.dlq.iter().zip(reasons(&o.dlq, "enrich-rs")) {
        assert_eq!(r["error"]["attempts"], 2, "retried: {r}");
        let reason = reason.to_lowercase();
        assert!(
            reason.contains("timeout") || reason.contains("timed out"),
            "{reason}"
        );
    }

    // A body that trickles in past the timeout is a timeout too.
    api.set_latency(Duration::ZERO);
    api.set_body(BodyMode::Trickle(Duration::from_millis(100)));
    let Ran { s: _, o, err: _ } = run_rates(
        "trickle",
        &events(0..2, 2, usd),
        "max_attempts = 2",
        &api.rates_url(),
        &http,
    );
    assert_eq!(o.check(0..2).len(), 2);
    assert!(
        o.dlq.iter().all(|r| r["error"]["attempts"] == 2),
        "{:?}",
        o.dlq
    );
}

#[test]
fn a_404_huge_or_malformed_answer_is_dead_lettered_at_once() {
    let api = ApiServer::start();
    api.remove_currency("XXX");
    let cur = |n: u64| if n % 4 == 1 { "XXX" } else { "USD" }.to_owned();
    let Ran { s: _, o, err: _ } = run_rates(
        "missing",
        &events(0..20, 4, cur),
        "max_attempts = 5",
        &api.rates_url(),
        &allow(&api),
    );
    assert_eq!(o.check(0..20), [1, 5, 9, 13, 17].into());
    for (r, reason) in o.dlq.iter().zip(reasons(&o.dlq, "enrich-rs")) {
        assert_eq!(r["error"]["attempts"], 1, "{r}");
        assert!(reason.contains("404") && reason.contains("XXX"), "{reason}");
    }

    for (mode, name) in [
        (BodyMode::Huge(4 << 20), "huge"),
        (BodyMode::Malformed, "malformed"),
    ] {
        api.set_body(mode);
        let s = Scratch::new();
        s.write("in.jsonl", events(0..3, 3, usd));
        let http = format!("{}max_response_bytes = 65536\n", allow(&api));
        let p = s.write(
            "p.toml",
            enrich_pipeline(
                name,
                false,
                "max_attempts = 5",
                &rates_plugin(&api.rates_url(), &http),
            ),
        );
        let out = s.run(&p);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let o = Outcome::read(&s);
        assert_eq!(o.check(0..3).len(), 3, "{name}");
        assert!(
            o.dlq.iter().all(|r| r["error"]["attempts"] == 1),
            "{name}: {:?}",
            o.dlq
        );
    }
}

#[test]
fn the_rate_limit_and_max_concurrency_hold_at_the_server() {
    let api = ApiServer::start();
    api.set_latency(Duration::from_millis(30));
    let s = Scratch::new();
    // A currency per event: no two requests alike, whatever a cache would do.
    s.write("in.jsonl", events(0..60, 6, |n| format!("C{n}")));
    let http = format!(
        "{}rate_limit_per_s = 20\nmax_concurrency = 3\n",
        allow(&api)
    );
    let p = s.write(
        "p.toml",
        enrich_pipeline("limited", false, "", &rates_plugin(&api.rates_url(), &http)),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(Outcome::read(&s).check(0..60).is_empty());
    assert_eq!(api.total(), 60);
    // At most a burst of one second's worth plus a second's refill in any one second.
    let most = api.most_within(Duration::from_secs(1));
    assert!(
        most <= 40,
        "{most} requests within one second; per second: {:?}",
        api.per_second()
    );
    assert!(
        api.per_second().iter().all(|n| *n <= 40),
        "{:?}",
        api.per_second()
    );
    let in_flight = api.max_in_flight();
    assert!(
        (1..=3).contains(&in_flight),
        "max_concurrency = 3, {in_flight} at once"
    );
}

#[test]
fn cached_answers_spare_the_server_and_show_in_metrics() {
    let api = ApiServer::start();
    let s = Scratch::new();
    s.write("in.jsonl", events(0..1, 4, usd));
    let http = format!(
        "{}cache = {{ ttl_s = 600, max_entries = 100 }}\n",
        allow(&api)
    );
    let p = s.write(
        "p.toml",
        enrich_pipeline("cached", true, "", &rates_plugin(&api.rates_url(), &http)),
    );
    let child = s.spawn_logged(&p);
    let address = admin(&s);
    wait_logged(&s, "the first event", || Outcome::read(&s).out.len() == 1);
    s.append("in.jsonl", events(1..100, 4, usd));
    wait_logged(&s, "every event", || Outcome::read(&s).out.len() == 100);
    let (status, body) = admin_get(&address, "/metrics");
    assert_eq!(status, 200);
    let log = stop(&s, child);
    assert!(Outcome::read(&s).check(0..100).is_empty(), "{log}");
    assert_eq!(api.count("/rates/USD"), 1, "one miss, then the cache");
    let hits = metric(&body, "weir_plugin_http_cache_total", "result=\"hit\"");
    let misses = metric(&body, "weir_plugin_http_cache_total", "result=\"miss\"");
    assert_eq!((hits, misses), (99.0, 1.0), "{body}");
}

#[test]
fn a_secret_header_reaches_the_server_and_nowhere_else() {
    let api = ApiServer::start();
    let s = Scratch::new();
    s.write("in.jsonl", events(0..10, 2, usd));
    let http = format!(
        "{}headers = {{ \"x-api-key\" = {{ env = \"E2E_PRICE_API_KEY\" }} }}\n",
        allow(&api)
    );
    let p = s.write(
        "p.toml",
        enrich_pipeline("secret", false, "", &rates_plugin(&api.rates_url(), &http)),
    );
    let secret = "s3cr3t-e2e-4d1f";
    let out = s
        .weir_run(&p)
        .env("E2E_PRICE_API_KEY", secret)
        .env("RUST_LOG", "debug")
        .output()
        .expect("run weir");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(Outcome::read(&s).check(0..10).is_empty());
    let seen = api.header_values("x-api-key");
    assert_eq!(seen.len(), 10);
    assert!(
        seen.iter().all(|v| v.as_deref() == Some(secret)),
        "{seen:?}"
    );
    assert!(!err.contains(secret), "the secret was logged");
    assert!(
        !std::fs::read_to_string(s.path("out.jsonl"))
            .unwrap()
            .contains(secret)
    );
}

#[test]
fn tls_with_the_test_ca_and_refused_without_it() {
    let s = Scratch::new();
    let api = ApiServer::start_tls(s.dir.path());
    s.write("in.jsonl", events(0..10, 2, usd));
    let http = format!("{}ca_file = {:?}\n", allow(&api), api.ca_file());
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "tls",
            false,
            "max_attempts = 2",
            &rates_plugin(&api.rates_url(), &http),
        ),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = Outcome::read(&s);
    assert!(o.check(0..10).is_empty(), "{:?}", o.dlq);
    assert_eq!(o.event(0)["rate"].as_f64(), Some(1.1));
    assert_eq!(api.total(), 10);

    // Without the CA, the certificate is not trusted: unavailable, retried, then dead-lettered.
    let Ran { s: _, o, err: _ } = run_rates(
        "untrusted",
        &events(0..4, 2, usd),
        "max_attempts = 2",
        &api.rates_url(),
        &allow(&api),
    );
    assert_eq!(o.check(0..4).len(), 4);
    for (r, reason) in o.dlq.iter().zip(reasons(&o.dlq, "enrich-rs")) {
        assert_eq!(r["error"]["attempts"], 2, "retryable: {r}");
        assert!(reason.contains(&api.url("/rates/USD")), "{reason}");
    }
    assert_eq!(
        api.total(),
        10,
        "no request got through the refused handshakes"
    );
}
