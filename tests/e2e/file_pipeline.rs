//! A file pipeline run to completion by the real binary.

use crate::support::*;

fn pipeline(name: &str, source_extra: &str, filters: &str, sink: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\n\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n{source_extra}\n\n{filters}\n[sink]\n{sink}\n"
    )
}

#[test]
fn filters_and_delivers_every_line_in_order() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..1000));
    let filter =
        "[[filter]]\npattern = '{\"data\": {\"detail\": {\"department\": [\"billing\"]}}}'\n";
    let p = s.write(
        "p.toml",
        pipeline(
            "orders",
            "",
            filter,
            "type = \"file\"\npath = \"out/billing.jsonl\"",
        ),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let got: Vec<u64> = json_lines(&s.path("out/billing.jsonl"))
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..1000).filter(|n| n % 3 == 0).collect();
    assert_eq!(got, want, "billing orders, each once, in file order");
    // The data is delivered as it came, byte for byte.
    let first = lines(&s.path("out/billing.jsonl")).remove(0);
    assert_eq!(format!("{first}\n"), order_lines(0..1));
    assert!(
        stderr(&out).contains("delivered=334") && stderr(&out).contains("filtered=666"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_lines_become_strings_and_never_crash() {
    let s = Scratch::new();
    let mut input = order_lines(0..2).into_bytes();
    input.extend_from_slice(b"not json at all\n\n   \ncaf\xe9 \xff bytes\n{\"unterminated\": \n");
    input.extend_from_slice(order_lines(2..3).as_bytes());
    input.extend_from_slice(b"{\"last\": \"line without newline\"}");
    s.write("in.jsonl", &input);
    let p = s.write(
        "p.toml",
        pipeline(
            "mixed",
            "",
            "",
            "type = \"file\"\npath = \"out.jsonl\"\nencoding = \"envelope\"",
        ),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let got = json_lines(&s.path("out.jsonl"));
    let data: Vec<&serde_json::Value> = got.iter().map(|e| &e["data"]).collect();
    assert_eq!(data.len(), 7, "{got:#?}");
    assert_eq!(data[2], "not json at all");
    assert_eq!(
        data[3], "caf\u{fffd} \u{fffd} bytes",
        "invalid UTF-8 is decoded lossily"
    );
    assert_eq!(
        got[3]["meta"]["raw_base64"], "Y2Fm6SD/IGJ5dGVz",
        "and its exact bytes kept"
    );
    assert_eq!(data[4], "{\"unterminated\": ");
    assert_eq!(data[5]["seq"], 2);
    assert_eq!(data[6]["last"], "line without newline");
    // The envelope says where each event came from.
    assert_eq!(got[2]["id"], "in.jsonl:3");
    assert_eq!(got[2]["source"], "file");
    assert_eq!(got[2]["meta"]["line"], 3);
    assert_eq!(got[6]["meta"]["line"], 9, "blank lines count as lines");
}

#[test]
fn json_format_dead_letters_what_is_not_json() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        format!("{}oops\n{}", order_lines(0..1), order_lines(1..2)),
    );
    let p = s.write(
        "p.toml",
        pipeline(
            "strict",
            "format = \"json\"",
            "",
            "type = \"file\"\npath = \"out.jsonl\"",
        ),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    assert_eq!(json_lines(&s.path("out.jsonl")).len(), 2);
    let dlq = json_lines(&s.state_dir().join("strict/dlq.jsonl"));
    assert_eq!(dlq.len(), 1, "{dlq:#?}");
    assert_eq!(
        dlq[0]["event"]["data"], "oops",
        "the original event, untouched"
    );
    assert_eq!(dlq[0]["event"]["id"], "in.jsonl:2");
    assert_eq!(dlq[0]["error"]["stage"], "source");
    assert_eq!(dlq[0]["error"]["kind"], "malformed");
    assert!(
        dlq[0]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not valid JSON"),
        "{}",
        dlq[0]
    );
    assert_eq!(dlq[0]["pipeline"], "strict");
    assert!(stderr(&out).contains("dead_lettered=1"), "{}", stderr(&out));
}

#[test]
fn stdout_sink_writes_only_events_to_stdout() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..5));
    let p = s.write(
        "p.toml",
        pipeline("to-stdout", "batch_size = 2", "", "type = \"stdout\""),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), order_lines(0..5));
}

#[test]
fn a_second_run_resumes_after_the_checkpoint() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..10));
    let p = s.write(
        "p.toml",
        pipeline("resume", "", "", "type = \"file\"\npath = \"out.jsonl\""),
    );
    assert_eq!(s.run(&p).status.code(), Some(0));
    s.append("in.jsonl", order_lines(10..15));
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got: Vec<u64> = json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        (0..15).collect::<Vec<_>>(),
        "each line exactly once over both runs"
    );
}

#[test]
fn runs_every_pipeline_of_a_directory() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..30));
    let one =
        "[[filter]]\npattern = '{\"data\": {\"detail\": {\"department\": [\"shipping\"]}}}'\n";
    let two = "[[filter]]\npattern = '{\"data\": {\"detail\": {\"department\": [\"support\"]}}}'\n";
    s.write(
        "pipes/one.toml",
        pipeline("one", "", one, "type = \"file\"\npath = \"one.jsonl\""),
    );
    s.write(
        "pipes/two.toml",
        pipeline("two", "", two, "type = \"file\"\npath = \"two.jsonl\""),
    );
    let out = s.run(&s.path("pipes"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_lines(&s.path("one.jsonl")).len(), 10);
    assert_eq!(json_lines(&s.path("two.jsonl")).len(), 10);
    assert!(
        s.state_dir().join("one/file-source.json").exists()
            && s.state_dir().join("two/file-source.json").exists()
    );
}

#[test]
fn a_missing_input_file_is_a_clear_error() {
    let s = Scratch::new();
    let p = s.write("p.toml", pipeline("nofile", "", "", "type = \"stdout\""));
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("pipeline nofile") && err.contains("in.jsonl") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn a_sink_template_reshapes_the_output() {
    let s = Scratch::new();
    s.write("in.jsonl", format!("{}plain text\n", order_lines(0..2)));
    let sink = "type = \"file\"\npath = \"out.jsonl\"\ntemplate = '{\"customer\": <$.data.detail.customerId>, \"label\": \"<weir.pipeline>/<$.meta.line>\", \"detail\": <$.data.detail>}'";
    let p = s.write("p.toml", pipeline("shaped", "", "", sink));
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = json_lines(&s.path("out.jsonl"));
    assert_eq!(got.len(), 3);
    assert_eq!(got[1]["customer"], "C001");
    assert_eq!(got[1]["label"], "shaped/2");
    assert_eq!(got[1]["detail"]["orderId"], "O1");
    assert_eq!(
        got[2]["customer"],
        serde_json::Value::Null,
        "a path that matches nothing gives null"
    );
}

#[test]
fn one_failing_pipeline_does_not_stop_the_others() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..20));
    s.write(
        "pipes/good.toml",
        pipeline("good", "", "", "type = \"file\"\npath = \"good.jsonl\""),
    );
    s.write(
        "pipes/broken.toml",
        "[pipeline]\nname = \"broken\"\n[source]\ntype = \"file\"\npath = \"missing.jsonl\"\n[sink]\ntype = \"stdout\"\n",
    );
    let out = s.run(&s.path("pipes"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed pipeline makes the exit status 1"
    );
    assert!(
        stderr(&out).contains("pipeline broken") && stderr(&out).contains("missing.jsonl"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        json_lines(&s.path("good.jsonl")).len(),
        20,
        "the good pipeline ran to the end"
    );
}

#[test]
fn a_failing_sink_is_retried_and_nothing_is_acknowledged_until_it_takes_the_events() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..10));
    // /dev/full accepts the open and fails every write with "no space left on device".
    let p = s.write(
        "p.toml",
        pipeline("full", "", "", "type = \"file\"\npath = \"/dev/full\""),
    );
    let child = s.spawn(&p);
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal(&child, libc::SIGTERM);
    let (code, err) = wait_exit(child);
    assert_eq!(code, Some(1), "events left unfinished: {err}");
    assert!(err.contains("sink write failed; retrying"), "{err}");
    assert!(err.contains("unfinished=10"), "{err}");
    assert!(
        !s.state_dir().join("full/file-source.json").exists(),
        "a checkpoint was saved for undelivered events"
    );

    // With a working sink, every event arrives.
    let p = s.write(
        "p.toml",
        pipeline("full", "", "", "type = \"file\"\npath = \"out.jsonl\""),
    );
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_lines(&s.path("out.jsonl")).len(), 10);
}

#[test]
fn a_failing_dead_letter_queue_keeps_its_events_unacknowledged() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        format!("{}oops\n{}", order_lines(0..1), order_lines(1..2)),
    );
    let strict = |dlq: &str| {
        format!(
            "[pipeline]\nname = \"strict\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nformat = \"json\"\n\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n[dlq]\ntype = \"file\"\npath = \"{dlq}\"\n"
        )
    };
    let p = s.write("p.toml", strict("/dev/full"));
    let child = s.spawn(&p);
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal(&child, libc::SIGTERM);
    let (code, err) = wait_exit(child);
    assert!(err.contains("dead-letter queue write failed"), "{err}");
    // The final checkpoint could not sync the DLQ: that is a failure to report.
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("dlq: cannot write /dev/full"), "{err}");
    assert!(
        !s.state_dir().join("strict/file-source.json").exists(),
        "a checkpoint covered an event the DLQ did not take"
    );

    let p = s.write("p.toml", strict("dlq.jsonl"));
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The good lines were delivered in the first run and again now (at-least-once).
    let seqs: Vec<u64> = json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![0, 1, 0, 1]);
    assert_eq!(json_lines(&s.path("dlq.jsonl"))[0]["event"]["data"], "oops");
}
