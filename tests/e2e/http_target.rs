//! The HTTP target (`[sink] type = "http"`, #21), end to end: the real binary delivering a file
//! of keyed events to a real API the test starts (target_server.rs) and scripts: failing,
//! throttling, going down, asking for credentials, TLS and mTLS. Every test counts every event
//! at the server (delivered, i.e. answered 2xx, or dead-lettered: none lost) and checks each
//! key's order as the server received it.

use crate::enrich_support::{Outcome, check_key_order, events, seq, stat, usd};
use crate::support::*;
use crate::target_server::{Auth, Received, TargetServer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A pipeline file: `in.jsonl` keyed by `k` on `lanes` lanes, `[retry]` fast with `retry`
/// added, `[sink] type = "http"` with `sink` (its keys and sub-tables), a file DLQ.
fn pipeline(name: &str, lanes: usize, retry: &str, sink: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\ncheckpoint_interval_ms = 20\n\n\
         [source]\ntype = \"file\"\npath = \"in.jsonl\"\n\n\
         [ordering]\nkey = \"<$.data.k>\"\nlanes = {lanes}\n\n\
         [retry]\nbackoff_ms = [10, 200]\n{retry}\n\n\
         [sink]\ntype = \"http\"\n{sink}\n\n\
         [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n"
    )
}

/// What a finished run left: its scratch directory, the DLQ, weir's log.
struct Ran {
    _s: Scratch,
    dlq: Vec<Value>,
    err: String,
}

/// Runs the pipeline on `input` to completion (exit checked clean), with `env` set.
fn run(input: &str, pipeline: &str, env: &[(&str, &str)]) -> Ran {
    let s = Scratch::new();
    s.write("in.jsonl", input);
    let p = s.write("p.toml", pipeline);
    let out = s
        .weir_run(&p)
        .envs(env.iter().copied())
        .output()
        .expect("run weir");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let dlq = json_lines(&s.path("dlq.jsonl"));
    Ran { _s: s, dlq, err }
}

/// Checks that events `seqs` were each delivered (answered 2xx) or dead-lettered exactly once
/// and that each key's deliveries reached the server in order; the dead-lettered seqs.
fn check_once(api: &TargetServer, dlq: &[Value], seqs: std::ops::Range<u64>) -> BTreeSet<u64> {
    Outcome {
        out: api.delivered(),
        dlq: dlq.to_vec(),
    }
    .check(seqs)
}

/// The seqs a request carried.
fn seqs_of(r: &Received) -> Vec<u64> {
    r.events().iter().map(seq).collect()
}

/// The DLQ record's `error`, checked to come from the sink.
fn sink_error(record: &Value) -> &Value {
    assert_eq!(record["error"]["stage"], "sink", "{record}");
    &record["error"]
}

#[test]
fn thousands_of_keyed_events_arrive_once_each_key_in_order_within_max_concurrency() {
    let api = TargetServer::start();
    api.set_latency(Duration::from_millis(1));
    let sink = format!(
        "url = {:?}\nmax_concurrency = 8\nidempotency_key = \"<$.id>\"\n\
         headers = {{ \"X-Key\" = \"<$.data.k>\" }}\n",
        api.url("/orders")
    );
    let r = run(
        &events(0..3000, 40, usd),
        &pipeline("many", 8, "", &sink),
        &[],
    );
    assert!(check_once(&api, &r.dlq, 0..3000).is_empty(), "{:?}", r.dlq);
    let requests = api.requests();
    assert_eq!(requests.len(), 3000, "one request per event, none retried");
    assert!(
        api.max_in_flight() <= 8,
        "max_concurrency held: {}",
        api.max_in_flight()
    );
    assert!(
        api.max_in_flight() > 1,
        "keys are sent side by side: {}",
        api.max_in_flight()
    );
    for q in &requests {
        assert_eq!((q.method.as_str(), q.target.as_str()), ("POST", "/orders"));
        assert_eq!(
            q.header("content-type").as_deref(),
            Some("application/json")
        );
        let event = &q.events()[0];
        assert_eq!(
            q.header("x-key").as_deref(),
            event["k"].as_str(),
            "header template"
        );
    }
    let keys: BTreeSet<Option<String>> = requests
        .iter()
        .map(|q| q.header("idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 3000, "each event its own idempotency key");
    assert!(!keys.contains(&None));
    assert_eq!(stat(&r.err, "delivered"), 3000, "{}", r.err);
    assert_eq!(stat(&r.err, "retried"), 0);
}

#[test]
fn a_429_with_retry_after_is_waited_then_every_event_arrives() {
    let api = TargetServer::start();
    api.throttle_next(2, 2);
    let sink = format!("url = {:?}\n", api.url("/orders"));
    let r = run(
        &events(0..40, 4, usd),
        &pipeline("throttled", 4, "", &sink),
        &[],
    );
    assert!(check_once(&api, &r.dlq, 0..40).is_empty(), "{:?}", r.dlq);
    let requests = api.requests();
    let throttled: Vec<&Received> = requests.iter().filter(|q| q.status == 429).collect();
    assert_eq!(throttled.len(), 2);
    for t in throttled {
        let event = seqs_of(t)[0];
        let again = requests
            .iter()
            .find(|q| q.at > t.at && seqs_of(q).contains(&event))
            .unwrap_or_else(|| panic!("seq {event} was not sent again"));
        assert!(
            again.at - t.at >= Duration::from_secs(2),
            "seq {event} resent {:?} after a 429 asking for 2 s",
            again.at - t.at
        );
    }
    assert!(stat(&r.err, "retried") >= 1, "{}", r.err);
}

#[test]
fn a_400_is_dead_lettered_at_once_with_the_status_and_the_first_kib_of_its_body() {
    let api = TargetServer::start();
    let body = format!("order rejected: {}TAIL", "x".repeat(5 * 1024));
    api.fail_next(1, 400, &body);
    let sink = format!("url = {:?}\n", api.url("/orders"));
    let r = run(
        &events(0..30, 3, usd),
        &pipeline("rejected", 4, "", &sink),
        &[],
    );
    let dead = check_once(&api, &r.dlq, 0..30);
    let rejected = api
        .requests()
        .into_iter()
        .find(|q| q.status == 400)
        .unwrap();
    assert_eq!(
        dead,
        seqs_of(&rejected).into_iter().collect(),
        "the 400's event"
    );
    let error = sink_error(&r.dlq[0]);
    assert_eq!(error["kind"], "rejected");
    assert_eq!(error["attempts"], 1, "not retried");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("HTTP 400"), "{message}");
    assert!(message.contains(&api.url("/orders")), "{message}");
    assert!(message.contains("order rejected: xxxx"), "{message}");
    assert!(!message.contains("TAIL"), "the body is cut: {message}");
    assert!(
        message.len() < 1024 + 300,
        "the first KiB of the body, not 5: {} bytes",
        message.len()
    );
    assert_eq!(stat(&r.err, "dead_lettered"), 1);
}

#[test]
fn a_503_spell_then_recovery_delivers_everything_in_key_order() {
    let api = TargetServer::start();
    api.fail_next(50, 503, "{\"error\":\"busy\"}");
    let sink = format!("url = {:?}\nmax_concurrency = 4\n", api.url("/orders"));
    let r = run(
        &events(0..300, 6, usd),
        &pipeline("recovers", 4, "", &sink),
        &[],
    );
    assert!(check_once(&api, &r.dlq, 0..300).is_empty(), "{:?}", r.dlq);
    assert_eq!(api.failures_left(), 0);
    assert_eq!(api.count_status(503), 50);
    assert!(stat(&r.err, "retried") >= 1, "{}", r.err);
    assert_eq!(stat(&r.err, "delivered"), 300);
}

#[test]
fn a_server_slower_than_timeout_ms_is_retried_then_dead_lettered_as_exhausted() {
    let api = TargetServer::start();
    api.set_latency(Duration::from_millis(800));
    let sink = format!("url = {:?}\ntimeout_ms = 100\n", api.url("/orders"));
    let r = run(
        &events(0..4, 1, usd),
        &pipeline("slow", 1, "max_attempts = 2", &sink),
        &[],
    );
    // The server answers 200 after the client gave up: these requests count for nothing.
    assert_eq!(r.dlq.len(), 4, "{:?}", r.dlq);
    let dead: Vec<u64> = r.dlq.iter().map(|d| seq(&d["event"]["data"])).collect();
    assert_eq!(
        dead,
        [0, 1, 2, 3],
        "the key's events dead-lettered in order"
    );
    let first = sink_error(&r.dlq[0]);
    assert_eq!(
        (&first["kind"], &first["attempts"]),
        (&"exhausted".into(), &2.into())
    );
    let message = first["message"].as_str().unwrap();
    assert!(message.contains("within timeout_ms 100"), "{message}");
    assert_eq!(stat(&r.err, "dead_lettered"), 4);
}

#[test]
fn the_server_down_for_a_while_then_back_loses_nothing() {
    let api = TargetServer::start();
    api.set_latency(Duration::from_millis(2));
    let s = Scratch::new();
    s.write("in.jsonl", events(0..1500, 10, usd));
    let sink = format!("url = {:?}\nmax_concurrency = 4\n", api.url("/orders"));
    let p = s.write("p.toml", pipeline("down", 4, "", &sink));
    let child = s.spawn_logged(&p);
    wait_logged(&s, "some deliveries", || api.delivered_count() >= 200);
    api.down();
    let before = api.total();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(api.total(), before, "nothing answered while down");
    api.up();
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert!(dlq.is_empty(), "{dlq:?}");
    // A request the server answered just as it went down may be sent again: at least once.
    let delivered = api.delivered();
    check_key_order(&delivered, true);
    let seen: BTreeSet<u64> = delivered.iter().map(seq).collect();
    assert_eq!(seen, (0..1500).collect(), "every event arrived");
    assert_eq!(stat(&log, "delivered"), 1500);
    assert!(stat(&log, "retried") >= 1, "{log}");
}

#[test]
fn oauth_tokens_are_fetched_again_when_they_expire_or_are_refused_and_the_secret_stays_hidden() {
    let api = TargetServer::start();
    let secret = "sh-h-this-is-the-client-secret";
    api.set_auth(Auth::OAuth2 {
        client_id: "weir-client".into(),
        client_secret: secret.into(),
        expires_in: Duration::from_secs(2),
    });
    let s = Scratch::new();
    s.write("in.jsonl", events(0..240, 6, usd));
    // 40 requests a second: six seconds, several tokens' lifetimes.
    let sink = format!(
        "url = {:?}\nrate_limit_per_s = 40\n\n[sink.auth]\ntype = \"oauth2\"\ntoken_url = {:?}\n\
         client_id = \"weir-client\"\nclient_secret = {{ env = \"HTTP_TEST_CLIENT_SECRET\" }}\n\
         scope = \"orders:write\"\n",
        api.url("/orders"),
        api.token_url()
    );
    let p = s.write("p.toml", pipeline("oauth", 4, "", &sink));
    let child = s
        .weir_run(&p)
        .env("HTTP_TEST_CLIENT_SECRET", secret)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weir");
    // The provider rotates its keys mid-run: the tokens out there are refused (401).
    wait_for("some deliveries", || api.delivered_count() >= 60);
    api.revoke_tokens();
    let out = child.wait_with_output().expect("weir ran");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert!(check_once(&api, &dlq, 0..240).is_empty(), "{dlq:?}");
    assert!(
        api.token_fetches() >= 3,
        "a token at the start, one after the revocation, and one for each expiry: {}",
        api.token_fetches()
    );
    assert!(api.count_status(401) >= 1, "the revoked token was refused");
    let forms = api.token_forms();
    assert!(forms.iter().all(|f| {
        f.get("grant_type").map(String::as_str) == Some("client_credentials")
            && f.get("client_id").map(String::as_str) == Some("weir-client")
            && f.get("scope").map(String::as_str) == Some("orders:write")
    }));
    // Requests that got through carried several tokens over the run.
    let tokens: BTreeSet<Option<String>> = api
        .requests()
        .iter()
        .filter(|q| q.ok())
        .map(|q| q.header("authorization"))
        .collect();
    assert!(tokens.len() >= 2, "{tokens:?}");
    assert!(!tokens.contains(&None));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!err.contains(secret) && !stdout.contains(secret), "{err}");
}

#[test]
fn basic_and_api_key_credentials_reach_the_server_and_wrong_ones_are_dead_lettered() {
    let api = TargetServer::start();
    api.set_auth(Auth::Basic {
        user: "weir".into(),
        password: "basic-pw-42".into(),
    });
    let basic = |password_env: &str| {
        format!(
            "url = {:?}\n\n[sink.auth]\ntype = \"basic\"\nusername = \"weir\"\n\
             password = {{ env = \"{password_env}\" }}\n",
            api.url("/orders")
        )
    };
    let env = [
        ("HTTP_TEST_RIGHT", "basic-pw-42"),
        ("HTTP_TEST_WRONG", "guess"),
    ];
    let r = run(
        &events(0..20, 2, usd),
        &pipeline("basic", 2, "", &basic("HTTP_TEST_RIGHT")),
        &env,
    );
    assert!(check_once(&api, &r.dlq, 0..20).is_empty(), "{:?}", r.dlq);
    api.reset_counts();
    let r = run(
        &events(0..20, 2, usd),
        &pipeline("basic", 2, "", &basic("HTTP_TEST_WRONG")),
        &env,
    );
    assert_eq!(check_once(&api, &r.dlq, 0..20).len(), 20, "all refused");
    for record in &r.dlq {
        let error = sink_error(record);
        assert_eq!(error["kind"], "rejected", "a 401 is not retried");
        assert!(
            error["message"].as_str().unwrap().contains("HTTP 401"),
            "{error}"
        );
    }
    assert!(!r.err.contains("guess") && !r.err.contains("basic-pw-42"));

    api.reset_counts();
    api.set_auth(Auth::ApiKey {
        header: "x-api-key".into(),
        value: "key-123".into(),
    });
    let sink = format!(
        "url = {:?}\n\n[sink.auth]\ntype = \"api_key\"\nheader = \"X-Api-Key\"\n\
         value = {{ env = \"HTTP_TEST_KEY\" }}\n",
        api.url("/orders")
    );
    let r = run(
        &events(0..20, 2, usd),
        &pipeline("apikey", 2, "", &sink),
        &[("HTTP_TEST_KEY", "key-123")],
    );
    assert!(check_once(&api, &r.dlq, 0..20).is_empty(), "{:?}", r.dlq);
    assert!(!r.err.contains("key-123"));
}

#[test]
fn the_rate_limit_holds_at_the_server_in_every_second() {
    let api = TargetServer::start();
    let sink = format!(
        "url = {:?}\nrate_limit_per_s = 20\nmax_concurrency = 8\n",
        api.url("/orders")
    );
    let r = run(
        &events(0..100, 10, usd),
        &pipeline("limited", 8, "", &sink),
        &[],
    );
    assert!(check_once(&api, &r.dlq, 0..100).is_empty(), "{:?}", r.dlq);
    // The sink spaces starts 50 ms apart and never starts early; a start the machine delays
    // (seen: 70 ms, on a loaded 2-core machine) arrives closer to the next ones, so a window
    // opening at it can hold one more than the limit besides the edge's. A burst of 20 (a token
    // bucket) would show up to 40 in a second, no limit all 100.
    let most = api.most_within(Duration::from_secs(1));
    assert!(
        most <= 22,
        "{most} requests within one second, the limit 20"
    );
    let most = api.most_within(Duration::from_secs(3));
    assert!(
        most <= 62,
        "{most} requests within three seconds, the limit 60"
    );
}

#[test]
fn tls_with_a_test_ca_and_mtls_with_a_client_certificate_and_refused_without_one() {
    let s = Scratch::new();
    let api = TargetServer::start_tls(s.dir.path(), false);
    let sink = format!(
        "url = {:?}\nca_file = {:?}\n",
        api.url("/orders"),
        api.tls_files().ca
    );
    let r = run(&events(0..50, 5, usd), &pipeline("tls", 4, "", &sink), &[]);
    assert!(check_once(&api, &r.dlq, 0..50).is_empty(), "{:?}", r.dlq);

    let mtls = TargetServer::start_tls(s.dir.path(), true);
    let files = mtls.tls_files();
    let with_cert = format!(
        "url = {:?}\nca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}\n",
        mtls.url("/orders"),
        files.ca,
        files.client_cert,
        files.client_key
    );
    let r = run(
        &events(0..50, 5, usd),
        &pipeline("mtls", 4, "", &with_cert),
        &[],
    );
    assert!(check_once(&mtls, &r.dlq, 0..50).is_empty(), "{:?}", r.dlq);

    // Without a client certificate the handshake fails: retryable (a connection error), so
    // each event is tried max_attempts times, then dead-lettered as exhausted.
    mtls.reset_counts();
    let without = format!(
        "url = {:?}\nca_file = {:?}\n",
        mtls.url("/orders"),
        files.ca
    );
    let r = run(
        &events(0..10, 2, usd),
        &pipeline("mtls-refused", 2, "max_attempts = 2", &without),
        &[],
    );
    assert_eq!(check_once(&mtls, &r.dlq, 0..10).len(), 10);
    assert_eq!(mtls.total(), 0, "no request got through");
    assert!(mtls.handshakes_failed() >= 1);
    for record in &r.dlq {
        let error = sink_error(record);
        assert_eq!(error["kind"], "exhausted", "{record}");
        assert_eq!(error["attempts"], 2, "{record}");
    }
}

#[test]
fn an_invalid_rendered_url_is_dead_lettered_and_inserted_values_are_percent_encoded() {
    let api = TargetServer::start();
    let port = api.port();
    // seq 7's port makes the URL invalid; ids and notes hold `/`, spaces, `&` and `=`.
    let input: String = (0..20u64)
        .map(|n| {
            let port = if n == 7 { "99999".to_owned() } else { port.to_string() };
            format!(
                "{{\"seq\":{n},\"k\":\"k{}\",\"port\":\"{port}\",\"id\":\"a/b c{n}\",\"note\":\"x&y=z {n}\"}}\n",
                n % 3
            )
        })
        .collect();
    let sink = "url = \"http://127.0.0.1:<$.data.port>/orders/<$.data.id>?note=<$.data.note>\"\n";
    let r = run(&input, &pipeline("urls", 2, "", sink), &[]);
    let dead = check_once(&api, &r.dlq, 0..20);
    assert_eq!(dead, BTreeSet::from([7]));
    let error = sink_error(&r.dlq[0]);
    assert_eq!(
        (&error["kind"], &error["attempts"]),
        (&Value::from("rejected"), &Value::from(1))
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("url template rendered an invalid URL"),
        "{message}"
    );
    assert!(message.contains("99999"), "{message}");
    for q in api.requests() {
        let n = seqs_of(&q)[0];
        assert_eq!(
            q.target,
            format!("/orders/a%2Fb%20c{n}?note=x%26y%3Dz%20{n}")
        );
    }
}

#[test]
fn batches_of_ten_arrive_as_json_arrays_every_event_once_in_key_order() {
    let api = TargetServer::start();
    let sink = format!("url = {:?}\nbatch_size = 10\n", api.url("/orders"));
    let r = run(
        &events(0..500, 7, usd),
        &pipeline("batched", 4, "", &sink),
        &[],
    );
    assert!(check_once(&api, &r.dlq, 0..500).is_empty(), "{:?}", r.dlq);
    let requests = api.requests();
    let mut sizes = Vec::new();
    for q in &requests {
        let body: Value = serde_json::from_slice(&q.body).unwrap();
        let n = body
            .as_array()
            .map(Vec::len)
            .unwrap_or_else(|| panic!("not an array: {body}"));
        assert!((1..=10).contains(&n), "{n} events in one request");
        sizes.push(n);
    }
    assert!(
        sizes.iter().any(|&n| n > 1),
        "events were grouped: {sizes:?}"
    );
    assert!(
        requests.len() < 500,
        "fewer requests than events: {}",
        requests.len()
    );
}

#[test]
fn kill_9_twice_mid_stream_then_restart_delivers_every_event_at_least_once_in_key_order() {
    let api = TargetServer::start();
    api.set_latency(Duration::from_millis(5));
    let total = 4000u64;
    let s = Scratch::new();
    s.write("in.jsonl", events(0..total, 20, usd));
    let sink = format!(
        "url = {:?}\nmax_concurrency = 8\nidempotency_key = \"<$.id>\"\n",
        api.url("/orders")
    );
    let p = s.write("p.toml", pipeline("crashy", 8, "", &sink));
    for run in 0..2u32 {
        api.set_run(run);
        let mut child = s.spawn_logged(&p);
        let before = api.delivered_count();
        wait_logged(&s, "progress", || api.delivered_count() >= before + 600);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    api.set_run(2);
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(json_lines(&s.path("dlq.jsonl")).is_empty());

    let requests = api.requests();
    // Within each run, every event at most once and each key in order; across runs, an event
    // read again after a kill comes again, with the same idempotency key.
    let mut by_run: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
    let mut idempotency: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for q in requests.iter().filter(|q| q.ok()) {
        for event in q.events() {
            idempotency
                .entry(seq(&event))
                .or_default()
                .insert(q.header("idempotency-key").unwrap_or_default());
            by_run.entry(q.run).or_default().push(event);
        }
    }
    assert_eq!(by_run.len(), 3, "each run delivered some");
    for delivered in by_run.values() {
        check_key_order(delivered, false);
    }
    assert_eq!(
        idempotency.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>(),
        "every event at least once"
    );
    assert!(idempotency.values().all(|keys| keys.len() == 1));
    assert_eq!(
        stat(&err, "delivered"),
        by_run[&2].len() as u64,
        "the last run's count is what the server got from it"
    );
    assert_eq!(stat(&err, "dead_lettered"), 0);
}

#[test]
fn dry_run_shows_the_request_with_its_secrets_masked() {
    let s = Scratch::new();
    s.write("in.jsonl", events(0..2, 2, usd));
    let sink = "url = \"https://api.example.com/orders/<$.data.k>\"\nmethod = \"PUT\"\n\
                headers = { \"X-Customer\" = \"<$.data.customer>\", \"X-Token\" = { env = \"HTTP_TEST_TOKEN\" } }\n\n\
                [sink.auth]\ntype = \"api_key\"\nheader = \"X-Api-Key\"\nvalue = { env = \"HTTP_TEST_KEY\" }\n";
    let p = s.write("p.toml", pipeline("dry", 2, "", sink));
    let out = s
        .dry_run(&p, "in.jsonl")
        .env("HTTP_TEST_TOKEN", "token-value-1")
        .env("HTTP_TEST_KEY", "key-value-2")
        .output()
        .expect("run weir dry-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}\n{stdout}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let sink = &lines[1]["sink"];
    assert_eq!(sink["method"], "PUT", "{sink}");
    assert_eq!(sink["url"], "https://api.example.com/orders/k1", "{sink}");
    let headers = sink["headers"].to_string().to_lowercase();
    assert!(
        headers.contains("x-customer") && headers.contains("c1"),
        "{headers}"
    );
    assert!(
        headers.contains("x-token") && headers.contains("x-api-key"),
        "{headers}"
    );
    assert!(headers.contains("<secret>"), "{headers}");
    let body: Value = serde_json::from_str(sink["body"].as_str().unwrap_or("null")).unwrap();
    assert_eq!(body["seq"], 1, "{sink}");
    for secret in ["token-value-1", "key-value-2"] {
        assert!(
            !stdout.contains(secret) && !err.contains(secret),
            "{stdout}{err}"
        );
    }
}
