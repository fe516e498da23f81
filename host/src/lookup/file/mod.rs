//! `type = "file"`: a CSV or JSON lines file loaded whole into memory (parse.rs), answered from
//! there, and loaded again when it changes (watch.rs). A new version replaces the old in one
//! step, so a lookup sees one version or the other, never a mix; a version that does not parse
//! is refused and the old one kept, with the reason logged at ERROR (naming `file:line`) and
//! counted in `weir_table_reloads_total{outcome="refused"}`.

mod parse;
mod watch;

use super::config::FileFormat;
use super::metrics::TableMetrics;
use arc_swap::ArcSwap;
use parse::Rows;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) struct FileTable {
    shared: Arc<Shared>,
}

/// What the table and its watcher share; the watcher holds it weakly and ends when the table goes.
struct Shared {
    pipeline: String,
    table: String,
    path: PathBuf,
    key: String,
    format: FileFormat,
    rows: ArcSwap<Rows>,
    metrics: TableMetrics,
    /// Reloads tried (loaded or refused), for tests to wait on.
    reloads: std::sync::atomic::AtomicU64,
}

/// Which version of the file was loaded: a file replaced by a rename is another inode, one
/// rewritten in place has another size or change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Self {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl FileTable {
    /// Loads the file now (a mistake in it is the error) and starts watching it.
    pub(super) fn open(
        pipeline: &str,
        table: &str,
        path: &Path,
        key: &str,
        format: FileFormat,
        metrics: TableMetrics,
    ) -> Result<Self, String> {
        let (rows, fingerprint) = load(path, format, key)?;
        metrics.rows.set(rows.by_key.len() as f64);
        let shared = Arc::new(Shared {
            pipeline: pipeline.to_owned(),
            table: table.to_owned(),
            path: path.to_owned(),
            key: key.to_owned(),
            format,
            rows: ArcSwap::from_pointee(rows),
            metrics,
            reloads: std::sync::atomic::AtomicU64::new(0),
        });
        watch::spawn(Arc::downgrade(&shared), fingerprint)?;
        Ok(FileTable { shared })
    }

    /// The row at `key`, as JSON text.
    pub(super) fn get(&self, key: &str) -> Option<String> {
        self.shared
            .rows
            .load()
            .by_key
            .get(key)
            .map(|row| row.to_string())
    }

    /// The rows loaded now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shared.rows.load().by_key.len()
    }

    /// Reloads tried so far (loaded or refused).
    #[cfg(test)]
    pub(super) fn reloads(&self) -> u64 {
        self.shared
            .reloads
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Shared {
    /// Loads the file again if it is not the version `last` says was loaded (or refused).
    fn reload_if_changed(&self, last: &mut Option<Fingerprint>) {
        let now = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(Fingerprint::of(&meta)),
            Err(e) => {
                // Said once, not at every look: the file may come back (a rename into place).
                if last.is_some() {
                    self.refused(&format!("cannot read {}: {e}", self.path.display()));
                }
                None
            }
        };
        if now.is_none() || now == *last {
            *last = now;
            return;
        }
        match load(&self.path, self.format, &self.key) {
            Ok((rows, fingerprint)) => {
                let count = rows.by_key.len();
                self.rows.store(Arc::new(rows));
                self.metrics.rows.set(count as f64);
                self.metrics.reloads_ok.increment(1);
                tracing::info!(
                    pipeline = %self.pipeline,
                    table = %self.table,
                    "table file {} reloaded: {count} rows",
                    self.path.display()
                );
                *last = Some(fingerprint);
            }
            Err(why) => {
                self.refused(&why);
                *last = now;
            }
        }
        self.reloads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn refused(&self, why: &str) {
        self.metrics.reloads_refused.increment(1);
        tracing::error!(
            pipeline = %self.pipeline,
            table = %self.table,
            "table file refused, the rows loaded before are kept: {why}"
        );
    }
}

/// Reads and parses the file; the fingerprint is the opened file's, so that it names exactly
/// the version read.
fn load(path: &Path, format: FileFormat, key: &str) -> Result<(Rows, Fingerprint), String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut text = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut text).map_err(cannot)?;
    let rows = parse::parse(path, &text, format, key)?;
    Ok((rows, Fingerprint::of(&meta)))
}

#[cfg(test)]
mod tests;
