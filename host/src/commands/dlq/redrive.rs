//! `weir dlq redrive`: runs the chosen dead-lettered events through the pipeline again (its
//! filters, plugins, sink and DLQ, with its retry policy); those that then end (delivered,
//! filtered, or dead-lettered anew: their new record continues their history) leave the DLQ.
//!
//! Crash-safe and resumable. The chosen records are first set aside (`DLQ.redrive`, written
//! whole) and then taken out of the DLQ; `DLQ.redrive.progress` says how many bytes of them
//! have ended, saved after the sink made their deliveries durable (see
//! [`crate::source::replay`]). A redrive that finds records set aside (it was killed, or stopped
//! before all ended) finishes them first, from where they stopped, and only then takes a new
//! selection. Taking the records out of the DLQ is repeatable (it removes only lines that are
//! set aside), so a kill at any step loses nothing and delivers again at most the events that
//! were in flight. The pipeline's state lock keeps the pipeline itself out, and
//! `DLQ.redrive.lock` other redrives of a DLQ file that pipelines share.

use super::error::DlqError;
use super::records::{self, Record, Selection};
use super::{SelectArgs, Target, exit, locate_selected};
use crate::config::HostSettings;
use crate::durable;
use crate::pipeline::Pipeline;
use crate::pipeline::load_pipeline;
use crate::source::replay::{self, Progress};
use std::io::{BufRead, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct RedriveArgs {
    pub pipeline: PathBuf,
    pub select: SelectArgs,
}

pub fn redrive(args: &RedriveArgs, settings: &HostSettings) -> i32 {
    let (target, selection) = match locate_selected(&args.pipeline, &args.select, settings) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let locks = target
        .pipeline
        .lock_state()
        .map_err(DlqError::from)
        .and_then(|state| Ok((state, lock_redrive(&target.aside())?)));
    let _locks = match locks {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    match redrive_locked(&runtime, target, &args.pipeline, settings, &selection) {
        Ok(true) => exit::OK,
        Ok(false) => exit::FAILED,
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

/// Finishes an interrupted redrive, then redrives the selection. `Ok(false)`: some events did
/// not end (they stay set aside for the next redrive).
fn redrive_locked(
    runtime: &tokio::runtime::Runtime,
    target: Target,
    file: &Path,
    settings: &HostSettings,
    selection: &Selection,
) -> Result<bool, DlqError> {
    let (dlq, aside) = (target.dlq.clone(), target.aside());
    records::sweep_leftovers(&dlq, &aside);
    // The pipeline runs once: a resumed redrive uses it up, and the new selection's run
    // loads it again.
    let pipeline = match aside.exists() {
        false => Some(target.pipeline),
        true => {
            eprintln!(
                "resuming an interrupted redrive: {} events set aside in {}",
                aside_count(&aside),
                aside.display()
            );
            let progress = {
                let _lock = lock_if_there(&dlq)?;
                prepare(&dlq, &aside, selection)?
            };
            if !run(runtime, target.pipeline, &aside, progress, file)? {
                return Ok(false);
            }
            None
        }
    };

    // Locked from choosing to taking out: no running weir appends meanwhile. Released before
    // the run, whose DLQ sink takes the lock itself.
    let lock = lock_if_there(&dlq)?;
    let all = records::read(&dlq)?;
    // Malformed input fails at the source whatever is fixed downstream: never redriven.
    let unfixable = all
        .iter()
        .filter(|r| selection.ours(r) && r.stage() == "source")
        .count();
    if unfixable > 0 {
        eprintln!(
            "{unfixable} records failed at the source (malformed input) and are not redriven: fix them upstream"
        );
    }
    let chosen: Vec<&Record> = all
        .iter()
        .filter(|r| r.parsed.is_some() && r.stage() != "source" && selection.matches(r))
        .collect();
    if chosen.is_empty() {
        println!("nothing to redrive: no record of {} matches", dlq.display());
        return Ok(true);
    }
    // A progress file without its records is stale; it must not apply to the new ones.
    remove(&Progress::path(&aside))?;
    records::write(&aside, chosen.iter().map(|r| r.line.as_str()))?;
    drop(all);
    let progress = prepare(&dlq, &aside, selection)?;
    drop(lock);
    let pipeline = match pipeline {
        Some(p) => p,
        None => Pipeline::new(load_pipeline(file)?, &settings.state_dir),
    };
    run(runtime, pipeline, &aside, progress, file)
}

/// The DLQ file's lock, if the file is there.
fn lock_if_there(dlq: &Path) -> Result<Option<records::FileLock>, DlqError> {
    match dlq.exists() {
        true => records::lock(dlq).map(Some),
        false => Ok(None),
    }
}

/// The progress of the records set aside, after making sure they are out of the DLQ (the step
/// a kill may have cut short). Refuses records set aside by another pipeline. The caller holds
/// the DLQ file's lock.
fn prepare(dlq: &Path, aside: &Path, selection: &Selection) -> Result<Progress, DlqError> {
    let set_aside = records::read(aside)?;
    if let Some(other) = set_aside.iter().find(|r| !selection.ours(r)) {
        return Err(DlqError::OtherPipeline {
            aside: aside.to_owned(),
            pipeline: other.pipeline().unwrap_or("?").to_owned(),
        });
    }
    let aside_bytes = std::fs::metadata(aside)
        .map_err(|e| DlqError::file("read", aside, e))?
        .len();
    let path = Progress::path(aside);
    match Progress::load(&path) {
        Some(p) if p.aside_bytes == aside_bytes && p.done <= aside_bytes => return Ok(p),
        Some(_) => eprintln!(
            "warning: {} does not match {}: redriving all of its events again",
            path.display(),
            aside.display()
        ),
        // Saved only once the records are out of the DLQ: without it, they may still be in.
        None if dlq.exists() => {
            records::take_out(dlq, set_aside.iter().map(|r| r.line.as_str()))?;
        }
        None => {}
    }
    let progress = Progress {
        aside_bytes,
        done: 0,
    };
    progress
        .save(&path)
        .map_err(|e| DlqError::file("write", &path, e))?;
    Ok(progress)
}

/// Runs the records set aside from `progress` on through the pipeline; when all have ended,
/// removes them and their progress. Returns whether all ended.
fn run(
    runtime: &tokio::runtime::Runtime,
    pipeline: Pipeline,
    aside: &Path,
    progress: Progress,
    file: &Path,
) -> Result<bool, DlqError> {
    let total = count_from(aside, progress.done);
    let counters = pipeline.counters();
    let replay::Opened {
        source,
        acker,
        done,
    } = replay::open(aside, progress)?;
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("redrive {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = runtime.block_on(async {
        let stop = crate::shutdown::on_signals().map_err(DlqError::Signals)?;
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
        let snapshot = run.await.map_err(DlqError::Join)??;
        Ok::<_, DlqError>(snapshot)
    });
    bar.finish_and_clear();
    let c = counters.snapshot();
    let finished = count_from(aside, done.get()) == 0;
    let unfinished = match finished {
        true => 0,
        false => total.saturating_sub(c.ended() as usize),
    };
    println!(
        "redrove {total} events: {} delivered, {} filtered, {} dead-lettered again, {} dropped, {unfinished} unfinished",
        c.delivered, c.filtered, c.dead_lettered, c.dropped,
    );
    if finished {
        // The records first: progress without them is stale and ignored, the reverse would
        // redrive them all again.
        remove(aside)?;
        remove(&Progress::path(aside))?;
    } else {
        eprintln!(
            "the events not finished stay set aside in {}: `weir dlq redrive {}` resumes them",
            aside.display(),
            file.display()
        );
    }
    result.map(|_| finished)
}

/// Non-blank lines of `path` after byte `offset`: the events a redrive has still to run.
fn count_from(path: &Path, offset: u64) -> usize {
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    if f.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return 0;
    }
    std::io::BufReader::new(f)
        .split(b'\n')
        .map_while(Result::ok)
        .filter(|l| !l.trim_ascii().is_empty())
        .count()
}

/// Events set aside by an interrupted redrive and not yet ended (for `inspect`).
pub(super) fn aside_count(aside: &Path) -> usize {
    let done = Progress::load(&Progress::path(aside)).map_or(0, |p| p.done);
    count_from(aside, done)
}

/// Removes `path` durably, if it is there.
fn remove(path: &Path) -> Result<(), DlqError> {
    match std::fs::remove_file(path) {
        Ok(()) => durable::sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| DlqError::file("remove", path, e))
}

/// Keeps other redrives of this DLQ file out (pipelines sharing it have state locks of their
/// own). Held while the returned file is open.
fn lock_redrive(aside: &Path) -> Result<std::fs::File, DlqError> {
    let mut name = aside.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DlqError::file("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DlqError::RedriveRunning(path)),
        Err(std::fs::TryLockError::Error(e)) => Err(DlqError::file("lock", &path, e)),
    }
}
