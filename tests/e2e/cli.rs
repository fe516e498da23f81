//! `weir check` and the host settings, through the real binary.

use crate::support::*;

#[test]
fn check_accepts_valid_files_and_names_mistakes() {
    let s = Scratch::new();
    s.write("x", "");
    let good = s.write("good.toml", "[pipeline]\nname = \"good\"\n[source]\ntype = \"file\"\npath = \"x\"\n[sink]\ntype = \"stdout\"\n");
    let check = || {
        let mut cmd = weir();
        cmd.arg("check").current_dir(s.dir.path());
        cmd
    };
    let out = check().arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let bad = s.write("bad.toml", "[pipeline]\nname = \"bad\"\n[source]\ntype = \"file\"\npath = \"x\"\nbatch_sise = 3\n[sink]\ntype = \"stdout\"\n");
    let out = check().arg(&good).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml:6:1: `source.batch_sise`: unknown key"),
        "{err}"
    );
    assert!(err.contains("did you mean `batch_size`?"), "{err}");
}

#[test]
fn check_rejects_duplicate_names_in_a_directory() {
    let s = Scratch::new();
    let text = "[pipeline]\nname = \"same\"\n[source]\ntype = \"file\"\npath = \"x\"\n[sink]\ntype = \"stdout\"\n";
    s.write("dir/a.toml", text);
    s.write("dir/b.toml", text);
    let out = weir().arg("check").arg(s.path("dir")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("pipeline name `same` is already used by"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_quickstart_pipeline_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = weir()
        .arg("check")
        .arg(root.join("pipelines"))
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn host_settings_come_from_file_env_and_flags() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..3));
    let p = s.write("p.toml", "[pipeline]\nname = \"logs\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n");
    // weir.toml in the working directory sets the state dir and JSON logs.
    s.write(
        "weir.toml",
        "state_dir = \"from-file\"\nlog_format = \"json\"\n",
    );
    let out = weir()
        .arg("run")
        .arg(&p)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(s.path("from-file/logs/file-source.json").exists());
    let log = stderr(&out);
    let stopped = log
        .lines()
        .find(|l| l.contains("pipeline stopped"))
        .unwrap_or_else(|| panic!("{log}"));
    let v: serde_json::Value = serde_json::from_str(stopped).unwrap();
    assert_eq!(v["pipeline"], "logs");
    assert_eq!(v["delivered"], 3);

    // The environment overrides the file; a flag overrides both.
    let out = weir()
        .arg("run")
        .arg(&p)
        .env("WEIR_STATE_DIR", "from-env")
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(s.path("from-env/logs/file-source.json").exists());
    let out = weir()
        .args(["run", "--log-format", "text", "--state-dir", "from-flag"])
        .arg(&p)
        .env("WEIR_STATE_DIR", "from-env")
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(s.path("from-flag/logs/file-source.json").exists());
    assert!(
        !stderr(&out).trim_start().starts_with('{'),
        "text logs: {}",
        stderr(&out)
    );

    // A bad setting is an error, not a silent default.
    let out = weir()
        .arg("run")
        .arg(&p)
        .env("WEIR_LOG_FORMAT", "yaml")
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("environment variable `WEIR_LOG_FORMAT`: unknown value `yaml`"),
        "{}",
        stderr(&out)
    );
}

/// A pipeline reading `input` into `sink`, with `extra` sections.
fn pipeline_text(name: &str, input: &str, sink: &str, extra: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\n[source]\ntype = \"file\"\npath = \"{input}\"\n{extra}\n[sink]\ntype = \"file\"\npath = \"{sink}\"\n"
    )
}

fn built_plugin(rel: &str) -> std::path::PathBuf {
    crate::plugins::plugin(rel)
}

#[test]
fn check_finds_what_run_would_refuse() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..3));
    s.write("empty.wasm", b"");
    s.write("corrupt.wasm", b"\0asm\x0d\0\x01\0garbage");
    // A valid core module, not a component.
    s.write("core.wasm", b"\0asm\x01\0\0\0");
    s.write("a-file", "x");
    std::fs::create_dir_all(s.path("a-dir")).unwrap();
    let redact = built_plugin("redact/redact.wasm");
    let faults = built_plugin("fixtures/faults/faults.wasm");
    let plugin = |path: &std::path::Path, rest: &str| {
        format!(
            "[[plugin]]\npath = {:?}\n{rest}\n",
            path.display().to_string()
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing-plugin",
            pipeline_text(
                "a",
                "in.jsonl",
                "out.jsonl",
                "[[plugin]]\npath = \"nope.wasm\"\n",
            ),
            "missing-plugin.toml:7:1: `plugin[0].path`: plugin nope: cannot read nope.wasm",
        ),
        (
            "empty-plugin",
            pipeline_text(
                "b",
                "in.jsonl",
                "out.jsonl",
                "[[plugin]]\npath = \"empty.wasm\"\n",
            ),
            "empty-plugin.toml:7:1: `plugin[0].path`: plugin empty: empty.wasm is not a valid weir plugin component",
        ),
        (
            "corrupt-plugin",
            pipeline_text(
                "c",
                "in.jsonl",
                "out.jsonl",
                "[[plugin]]\npath = \"corrupt.wasm\"\n",
            ),
            "corrupt-plugin.toml:7:1: `plugin[0].path`: plugin corrupt: corrupt.wasm is not a valid weir plugin component",
        ),
        (
            "core-module",
            pipeline_text(
                "d",
                "in.jsonl",
                "out.jsonl",
                "[[plugin]]\npath = \"core.wasm\"\n",
            ),
            "core-module.toml:7:1: `plugin[0].path`: plugin core: core.wasm is not a valid weir plugin component: failed to parse WebAssembly module: attempted to parse a wasm module with a component parser",
        ),
        (
            "init-config",
            pipeline_text(
                "e",
                "in.jsonl",
                "out.jsonl",
                &plugin(&redact, "config = { fields = 3 }"),
            ),
            "init-config.toml:6:1: `plugin[0]`: plugin redact: init failed: config.fields must be a list of strings",
        ),
        (
            "init-fails",
            pipeline_text(
                "f",
                "in.jsonl",
                "out.jsonl",
                &plugin(&faults, "config = { fail_init = \"no database\" }"),
            ),
            "`plugin[0]`: plugin faults: init failed: no database",
        ),
        (
            "tiny-memory",
            pipeline_text(
                "g",
                "in.jsonl",
                "out.jsonl",
                &plugin(&redact, "memory_mb = 1\nconfig = { fields = [\"email\"] }"),
            ),
            "tiny-memory.toml:6:1: `plugin[0]`: plugin redact: init failed: plugin redact exceeded 1 MiB",
        ),
        (
            "missing-input",
            pipeline_text("h", "nothing.jsonl", "out.jsonl", ""),
            "missing-input.toml:5:1: `source.path`: cannot open input file nothing.jsonl",
        ),
        (
            "dir-input",
            pipeline_text("i", "a-dir", "out.jsonl", ""),
            "dir-input.toml:5:1: `source.path`: a-dir is not a file",
        ),
        (
            "sink-under-file",
            pipeline_text("j", "in.jsonl", "a-file/out.jsonl", ""),
            "sink-under-file.toml:9:1: `sink.path`: cannot create a-file/out.jsonl: a-file is not a directory",
        ),
        (
            "sink-dir",
            pipeline_text("k", "in.jsonl", "a-dir", ""),
            "sink-dir.toml:9:1: `sink.path`: a-dir is a directory",
        ),
        (
            "dlq-dir",
            pipeline_text(
                "l",
                "in.jsonl",
                "out.jsonl",
                "[dlq]\ntype = \"file\"\npath = \"a-dir\"\n",
            ),
            "dlq-dir.toml:8:1: `dlq.path`: a-dir is a directory",
        ),
    ];
    for (file, text, _) in &cases {
        s.write(&format!("{file}.toml"), text);
    }
    let good = s.write(
        "good.toml",
        pipeline_text(
            "good",
            "in.jsonl",
            "var/out.jsonl",
            &plugin(&redact, "config = { fields = [\"email\"] }"),
        ),
    );
    let out = weir()
        .args(["check", "--state-dir", "state"])
        .arg(&good)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok:"));
    let mut wrong = Vec::new();
    for (file, _, expected) in &cases {
        let out = weir()
            .args(["check", "--state-dir", "state"])
            .arg(format!("{file}.toml"))
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        let err = stderr(&out);
        if out.status.code() != Some(1) || !err.contains(expected) {
            wrong.push(format!("{file}: expected {expected:?} in:\n{err}"));
        }
        // And `weir run` refuses it too.
        let out = s.run(&s.path(&format!("{file}.toml")));
        if out.status.code() == Some(0) {
            wrong.push(format!("{file}: weir run accepted it"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Checking writes nothing where the pipelines write (only the compile cache).
    assert!(!s.path("var/out.jsonl").exists());
    assert!(!s.path("var").exists());
}

#[test]
fn check_reports_every_mistake_of_a_file_in_one_pass() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..3));
    let p = s.write(
        "p.toml",
        "[pipeline]\nname = \"p\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\nbatch_sise = 3\npol_interval_ms = 5\n\
         [sourc]\nx = 1\n[ordering]\nlanes = 0\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\ntemplat = \"x\"\n",
    );
    let out = s.check(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for expected in [
        "p.toml:6:1: `source.batch_sise`: unknown key",
        "p.toml:7:1: `source.pol_interval_ms`: unknown key",
        "did you mean `poll_interval_ms`?",
        "p.toml:8:2: `sourc`: unknown key",
        "p.toml:11:1: `ordering.lanes`: must be between",
        "p.toml:15:1: `sink.templat`: unknown key",
        "5 errors found",
    ] {
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    }
}

#[test]
fn check_names_the_host_setting_at_fault() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..3));
    let p = s.write("p.toml", pipeline_text("p", "in.jsonl", "out.jsonl", ""));
    let check = |env: &[(&str, &str)]| {
        let out = weir()
            .arg("check")
            .arg(&p)
            .envs(env.iter().copied())
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        (out.status.code(), stderr(&out))
    };
    // No weir.toml: a misspelt variable is blamed on itself, with the right spelling.
    let (code, err) = check(&[
        ("WEIR_LOG_LEVL", "debug"),
        ("WEIR_ADMIN_ADDRESS", "127.0.0.1:1"),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("environment variable `WEIR_LOG_LEVL` is not a weir setting"),
        "{err}"
    );
    assert!(err.contains("did you mean `WEIR_LOG_LEVEL`?"), "{err}");
    assert!(err.contains("did you mean `WEIR_ADMIN__ADDRESS`?"), "{err}");
    assert!(!err.contains("weir.toml"), "{err}");
    // The commit weir was built from, which cargo sets when it runs weir (`cargo run`, `cargo
    // bench`), is not a setting: weir starts.
    let (code, err) = check(&[("WEIR_GIT_COMMIT", "abc1234")]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check(&[("WEIR_SHUTDOWN_TIMEOUT_S", "abc")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("environment variable `WEIR_SHUTDOWN_TIMEOUT_S`: expected a non-negative integer, got `abc`"),
        "{err}"
    );
    // What only serving needs is checked too: an open admin port needs a token.
    let (code, err) = check(&[("WEIR_ADMIN__ADDRESS", "0.0.0.0:9")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("environment variable `WEIR_ADMIN__ADDRESS`: \"0.0.0.0:9\" (0.0.0.0:9) is not a loopback address: set admin.token"),
        "{err}"
    );
    // Every mistake of weir.toml at once, each at its line.
    s.write(
        "weir.toml",
        "log_levle = \"debug\"\nwatch_interval_ms = \"often\"\n[admin]\nadress = \"x\"\n",
    );
    let (code, err) = check(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("weir.toml:1:1: `log_levle`: unknown key"),
        "{err}"
    );
    assert!(err.contains("did you mean `log_level`?"), "{err}");
    assert!(err.contains("weir.toml:2:1: `watch_interval_ms`"), "{err}");
    assert!(err.contains("`admin.adress`: unknown key"), "{err}");
    // `weir run` refuses them the same way.
    let out = s.run(&p);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`log_levle`"), "{}", stderr(&out));
}

#[test]
fn run_errors_name_the_file_line_and_key() {
    let s = Scratch::new();
    let p = s.write(
        "p.toml",
        pipeline_text("p", "nothing.jsonl", "out.jsonl", ""),
    );
    let out = s.run(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("p.toml:3:2: `source`: source.path: cannot open input file nothing.jsonl"),
        "{err}"
    );
    assert!(err.contains("nothing.jsonl"), "{err}");
}

#[test]
fn the_readme_sqs_example_passes_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("### SQS").expect("README has an SQS section")..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    assert!(example.contains("<$.data.detail-type>"), "{example}");
    let s = Scratch::new();
    let p = s.write("sqs.toml", format!("[pipeline]\nname = \"sqs\"\n{example}"));
    let out = s.check(&p);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn template_errors_point_at_the_byte_without_parser_internals() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..3));
    let p = s.write(
        "p.toml",
        pipeline_text("p", "in.jsonl", "out.jsonl", "").replace(
            "path = \"out.jsonl\"\n",
            "path = \"out.jsonl\"\ntemplate = \"id <$.data.a%b>\"\n",
        ),
    );
    let out = s.check(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "`sink.template`: invalid template: invalid JSONPath <$.data.a%b>: unexpected `%`"
        ),
        "{err}"
    );
    assert!(err.contains("(at byte 12 of the template)"), "{err}");
    assert!(!err.contains("Rule") && !err.contains("-->"), "{err}");
}

#[test]
fn a_second_run_says_how_to_move_the_admin_server() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..3));
    let p = s.write("p.toml", pipeline_text("p", "in.jsonl", "out.jsonl", ""));
    let out = s
        .weir_run(&p)
        .env("WEIR_ADMIN__ADDRESS", &address)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {address}")),
        "{err}"
    );
    assert!(err.contains("WEIR_ADMIN__ADDRESS=127.0.0.1:9465"), "{err}");
    assert!(err.contains("`[admin]` table"), "{err}");
    assert!(err.contains("WEIR_ADMIN__ADDRESS=off"), "{err}");
}
