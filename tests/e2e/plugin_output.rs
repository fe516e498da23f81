//! What a plugin says: its stdout and stderr are logged with the pipeline, plugin and event, a
//! trap's DLQ reason is the plugin's own last words (a Rust panic message, a JavaScript
//! exception), a stack overflow is named as such, a flood of log lines is capped, and an output
//! that is not UTF-8 keeps its exact bytes. With the fault fixture and the real JavaScript example.

use crate::plugins::{counts, pipeline, plugin, seed_compiled};
use crate::support::*;

/// `(seq, kind, message)` of each DLQ record, in order.
fn dead_letters(s: &Scratch) -> Vec<(u64, String, String)> {
    json_lines(&s.path("dlq.jsonl"))
        .iter()
        .map(|r| {
            (
                r["event"]["data"]["seq"].as_u64().unwrap_or(u64::MAX),
                r["error"]["kind"].as_str().unwrap().to_owned(),
                r["error"]["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_trap_is_explained_in_the_plugins_words_and_what_it_prints_is_logged_with_its_event() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        concat!(
            "{\"seq\":0}\n",
            "{\"seq\":1,\"fault\":\"say_and_trap\",\"message\":\"no detail in the event\"}\n",
            "{\"seq\":2,\"fault\":\"recurse\",\"framed\":true}\n",
            "{\"seq\":3,\"fault\":\"recurse\"}\n",
            "{\"seq\":4,\"fault\":\"print\",\"times\":2}\n",
            "{\"seq\":5,\"fault\":\"bytes\"}\n",
        ),
    );
    let plugins = format!(
        "[[plugin]]\npath = {:?}\nname = \"talky\"\n",
        plugin("fixtures/faults/faults.wasm")
    );
    // The whole envelope, to see `meta`.
    let p = s.write(
        "p.toml",
        pipeline("talky", "", &plugins).replace(
            "path = \"out.jsonl\"\n",
            "path = \"out.jsonl\"\nencoding = \"envelope\"\n",
        ),
    );
    let out = s.run(&p);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");

    let dlq = dead_letters(&s);
    assert_eq!(dlq.len(), 3, "{dlq:?}");
    // The panic message and where, not "unreachable" (what Rust's abort compiles to).
    assert_eq!((dlq[0].0, dlq[0].1.as_str()), (1, "trap"));
    assert!(
        dlq[0]
            .2
            .starts_with("plugin talky trapped: no detail in the event (lib.rs, line "),
        "{dlq:?}"
    );
    // Recursion that exhausts the stack Rust keeps in linear memory used to read "out-of-bounds
    // memory access"; the one of Wasm's own stack was already named.
    assert_eq!(
        dlq[1..],
        [
            (
                2,
                "trap".to_owned(),
                "plugin talky trapped: stack overflow (the stack in the plugin's memory ran out)"
                    .to_owned()
            ),
            (
                3,
                "trap".to_owned(),
                "plugin talky trapped: stack overflow".to_owned()
            ),
        ]
    );

    // What it printed is in the log, tagged with the event whose call printed it (or the batch:
    // a call is for a batch, and which of its events printed is not known).
    let tagged = |text: &str, event: u64| {
        let l = log
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text:?} not logged:\n{log}"));
        let id = format!("in.jsonl:{event}");
        l.contains(&format!("event=\"{id}\""))
            || l.contains(&format!("{id} .. "))
            || l.contains(&format!(".. {id} ("))
    };
    assert!(tagged("about to fail", 2), "{log}");
    assert!(tagged("stdout 1", 5), "{log}");
    assert!(tagged("stderr 0", 5), "{log}");
    assert!(
        log.lines().any(|l| l.contains("stdout 0")
            && l.contains("stream=\"stdout\"")
            && l.contains("pipeline=\"talky\" plugin=\"talky\"")),
        "{log}"
    );
    // The traceback of the failing event is logged once, from its call alone, not again on
    // every step of isolating it.
    assert_eq!(log.matches("about to fail").count(), 1, "{log}");

    // An output that is not UTF-8 keeps its bytes, as a source record does.
    let got = json_lines(&s.path("out.jsonl"));
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[2]["data"], "{\u{fffd}\u{fffd}}", "decoded lossily");
    assert_eq!(got[2]["meta"]["raw_base64"], "e//+fQ==", "its exact bytes");
    assert!(got[0]["meta"].get("raw_base64").is_none());
    assert_eq!(counts(&log), (6, 3, 0, 3));
}

#[test]
fn a_javascript_exception_is_the_dead_letter_reason() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        concat!(
            "{\"seq\":0,\"detail\":{\"amount\":5,\"items\":[{\"qty\":1}]}}\n",
            "{\"seq\":1,\"detail\":{\"amount\":5,\"items\":[null]}}\n",
            "{\"seq\":2,\"detail\":{\"amount\":500}}\n",
        ),
    );
    let wasm = plugin("enrich-js/enrich.wasm");
    seed_compiled(&s, &wasm);
    let plugins = format!("[[plugin]]\npath = {wasm:?}\n");
    let p = s.write("p.toml", pipeline("enrich-throws", "", &plugins));
    let out = s.run(&p);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let dlq = dead_letters(&s);
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!((dlq[0].0, dlq[0].1.as_str()), (1, "trap"));
    assert!(
        dlq[0].2.starts_with(
            "plugin enrich trapped: can't access property \"qty\", item is null (enrich.js, line "
        ),
        "{dlq:?}"
    );
    let sizes: Vec<String> = json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| v["detail"]["size"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sizes, ["small", "large"]);
    assert_eq!(counts(&log), (3, 2, 0, 1));
}

#[test]
fn a_plugin_that_floods_the_log_is_capped_and_told_how_much_was_dropped() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        concat!(
            "{\"seq\":0,\"fault\":\"print\",\"times\":0,\"width\":4000000}\n",
            "{\"seq\":1,\"fault\":\"print\",\"times\":3000}\n",
            "{\"seq\":2,\"fault\":\"log\",\"times\":3000,\"message\":\"again\"}\n",
        ),
    );
    let plugins = format!(
        "[[plugin]]\npath = {:?}\nname = \"flood\"\n",
        plugin("fixtures/faults/faults.wasm")
    );
    let p = s.write("p.toml", pipeline("flood", "", &plugins));
    let out = s.run(&p);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_eq!(counts(&log), (3, 3, 0, 0));

    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plugin=\"flood\"") && l.contains("stream="))
        .collect();
    assert_eq!(said.len(), 100, "100 lines per 10 s");
    // A 4 MB line is cut, and says by how much.
    let wide = said
        .iter()
        .find(|l| l.contains("www"))
        .expect("the wide line");
    assert!(wide.len() < 2500, "{}", wide.len());
    assert!(wide.contains("more bytes cut"), "{wide:.200}");
    assert!(
        log.contains("plugin log limit reached; its further lines in this window are dropped"),
        "{log:.2000}"
    );
    // 3000 + 3000 (stdout and stderr) + 3000 log lines + 1 wide line, 100 written.
    assert!(
        log.lines()
            .any(|l| l.contains("plugin log lines dropped over the limit")
                && l.contains("dropped=8901")),
        "{}",
        log.lines()
            .filter(|l| !l.contains("stream="))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
