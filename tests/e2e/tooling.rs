//! What a team's tooling needs of the binary: shell completions and the man page generated from
//! the command definitions, the commit in `weir --version`, and the build info and process
//! metrics on `/metrics`.

use crate::support::*;

/// `weir ARGS...`'s stdout, checked to exit 0.
fn stdout_of(args: &[&str]) -> String {
    let out = weir().args(args).output().expect("run weir");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn completions_and_the_man_page_name_every_subcommand() {
    let s = Scratch::new();
    let bash = stdout_of(&["completions", "bash"]);
    for sub in [
        "run",
        "check",
        "dry-run",
        "dlq",
        "redrive",
        "tap",
        "completions",
        "man",
    ] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    let script = s.write("weir.bash", &bash);
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash");
    assert!(syntax.status.success(), "bash -n: {}", stderr(&syntax));
    for shell in ["zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains("dry-run") && script.contains("dlq"),
            "{shell}: {script}"
        );
    }
    let bad = weir().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    let page = stdout_of(&["man"]);
    // clap_mangen opens with the string definitions groff and other roff programs need (`.ie`,
    // `.el`), then the title line.
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap_or_default();
    assert!(first.starts_with(".TH weir 1"), "{first}");
    for sub in ["weir\\-run", "weir\\-check", "weir\\-dlq", "weir\\-man"] {
        assert!(page.contains(sub), "the man page lacks {sub}:\n{page}");
    }
    // The pages it refers to, one per command.
    let dir = s.path("man1");
    std::fs::create_dir(&dir).unwrap();
    stdout_of(&["man", "--dir", dir.to_str().unwrap()]);
    for page in [
        "weir.1",
        "weir-run.1",
        "weir-dlq-redrive.1",
        "weir-completions.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH weir"), "{page}: {text}");
    }
}

/// The commit `weir --version` names: `weir 0.1.0 (f9fc931)`, `(f9fc931-dirty)` or `(unknown)`.
fn version_commit() -> String {
    let version = stdout_of(&["--version"]);
    let commit = version
        .trim()
        .strip_prefix(&format!("weir {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version:?}"))
        .to_owned();
    let hash = commit.strip_suffix("-dirty").unwrap_or(&commit);
    assert!(
        hash == "unknown" || (hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version:?}"
    );
    commit
}

#[test]
fn metrics_carry_the_build_and_the_process() {
    let commit = version_commit();
    let s = Scratch::new();
    // Enough events that the process has used some CPU by the scrape: the kernel counts it in
    // ticks of 10 ms, and a process that only started can still read 0.
    s.write("in.jsonl", order_lines(0..20_000));
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"scraped\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nfollow = true\n\
         [sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let (child, address) = s.serve(&p, &[]);
    wait_logged(&s, "delivery", || {
        lines(&s.path("out.jsonl")).len() == 20_000
    });
    let (code, text) = admin_get(&address, "/metrics");
    signal(&child, libc::SIGTERM);
    let _ = wait_exit(child);
    assert_eq!(code, 200, "{text}");
    let build = format!(
        "weir_build_info{{version=\"{}\",commit=\"{commit}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.lines().any(|l| l == build), "no {build:?} in:\n{text}");
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        line[name.len()..].trim().parse().unwrap()
    };
    assert!(
        value("process_resident_memory_bytes") > 1_000_000.0,
        "{text}"
    );
    assert!(value("process_cpu_seconds_total") > 0.0, "{text}");
    let open = value("process_open_fds");
    assert!((3.0..=value("process_max_fds")).contains(&open), "{text}");
    // Started after the kernel booted and no later than now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started > 1.0e9 && started <= now + 1.0,
        "{started} vs {now}"
    );
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter"),
        "{text}"
    );
}
