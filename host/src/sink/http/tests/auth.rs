//! Basic, API-key and OAuth 2 client-credentials auth; secrets out of errors and previews.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

fn secret_file(dir: &tempfile::TempDir, name: &str, value: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{value}\n")).expect("written");
    path.display().to_string()
}

#[tokio::test]
async fn basic_and_api_key_headers_are_sent_and_never_shown() {
    let dir = tempfile::tempdir().expect("a directory");
    let password = secret_file(&dir, "pw", "hunter2-pw");
    let key = secret_file(&dir, "key", "k3y-value");
    let server = Server::start(|_| Reply::ok()).await;
    let basic = format!(
        "url = \"{}\"\nheaders = {{ \"X-Extra\" = {{ file = \"{key}\" }} }}\n\
         [auth]\ntype = \"basic\"\nusername = \"u\"\npassword = {{ file = \"{password}\" }}",
        server.url("/in")
    );
    let sink = open(&basic).await;
    assert!(write(sink.as_ref(), &[event("e", None, "{}")]).await[0].is_ok());
    let api_key = format!(
        "url = \"{}\"\n[auth]\ntype = \"api_key\"\nheader = \"X-Api-Key\"\nvalue = {{ file = \"{key}\" }}",
        server.url("/in")
    );
    let sink = open(&api_key).await;
    assert!(write(sink.as_ref(), &[event("e", None, "{}")]).await[0].is_ok());
    let seen = server.seen();
    // base64("u:hunter2-pw")
    assert_eq!(seen[0].headers["authorization"], "Basic dTpodW50ZXIyLXB3");
    assert_eq!(seen[0].headers["x-extra"], "k3y-value");
    assert_eq!(seen[1].headers["x-api-key"], "k3y-value");

    for text in [&basic, &api_key] {
        let preview = config(text)
            .preview("test")
            .expect("a preview")
            .render(Rendered::Bytes(Cow::Borrowed(b"{}")), &event("e", None, "{}"))
            .expect("rendered");
        let shown = preview.to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("k3y"), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
    }
}

#[tokio::test]
async fn a_missing_secret_is_named_without_its_value() {
    let text = "url = \"http://127.0.0.1:9/\"\n[auth]\ntype = \"basic\"\nusername = \"u\"\n\
                password = { env = \"WEIR_HTTP_SINK_TEST_NO_SUCH_VAR\" }";
    let e = open_config(&config(text)).await.err().expect("refused");
    assert_eq!(
        e.message,
        "auth.password: environment variable WEIR_HTTP_SINK_TEST_NO_SUCH_VAR is not set"
    );
    let (key, e) = config(text).preflight().expect_err("refused");
    assert_eq!(key, "auth.password");
    assert!(e.to_string().contains("WEIR_HTTP_SINK_TEST_NO_SUCH_VAR"), "{e}");
}

/// A token server and API: the API accepts only the latest token issued; `/token` counts
/// fetches and issues `t1`, `t2`, ..., valid for `expires_in`.
struct OAuth {
    server: Server,
    fetches: Arc<AtomicU64>,
}

async fn oauth(expires_in: u64, api_always_401: bool) -> OAuth {
    let fetches = Arc::new(AtomicU64::new(0));
    let issued = fetches.clone();
    let server = Server::start(move |s| {
        if s.target == "/token" {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(s.body.contains("grant_type=client_credentials"), "{}", s.body);
            assert!(s.body.contains("client_secret=s%26cret"), "{}", s.body);
            assert!(s.body.contains("scope=orders%3Awrite"), "{}", s.body);
            return Reply::ok().body(format!(
                r#"{{"access_token":"t{n}","token_type":"Bearer","expires_in":{expires_in}}}"#
            ));
        }
        let latest = format!("Bearer t{}", issued.load(Ordering::SeqCst));
        match s.headers.get("authorization") {
            Some(v) if v == latest.as_str() && !api_always_401 => Reply::ok(),
            _ => Reply::status(401).body("invalid token"),
        }
    })
    .await;
    OAuth { server, fetches }
}

fn oauth_sink(o: &OAuth, dir: &tempfile::TempDir) -> String {
    let secret = secret_file(dir, "cs", "s&cret");
    format!(
        "url = \"{}\"\n[auth]\ntype = \"oauth2\"\ntoken_url = \"{}\"\nclient_id = \"weir\"\n\
         client_secret = {{ file = \"{secret}\" }}\nscope = \"orders:write\"",
        o.server.url("/api"),
        o.server.url("/token")
    )
}

#[tokio::test]
async fn an_oauth_token_is_fetched_once_and_shared() {
    let dir = tempfile::tempdir().expect("a directory");
    let o = oauth(3600, false).await;
    let sink = open(&oauth_sink(&o, &dir)).await;
    let keys: Vec<String> = (0..6).map(|n| format!("k{n}")).collect();
    let events: Vec<Envelope> = keys.iter().map(|k| event(k, Some(k), "{}")).collect();
    for _ in 0..3 {
        let results = write(sink.as_ref(), &events).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    assert_eq!(o.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expiring_token_is_fetched_again_before_it_expires() {
    let dir = tempfile::tempdir().expect("a directory");
    // Valid 1 s: used for 0.9 s.
    let o = oauth(1, false).await;
    let sink = open(&oauth_sink(&o, &dir)).await;
    assert!(write(sink.as_ref(), &[event("a", None, "{}")]).await[0].is_ok());
    assert!(write(sink.as_ref(), &[event("b", None, "{}")]).await[0].is_ok());
    assert_eq!(o.fetches.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(950)).await;
    assert!(write(sink.as_ref(), &[event("c", None, "{}")]).await[0].is_ok());
    assert_eq!(o.fetches.load(Ordering::SeqCst), 2);
    // No request carried a token the API no longer took.
    assert!(o.server.seen().iter().all(|s| s.target == "/token" || s.body == "{}"));
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_resends() {
    let dir = tempfile::tempdir().expect("a directory");
    let o = oauth(3600, false).await;
    let sink = open(&oauth_sink(&o, &dir)).await;
    assert!(write(sink.as_ref(), &[event("a", None, "{}")]).await[0].is_ok());
    // The server issues a token behind the sink's back: the sink's is now refused.
    o.fetches.fetch_add(1, Ordering::SeqCst);
    assert!(write(sink.as_ref(), &[event("b", None, "{}")]).await[0].is_ok());
    assert_eq!(o.fetches.load(Ordering::SeqCst), 3);
    let api = o.server.seen().iter().filter(|s| s.target == "/api").count();
    assert_eq!(api, 3, "one request, then the refused one and its resend");
}

#[tokio::test]
async fn a_second_401_is_permanent() {
    let dir = tempfile::tempdir().expect("a directory");
    let o = oauth(3600, true).await;
    let sink = open(&oauth_sink(&o, &dir)).await;
    let e = write_one_err(sink.as_ref(), event("a", None, "{}")).await;
    assert!(!e.retryable, "{e:?}");
    assert!(e.message.starts_with("HTTP 401 Unauthorized from POST"), "{}", e.message);
    assert!(!e.message.contains("s&cret") && !e.message.contains("Bearer"), "{}", e.message);
    assert_eq!(o.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retryable() {
    let server = Server::start(|s| match s.target.as_str() {
        "/token" => Reply::status(503).body("maintenance"),
        _ => Reply::ok(),
    })
    .await;
    let text = format!(
        "url = \"{}\"\n[auth]\ntype = \"oauth2\"\ntoken_url = \"{}\"\nclient_id = \"weir\"\n\
         client_secret = {{ env = \"PATH\" }}",
        server.url("/api"),
        server.url("/token")
    );
    let sink = open(&text).await;
    let e = write_one_err(sink.as_ref(), event("a", None, "{}")).await;
    assert!(e.retryable, "{e:?}");
    assert_eq!(
        e.message,
        format!(
            "oauth2 token from {}: HTTP 503 Service Unavailable from POST {}: maintenance",
            server.url("/token"),
            server.url("/token")
        )
    );
    assert!(server.seen().iter().all(|s| s.target == "/token"));
}
