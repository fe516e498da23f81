//! A plugin path that is not a regular file of bounded size (a FIFO, a directory, a file larger
//! than 256 MiB; `/dev/zero` alike) is refused with the path and the reason, never read without
//! limit: at `weir check`, at `weir run`, and on hot reload, where the refusal is also in the
//! pipeline's status (`/pipelines`, `weir top`) and the running version goes on. A reload that
//! succeeds is logged once, not once per lane.

use crate::plugins::plugin;
use crate::support::*;
use serde_json::Value;
use std::path::Path;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn plugin_paths_that_are_not_regular_files_or_too_large_are_refused_by_check_and_run() {
    let s = Scratch::new();
    s.write("in.jsonl", "{}\n");
    mkfifo(&s.path("fifo.wasm"));
    std::fs::create_dir(s.path("dir.wasm")).unwrap();
    // Sparse: 300 MiB that take no disk.
    let big = std::fs::File::create(s.path("big.wasm")).unwrap();
    big.set_len(300 << 20).unwrap();
    for (file, why) in [
        ("fifo.wasm", "fifo.wasm is a FIFO, not a regular file"),
        ("dir.wasm", "dir.wasm is a directory, not a regular file"),
        (
            "big.wasm",
            "big.wasm is 300 MiB; a plugin may be at most 256 MiB",
        ),
        (
            "/dev/zero",
            "/dev/zero is a character device, not a regular file",
        ),
    ] {
        let p = s.write(
            "p.toml",
            format!(
                "[pipeline]\nname = \"files\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n\
                 [[plugin]]\npath = {file:?}\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n"
            ),
        );
        let out = s.check(&p);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("p.toml:7:1: `plugin[0].path`: {why}")),
            "{file}: {}",
            stderr(&out)
        );
        // Bounded: reading a FIFO or /dev/zero used to hang or fill memory.
        let child = s.spawn(&p);
        let (code, err) = wait_exit(child);
        assert_eq!(code, Some(1), "{file}: {err}");
        assert!(err.contains(why), "{file}: {err}");
        assert!(!s.path("out.jsonl").exists());
    }
}

/// The status of the one pipeline, from `/pipelines`.
fn status(admin: &str) -> Value {
    let (code, body) = admin_get(admin, "/pipelines");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["pipelines"][0].clone()
}

#[test]
fn a_refused_hot_reload_is_in_the_status_and_top_and_a_reload_is_logged_once() {
    let s = Scratch::new();
    std::fs::copy(plugin("fixtures/faults/faults.wasm"), s.path("plugin.wasm")).unwrap();
    s.write("in.jsonl", "");
    // Keyed events over four lanes: each lane switches to a new version on its own.
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"reload\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\npoll_interval_ms = 10\n\
         [[plugin]]\npath = \"plugin.wasm\"\nname = \"live\"\nconfig = { fields = [\"email\"] }\n\
         [ordering]\nkey = \"<$.data.seq>\"\nlanes = 4\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let child = s.spawn_logged(&p);
    let out_len = || lines(&s.path("out.jsonl")).len();
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
    wait_logged(&s, "events through the first version", || out_len() >= 200);
    let admin = admin_address(&s.log()).expect("the admin address in the log");

    // A FIFO takes the plugin's place: refused (reading it used to block the watcher forever,
    // and no later version was ever loaded), and the running version goes on.
    std::fs::remove_file(s.path("plugin.wasm")).unwrap();
    mkfifo(&s.path("plugin.wasm"));
    wait_logged(&s, "the refusal", || {
        s.log().contains("new plugin version not loaded")
    });
    let refused = "new version of plugin.wasm not loaded (the previous one keeps running): cannot read it: is a FIFO, not a regular file";
    let st = status(&admin);
    assert_eq!(st["last_error"]["stage"], "plugin:live", "{st}");
    assert_eq!(st["last_error"]["message"], refused, "{st}");
    assert_eq!(st["plugins"][0]["reload_refused"], refused, "{st}");
    let top = weir()
        .args(["top", "--iterations", "1", "--admin", &admin])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&top.stdout);
    assert!(
        shown.contains("plugin live: new version of plugin.wasm not loaded (the previous one keeps running): cannot read it: is a FIFO"),
        "{shown}"
    );
    let seen = out_len();
    wait_logged(&s, "more events through the old version", || {
        out_len() >= seen + 100
    });

    // A good version takes over; the refusal is gone from the status.
    std::fs::copy(plugin("redact/redact.wasm"), s.path("plugin.wasm.tmp")).unwrap();
    std::fs::rename(s.path("plugin.wasm.tmp"), s.path("plugin.wasm")).unwrap();
    wait_logged(&s, "the swap", || s.log().contains("plugin reloaded"));
    let seen = out_len();
    wait_logged(&s, "events through the new version", || {
        out_len() >= seen + 200
    });
    assert_eq!(status(&admin)["plugins"][0]["reload_refused"], Value::Null);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(std::sync::atomic::Ordering::Relaxed);
    wait_logged(&s, "every event out", || out_len() as u64 == total);
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    let log = s.log();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        log.matches("plugin reloaded").count(),
        1,
        "one reload, one line (not one per lane):\n{log}"
    );
    // Each event went through exactly one version: the old adds `seen_by`, the new redacts.
    let mut got: Vec<(u64, bool)> = json_lines(&s.path("out.jsonl"))
        .iter()
        .map(|v| {
            let new = v.get("seen_by").is_none() && v["email"] == "***";
            let old = v["seen_by"] == "faults" && v["email"] != "***";
            assert!(new != old, "one version each: {v}");
            (v["seq"].as_u64().unwrap(), new)
        })
        .collect();
    got.sort();
    let seqs: Vec<u64> = got.iter().map(|(n, _)| *n).collect();
    assert_eq!(seqs, (0..total).collect::<Vec<_>>(), "every event once");
    assert!(got.iter().any(|(_, new)| *new) && got.iter().any(|(_, new)| !*new));
}
