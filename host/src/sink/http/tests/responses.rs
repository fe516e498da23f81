//! What each answer makes of an event: delivered, retryable (with `Retry-After`), permanent
//! (with the body's first KiB); the URL as rendered and escaped.

use super::*;

#[tokio::test]
async fn too_many_requests_is_retried_no_sooner_than_retry_after() {
    let server = Server::start(|_| Reply::status(429).header("retry-after", "7").body("slow down")).await;
    let sink = open(&format!("url = \"{}\"", server.url("/in"))).await;
    let e = write_one_err(sink.as_ref(), event("e1", None, "{}")).await;
    assert!(e.retryable);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(
        e.message,
        format!("HTTP 429 Too Many Requests from POST {}: slow down", server.url("/in"))
    );
}

#[tokio::test]
async fn a_client_error_is_permanent_with_the_first_kib_of_the_body() {
    let long = format!("bad order: {}", "x".repeat(5000));
    let answer = long.clone();
    let server = Server::start(move |_| Reply::status(400).body(answer.clone())).await;
    let sink = open(&format!("url = \"{}\"", server.url("/orders"))).await;
    let e = write_one_err(sink.as_ref(), event("e1", None, "{}")).await;
    assert!(!e.retryable);
    assert_eq!(
        e.message,
        format!(
            "HTTP 400 Bad Request from POST {}: {}",
            server.url("/orders"),
            &long[..1024]
        )
    );
}

#[tokio::test]
async fn server_errors_timeouts_and_refused_connections_are_retryable() {
    let server = Server::start(|s| match s.target.as_str() {
        "/slow" => Reply::ok().after(Duration::from_secs(5)),
        _ => Reply::status(502),
    })
    .await;
    let sink = open(&format!("url = \"{}\"", server.url("/down"))).await;
    let e = write_one_err(sink.as_ref(), event("e1", None, "{}")).await;
    assert!(e.retryable && e.retry_after.is_none(), "{e:?}");
    assert!(e.message.starts_with("HTTP 502 Bad Gateway from POST"), "{}", e.message);

    let sink = open(&format!("url = \"{}\"\ntimeout_ms = 200", server.url("/slow"))).await;
    let e = write_one_err(sink.as_ref(), event("e1", None, "{}")).await;
    assert!(e.retryable, "{e:?}");
    assert!(e.message.contains("no answer within timeout_ms 200"), "{}", e.message);

    // A port nothing listens on: bound, then closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("an address").port()
    };
    let sink = open(&format!("url = \"http://127.0.0.1:{port}/x\"")).await;
    let e = write_one_err(sink.as_ref(), event("e1", None, "{}")).await;
    assert!(e.retryable, "{e:?}");
    assert!(e.message.starts_with(&format!("http: POST http://127.0.0.1:{port}/x: ")), "{}", e.message);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let server = Server::start(|_| Reply::status(302).header("location", "/elsewhere")).await;
    let sink = open(&format!("url = \"{}\"", server.url("/in"))).await;
    let e = write_one_err(sink.as_ref(), event("e1", None, "{}")).await;
    assert!(!e.retryable);
    assert!(e.message.contains("redirects are not followed; Location: /elsewhere"), "{}", e.message);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn values_in_the_url_are_escaped_and_its_text_kept() {
    let server = Server::start(|_| Reply::status(204)).await;
    let sink = open(&format!(
        "url = \"{}/orders/<$.data.id>/items?q=<$.data.q>&page=1\"\nmethod = \"PUT\"",
        server.url("/v1")
    ))
    .await;
    let e = event("e1", None, r#"{"id": "a/b c?#", "q": "x&y=z"}"#);
    let results = write(sink.as_ref(), &[e]).await;
    assert!(results[0].is_ok(), "{results:?}");
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v1/orders/a%2Fb%20c%3F%23/items?q=x%26y%3Dz&page=1");
}

#[tokio::test]
async fn a_url_that_renders_invalid_fails_that_event_for_good() {
    let server = Server::start(|_| Reply::ok()).await;
    let sink = open("url = \"<$.data.endpoint>\"").await;
    let good = event("e1", Some("k"), &format!(r#"{{"endpoint": "{}"}}"#, server.url("/ok")));
    let bad = event("e2", Some("j"), r#"{"endpoint": "not a url"}"#);
    let results = write(sink.as_ref(), &[good, bad]).await;
    assert!(results[0].is_ok());
    let e = results[1].as_ref().expect_err("invalid");
    assert!(!e.retryable);
    assert!(
        e.message.starts_with("url template rendered an invalid URL \"not a url\": "),
        "{}",
        e.message
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn headers_idempotency_key_and_content_type_are_sent() {
    let server = Server::start(|_| Reply::ok()).await;
    let sink = open(&format!(
        "url = \"{}\"\nheaders = {{ \"X-Tenant\" = \"<$.data.tenant>\" }}\n\
         content_type = \"application/vnd.orders+json\"\nidempotency_key = \"<$.id>\"",
        server.url("/in")
    ))
    .await;
    let results = write(sink.as_ref(), &[event("orders/0/7", None, r#"{"tenant": "acme"}"#)]).await;
    assert!(results[0].is_ok());
    let h = &server.seen()[0].headers;
    assert_eq!(h["x-tenant"], "acme");
    assert_eq!(h["idempotency-key"], "orders/0/7");
    assert_eq!(h["content-type"], "application/vnd.orders+json");
    assert_eq!(server.seen()[0].body, r#"{"tenant": "acme"}"#);
}

#[tokio::test]
async fn the_rate_limit_spaces_request_starts() {
    let server = Server::start(|_| Reply::ok()).await;
    let sink = open(&format!("url = \"{}\"\nrate_limit_per_s = 10", server.url("/in"))).await;
    let keys: Vec<String> = (0..15).map(|n| format!("k{n}")).collect();
    let events: Vec<Envelope> = keys
        .iter()
        .map(|k| event(k, Some(k), "{}"))
        .collect();
    let results = write(sink.as_ref(), &events).await;
    assert!(results.iter().all(Result::is_ok));
    let mut starts: Vec<Instant> = server.seen().iter().map(|s| s.started).collect();
    starts.sort();
    // In any one-second window, at most 10 starts (with a little room for the clock read at
    // the server rather than at the start itself).
    for (i, a) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .filter(|b| b.duration_since(*a) < Duration::from_millis(950))
            .count();
        assert!(within <= 10, "{within} requests started within a second");
    }
}
