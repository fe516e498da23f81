//! `timeout_ms` and `init_timeout_ms` bound a plugin's wall time, also while it waits in a host
//! call (a WASI sleep: a clock subscription the host waits on, where no Wasm runs that an epoch
//! deadline could stop), and isolating a slow event does not multiply the wait. With the real
//! binary and the fault fixture (plugins/fixtures/faults).

use crate::plugins::{counts, pipeline, plugin};
use crate::support::*;

/// Runs `weir run` on `p` with its log in `weir.log`, `env` set, until it exits (guarded by
/// PATIENCE: a plugin that is not stopped would hold the run for an hour).
fn run_logged(s: &Scratch, p: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let log = std::fs::File::create(s.path("weir.log")).unwrap();
    let child = s
        .weir_run(p)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let (code, _) = wait_exit(child);
    (code, s.log())
}

#[test]
fn a_plugin_asleep_in_a_host_call_is_stopped_at_its_deadline_and_run_alone_once() {
    let s = Scratch::new();
    let sleepers = [5u64, 30];
    let lines: String = (0..40u64)
        .map(|n| match sleepers.contains(&n) {
            true => format!("{{\"seq\":{n},\"fault\":\"sleep\",\"ms\":3600000}}\n"),
            false => format!("{{\"seq\":{n}}}\n"),
        })
        .collect();
    s.write("in.jsonl", lines);
    let plugins = format!(
        "[[plugin]]\npath = {:?}\nname = \"sleepy\"\ntimeout_ms = 200\n",
        plugin("fixtures/faults/faults.wasm")
    );
    let p = s.write("p.toml", pipeline("sleepy", "", &plugins));
    // Debug: the runner says each time a batch failed.
    let (code, log) = run_logged(&s, &p, &[("WEIR_LOG_LEVEL", "debug")]);
    assert_eq!(code, Some(0), "{log}");

    let delivered: Vec<u64> = json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..40).filter(|n| !sleepers.contains(n)).collect();
    assert_eq!(delivered, want, "every other event, once, in order");
    let dlq: Vec<(u64, String, String)> = json_lines(&s.path("dlq.jsonl"))
        .iter()
        .map(|r| {
            (
                r["event"]["data"]["seq"].as_u64().unwrap(),
                r["error"]["kind"].as_str().unwrap().to_owned(),
                r["error"]["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let timeout = |seq| {
        (
            seq,
            "timeout".to_owned(),
            "plugin sleepy exceeded 200 ms".to_owned(),
        )
    };
    assert_eq!(dlq, [timeout(5), timeout(30)]);
    assert_eq!(counts(&log), (40, 38, 0, 2));

    // A batch with sleepers misses its deadline once; then each of its events runs alone, so
    // each sleeper runs once more and never again. (Halving the batch instead ran a sleeper on
    // every level: 6 deadlines for it in a batch of 40, 9 in one of 256.)
    let failed_batches = log
        .lines()
        .filter(|l| l.contains("batch failed") && l.contains("exceeded 200 ms"))
        .count();
    assert!(
        (1..=sleepers.len()).contains(&failed_batches),
        "{failed_batches} batches missed the deadline:\n{log}"
    );
    // What a plugin says in a batch that failed is not logged (it runs again and says it again):
    // each sleeper's "sleeping" comes from its one run alone.
    let sleeping: Vec<&str> = log.lines().filter(|l| l.contains(" sleeping ")).collect();
    assert_eq!(sleeping.len(), 2, "{sleeping:#?}");
    for (line, seq) in sleeping.iter().zip(sleepers) {
        assert!(
            line.contains(&format!("in.jsonl:{}\"", seq + 1)),
            "tagged with its event: {line}"
        );
    }
}

#[test]
fn a_plugin_whose_init_hangs_fails_the_pipeline_start_with_the_reason() {
    let s = Scratch::new();
    s.write("in.jsonl", "{\"seq\":0}\n");
    let plugins = format!(
        "[[plugin]]\npath = {:?}\nname = \"hangs\"\ninit_timeout_ms = 300\nconfig = {{ init_sleep_ms = 3600000 }}\n",
        plugin("fixtures/faults/faults.wasm")
    );
    let p = s.write("p.toml", pipeline("hangs", "", &plugins));
    let (code, log) = run_logged(&s, &p, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("plugin hangs: init failed: did not finish within 300 ms (init_timeout_ms)"),
        "{log}"
    );
    assert!(!s.path("out.jsonl").exists());

    // The setting is checked like the others.
    let bad = s.write(
        "bad.toml",
        pipeline("bad", "", &plugins.replace("= 300", "= 0")),
    );
    let out = weir().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`plugin[0].init_timeout_ms`: must be between 1 and 600000"),
        "{}",
        stderr(&out)
    );
}
