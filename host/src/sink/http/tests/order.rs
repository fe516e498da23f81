//! Per-key order inside one write, and a failed key holding back only its own later entries.

use super::*;
use std::collections::BTreeMap;

/// The body's `n` and `k`: `{"k":"A","n":1}`.
fn tag(body: &str) -> (String, u64) {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    (
        v["k"].as_str().unwrap_or("").to_owned(),
        v["n"].as_u64().unwrap_or(0),
    )
}

fn events(keys: &[Option<&str>]) -> Vec<Envelope> {
    keys.iter()
        .enumerate()
        .map(|(n, k)| {
            let data = format!(r#"{{"k":"{}","n":{n}}}"#, k.unwrap_or("-"));
            event(&format!("e{n}"), *k, &data)
        })
        .collect()
}

#[tokio::test]
async fn a_keys_requests_go_one_after_another_and_keys_side_by_side() {
    let server = Server::start(|_| Reply::ok().after(Duration::from_millis(40))).await;
    let sink = open(&format!("url = \"{}\"", server.url("/in"))).await;
    let keys = [
        Some("A"),
        Some("B"),
        Some("A"),
        None,
        Some("B"),
        Some("A"),
        None,
        Some("C"),
    ];
    let results = write(sink.as_ref(), &events(&keys)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let seen = server.seen();
    assert_eq!(seen.len(), keys.len());
    let mut by_key: BTreeMap<String, Vec<&Seen>> = BTreeMap::new();
    for s in &seen {
        by_key.entry(tag(&s.body).0).or_default().push(s);
    }
    for (key, requests) in &mut by_key {
        requests.sort_by_key(|s| s.started);
        let order: Vec<u64> = requests.iter().map(|s| tag(&s.body).1).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "key {key} arrived out of order");
        for pair in requests.windows(2) {
            assert!(
                pair[1].started >= pair[0].ended,
                "key {key}: a request started before the previous one ended"
            );
        }
    }
    // Different keys overlapped: some request started before another of another key ended.
    let overlapped = seen.iter().any(|a| {
        seen.iter()
            .any(|b| tag(&a.body).0 != tag(&b.body).0 && b.started < a.ended && a.started < b.ended)
    });
    assert!(overlapped, "keys were sent one at a time");
}

#[tokio::test]
async fn a_failed_entry_holds_back_its_keys_later_entries_only() {
    let server = Server::start(|s| {
        if s.body.contains(r#""n":1"#) {
            Reply::status(503).body("down")
        } else {
            Reply::ok()
        }
    })
    .await;
    let sink = open(&format!("url = \"{}\"", server.url("/in"))).await;
    // n: 0 B, 1 A (fails), 2 B, 3 A (held back), 4 none, 5 A (held back), 6 none
    let keys = [
        Some("B"),
        Some("A"),
        Some("B"),
        Some("A"),
        None,
        Some("A"),
        None,
    ];
    let results = write(sink.as_ref(), &events(&keys)).await;
    let failed: Vec<usize> = (0..keys.len()).filter(|i| results[*i].is_err()).collect();
    assert_eq!(failed, [1, 3, 5]);
    let first = results[1].as_ref().expect_err("failed");
    assert!(first.retryable && first.message.starts_with("HTTP 503"), "{first:?}");
    for i in [3, 5] {
        let e = results[i].as_ref().expect_err("held back");
        assert!(e.retryable, "{e:?}");
        assert_eq!(e.message, "not sent: an earlier event with key \"A\" failed");
    }
    let mut sent: Vec<u64> = server.bodies().iter().map(|b| tag(b).1).collect();
    sent.sort();
    assert_eq!(sent, [0, 1, 2, 4, 6], "held-back entries reached the server");
}

#[tokio::test]
async fn entries_without_a_key_are_one_key() {
    let server = Server::start(|s| {
        if s.body.contains(r#""n":0"#) {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    })
    .await;
    let sink = open(&format!("url = \"{}\"", server.url("/in"))).await;
    let results = write(sink.as_ref(), &events(&[None, None, Some("K")])).await;
    assert!(results[0].is_err() && results[2].is_ok());
    let e = results[1].as_ref().expect_err("held back");
    assert_eq!(e.message, "not sent: an earlier event without a key failed");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn max_concurrency_bounds_requests_in_flight() {
    let server = Server::start(|_| Reply::ok().after(Duration::from_millis(50))).await;
    let sink = open(&format!(
        "url = \"{}\"\nmax_concurrency = 2",
        server.url("/in")
    ))
    .await;
    let keys: Vec<String> = (0..8).map(|n| format!("k{n}")).collect();
    let keys: Vec<Option<&str>> = keys.iter().map(|k| Some(k.as_str())).collect();
    let results = write(sink.as_ref(), &events(&keys)).await;
    assert!(results.iter().all(Result::is_ok));
    let seen = server.seen();
    let most = seen
        .iter()
        .map(|a| {
            seen.iter()
                .filter(|b| b.started <= a.started && a.started < b.ended)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(most <= 2, "{most} requests were in flight at once");
}
