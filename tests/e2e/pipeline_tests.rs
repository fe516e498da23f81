//! `weir test`: the repository's example pipelines' tests pass; a test that expects the wrong
//! thing fails with a diff naming the input and field; `--junit` writes a well-formed report
//! with the right counts; mistakes in a test file are named at their line, exit 2. With the
//! real binary and real plugins (scripts/build-plugins.sh).

use crate::plugins::plugin;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Output;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn weir_test(dir: &Path, args: &[&str]) -> Output {
    weir()
        .arg("test")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run weir test")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_example_pipelines_tests_pass() {
    let out = weir_test(&root(), &["pipelines"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for file in [
        "pipelines/quickstart.test.toml",
        "pipelines/routing.test.toml",
    ] {
        assert!(
            text.contains(&format!("test {file} :: ")),
            "{file} ran: {text}"
        );
    }
    let oks = text.lines().filter(|l| l.ends_with(" ... ok")).count();
    assert!(oks >= 3, "{text}");
    assert!(
        text.contains(&format!("{oks} tests: {oks} passed, 0 failed")),
        "{text}"
    );
    // The test files beside the pipelines are not pipelines to `weir check`.
    let out = weir()
        .arg("check")
        .arg("pipelines")
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A pipeline with a plugin that drops, fails and splits on demand, and a redacting one after it.
fn plugin_pipeline(s: &Scratch) -> PathBuf {
    s.write(
        "p.toml",
        format!(
            r#"[pipeline]
name = "tested"

[source]
type = "file"
path = "nowhere.jsonl"

[[filter]]
pattern = '{{"data": {{"dept": ["billing"]}}}}'

[[plugin]]
path = {faults:?}

[[plugin]]
path = {redact:?}
config = {{ fields = ["email"] }}

[ordering]
key = "<$.data.customer>"

[sink]
type = "stdout"
"#,
            faults = plugin("fixtures/faults/faults.wasm"),
            redact = plugin("redact/redact.wasm"),
        ),
    )
}

const PASSING: &str = r#"
[[test]]
name = "every outcome"
events = [
  { dept = "billing", customer = "C1", email = "a@b.c" },
  { dept = "sales", customer = "C2" },
  { dept = "billing", customer = "C3", fault = "drop" },
  { dept = "billing", customer = "C4", fault = "error" },
  { dept = "billing", customer = "C5", fault = "split", n = 2 },
]
[[test.expect]]
outcome = "delivered"
key = "C1"
body = { customer = "C1", email = "***" }
[[test.expect]]
outcome = "filtered"
[[test.expect]]
outcome = "dropped"
stage = "plugin:faults"
[[test.expect]]
outcome = "dead-lettered"
stage = "plugin:faults"
kind = "error"
reason = "asked to fail"
[[test.expect]]
outcome = "delivered"
bodies = [{ part = 0 }, { part = 1 }]
"#;

const FAILING: &str = r#"
[[test]]
name = "wrong expectations"
events = [
  { dept = "billing", customer = "C1", email = "a@b.c" },
  { dept = "sales", customer = "C2" },
]
[[test.expect]]
outcome = "delivered"
body = { customer = "C9", email = "***" }
[[test.expect]]
outcome = "delivered"
"#;

#[test]
fn a_plugin_pipeline_is_tested_and_a_wrong_expectation_fails_with_a_diff() {
    let s = Scratch::new();
    plugin_pipeline(&s);
    s.write(
        "p.test.toml",
        format!("pipeline = \"p.toml\"\n{PASSING}{FAILING}"),
    );
    let out = weir_test(s.dir.path(), &["p.test.toml", "--junit", "report.xml"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("test p.test.toml :: every outcome ... ok"),
        "{text}"
    );
    assert!(
        text.contains("test p.test.toml :: wrong expectations ... FAILED"),
        "{text}"
    );
    assert!(
        text.contains("    input 0: body.customer: expected \"C9\", got \"C1\""),
        "the diff names the input and the field: {text}"
    );
    assert!(
        text.contains("    input 1: outcome: expected delivered, got filtered (data.dept: "),
        "a wrong outcome says why it ended as it did: {text}"
    );
    assert!(text.contains("2 tests: 1 passed, 1 failed"), "{text}");

    // The JUnit report: well-formed, one suite, two cases, one failure holding the diff.
    let xml = std::fs::read_to_string(s.path("report.xml")).unwrap();
    let elements = well_formed(&xml);
    assert_eq!(count(&elements, "testsuite"), 1, "{xml}");
    assert_eq!(count(&elements, "testcase"), 2, "{xml}");
    assert_eq!(count(&elements, "failure"), 1, "{xml}");
    assert!(
        xml.contains("<testsuites name=\"weir test\" tests=\"2\" failures=\"1\">"),
        "{xml}"
    );
    assert!(
        xml.contains("body.customer: expected &quot;C9&quot;, got &quot;C1&quot;"),
        "{xml}"
    );
}

#[test]
fn passing_tests_exit_0_and_mistakes_in_a_test_file_exit_2_with_their_line() {
    let s = Scratch::new();
    plugin_pipeline(&s);
    s.write("ok.test.toml", format!("pipeline = \"p.toml\"\n{PASSING}"));
    let out = weir_test(s.dir.path(), &["ok.test.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // A misspelt key, an expectation that cannot hold (a body for a filtered event), a mistake
    // in the pipeline: each named at its line and key, as `weir check` names them; exit 2.
    let expect = "pipeline = \"p.toml\"\n\n[[test]]\nname = \"x\"\nevents = [{ dept = \"sales\" }]\n[[test.expect]]\n";
    let err = fails_to_load(&s, &format!("{expect}outcom = \"filtered\"\n"));
    assert!(
        err.contains("bad.test.toml:7:1: `test[0].expect[0].outcom`: unknown key"),
        "{err}"
    );
    assert!(err.contains("did you mean `outcome`?"), "{err}");
    let err = fails_to_load(
        &s,
        &format!("{expect}outcome = \"filtered\"\nbody = {{ a = 1 }}\n"),
    );
    assert!(
        err.contains("bad.test.toml:8:1: `test[0].expect[0].body`: `body` does not go with outcome \"filtered\""),
        "{err}"
    );
    s.write("broken.toml", "[pipeline]\nname = \"b\"\n[source]\ntype = \"file\"\npth = \"x\"\n[sink]\ntype = \"stdout\"\n");
    let broken = expect.replace("p.toml", "broken.toml");
    let err = fails_to_load(&s, &format!("{broken}outcome = \"delivered\"\n"));
    assert!(
        err.contains("broken.toml:5:1: `source.pth`: unknown key"),
        "{err}"
    );
}

/// Runs `weir test` on `text` as bad.test.toml, which must not load: its stderr.
fn fails_to_load(s: &Scratch, text: &str) -> String {
    s.write("bad.test.toml", text);
    let out = weir_test(s.dir.path(), &["bad.test.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

/// The elements of an XML document, checked to nest properly (the tokenizer checks the rest).
fn well_formed(xml: &str) -> Vec<String> {
    let mut open: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    for token in xmlparser::Tokenizer::from(xml) {
        match token.unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{xml}")) {
            xmlparser::Token::ElementStart { local, .. } => {
                open.push(local.to_string());
                seen.push(local.to_string());
            }
            xmlparser::Token::ElementEnd { end, .. } => match end {
                xmlparser::ElementEnd::Open => {}
                xmlparser::ElementEnd::Empty => {
                    open.pop();
                }
                xmlparser::ElementEnd::Close(_, name) => {
                    assert_eq!(open.pop().as_deref(), Some(name.as_str()), "{xml}");
                }
            },
            _ => {}
        }
    }
    assert!(open.is_empty(), "unclosed {open:?}: {xml}");
    seen
}

fn count(elements: &[String], name: &str) -> usize {
    elements.iter().filter(|e| *e == name).count()
}
