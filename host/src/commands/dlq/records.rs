//! A DLQ file's records, which of them a command selects, and rewriting the file safely.

use super::error::DlqError;
use crate::dlq_record::{DlqRecord, Failure};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One line of the DLQ file: commands select records by what they say, and write back the
/// line as it was.
pub(super) struct Record {
    pub line: String,
    /// `None` for a line that is not a DLQ record (torn by a crash).
    pub parsed: Option<DlqRecord<'static>>,
}

impl Record {
    /// Why the event failed, if the line is a record.
    pub(super) fn error(&self) -> Option<&Failure> {
        self.parsed.as_ref().map(|r| &*r.error)
    }

    /// Where the event failed (`source`, `plugin:NAME`, `sink`), or `?`.
    pub(super) fn stage(&self) -> &str {
        self.error().map_or("?", |f| &f.stage)
    }

    /// The pipeline that wrote the record, if it says.
    pub(super) fn pipeline(&self) -> Option<&str> {
        self.parsed.as_ref().and_then(|r| r.pipeline.as_deref())
    }
}

/// The records of a DLQ file (none if it does not exist).
pub(super) fn read(path: &Path) -> Result<Vec<Record>, DlqError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(DlqError::file("read", path, e)),
    };
    // Lossily: a torn multi-byte character must not make the whole file unreadable.
    let text = String::from_utf8_lossy(&text);
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Record {
            line: l.to_owned(),
            parsed: serde_json::from_str(l).ok(),
        })
        .collect())
}

/// Which records a command acts on: this pipeline's (a DLQ file may be shared), narrowed by
/// stage, kind and an event pattern over the record; all of them if nothing narrows.
pub(super) struct Selection {
    pub pipeline: String,
    /// `plugin:NAME`, or `plugin` for any plugin, `sink`, `source`.
    pub stage: Option<String>,
    pub kind: Option<String>,
    pub pattern: Option<weir_pattern::Pattern>,
}

impl Selection {
    /// Compiles `--pattern`; the error is for the user.
    pub(super) fn new(
        pipeline: &str,
        stage: Option<String>,
        kind: Option<String>,
        pattern: Option<&str>,
    ) -> Result<Selection, DlqError> {
        let pattern = pattern
            .map(weir_pattern::Pattern::compile)
            .transpose()
            .map_err(DlqError::Pattern)?;
        Ok(Selection {
            pipeline: pipeline.to_owned(),
            stage,
            kind,
            pattern,
        })
    }

    fn narrowed(&self) -> bool {
        self.stage.is_some() || self.kind.is_some() || self.pattern.is_some()
    }

    /// Whether `r` is one of this pipeline's records (records that do not say are).
    pub(super) fn ours(&self, r: &Record) -> bool {
        r.pipeline().is_none_or(|p| p == self.pipeline)
    }

    pub(super) fn matches(&self, r: &Record) -> bool {
        if r.parsed.is_none() {
            // A torn line has no stage or kind: only "everything" takes it.
            return !self.narrowed();
        }
        if !self.ours(r) {
            return false;
        }
        let stage_ok = self.stage.as_deref().is_none_or(|want| {
            let got = r.stage();
            got == want || got.split(':').next() == Some(want)
        });
        stage_ok
            && self
                .kind
                .as_deref()
                .is_none_or(|k| r.error().is_some_and(|f| f.kind == k))
            && self
                .pattern
                .as_ref()
                .is_none_or(|p| p.matches(r.line.as_bytes()))
    }
}

/// Replaces the DLQ file with `lines` (crash-safe: see [`crate::durable`]).
pub(super) fn write<'a>(path: &Path, lines: impl Iterator<Item = &'a str>) -> Result<(), DlqError> {
    crate::durable::replace(path, |out| {
        for l in lines {
            out.write_all(l.as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
    .map_err(|e| DlqError::file("write", path, e))
}

/// Removes from the DLQ file the lines that are in `taken` (as many times as they are there),
/// keeping the others in order. Doing it twice removes nothing more: a redrive interrupted
/// right after it can simply do it again.
pub(super) fn take_out<'a>(
    path: &Path,
    taken: impl Iterator<Item = &'a str>,
) -> Result<usize, DlqError> {
    let mut wanted: HashMap<&str, usize> = HashMap::new();
    for line in taken {
        *wanted.entry(line).or_default() += 1;
    }
    let records = read(path)?;
    let before = records.len();
    let kept: Vec<&Record> = records
        .iter()
        .filter(|r| match wanted.get_mut(r.line.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect();
    let removed = before - kept.len();
    if removed > 0 {
        write(path, kept.iter().map(|r| r.line.as_str()))?;
    }
    Ok(removed)
}

/// The DLQ file's exclusive lock, the one a running weir holds on every file it appends to:
/// while it is held here, no weir writes to the file.
pub(super) struct FileLock(#[allow(dead_code)] std::fs::File);

/// Takes the lock of the DLQ file at `path`, or says who holds it.
pub(super) fn lock(path: &Path) -> Result<FileLock, DlqError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|e| DlqError::file("open", path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(FileLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(DlqError::InUse(path.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(DlqError::file("lock", path, e)),
    }
}

/// Removes what killed commands left beside the DLQ file: temporary files of a rewrite (this
/// version's `<name>.tmp`, and earlier versions' `<stem>.tmp<pid>`). Only under the locks that
/// keep other rewrites out.
pub(super) fn sweep_leftovers(dlq: &Path, aside: &Path) {
    let mut leftovers: Vec<PathBuf> = [dlq, aside]
        .iter()
        .map(|p| crate::durable::temp_path(p))
        .collect();
    let progress = crate::source::replay::Progress::path(aside);
    leftovers.push(crate::durable::temp_path(&progress));
    let dir = dlq
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let old_prefixes: Vec<String> = [dlq, aside]
        .iter()
        .filter_map(|p| p.file_stem())
        .map(|s| format!("{}.tmp", s.to_string_lossy()))
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = old_prefixes.iter().any(|prefix| {
                name.strip_prefix(prefix.as_str())
                    .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            });
            if old {
                leftovers.push(entry.path());
            }
        }
    }
    for path in leftovers {
        if path.exists() {
            match std::fs::remove_file(&path) {
                Ok(()) => eprintln!("removed {}, left by an interrupted command", path.display()),
                Err(e) => eprintln!("warning: cannot remove {}: {e}", path.display()),
            }
        }
    }
}
