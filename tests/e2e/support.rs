//! Helpers for driving the real `weir` binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for something that should happen quickly before calling the test hung.
/// Not a speed assertion: only a guard against waiting forever.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

pub(crate) fn weir() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.env_remove("RUST_LOG");
    // Tests never reach AWS: the SQS tests' local server takes these dummy credentials.
    cmd.envs(crate::sqs_server::AWS_ENV.iter().copied());
    for (k, _) in std::env::vars() {
        if k.starts_with("WEIR_") {
            cmd.env_remove(k);
        }
    }
    // Tests run many `weir run` at once: each admin server on a port of its own (tests of the
    // admin API pick one they know).
    cmd.env("WEIR_ADMIN__ADDRESS", "127.0.0.1:0");
    cmd
}

/// A scratch directory for one test: pipelines, inputs, outputs and state.
pub(crate) struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }

    pub(crate) fn append(&self, name: &str, content: impl AsRef<[u8]>) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))
            .unwrap();
        f.write_all(content.as_ref()).unwrap();
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// `weir run PIPELINE --state-dir STATE` in this scratch directory.
    pub(crate) fn weir_run(&self, pipeline: &Path) -> Command {
        let mut cmd = weir();
        cmd.arg("run")
            .arg(pipeline)
            .arg("--state-dir")
            .arg(self.state_dir())
            .current_dir(self.dir.path());
        cmd
    }

    /// `weir check PIPELINE` in this scratch directory, to completion.
    pub(crate) fn check(&self, pipeline: &Path) -> Output {
        let mut cmd = weir();
        cmd.arg("check").arg(pipeline).current_dir(self.dir.path());
        cmd.output().expect("run weir check")
    }

    /// `weir dry-run PIPELINE --input INPUT` in this scratch directory, with a state dir that
    /// must stay absent (the caller may add to the environment, then runs it).
    pub(crate) fn dry_run(&self, pipeline: &Path, input: &str) -> Command {
        let mut cmd = weir();
        cmd.arg("dry-run")
            .arg(pipeline)
            .arg("--input")
            .arg(input)
            .env("WEIR_STATE_DIR", self.state_dir())
            .current_dir(self.dir.path());
        cmd
    }

    /// `weir run` on `pipeline` with this scratch's state dir, to completion.
    pub(crate) fn run(&self, pipeline: &Path) -> Output {
        self.weir_run(pipeline).output().expect("run weir")
    }

    /// `weir run` in the background.
    pub(crate) fn spawn(&self, pipeline: &Path) -> Child {
        self.weir_run(pipeline)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir")
    }
}

impl Scratch {
    /// `weir run` in the background with its log appended to `weir.log` (a pipe nobody reads
    /// would fill up and block weir's logging on a long run).
    pub(crate) fn spawn_logged(&self, pipeline: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("weir.log"))
            .expect("weir.log");
        self.weir_run(pipeline)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn weir")
    }

    /// `weir run` in the background on an admin port of its own, logging to `weir.log`, with
    /// `env` set; returns once the admin API answers, with its address.
    pub(crate) fn serve(&self, pipeline: &Path, env: &[(&str, &str)]) -> (Child, String) {
        let address = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(self.path("weir.log")).expect("weir.log");
        let child = self
            .weir_run(pipeline)
            .env("WEIR_ADMIN__ADDRESS", &address)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn weir");
        wait_logged(self, "the admin API", || {
            admin_get(&address, "/healthz").0 == 200
        });
        (child, address)
    }

    /// What [`Scratch::spawn_logged`] processes logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.path("weir.log")).unwrap_or_default()
    }
}

/// Like [`wait_for`], with the end of `weir.log` in the message if it times out.
pub(crate) fn wait_logged(s: &Scratch, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > PATIENCE {
            let log = s.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "timed out waiting for {what}; log ends:\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of a file (empty if it does not exist).
pub(crate) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The lines of a file as JSON.
pub(crate) fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect()
}

/// Waits until `cond` holds, panicking with `what` if it does not within [`PATIENCE`].
pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn signal(child: &Child, sig: i32) {
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({}, {sig}) failed", child.id());
}

/// Waits for the process to exit, returning its status code and stderr.
pub(crate) fn wait_exit(mut child: Child) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("weir did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The admin API's address, from the log of a `weir run` (tests let it pick a free port).
pub(crate) fn admin_address(log: &str) -> Option<String> {
    let at = log.find("admin server listening address=")?;
    let rest = &log[at + "admin server listening address=".len()..];
    Some(rest.split_whitespace().next()?.to_owned())
}

/// GET on the admin API: status and body (status 0 if nothing answers).
pub(crate) fn admin_get(address: &str, path: &str) -> (u16, String) {
    let r = ureq::get(format!("http://{address}{path}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call();
    match r {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// A port nobody listens on now (the OS picks it; a server started next binds it).
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().unwrap().port()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Order events `{"seq": n, "detail": {...}}` as JSON lines.
pub(crate) fn order_lines(range: std::ops::Range<u64>) -> String {
    let depts = ["billing", "shipping", "support"];
    range
        .map(|n| {
            format!(
                "{{\"seq\":{n},\"detail-type\":\"OrderCreated\",\"source\":\"shop.orders\",\"detail\":{{\"orderId\":\"O{n}\",\"customerId\":\"C{:03}\",\"department\":\"{}\",\"amount\":{}.5}}}}\n",
                n % 17,
                depts[(n % 3) as usize],
                n % 500
            )
        })
        .collect()
}
