//! `weir dry-run PIPELINE.toml --input FILE`: a pipeline's filters, plugins and sink templates on
//! sample events, with the real binary and the real example plugins (scripts/build-plugins.sh),
//! touching neither the source, the sink, the DLQ nor the state directory.

use crate::plugins::plugin;
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;

/// `weir dry-run` in the scratch directory, with a state dir that must stay absent.
fn dry_run(s: &Scratch, pipeline: &Path, input: &str) -> Output {
    s.dry_run(pipeline, input)
        .output()
        .expect("run weir dry-run")
}

fn stdout_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect()
}

/// The names in the scratch directory, sorted.
fn files(s: &Scratch) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn dry_run_reports_every_outcome_with_its_reason_and_what_kafka_would_get() {
    let s = Scratch::new();
    s.write(
        "events.jsonl",
        concat!(
            "{\"seq\":1,\"dept\":\"billing\",\"customer\":\"C1\",\"email\":\"a@b.c\"}\n",
            "{\"seq\":2,\"dept\":\"sales\",\"customer\":\"C2\"}\n",
            "\n",
            "{\"seq\":3,\"dept\":\"billing\",\"customer\":\"C3\",\"fault\":\"error\"}\n",
            "{\"seq\":4,\"dept\":\"billing\",\"customer\":\"C4\",\"fault\":\"split\",\"n\":3}\n",
            "{\"seq\":5,\"dept\":\"billing\"\n",
            "{\"seq\":6,\"dept\":\"billing\",\"customer\":\"C6\",\"fault\":\"trap\"}\n",
            "{\"seq\":7,\"dept\":\"billing\",\"customer\":\"C7\",\"fault\":\"drop\"}\n",
        ),
    );
    // The source names a file that does not exist, the sink a broker nobody listens on, and the
    // DLQ is the default one in the state dir: a dry run needs none of them.
    let p = s.write(
        "p.toml",
        format!(
            r#"[pipeline]
name = "dry"

[source]
type = "file"
path = "in.jsonl"
format = "json"

[[filter]]
pattern = '{{"data": {{"dept": ["billing"]}}}}'

[[plugin]]
path = {faults:?}
name = "flaky"
timeout_ms = 500

[[plugin]]
path = {redact:?}
config = {{ fields = ["email"] }}

[ordering]
key = "<$.data.customer>"

[sink]
type = "kafka"
brokers = "127.0.0.1:1"
topic = "orders-<$.data.dept>"
key = "cust-<$.data.customer>"
headers = {{ "x-pipeline" = "<weir.pipeline>", "x-seq" = "<$.data.seq>" }}
correlation_header = "x-request-id"
template = '{{"customer": <$.data.customer>, "email": <$.data.email>, "part": <$.data.part>, "label": "<weir.pipeline>/<$.id>"}}'
"#,
            faults = plugin("fixtures/faults/faults.wasm"),
            redact = plugin("redact/redact.wasm"),
        ),
    );
    let out = dry_run(&s, &p, "events.jsonl");
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "something is dead-lettered: {err}"
    );
    assert!(
        err.contains("7 inputs: 2 delivered, 1 filtered, 3 dead-lettered, 1 dropped"),
        "{err}"
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 9, "{lines:#?}");

    // Delivered: the body template, the Kafka sink's topic, key and headers, the ordering key.
    let body = |customer: &str, email: Value, part: Value, id: &str| json!({"customer": customer, "email": email, "part": part, "label": format!("dry/{id}")});
    let first = &lines[0];
    assert_eq!(first["input"], 0);
    assert_eq!(first["id"], "events.jsonl:1");
    assert_eq!(first["outcome"], "delivered");
    assert_eq!(first["key"], "C1", "[ordering] key applied");
    let sink = &first["sink"];
    let sent: Value = serde_json::from_str(sink["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        body("C1", json!("***"), Value::Null, "events.jsonl:1"),
        "rendered after the redact plugin"
    );
    assert_eq!(sink["topic"], "orders-billing");
    assert_eq!(sink["key"], "cust-C1");
    assert_eq!(sink["partition"], Value::Null);
    let headers = sink["headers"].as_array().unwrap();
    assert!(
        headers.contains(&json!(["x-pipeline", "dry"])),
        "{headers:?}"
    );
    assert!(headers.contains(&json!(["x-seq", "1"])), "{headers:?}");
    // The correlation id (no `[pipeline] correlation_id`: the event's id) under the header
    // `correlation_header` names, and under no other.
    assert!(
        headers.contains(&json!(["x-request-id", "events.jsonl:1"])),
        "{headers:?}"
    );
    assert_eq!(headers.len(), 3, "{headers:?}");

    // Filtered, with why: the one filter's failing field and values.
    assert_eq!(
        lines[1],
        json!({"input": 1, "id": "events.jsonl:2", "outcome": "filtered", "why": [
            {"filter": 0, "field": "data.dept", "reason": "\"sales\" does not match [\"billing\"]"}
        ]})
    );

    // A failure the plugin reports: its stage (the plugin's name), kind and message. The blank
    // line is no input, but counts for the line numbers.
    assert_eq!(
        lines[2],
        json!({"input": 2, "id": "events.jsonl:4", "outcome": "dead-lettered",
            "stage": "plugin:flaky", "kind": "error", "reason": "asked to fail"})
    );

    // A split: one line per emitted event, each with its own id and body, same input.
    for part in 0..3 {
        let l = &lines[3 + part];
        let id = format!("events.jsonl:5#{part}");
        assert_eq!(l["input"], 3, "{l}");
        assert_eq!(l["id"], id.as_str());
        assert_eq!(l["outcome"], "delivered");
        assert_eq!(l["key"], "C4");
        let sent: Value = serde_json::from_str(l["sink"]["body"].as_str().unwrap()).unwrap();
        assert_eq!(sent, body("C4", Value::Null, json!(part), &id));
    }

    // A line that is not JSON (`format = "json"`): dead-lettered at the source.
    let malformed = &lines[6];
    assert_eq!(malformed["input"], 4);
    assert_eq!(malformed["id"], "events.jsonl:6");
    assert_eq!(malformed["outcome"], "dead-lettered");
    assert_eq!(malformed["stage"], "source");
    assert_eq!(malformed["kind"], "malformed");
    assert!(
        malformed["reason"]
            .as_str()
            .unwrap()
            .starts_with("not valid JSON: "),
        "{malformed}"
    );

    // A trap, isolated to its event, explained by the plugin's panic message.
    let mut trap = lines[7].clone();
    let reason = trap["reason"].take();
    assert!(
        reason
            .as_str()
            .unwrap()
            .starts_with("plugin flaky trapped: asked to trap (lib.rs, line "),
        "{reason}"
    );
    assert_eq!(
        trap,
        json!({"input": 5, "id": "events.jsonl:7", "outcome": "dead-lettered",
            "stage": "plugin:flaky", "kind": "trap", "reason": null})
    );

    // A plugin that emits nothing.
    assert_eq!(
        lines[8],
        json!({"input": 6, "id": "events.jsonl:8", "outcome": "dropped", "stage": "plugin:flaky"})
    );

    // Nothing was created: no state dir (checkpoint, default DLQ, plugin cache), no source.
    assert_eq!(files(&s), ["events.jsonl", "p.toml"]);

    // `correlation_header = ""`: no correlation header at all, the user's headers still sent.
    let text = std::fs::read_to_string(&p).unwrap();
    s.write("p.toml", text.replace("\"x-request-id\"", "\"\""));
    let lines = stdout_lines(&dry_run(&s, &p, "events.jsonl"));
    let headers = lines[0]["sink"]["headers"].as_array().unwrap();
    let names: Vec<&str> = headers.iter().filter_map(|h| h[0].as_str()).collect();
    assert_eq!(names, ["x-pipeline", "x-seq"], "{headers:?}");
}

#[test]
fn dry_run_leaves_the_file_sink_dlq_and_state_alone_and_exits_0_when_nothing_fails() {
    let s = Scratch::new();
    let input = "{\"seq\":1,\"detail\":{\"orderId\":\"o1\",\"items\":[{\"sku\":\"A\"},{\"sku\":\"B\"}]}}\n\
                 {\"seq\":2,\"detail\":{\"orderId\":\"o2\",\"items\":[]}}\n";
    s.write("in.jsonl", input);
    // The input is the source's own file: it must not be checkpointed or changed.
    let p = s.write(
        "p.toml",
        format!(
            "[pipeline]\nname = \"files\"\n\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\n\
             [[plugin]]\npath = {:?}\nconfig = {{ key_by = \"sku\" }}\n\n\
             [sink]\ntype = \"file\"\npath = \"out/sink.jsonl\"\nencoding = \"envelope\"\n\n\
             [dlq]\ntype = \"file\"\npath = \"dlq/dlq.jsonl\"\n",
            plugin("split-order/split-order.wasm")
        ),
    );
    let out = dry_run(&s, &p, "in.jsonl");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("2 inputs: 1 delivered, 0 filtered, 0 dead-lettered, 1 dropped"),
        "{err}"
    );
    let lines = stdout_lines(&out);
    let got: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|l| {
            let envelope: Value = match l["sink"]["body"].as_str() {
                Some(b) => serde_json::from_str(b).unwrap(),
                None => Value::Null,
            };
            (
                l["id"].as_str().unwrap().to_owned(),
                l["outcome"].as_str().unwrap().to_owned(),
                l["sink"]["path"].as_str().unwrap_or("").to_owned(),
                envelope["data"]["detail"]["sku"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let row = |id: &str, outcome: &str, path: &str, sku: &str| {
        (id.into(), outcome.into(), path.into(), sku.into())
    };
    assert_eq!(
        got,
        [
            row("in.jsonl:1#0", "delivered", "out/sink.jsonl", "A"),
            row("in.jsonl:1#1", "delivered", "out/sink.jsonl", "B"),
            row("in.jsonl:2", "dropped", "", ""),
        ]
    );
    assert_eq!(lines[0]["key"], "A", "the plugin's key");
    assert_eq!(lines[2]["stage"], "plugin:split-order");

    assert_eq!(files(&s), ["in.jsonl", "p.toml"], "no sink, DLQ or state");
    assert_eq!(std::fs::read_to_string(s.path("in.jsonl")).unwrap(), input);
}

#[test]
fn dry_run_dead_letters_what_the_sqs_sink_would_refuse_and_shows_its_message() {
    let s = Scratch::new();
    s.write(
        "events.txt",
        "{\"msg\":\"hi\",\"group\":\"g1\",\"order\":\"o1\"}\n{\"group\":\"g2\"}\n",
    );
    let p = s.write(
        "p.toml",
        r#"[pipeline]
name = "queue"

[source]
type = "sqs"
queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/in"

[sink]
type = "sqs"
queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/out.fifo"
endpoint_url = "http://127.0.0.1:1"
message_group_id = "<$.data.group>"
message_deduplication_id = "<$.data.order>"
attributes = { from = "<weir.pipeline>" }
correlation_attribute = "request-id"
template = "<$.data.msg>"
"#,
    );
    let out = dry_run(&s, &p, "events.txt");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let sink = &lines[0]["sink"];
    assert_eq!(lines[0]["outcome"], "delivered");
    assert_eq!(sink["body"], "hi");
    assert_eq!(sink["message_group_id"], "g1");
    assert_eq!(sink["message_deduplication_id"], "o1");
    assert_eq!(sink["attributes"]["from"], "queue");
    assert_eq!(
        sink["attributes"]["request-id"], "events.txt:1",
        "the correlation id, under the attribute `correlation_attribute` names"
    );
    assert_eq!(sink["attributes"].as_object().unwrap().len(), 2, "{sink}");
    // An empty body: SQS would refuse it, so the sink dead-letters it without a call.
    assert_eq!(
        lines[1],
        json!({"input": 1, "id": "events.txt:2", "outcome": "dead-lettered", "stage": "sink",
            "kind": "rejected",
            "reason": "sqs: an empty message body (SQS needs at least one character)"})
    );
}

#[test]
fn dry_run_of_an_invalid_pipeline_or_an_unreadable_input_exits_2() {
    let s = Scratch::new();
    s.write("events.jsonl", "{\"a\":1}\n");
    let bad = s.write(
        "bad.toml",
        "[pipeline]\nname = \"bad\"\n\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\n\
         [[filter]]\npattern = '{\"data\": {\"n\": [{\"numeric\": [\">\", \"x\"]}]}}'\n\n\
         [sink]\ntype = \"stdout\"\n",
    );
    let out = dry_run(&s, &bad, "events.jsonl");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.toml:9:1: `filter[0].pattern`: invalid event pattern"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let good = s.write(
        "good.toml",
        "[pipeline]\nname = \"good\"\n\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\n\
         [sink]\ntype = \"stdout\"\n",
    );
    let out = dry_run(&s, &good, "missing.jsonl");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot open missing.jsonl"), "{err}");

    let missing_plugin = s.write(
        "plugin.toml",
        "[pipeline]\nname = \"p\"\n\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\n\
         [[plugin]]\npath = \"nowhere.wasm\"\n\n[sink]\ntype = \"stdout\"\n",
    );
    let out = dry_run(&s, &missing_plugin, "events.jsonl");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nowhere.wasm"), "{err}");
    assert!(out.stdout.is_empty());
}
