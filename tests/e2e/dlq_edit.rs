//! `weir dlq export` and `weir dlq purge` on a real DLQ left by a real pipeline: selection by
//! stage, kind and pattern, confirmation, and the file lock that keeps a running weir's appends
//! safe.

use crate::plugins::plugin;
use crate::support::*;
use std::process::{Output, Stdio};

fn dlq_cmd(s: &Scratch, args: &[&str]) -> Output {
    weir()
        .arg("dlq")
        .args(args)
        .arg("--state-dir")
        .arg(s.state_dir())
        .current_dir(s.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pipeline run that dead-letters 4 plugin errors, 4 traps and 1 malformed line.
fn failed_run(s: &Scratch) -> std::path::PathBuf {
    let mut input = String::new();
    for n in 0..20 {
        match n % 5 {
            0 => input.push_str(&format!("{{\"n\":{n},\"fault\":\"error\"}}\n")),
            1 => input.push_str(&format!("{{\"n\":{n},\"fault\":\"trap\"}}\n")),
            _ => input.push_str(&format!("{{\"n\":{n}}}\n")),
        }
    }
    input.push_str("not json\n");
    s.write("in.jsonl", input);
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"orders\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nformat = \"json\"\n\
             [[plugin]]\npath = {:?}\nname = \"live\"\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
            plugin("fixtures/faults/faults.wasm")
        ),
    );
    let run = s.run(&p);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert_eq!(lines(&s.state_dir().join("orders/dlq.jsonl")).len(), 9);
    p
}

#[test]
fn dlq_export_writes_the_selected_records_or_their_events() {
    let s = Scratch::new();
    failed_run(&s);
    let dlq = s.state_dir().join("orders/dlq.jsonl");
    let before = std::fs::read(&dlq).unwrap();

    let all = dlq_cmd(&s, &["export", "p.toml"]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    assert_eq!(
        stdout(&all),
        String::from_utf8_lossy(&before),
        "every record, as it is"
    );

    let traps = dlq_cmd(
        &s,
        &["export", "p.toml", "--stage", "plugin", "--kind", "trap"],
    );
    let traps: Vec<serde_json::Value> = stdout(&traps)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(traps.len(), 4);
    assert!(traps.iter().all(|r| r["error"]["kind"] == "trap"));

    // Only the original events, by pattern over the record, into a file.
    let out = dlq_cmd(
        &s,
        &[
            "export",
            "p.toml",
            "--pattern",
            r#"{"error": {"kind": ["error"]}}"#,
            "--events",
            "--output",
            "errors.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exported 4 events of 9 records"),
        "{}",
        stderr(&out)
    );
    let events = json_lines(&s.path("errors.jsonl"));
    assert_eq!(events.len(), 4);
    let text = String::from_utf8_lossy(&before).into_owned();
    for l in lines(&s.path("errors.jsonl")) {
        assert!(
            text.contains(&format!("{{\"event\":{l},")),
            "not as written: {l}"
        );
    }
    for e in &events {
        assert_eq!(e["data"]["fault"], "error");
        assert!(e["id"].as_str().unwrap().starts_with("in.jsonl:"), "{e}");
        assert!(e.get("error").is_none(), "{e}");
    }
    assert!(!s.path("errors.jsonl.tmp").exists());
    assert_eq!(
        std::fs::read(&dlq).unwrap(),
        before,
        "export leaves the DLQ alone"
    );

    let bad = dlq_cmd(&s, &["export", "p.toml", "--pattern", "{\"error\": 1}"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--pattern"), "{}", stderr(&bad));
}

#[test]
fn dlq_purge_removes_the_selection_after_confirmation_and_not_while_the_file_is_locked() {
    let s = Scratch::new();
    failed_run(&s);
    let dlq = s.state_dir().join("orders/dlq.jsonl");
    let before = std::fs::read(&dlq).unwrap();

    // Not a terminal and no --yes: refused, nothing removed.
    let out = dlq_cmd(&s, &["purge", "p.toml", "--kind", "trap"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(stderr(&out).contains("4 of 9"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dlq).unwrap(), before);

    // A process that holds the file's lock (as a running weir does on every file it appends
    // to) keeps purge out.
    let holder = std::fs::File::open(&dlq).unwrap();
    holder.lock().unwrap();
    let out = dlq_cmd(&s, &["purge", "p.toml", "--kind", "trap", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    let out = dlq_cmd(&s, &["redrive", "p.toml", "--kind", "trap"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dlq).unwrap(), before);
    assert!(!s.state_dir().join("orders/dlq.jsonl.redrive").exists());
    drop(holder);

    let out = dlq_cmd(&s, &["purge", "p.toml", "--kind", "trap", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("removed 4 records"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("kept 5"), "{}", stdout(&out));
    let left = json_lines(&dlq);
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|r| r["error"]["kind"] != "trap"));

    let out = dlq_cmd(
        &s,
        &[
            "purge",
            "p.toml",
            "--pattern",
            r#"{"error": {"stage": ["source"]}}"#,
            "--yes",
        ],
    );
    assert!(
        stdout(&out).contains("removed 1 records"),
        "{}",
        stdout(&out)
    );
    let out = dlq_cmd(&s, &["purge", "p.toml", "--stage", "sink", "--yes"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("nothing to purge"),
        "{}",
        stdout(&out)
    );
    let left = json_lines(&dlq);
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|r| r["error"]["kind"] == "error"));
    let names: Vec<String> = std::fs::read_dir(s.state_dir().join("orders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}
