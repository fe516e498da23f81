//! `${VAR}`, `${VAR:-default}`, `${VAR:?message}`, `${file:PATH}` and `$${` in pipeline files
//! and weir.toml, with the real binary: resolved at load and again at a reload, every mistake
//! of a file placed at its line and column, and the resolved values never shown by `weir
//! check`, `weir dry-run`, the log or the admin API.

use crate::support::*;
use serde_json::Value;

/// A pipeline reading `in.jsonl` to its end (or following it), into the file sink `out`.
fn pipeline(name: &str, source_path: &str, follow: bool, out: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\ncheckpoint_interval_ms = 50\n\n\
         [source]\ntype = \"file\"\npath = \"{source_path}\"\nfollow = {follow}\npoll_interval_ms = 10\n\n\
         [sink]\ntype = \"file\"\npath = \"{out}\"\n"
    )
}

#[test]
fn references_resolve_from_the_environment_files_and_defaults_and_comments_are_left_alone() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..5));
    // One trailing newline is not part of the value; a second one would be.
    s.write("name.txt", "from-file\n");
    let text = pipeline(
        "refs",
        "${IN_FILE}",
        false,
        "out/${file:name.txt}-${UNSET_VAR:-dflt}-${EMPTY_VAR:-empty}-$${lit}-${REQUIRED:?say why}.jsonl",
    )
    .replace("[sink]", "# ${NOT_A_REFERENCE} in a comment\n[sink]");
    let p = s.write("p.toml", text);
    let out = s
        .weir_run(&p)
        .env("IN_FILE", "in.jsonl")
        .env("EMPTY_VAR", "")
        .env("REQUIRED", "req")
        .env_remove("UNSET_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written = s.path("out/from-file-dflt-empty-${lit}-req.jsonl");
    assert_eq!(
        lines(&written).len(),
        5,
        "{:?}",
        std::fs::read_dir(s.path("out")).map(|d| d.count())
    );
}

#[test]
fn every_unresolved_reference_is_an_error_at_its_line_and_column() {
    let s = Scratch::new();
    s.write("in.jsonl", "");
    let p = s.write(
        "p.toml",
        "[pipeline]\n\
         name = \"${WEIR_TEST_UNSET_NAME}\"\n\
         \n\
         [source]\n\
         type = \"file\"\n\
         path = \"in-${WEIR_TEST_NEEDED:?the input's suffix}.jsonl\"\n\
         \n\
         [sink]\n\
         type = \"file\"\n\
         path = '${file:missing-secret} ${1BAD}'\n\
         [dlq]\n\
         type = \"file\"\n\
         path = \"${never closed\"\n",
    );
    let out = s.check(&p);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for expected in [
        "p.toml:2:9: `pipeline.name`: ${WEIR_TEST_UNSET_NAME} is not set",
        "p.toml:6:12: `source.path`: ${WEIR_TEST_NEEDED} is not set: the input's suffix",
        "p.toml:10:9: `sink.path`: ${file:missing-secret}: cannot read missing-secret: No such file or directory",
        "p.toml:10:32: `sink.path`: malformed reference `${1BAD}`",
        "p.toml:13:9: `dlq.path`: `${` is never closed with `}`",
        "5 errors found",
    ] {
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    }

    // The host settings too, blamed on weir.toml.
    let settings = s.write(
        "weir.toml",
        "[admin]\ntoken = \"${WEIR_TEST_UNSET_TOKEN}\"\n",
    );
    let out = weir()
        .arg("check")
        .arg("--config")
        .arg(&settings)
        .arg(s.write("ok.toml", pipeline("ok", "in.jsonl", false, "out.jsonl")))
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("weir.toml:2:10: `admin.token`: ${WEIR_TEST_UNSET_TOKEN} is not set"),
        "{err}"
    );
}

fn post(address: &str, path: &str) -> Value {
    let mut r = ureq::post(format!("http://{address}{path}"))
        .send_empty()
        .expect("POST");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn a_changed_secret_file_is_read_again_and_restarts_the_pipeline() {
    let s = Scratch::new();
    s.write("in.jsonl", order_lines(0..3));
    s.write("name.txt", "alpha\n");
    let p = s.write(
        "p.toml",
        pipeline("rotate", "in.jsonl", true, "out-${file:name.txt}.jsonl"),
    );
    let (child, address) = s.serve(&p, &[("WEIR_WATCH_INTERVAL_MS", "50")]);
    wait_logged(&s, "the first version delivering", || {
        lines(&s.path("out-alpha.jsonl")).len() == 3
    });
    let runs = || -> u64 {
        let (_, body) = admin_get(&address, "/pipelines/rotate");
        serde_json::from_str::<Value>(&body).map_or(0, |v| v["runs"].as_u64().unwrap_or(0))
    };
    assert_eq!(runs(), 1);

    // The pipeline file is as it was; the file it refers to changed (a rotated secret): the
    // watch sees it, and the reload restarts the pipeline with the new value.
    s.write("name.txt", "beta\n");
    wait_logged(&s, "the restart", || runs() == 2);
    s.append("in.jsonl", order_lines(3..5));
    wait_logged(&s, "the new version delivering", || {
        lines(&s.path("out-beta.jsonl")).len() == 2
    });
    assert_eq!(lines(&s.path("out-alpha.jsonl")).len(), 3);

    // Nothing changed since: a reload leaves it alone.
    let report = post(&address, "/reload");
    assert_eq!(
        report["unchanged"],
        serde_json::json!(["rotate"]),
        "{report}"
    );
    assert_eq!(runs(), 2);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(child).0, Some(0), "{}", s.log());
}

#[test]
fn secrets_from_the_environment_are_masked_in_check_dry_run_the_log_and_the_admin_api() {
    const URL_SECRET: &str = "Zq9-url-secret-Zq9";
    const KEY_SECRET: &str = "Kx7\"header\\secret-Kx7";
    let s = Scratch::new();
    // One event: its failure, quoting the URL, is the last error.
    s.write("in.jsonl", order_lines(0..1));
    let sink = |url: &str| {
        pipeline("masked", "in.jsonl", true, "unused").replace(
            "type = \"file\"\npath = \"unused\"\n",
            &format!(
                "type = \"http\"\nurl = \"{url}\"\nheaders = {{ \"X-Api-Key\" = \"${{API_KEY}}\" }}\n\n\
                 [retry]\nmax_attempts = 2\nbackoff_ms = [10, 20]\n\n\
                 [dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n"
            ),
        )
    };
    let p = s.write("p.toml", sink("${TARGET_URL}"));
    let shown = |what: &str, text: &str| {
        for secret in [URL_SECRET, KEY_SECRET, "Kx7\\\"header\\\\secret-Kx7"] {
            assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
        }
        assert!(text.contains("***"), "{what} masks nothing:\n{text}");
    };

    // `weir check`: a URL that is not http is quoted in the error.
    let broken = format!("ftp://hooks.example/{URL_SECRET}");
    let out = weir()
        .arg("check")
        .arg(&p)
        .env("TARGET_URL", &broken)
        .env("API_KEY", KEY_SECRET)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`sink.url`"), "{err}");
    shown(
        "weir check",
        &format!("{err}{}", String::from_utf8_lossy(&out.stdout)),
    );

    // Nobody listens there: every request fails, quoting its URL.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/{URL_SECRET}");
    let env = [("TARGET_URL", url.as_str()), ("API_KEY", KEY_SECRET)];

    // `weir dry-run`: the request it would send, URL and header.
    let out = s.dry_run(&p, "in.jsonl").envs(env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout.contains("X-Api-Key") || stdout.contains("x-api-key"),
        "{stdout}"
    );
    shown("weir dry-run", &format!("{stdout}{}", stderr(&out)));

    // `weir run`: the failures in the log and in `/pipelines`.
    let (child, address) = s.serve(&p, &env);
    wait_logged(&s, "the events dead-lettered", || {
        lines(&s.path("dlq.jsonl")).len() == 1
    });
    let (code, body) = admin_get(&address, "/pipelines");
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    let last = &status["pipelines"][0]["last_error"]["message"];
    assert!(
        last.as_str().is_some_and(|m| m.contains("POST ***: ")),
        "{body}"
    );
    shown("/pipelines", &body);
    signal(&child, libc::SIGTERM);
    let _ = wait_exit(child);
    shown("the log", &s.log());
}
