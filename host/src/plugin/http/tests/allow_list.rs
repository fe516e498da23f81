//! Allowed and denied requests: a denied one never reaches the server.

use super::*;

#[tokio::test]
async fn only_requests_under_a_prefix_with_a_granted_method_leave() {
    let (addr, seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/rates/\", \"http://{addr}/exact\"]"
    ));
    let ok = send(&access, get(&format!("http://{addr}/rates/USD"))).await;
    let ok = ok.expect("allowed");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, br#"{"rate": 1.5}"#);
    assert_eq!(
        send(&access, get(&format!("http://{addr}/exact")))
            .await
            .map(|r| r.status)
            .ok(),
        Some(200)
    );
    assert_eq!(seen.count(), 2);

    let port = addr.port();
    let other_port = if port == 65535 { port - 1 } else { port + 1 };
    let denied = [
        format!("http://{addr}/admin"),
        format!("http://{addr}/ratesX"),
        format!("http://{addr}/exactly"),
        format!("http://{addr}/rates/../admin"),
        format!("http://{addr}/rates/%2e%2e/admin"),
        format!("http://{addr}/rates/..%2Fadmin"),
        format!("http://{addr}/rates/%2F..%2Fadmin"),
        format!("https://{addr}/rates/USD"),
        format!("http://127.0.0.1:{other_port}/rates/USD"),
        format!("http://localhost:{port}/rates/USD"),
        format!("http://user:pw@{addr}/rates/USD"),
    ];
    for url in &denied {
        match send(&access, get(url)).await {
            Err(HttpError::Denied(why)) => {
                assert!(why.contains("plugin enrich may not GET"), "{why}");
            }
            other => panic!("{url}: expected a denial, got {other:?}"),
        }
    }
    let post = Request {
        method: "POST".into(),
        ..get(&format!("http://{addr}/rates/USD"))
    };
    match send(&access, post).await {
        Err(HttpError::Denied(why)) => assert!(why.contains("method not granted"), "{why}"),
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(seen.count(), 2, "a denied request reached the server");
}

#[tokio::test]
async fn the_denial_names_plugin_method_and_url() {
    let (addr, _seen) = server().await;
    let access = access(&format!("allow = [\"http://{addr}/rates/\"]"));
    let url = format!("http://{addr}/ratesX");
    match send(&access, get(&url)).await {
        Err(HttpError::Denied(why)) => assert_eq!(
            why,
            format!("plugin enrich may not GET {url}: not under an allowed prefix")
        ),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_requests_are_invalid_and_never_sent() {
    let (addr, seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/\"]\nmethods = [\"GET\", \"POST\"]"
    ));
    let url = format!("http://{addr}/rates/USD");
    let cases = [
        get("/relative/path"),
        Request {
            method: "G ET".into(),
            ..get(&url)
        },
        Request {
            headers: vec![("bad header".into(), "v".into())],
            ..get(&url)
        },
        Request {
            headers: vec![("x-ok".into(), "line\nbreak".into())],
            ..get(&url)
        },
        Request {
            headers: vec![("host".into(), "elsewhere".into())],
            ..get(&url)
        },
        Request {
            method: "POST".into(),
            headers: vec![("content-length".into(), "0".into())],
            ..get(&url)
        },
    ];
    for request in cases {
        let shown = format!("{} {} {:?}", request.method, request.url, request.headers);
        assert!(
            matches!(send(&access, request).await, Err(HttpError::Invalid(_))),
            "{shown}"
        );
    }
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_batch_is_answered_in_order() {
    let (addr, seen) = server().await;
    let access = access(&format!("allow = [\"http://{addr}/rates/\"]"));
    let requests = vec![
        get(&format!("http://{addr}/rates/USD")),
        get(&format!("http://{addr}/admin")),
        get(&format!("http://{addr}/rates/XXX")),
    ];
    let answers = access.send_all(requests, far()).await;
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0].as_ref().map(|r| r.status).ok(), Some(200));
    assert!(matches!(answers[1], Err(HttpError::Denied(_))));
    assert_eq!(answers[2].as_ref().map(|r| r.status).ok(), Some(404));
    assert_eq!(seen.count(), 2);
}
