//! The GET cache (a hit never reaches the server) and the grant's secret headers (seen by the
//! server, never by the plugin, never in Debug output, errors or logs).

use super::super::HttpSetupError;
use super::*;

#[tokio::test]
async fn cached_answers_never_reach_the_server() {
    let (addr, seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/\"]\ncache = {{ ttl_s = 60, max_entries = 10 }}"
    ));
    let url = format!("http://{addr}/rates/USD");
    for _ in 0..3 {
        assert_eq!(
            send(&access, get(&url)).await.map(|r| r.status).ok(),
            Some(200)
        );
    }
    let answers = access.send_all(vec![get(&url); 5], far()).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|r| r.status == 200))
    );
    assert_eq!(seen.count(), 1);

    // Other request headers are another entry.
    let with_header = Request {
        headers: vec![("accept".into(), "application/json".into())],
        ..get(&url)
    };
    assert!(send(&access, with_header.clone()).await.is_ok());
    assert!(send(&access, with_header).await.is_ok());
    assert_eq!(seen.count(), 2);

    // Only 2xx answers are kept.
    let missing = format!("http://{addr}/rates/XXX");
    for _ in 0..2 {
        assert_eq!(
            send(&access, get(&missing)).await.map(|r| r.status).ok(),
            Some(404)
        );
    }
    assert_eq!(seen.count(), 4);
}

#[tokio::test]
async fn without_a_cache_every_request_is_sent() {
    let (addr, seen) = server().await;
    let access = access(&format!("allow = [\"http://{addr}/\"]"));
    let url = format!("http://{addr}/rates/USD");
    access.send_all(vec![get(&url); 3], far()).await;
    assert_eq!(seen.count(), 3);
}

const SECRET: &str = "k3y-0f-the-test-do-not-log";

#[tokio::test]
async fn secret_headers_reach_the_server_and_nothing_else() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, format!("{SECRET}\n")).expect("written");
    let (addr, seen) = server().await;
    let refused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let refused_addr = refused.local_addr().expect("an address");
    drop(refused);

    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let access = access(&format!(
        "allow = [\"http://{addr}/rates/\", \"http://{refused_addr}/\"]\n\
         headers = {{ \"x-api-key\" = {{ file = \"{}\" }} }}",
        key_file.display()
    ));
    // The plugin's own header of the same name is replaced, not sent beside it.
    let forged = Request {
        headers: vec![("X-Api-Key".into(), "forged".into())],
        ..get(&format!("http://{addr}/rates/USD"))
    };
    let answer = send(&access, forged).await.expect("an answer");
    assert_eq!(answer.status, 200);
    let headers = seen.headers.lock().expect("not poisoned").clone();
    let sent: Vec<_> = headers[0].get_all("x-api-key").iter().collect();
    assert_eq!(sent, [SECRET]);

    let mut shown = format!("{access:?}");
    for url in [
        format!("http://{addr}/admin"),
        format!("http://{refused_addr}/x"),
    ] {
        shown.push_str(&format!("{:?}", send(&access, get(&url)).await));
    }
    shown.push_str(&logs.text());
    assert!(shown.contains("may not GET"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn a_missing_secret_or_ca_file_stops_set_up_without_showing_values() {
    let var = "WEIR_TEST_HTTP_GRANT_UNSET_VARIABLE";
    let text = format!("allow = [\"http://h/\"]\nheaders = {{ k = {{ env = \"{var}\" }} }}");
    let err = HttpAccess::new(grant(&text), "test", "enrich").expect_err("no such variable");
    assert!(matches!(err, HttpSetupError::SecretEnv { .. }), "{err}");
    assert!(err.to_string().contains(var), "{err}");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = format!(
        "allow = [\"http://h/\"]\nheaders = {{ k = {{ file = \"{}\" }} }}",
        dir.path().join("absent").display()
    );
    let err = HttpAccess::new(grant(&text), "test", "enrich").expect_err("no such file");
    assert!(matches!(err, HttpSetupError::SecretFile { .. }), "{err}");

    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").expect("written");
    let text = format!("allow = [\"https://h/\"]\nca_file = \"{}\"", ca.display());
    let err = HttpAccess::new(grant(&text), "test", "enrich").expect_err("no certificate");
    assert!(matches!(err, HttpSetupError::CaFile { .. }), "{err}");
}

/// Log lines written while a test runs.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}
