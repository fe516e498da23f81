//! What `weir run` writes to stderr: failed events are logged in a bounded number of lines that
//! still add up to their count, and with `log_format = "json"` every line is JSON.

use crate::support::*;
use serde_json::Value;
use std::process::Stdio;

/// Every line of `log` as JSON, or a panic naming the line that is not.
fn json_log(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{log}")))
        .collect()
}

#[test]
fn many_failed_events_make_few_lines_that_add_up() {
    let s = Scratch::new();
    const N: u64 = 3000;
    // Not JSON where JSON is required: each is dead-lettered at stage `source` (kind `malformed`),
    // and a few good ones in between are delivered.
    let mut input = String::new();
    for n in 0..N {
        input.push_str(&format!("not json {n}\n"));
        if n % 100 == 0 {
            input.push_str("{\"ok\":true}\n");
        }
    }
    s.write("in.txt", input);
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"noisy\"\n[source]\ntype = \"file\"\npath = \"in.txt\"\nformat = \"json\"\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
    );
    let out = s
        .weir_run(&p)
        .env("WEIR_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_eq!(lines(&s.path("dlq.jsonl")).len() as u64, N);
    let entries = json_log(&log);
    let one_by_one = entries
        .iter()
        .filter(|e| e["message"] == "event dead-lettered")
        .inspect(|e| {
            assert_eq!(e["pipeline"], "noisy");
            assert!(
                e["event"].as_str().is_some_and(|id| id.contains("in.txt:")),
                "{e}"
            );
        })
        .count() as u64;
    let summaries: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["message"].as_str().is_some_and(|m| {
                m.contains("more events dead-lettered at stage source (kind malformed)")
            })
        })
        .collect();
    let summarized: u64 = summaries.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(one_by_one + summarized, N, "{log}");
    assert!(!summaries.is_empty(), "{log}");
    assert!(
        summaries.iter().all(|e| e["last_event"]
            .as_str()
            .is_some_and(|id| id.contains("in.txt:"))),
        "{log}"
    );
    assert!(
        entries.len() < 60,
        "{} log lines for {N} failures",
        entries.len()
    );
}

#[test]
fn json_logs_are_all_json_with_failed_reloads_and_startup_errors() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..5));
    s.write(
        "dir/a.toml",
        "[pipeline]\nname = \"a\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\n\
         [sink]\ntype = \"file\"\npath = \"a.jsonl\"\n",
    );
    let log = std::fs::File::create(s.path("weir.log")).unwrap();
    let child = s
        .weir_run(&s.path("dir"))
        .env("WEIR_LOG_FORMAT", "json")
        .env("WEIR_WATCH_INTERVAL_MS", "100")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_logged(&s, "pipeline a started", || {
        s.log().contains("pipeline started")
    });
    // A new file whose pipeline fails as it starts (its input is missing), and one that does not
    // load at all.
    s.write(
        "dir/b.toml",
        "[pipeline]\nname = \"b\"\n[source]\ntype = \"file\"\npath = \"missing.jsonl\"\n\
         [sink]\ntype = \"file\"\npath = \"b.jsonl\"\n",
    );
    s.write("dir/c.toml", "[pipeline\n");
    wait_logged(&s, "the reload's failures", || {
        let log = s.log();
        log.contains("pipeline failed") && log.contains("pipeline file rejected")
    });
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    // 1: pipeline b's last run failed.
    assert_eq!(code, Some(1), "{}", s.log());
    let entries = json_log(&s.log());
    let reloaded = entries
        .iter()
        .find(|e| e["message"] == "pipelines reloaded" && e["started"] != serde_json::json!([]))
        .unwrap_or_else(|| panic!("{}", s.log()));
    assert_eq!(
        reloaded["started"],
        serde_json::json!(["b"]),
        "lists are arrays"
    );
    let failed = entries
        .iter()
        .find(|e| e["message"] == "pipeline failed")
        .unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("b.toml:3:2: `source`: source.path: cannot open input file missing.jsonl"),
        "{failed}"
    );

    // Errors that stop weir at start are JSON lines too: a pipeline that does not load, a bad
    // setting, and a taken admin port.
    std::fs::remove_file(s.path("dir/b.toml")).unwrap();
    let out = s
        .weir_run(&s.path("dir"))
        .env("WEIR_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let entries = json_log(&stderr(&out));
    assert!(
        entries
            .iter()
            .any(|e| e["level"] == "ERROR" && e["message"].as_str().unwrap().contains("c.toml")),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(s.path("dir/c.toml")).unwrap();
    let out = s
        .weir_run(&s.path("dir"))
        .env("WEIR_LOG_FORMAT", "json")
        .env("WEIR_SHUTDOWN_TIMEOUT_S", "abc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let entries = json_log(&stderr(&out));
    assert!(
        entries.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("WEIR_SHUTDOWN_TIMEOUT_S")),
        "{}",
        stderr(&out)
    );
    // JSON asked for in weir.toml, which has a mistake too.
    s.write(
        "weir.toml",
        "log_format = \"json\"\nlog_levle = \"debug\"\n",
    );
    let out = s.weir_run(&s.path("dir")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let entries = json_log(&stderr(&out));
    assert!(
        entries
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("`log_levle`")),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(s.path("weir.toml")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = s
        .weir_run(&s.path("dir"))
        .env("WEIR_LOG_FORMAT", "json")
        .env(
            "WEIR_ADMIN__ADDRESS",
            taken.local_addr().unwrap().to_string(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let entries = json_log(&stderr(&out));
    assert!(
        entries.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("WEIR_ADMIN__ADDRESS=off")),
        "{}",
        stderr(&out)
    );
}
