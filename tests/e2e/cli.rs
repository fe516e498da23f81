//! `weir check` and the host settings, through the real binary.

use crate::support::*;

#[test]
fn check_accepts_valid_files_and_names_mistakes() {
    let s = Scratch::new();
    let good = s.write("good.toml", "[pipeline]\nname = \"good\"\n[source]\ntype = \"file\"\npath = \"x\"\n[sink]\ntype = \"stdout\"\n");
    let out = weir().arg("check").arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let bad = s.write("bad.toml", "[pipeline]\nname = \"bad\"\n[source]\ntype = \"file\"\npath = \"x\"\nbatch_sise = 3\n[sink]\ntype = \"stdout\"\n");
    let out = weir().arg("check").arg(&good).arg(&bad).output().unwrap();
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
    assert!(stderr(&out).contains("log_format"), "{}", stderr(&out));
}
