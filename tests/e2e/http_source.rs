//! The HTTP source on the real binary: concurrent producers each get every event delivered once
//! in key order, a kill -9 after a 2xx loses nothing, credentials and signatures are checked,
//! limits and back-pressure answer 413/429/503 with `Retry-After`, a full disk under the log
//! refuses requests without losing any, HTTPS works, and malformed bodies are refused or kept as
//! text by `format`.

use crate::delivery::SmallDisk;
use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// An answer: status, headers (lower-cased names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

fn request_bytes(method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a new connection; `None` if nothing answers (weir down or killed).
fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(&request_bytes(method, path, headers, body))
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    parse_answer(&raw)
}

fn post(port: u16, headers: &[(&str, String)], body: &str) -> Option<Answer> {
    send(port, "POST", "/events", headers, body.as_bytes())
}

fn wait_listening(s: &Scratch, port: u16) {
    wait_logged(s, "the http source listening", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

fn event(k: &str, seq: usize) -> String {
    format!(
        "{{\"k\":\"{k}\",\"seq\":{seq},\"pad\":\"{}\"}}",
        "x".repeat(seq % 40)
    )
}

/// A body of the events `from..to` of producer `k`: one value, an array or JSON lines.
fn body_of(k: &str, from: usize, to: usize, shape: usize) -> String {
    let events: Vec<String> = (from..to).map(|n| event(k, n)).collect();
    match shape % 3 {
        0 if to - from == 1 => events[0].clone(),
        1 => format!("[{}]", events.join(",")),
        _ => events.join("\n") + "\n",
    }
}

fn pipeline(name: &str, port: u16, source_extra: &str, rest: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\ncheckpoint_interval_ms = 20\n\
         [source]\ntype = \"http\"\nlisten = \"127.0.0.1:{port}\"\n{source_extra}\n\
         {rest}"
    )
}

const FILE_SINK: &str = "[ordering]\nlanes = 4\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n";

/// Per key, the seqs in the order of their first appearance, and the repeats and torn lines.
fn first_seen(out: &Path) -> (BTreeMap<String, Vec<u64>>, usize, usize) {
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let (mut repeats, mut torn) = (0, 0);
    for line in lines(out) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            torn += 1;
            continue;
        };
        let (Some(k), Some(seq)) = (v["k"].as_str(), v["seq"].as_u64()) else {
            panic!("not an event of this test: {line}");
        };
        if seen.insert((k.to_owned(), seq)) {
            by_key.entry(k.to_owned()).or_default().push(seq);
        } else {
            repeats += 1;
        }
    }
    (by_key, repeats, torn)
}

fn stop(child: std::process::Child, s: &Scratch) {
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0), "{}", s.log());
}

#[test]
fn http_source_concurrent_producers_deliver_each_event_once_in_key_order() {
    let s = Scratch::new();
    let port = free_port();
    let p = s.write(
        "p.toml",
        pipeline(
            "hs-many",
            port,
            "key = \"<$.data.k>\"\nformat = \"json\"",
            FILE_SINK,
        ),
    );
    let child = s.spawn_logged(&p);
    wait_listening(&s, port);
    const PRODUCERS: usize = 8;
    const EACH: usize = 2_500;
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            std::thread::spawn(move || {
                let k = format!("p{i}");
                let (mut at, mut shape) = (0, i);
                while at < EACH {
                    let n = [1, 10, 25][shape % 3].min(EACH - at);
                    let a = post(port, &[], &body_of(&k, at, at + n, shape)).expect("an answer");
                    assert_eq!(a.status, 200, "{a:?}");
                    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
                    assert_eq!(v["accepted"], n, "{a:?}");
                    at += n;
                    shape += 1;
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let out = s.path("out.jsonl");
    wait_logged(&s, "every event delivered", || {
        lines(&out).len() >= PRODUCERS * EACH
    });
    stop(child, &s);
    let (by_key, repeats, torn) = first_seen(&out);
    assert_eq!((repeats, torn), (0, 0), "each event once");
    assert_eq!(by_key.len(), PRODUCERS);
    for (k, seqs) in by_key {
        assert_eq!(
            seqs,
            (0..EACH as u64).collect::<Vec<_>>(),
            "key {k} in order"
        );
    }
}

#[test]
fn http_source_kill_9_after_2xx_loses_nothing_and_the_log_shrinks() {
    let s = Scratch::new();
    let port = free_port();
    let p = s.write(
        "p.toml",
        pipeline(
            "hs-kill",
            port,
            "key = \"<$.data.k>\"\nsegment_bytes = 4096\nmax_in_flight = 2000",
            FILE_SINK,
        ),
    );
    const PRODUCERS: usize = 4;
    const EACH: usize = 1_500;
    let acked = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let k = format!("k{i}");
                let (mut at, mut shape) = (0, i);
                while at < EACH {
                    let n = [1, 5, 12][shape % 3].min(EACH - at);
                    let body = body_of(&k, at, at + n, shape);
                    // The same request again until it is answered 2xx: weir may be down.
                    loop {
                        match post(port, &[], &body) {
                            Some(a) if a.status == 200 => break,
                            _ => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                    acked.fetch_add(n, Relaxed);
                    at += n;
                    shape += 1;
                }
            })
        })
        .collect();
    let mut kills = 0;
    for round in 1..=4 {
        let mut child = s.spawn_logged(&p);
        let before = acked.load(Relaxed);
        wait_logged(&s, "more events acknowledged", || {
            acked.load(Relaxed) >= (before + 700).min(PRODUCERS * EACH)
        });
        if acked.load(Relaxed) >= PRODUCERS * EACH {
            signal(&child, libc::SIGTERM);
            wait_exit(child);
            break;
        }
        child.kill().unwrap(); // SIGKILL, right after some 2xx answers
        child.wait().unwrap();
        kills = round;
    }
    let child = s.spawn_logged(&p);
    for p in producers {
        p.join().unwrap();
    }
    assert!(kills >= 3, "killed {kills} times only");
    let out = s.path("out.jsonl");
    let complete = || {
        let (by_key, _, _) = first_seen(&out);
        by_key.values().map(Vec::len).sum::<usize>() == PRODUCERS * EACH
    };
    wait_logged(&s, "every acknowledged event delivered", complete);
    let wal = s.state_dir().join("hs-kill").join("http-wal");
    let segments = || std::fs::read_dir(&wal).map(|d| d.count()).unwrap_or(0);
    wait_logged(&s, "finished segments removed", || segments() <= 2);
    // Segments are named by their first record's offset: the log's beginning is gone.
    let first: u64 = std::fs::read_dir(&wal)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".wal")?
                .parse()
                .ok()
        })
        .min()
        .unwrap();
    assert!(first > 500_000, "the log still begins at {first}");
    stop(child, &s);
    let (by_key, repeats, torn) = first_seen(&out);
    for (k, seqs) in &by_key {
        assert_eq!(
            *seqs,
            (0..EACH as u64).collect::<Vec<_>>(),
            "key {k}: every event, first seen in order"
        );
    }
    assert!(torn <= kills, "{torn} torn lines for {kills} kills");
    // At least once: only what was not checkpointed when killed (at most max_in_flight per
    // kill), plus requests written but not answered before a kill (sent again by producers).
    assert!(
        repeats <= kills * 2_000,
        "{repeats} repeats for {kills} kills"
    );
    eprintln!("{kills} kills, {repeats} repeats, {torn} torn lines");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sign(secret: &[u8], content: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    hex(aws_lc_rs::hmac::sign(&key, content).as_ref())
}

#[test]
fn http_source_refuses_bad_tokens_and_signatures_with_an_empty_401() {
    let s = Scratch::new();
    std::fs::write(s.path("token"), "s3cret-token\n").unwrap();
    let secret = "gh-secret";
    let ports = [free_port(), free_port(), free_port()];
    let auths = [
        "[source.auth]\ntype = \"bearer\"\ntokens = [{ env = \"HS_OTHER_TOKEN\" }, { file = \"token\" }]\n".to_owned(),
        "[source.auth]\ntype = \"hmac\"\npreset = \"github\"\nsecret = { env = \"HS_GH_SECRET\" }\n".to_owned(),
        "[source.auth]\ntype = \"hmac\"\nheader = \"X-Signature\"\nsecret = { env = \"HS_GH_SECRET\" }\ntimestamp_header = \"X-Timestamp\"\ntolerance_s = 60\n".to_owned(),
    ];
    let mut children = Vec::new();
    for (i, (port, auth)) in ports.iter().zip(&auths).enumerate() {
        let rest = format!("[sink]\ntype = \"file\"\npath = \"out{i}.jsonl\"\n{auth}");
        let p = s.write(
            &format!("p{i}.toml"),
            pipeline(
                &format!("hs-auth{i}"),
                *port,
                "headers = [\"X-Request-Id\"]",
                &rest,
            ),
        );
        let mut cmd = s.weir_run(&p);
        cmd.env("HS_OTHER_TOKEN", "another-token")
            .env("HS_GH_SECRET", secret)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(s.path(&format!("weir{i}.log"))).unwrap());
        children.push(cmd.spawn().unwrap());
    }
    for port in ports {
        wait_listening(&s, port);
    }
    let body = event("a", 1);
    let unauthorized = |a: Option<Answer>| {
        let a = a.expect("an answer");
        assert_eq!((a.status, a.body.as_str()), (401, ""), "{a:?}");
    };
    // Bearer.
    unauthorized(post(ports[0], &[], &body));
    unauthorized(post(
        ports[0],
        &[("authorization", "Bearer wrong".into())],
        &body,
    ));
    unauthorized(post(
        ports[0],
        &[("authorization", "Basic s3cret-token".into())],
        &body,
    ));
    for token in ["s3cret-token", "another-token"] {
        let a = post(
            ports[0],
            &[
                ("authorization", format!("Bearer {token}")),
                ("x-request-id", "r1".into()),
            ],
            &body,
        )
        .unwrap();
        assert_eq!(a.status, 200, "{a:?}");
    }
    // GitHub's preset.
    let good = format!("sha256={}", sign(secret.as_bytes(), body.as_bytes()));
    let bad = format!("sha256={}", sign(b"not-the-secret", body.as_bytes()));
    unauthorized(post(ports[1], &[], &body));
    unauthorized(post(ports[1], &[("x-hub-signature-256", bad)], &body));
    unauthorized(post(
        ports[1],
        &[("x-hub-signature-256", good.clone())],
        &event("a", 2),
    ));
    assert_eq!(
        post(ports[1], &[("x-hub-signature-256", good)], &body)
            .unwrap()
            .status,
        200
    );
    // A signature over a timestamp and the body, within the tolerance.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = |ts: u64| {
        vec![
            ("x-timestamp", ts.to_string()),
            (
                "x-signature",
                sign(secret.as_bytes(), format!("{ts}.{body}").as_bytes()),
            ),
        ]
    };
    unauthorized(post(ports[2], &signed(now - 600), &body));
    unauthorized(post(ports[2], &signed(now)[1..], &body));
    assert_eq!(post(ports[2], &signed(now), &body).unwrap().status, 200);

    for (i, want) in [2usize, 1, 1].into_iter().enumerate() {
        let out = s.path(&format!("out{i}.jsonl"));
        wait_for("the accepted events", || lines(&out).len() >= want);
    }
    for child in children {
        signal(&child, libc::SIGTERM);
        assert_eq!(wait_exit(child).0, Some(0));
    }
    for (i, want) in [2usize, 1, 1].into_iter().enumerate() {
        assert_eq!(
            lines(&s.path(&format!("out{i}.jsonl"))).len(),
            want,
            "only the accepted requests' events"
        );
    }
}

#[test]
fn http_source_limits_answer_413_404_405_429_and_503_with_retry_after() {
    let s = Scratch::new();
    let disk = SmallDisk::mount(s.path("disk"), 64);
    let out = disk.dir.join("out.jsonl");
    std::fs::write(&out, "").unwrap();
    // The sink's disk full: events stay in flight (retried, the lane blocked).
    let filler = disk.dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[b'x'; 4096]).is_ok() {}
    drop(f);
    let port = free_port();
    let rest = format!(
        "[retry]\nbackoff_ms = [5, 20]\non_failure = \"block\"\n[sink]\ntype = \"file\"\npath = {out:?}\n"
    );
    let p = s.write(
        "p.toml",
        pipeline(
            "hs-limits",
            port,
            "max_body_bytes = 3500\nmax_in_flight = 3\nsegment_bytes = 4096\nmax_log_bytes = 8192\npaths = [\"/events\", \"/hooks/a\"]",
            &rest,
        ),
    );
    let child = s.spawn_logged(&p);
    wait_listening(&s, port);
    let a = post(port, &[], &format!("{{\"big\":\"{}\"}}", "y".repeat(4000))).unwrap();
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(send(port, "POST", "/nope", &[], b"{}").unwrap().status, 404);
    let a = send(port, "GET", "/events", &[], b"").unwrap();
    assert_eq!(
        (a.status, a.headers.get("allow").map(String::as_str)),
        (405, Some("POST"))
    );
    // Two large events fill most of the log's quota...
    let large = |n: usize| {
        format!(
            "{{\"k\":\"a\",\"seq\":{n},\"pad\":\"{}\"}}",
            "z".repeat(2900)
        )
    };
    for n in 0..2 {
        assert_eq!(
            send(port, "POST", "/hooks/a", &[], large(n).as_bytes())
                .unwrap()
                .status,
            200
        );
    }
    let a = post(port, &[], &large(9)).unwrap();
    assert_eq!(a.status, 503, "the log's quota: {a:?}");
    assert_eq!(a.headers.get("retry-after").map(String::as_str), Some("1"));
    // ... and a small one makes three events in flight.
    assert_eq!(post(port, &[], &event("a", 2)).unwrap().status, 200);
    let a = post(port, &[], &event("a", 3)).unwrap();
    assert_eq!(a.status, 429, "max_in_flight: {a:?}");
    assert_eq!(a.headers.get("retry-after").map(String::as_str), Some("1"));
    // Room on the sink's disk: the events finish, and requests are taken again.
    std::fs::remove_file(&filler).unwrap();
    wait_logged(&s, "the waiting events delivered", || {
        lines(&out).len() >= 3
    });
    let mut a = None;
    wait_logged(&s, "requests taken again", || {
        a = post(port, &[], &event("a", 3));
        a.as_ref().is_some_and(|a| a.status == 200)
    });
    wait_logged(&s, "the last event delivered", || lines(&out).len() >= 4);
    stop(child, &s);
    let seqs: Vec<u64> = json_lines(&out)
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
}

#[test]
fn http_source_full_disk_under_the_log_answers_503_and_loses_nothing() {
    let s = Scratch::new();
    let disk = SmallDisk::mount(s.path("state"), 256);
    let port = free_port();
    let p = s.write(
        "p.toml",
        pipeline(
            "hs-disk",
            port,
            "segment_bytes = 4096",
            "[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
        ),
    );
    let child = s.spawn_logged(&p);
    wait_listening(&s, port);
    assert_eq!(post(port, &[], &event("a", 0)).unwrap().status, 200);
    let filler = disk.dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[b'x'; 512]).is_ok() {}
    drop(f);
    let mut refused = 0;
    // Each request larger than the page left in the segment's last page: tmpfs takes whole pages.
    for n in 1..4 {
        let a = post(
            port,
            &[],
            &format!(
                "[{}]",
                (0..150)
                    .map(|_| event("b", n))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        )
        .unwrap();
        assert_eq!(a.status, 503, "{a:?}");
        assert_eq!(a.headers.get("retry-after").map(String::as_str), Some("1"));
        refused += 1;
    }
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(post(port, &[], &event("a", 1)).unwrap().status, 200);
    let out = s.path("out.jsonl");
    wait_logged(&s, "the accepted events delivered", || {
        lines(&out).len() >= 2
    });
    stop(child, &s);
    let seqs: Vec<(String, u64)> = json_lines(&out)
        .iter()
        .map(|v| {
            (
                v["k"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seqs,
        [("a".into(), 0), ("a".into(), 1)],
        "{refused} refused requests left nothing"
    );
    assert!(s.log().contains("cannot write to the log"), "{}", s.log());
}

#[test]
fn http_source_serves_https() {
    use rcgen::{CertificateParams, KeyPair};
    use rustls::pki_types::ServerName;
    let s = Scratch::new();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    s.write("cert.pem", cert.pem());
    s.write("key.pem", key.serialize_pem());
    let port = free_port();
    let p = s.write(
        "p.toml",
        pipeline(
            "hs-tls",
            port,
            "",
            "[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[source.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
        ),
    );
    let child = s.spawn_logged(&p);
    wait_listening(&s, port);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(&request_bytes(
        "POST",
        "/events",
        &[],
        event("t", 7).as_bytes(),
    ))
    .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let a = parse_answer(&raw).expect("an answer over TLS");
    assert_eq!(a.status, 200, "{a:?}");
    // Plain HTTP on the TLS port gets no answer.
    assert!(post(port, &[], &event("t", 8)).is_none_or(|a| a.status != 200));
    let out = s.path("out.jsonl");
    wait_logged(&s, "the event delivered", || !lines(&out).is_empty());
    stop(child, &s);
    assert_eq!(json_lines(&out)[0]["seq"], 7);
}

#[test]
fn http_source_malformed_json_is_refused_with_json_and_kept_as_text_with_auto() {
    let s = Scratch::new();
    let (strict, auto) = (free_port(), free_port());
    let envelope = "[sink]\ntype = \"file\"\npath = \"OUT\"\nencoding = \"envelope\"\n";
    let p1 = s.write(
        "p1.toml",
        pipeline(
            "hs-json",
            strict,
            "format = \"json\"\nheaders = [\"X-Request-Id\"]",
            &envelope.replace("OUT", "out1.jsonl"),
        ),
    );
    let p2 = s.write(
        "p2.toml",
        pipeline("hs-auto", auto, "", &envelope.replace("OUT", "out2.jsonl")),
    );
    let c1 = s.spawn_logged(&p1);
    let c2 = s.spawn_logged(&p2);
    wait_listening(&s, strict);
    wait_listening(&s, auto);
    let a = post(strict, &[], "{\"a\":1}\n{oops\n").unwrap();
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("line 2: not valid JSON"), "{a:?}");
    let a = post(
        strict,
        &[
            ("x-request-id", "req-1".into()),
            ("authorization", "Bearer x".into()),
        ],
        "{\"a\":1}",
    )
    .unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        post(auto, &[], "{\"a\":1}\nplain text\n").unwrap().status,
        200
    );
    // JSON no stage could read (deeper than weir's limit): taken, and dead-lettered with why.
    let deep = format!("{}1{}", "[".repeat(110), "]".repeat(110));
    assert_eq!(post(strict, &[], &deep).unwrap().status, 200);
    let (o1, o2) = (s.path("out1.jsonl"), s.path("out2.jsonl"));
    let dlq = s.state_dir().join("hs-json/dlq.jsonl");
    wait_logged(&s, "the events delivered", || {
        lines(&o1).len() == 1 && lines(&o2).len() == 2 && lines(&dlq).len() == 1
    });
    assert!(
        lines(&dlq)[0].contains("nested deeper than"),
        "{:?}",
        lines(&dlq)
    );
    let admin = admin_address(&s.log()).expect("an admin address");
    let (_, metrics) = admin_get(&admin, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("weir_http_requests_total{") && l.contains("status=\"200\"")),
        "{metrics}"
    );
    assert!(metrics.contains("weir_http_log_bytes{"), "{metrics}");
    stop(c1, &s);
    stop(c2, &s);
    let e = &json_lines(&o1)[0];
    assert_eq!(e["source"], "http");
    assert_eq!(e["data"], serde_json::json!({"a": 1}));
    assert_eq!(e["meta"]["path"], "/events");
    assert_eq!(
        e["meta"]["headers"],
        serde_json::json!({"x-request-id": "req-1"}),
        "chosen headers only"
    );
    let texts = json_lines(&o2);
    assert_eq!(texts[1]["data"], "plain text");
    assert_ne!(texts[0]["id"], texts[1]["id"]);
}

#[test]
fn http_source_dry_run_reads_the_input_file() {
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        pipeline(
            "hs-dry",
            free_port(),
            "key = \"<$.data.k>\"",
            "[sink]\ntype = \"stdout\"\n",
        ),
    );
    s.write(
        "in.jsonl",
        format!("{}\n{}\n", event("a", 1), event("b", 2)),
    );
    let out = weir()
        .arg("dry-run")
        .arg(&p)
        .arg("--input")
        .arg("in.jsonl")
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(r#"\"seq\":1"#) && text.contains(r#"\"seq\":2"#),
        "{text}"
    );
}
