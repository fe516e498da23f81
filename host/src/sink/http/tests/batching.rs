//! `batch_size` > 1: consecutive events in one request, their bodies a JSON array.

use super::*;

#[tokio::test]
async fn consecutive_events_go_as_json_arrays_of_up_to_batch_size() {
    let server = Server::start(|_| Reply::ok()).await;
    let sink = open(&format!(
        "url = \"{}\"\nbatch_size = 3\nidempotency_key = \"<$.id>\"",
        server.url("/bulk")
    ))
    .await;
    let events = vec![
        event("e0", Some("A"), r#"{"n":0}"#),
        event("e1", Some("B"), r#"{"n":1}"#),
        event("e2", Some("A"), "plain text"),
        event("e3", Some("A"), r#"{"n":3}"#),
        event("e4", Some("B"), r#"[4]"#),
    ];
    let results = write(sink.as_ref(), &events).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let seen = server.seen();
    let mut bodies: Vec<&str> = seen.iter().map(|s| s.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, [r#"[{"n":0},{"n":1},"plain text"]"#, r#"[{"n":3},[4]]"#]);
    // A request of several events carries one key for all of them, the same for the same
    // events (a digest), unlike any one event's.
    for s in &seen {
        let key = s.headers["idempotency-key"].to_str().expect("text");
        assert_eq!(key.len(), 64, "{key}");
    }
    // A's entries are in two requests: the second started after the first ended.
    let mut by_start = seen.clone();
    by_start.sort_by_key(|s| s.started);
    assert!(by_start[1].started >= by_start[0].ended);
}

#[tokio::test]
async fn a_failed_request_fails_all_its_events_and_holds_back_their_keys() {
    let server = Server::start(|s| {
        if s.body.contains(r#""n":0"#) {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    })
    .await;
    let sink = open(&format!("url = \"{}\"\nbatch_size = 2", server.url("/bulk"))).await;
    // Requests: [A0, B1] (fails), [C2, C3] (sent), [B4] (held back: B1 failed).
    let events = vec![
        event("e0", Some("A"), r#"{"n":0}"#),
        event("e1", Some("B"), r#"{"n":1}"#),
        event("e2", Some("C"), r#"{"n":2}"#),
        event("e3", Some("C"), r#"{"n":3}"#),
        event("e4", Some("B"), r#"{"n":4}"#),
    ];
    let results = write(sink.as_ref(), &events).await;
    let failed: Vec<usize> = (0..5).filter(|i| results[*i].is_err()).collect();
    assert_eq!(failed, [0, 1, 4]);
    assert!(results[1].as_ref().err().is_some_and(|e| e.message.starts_with("HTTP 500")));
    assert!(results[4].as_ref().err().is_some_and(|e| e.message.starts_with("not sent")));
    let mut bodies = server.bodies();
    bodies.sort();
    assert_eq!(bodies, [r#"[{"n":0},{"n":1}]"#, r#"[{"n":2},{"n":3}]"#]);
}

#[tokio::test]
async fn requests_bound_elsewhere_are_not_merged() {
    let server = Server::start(|_| Reply::ok()).await;
    let sink = open(&format!(
        "url = \"{}/<$.data.to>\"\nbatch_size = 10",
        server.url("")
    ))
    .await;
    let events = vec![
        event("e0", None, r#"{"to":"a"}"#),
        event("e1", None, r#"{"to":"a"}"#),
        event("e2", None, r#"{"to":"b"}"#),
    ];
    assert!(write(sink.as_ref(), &events).await.iter().all(Result::is_ok));
    let targets: Vec<String> = server.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(targets, ["/a", "/b"]);
}
