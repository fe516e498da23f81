//! Tables against the real thing: the machine's Redis (127.0.0.1:6379, keys under a prefix of
//! this test process, deleted at the end), file tables through [`Tables`], backends that are
//! down (a port nothing listens on) or never answer (a listener of the test's own), the cache,
//! and the bound on backend calls.

use super::config::{Backend, FileFormat, RedisCommand, TableConfig, TableLimits};
use super::limit::CallLimit;
use super::{TableError, Tables};
use crate::http_client::Secret;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const REDIS: &str = "redis://127.0.0.1:6379/0";

/// A key prefix no other test (or run) shares.
fn prefix(test: &str) -> String {
    format!("weir-test-tables:{}:{test}:", std::process::id())
}

fn redis_table(
    name: &str,
    url: &str,
    prefix: &str,
    command: RedisCommand,
    ttl_s: u64,
) -> TableConfig {
    TableConfig {
        name: name.to_owned(),
        backend: Backend::Redis {
            url: url.to_owned(),
            key_prefix: prefix.to_owned(),
            command,
            password: None,
        },
        limits: TableLimits {
            cache_ttl: Duration::from_secs(ttl_s),
            ..TableLimits::default()
        },
    }
}

fn csv_table(name: &str, path: &std::path::Path) -> TableConfig {
    TableConfig {
        name: name.to_owned(),
        backend: Backend::File {
            path: path.to_owned(),
            key: "id".to_owned(),
            format: FileFormat::Csv,
        },
        limits: TableLimits::default(),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379 (the tests need it running)")
}

/// Deletes every key under `prefix`.
async fn clean(prefix: &str) {
    let mut conn = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

async fn set(key: &str, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut redis().await)
        .await
        .expect("SET");
}

fn rows(answers: Vec<Result<Option<String>, TableError>>) -> Vec<Option<Value>> {
    answers
        .into_iter()
        .map(|a| {
            a.expect("an answer")
                .map(|text| serde_json::from_str(&text).expect("answers are JSON"))
        })
        .collect()
}

fn keys(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test]
async fn redis_get_answers_json_as_it_is_and_other_values_as_strings() {
    let p = prefix("get");
    set(&format!("{p}c1"), r#"{"tier":"gold"}"#).await;
    set(&format!("{p}c2"), "plain words").await;
    set(&format!("{p}c3"), "42").await;
    let tables =
        Tables::open(&[redis_table("t", REDIS, &p, RedisCommand::Get, 0)], "test").unwrap();
    let answers = tables
        .get_many("t", keys(&["c1", "c2", "c3", "missing", "c1"]), soon())
        .await;
    clean(&p).await;
    assert_eq!(
        rows(answers),
        [
            Some(json!({"tier": "gold"})),
            Some(json!("plain words")),
            Some(json!(42)),
            None,
            Some(json!({"tier": "gold"})),
        ]
    );
}

#[tokio::test]
async fn redis_hgetall_answers_the_hash_as_an_object() {
    let p = prefix("hgetall");
    let mut conn = redis().await;
    let _: () = redis::cmd("HSET")
        .arg(format!("{p}c1"))
        .arg(&["tier", "gold", "region", "eu"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let tables = Tables::open(
        &[redis_table("t", REDIS, &p, RedisCommand::Hgetall, 0)],
        "test",
    )
    .unwrap();
    let answers = tables.get_many("t", keys(&["c1", "nope"]), soon()).await;
    clean(&p).await;
    assert_eq!(
        rows(answers),
        [Some(json!({"tier": "gold", "region": "eu"})), None]
    );
}

#[tokio::test]
async fn the_cache_answers_until_its_ttl_and_is_off_at_zero() {
    let p = prefix("cache");
    let key = format!("{p}c1");
    set(&key, r#"{"tier":"gold"}"#).await;
    let cached = Tables::open(
        &[redis_table("t", REDIS, &p, RedisCommand::Get, 600)],
        "test",
    )
    .unwrap();
    let uncached =
        Tables::open(&[redis_table("t", REDIS, &p, RedisCommand::Get, 0)], "test").unwrap();
    let first = rows(cached.get_many("t", keys(&["c1", "none"]), soon()).await);
    assert_eq!(first, [Some(json!({"tier": "gold"})), None]);

    set(&key, r#"{"tier":"silver"}"#).await;
    set(&format!("{p}none"), r#"{"tier":"new"}"#).await;
    // Within the TTL the cached answers stand, "no row" included.
    let again = rows(cached.get_many("t", keys(&["c1", "none"]), soon()).await);
    assert_eq!(again, first);
    // With the cache off, Redis answers every time.
    let fresh = rows(uncached.get_many("t", keys(&["c1", "none"]), soon()).await);
    clean(&p).await;
    assert_eq!(
        fresh,
        [
            Some(json!({"tier": "silver"})),
            Some(json!({"tier": "new"}))
        ]
    );
}

#[tokio::test]
async fn a_redis_that_is_down_is_unavailable_and_its_password_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hunter2-do-not-show";
    let file = dir.path().join("redis-password");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let mut config = redis_table("t", "redis://127.0.0.1:1/0", "x:", RedisCommand::Get, 60);
    if let Backend::Redis { password, .. } = &mut config.backend {
        *password = Some(Secret::File(file));
    }
    let tables = Tables::open(&[config], "test").unwrap();
    for _ in 0..2 {
        let answers = tables.get_many("t", keys(&["a", "b"]), soon()).await;
        for answer in answers {
            let Err(TableError::Unavailable(why)) = answer else {
                panic!("expected Unavailable, got {answer:?}");
            };
            assert!(why.starts_with("table t: redis 127.0.0.1:1: "), "{why}");
            assert!(!why.contains(secret), "{why}");
        }
    }
    let reached = tables.reach().await;
    assert_eq!(reached.len(), 1);
    let Err(why) = &reached[0].1 else {
        panic!("expected an error, got {reached:?}");
    };
    // The reason alone: `weir check --connect` names the table itself.
    assert!(why.starts_with("redis 127.0.0.1:1: "), "{why}");
    assert!(!why.contains(secret), "{why}");
}

#[tokio::test]
async fn a_backend_that_never_answers_is_cut_at_the_deadline() {
    // Accepts connections and says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let mut config = redis_table(
        "t",
        &format!("redis://127.0.0.1:{port}/0"),
        "",
        RedisCommand::Get,
        60,
    );
    config.limits.timeout = Duration::from_secs(600);
    let tables = Tables::open(&[config], "test").unwrap();
    // The deadline, not timeout_ms, ends this one.
    let answers = tables
        .get_many(
            "t",
            keys(&["a"]),
            Instant::now() + Duration::from_millis(200),
        )
        .await;
    let Err(TableError::Unavailable(why)) = &answers[0] else {
        panic!("expected Unavailable, got {answers:?}");
    };
    assert!(why.contains("before the plugin's I/O deadline"), "{why}");
    // A deadline already past: not tried at all.
    let answers = tables.get_many("t", keys(&["a"]), Instant::now()).await;
    let Err(TableError::Unavailable(why)) = &answers[0] else {
        panic!("expected Unavailable, got {answers:?}");
    };
    assert!(why.contains("budget for this call is spent"), "{why}");
    held.abort();
}

#[tokio::test]
async fn an_unknown_table_is_named_with_the_tables_there_are() {
    let tables = Tables::open(&[], "test").unwrap();
    let answers = tables.get_many("nope", keys(&["a"]), soon()).await;
    assert_eq!(
        answers,
        [Err(TableError::Unknown(
            "no table \"nope\": the pipeline has no [[table]]".to_owned()
        ))]
    );
}

#[tokio::test]
async fn file_tables_answer_through_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.csv");
    std::fs::write(&path, "id,tier\nc1,gold\n").unwrap();
    let config = csv_table("customers", &path);
    let tables = Tables::open(std::slice::from_ref(&config), "test").unwrap();
    let answers = rows(
        tables
            .get_many("customers", keys(&["c1", "c9"]), soon())
            .await,
    );
    assert_eq!(answers, [Some(json!({"id": "c1", "tier": "gold"})), None]);
    assert_eq!(tables.reach().await, [("customers".to_owned(), Ok(()))]);
    // A file with a mistake stops the pipeline at open, naming the table and the line.
    std::fs::write(&path, "id,tier\nc1\n").unwrap();
    let e = Tables::open(&[config], "test").err().unwrap();
    assert!(
        e.to_string()
            .starts_with(&format!("table customers: {}:2: ", path.display())),
        "{e}"
    );
}

#[tokio::test]
async fn no_more_backend_calls_than_max_concurrency_at_once() {
    let limit = Arc::new(CallLimit::new("t".to_owned(), 3, Duration::from_secs(60)));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let calls = (0..12).map(|_| {
        let (limit, running, most) = (limit.clone(), running.clone(), most.clone());
        tokio::spawn(async move {
            limit
                .run(soon() + Duration::from_secs(60), async {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, TableError>(())
                })
                .await
        })
    });
    for call in futures_util::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 3);
}

/// A stand-in for Redis going away and coming back: a proxy of the test's own in front of the
/// real one, whose connections are cut and which then listens again on the same port.
struct Proxy {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the proxy's port");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                links.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:6379").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Proxy { port, task }
    }

    /// Closes the listener and every connection through it (the JoinSet aborts its tasks).
    async fn stop(self) -> u16 {
        self.task.abort();
        let _ = self.task.await;
        self.port
    }
}

#[tokio::test]
async fn a_redis_that_goes_away_is_unavailable_then_answers_again() {
    let p = prefix("restart");
    set(&format!("{p}c1"), "\"gold\"").await;
    let proxy = Proxy::start(0).await;
    let url = format!("redis://127.0.0.1:{}/0", proxy.port);
    let tables = Tables::open(&[redis_table("t", &url, &p, RedisCommand::Get, 0)], "test").unwrap();
    let ask = || tables.get_many("t", keys(&["c1"]), soon());
    assert_eq!(ask().await, [Ok(Some("\"gold\"".to_owned()))]);

    let port = proxy.stop().await;
    let answer = ask().await;
    assert!(
        matches!(answer[..], [Err(TableError::Unavailable(_))]),
        "{answer:?}"
    );

    let proxy = Proxy::start(port).await;
    // The connection manager reconnects on its own; lookups answer again once it has.
    let give_up = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let answer = ask().await;
        if answer[0].is_ok() || Instant::now() > give_up {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    proxy.stop().await;
    clean(&p).await;
    assert_eq!(answer, [Ok(Some("\"gold\"".to_owned()))]);
}

#[tokio::test]
async fn lookups_are_counted_as_hits_misses_and_errors() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let p = prefix("metrics");
    set(&format!("{p}c1"), "1").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    std::fs::write(&path, "id\na\nb\n").unwrap();
    let file = csv_table("f", &path);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The handles are made at open, under the recorder; they count wherever they are used.
    let tables = metrics::with_local_recorder(&recorder, || {
        Tables::open(
            &[
                redis_table("r", REDIS, &p, RedisCommand::Get, 600),
                redis_table("down", "redis://127.0.0.1:1/0", "", RedisCommand::Get, 600),
                file,
            ],
            "m",
        )
        .unwrap()
    });
    // c1 twice and none once from Redis (misses), then both from the cache (hits).
    tables
        .get_many("r", keys(&["c1", "c1", "none"]), soon())
        .await;
    tables.get_many("r", keys(&["c1", "none"]), soon()).await;
    tables.get_many("down", keys(&["x"]), soon()).await;
    tables.get_many("f", keys(&["a", "z"]), soon()).await;
    clean(&p).await;
    let mut seen = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .filter(|l| l.key() != "pipeline")
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(_) => continue,
        };
        if value != 0.0 {
            seen.insert(
                format!("{}{{{}}}", key.key().name(), labels.join(",")),
                value,
            );
        }
    }
    let want: std::collections::BTreeMap<String, f64> = [
        ("weir_table_lookups_total{table=r,result=miss}", 3.0),
        ("weir_table_lookups_total{table=r,result=hit}", 2.0),
        ("weir_table_lookups_total{table=down,result=error}", 1.0),
        ("weir_table_lookups_total{table=f,result=hit}", 2.0),
        ("weir_table_rows{table=f}", 2.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(seen, want);
}
