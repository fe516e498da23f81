//! `weir dlq inspect|redrive PIPELINE.toml`: the operator's view of a pipeline's dead-letter
//! queue (a file DLQ: the default `<state dir>/<name>/dlq.jsonl`, or a `[dlq] type = "file"`).
//!
//! Redrive runs the chosen dead-lettered events through the pipeline again (its filters,
//! plugins, sink and DLQ, with its retry policy) and removes from the DLQ only those that then
//! end: delivered, filtered, or dead-lettered anew (their new record, with the new reason,
//! replaces the old one). It is crash-safe: the chosen records are first moved to
//! `DLQ.redrive`; if redrive is interrupted, the next redrive puts them back first (so an event
//! may be delivered twice, never lost). It takes the pipeline's state lock, so it refuses to run
//! while the pipeline runs.

use super::exit;
use crate::config::{HostSettings, load_pipeline};
use crate::event::Envelope;
use crate::pipeline::Pipeline;
use crate::source::replay;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One line of the DLQ file.
struct Record {
    line: String,
    parsed: Option<Value>,
}

impl Record {
    fn error(&self, key: &str) -> &str {
        self.parsed
            .as_ref()
            .and_then(|r| r["error"][key].as_str())
            .unwrap_or("?")
    }
}

fn read_records(path: &Path) -> Result<Vec<Record>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Record {
            line: l.to_owned(),
            parsed: serde_json::from_str(l).ok(),
        })
        .collect())
}

/// The pipeline and its DLQ file, or the exit code after saying why not.
fn open(file: &Path, settings: &HostSettings) -> Result<(Pipeline, PathBuf), i32> {
    let cfg = load_pipeline(file).map_err(|e| {
        eprintln!("{e}");
        exit::FAILED
    })?;
    let pipeline = Pipeline::new(cfg, &settings.state_dir);
    match pipeline.dlq_file() {
        Some(path) => Ok((pipeline, path)),
        None => {
            eprintln!(
                "error: {}: the dead-letter queue is not a file; inspect it with the tools of its kind",
                file.display()
            );
            Err(exit::FAILED)
        }
    }
}

pub fn inspect(file: &Path, settings: &HostSettings) -> i32 {
    let (pipeline, path) = match open(file, settings) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let records = match read_records(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    println!(
        "pipeline {}: {} dead-lettered events in {}",
        pipeline.name(),
        records.len(),
        path.display()
    );
    if records.is_empty() {
        return exit::OK;
    }
    // (stage, kind, message) -> (count, first failed, last failed)
    let mut groups: BTreeMap<(String, String, String), (usize, String, String)> = BTreeMap::new();
    let mut unreadable = 0;
    for r in &records {
        if r.parsed.is_none() {
            unreadable += 1;
            continue;
        }
        let key = (
            r.error("stage").to_owned(),
            r.error("kind").to_owned(),
            r.error("message").to_owned(),
        );
        let (first, last) = (
            r.error("first_failed_at").to_owned(),
            r.error("last_failed_at").to_owned(),
        );
        let g = groups
            .entry(key)
            .or_insert((0, first.clone(), last.clone()));
        g.0 += 1;
        g.1 = g.1.clone().min(first);
        g.2 = g.2.clone().max(last);
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    println!(
        "\n{:>7}  {:<20} {:<10} {:<24} {:<24} message",
        "count", "stage", "kind", "first failed", "last failed"
    );
    for ((stage, kind, message), (count, first, last)) in rows {
        println!("{count:>7}  {stage:<20} {kind:<10} {first:<24} {last:<24} {message}");
    }
    if unreadable > 0 {
        println!("\n{unreadable} lines are not DLQ records (torn by a crash?)");
    }
    exit::OK
}

pub struct RedriveArgs {
    pub pipeline: PathBuf,
    /// `plugin:redact`, or `plugin` for every plugin stage, `sink`, `source`.
    pub stage: Option<String>,
    /// An event pattern over the DLQ record (`{"event": ..., "error": ...}`).
    pub filter: Option<String>,
}

pub fn redrive(args: &RedriveArgs, settings: &HostSettings) -> i32 {
    let (pipeline, path) = match open(&args.pipeline, settings) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let pattern = match args
        .filter
        .as_deref()
        .map(weir_pattern::Pattern::compile)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: --filter: invalid event pattern: {e}");
            return exit::USAGE;
        }
    };
    let _lock = match pipeline.lock_state() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    match redrive_locked(pipeline, &path, args.stage.as_deref(), pattern.as_ref()) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

fn redrive_locked(
    pipeline: Pipeline,
    path: &Path,
    stage: Option<&str>,
    pattern: Option<&weir_pattern::Pattern>,
) -> Result<(), String> {
    let aside = path.with_extension("jsonl.redrive");
    // A redrive that was interrupted left its records aside: they go back first.
    if aside.exists() {
        let back = read_records(&aside)?;
        eprintln!(
            "putting back {} records of an interrupted redrive",
            back.len()
        );
        append_lines(path, back.iter().map(|r| r.line.as_str()))?;
        std::fs::remove_file(&aside)
            .map_err(|e| format!("cannot remove {}: {e}", aside.display()))?;
    }
    let records = read_records(path)?;
    // Malformed input fails at the source whatever is fixed downstream: never redriven.
    let unfixable = records
        .iter()
        .filter(|r| r.error("stage") == "source")
        .count();
    let (chosen, kept): (Vec<Record>, Vec<Record>) = records.into_iter().partition(|r| {
        if r.parsed.is_none() || r.error("stage") == "source" {
            return false;
        }
        let stage_ok = stage.is_none_or(|want| {
            let got = r.error("stage");
            got == want || got.split(':').next() == Some(want)
        });
        stage_ok && pattern.is_none_or(|p| p.matches(r.line.as_bytes()))
    });
    if unfixable > 0 {
        eprintln!(
            "{unfixable} records failed at the source (malformed input) and are not redriven: fix them upstream"
        );
    }
    let mut events = Vec::with_capacity(chosen.len());
    for r in &chosen {
        let parsed = r.parsed.as_ref().ok_or("unreadable record")?;
        events.push(
            Envelope::from_json(&parsed["event"])
                .map_err(|e| format!("a DLQ record's event: {e}: {}", r.line))?,
        );
    }
    if events.is_empty() {
        println!(
            "nothing to redrive: no record of {} matches",
            path.display()
        );
        return Ok(());
    }
    // Aside first (durably), then the DLQ without them: a crash in between leaves them in both,
    // and the next redrive puts them back once more (a duplicate record, not a loss).
    write_durably(&aside, chosen.iter().map(|r| r.line.as_str()))?;
    write_durably(path, kept.iter().map(|r| r.line.as_str()))?;

    let total = events.len();
    let counters = pipeline.counters();
    let (source, acker, ended) = replay::open(events);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("redrive {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = runtime.block_on(async {
        let stop = crate::shutdown::on_signals()
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let run = tokio::spawn(pipeline.run_with(source, acker, stop));
        while !run.is_finished() {
            let c = counters.snapshot();
            bar.set_position(c.ended());
            bar.set_message(format!(
                "delivered {} dead-lettered again {}",
                c.delivered, c.dead_lettered
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        run.await
            .map_err(|e| format!("redrive failed: {e}"))?
            .map_err(|e| e.to_string())
    });
    bar.finish_and_clear();
    // Whatever did not end goes back into the DLQ as it was.
    let ended = ended.get();
    let unfinished: Vec<&str> = chosen
        .iter()
        .zip(&ended)
        .filter(|(_, done)| !**done)
        .map(|(r, _)| r.line.as_str())
        .collect();
    append_lines(path, unfinished.iter().copied())?;
    std::fs::remove_file(&aside).map_err(|e| format!("cannot remove {}: {e}", aside.display()))?;
    let c = counters.snapshot();
    println!(
        "redrove {total} events: {} delivered, {} filtered, {} dead-lettered again, {} dropped, {} left in the DLQ unfinished",
        c.delivered,
        c.filtered,
        c.dead_lettered,
        c.dropped,
        unfinished.len()
    );
    result.map(|_| ())
}

/// Replaces `path` with `lines`: written aside, fsynced, renamed over it.
fn write_durably<'a>(path: &Path, lines: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    for l in lines {
        writeln!(f, "{l}").map_err(err)?;
    }
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}

fn append_lines<'a>(path: &Path, lines: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    for l in lines {
        writeln!(f, "{l}").map_err(err)?;
    }
    f.sync_all().map_err(err)
}
