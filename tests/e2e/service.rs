//! `weir run DIR` as a service: the admin API (health, readiness, metrics, status, reload, tap),
//! `weir top`, live reload of pipeline files while another pipeline flows, graceful shutdown
//! under load, and the admin server's refusal to run open on a non-loopback address.

use crate::plugins::plugin;
use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A `weir run` of `dir` with its admin API on a port of its own, logging to `weir.log`.
struct Service {
    child: Option<Child>,
    port: u16,
}

impl Service {
    fn start(s: &Scratch, dir: &Path, env: &[(&str, &str)]) -> Service {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(s.path("weir.log"))
            .unwrap();
        let child = s
            .weir_run(dir)
            .env("WEIR_ADMIN__ADDRESS", format!("127.0.0.1:{port}"))
            .env("WEIR_WATCH_INTERVAL_MS", "100")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let svc = Service {
            child: Some(child),
            port,
        };
        wait_logged(s, "the admin API", || svc.get("/healthz").0 == 200);
        svc
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Status and body; status 0 if nothing answers.
    fn get(&self, path: &str) -> (u16, String) {
        call(
            ureq::get(self.url(path))
                .config()
                .http_status_as_error(false)
                .build()
                .call(),
        )
    }

    fn post(&self, path: &str) -> (u16, String) {
        call(
            ureq::post(self.url(path))
                .config()
                .http_status_as_error(false)
                .build()
                .send_empty(),
        )
    }

    fn pipelines(&self) -> Value {
        let (code, body) = self.get("/pipelines");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn pipeline(&self, name: &str) -> Option<Value> {
        let (code, body) = self.get(&format!("/pipelines/{name}"));
        (code == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    fn stop(mut self) -> Option<i32> {
        let child = self.child.take().unwrap();
        signal(&child, libc::SIGTERM);
        wait_exit(child).0
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn call(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    match r {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// A followed-file pipeline: `in` grows while it runs.
fn follow_pipeline(name: &str, input: &str, output: &str, extra: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\ncheckpoint_interval_ms = 100\n\n[source]\ntype = \"file\"\npath = \"{input}\"\n\
         follow = true\npoll_interval_ms = 10\n\n{extra}\n[sink]\ntype = \"file\"\npath = \"{output}\"\n"
    )
}

/// One sample's value in Prometheus text: `name{labels} value`, labels given in order.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn seqs(path: &Path) -> Vec<u64> {
    json_lines(path)
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn admin_api_reports_metrics_status_and_taps_events() {
    let s = Scratch::new();
    let dir = s.path("pipelines");
    std::fs::create_dir(&dir).unwrap();
    s.write("in.jsonl", order_lines(0..30));
    let redact = plugin("redact/redact.wasm");
    let extra = format!(
        "[[filter]]\npattern = '{{\"data\": {{\"detail\": {{\"department\": [\"billing\", \"shipping\"]}}}}}}'\n\n\
         [[plugin]]\npath = {redact:?}\nconfig = {{ fields = [\"customerId\"] }}\n"
    );
    std::fs::write(
        dir.join("orders.toml"),
        follow_pipeline("orders", "in.jsonl", "out.jsonl", &extra),
    )
    .unwrap();
    let svc = Service::start(&s, &dir, &[]);
    // 30 orders: departments cycle billing, shipping, support, so 20 pass the filter.
    wait_logged(&s, "the first events", || {
        lines(&s.path("out.jsonl")).len() == 20
    });
    wait_logged(&s, "readiness", || svc.get("/readyz").0 == 200);

    // The counts move when the router hears of the ends, a little after the sink wrote;
    // checkpoints come every 100 ms.
    let p = "{pipeline=\"orders\"}";
    let age = format!("weir_checkpoint_age_seconds{p}");
    let delivered = format!("weir_events_delivered_total{p}");
    wait_logged(&s, "the counts and a checkpoint", || {
        let m = svc.get("/metrics").1;
        m.contains(&age) && sample(&m, &delivered) == Some(20.0)
    });
    let metrics = svc.get("/metrics").1;
    assert_eq!(
        sample(&metrics, &format!("weir_events_received_total{p}")),
        Some(30.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, &format!("weir_events_delivered_total{p}")),
        Some(20.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, &format!("weir_events_filtered_total{p}")),
        Some(10.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, &format!("weir_events_in_flight{p}")),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, &format!("weir_pipeline_up{p}")),
        Some(1.0),
        "{metrics}"
    );
    let calls = sample(
        &metrics,
        "weir_plugin_call_seconds_count{pipeline=\"orders\",plugin=\"redact\"}",
    );
    assert!(calls.is_some_and(|n| n >= 1.0), "{metrics}");
    let sink = sample(
        &metrics,
        "weir_stage_seconds_count{pipeline=\"orders\",stage=\"sink\"}",
    );
    assert!(sink.is_some_and(|n| n >= 1.0), "{metrics}");
    let written = sample(
        &metrics,
        "weir_batch_size_sum{pipeline=\"orders\",stage=\"sink\"}",
    );
    assert_eq!(written, Some(20.0), "{metrics}");
    assert!(
        metrics.contains("# TYPE weir_stage_seconds histogram"),
        "{metrics}"
    );

    let status = svc.pipeline("orders").expect("orders in /pipelines");
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["counts"]["received"], 30, "{status}");
    assert_eq!(status["counts"]["delivered"], 20, "{status}");
    let wasm = std::fs::read(&redact).unwrap();
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&wasm))
    };
    assert_eq!(status["plugins"][0]["name"], "redact", "{status}");
    assert_eq!(status["plugins"][0]["version"], sha.as_str(), "{status}");
    assert_eq!(svc.get("/pipelines/nope").0, 404);

    // `weir tap` on the sink and on the source while events flow.
    let tap = |stage: &str| {
        weir()
            .args(["tap", "orders", "--stage", stage, "--limit", "3", "--admin"])
            .arg(format!("127.0.0.1:{}", svc.port))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let stages = ["source", "filter", "plugin:redact", "sink"];
    let mut taps: Vec<Child> = stages.iter().map(|st| tap(st)).collect();
    // Taps subscribe when their request arrives: keep appending until both have three.
    let mut n = 30;
    while taps.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        assert!(n < 3000, "the taps did not end");
        s.append("in.jsonl", order_lines(n..n + 3));
        n += 3;
        std::thread::sleep(Duration::from_millis(100));
    }
    let outs: Vec<_> = taps
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for (stage, out) in stages.iter().zip(&outs) {
        assert!(out.status.success(), "tap {stage}: {}", stderr(out));
        let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 3, "tap {stage}: {events:?}");
        for e in &events {
            assert!(e["id"].as_str().unwrap().starts_with("in.jsonl:"), "{e}");
            // Past the filter, no support orders; past the plugin, no customer ids.
            if *stage != "source" {
                assert_ne!(e["data"]["detail"]["department"], "support", "{stage}: {e}");
            }
            let redacted = e["data"]["detail"]["customerId"] == "***";
            assert_eq!(
                redacted,
                matches!(*stage, "plugin:redact" | "sink"),
                "{stage}: {e}"
            );
        }
    }
    let bad = weir()
        .args(["tap", "orders", "--stage", "plugin:nope", "--admin"])
        .arg(format!("127.0.0.1:{}", svc.port))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("plugin:redact"), "{}", stderr(&bad));

    // `weir top`, one refresh.
    let top = weir()
        .args(["top", "--iterations", "1", "--admin"])
        .arg(format!("127.0.0.1:{}", svc.port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success(), "{}", stderr(&top));
    assert!(
        text.lines()
            .any(|l| l.starts_with("orders ") && l.contains("running")),
        "{text}"
    );

    assert_eq!(svc.stop(), Some(0));
}

/// Appends orders to `file` until stopped, a few at a time; returns how many it wrote.
fn writer(s: &Scratch, file: &str) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let path = s.path(file);
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut n = 0;
        while !flag.load(Ordering::Relaxed) {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            std::io::Write::write_all(&mut f, order_lines(n..n + 5).as_bytes()).unwrap();
            n += 5;
            std::thread::sleep(Duration::from_millis(10));
        }
        n
    });
    (stop, handle)
}

fn runs(svc: &Service, name: &str) -> Option<u64> {
    svc.pipeline(name).and_then(|p| p["runs"].as_u64())
}

fn state(svc: &Service, name: &str) -> Option<String> {
    svc.pipeline(name)
        .and_then(|p| p["state"].as_str().map(str::to_owned))
}

#[test]
fn reload_adds_changes_removes_and_rejects_pipelines_while_another_flows() {
    let s = Scratch::new();
    let dir = s.path("pipelines");
    std::fs::create_dir(&dir).unwrap();
    let write = |file: &str, text: String| std::fs::write(dir.join(file), text).unwrap();
    s.write("steady.in", "");
    write(
        "steady.toml",
        follow_pipeline("steady", "steady.in", "steady.out", ""),
    );
    s.write("b.in", order_lines(0..10));
    write("b.toml", follow_pipeline("b", "b.in", "b1.out", ""));
    let svc = Service::start(&s, &dir, &[]);
    let (stop_writer, written) = writer(&s, "steady.in");
    wait_logged(&s, "b delivering", || lines(&s.path("b1.out")).len() == 10);
    wait_logged(&s, "steady flowing", || {
        !lines(&s.path("steady.out")).is_empty()
    });

    // Added: the file watch starts it.
    s.write("c.in", order_lines(0..4));
    write("c.toml", follow_pipeline("c", "c.in", "c.out", ""));
    wait_logged(&s, "c started by the file watch", || {
        lines(&s.path("c.out")).len() == 4
    });

    // Changed (POST /reload): b drains and its new version takes over where it stopped.
    write("b.toml", follow_pipeline("b", "b.in", "b2.out", ""));
    let (code, report) = svc.post("/reload");
    assert_eq!(code, 200, "{report}");
    let report: Value = serde_json::from_str(&report).unwrap();
    // The watch may have got there first; either way b ran twice.
    wait_logged(&s, "b restarted", || runs(&svc, "b") == Some(2));
    assert!(
        report["rejected"].as_array().unwrap().is_empty(),
        "{report}"
    );
    s.append("b.in", order_lines(10..13));
    wait_logged(&s, "b's new sink", || lines(&s.path("b2.out")).len() == 3);
    assert_eq!(
        seqs(&s.path("b2.out")),
        vec![10, 11, 12],
        "re-read or lost across the restart"
    );
    assert_eq!(lines(&s.path("b1.out")).len(), 10);

    // Broken (SIGHUP): rejected with its error; the running version keeps running.
    let broken = follow_pipeline("b", "b.in", "b2.out", "");
    write(
        "b.toml",
        broken.replacen("type = \"file\"", "type = \"fiel\"", 1),
    );
    signal(svc.child.as_ref().unwrap(), libc::SIGHUP);
    wait_logged(&s, "b rejected", || {
        !svc.pipelines()["rejected"].as_array().unwrap().is_empty()
    });
    let rejected = svc.pipelines()["rejected"][0].clone();
    assert!(
        rejected["file"].as_str().unwrap().ends_with("b.toml"),
        "{rejected}"
    );
    assert!(
        rejected["error"].as_str().unwrap().contains("fiel"),
        "{rejected}"
    );
    assert_eq!(state(&svc, "b").as_deref(), Some("running"));
    assert_eq!(runs(&svc, "b"), Some(2));
    s.append("b.in", order_lines(13..15));
    wait_logged(&s, "b still delivering", || {
        lines(&s.path("b2.out")).len() == 5
    });

    // Removed: c drains and stops; it is no longer listed.
    std::fs::remove_file(dir.join("c.toml")).unwrap();
    wait_logged(&s, "c removed", || svc.pipeline("c").is_none());

    // Readiness holds throughout (b's running version is fine).
    assert_eq!(svc.get("/readyz").0, 200);

    // steady was never touched and lost nothing.
    stop_writer.store(true, Ordering::Relaxed);
    let total = written.join().unwrap();
    wait_logged(&s, "steady caught up", || {
        lines(&s.path("steady.out")).len() as u64 >= total
    });
    assert_eq!(seqs(&s.path("steady.out")), (0..total).collect::<Vec<_>>());
    assert_eq!(runs(&svc, "steady"), Some(1));
    assert_eq!(svc.stop(), Some(0));
}

#[test]
fn graceful_shutdown_under_load_loses_nothing() {
    let s = Scratch::new();
    let dir = s.path("pipelines");
    std::fs::create_dir(&dir).unwrap();
    // A plugin in the path keeps events in flight at the moment the signal lands.
    let extra = format!(
        "[[plugin]]\npath = {:?}\nconfig = {{ fields = [\"customerId\"] }}\n",
        plugin("redact/redact.wasm")
    );
    std::fs::write(
        dir.join("p.toml"),
        follow_pipeline("p", "in.jsonl", "out.jsonl", &extra),
    )
    .unwrap();
    let (stop_writer, written) = writer(&s, "in.jsonl");
    let mut written = Some(written);
    let mut total = 0;
    for round in 0..3 {
        let svc = Service::start(&s, &dir, &[]);
        let before = lines(&s.path("out.jsonl")).len();
        wait_logged(&s, "events flowing", || {
            lines(&s.path("out.jsonl")).len() > before + 50
        });
        if round == 2 {
            stop_writer.store(true, Ordering::Relaxed);
            total = written.take().unwrap().join().unwrap();
            wait_logged(&s, "the last events", || {
                lines(&s.path("out.jsonl")).len() as u64 >= total
            });
        }
        // Under load: the writer keeps appending while weir drains.
        assert_eq!(svc.stop(), Some(0), "{}", s.log());
        let drained = s.log().matches("every pipeline drained").count();
        assert_eq!(drained, round + 1, "{}", s.log());
    }
    // Every event exactly once, in order: a graceful stop checkpoints what it delivered.
    assert_eq!(seqs(&s.path("out.jsonl")), (0..total).collect::<Vec<_>>());
}

#[test]
fn admin_api_on_a_public_address_needs_a_token() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..3));
    let p = s.write("p.toml", follow_pipeline("p", "in.jsonl", "out.jsonl", ""));
    let port = free_port();
    let public = format!("0.0.0.0:{port}");

    // No token: refused before anything starts.
    let out = s
        .weir_run(&p)
        .env("WEIR_ADMIN__ADDRESS", &public)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("admin.token"), "{}", stderr(&out));
    assert!(!s.path("out.jsonl").exists(), "a pipeline ran");

    // With a token: only requests that carry it get in (but health checks).
    let mut child = s
        .weir_run(&p)
        .env("WEIR_ADMIN__ADDRESS", &public)
        .env("WEIR_ADMIN__TOKEN", "s3cret")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let get = |path: &str, token: Option<&str>| {
        let mut r = ureq::get(url(path))
            .config()
            .http_status_as_error(false)
            .build();
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        call(r.call()).0
    };
    wait_for("the admin API", || get("/healthz", None) == 200);
    for path in ["/metrics", "/pipelines", "/pipelines/p", "/pipelines/p/tap"] {
        assert_eq!(get(path, None), 401, "{path} without a token");
        assert_eq!(get(path, Some("wrong")), 401, "{path} with a wrong token");
        assert_eq!(
            get(path, Some("s3cret5")),
            401,
            "{path} with a longer token"
        );
    }
    let reload = ureq::post(url("/reload"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_empty();
    assert_eq!(call(reload).0, 401, "reload without a token");
    assert_eq!(get("/pipelines", Some("s3cret")), 200);
    // The scheme is case-insensitive (RFC 9110): curl users write `bearer` too.
    for scheme in ["bearer", "BEARER"] {
        let r = ureq::get(url("/pipelines"))
            .header("Authorization", format!("{scheme} s3cret"))
            .config()
            .http_status_as_error(false)
            .build()
            .call();
        assert_eq!(call(r).0, 200, "scheme {scheme}");
    }
    // Probes need no token.
    wait_for("readiness", || get("/readyz", None) == 200);
    // `weir top` takes the token from the settings (the environment here).
    let top = weir()
        .args([
            "top",
            "--iterations",
            "1",
            "--admin",
            &format!("127.0.0.1:{port}"),
        ])
        .env("WEIR_ADMIN__TOKEN", "s3cret")
        .output()
        .unwrap();
    assert!(top.status.success(), "{}", stderr(&top));
    signal(&child, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn shutdown_timeout_exits_with_events_in_flight_and_they_come_again() {
    let s = Scratch::new();
    let dir = s.path("pipelines");
    std::fs::create_dir(&dir).unwrap();
    // Two events a plugin takes 2 s each over: still in flight when the 1 s timeout passes.
    let slow: String = (0..2)
        .map(|n| format!("{{\"seq\":{n},\"fault\":\"slow\",\"ms\":2000}}\n"))
        .collect();
    s.write("in.jsonl", slow);
    let extra = format!(
        "[[plugin]]\npath = {:?}\ntimeout_ms = 10000\n",
        plugin("fixtures/faults/faults.wasm")
    );
    std::fs::write(
        dir.join("p.toml"),
        follow_pipeline("p", "in.jsonl", "out.jsonl", &extra),
    )
    .unwrap();
    let svc = Service::start(&s, &dir, &[("WEIR_SHUTDOWN_TIMEOUT_S", "1")]);
    wait_logged(&s, "the events in the plugin", || {
        svc.pipeline("p").is_some_and(|p| p["in_flight"] == 2)
    });
    assert_eq!(svc.stop(), Some(1), "{}", s.log());
    assert!(s.log().contains("shutdown timeout"), "{}", s.log());
    assert!(lines(&s.path("out.jsonl")).is_empty());

    // Nothing was checkpointed past them: the next run delivers both.
    let svc = Service::start(&s, &dir, &[]);
    wait_logged(&s, "both events", || lines(&s.path("out.jsonl")).len() == 2);
    assert_eq!(seqs(&s.path("out.jsonl")), vec![0, 1]);
    assert_eq!(svc.stop(), Some(0));
}

#[test]
fn a_failed_pipeline_makes_weir_unready_and_a_reload_starts_it_again() {
    let s = Scratch::new();
    let dir = s.path("pipelines");
    std::fs::create_dir(&dir).unwrap();
    s.write("good.in", order_lines(0..3));
    std::fs::write(
        dir.join("good.toml"),
        follow_pipeline("good", "good.in", "good.out", ""),
    )
    .unwrap();
    // Its input does not exist yet: it fails at start, and the other one runs on.
    std::fs::write(
        dir.join("late.toml"),
        follow_pipeline("late", "late.in", "late.out", ""),
    )
    .unwrap();
    let svc = Service::start(&s, &dir, &[]);
    wait_logged(&s, "late failed", || {
        state(&svc, "late").as_deref() == Some("failed")
    });
    wait_logged(&s, "good delivering", || {
        lines(&s.path("good.out")).len() == 3
    });
    let (code, body) = svc.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("late") && !body.contains("good"), "{body}");
    let late = svc.pipeline("late").unwrap();
    let error = late["last_error"]["message"].as_str().unwrap();
    assert!(error.contains("late.in"), "{late}");

    // Fixed: an unchanged file whose pipeline failed is started again by a reload.
    s.write("late.in", order_lines(0..2));
    let (code, report) = svc.post("/reload");
    assert_eq!(code, 200, "{report}");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["restarted"], serde_json::json!(["late"]), "{report}");
    assert_eq!(report["unchanged"], serde_json::json!(["good"]), "{report}");
    wait_logged(&s, "late delivering", || {
        lines(&s.path("late.out")).len() == 2
    });
    wait_logged(&s, "ready", || svc.get("/readyz").0 == 200);
    assert_eq!(runs(&svc, "good"), Some(1));
    // Every pipeline ran fine in the end.
    assert_eq!(svc.stop(), Some(0));
}

/// Sends `request` on a new connection to the admin API and returns the connection.
/// Brokers out of reach and a sink that cannot open are the pipeline's `last_error` while they
/// last (they were `null`: only the log said why nothing moved).
#[test]
fn last_error_shows_brokers_out_of_reach_and_a_sink_that_cannot_open() {
    let s = Scratch::new();
    let dir = s.path("pipelines");
    std::fs::create_dir(&dir).unwrap();
    let nobody = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        dir.join("source-down.toml"),
        format!(
            "[pipeline]\nname = \"source-down\"\n[source]\ntype = \"kafka\"\nbrokers = {nobody:?}\n\
             topics = \"in\"\ngroup = \"g\"\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n"
        ),
    )
    .unwrap();
    s.write("in.jsonl", order_lines(0..3));
    std::fs::write(
        dir.join("sink-down.toml"),
        format!(
            "[pipeline]\nname = \"sink-down\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\n\
             [sink]\ntype = \"kafka\"\nbrokers = {nobody:?}\ntopic = \"out\"\n"
        ),
    )
    .unwrap();
    let svc = Service::start(&s, &dir, &[]);
    let last_error = |name: &str| {
        svc.pipeline(name)
            .map(|p| p["last_error"].clone())
            .unwrap_or(Value::Null)
    };
    wait_logged(&s, "the source's error in /pipelines", || {
        let e = last_error("source-down");
        e["stage"] == "source" && e["message"].as_str().is_some_and(|m| m.contains("kafka"))
    });
    wait_logged(&s, "the sink's error in /pipelines", || {
        let e = last_error("sink-down");
        e["stage"] == "sink"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot open") && m.contains("kafka"))
    });
    assert_eq!(svc.pipeline("sink-down").unwrap()["state"], "starting");
    drop(svc);
}

fn raw(port: u16, request: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    c
}

/// Reads from `c` until `want` has come (panics if the connection ends first).
fn read_until(c: &mut std::net::TcpStream, want: &str) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        let n = c.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed before {want:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the server closes `c` (reads until the end; the read timeout is PATIENCE).
fn closed_by_server(c: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false, // timed out: still open
        }
    }
}

#[test]
fn admin_connections_are_capped_and_closed_when_idle_but_taps_stay() {
    let s = Scratch::new();
    s.write("in/in.jsonl", order_lines(0..3));
    s.write(
        "dir/p.toml",
        follow_pipeline("p", "in/in.jsonl", "out.jsonl", ""),
    );
    let svc = Service::start(
        &s,
        &s.path("dir"),
        &[
            ("WEIR_ADMIN__IDLE_TIMEOUT_S", "1"),
            ("WEIR_ADMIN__MAX_CONNECTIONS", "3"),
        ],
    );
    wait_for("the pipeline to deliver", || {
        lines(&s.path("out.jsonl")).len() == 3
    });

    // A connection that never sends a request is closed; so is a kept-alive one after its
    // request, once it has been idle for idle_timeout_s.
    let mut silent = raw(svc.port, "");
    assert!(
        closed_by_server(&mut silent),
        "an idle connection stays open"
    );
    let mut kept = raw(svc.port, "GET /healthz HTTP/1.1\r\nhost: weir\r\n\r\n");
    read_until(&mut kept, "ok\n");
    assert!(
        closed_by_server(&mut kept),
        "a kept-alive idle connection stays open"
    );
    // (Connections of the clients above and of Service::start are closed by now too.)
    std::thread::sleep(Duration::from_millis(1500));

    // Three taps fill the cap: a fourth client is refused with a reason.
    let tap = "GET /pipelines/p/tap?stage=sink HTTP/1.1\r\nhost: weir\r\n\r\n";
    let mut taps: Vec<_> = (0..3).map(|_| raw(svc.port, tap)).collect();
    for t in &mut taps {
        read_until(t, "\r\n\r\n");
    }
    let mut over = raw(svc.port, "GET /healthz HTTP/1.1\r\nhost: weir\r\n\r\n");
    let refusal = read_until(&mut over, "admin.max_connections");
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");

    // A tap is a response in progress, not an idle connection: quiet for longer than the idle
    // timeout, it still streams the next event.
    std::thread::sleep(Duration::from_millis(2500));
    s.append("in/in.jsonl", order_lines(3..4));
    for t in &mut taps {
        read_until(t, "\"seq\":3");
    }

    // A closed tap frees its slot.
    taps.pop();
    wait_for("a free slot", || svc.get("/healthz").0 == 200);
    drop(taps);
    assert_eq!(svc.stop(), Some(0));
}
