//! `weir dlq inspect|redrive|purge|export PIPELINE.toml`: the operator's view of a pipeline's
//! dead-letter queue (a file DLQ: the default `<state dir>/<name>/dlq.jsonl`, or a `[dlq] type =
//! "file"`). A DLQ file may be shared by several pipelines: each command acts on the records of
//! its pipeline only.
//!
//! Beside the DLQ file live a redrive's records set aside (`DLQ.redrive`) and its progress
//! (`DLQ.redrive.progress`), see [`redrive`]; commands that rewrite the file do it through a
//! temporary file (`DLQ.tmp`) under the file's lock, see [`records`].

mod error;
mod export;
mod purge;
mod records;
mod redrive;

pub use export::{ExportArgs, export};
pub use purge::{PurgeArgs, purge};
pub use redrive::{RedriveArgs, redrive};

use crate::config::HostSettings;
use crate::exit;
use crate::pipeline::Pipeline;
use crate::pipeline::load_pipeline;
use records::Selection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A pipeline's file DLQ, as the commands find it.
struct Target {
    pipeline: Pipeline,
    dlq: PathBuf,
}

impl Target {
    /// Where a redrive sets records aside.
    fn aside(&self) -> PathBuf {
        let mut name = self.dlq.as_os_str().to_owned();
        name.push(".redrive");
        PathBuf::from(name)
    }
}

/// Which of the selection flags a command was given.
pub struct SelectArgs {
    /// `plugin:NAME`, `plugin` (any plugin), `sink`, `source`.
    pub stage: Option<String>,
    /// The error kind: `error`, `trap`, `timeout`, `rejected`, `malformed`, ...
    pub kind: Option<String>,
    /// An event pattern over the DLQ record (`{"event": ..., "error": ...}`).
    pub pattern: Option<String>,
}

impl SelectArgs {
    fn selection(&self, pipeline: &str) -> Result<Selection, i32> {
        Selection::new(
            pipeline,
            self.stage.clone(),
            self.kind.clone(),
            self.pattern.as_deref(),
        )
        .map_err(|e| {
            eprintln!("error: {e}");
            exit::USAGE
        })
    }
}

/// [`locate`], and the records `select` picks in that pipeline's DLQ (purge, redrive, export).
fn locate_selected(
    file: &Path,
    select: &SelectArgs,
    settings: &HostSettings,
) -> Result<(Target, Selection), i32> {
    let target = locate(file, settings)?;
    let selection = select.selection(target.pipeline.name())?;
    Ok((target, selection))
}

/// The pipeline and its DLQ file, or the exit code after saying why not: the pipeline file is
/// invalid, its DLQ is not a file, or nothing is there (then where it looked and how to point
/// at the right place).
fn locate(file: &Path, settings: &HostSettings) -> Result<Target, i32> {
    let cfg = load_pipeline(file).map_err(|e| {
        eprintln!("{e}");
        exit::FAILED
    })?;
    let default_dlq = cfg.dlq.is_none();
    let pipeline = Pipeline::new(cfg, &settings.state_dir);
    let Some(dlq) = pipeline.dlq_file() else {
        eprintln!(
            "error: {}: the dead-letter queue is not a file; inspect it with the tools of its kind",
            file.display()
        );
        return Err(exit::FAILED);
    };
    let target = Target { pipeline, dlq };
    if target.dlq.exists() || target.aside().exists() {
        return Ok(target);
    }
    let name = target.pipeline.name();
    let hint = match default_dlq {
        true => format!(
            "pipeline {name} keeps its dead letters in <state dir>/{name}/dlq.jsonl, and the state \
             dir here is {}; if it ran with another one, point at it with --state-dir DIR (or \
             state_dir in weir.toml, WEIR_STATE_DIR)",
            settings.state_dir.display()
        ),
        false => format!(
            "that is the [dlq] path of {}; a relative path is taken from the working directory, \
             so run this where `weir run` ran",
            file.display()
        ),
    };
    eprintln!(
        "error: nothing there: {} does not exist (pipeline {name} has not run with it, or has not \
         dead-lettered anything there)\n  help: {hint}",
        target.dlq.display()
    );
    Err(exit::FAILED)
}

pub fn inspect(file: &Path, settings: &HostSettings) -> i32 {
    let target = match locate(file, settings) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let all = match records::read(&target.dlq) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let everything = Selection {
        pipeline: target.pipeline.name().to_owned(),
        stage: None,
        kind: None,
        pattern: None,
    };
    let (records, others): (Vec<_>, Vec<_>) = all.iter().partition(|r| everything.ours(r));
    println!(
        "pipeline {}: {} dead-lettered events in {}",
        target.pipeline.name(),
        records.len(),
        target.dlq.display()
    );
    if !others.is_empty() {
        let names: std::collections::BTreeSet<&str> =
            others.iter().filter_map(|r| r.pipeline()).collect();
        let names: Vec<&str> = names.into_iter().collect();
        println!(
            "(and {} of other pipelines sharing the file: {})",
            others.len(),
            names.join(", ")
        );
    }
    let aside = redrive::aside_count(&target.aside());
    if aside > 0 {
        println!(
            "{aside} more are set aside in {} by an interrupted redrive: `weir dlq redrive {}` resumes it",
            target.aside().display(),
            file.display()
        );
    }
    if records.is_empty() {
        return exit::OK;
    }
    // (stage, kind, message) -> (count, first failed, last failed)
    let mut groups: BTreeMap<(String, String, String), (usize, String, String)> = BTreeMap::new();
    let mut unreadable = 0;
    for r in &records {
        let Some(f) = r.error() else {
            unreadable += 1;
            continue;
        };
        let key = (f.stage.clone(), f.kind.clone(), f.message.clone());
        let (first, last) = (f.first_failed_at.clone(), f.last_failed_at.clone());
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
        // A reason may quote a URL or a broker address that came from a `${VAR}` secret.
        let message = crate::redact::redact(&message);
        println!("{count:>7}  {stage:<20} {kind:<10} {first:<24} {last:<24} {message}");
    }
    if unreadable > 0 {
        println!("\n{unreadable} lines are not DLQ records (torn by a crash?)");
    }
    exit::OK
}
