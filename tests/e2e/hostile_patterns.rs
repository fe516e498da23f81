//! Events and patterns weir cannot or must not take, through the real binary: data nested too
//! deep to read (from a source or from a plugin), and wildcard patterns EventBridge refuses as
//! too complex.

use crate::support::*;

/// A JSON value nested `depth` levels deep that matches `{"data": {"x": ["y"]}}`-style
/// patterns at its top: `{"x": "y", "deep": [[[...]]]}`.
fn deep_event(seq: u64, depth: usize) -> String {
    let inner = "[".repeat(depth - 1) + "1" + &"]".repeat(depth - 1);
    format!("{{\"seq\":{seq},\"kind\":\"order\",\"deep\":{inner}}}")
}

fn pipeline(format: &str, filters: &str) -> String {
    format!(
        "[pipeline]\nname = \"deep\"\n\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nformat = \"{format}\"\n\n{filters}\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n"
    )
}

/// Every event ends delivered or dead-lettered (never "filtered" for a record weir cannot
/// read), with and without filters, in both JSON formats; the DLQ says why and keeps the
/// record's exact text.
#[test]
fn data_nested_too_deep_is_dead_lettered_as_malformed_not_filtered() {
    let filter = "[[filter]]\npattern = '{\"data\": {\"kind\": [\"order\"]}}'\n";
    for (format, filters) in [
        ("json", filter),
        ("auto", filter),
        ("json", ""),
        ("auto", ""),
    ] {
        let s = Scratch::new();
        // 100 levels is the limit for an event's data; 101 and 300 are past it (and 127+ is
        // where serde_json's tree and the pattern scanner stop).
        let events = [
            deep_event(0, 5),
            deep_event(1, 101),
            deep_event(2, 100),
            deep_event(3, 300),
            deep_event(4, 127),
        ];
        s.write("in.jsonl", events.join("\n") + "\n");
        let p = s.write("p.toml", pipeline(format, filters));
        let out = s.run(&p);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{format} {filters}: {err}");

        let delivered: Vec<u64> = json_lines(&s.path("out.jsonl"))
            .iter()
            .map(|v| v["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(delivered, [0, 2], "{format} {filters:?}");
        let dlq = json_lines(&s.path("dlq.jsonl"));
        assert_eq!(dlq.len(), 3, "{format} {filters:?}: {dlq:#?}");
        for (rec, want) in dlq.iter().zip([&events[1], &events[3], &events[4]]) {
            assert_eq!(rec["error"]["stage"], "source", "{rec}");
            assert_eq!(rec["error"]["kind"], "malformed", "{rec}");
            let msg = rec["error"]["message"].as_str().unwrap();
            assert!(msg.contains("nested deeper than 100 levels"), "{msg}");
            // The record's exact text, as a string the DLQ tools can read back.
            assert_eq!(rec["event"]["data"].as_str(), Some(want.as_str()));
        }
        assert!(
            err.contains("filtered=0") && err.contains("dead_lettered=3"),
            "{format} {filters:?}: {err}"
        );
    }
}

/// A plugin's output nested too deep fails its event (`malformed`, at the plugin's stage)
/// instead of travelling on as a string that templates and filters would misread.
#[test]
fn plugin_output_nested_too_deep_fails_its_event() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        "{\"n\":1}\n{\"n\":2,\"fault\":\"deep\",\"depth\":150}\n{\"n\":3,\"fault\":\"deep\",\"depth\":50}\n",
    );
    let plugin = crate::plugins::plugin("fixtures/faults/faults.wasm");
    let p = s.write(
        "p.toml",
        pipeline("json", "") + &format!("\n[[plugin]]\npath = \"{}\"\n", plugin.display()),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let delivered = json_lines(&s.path("out.jsonl"));
    assert_eq!(delivered.len(), 2, "{delivered:#?}");
    assert_eq!(delivered[0]["n"], 1);
    assert!(delivered[1]["deep"].is_array(), "50 levels are fine");
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 1, "{dlq:#?}");
    assert_eq!(dlq[0]["error"]["stage"], "plugin:faults");
    assert_eq!(dlq[0]["error"]["kind"], "malformed");
    let msg = dlq[0]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("output 0: JSON nested deeper than 100 levels"),
        "{msg}"
    );
    assert_eq!(
        dlq[0]["event"]["data"]["n"], 2,
        "the input event, untouched"
    );
}

/// `weir pattern test PATTERN --event EVENT`: exit code and what it printed.
fn pattern_test(pattern: &str, event: impl AsRef<std::ffi::OsStr>) -> (Option<i32>, String) {
    let out = weir()
        .args(["pattern", "test", "--pattern", pattern, "--event"])
        .arg(event)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn pattern_test_says_an_event_is_too_deep_instead_of_no_match() {
    let s = Scratch::new();
    let pattern = r#"{"data": {"kind": ["order"]}}"#;
    let deep = s.write("deep.json", format!("{{\"data\": {}}}", deep_event(1, 200)));
    let (code, said) = pattern_test(pattern, &deep);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("invalid event: nested deeper than 128 levels"),
        "{said}"
    );

    // Within the limit it matches as usual.
    let ok = s.write("ok.json", format!("{{\"data\": {}}}", deep_event(1, 100)));
    let (code, said) = pattern_test(pattern, &ok);
    assert_eq!(code, Some(0), "{said}");
}

/// EventBridge refuses wildcards whose partial matches could pile up (event-ruler's
/// complexity evaluation); weir refuses the same patterns, with EventBridge's words, in
/// `weir check`, `weir run` and `weir pattern test`, and keeps ordinary wildcards.
#[test]
fn wildcard_patterns_too_complex_for_eventbridge_are_refused() {
    let s = Scratch::new();
    s.write("in.jsonl", "{\"name\": \"a\"}\n");
    let too_complex = r#"{"data": {"name": [{"wildcard": "*a*a*a*a*a*a*a*a*a*a*a*"}]}}"#;
    let p = s.write(
        "p.toml",
        pipeline("auto", &format!("[[filter]]\npattern = '{too_complex}'\n")),
    );
    for out in [s.check(&p), s.run(&p)] {
        let cmd = "check, then run";
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{cmd}: {err}");
        assert!(err.contains("p.toml:"), "{cmd} names the file: {err}");
        assert!(
            err.contains("`filter[0].pattern`: invalid event pattern: Rule is too complex"),
            "{cmd} names the key: {err}"
        );
        assert!(
            err.contains("Rule is too complex - try using fewer wildcard characters"),
            "{cmd}: {err}"
        );
    }
    let (code, said) = pattern_test(too_complex, r#"{"data": {"name": "a"}}"#);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("Rule is too complex"), "{said}");

    // Ordinary wildcards, several on one field, still pass.
    let fine = r#"{"data": {"name": [{"wildcard": "*.png"}, {"wildcard": "img-*-2026*.jpg"}, {"wildcard": "*Title*"}]}}"#;
    let p = s.write(
        "fine.toml",
        pipeline("auto", &format!("[[filter]]\npattern = '{fine}'\n")),
    );
    let out = s.check(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
