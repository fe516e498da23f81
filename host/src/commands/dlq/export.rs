//! `weir dlq export`: writes the selected records (or only their original events) as JSON
//! lines, to stdout or a file. Reads only: the DLQ is left as it is.

use super::error::DlqError;
use super::records::{self, Record};
use super::{SelectArgs, exit, locate_selected};
use crate::config::HostSettings;
use std::io::Write;
use std::path::PathBuf;

pub struct ExportArgs {
    pub pipeline: PathBuf,
    pub select: SelectArgs,
    /// Only each record's `event` (the event as first read), not the whole record.
    pub events: bool,
    /// A file to write (whole, or not at all); stdout otherwise.
    pub output: Option<PathBuf>,
}

pub fn export(args: &ExportArgs, settings: &HostSettings) -> i32 {
    let (target, selection) = match locate_selected(&args.pipeline, &args.select, settings) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Some(out) = &args.output
        && same_file(out, &target.dlq)
    {
        eprintln!("error: --output {} is the DLQ file itself", out.display());
        return exit::USAGE;
    }
    let all = match records::read(&target.dlq) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let selected: Vec<&Record> = all.iter().filter(|r| selection.matches(r)).collect();
    // A torn line is not JSON: it is counted, not exported.
    let torn = selected.iter().filter(|r| r.parsed.is_none()).count();
    let lines = selected.iter().filter_map(|r| match args.events {
        false => r.parsed.as_ref().map(|_| r.line.clone()),
        true => crate::dlq_record::event_text(&r.line).map(str::to_owned),
    });
    let written = match &args.output {
        Some(path) => crate::durable::replace(path, |out| write_lines(out, lines))
            .map_err(|e| DlqError::file("write", path, e)),
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            write_lines(&mut out, lines)
                .and_then(|()| out.flush())
                .map_err(DlqError::Stdout)
        }
    };
    if let Err(e) = written {
        eprintln!("error: {e}");
        return exit::FAILED;
    }
    let what = if args.events { "events" } else { "records" };
    eprintln!(
        "exported {} {what} of {} records in {}{}",
        selected.len() - torn,
        all.len(),
        target.dlq.display(),
        match torn {
            0 => String::new(),
            n => format!(" ({n} torn lines left out)"),
        }
    );
    exit::OK
}

fn write_lines(out: &mut dyn Write, lines: impl Iterator<Item = String>) -> std::io::Result<()> {
    for l in lines {
        out.write_all(l.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
