//! What the enrichment tests share: their events, pipeline files (file source -> enrichment
//! plugin with its grants -> file sink, a file DLQ), and the checks every one of them makes:
//! each event delivered or dead-lettered exactly once, and each key's events in order.

use crate::plugins::plugin;
use crate::support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Order events `{"seq", "k", "customer", "currency", "amount"}`: key `k{seq % keys}`,
/// customer `c{seq % 10}`, the currency `currency(seq)`.
pub(crate) fn events(
    seqs: std::ops::Range<u64>,
    keys: u64,
    currency: impl Fn(u64) -> String,
) -> String {
    seqs.map(|n| {
        format!(
            "{{\"seq\":{n},\"k\":\"k{}\",\"customer\":\"c{}\",\"currency\":\"{}\",\"amount\":{n}}}\n",
            n % keys,
            n % 10,
            currency(n)
        )
    })
    .collect()
}

/// Every event in US dollars.
pub(crate) fn usd(_: u64) -> String {
    "USD".into()
}

/// A customers table as CSV: `id,tier,region`, customers c0..c9, the tier `{tier}{n}`.
pub(crate) fn customers_csv(tier: &str) -> String {
    let mut csv = String::from("id,tier,region\n");
    for n in 0..10 {
        csv.push_str(&format!("c{n},{tier}{n},eu\n"));
    }
    csv
}

/// The Rust enrichment plugin.
pub(crate) fn enrich_rs() -> PathBuf {
    plugin("enrich-rs/enrich-rs.wasm")
}

/// The one component built in `plugins/DIR` (the example plugins' file names vary).
pub(crate) fn built_in(dir: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(dir);
    let found = std::fs::read_dir(&folder)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wasm"));
    found.unwrap_or_else(|| {
        panic!(
            "no .wasm in {}: run scripts/build-plugins.sh (scripts/test.sh does)",
            folder.display()
        )
    })
}

/// One `[[plugin]]` (with its `[plugin.http]` if `http` is given): `config` is an inline TOML
/// table, `tables` the tables granted.
pub(crate) fn plugin_toml(
    path: &Path,
    config: &str,
    tables: &[&str],
    http: Option<&str>,
) -> String {
    let mut t = format!(
        "[[plugin]]\npath = {path:?}\ntables = {tables:?}\ntimeout_ms = 5000\nio_budget_ms = 10000\nconfig = {config}\n"
    );
    if let Some(http) = http {
        t.push_str(&format!("[plugin.http]\n{http}\n"));
    }
    t
}

/// A file table `customers` read from `customers.csv`, with the cache settings given.
pub(crate) fn file_table(cache: &str) -> String {
    format!(
        "[[table]]\nname = \"customers\"\ntype = \"file\"\npath = \"customers.csv\"\nkey = \"id\"\n{cache}\n"
    )
}

/// The pipeline file: `in.jsonl` (followed if `follow`), keyed by `k` on 4 lanes, `[retry]`
/// as given, then the tables and plugins, to `out.jsonl` with the DLQ in `dlq.jsonl`.
pub(crate) fn enrich_pipeline(name: &str, follow: bool, retry: &str, parts: &str) -> String {
    let follow = if follow {
        "follow = true\npoll_interval_ms = 10\n"
    } else {
        ""
    };
    format!(
        "[pipeline]\nname = \"{name}\"\ncheckpoint_interval_ms = 20\n\n\
         [source]\ntype = \"file\"\npath = \"in.jsonl\"\n{follow}\n\
         [ordering]\nkey = \"<$.data.k>\"\nlanes = 4\n\n\
         [retry]\nbackoff_ms = [10, 200]\n{retry}\n\n{parts}\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n"
    )
}

/// What a finished run left: the delivered events and the DLQ records.
pub(crate) struct Outcome {
    pub out: Vec<Value>,
    pub dlq: Vec<Value>,
}

impl Outcome {
    pub(crate) fn read(s: &Scratch) -> Self {
        Outcome {
            out: json_lines(&s.path("out.jsonl")),
            dlq: json_lines(&s.path("dlq.jsonl")),
        }
    }

    /// Checks that events `seqs` are each delivered or dead-lettered exactly once, and that
    /// each key's delivered events come in order; returns the dead-lettered seqs.
    pub(crate) fn check(&self, seqs: std::ops::Range<u64>) -> BTreeSet<u64> {
        check_key_order(&self.out, false);
        let delivered: Vec<u64> = self.out.iter().map(seq).collect();
        let dead: Vec<u64> = self.dlq.iter().map(|r| seq(&r["event"]["data"])).collect();
        let mut all: Vec<u64> = delivered.iter().chain(&dead).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            seqs.collect::<Vec<_>>(),
            "each event delivered or dead-lettered exactly once (delivered {delivered:?}, dead {dead:?})"
        );
        dead.into_iter().collect()
    }

    /// The delivered event of `seq`.
    pub(crate) fn event(&self, n: u64) -> &Value {
        self.out
            .iter()
            .find(|v| seq(v) == n)
            .unwrap_or_else(|| panic!("seq {n} not delivered"))
    }
}

pub(crate) fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {v}"))
}

/// Each key's events come in increasing `seq`; with `repeats`, an event may come again after a
/// crash (at-least-once), but a new one never before an earlier one of its key.
pub(crate) fn check_key_order(out: &[Value], repeats: bool) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for v in out {
        let key = v["k"].as_str().unwrap_or_default().to_owned();
        let n = seq(v);
        if !seen.insert(n) {
            assert!(repeats, "seq {n} delivered twice");
            continue;
        }
        if let Some(prev) = last.get(&key) {
            assert!(*prev < n, "key {key}: seq {n} after {prev}");
        }
        last.insert(key, n);
    }
}

/// A counter of the final `pipeline stopped` log line (`retried`, `dead_lettered`, ...).
pub(crate) fn stat(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.contains("pipeline stopped"))
        .unwrap_or_else(|| panic!("no final counts in:\n{stderr}"));
    let at = line
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("{name} missing: {line}"));
    line[at + name.len() + 2..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad {name}: {line}"))
}

/// The sum of a Prometheus counter's samples whose labels include `label` (e.g.
/// `result="hit"`), from a /metrics body.
pub(crate) fn metric(body: &str, name: &str, label: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The DLQ records' reasons, each checked to name the plugin.
pub(crate) fn reasons(dlq: &[Value], plugin: &str) -> Vec<String> {
    dlq.iter()
        .map(|r| {
            assert_eq!(r["error"]["stage"], format!("plugin:{plugin}"), "{r}");
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// SIGTERM, then the exit checked clean; the log.
pub(crate) fn stop(s: &Scratch, child: std::process::Child) -> String {
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");
    log
}

/// The admin address of the running weir that logs to `weir.log`.
pub(crate) fn admin(s: &Scratch) -> String {
    let mut address = None;
    wait_logged(s, "the admin address", || {
        address = admin_address(&s.log());
        address.is_some()
    });
    address.unwrap_or_default()
}
