//! PostgreSQL tables against the machine's server (127.0.0.1:5432, user postgres, database
//! test, trust auth), in a schema of this test's own, dropped at the end.

use super::super::config::{Backend, TableConfig, TableLimits};
use super::super::{TableError, Tables};
use crate::http_client::Secret;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECTION: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

/// A schema for one test, made empty, and dropped by [`Schema::drop_now`].
struct Schema {
    name: String,
    client: tokio_postgres::Client,
}

impl Schema {
    async fn new(test: &str) -> Schema {
        let (client, connection) = tokio_postgres::connect(CONNECTION, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (the tests need it running)");
        tokio::spawn(connection);
        let name = format!("weir_tables_{test}_{}", std::process::id());
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name};"
            ))
            .await
            .expect("CREATE SCHEMA");
        Schema { name, client }
    }

    async fn run(&self, sql: &str) {
        let sql = sql.replace("$schema", &self.name);
        self.client.batch_execute(&sql).await.expect(&sql);
    }

    async fn drop_now(self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await;
    }
}

fn table(schema: &Schema, query: &str, limits: TableLimits) -> TableConfig {
    TableConfig {
        name: "t".to_owned(),
        backend: Backend::Postgres {
            connection: CONNECTION.to_owned(),
            query: query.replace("$schema", &schema.name),
            pool_size: 4,
            password: None,
        },
        limits,
    }
}

fn no_cache() -> TableLimits {
    TableLimits {
        cache_ttl: Duration::ZERO,
        ..TableLimits::default()
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn keys(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

fn parsed(answer: &Result<Option<String>, TableError>) -> Option<Value> {
    match answer {
        Ok(row) => row.as_ref().map(|t| serde_json::from_str(t).expect("JSON")),
        Err(e) => panic!("expected an answer, got {e:?}"),
    }
}

#[tokio::test]
async fn rows_are_objects_of_their_columns_and_no_row_is_none() {
    let schema = Schema::new("types").await;
    schema
        .run(
            "CREATE TYPE $schema.level AS ENUM ('low', 'high');
             CREATE TABLE $schema.customers (
                 id int PRIMARY KEY, tier text, region varchar(8), code char(3), small int2,
                 big int8, score float8, ratio float4, balance numeric(20, 4), active bool,
                 meta jsonb, doc json, since timestamptz, local timestamp, day date, at time,
                 uid uuid, level $schema.level, nothing text, odd float8);
             INSERT INTO $schema.customers VALUES (
                 7, 'gold', 'eu', 'abc', -2, 9007199254740993, 1.25, 0.1,
                 12345678901234.5678, true, '{\"a\": [1, 2]}', '{\"b\": null}',
                 '2024-05-01 12:00:00.5+02', '2024-05-01 12:00:00', '2024-05-01', '08:30:00',
                 '00112233-4455-6677-8899-aabbccddeeff', 'high', NULL, 'NaN');",
        )
        .await;
    let config = table(
        &schema,
        "SELECT * FROM $schema.customers WHERE id = $1",
        no_cache(),
    );
    let tables = Tables::open(&[config], "test").unwrap();
    let answers = tables
        .get_many("t", keys(&["7", "8", "not-a-number"]), soon())
        .await;
    let reached = tables.reach().await;
    schema.drop_now().await;
    // The numeric is checked in the text below, with every digit.
    let mut row = parsed(&answers[0]).expect("row 7");
    row.as_object_mut().and_then(|o| o.remove("balance"));
    assert_eq!(
        row,
        json!({
            "id": 7, "tier": "gold", "region": "eu", "code": "abc", "small": -2,
            "big": 9007199254740993_i64, "score": 1.25, "ratio": 0.1,
            "active": true, "meta": {"a": [1, 2]},
            "doc": {"b": null}, "since": "2024-05-01T10:00:00.500Z",
            "local": "2024-05-01T12:00:00", "day": "2024-05-01", "at": "08:30:00",
            "uid": "00112233-4455-6677-8899-aabbccddeeff", "level": "high",
            "nothing": null, "odd": "NaN"
        })
    );
    // Every digit of the numeric, as written.
    let text = answers[0].as_ref().unwrap().as_ref().unwrap();
    assert!(text.contains("\"balance\":12345678901234.5678"), "{text}");
    assert_eq!(parsed(&answers[1]), None);
    // A key that cannot be an int has no row.
    assert_eq!(parsed(&answers[2]), None);
    assert_eq!(reached, [("t".to_owned(), Ok(()))]);
}

#[tokio::test]
async fn the_first_row_answers_and_text_keys_go_as_text() {
    let schema = Schema::new("first").await;
    schema
        .run(
            "CREATE TABLE $schema.visits (customer text, n int);
             INSERT INTO $schema.visits VALUES ('c1', 1), ('c1', 2), ('c2', 3);",
        )
        .await;
    let query = "SELECT n FROM $schema.visits WHERE customer = $1 ORDER BY n DESC";
    let tables = Tables::open(&[table(&schema, query, no_cache())], "test").unwrap();
    let answers = tables
        .get_many("t", keys(&["c1", "c2", "c3"]), soon())
        .await;
    schema.drop_now().await;
    let got: Vec<Option<Value>> = answers.iter().map(parsed).collect();
    assert_eq!(got, [Some(json!({"n": 2})), Some(json!({"n": 3})), None]);
}

#[tokio::test]
async fn a_column_weir_cannot_read_is_refused_with_the_cast_to_write() {
    let schema = Schema::new("unsupported").await;
    let query = "SELECT '127.0.0.1'::inet AS ip WHERE $1::text IS NOT NULL";
    let tables = Tables::open(&[table(&schema, query, no_cache())], "test").unwrap();
    let answers = tables.get_many("t", keys(&["a"]), soon()).await;
    schema.drop_now().await;
    let Err(TableError::Unknown(why)) = &answers[0] else {
        panic!("expected Unknown, got {answers:?}");
    };
    assert!(
        why.contains("column \"ip\" is of type inet") && why.contains("ip::text"),
        "{why}"
    );
}

#[tokio::test]
async fn a_query_error_is_unavailable_with_the_servers_message() {
    let schema = Schema::new("missing").await;
    let query = "SELECT * FROM $schema.nowhere WHERE id = $1";
    let tables = Tables::open(&[table(&schema, query, no_cache())], "test").unwrap();
    let answers = tables.get_many("t", keys(&["a"]), soon()).await;
    schema.drop_now().await;
    let Err(TableError::Unavailable(why)) = &answers[0] else {
        panic!("expected Unavailable, got {answers:?}");
    };
    assert!(why.contains("nowhere\" does not exist"), "{why}");
}

#[tokio::test]
async fn a_server_that_is_down_is_unavailable_and_its_password_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hunter2-do-not-show";
    let file = dir.path().join("pg-password");
    std::fs::write(&file, secret).unwrap();
    let config = TableConfig {
        name: "t".to_owned(),
        backend: Backend::Postgres {
            connection: "host=127.0.0.1 port=1 user=postgres dbname=test".to_owned(),
            query: "SELECT 1 AS one WHERE $1::text IS NOT NULL".to_owned(),
            pool_size: 2,
            password: Some(Secret::File(file)),
        },
        limits: TableLimits::default(),
    };
    let tables = Tables::open(&[config], "test").unwrap();
    let answers = tables.get_many("t", keys(&["a", "b"]), soon()).await;
    for answer in &answers {
        let Err(TableError::Unavailable(why)) = answer else {
            panic!("expected Unavailable, got {answer:?}");
        };
        assert!(
            why.starts_with("table t: postgres 127.0.0.1:1/test: "),
            "{why}"
        );
        assert!(!why.contains(secret), "{why}");
    }
}

#[tokio::test]
async fn no_more_queries_at_once_than_max_concurrency() {
    let schema = Schema::new("concurrency").await;
    // Each query sleeps, then counts the queries like it running at that moment (itself
    // included): with max_concurrency = 2 that is never more than 2, though the pool has 4.
    let query = "SELECT (SELECT count(*) FROM pg_stat_activity
                         WHERE state = 'active' AND query LIKE '%weir_probe_$schema%')::int AS running
                 FROM pg_sleep(0.05) WHERE $1::text IS NOT NULL /* weir_probe_$schema */";
    let limits = TableLimits {
        max_concurrency: 2,
        ..no_cache()
    };
    let tables = Tables::open(&[table(&schema, query, limits)], "test").unwrap();
    let tables = Arc::clone(&tables);
    let all: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let answers = tables.get_many("t", all, soon()).await;
    schema.drop_now().await;
    let most = answers
        .iter()
        .map(|a| {
            parsed(a)
                .and_then(|row| row["running"].as_i64())
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    assert!((1..=2).contains(&most), "{most} queries ran at once");
}
