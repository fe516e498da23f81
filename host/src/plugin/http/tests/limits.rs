//! Timeouts, the response size cap, connection failures, `rate_limit_per_s` and
//! `max_concurrency`, counted at the server.

use super::*;

#[tokio::test]
async fn a_slow_answer_times_out_at_timeout_ms() {
    let (addr, _seen) = server().await;
    let access = access(&format!("allow = [\"http://{addr}/\"]\ntimeout_ms = 200"));
    match send(&access, get(&format!("http://{addr}/slow"))).await {
        Err(HttpError::Timeout(why)) => assert!(why.contains("timeout_ms 200"), "{why}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn no_request_waits_past_the_calls_deadline() {
    let (addr, _seen) = server().await;
    let access = access(&format!("allow = [\"http://{addr}/\"]\ntimeout_ms = 60000"));
    let deadline = Instant::now() + Duration::from_millis(200);
    let answers = access
        .send_all(vec![get(&format!("http://{addr}/slow")); 2], deadline)
        .await;
    for answer in answers {
        match answer {
            Err(HttpError::Timeout(why)) => assert!(why.contains("I/O budget"), "{why}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_response_over_max_response_bytes_is_too_large() {
    let (addr, _seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/\"]\nmax_response_bytes = 9999"
    ));
    for path in ["big", "stream"] {
        match send(&access, get(&format!("http://{addr}/{path}"))).await {
            Err(HttpError::TooLarge(why)) => assert!(why.contains("9999"), "{why}"),
            other => panic!("{path}: expected too-large, got {other:?}"),
        }
    }
    let access = super::access(&format!(
        "allow = [\"http://{addr}/\"]\nmax_response_bytes = 10000"
    ));
    for path in ["big", "stream"] {
        let answer = send(&access, get(&format!("http://{addr}/{path}"))).await;
        assert_eq!(answer.map(|r| r.body.len()).ok(), Some(10_000), "{path}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("an address");
    drop(listener);
    let access = access(&format!("allow = [\"http://{addr}/\"]"));
    match send(&access, get(&format!("http://{addr}/rates/USD"))).await {
        Err(HttpError::Unavailable(why)) => {
            assert!(
                why.starts_with(&format!("GET http://{addr}/rates/USD: ")),
                "{why}"
            );
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_across_callers() {
    let (addr, seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/\"]\nrate_limit_per_s = 10"
    ));
    let url = format!("http://{addr}/rates/USD");
    // Two lanes' batches at once: the limit is the plugin's, not a batch's.
    let (a, b) = tokio::join!(
        access.send_all(vec![get(&url); 8], far()),
        access.send_all(vec![get(&url); 7], far()),
    );
    assert!(
        a.iter()
            .chain(&b)
            .all(|r| r.as_ref().is_ok_and(|r| r.status == 200))
    );
    let arrivals = seen.arrivals.lock().expect("not poisoned").clone();
    assert_eq!(arrivals.len(), 15);
    // In any one second, at most 10 started: 11 allowed at the server for network jitter (a
    // request that left on time but arrived late).
    for (i, first) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .filter(|t| t.duration_since(*first) < Duration::from_secs(1))
            .count();
        assert!(
            within <= 11,
            "{within} requests within a second of request {i}"
        );
    }
}

#[tokio::test]
async fn waiting_for_a_rate_token_counts_against_the_deadline() {
    let (addr, seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/\"]\nrate_limit_per_s = 1"
    ));
    let url = format!("http://{addr}/rates/USD");
    let deadline = Instant::now() + Duration::from_millis(300);
    let answers = access.send_all(vec![get(&url); 3], deadline).await;
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 1);
    for answer in answers.iter().filter(|a| a.is_err()) {
        match answer {
            Err(HttpError::Timeout(why)) => assert!(why.contains("rate_limit_per_s 1"), "{why}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    assert_eq!(seen.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_across_callers() {
    let (addr, seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/\"]\nmax_concurrency = 3"
    ));
    let url = format!("http://{addr}/hold");
    let (a, b) = tokio::join!(
        access.send_all(vec![get(&url); 6], far()),
        access.send_all(vec![get(&url); 6], far()),
    );
    assert!(a.iter().chain(&b).all(|r| r.is_ok()));
    assert_eq!(seen.count(), 12);
    let max = seen.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "{max} requests in flight at once");
}
