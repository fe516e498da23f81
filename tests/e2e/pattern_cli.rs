//! `weir pattern check` and `weir pattern test` through the real binary.

use crate::support::*;
use serde_json::value::RawValue;
use std::io::Write;
use std::process::Stdio;

fn pattern_check(input: &str) -> Vec<String> {
    let mut child = weir()
        .args(["pattern", "check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    // Write from another thread: the output pipe must be drained while the input is written.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn pattern_check_answers_every_line_in_order() {
    let input = [
        r#"{"pattern": {"detail": {"state": ["on"]}}, "event": {"detail": {"state": "on"}}}"#,
        r#"{"pattern": "{\"detail\": {\"state\": [\"on\"]}}", "event": {"detail": {"state": "off"}}}"#,
        r#"{"pattern": "{\"detail\": ", "event": {}}"#,
        r#"{"pattern": {"n": [{"numeric": [">", 10]}]}, "event": {"n": 3.0e2}}"#,
        r#"not json"#,
        r#"{"pattern": {"a": "not-an-array"}, "event": {"a": 1}}"#,
    ]
    .join("\n");
    let out = pattern_check(&format!("{input}\n"));
    assert_eq!(out.len(), 6, "{out:?}");
    let v: Vec<serde_json::Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v[0], serde_json::json!({"match": true}));
    assert_eq!(v[1], serde_json::json!({"match": false}));
    assert!(v[2]["error"].is_string(), "{}", out[2]);
    assert_eq!(v[3], serde_json::json!({"match": true}));
    assert!(v[4]["error"].is_string(), "{}", out[4]);
    assert!(v[5]["error"].is_string(), "{}", out[5]);
}

#[derive(serde::Deserialize)]
struct Case<'a> {
    id: String,
    #[serde(borrow)]
    pattern: &'a RawValue,
    #[serde(borrow)]
    event: &'a RawValue,
    #[serde(rename = "match")]
    matches: bool,
    dialect: String,
}

/// The binary agrees with the EventBridge conformance corpus (the crate's own test checks the
/// library; this checks the tool people and scripts use).
#[test]
fn pattern_check_agrees_with_the_conformance_corpus() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/patterns-match.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<Case> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|c: &Case| c.dialect == "eventbridge" || c.dialect == "ruler-extension")
        .collect();
    let input: String = cases
        .iter()
        .map(|c| {
            format!(
                "{{\"pattern\": {}, \"event\": {}}}\n",
                c.pattern.get(),
                c.event.get()
            )
        })
        .collect();
    let out = pattern_check(&input);
    assert_eq!(out.len(), cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .zip(&out)
        .filter(|(c, o)| {
            serde_json::from_str::<serde_json::Value>(o).ok()
                != Some(serde_json::json!({"match": c.matches}))
        })
        .map(|(c, o)| format!("{}: expected {}, got {o}", c.id, c.matches))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} disagree:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn pattern_test_explains_for_people() {
    let s = Scratch::new();
    let pattern = s.write(
        "p.json",
        r#"{"detail": {"state": ["on"], "n": [{"numeric": [">", 5]}]}}"#,
    );
    let run = |event: &str| {
        let out = weir()
            .args(["pattern", "test", "--pattern"])
            .arg(&pattern)
            .args(["--event", event])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run(r#"{"detail": {"state": "on", "n": 6}}"#);
    assert_eq!((code, text.trim()), (Some(0), "match"));
    let (code, text) = run(r#"{"detail": {"state": "on", "n": 2}}"#);
    assert_eq!(code, Some(1));
    assert!(
        text.starts_with("no match") && text.contains("detail.n"),
        "{text}"
    );
    let (code, text) = run(r#"{"detail": "#);
    assert_eq!(code, Some(2));
    assert!(text.contains("invalid event"), "{text}");
    let out = weir()
        .args([
            "pattern",
            "test",
            "--pattern",
            r#"{"a": [{"numeric": ["<"]}]}"#,
            "--event",
            "{}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("invalid pattern"));
}
