//! `weir dlq inspect` and `weir dlq redrive` on a real DLQ left by a real pipeline.

use crate::plugins::plugin;
use crate::support::*;

fn dlq_cmd(s: &Scratch, args: &[&str]) -> std::process::Output {
    weir()
        .arg("dlq")
        .args(args)
        .arg("--state-dir")
        .arg(s.state_dir())
        .current_dir(s.dir.path())
        .output()
        .unwrap()
}

#[test]
fn inspect_groups_failures_and_redrive_delivers_them_once_the_cause_is_fixed() {
    let s = Scratch::new();
    std::fs::copy(plugin("fixtures/faults/faults.wasm"), s.path("plugin.wasm")).unwrap();
    let mut input = String::new();
    for n in 0..20 {
        match n % 5 {
            0 => input.push_str(&format!(
                "{{\"n\":{n},\"fault\":\"error\",\"email\":\"e{n}@x.org\"}}\n"
            )),
            1 => input.push_str(&format!(
                "{{\"n\":{n},\"fault\":\"trap\",\"email\":\"e{n}@x.org\"}}\n"
            )),
            _ => input.push_str(&format!("{{\"n\":{n},\"email\":\"e{n}@x.org\"}}\n")),
        }
    }
    input.push_str("not json\n");
    s.write("in.jsonl", input);
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"orders\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nformat = \"json\"\n\
         [[plugin]]\npath = \"plugin.wasm\"\nname = \"live\"\nconfig = { fields = [\"email\"] }\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let run = s.run(&p);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let dlq = s.state_dir().join("orders/dlq.jsonl");
    assert_eq!(lines(&dlq).len(), 9, "4 errors, 4 traps, 1 malformed line");
    assert_eq!(lines(&s.path("out.jsonl")).len(), 12);

    let out = dlq_cmd(&s, &["inspect", "p.toml"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("9 dead-lettered events"), "{text}");
    let row = |stage: &str, kind: &str| {
        text.lines()
            .find(|l| l.contains(stage) && l.contains(kind))
            .unwrap_or_else(|| panic!("no {stage} {kind} row in:\n{text}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(row("plugin:live", "error"), "4");
    assert_eq!(row("plugin:live", "trap"), "4");
    assert_eq!(row("source", "malformed"), "1");

    // While the pipeline runs, redrive refuses: the state directory is taken.
    let follow = s.write(
        "follow.toml",
        std::fs::read_to_string(&p)
            .unwrap()
            .replace("format = \"json\"", "format = \"json\"\nfollow = true"),
    );
    let running = s.spawn(&follow);
    wait_for("the pipeline to take its lock", || {
        s.state_dir().join("orders/lock").exists()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let refused = dlq_cmd(&s, &["redrive", "p.toml"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("already running"),
        "{}",
        stderr(&refused)
    );
    signal(&running, libc::SIGTERM);
    let (code, log) = wait_exit(running);
    assert_eq!(code, Some(0), "{log}");

    // The fix: a plugin that does not fail these events. Only the traps are redriven first.
    std::fs::copy(plugin("redact/redact.wasm"), s.path("plugin.wasm")).unwrap();
    let before = lines(&s.path("out.jsonl")).len();
    let out = dlq_cmd(
        &s,
        &[
            "redrive",
            "p.toml",
            "--filter",
            r#"{"error": {"kind": ["trap"]}}"#,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("redrove 4 events: 4 delivered"), "{text}");
    let delivered: Vec<serde_json::Value> = json_lines(&s.path("out.jsonl"))[before..].to_vec();
    assert_eq!(delivered.len(), 4);
    for v in &delivered {
        assert_eq!(v["fault"], "trap");
        assert_eq!(v["email"], "***", "through the fixed plugin");
    }
    assert_eq!(lines(&dlq).len(), 5, "the other records stay");

    // Then every plugin failure; the malformed line stays, it cannot be fixed downstream.
    let out = dlq_cmd(&s, &["redrive", "p.toml", "--stage", "plugin"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("redrove 4 events: 4 delivered"), "{text}");
    assert!(
        stderr(&out).contains("1 records failed at the source"),
        "{}",
        stderr(&out)
    );
    let left = json_lines(&dlq);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["error"]["stage"], "source");
    let seqs: std::collections::BTreeSet<u64> = json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| v["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (0..20).collect(),
        "every event delivered once in the end"
    );
    assert!(!s.state_dir().join("orders/dlq.jsonl.redrive").exists());
}

#[test]
fn a_redrive_that_fails_again_keeps_the_record_with_its_new_reason() {
    let s = Scratch::new();
    s.write("in.jsonl", "{\"n\":1,\"fault\":\"error\"}\n");
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"again\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [[plugin]]\npath = {:?}\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
            plugin("fixtures/faults/faults.wasm")
        ),
    );
    assert_eq!(s.run(&p).status.code(), Some(0));
    let dlq = s.state_dir().join("again/dlq.jsonl");
    let first = json_lines(&dlq);
    assert_eq!(first.len(), 1);
    let out = dlq_cmd(&s, &["redrive", "p.toml"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("0 delivered") && text.contains("1 dead-lettered again"),
        "{text}"
    );
    let after = json_lines(&dlq);
    assert_eq!(after.len(), 1, "replaced, not doubled");
    assert_eq!(
        after[0]["event"], first[0]["event"],
        "the event as first read"
    );
    assert!(!s.path("out.jsonl").exists() || lines(&s.path("out.jsonl")).is_empty());

    // The record keeps the event's history: when it first failed, and every attempt.
    let (was, now) = (&first[0]["error"], &after[0]["error"]);
    assert_eq!(now["first_failed_at"], was["first_failed_at"]);
    assert_eq!(now["attempts"], was["attempts"].as_u64().unwrap() + 1);
    assert!(now["last_failed_at"].as_str() > was["last_failed_at"].as_str());
    assert_eq!(dlq_cmd(&s, &["redrive", "p.toml"]).status.code(), Some(0));
    let again = json_lines(&dlq);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["error"]["first_failed_at"], was["first_failed_at"]);
    assert_eq!(
        again[0]["error"]["attempts"],
        was["attempts"].as_u64().unwrap() + 2
    );
    assert_eq!(again[0]["event"], first[0]["event"]);
}

#[test]
fn dlq_commands_say_when_nothing_is_there_and_where_they_looked() {
    let s = Scratch::new();
    s.write("in.jsonl", "not json\n");
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"orders\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nformat = \"json\"\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    assert_eq!(s.run(&p).status.code(), Some(0));
    assert_eq!(lines(&s.state_dir().join("orders/dlq.jsonl")).len(), 1);

    // The pipeline ran with `state`; these look in `elsewhere`.
    let elsewhere = s.path("elsewhere");
    let looked_at = elsewhere.join("orders/dlq.jsonl");
    for args in [
        &["inspect", "p.toml"][..],
        &["redrive", "p.toml"],
        &["purge", "p.toml", "--yes"],
        &["export", "p.toml"],
    ] {
        let out = weir()
            .arg("dlq")
            .args(args)
            .arg("--state-dir")
            .arg(&elsewhere)
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{err}");
        assert!(err.contains("nothing there"), "{args:?}: {err}");
        assert!(
            err.contains(&looked_at.display().to_string()),
            "{args:?}: {err}"
        );
        assert!(err.contains("--state-dir"), "{args:?}: {err}");
        assert!(!stdout.contains("0 dead-lettered"), "{args:?}: {stdout}");
        assert!(
            !elsewhere.exists(),
            "{args:?} created {}",
            elsewhere.display()
        );
    }

    // A `[dlq]` path that is not there (run from another directory): the path is named.
    let q = s.write(
        "q.toml",
        "[pipeline]\nname = \"q\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"dead/q.jsonl\"\n",
    );
    let out = weir()
        .args(["dlq", "inspect"])
        .arg(&q)
        .current_dir(s.state_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("dead/q.jsonl does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("[dlq] path"), "{}", stderr(&out));
}

#[test]
fn a_redriven_event_reaches_the_sink_as_it_was_written() {
    // The DLQ keeps a JSON payload as it came (its key order, spacing and number forms), and a
    // redrive delivers those bytes: not re-encoded through a parsed tree, which sorted the keys
    // and rewrote `1.50` as `1.5`.
    let s = Scratch::new();
    std::fs::copy(plugin("fixtures/faults/faults.wasm"), s.path("plugin.wasm")).unwrap();
    let event = r#"{"z": 1, "n": 1.50, "big": 1e2, "fault": "error", "a": {"y": "é", "x": null}}"#;
    s.write("in.jsonl", format!("{event}\n"));
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"asis\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [[plugin]]\npath = \"plugin.wasm\"\nname = \"live\"\nconfig = { fields = [\"email\"] }\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    assert_eq!(s.run(&p).status.code(), Some(0));
    assert_eq!(lines(&s.state_dir().join("asis/dlq.jsonl")).len(), 1);
    // The fix: a plugin that passes payloads without the fields it redacts byte for byte.
    std::fs::copy(plugin("redact/redact.wasm"), s.path("plugin.wasm")).unwrap();
    let out = dlq_cmd(&s, &["redrive", "p.toml"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("1 delivered"), "{text}");
    assert_eq!(lines(&s.path("out.jsonl")), [event]);
}
