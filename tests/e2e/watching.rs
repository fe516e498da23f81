//! What an operator watches: the admin server's status page (`GET /`) in a real headless
//! browser (Debian's chromium driven through chromedriver's WebDriver API; scripts/test.sh
//! installs both), and `weir top`. The page must load, show a running pipeline's counts and
//! dead-letter reasons, and follow them as events flow, without a reload; with an admin token
//! it asks for it. `weir top` must fit the width it is given and outlive a restart of weir.
//!
//! `WEIR_STATUS_SCREENSHOT=PATH` saves the page as PNG (docs/status-page.png was made so).

use crate::plugins::plugin;
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process and one browser session of it; both end when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    fn start() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: the status page is tested in a real browser \
                 (apt-get install chromium chromium-driver; scripts/test.sh does it)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        wait_for("chromedriver to answer", || {
            call("GET", &format!("{base}/status"), None)
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let created = call("POST", &format!("{base}/session"), Some(caps)).expect("a session");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn open(&self, url: &str) {
        call("POST", &self.url("/url"), Some(json!({ "url": url }))).expect("navigates");
    }

    /// Runs `script` in the page and returns what it returns.
    fn eval(&self, script: &str) -> Value {
        let r = call(
            "POST",
            &self.url("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .expect("script runs");
        r["value"].clone()
    }

    /// The text of a pipeline's tile (`data-field`), as the page shows it.
    fn field(&self, pipeline: &str, field: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector('[data-pipeline=\"{pipeline}\"] [data-field=\"{field}\"]'); \
             return e ? (e.querySelector('b') || e).textContent : null;"
        );
        self.eval(&script).as_str().map(str::to_owned)
    }

    fn text(&self) -> String {
        self.eval("return document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Types `text` into the element `css` selects, then clicks the one `submit` selects.
    fn fill_and_submit(&self, css: &str, text: &str, submit: &str) {
        let find = |css: &str| -> String {
            let r = call(
                "POST",
                &self.url("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .expect("finds");
            let v = &r["value"];
            // The W3C element reference key.
            v["element-6066-11e4-a52e-4f735466cecf"]
                .as_str()
                .unwrap_or_else(|| panic!("no element {css}: {r}"))
                .to_owned()
        };
        let input = find(css);
        call(
            "POST",
            &self.url(&format!("/element/{input}/value")),
            Some(json!({ "text": text })),
        )
        .expect("types");
        let button = find(submit);
        call(
            "POST",
            &self.url(&format!("/element/{button}/click")),
            Some(json!({})),
        )
        .expect("clicks");
    }

    fn screenshot(&self, to: &Path) {
        use base64::Engine;
        let r = call("GET", &self.url("/screenshot"), None).expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["value"].as_str().unwrap_or_default())
            .expect("base64 PNG");
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call("DELETE", &self.url(""), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A WebDriver call: the JSON answer, or `None` if nothing answered.
fn call(method: &str, url: &str, body: Option<Value>) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let r = match (method, body) {
        ("POST", b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.unwrap_or_else(|| json!({})).to_string()),
        ("DELETE", _) => agent.delete(url).call(),
        _ => agent.get(url).call(),
    };
    let text = r.ok()?.body_mut().read_to_string().ok()?;
    serde_json::from_str(&text).ok()
}

/// A running `weir run` following `in.jsonl` through the faults plugin (events asking for it
/// fail and are dead-lettered), its admin server on `port`.
fn run_weir(s: &Scratch, port: u16, token: Option<&str>) -> Child {
    s.write("in.jsonl", "");
    let p = s.write(
        "orders.toml",
        format!(
            "[pipeline]\nname = \"orders\"\ncheckpoint_interval_ms = 100\n\
             [source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\npoll_interval_ms = 10\n\
             [[plugin]]\npath = {:?}\n\
             [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n\
             [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n",
            plugin("fixtures/faults/faults.wasm")
        ),
    );
    let log = std::fs::File::create(s.path("weir.log")).unwrap();
    let mut cmd = weir();
    cmd.current_dir(s.dir.path())
        .args(["run", "--state-dir"])
        .arg(s.path("state"))
        .arg(&p)
        .env("WEIR_ADMIN__ADDRESS", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(t) = token {
        cmd.env("WEIR_ADMIN__TOKEN", t);
    }
    let child = cmd.spawn().unwrap();
    wait_logged(s, "the pipeline running", || {
        admin_get_with(port, "/readyz", token).0 == 200
    });
    child
}

fn admin_get_with(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(format!("http://127.0.0.1:{port}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    match req.config().http_status_as_error(false).build().call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// `n` events from `from`, every fifth asking the plugin to fail.
fn events(from: u64, n: u64) -> String {
    (from..from + n)
        .map(|i| {
            if i % 5 == 4 {
                format!("{{\"seq\":{i},\"fault\":\"error\"}}\n")
            } else {
                format!("{{\"seq\":{i}}}\n")
            }
        })
        .collect()
}

#[test]
fn the_status_page_shows_a_running_pipeline_and_follows_its_counts() {
    let s = Scratch::new();
    let port = free_port();
    let child = run_weir(&s, port, None);
    s.append("in.jsonl", events(0, 30));
    wait_logged(&s, "the first events through", || {
        lines(&s.path("out.jsonl")).len() == 24
    });

    let page = admin_get_with(port, "/", None);
    assert_eq!(page.0, 200);
    // Self-contained: nothing is loaded from elsewhere.
    assert!(
        !page.1.contains("http://") && !page.1.contains("https://"),
        "an external asset"
    );

    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{port}/"));
    wait_for("the page to show the pipeline's counts", || {
        browser.field("orders", "received").as_deref() == Some("30")
    });
    assert_eq!(browser.field("orders", "state").as_deref(), Some("running"));
    assert_eq!(browser.field("orders", "delivered").as_deref(), Some("24"));
    assert_eq!(
        browser.field("orders", "dead_lettered").as_deref(),
        Some("6")
    );
    let text = browser.text();
    assert!(text.contains("Top dead-letter reasons"), "{text}");
    assert!(text.contains("asked to fail"), "{text}");
    assert!(text.contains("plugin:faults"), "{text}");
    assert!(text.contains("faults"), "plugins listed: {text}");

    // More events: the open page follows them, without a reload.
    s.append("in.jsonl", events(30, 1970));
    wait_for("the page to follow the new events", || {
        browser.field("orders", "received").as_deref() == Some("2,000")
    });
    assert_eq!(
        browser.field("orders", "delivered").as_deref(),
        Some("1,600")
    );
    assert_eq!(
        browser.field("orders", "dead_lettered").as_deref(),
        Some("400")
    );
    if let Ok(to) = std::env::var("WEIR_STATUS_SCREENSHOT") {
        browser.screenshot(Path::new(&to));
    }
    drop(browser);
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0));
}

#[test]
fn with_a_token_the_status_page_asks_for_it_and_its_data_needs_it() {
    let s = Scratch::new();
    let port = free_port();
    let child = run_weir(&s, port, Some("s3cret"));
    s.append("in.jsonl", events(0, 10));
    // The shell holds no data and loads without the token; the data does not.
    assert_eq!(admin_get_with(port, "/", None).0, 200);
    assert_eq!(admin_get_with(port, "/pipelines", None).0, 401);

    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{port}/"));
    wait_for("the page to ask for the token", || {
        browser.text().contains("needs its admin token")
    });
    assert_eq!(
        browser.field("orders", "received"),
        None,
        "data shown without the token"
    );
    // `weir top` with a wrong token says so and ends, rather than trying again.
    let top = weir()
        .args([
            "top",
            "--interval-ms",
            "100",
            "--iterations",
            "100",
            "--admin",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("WEIR_ADMIN__TOKEN", "wrong")
        .output()
        .unwrap();
    assert_eq!(top.status.code(), Some(1));
    assert!(stderr(&top).contains("401"), "{}", stderr(&top));
    assert!(
        stderr(&top).contains("WEIR_ADMIN__TOKEN"),
        "{}",
        stderr(&top)
    );
    assert!(
        top.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&top.stdout)
    );
    browser.fill_and_submit("#token", "s3cret", "#login button");
    wait_for("the page to show the pipeline once given the token", || {
        browser.field("orders", "received").as_deref() == Some("10")
    });
    drop(browser);
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0));
}

/// The table part of a `weir top` frame: from its header line to the blank line after it.
fn table_lines(frame: &str) -> Vec<&str> {
    frame
        .lines()
        .skip_while(|l| !l.contains("PIPELINE"))
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn weir_top_fits_the_width_and_shows_dead_letters() {
    let s = Scratch::new();
    let port = free_port();
    let child = run_weir(&s, port, None);
    s.append("in.jsonl", events(0, 50));
    wait_logged(&s, "the events through", || {
        lines(&s.path("dlq.jsonl")).len() == 10
    });
    for width in [80u16, 150] {
        let out = weir()
            .args([
                "top",
                "--iterations",
                "1",
                "--width",
                &width.to_string(),
                "--admin",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let table = table_lines(&text);
        assert!(table.len() >= 2, "{text}");
        for l in &table {
            assert!(
                l.chars().count() <= usize::from(width),
                "wider than {width}: {l:?}"
            );
        }
        let row = table
            .iter()
            .find(|l| l.starts_with("orders "))
            .unwrap_or_else(|| panic!("no row for the pipeline: {text}"));
        assert!(row.contains("running"), "{text}");
        // The DLQ column: 10 dead-lettered in all.
        assert!(
            row.split_whitespace().any(|w| w == "10"),
            "no dead-letter count in {row:?}"
        );
        // The last error is shown, cut or wrapped to fit.
        assert!(text.contains("plugin:faults"), "{text}");
    }
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0));
}

#[test]
fn weir_top_keeps_going_across_a_restart_of_weir() {
    let s = Scratch::new();
    let port = free_port();
    let child = run_weir(&s, port, None);
    let mut top = weir()
        .args(["top", "--interval-ms", "100", "--admin"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let out = out.clone();
        let mut stdout = top.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let seen = |what: &str| out.lock().unwrap().matches(what).count();
    wait_for("top to show the pipeline", || seen("orders ") > 0);
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0));
    wait_for("top to say weir is gone", || {
        seen("cannot reach the admin API") > 0
    });
    let shown_before = seen("orders ");
    let child = run_weir(&s, port, None);
    wait_for("top to show the pipeline again", || {
        seen("orders ") > shown_before
    });
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0));
    // Still running after weir went away twice; its frames say so in turn.
    assert!(top.try_wait().unwrap().is_none(), "weir top ended");
    let _ = top.kill();
    let _ = top.wait();
    reader.join().unwrap();
    let text = out.lock().unwrap().clone();
    let first = text.find("orders ").unwrap();
    let gone = text.find("cannot reach the admin API").unwrap();
    assert!(first < gone && text[gone..].contains("orders "), "{text}");
}
