//! `weir new pipeline`: every source kind and every sink kind makes a pipeline that `weir check`
//! passes, with the real binary; nothing is overwritten.

use crate::support::*;
use std::path::{Path, PathBuf};

const SOURCES: [&str; 7] = [
    "file", "kafka", "sqs", "http", "rabbitmq", "nats", "schedule",
];
const SINKS: [&str; 7] = ["stdout", "file", "kafka", "sqs", "http", "rabbitmq", "nats"];

fn new_pipeline(s: &Scratch, name: &str, source: &str, sink: &str) -> std::process::Output {
    weir()
        .args(["new", "pipeline", name, "--source", source, "--sink", sink])
        .current_dir(s.dir.path())
        .output()
        .unwrap()
}

#[test]
fn every_source_and_sink_kind_makes_a_pipeline_that_passes_check() {
    let s = Scratch::new();
    // Every pair: names are unique, so one `weir check` of the folder takes them all.
    for source in SOURCES {
        for sink in SINKS {
            let name = format!("{source}-to-{sink}");
            let out = new_pipeline(&s, &name, source, sink);
            assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
            let text = std::fs::read_to_string(s.path(&format!("{name}.toml"))).unwrap();
            assert!(text.contains(&format!("type = \"{source}\"")), "{text}");
            assert!(text.contains(&format!("name = \"{name}\"")), "{text}");
            assert!(
                !text.contains("%NAME%") && !text.contains("_TABLE%"),
                "{text}"
            );
        }
    }
    // A file source gets a sample of its input, so that check (which reads it) and dry-run work.
    assert!(s.path("file-to-stdout.events.jsonl").is_file());
    let out = weir()
        .arg("check")
        .arg(".")
        .env("WEIR_STATE_DIR", s.state_dir())
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = weir()
        .args([
            "dry-run",
            "file-to-stdout.toml",
            "--input",
            "file-to-stdout.events.jsonl",
        ])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"outcome\":\"delivered\""));
}

#[test]
fn an_existing_file_an_unknown_kind_and_a_bad_name_are_refused() {
    let s = Scratch::new();
    s.write("orders.toml", "mine");
    let out = new_pipeline(&s, "orders", "file", "stdout");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("orders.toml exists; weir new overwrites nothing"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(s.path("orders.toml")).unwrap(),
        "mine"
    );

    let out = new_pipeline(&s, "other", "fiel", "stdout");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown source kind `fiel`; expected one of file, kafka, sqs, http, rabbitmq, nats, schedule"),
        "{}",
        stderr(&out)
    );
    let out = new_pipeline(&s, "a/b", "file", "stdout");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid pipeline name \"a/b\""),
        "{}",
        stderr(&out)
    );
}

/// `weir new plugin tagger --lang LANG` in a temporary folder, built there by its own
/// build.sh (with `build_args` and `build_env`, after `prepare`): `weir plugin test` passes on
/// its sample events and config.
fn new_plugin_builds_and_passes(
    lang: &str,
    prepare: impl FnOnce(&Path),
    build_args: &[&str],
    build_env: (&str, PathBuf),
) {
    let s = Scratch::new();
    let out = weir()
        .args(["new", "plugin", "tagger", "--lang", lang, "--weir-repo"])
        .arg(root())
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let project = s.path("tagger");
    for file in ["wit/plugin.wit", "build.sh", "events.jsonl", "config.json"] {
        assert!(project.join(file).is_file(), "{file} written");
    }
    prepare(&project);
    let build = std::process::Command::new(project.join("build.sh"))
        .args(build_args)
        .env(build_env.0, build_env.1)
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", stderr(&build));
    let out = weir()
        .args([
            "plugin",
            "test",
            "tagger.wasm",
            "--input",
            "events.jsonl",
            "--config",
            "config.json",
        ])
        .current_dir(&project)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(text.matches("\"tagged\":\"tagger\"").count(), 2, "{text}");

    let out = weir()
        .args(["new", "plugin", "tagger", "--lang", lang])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("tagger exists; weir new overwrites nothing"),
        "{}",
        stderr(&out)
    );
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn a_new_rust_plugin_builds_outside_the_repository_and_passes_plugin_test() {
    // Offline, from the crates weir's plugins use (its Cargo.lock is copied); the dependencies'
    // build is kept between runs in a target folder of the repository's.
    let target = root().join("var/new-plugin-target");
    new_plugin_builds_and_passes(
        "rust",
        |_| {},
        &["--offline", "-j", "2", "-q"],
        ("CARGO_TARGET_DIR", target),
    );
}

#[test]
fn a_new_python_plugin_builds_outside_the_repository_and_passes_plugin_test() {
    // componentize-py as scripts/build-plugins.sh installs it.
    let componentize = root().join("var/py-venv/bin/componentize-py");
    assert!(componentize.is_file(), "run scripts/build-plugins.sh first");
    new_plugin_builds_and_passes("python", |_| {}, &[], ("COMPONENTIZE_PY", componentize));
}

#[test]
fn a_new_javascript_plugin_builds_outside_the_repository_and_passes_plugin_test() {
    // componentize-js as scripts/build-plugins.sh installs it for the example plugins (the same
    // pinned versions): linked rather than installed again from the registry.
    let modules = root().join("plugins/reshape-js/node_modules");
    assert!(modules.is_dir(), "run scripts/build-plugins.sh first");
    let link = |project: &Path| {
        std::os::unix::fs::symlink(&modules, project.join("node_modules")).unwrap();
    };
    new_plugin_builds_and_passes("javascript", link, &[], ("NO_UPDATE_NOTIFIER", "1".into()));
}
