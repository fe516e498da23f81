//! `weir dlq purge`: removes the selected records from the DLQ file, for good.
//!
//! The file is rewritten whole (see [`records::write`]) under its lock and the pipeline's state
//! lock, so that no running weir appends to it meanwhile; on a terminal it asks first, elsewhere
//! it wants `--yes`.

use super::error::DlqError;
use super::records::{self, Record};
use super::{SelectArgs, exit, locate_selected};
use crate::config::HostSettings;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

pub struct PurgeArgs {
    pub pipeline: PathBuf,
    pub select: SelectArgs,
    /// Do not ask.
    pub yes: bool,
}

pub fn purge(args: &PurgeArgs, settings: &HostSettings) -> i32 {
    let (target, selection) = match locate_selected(&args.pipeline, &args.select, settings) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let dlq = &target.dlq;
    let locked = target
        .pipeline
        .lock_state()
        .map_err(DlqError::from)
        .and_then(|state| Ok((state, records::lock(dlq)?)));
    let _locks = match locked {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    records::sweep_leftovers(dlq, &target.aside());
    let all = match records::read(dlq) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let (removed, kept): (Vec<&Record>, Vec<&Record>) =
        all.iter().partition(|r| selection.matches(r));
    if removed.is_empty() {
        println!(
            "nothing to purge: no record of {} matches; {} kept",
            dlq.display(),
            kept.len()
        );
        return exit::OK;
    }
    if !args.yes {
        match confirm(removed.len(), all.len(), dlq) {
            Ok(true) => {}
            Ok(false) => {
                println!("nothing removed");
                return exit::FAILED;
            }
            Err(code) => return code,
        }
    }
    if let Err(e) = records::write(dlq, kept.iter().map(|r| r.line.as_str())) {
        eprintln!("error: {e}");
        return exit::FAILED;
    }
    println!(
        "removed {} records from {}, kept {}",
        removed.len(),
        dlq.display(),
        kept.len()
    );
    exit::OK
}

/// Asks on the terminal; without one, refuses (the exit code says so).
fn confirm(n: usize, of: usize, dlq: &std::path::Path) -> Result<bool, i32> {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "error: would remove {n} of {of} records from {}, for good: pass --yes to confirm \
             (no terminal to ask on)",
            dlq.display()
        );
        return Err(exit::USAGE);
    }
    eprint!(
        "remove {n} of {of} records from {}, for good? [y/N] ",
        dlq.display()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
