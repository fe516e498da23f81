//! Enrichment from lookup tables (#20), end to end: a file table replaced while weir runs,
//! Redis cut off through a proxy the test controls (tcp_proxy.rs) and given back, PostgreSQL,
//! kill -9 during enrichment, the three example languages on one scenario, and a @0.1.0
//! component beside them. Every test counts every event and checks each key's order.

use crate::api_server::ApiServer;
use crate::enrich_support::*;
use crate::plugins::plugin;
use crate::redis_client::{redis, redis_clear};
use crate::support::*;
use crate::tcp_proxy::TcpProxy;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The Rust plugin looking up `customers` only.
fn tier_plugin() -> String {
    plugin_toml(
        &enrich_rs(),
        "{ table = \"customers\" }",
        &["customers"],
        None,
    )
}

/// A key prefix of this test's own on the shared Redis.
fn prefix(test: &str) -> String {
    format!("weir-e2e:{test}:{}:", std::process::id())
}

/// Writes `content` to `name` by renaming a finished file over it, as an editor or a deploy
/// does (the table never sees half a file).
fn replace(s: &Scratch, name: &str, content: &str) {
    let tmp = s.write(&format!("{name}.tmp"), content);
    std::fs::rename(tmp, s.path(name)).unwrap();
}

#[test]
fn a_file_table_replaced_by_a_broken_one_is_kept_then_a_good_one_is_used() {
    let s = Scratch::new();
    s.write("customers.csv", customers_csv("gold"));
    s.write("in.jsonl", events(0..20, 4, usd));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "file-table",
            true,
            "",
            &format!("{}{}", file_table("cache_ttl_s = 0"), tier_plugin()),
        ),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the first events", || Outcome::read(&s).out.len() == 20);

    // A broken file (no key column): refused, the old table kept, the reason logged.
    replace(&s, "customers.csv", "name,tier\nx,y\n");
    wait_logged(&s, "the refusal logged", || {
        s.log()
            .lines()
            .any(|l| l.contains("customers.csv") && l.contains("ERROR"))
    });
    s.append("in.jsonl", events(20..40, 4, usd));
    wait_logged(&s, "events after the broken file", || {
        Outcome::read(&s).out.len() == 40
    });

    // A good one: its values are used from some event on (the reload is not instant).
    replace(&s, "customers.csv", &customers_csv("platinum"));
    // One event at a time, each once the ones before it are delivered (appending on every poll
    // would keep the count the wait looks for ahead of a pipeline slower than the polls).
    let mut next = 40;
    wait_logged(&s, "the new table's values", || {
        let o = Outcome::read(&s);
        if o.out.len() as u64 != next {
            return false;
        }
        let platinum = o.out.iter().any(|e| {
            e["tier"]
                .as_str()
                .is_some_and(|t| t.starts_with("platinum"))
        });
        if !platinum {
            s.append("in.jsonl", events(next..next + 1, 4, usd));
            next += 1;
        }
        platinum
    });
    let log = stop(&s, child);
    let o = Outcome::read(&s);
    assert!(o.check(0..next).is_empty(), "{log}");
    for n in 0..40 {
        assert_eq!(
            o.event(n)["tier"],
            format!("gold{}", n % 10),
            "the old table kept"
        );
    }
    // Once the new table is used, it stays used.
    let first_new = (40..next)
        .find(|n| {
            o.event(*n)["tier"]
                .as_str()
                .unwrap_or("")
                .starts_with("platinum")
        })
        .unwrap();
    for n in first_new..next {
        assert_eq!(o.event(n)["tier"], format!("platinum{}", n % 10));
    }
    assert!(!log.contains("panicked"), "{log}");
}

/// Runs `input` to its end through the Rust plugin looking up a file table in which only
/// customer `c1` has a row (tier `gold`).
fn run_with_gold_c1(s: &Scratch, name: &str, input: &str) -> Outcome {
    s.write("customers.csv", "id,tier\nc1,gold\n");
    s.write("in.jsonl", input);
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            name,
            false,
            "",
            &format!("{}{}", file_table(""), tier_plugin()),
        ),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    Outcome::read(s)
}

#[test]
fn an_unknown_customer_gets_a_null_tier() {
    let s = Scratch::new();
    let o = run_with_gold_c1(&s, "null-tier", &events(0..4, 2, usd));
    assert!(o.check(0..4).is_empty());
    assert_eq!(o.event(1)["tier"], "gold");
    assert_eq!(o.event(0)["tier"], Value::Null);
    assert!(o.event(0).as_object().unwrap().contains_key("tier"));
}

/// enrich-rs writes the tier after the event's own fields, which keep their bytes and order; an
/// event that had a tier gets the new one in its place, not a second `tier` key.
#[test]
fn the_tier_follows_the_events_own_fields_and_replaces_one_it_had() {
    let s = Scratch::new();
    let lines = [
        r#"{"seq":0,"k":"k0","tier":"old","customer":"c1"}"#,
        r#"{ "seq" : 1, "k":"k1", "note":"a } and a \" inside", "z":[1,{"a":"}"}], "customer":"c1" }"#,
        r#"{"seq":2,"k":"k0","customer":"c\u0031","customer":"c9"}"#,
        r#"{"seq":3,"k":"k1","cust\u006fmer":"c1"}"#,
        r#"{"seq":4,"k":"k0"}"#,
    ];
    let o = run_with_gold_c1(&s, "splice", &(lines.join("\n") + "\n"));
    assert_eq!(o.check(0..5), BTreeSet::from([4]), "seq 4 has no customer");
    let text = std::fs::read_to_string(s.path("out.jsonl")).unwrap();
    let raw = |n: u64| {
        text.lines()
            .find(|l| serde_json::from_str::<Value>(l).unwrap()["seq"] == n)
            .unwrap_or_else(|| panic!("seq {n} not in {text}"))
    };
    // Replaced in place of the old value: one `tier`.
    assert_eq!(raw(0).matches("\"tier\"").count(), 1, "{}", raw(0));
    assert_eq!(o.event(0)["tier"], "gold");
    // Appended: the event's own bytes, whitespace and braces in strings included, then the tier.
    let own = lines[1].strip_suffix('}').unwrap();
    assert_eq!(raw(1), format!("{own},\"tier\":\"gold\"}}"));
    // The last of a repeated field counts, as for a JSON parser; escapes in names are read.
    assert_eq!(o.event(2)["tier"], Value::Null, "c9 has no row");
    assert_eq!(o.event(3)["tier"], "gold");
    let reason = o.dlq[0]["error"]["message"].as_str().unwrap();
    assert!(reason.contains("no `customer`"), "{reason}");
}

#[test]
fn redis_cut_off_mid_run_and_given_back_loses_nothing_and_keeps_order() {
    let pre = prefix("cut");
    redis_clear(&pre);
    for n in 0..10 {
        redis(&["HSET", &format!("{pre}c{n}"), "tier", &format!("t{n}")]);
    }
    let proxy = TcpProxy::start(crate::redis_client::REDIS.parse().unwrap());
    let s = Scratch::new();
    s.write("in.jsonl", events(0..50, 5, usd));
    let table = format!(
        "[[table]]\nname = \"customers\"\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\nkey_prefix = {pre:?}\n\
         command = \"hgetall\"\ncache_ttl_s = 0\ntimeout_ms = 300\n",
        proxy.port()
    );
    let p = s.write(
        "p.toml",
        enrich_pipeline("redis-cut", true, "", &format!("{table}{}", tier_plugin())),
    );
    let child = s.spawn_logged(&p);
    wait_logged(&s, "the first events", || Outcome::read(&s).out.len() == 50);
    proxy.cut();
    s.append("in.jsonl", events(50..100, 5, usd));
    // While cut, the new events are retried (none delivered without its tier, none lost).
    let mut cut_for = 0;
    wait_logged(&s, "retries while Redis is cut off", || {
        cut_for += 1;
        cut_for > 50 // about a second of the cut
    });
    assert!(Outcome::read(&s).dlq.is_empty());
    proxy.restore();
    wait_logged(&s, "every event", || Outcome::read(&s).out.len() == 100);
    let log = stop(&s, child);
    redis_clear(&pre);
    let o = Outcome::read(&s);
    assert!(o.check(0..100).is_empty(), "{log}");
    for e in &o.out {
        assert_eq!(e["tier"], format!("t{}", seq(e) % 10), "{e}");
    }
    assert!(stat(&log, "retried") > 0, "{log}");
}

#[test]
fn postgres_rows_fill_in_the_tier() {
    let schema = format!("weir_e2e_{}", std::process::id());
    let psql = |sql: &str| {
        let out = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ])
            .output()
            .expect("psql (scripts/test.sh checks PostgreSQL)");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
         CREATE TABLE {schema}.customers (id text PRIMARY KEY, tier text, region text); \
         INSERT INTO {schema}.customers SELECT 'c' || n, 'pg' || n, 'eu' FROM generate_series(0, 8) n;"
    ));
    let s = Scratch::new();
    s.write("in.jsonl", events(0..30, 3, usd));
    let table = format!(
        "[[table]]\nname = \"customers\"\ntype = \"postgres\"\n\
         connection = \"host=127.0.0.1 port=5432 user=postgres dbname=test\"\n\
         query = \"SELECT tier, region FROM {schema}.customers WHERE id = $1\"\npool_size = 2\n"
    );
    let p = s.write(
        "p.toml",
        enrich_pipeline("pg", false, "", &format!("{table}{}", tier_plugin())),
    );
    let out = s.run(&p);
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = Outcome::read(&s);
    assert!(o.check(0..30).is_empty(), "{:?}", o.dlq);
    assert_eq!(o.event(3)["tier"], "pg3");
    assert_eq!(o.event(9)["tier"], Value::Null, "c9 has no row");
}

#[test]
fn table_lookups_show_in_metrics() {
    let s = Scratch::new();
    s.write("customers.csv", customers_csv("gold"));
    s.write("in.jsonl", events(0..40, 4, usd));
    let p = s.write(
        "p.toml",
        enrich_pipeline(
            "lookups",
            true,
            "",
            &format!("{}{}", file_table(""), tier_plugin()),
        ),
    );
    let child = s.spawn_logged(&p);
    let address = admin(&s);
    wait_logged(&s, "every event", || Outcome::read(&s).out.len() == 40);
    let (status, body) = admin_get(&address, "/metrics");
    assert_eq!(status, 200);
    stop(&s, child);
    assert!(Outcome::read(&s).check(0..40).is_empty());
    // enrich-rs asks for each customer of a batch once: each of the ten customers at least
    // once, never more than once an event; a file table answers every lookup.
    let hits = metric(&body, "weir_table_lookups_total", "result=\"hit\"");
    assert!((10.0..=40.0).contains(&hits), "{hits} hits: {body}");
    let other: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("weir_table_lookups_total") && !l.contains("result=\"hit\""))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert!(other.is_empty(), "lookups that were not hits: {other:?}");
}

#[test]
fn kill_9_during_enrichment_loses_nothing_and_keeps_keys_in_order() {
    let api = ApiServer::start();
    api.set_latency(Duration::from_millis(5));
    let s = Scratch::new();
    s.write("customers.csv", customers_csv("gold"));
    s.write("in.jsonl", events(0..2000, 16, |n| format!("C{}", n % 7)));
    let parts = format!(
        "{}{}",
        file_table(""),
        plugin_toml(
            &enrich_rs(),
            &format!(
                "{{ table = \"customers\", rates_url = {:?} }}",
                api.rates_url()
            ),
            &["customers"],
            Some(&format!("allow = [{:?}]\n", api.rates_url())),
        )
    );
    let p = s.write("p.toml", enrich_pipeline("killed", true, "", &parts));
    for _ in 0..2 {
        let mut child = s.spawn_logged(&p);
        let before = lines(&s.path("out.jsonl")).len();
        wait_logged(&s, "some events enriched", || {
            lines(&s.path("out.jsonl")).len() > before + 100
        });
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let child = s.spawn_logged(&p);
    wait_logged(&s, "every event", || {
        let mut seqs: Vec<u64> = lines(&s.path("out.jsonl"))
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| seq(&v))
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs.len() == 2000
    });
    stop(&s, child);
    // Lines torn by a kill are written again whole; repeats are allowed, order and loss are not.
    let out: Vec<Value> = lines(&s.path("out.jsonl"))
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    check_key_order(&out, true);
    assert!(
        out.iter()
            .all(|e| e["tier"].is_string() && e["rate"].is_number())
    );
    assert!(json_lines(&s.path("dlq.jsonl")).is_empty());
}

/// The scenario the three languages run: a file table and a rates API, with a customer the
/// table lacks and a currency the API lacks (dead-lettered at once).
fn same_scenario(plugin: &Path, api: &ApiServer) -> (Vec<Value>, Vec<(u64, u32)>) {
    let s = Scratch::new();
    s.write("customers.csv", "id,tier\nc0,gold\nc1,silver\nc2,bronze\n");
    let cur = |n: u64| ["USD", "GBP", "JPY"][(n % 3) as usize].to_owned();
    s.write("in.jsonl", events(0..24, 4, cur));
    let parts = format!(
        "{}{}",
        file_table(""),
        plugin_toml(
            plugin,
            &format!(
                "{{ table = \"customers\", customer_field = \"customer\", rates_url = {:?} }}",
                api.rates_url()
            ),
            &["customers"],
            Some(&format!("allow = [{:?}]\n", api.rates_url())),
        )
    );
    let p = s.write(
        "p.toml",
        enrich_pipeline("languages", false, "max_attempts = 3", &parts),
    );
    let out = s.run(&p);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        plugin.display(),
        stderr(&out)
    );
    let o = Outcome::read(&s);
    o.check(0..24);
    let mut delivered = o.out.clone();
    delivered.sort_by_key(seq);
    // Numbers compared as numbers: JavaScript writes 5 where Rust and Python write 5.0.
    let delivered: Vec<Value> = delivered.iter().map(numbers_as_f64).collect();
    let mut dead: Vec<(u64, u32)> = o
        .dlq
        .iter()
        .map(|r| {
            (
                seq(&r["event"]["data"]),
                r["error"]["attempts"].as_u64().unwrap_or(0) as u32,
            )
        })
        .collect();
    dead.sort_unstable();
    (delivered, dead)
}

/// `v` with every number but `seq` as a float.
fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => n.as_f64().map_or(Value::Null, Value::from),
        Value::Array(a) => a.iter().map(numbers_as_f64).collect(),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = if k == "seq" {
                        v.clone()
                    } else {
                        numbers_as_f64(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn the_three_languages_enrich_alike() {
    let api = ApiServer::start();
    api.set_rate("USD", 0.5);
    api.set_rate("GBP", 1.25);
    api.remove_currency("JPY");
    let rust = same_scenario(&enrich_rs(), &api);
    let js = same_scenario(&built_in("enrich-api-js"), &api);
    let py = same_scenario(&built_in("enrich-py"), &api);
    assert_eq!(rust.1.len(), 8, "JPY dead-lettered: {:?}", rust.1);
    assert!(
        rust.1.iter().all(|(_, attempts)| *attempts == 1),
        "404 is permanent: {:?}",
        rust.1
    );
    let e = rust.0.iter().find(|e| seq(e) == 1).unwrap();
    assert_eq!(
        (e["tier"].as_str(), e["amount_eur"].as_f64()),
        (Some("silver"), Some(1.25))
    );
    assert_eq!(
        rust.0.iter().find(|e| seq(e) == 4).unwrap()["tier"],
        Value::Null
    );
    assert_eq!(js, rust, "JavaScript as Rust");
    assert_eq!(py, rust, "Python as Rust");
}

#[test]
fn a_0_1_0_component_runs_after_an_enrichment_plugin() {
    let api = ApiServer::start();
    let s = Scratch::new();
    s.write("customers.csv", customers_csv("gold"));
    // split-order reads `detail.items`; the enrichment plugin adds fields at the top.
    let input: String = (0..10u64)
        .map(|n| {
            format!(
                "{{\"seq\":{n},\"k\":\"k{}\",\"customer\":\"c{n}\",\"currency\":\"USD\",\"amount\":{n},\
                 \"detail\":{{\"orderId\":\"o{n}\",\"items\":[{{\"sku\":\"A\"}},{{\"sku\":\"B\"}}]}}}}\n",
                n % 3
            )
        })
        .collect();
    s.write("in.jsonl", input);
    let parts = format!(
        "{}{}[[plugin]]\npath = {:?}\n",
        file_table(""),
        plugin_toml(
            &enrich_rs(),
            &format!(
                "{{ table = \"customers\", rates_url = {:?} }}",
                api.rates_url()
            ),
            &["customers"],
            Some(&format!("allow = [{:?}]\n", api.rates_url())),
        ),
        plugin("split-order/split-order.wasm")
    );
    let p = s.write("p.toml", enrich_pipeline("old-and-new", false, "", &parts));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let got = json_lines(&s.path("out.jsonl"));
    assert_eq!(got.len(), 20, "two items each: {got:?}");
    assert!(json_lines(&s.path("dlq.jsonl")).is_empty());
    // split-order keeps only the order's `detail`: the enrichment shows at the API.
    assert_eq!(api.count("/rates/USD"), 10, "every order enriched first");
    let mut split: Vec<(String, u64)> = got
        .iter()
        .map(|e| {
            let d = &e["detail"];
            (
                d["orderId"].as_str().unwrap_or("").to_owned(),
                d["line"].as_u64().unwrap_or(9),
            )
        })
        .collect();
    split.sort();
    let mut want: Vec<(String, u64)> = (0..10)
        .flat_map(|n| [(format!("o{n}"), 0), (format!("o{n}"), 1)])
        .collect();
    want.sort();
    assert_eq!(split, want);
}
