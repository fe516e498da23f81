//! `weir test PATH... [--junit FILE]`: unit tests of pipelines. A test file (`orders.test.toml`,
//! file.rs) names its pipeline and holds `[[test]]` tables: input events, and what each must
//! become: delivered (with what body, to which targets), filtered, dropped by a plugin, or
//! dead-lettered (at which stage, of which kind, for which reason). Each test's events run
//! through the pipeline's filters, plugins and templates exactly as `weir dry-run` runs them
//! (evaluate.rs), reaching no source or sink.
//!
//! One line per test, `ok` or `FAILED` followed by the differences, each naming its input and
//! field. Exit 0 when every test passes, 1 when one fails, 2 when a test file, its pipeline, a
//! plugin or an input cannot be loaded.

mod compare;
mod file;
mod junit;

use super::evaluate::{Outcome, Stages};
use crate::exit;
use crate::pipeline::config::TEST_FILE_SUFFIX as SUFFIX;
use crate::pipeline::load_pipeline;
use crate::source::ReadSettings;
use crate::source::file::ReadOnce;
use file::{TestCase, TestFile};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct TestArgs {
    /// Test files, or folders of `*.test.toml` files.
    pub paths: Vec<PathBuf>,
    /// Where to write a JUnit XML report.
    pub junit: Option<PathBuf>,
}

pub fn test(args: &TestArgs) -> i32 {
    let files = match test_files(&args.paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    // Everything is loaded before anything runs: a mistake anywhere is said at once.
    let mut loaded = Vec::new();
    let mut broken = false;
    for path in &files {
        match load(path) {
            Ok(l) => loaded.push(l),
            Err(e) => {
                eprintln!("{e}");
                broken = true;
            }
        }
    }
    if broken {
        return exit::USAGE;
    }
    let mut suites = Vec::new();
    let (mut passed, mut failed) = (0, 0);
    for (tests, mut stages) in loaded {
        let mut suite = junit::Suite {
            name: tests.file.display().to_string(),
            cases: Vec::new(),
        };
        for test in &tests.tests {
            let failures = match run(&mut stages, test) {
                Ok(outcomes) => check(test, &outcomes),
                Err(e) => {
                    eprintln!("error: {}: test {:?}: {e}", tests.file.display(), test.name);
                    return exit::USAGE;
                }
            };
            let verdict = if failures.is_empty() { "ok" } else { "FAILED" };
            println!("test {} :: {} ... {verdict}", suite.name, test.name);
            for f in &failures {
                // A difference quotes what a sink would send: a `${VAR}` secret is masked.
                println!("    {}", crate::redact::redact(f));
            }
            match failures.is_empty() {
                true => passed += 1,
                false => failed += 1,
            }
            suite.cases.push(junit::Case {
                name: test.name.clone(),
                failures,
            });
        }
        suites.push(suite);
    }
    println!(
        "\n{} test{}: {passed} passed, {failed} failed",
        passed + failed,
        if passed + failed == 1 { "" } else { "s" }
    );
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit::report(&suites))
    {
        eprintln!("error: --junit {}: {e}", path.display());
        return exit::USAGE;
    }
    let _ = std::io::stdout().flush();
    if failed > 0 { exit::FAILED } else { exit::OK }
}

/// The test files named: files as they are, folders for their `*.test.toml` files (sorted).
fn test_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let p = entry?.path();
            if p.is_file() && p.to_string_lossy().ends_with(SUFFIX) {
                found.push(p);
            }
        }
        if found.is_empty() {
            return Err(std::io::Error::other(format!(
                "{}: no *{SUFFIX} files in this folder",
                path.display()
            )));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// A test file and its pipeline's stages, ready to run; or what is wrong with them, as
/// `weir check` says it.
fn load(path: &Path) -> Result<(TestFile, Stages), String> {
    let tests = file::read(path).map_err(|e| e.to_string())?;
    let cfg = load_pipeline(&tests.pipeline).map_err(|e| e.to_string())?;
    let stages = Stages::load(cfg).map_err(|e| format!("{}: {e}", tests.pipeline.display()))?;
    Ok((tests, stages))
}

/// Runs one test's inputs through the stages: what became of each.
fn run(stages: &mut Stages, test: &TestCase) -> Result<Vec<Outcome>, String> {
    let ReadSettings {
        format,
        batch_size,
        max_record_bytes,
    } = stages.read_settings();
    // Inline events are read from a file like any input, so that they are decoded as the
    // pipeline's source decodes its records.
    let inline;
    let input = match &test.input {
        Some(path) => path.as_path(),
        None => {
            inline = InlineEvents::write(&test.events)
                .map_err(|e| format!("cannot write the events to a temporary file: {e}"))?;
            inline.path.as_path()
        }
    };
    let mut reader =
        ReadOnce::open(input, format, max_record_bytes).map_err(|e| format!("input: {e}"))?;
    let mut outcomes = Vec::new();
    loop {
        let batch = reader
            .next_batch(batch_size)
            .map_err(|e| format!("input: {e}"))?;
        if batch.is_empty() {
            return Ok(outcomes);
        }
        outcomes.extend(stages.evaluate(batch));
    }
}

/// The differences between what a test expects and what became of its inputs.
fn check(test: &TestCase, outcomes: &[Outcome]) -> Vec<String> {
    if test.expect.len() != outcomes.len() {
        return vec![format!(
            "{} input event{}, {} expectation{}: give one `[[test.expect]]` per input",
            outcomes.len(),
            if outcomes.len() == 1 { "" } else { "s" },
            test.expect.len(),
            if test.expect.len() == 1 { "" } else { "s" },
        )];
    }
    let mut failures = Vec::new();
    for (i, (expect, outcome)) in test.expect.iter().zip(outcomes).enumerate() {
        for d in compare::differences(expect, outcome) {
            failures.push(format!("input {i}: {d}"));
        }
    }
    failures
}

/// A test's inline events as a temporary JSON-lines file, removed when dropped.
struct InlineEvents {
    path: PathBuf,
}

impl InlineEvents {
    fn write(events: &[toml::Value]) -> std::io::Result<Self> {
        let mut text = String::new();
        for event in events {
            match event {
                toml::Value::String(record) => text.push_str(record),
                other => {
                    text.push_str(&serde_json::to_string(other).map_err(std::io::Error::other)?)
                }
            }
            text.push('\n');
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("weir-test-{}-{n}.jsonl", std::process::id()));
            // A name taken (by a leftover of another run) is skipped, never overwritten.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let file = InlineEvents { path };
                    f.write_all(text.as_bytes())?;
                    return Ok(file);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for InlineEvents {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
