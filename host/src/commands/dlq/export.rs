//! `weir dlq export`: writes the selected records (or only their original events) as JSON
//! lines, to stdout or a file. Reads only: the DLQ is left as it is.

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
        true => event_text(&r.line),
    });
    let written = match &args.output {
        Some(path) => crate::durable::replace(path, |out| write_lines(out, lines))
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            write_lines(&mut out, lines)
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write to stdout: {e}"))
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

/// A record's `event` exactly as it is written there (not re-serialized: key order and numbers
/// stay as they were read).
fn event_text(record: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct EventOnly<'a> {
        #[serde(borrow)]
        event: &'a serde_json::value::RawValue,
    }
    serde_json::from_str::<EventOnly>(record)
        .ok()
        .map(|r| r.event.get().to_owned())
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
