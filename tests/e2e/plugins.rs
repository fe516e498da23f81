//! Wasm plugins in real pipelines and through `weir plugin test`, with the real example plugins
//! (plugins/) and a fixture that misbehaves on demand (plugins/fixtures/faults). Build them first
//! with scripts/build-plugins.sh (scripts/test.sh does).

use crate::support::*;
use serde_json::Value;
use std::path::PathBuf;

/// A built plugin, by its path under plugins/.
pub(crate) fn plugin(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(rel);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/build-plugins.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A file-to-file pipeline (`in.jsonl` to `out.jsonl`, DLQ `dlq.jsonl`) with these filters and
/// plugins.
pub(crate) fn pipeline(name: &str, filters: &str, plugins: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\n\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\n{filters}\n{plugins}\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n\n[dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n"
    )
}

/// `received=R delivered=D filtered=F dead_lettered=X` from the final log line, checked to add up.
pub(crate) fn counts(stderr: &str) -> (u64, u64, u64, u64) {
    let line = stderr
        .lines()
        .rfind(|l| l.contains("pipeline stopped"))
        .unwrap_or_else(|| panic!("no final counts in:\n{stderr}"));
    let get = |k: &str| -> u64 {
        let at = line
            .find(&format!("{k}="))
            .unwrap_or_else(|| panic!("{k} missing: {line}"));
        line[at + k.len() + 1..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad {k}: {line}"))
    };
    let c = (
        get("received"),
        get("delivered"),
        get("filtered"),
        get("dead_lettered"),
    );
    assert_eq!(
        c.0,
        c.1 + c.2 + c.3,
        "received = delivered + filtered + dead_lettered: {line}"
    );
    c
}

#[test]
fn redact_after_the_filter_and_a_restart_loads_the_compiled_cache() {
    let s = Scratch::new();
    let lines: String = (0..300)
        .map(|n| format!("{{\"seq\":{n},\"dept\":\"{}\",\"customer\":{{\"email\":\"c{n}@x.org\",\"name\":\"N{n}\"}}}}\n",
            if n % 2 == 0 { "billing" } else { "other" }))
        .collect();
    s.write("in.jsonl", lines);
    let plugins = format!(
        "[[plugin]]\npath = {:?}\ntimeout_ms = 500\nmemory_mb = 32\nconfig = {{ fields = [\"email\"] }}\n",
        plugin("redact/redact.wasm")
    );
    let p = s.write(
        "p.toml",
        pipeline(
            "redacting",
            "[[filter]]\npattern = '{\"data\": {\"dept\": [\"billing\"]}}'\n",
            &plugins,
        ),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let got = json_lines(&s.path("out.jsonl"));
    assert_eq!(got.len(), 150);
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v["seq"], (i * 2) as u64, "order kept");
        assert_eq!(v["customer"]["email"], "***");
        assert_eq!(v["customer"]["name"], format!("N{}", i * 2));
    }
    assert_eq!(counts(&err), (300, 150, 150, 0));
    assert!(err.contains("origin=Compiled"), "{err}");
    let cached: Vec<_> = std::fs::read_dir(s.state_dir().join(".plugin-cache"))
        .expect("cache directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached.len() == 1 && cached[0].ends_with(".cwasm"),
        "{cached:?}"
    );

    // A restart (from scratch: new state for the pipeline, same cache) loads the artifact.
    std::fs::remove_dir_all(s.state_dir().join("redacting")).unwrap();
    std::fs::remove_file(s.path("out.jsonl")).unwrap();
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("origin=Cached"), "{err}");
    assert_eq!(json_lines(&s.path("out.jsonl")).len(), 150);
}

/// One plugin's output changes the event in place (`redact`), the next plugin fails it
/// (`faults`): retryably until `[retry]` runs out, or for good. Either way the DLQ record holds
/// the event as the source produced it, not as the first plugin left it; the event that passes
/// is delivered as both plugins made it.
#[test]
fn an_event_changed_by_one_plugin_and_failed_by_the_next_is_dead_lettered_as_it_came() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        concat!(
            "{\"email\":\"a@x\",\"fault\":\"retryable\",\"message\":\"down\"}\n",
            "{\"email\":\"b@x\",\"fault\":\"error\"}\n",
            "{\"email\":\"c@x\"}\n",
        ),
    );
    let plugins = format!(
        "[[plugin]]\npath = {:?}\nconfig = {{ fields = [\"email\"] }}\n\n[[plugin]]\npath = {:?}\n",
        plugin("redact/redact.wasm"),
        plugin("fixtures/faults/faults.wasm")
    );
    let retry = "[retry]\nmax_attempts = 3\nbackoff_ms = [1, 5]\n";
    let p = s.write("p.toml", pipeline("changed-then-failed", retry, &plugins));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        json_lines(&s.path("out.jsonl")),
        [serde_json::json!({"email": "***", "seen_by": "faults"})]
    );
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    assert_eq!(dlq[0]["error"]["stage"], "plugin:faults");
    assert_eq!(dlq[0]["error"]["kind"], "exhausted");
    assert_eq!(dlq[0]["error"]["attempts"], 3);
    assert_eq!(
        dlq[0]["event"]["data"],
        serde_json::json!({"email": "a@x", "fault": "retryable", "message": "down"}),
        "the source's event after every retry, not redact's output"
    );
    assert_eq!(dlq[1]["error"]["kind"], "error");
    assert_eq!(
        dlq[1]["event"]["data"],
        serde_json::json!({"email": "b@x", "fault": "error"}),
        "the source's event, not redact's output"
    );
    assert_eq!(counts(&err), (3, 1, 0, 2));
}

#[test]
fn split_emits_one_event_per_item_drops_empty_orders_and_dead_letters_bad_ones() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        concat!(
            "{\"detail\":{\"orderId\":\"o1\",\"customerId\":\"c1\",\"items\":[{\"sku\":\"A\",\"qty\":2},{\"sku\":\"B\",\"qty\":1}]}}\n",
            "{\"detail\":{\"orderId\":\"o2\",\"customerId\":\"c2\",\"items\":[]}}\n",
            "{\"detail\":{\"orderId\":\"o3\",\"customerId\":\"c3\"}}\n",
            "{\"detail\":{\"orderId\":\"o4\",\"customerId\":\"c4\",\"items\":[{\"sku\":\"C\",\"qty\":5}]}}\n",
        ),
    );
    let plugins = format!(
        "[[plugin]]\npath = {:?}\nconfig = {{ key_by = \"sku\" }}\n",
        plugin("split-order/split-order.wasm")
    );
    let p = s.write("p.toml", pipeline("split", "", &plugins));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let got: Vec<(String, String, u64)> = json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| {
            let d = &v["detail"];
            (
                d["orderId"].as_str().unwrap().into(),
                d["sku"].as_str().unwrap().into(),
                d["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("o1".into(), "A".into(), 0),
            ("o1".into(), "B".into(), 1),
            ("o4".into(), "C".into(), 0)
        ]
    );
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["error"]["stage"], "plugin:split-order");
    assert_eq!(dlq[0]["error"]["kind"], "error");
    assert_eq!(dlq[0]["error"]["message"], "no `detail.items` list");
    assert_eq!(
        dlq[0]["event"]["data"]["detail"]["orderId"], "o3",
        "the original event, untouched"
    );
    assert_eq!(counts(&err), (4, 2, 1, 1));
}

#[test]
fn traps_loops_memory_and_slowness_fail_only_their_own_events() {
    let s = Scratch::new();
    let faults = [
        (3, r#""fault":"trap""#),
        (7, r#""fault":"loop""#),
        (11, r#""fault":"alloc""#),
        (13, r#""fault":"slow","ms":5000"#),
        (17, r#""fault":"error""#),
        (19, r#""fault":"drop""#),
        (23, r#""fault":"slow","ms":1"#),
    ];
    let mut lines = String::new();
    for n in 0..40 {
        match faults.iter().find(|(at, _)| *at == n) {
            Some((_, f)) => lines.push_str(&format!("{{\"seq\":{n},{f}}}\n")),
            None => lines.push_str(&format!("{{\"seq\":{n}}}\n")),
        }
    }
    s.write("in.jsonl", lines);
    let plugins = format!(
        "[[plugin]]\npath = {:?}\nname = \"flaky\"\ntimeout_ms = 200\nmemory_mb = 32\n",
        plugin("fixtures/faults/faults.wasm")
    );
    let p = s.write("p.toml", pipeline("faulty", "", &plugins));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");

    let delivered: Vec<u64> = json_lines(&s.path("out.jsonl"))
        .iter()
        .inspect(|v| assert_eq!(v["seen_by"], "faults"))
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..40)
        .filter(|n| ![3, 7, 11, 13, 17, 19].contains(n))
        .collect();
    assert_eq!(delivered, want, "every other event, once, in order");

    let mut dlq: Vec<(u64, String, String)> = json_lines(&s.path("dlq.jsonl"))
        .iter()
        .map(|r| {
            assert_eq!(r["error"]["stage"], "plugin:flaky");
            (
                r["event"]["data"]["seq"].as_u64().unwrap(),
                r["error"]["kind"].as_str().unwrap().to_owned(),
                r["error"]["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    dlq.sort();
    // A panic is reported in the plugin's words (its panic message and where), not as the
    // `unreachable` instruction Rust's abort compiles to.
    let (trap_seq, trap_kind, trap_message) = dlq.remove(0);
    assert_eq!((trap_seq, trap_kind.as_str()), (3, "trap"));
    assert!(
        trap_message.starts_with("plugin flaky trapped: asked to trap (lib.rs, line "),
        "{trap_message}"
    );
    let expect = |seq: u64, kind: &str, message: &str| (seq, kind.to_owned(), message.to_owned());
    assert_eq!(
        dlq,
        [
            expect(7, "timeout", "plugin flaky exceeded 200 ms"),
            expect(11, "memory", "plugin flaky exceeded 32 MiB"),
            expect(13, "timeout", "plugin flaky exceeded 200 ms"),
            expect(17, "error", "asked to fail"),
        ]
    );
    assert_eq!(counts(&err), (40, 34, 1, 5));
}

#[test]
fn plugins_chain_in_order() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        "{\"fault\":\"split\",\"n\":2,\"email\":\"a@b\"}\n{\"email\":\"c@d\"}\n",
    );
    let plugins = format!(
        "[[plugin]]\npath = {:?}\n\n[[plugin]]\npath = {:?}\nconfig = {{ fields = [\"email\", \"seen_by\"] }}\n",
        plugin("fixtures/faults/faults.wasm"),
        plugin("redact/redact.wasm")
    );
    let p = s.write("p.toml", pipeline("chain", "", &plugins));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let got = json_lines(&s.path("out.jsonl"));
    let want: Vec<Value> = [
        r#"{"fault":"split","n":2,"email":"***","part":0}"#,
        r#"{"fault":"split","n":2,"email":"***","part":1}"#,
        r#"{"email":"***","seen_by":"***"}"#,
    ]
    .iter()
    .map(|t| serde_json::from_str(t).unwrap())
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        counts(&err),
        (2, 2, 0, 0),
        "a split event counts once, as delivered"
    );
}

#[test]
fn plugins_ask_for_each_events_metadata_also_after_a_trap_splits_the_batch() {
    // `host.metadata(i)` answers for event i of the call under way. A trap makes the host retry
    // halves of the batch, whose events the plugin numbers from 0 again: each must still get its
    // own metadata (its own line number), not that of the event at the same index of the batch.
    let s = Scratch::new();
    let lines: String = (1..=6)
        .map(|n| match n {
            4 => "{\"fault\":\"trap\",\"req\":\"r4\"}\n".to_owned(),
            n => format!("{{\"fault\":\"metadata\",\"req\":\"r{n}\"}}\n"),
        })
        .collect();
    s.write("in.jsonl", lines);
    let plugins = format!(
        "[[plugin]]\npath = {:?}\n",
        plugin("fixtures/faults/faults.wasm")
    );
    let p = s.write(
        "p.toml",
        pipeline("meta", "", &plugins).replace(
            "name = \"meta\"\n",
            "name = \"meta\"\ncorrelation_id = \"<$.data.req>\"\n",
        ),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let got = json_lines(&s.path("out.jsonl"));
    assert_eq!(got.len(), 5, "every event but the trapping one: {got:?}");
    for (v, line) in got.iter().zip([1, 2, 3, 5, 6]) {
        let m = &v["metadata"];
        assert_eq!(m["source"], "file", "{v}");
        assert_eq!(m["meta.line"], line.to_string(), "{v}");
        assert_eq!(m["meta.correlation_id"], format!("r{line}"), "{v}");
        assert!(
            m["meta.path"]
                .as_str()
                .is_some_and(|p| p.ends_with("in.jsonl")),
            "{v}"
        );
        let time = m["time"].as_str().unwrap_or_default();
        assert!(time.len() >= 20 && time.contains('T'), "RFC 3339: {v}");
        assert_eq!(v["beyond"], 0, "an index past the batch gets nothing: {v}");
    }
    assert_eq!(counts(&err), (6, 5, 0, 1));
}

#[test]
fn a_bad_init_config_or_a_corrupt_wasm_fails_the_pipeline_with_the_reason() {
    let s = Scratch::new();
    s.write("in.jsonl", "{}\n");
    let plugins = format!("[[plugin]]\npath = {:?}\n", plugin("redact/redact.wasm"));
    let p = s.write("p.toml", pipeline("noinit", "", &plugins));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("plugin redact: init failed: config.fields is required"),
        "{err}"
    );

    s.write("corrupt.wasm", b"\0asm\x0d\0\x01\0garbage");
    let p = s.write(
        "p2.toml",
        pipeline("corrupt", "", "[[plugin]]\npath = \"corrupt.wasm\"\n"),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("plugin corrupt: corrupt.wasm is not a valid weir plugin component"),
        "{err}"
    );
    assert!(!s.path("out.jsonl").exists());
}

#[test]
fn plugin_test_prints_outputs_drops_and_errors() {
    let s = Scratch::new();
    let input = s.write(
        "events.jsonl",
        "{\"a\":1}\n{\"fault\":\"drop\"}\n{\"fault\":\"trap\"}\nnot json\n{\"fault\":\"split\",\"n\":2}\n",
    );
    let out = weir()
        .args(["plugin", "test"])
        .arg(plugin("fixtures/faults/faults.wasm"))
        .arg("--input")
        .arg(&input)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an event failed: {}",
        stderr(&out)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let name = input.display().to_string();
    // A failed event shows what the plugin wrote in the call that failed on it alone.
    let mut lines = lines;
    let error = lines[2]["error"].as_object_mut().unwrap();
    let output = error.remove("output").expect("the plugin's output");
    assert!(
        output.as_str().unwrap().contains("panicked at")
            && output.as_str().unwrap().contains("asked to trap"),
        "{output}"
    );
    let message = error.remove("message").unwrap();
    assert!(
        message
            .as_str()
            .unwrap()
            .starts_with("plugin faults trapped: asked to trap (lib.rs, line "),
        "{message}"
    );
    let want: Vec<Value> = vec![
        serde_json::json!({"input": 0, "id": format!("{name}:1"), "output": {"a": 1, "seen_by": "faults"}}),
        serde_json::json!({"input": 1, "id": format!("{name}:2"), "dropped": true}),
        serde_json::json!({"input": 2, "id": format!("{name}:3"), "error": {"kind": "trap"}}),
        serde_json::json!({"input": 3, "id": format!("{name}:4"), "output": "not json"}),
        serde_json::json!({"input": 4, "id": format!("{name}:5#0"), "output": {"fault": "split", "n": 2, "part": 0}}),
        serde_json::json!({"input": 4, "id": format!("{name}:5#1"), "output": {"fault": "split", "n": 2, "part": 1}}),
    ];
    assert_eq!(lines, want);

    // --config reaches init; a bad one is the plugin's own message, exit 2.
    let out = weir()
        .args(["plugin", "test"])
        .arg(plugin("redact/redact.wasm"))
        .arg("--input")
        .arg(&input)
        .args(["--config", r#"{"fields": "email"}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("init failed: config.fields must be a list of strings"),
        "{}",
        stderr(&out)
    );

    let corrupt = s.write("corrupt.wasm", b"not wasm at all");
    let out = weir()
        .args(["plugin", "test"])
        .arg(&corrupt)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a valid weir plugin component"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hot_reload_under_a_continuous_stream_runs_each_event_through_exactly_one_version() {
    let s = Scratch::new();
    std::fs::copy(plugin("fixtures/faults/faults.wasm"), s.path("plugin.wasm")).unwrap();
    s.write("in.jsonl", "");
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"reload\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\npoll_interval_ms = 10\n\
         [[plugin]]\npath = \"plugin.wasm\"\nname = \"live\"\nconfig = { fields = [\"email\"] }\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let child = s.spawn_logged(&p);
    let log_has = |what: &str| s.log().contains(what);
    let out_len = || lines(&s.path("out.jsonl")).len();

    // A writer appends events the whole time; the main thread swaps the plugin under it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (stop, written, path) = (stop.clone(), written.clone(), s.path("in.jsonl"));
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                writeln!(f, "{{\"seq\":{n},\"email\":\"u{n}@x.org\"}}").unwrap();
                n += 1;
                written.store(n, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    wait_for("events through the first version", || out_len() >= 200);

    // A broken new version is refused and the running one keeps going.
    s.write("plugin.wasm.tmp", b"\0asm broken");
    std::fs::rename(s.path("plugin.wasm.tmp"), s.path("plugin.wasm")).unwrap();
    wait_for("the refusal to be logged", || {
        log_has("new plugin version not loaded")
    });
    let seen = out_len();
    wait_for("more events through the old version", || {
        out_len() >= seen + 100
    });

    // A good new version (redact) takes over at a batch boundary.
    std::fs::copy(plugin("redact/redact.wasm"), s.path("plugin.wasm.tmp")).unwrap();
    std::fs::rename(s.path("plugin.wasm.tmp"), s.path("plugin.wasm")).unwrap();
    wait_for("the swap", || log_has("plugin reloaded"));
    let seen = out_len();
    wait_for("events through the new version", || out_len() >= seen + 200);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(std::sync::atomic::Ordering::Relaxed);
    wait_for("every event out", || out_len() as u64 == total);
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");

    let got = json_lines(&s.path("out.jsonl"));
    let seqs: Vec<u64> = got.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (0..total).collect::<Vec<_>>(),
        "every event exactly once, in order"
    );
    // Old version: `seen_by` added, email kept. New: email redacted, nothing added. One switch.
    let old = |v: &Value| v["seen_by"] == "faults" && v["email"] != "***";
    let new = |v: &Value| v.get("seen_by").is_none() && v["email"] == "***";
    let switch = got
        .iter()
        .position(|v| !old(v))
        .expect("the new version ran");
    assert!(switch >= 300, "the old version ran until the swap");
    assert!(
        got[switch..].iter().all(new),
        "after the switch, only the new version"
    );
    let (_, _, _, dead) = counts(&log);
    assert_eq!(dead, 0);
}

#[test]
fn the_quickstart_runs_filter_then_redact() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let s = Scratch::new();
    for rel in ["pipelines/quickstart.toml", "pipelines/data/orders.jsonl"] {
        s.write(rel, std::fs::read(root.join(rel)).unwrap());
    }
    s.write(
        "plugins/redact/redact.wasm",
        std::fs::read(plugin("redact/redact.wasm")).unwrap(),
    );
    let out = s.run(&s.path("pipelines/quickstart.toml"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = json_lines(&s.path("var/out/quickstart.jsonl"));
    assert!(!got.is_empty());
    for v in &got {
        assert_eq!(v["detail"]["department"], "billing");
        assert!(v["detail"]["amount"].as_f64().unwrap() > 100.0);
        assert_eq!(v["detail"]["email"], "***");
    }
}

/// Seeds `s`'s plugin cache with `wasm` compiled. A JavaScript or Python component embeds a whole
/// interpreter: compiling it takes about a minute in a debug build of weir (seconds in release),
/// for every test that runs it from a fresh state dir. So each is compiled once, by `weir plugin
/// test`, into a cache kept under the target dir across test runs, and each test's state dir gets
/// a copy. Sound for the same reason the host's cache is: an artifact's name is the component's
/// SHA-256 and the engine's fingerprint, so a changed plugin or engine never loads a stale one.
/// (Compiling and caching themselves are tested with redact above.)
pub(crate) fn seed_compiled(s: &Scratch, wasm: &std::path::Path) {
    use sha2::{Digest, Sha256};
    static WARM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let hash: String = Sha256::digest(std::fs::read(wasm).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let shared = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-plugin-state");
    let cached = |dir: &std::path::Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir.join(".plugin-cache"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| {
                        let n = p.file_name().unwrap().to_string_lossy();
                        n.starts_with(&format!("{hash}-")) && n.ends_with(".cwasm")
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // One compile at a time: each one already keeps both cores busy.
    let _one = WARM.lock().unwrap_or_else(|e| e.into_inner());
    // Run it once per test process even if an artifact is there: the engine's fingerprint may have
    // changed since (a new weir), and then this compiles the one that fits.
    static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if !DONE.lock().unwrap().contains(&hash) {
        let input = s.write("warm.jsonl", "{}\n");
        let out = weir()
            .args(["plugin", "test"])
            .arg(wasm)
            .arg("--input")
            .arg(&input)
            .arg("--state-dir")
            .arg(&shared)
            .output()
            .unwrap();
        assert_ne!(
            out.status.code(),
            Some(2),
            "{} did not load: {}",
            wasm.display(),
            stderr(&out)
        );
        DONE.lock().unwrap().push(hash.clone());
    }
    let artifacts = cached(&shared);
    assert!(
        !artifacts.is_empty(),
        "no compiled artifact for {}",
        wasm.display()
    );
    let dest = s.state_dir().join(".plugin-cache");
    std::fs::create_dir_all(&dest).unwrap();
    for a in artifacts {
        let to = dest.join(a.file_name().unwrap());
        if std::fs::hard_link(&a, &to).is_err() {
            std::fs::copy(&a, &to).unwrap();
        }
    }
}

#[test]
fn enrich_in_javascript_adds_computed_fields() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        concat!(
            "{\"detail\":{\"orderId\":\"o1\",\"amount\":131.5,\"items\":[{\"sku\":\"A\",\"qty\":4},{\"sku\":\"B\",\"qty\":1}]}}\n",
            "{\"detail\":{\"orderId\":\"o2\",\"amount\":20}}\n",
            "{\"detail\":{\"orderId\":\"o3\",\"amount\":50,\"items\":[{\"sku\":\"C\"}]}}\n",
            "{\"no_detail\":true}\n",
            "plain text\n",
        ),
    );
    let wasm = plugin("enrich-js/enrich.wasm");
    seed_compiled(&s, &wasm);
    let plugins = format!("[[plugin]]\npath = {wasm:?}\nconfig = {{ large_from = 50 }}\n");
    let p = s.write("p.toml", pipeline("enrich-js", "", &plugins));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("origin=Cached"),
        "the seeded artifact was used: {err}"
    );
    let want: Vec<Value> = [
        r#"{"detail":{"orderId":"o1","amount":131.5,"items":[{"sku":"A","qty":4},{"sku":"B","qty":1}],"itemCount":5,"lineCount":2,"size":"large"}}"#,
        r#"{"detail":{"orderId":"o2","amount":20,"itemCount":0,"lineCount":0,"size":"small"}}"#,
        r#"{"detail":{"orderId":"o3","amount":50,"items":[{"sku":"C"}],"itemCount":0,"lineCount":1,"size":"large"}}"#,
        r#"{"no_detail":true}"#,
    ]
    .iter()
    .map(|t| serde_json::from_str(t).unwrap())
    .collect();
    let got = lines(&s.path("out.jsonl"));
    let json: Vec<Value> = got[..4]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json, want);
    // Text the plugin passed on unchanged is written as it came, not as a JSON string.
    assert_eq!(got[4..], ["plain text"]);
    assert!(!s.path("dlq.jsonl").exists() || lines(&s.path("dlq.jsonl")).is_empty());
    assert_eq!(counts(&err), (5, 5, 0, 0));
}

#[test]
fn classify_in_python_normalises_classifies_and_dead_letters_orders_without_an_amount() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        concat!(
            "{\"detail\":{\"orderId\":\"o1\",\"amount\":1500,\"currency\":\"eur\"}}\n",
            "{\"detail\":{\"orderId\":\"o2\",\"currency\":\"usd\"}}\n",
            "{\"detail\":{\"orderId\":\"o3\",\"amount\":250.5,\"currency\":\"Usd\"}}\n",
            "{\"detail\":{\"orderId\":\"o4\",\"amount\":3}}\n",
        ),
    );
    let wasm = plugin("classify-py/classify.wasm");
    seed_compiled(&s, &wasm);
    let plugins = format!(
        "[[plugin]]\npath = {wasm:?}\nconfig = {{ thresholds = {{ urgent = 1000, normal = 100 }} }}\n"
    );
    let p = s.write("p.toml", pipeline("classify-py", "", &plugins));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let want: Vec<Value> = [
        r#"{"detail":{"orderId":"o1","amount":1500,"currency":"EUR","priority":"urgent"}}"#,
        r#"{"detail":{"orderId":"o3","amount":250.5,"currency":"USD","priority":"normal"}}"#,
        r#"{"detail":{"orderId":"o4","amount":3,"priority":"low"}}"#,
    ]
    .iter()
    .map(|t| serde_json::from_str(t).unwrap())
    .collect();
    assert_eq!(json_lines(&s.path("out.jsonl")), want);
    let dlq = json_lines(&s.path("dlq.jsonl"));
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["error"]["stage"], "plugin:classify");
    assert_eq!(dlq[0]["error"]["kind"], "error");
    assert_eq!(dlq[0]["error"]["message"], "no `detail.amount` number");
    assert_eq!(
        dlq[0]["event"]["data"],
        serde_json::json!({"detail": {"orderId": "o2", "currency": "usd"}}),
        "the original event, untouched"
    );
    assert_eq!(counts(&err), (4, 3, 0, 1));
}

#[test]
fn a_bad_init_config_fails_a_javascript_plugin_with_its_own_message() {
    let s = Scratch::new();
    s.write("in.jsonl", "{}\n");
    let wasm = plugin("enrich-js/enrich.wasm");
    seed_compiled(&s, &wasm);
    let plugins = format!("[[plugin]]\npath = {wasm:?}\nconfig = {{ large_from = \"big\" }}\n");
    let p = s.write("p.toml", pipeline("enrich-bad", "", &plugins));
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("plugin enrich: init failed: config.large_from must be a number"),
        "{err}"
    );
    assert!(!s.path("out.jsonl").exists());
}
