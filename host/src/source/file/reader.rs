//! Blocking line reader over a file that may grow, be renamed away (rotation) or be truncated.
//!
//! It runs on tokio's blocking pool, one batch at a time: plain `std::fs` reads with a large
//! buffer are faster than async file I/O, which is itself a thread pool underneath.

use super::checkpoint::FileId;
use super::identity::{self, Fingerprint, Known};
use crate::event::Position;
use crate::observe::status::Status;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const READ_BUFFER: usize = 256 * 1024;

/// One file of the stream (a new one at each rotation or truncation): what the acker needs to
/// name it in a checkpoint.
#[derive(Debug, Clone)]
pub(super) struct Generation {
    pub file: Known,
    /// The name it was opened under.
    pub path: PathBuf,
    /// The files finished before it: once its lines are committed, these never need reading.
    pub done_before: Arc<Vec<Known>>,
}

/// The file behind each `Position::partition`.
pub(super) type Generations = Arc<Mutex<Vec<Generation>>>;

/// Where files that could not be read are reported: never silently.
#[derive(Clone, Default)]
pub(super) struct Losses {
    pub pipeline: String,
    pub status: Option<Arc<Status>>,
}

impl Losses {
    /// `file` is gone before all of it was read; `unread` bytes of it, if known.
    pub(super) fn lost(&self, file: &Path, unread: Option<u64>, why: &str) {
        let unread_bytes = unread.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        tracing::warn!(pipeline = %self.pipeline, file = %file.display(), unread_bytes, "{why}: its unread lines are lost");
        if let Some(status) = &self.status {
            status.file_lost(&format!(
                "{} ({why}; unread bytes: {unread_bytes})",
                file.display()
            ));
        }
    }
}

/// What a reader follows: the configured path and its rotations.
#[derive(Clone)]
pub(super) struct Stream {
    /// The configured path; after a rotation, a new file appears here.
    pub path: PathBuf,
    pub max_line: usize,
    pub generations: Generations,
    pub losses: Losses,
}

/// One complete line, without its line ending.
pub(super) struct RawLine {
    pub bytes: Vec<u8>,
    pub position: Position,
    /// Byte offset of the line's first byte in its file.
    pub start: u64,
    /// The line's full length when it was longer than the limit and `bytes` holds only a prefix.
    pub truncated_from: Option<u64>,
    /// The name under which the line's file was opened.
    pub path: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadState {
    /// The batch is full; more may be there.
    More,
    /// No more data for now (the file may still grow).
    Idle,
}

pub(super) struct LineReader {
    stream: Stream,
    file: BufReader<File>,
    current: Known,
    file_name: Arc<str>,
    generation: u32,
    /// Bytes of the current file consumed so far (including `partial`).
    offset: u64,
    /// Lines completed so far in the current file.
    line: u64,
    /// An unfinished line: its bytes (up to `max_line`) and its full length.
    partial: Vec<u8>,
    partial_len: u64,
    /// The current file is no longer at the path and was read to its end once more after that
    /// was seen (catching lines written just before the rename): it is complete.
    drained: bool,
    /// Files beside the path that are finished or predate the stream: never read (again).
    done: Vec<Known>,
}

impl LineReader {
    /// Opens `file_path` (the configured path, or a rotated file found beside it) at `offset`,
    /// which begins line `line + 1`.
    pub(super) fn open(
        stream: Stream,
        file_path: &Path,
        offset: u64,
        line: u64,
        done: Vec<Known>,
    ) -> std::io::Result<Self> {
        let file = File::open(file_path)?;
        Self::new(stream, file, file_path, offset, line, done)
    }

    /// Like [`LineReader::open`], on a file already open.
    pub(super) fn new(
        stream: Stream,
        file: File,
        file_path: &Path,
        offset: u64,
        line: u64,
        done: Vec<Known>,
    ) -> std::io::Result<Self> {
        let (file, current) = prepare(file, offset)?;
        let generation = register(&stream.generations, &current, file_path, &done);
        Ok(LineReader {
            stream,
            file,
            current,
            file_name: file_path.display().to_string().into(),
            generation,
            offset,
            line,
            partial: Vec::new(),
            partial_len: 0,
            drained: false,
            done,
        })
    }

    /// Reads up to `max` complete lines into `out`. At the end of the file it checks for rotation
    /// or truncation and moves on to the next file. When `ended` is true (the input is complete,
    /// not followed), a last line without a newline counts as a line.
    pub(super) fn read_lines(
        &mut self,
        max: usize,
        ended: bool,
        out: &mut Vec<RawLine>,
    ) -> std::io::Result<ReadState> {
        while out.len() < max {
            let buf = self.file.fill_buf()?;
            if buf.is_empty() {
                if self.at_end(out)? {
                    continue;
                }
                if ended && self.partial_len > 0 {
                    self.complete_line(out);
                }
                return Ok(ReadState::Idle);
            }
            let (take, complete) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = self.stream.max_line.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&buf[..take.min(room)]);
            self.partial_len += take as u64;
            self.offset += take as u64;
            self.file.consume(take);
            if complete {
                self.complete_line(out);
            }
        }
        Ok(ReadState::More)
    }

    fn complete_line(&mut self, out: &mut Vec<RawLine>) {
        self.line += 1;
        let mut bytes = std::mem::take(&mut self.partial);
        let full_len = std::mem::take(&mut self.partial_len);
        let start = self.offset - full_len;
        let truncated_from = (full_len > bytes.len() as u64).then_some(full_len);
        if truncated_from.is_none() {
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        // Blank (or whitespace-only) lines are not events; skipping them is safe because the next
        // line's position covers them.
        if bytes.trim_ascii().is_empty() {
            return;
        }
        out.push(RawLine {
            bytes,
            position: Position {
                partition: self.generation,
                offset: self.offset,
                ordinal: self.line,
            },
            start,
            truncated_from,
            path: self.file_name.clone(),
        });
    }

    /// At the end of the current file: goes on to the next file if this one is complete (no
    /// longer at the path), or to the new content if the file at the path was truncated or
    /// written anew. True if there may be more to read now.
    fn at_end(&mut self, out: &mut Vec<RawLine>) -> std::io::Result<bool> {
        let at_path = match std::fs::metadata(&self.stream.path) {
            Ok(m) => Some(m),
            // Renamed away and not recreated yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(m) = at_path.filter(|m| FileId::of(m) == self.current.file) {
            if m.len() >= self.offset && self.current.fingerprint.matches(self.file.get_ref())? {
                self.complete_fingerprint(m.len())?;
                return Ok(false);
            }
            self.replaced(m.len())?;
            return Ok(true);
        }
        if !self.drained {
            self.drained = true;
            return Ok(true);
        }
        self.next(out)
    }

    /// A fingerprint taken while the file was short covers more once it has grown.
    fn complete_fingerprint(&mut self, len: u64) -> std::io::Result<()> {
        if self.current.fingerprint.complete() || len <= self.current.fingerprint.len {
            return Ok(());
        }
        self.current.fingerprint = Fingerprint::read(self.file.get_ref())?;
        let mut g = lock(&self.stream.generations);
        if let Some(entry) = g.get_mut(self.generation as usize) {
            entry.file.fingerprint = self.current.fingerprint.clone();
        }
        Ok(())
    }

    /// The file at the path (still the current inode) is shorter than what was read, or no
    /// longer begins with the bytes it began with: truncated, maybe written again. What was not
    /// read of the old content is gone, unless a copy of it was left beside the path
    /// (`copytruncate`): then the rest is read from the copy first.
    fn replaced(&mut self, len: u64) -> std::io::Result<()> {
        let path = self.stream.path.clone();
        let resume_at = self.offset - self.partial_len;
        tracing::warn!(pipeline = %self.stream.losses.pipeline, path = %path.display(), size = len, offset = self.offset,
            "file was truncated or its content replaced; reading the new content from its start");
        self.partial.clear();
        self.partial_len = 0;
        let copy = identity::find(&path, &self.current, resume_at)
            .filter(|(s, _)| s.file != self.current.file);
        match copy {
            Some((s, f)) => {
                tracing::info!(pipeline = %self.stream.losses.pipeline, copy = %s.path.display(), offset = resume_at,
                    "reading the rest of the old content from its copy first");
                let line = self.line;
                self.switch_to(f, &s.path, resume_at, line)
            }
            None => self.switch_to(File::open(&path)?, &path, 0, 0),
        }
    }

    /// The current file is complete: on to the oldest file beside the path not read yet (a
    /// rotated one missed between two polls, else the file now at the path). False if there is
    /// none yet (the path not recreated yet): the current file stays open.
    fn next(&mut self, out: &mut Vec<RawLine>) -> std::io::Result<bool> {
        let Some((file, path)) = next_unread(&self.stream, &mut self.done, Some(&self.current))?
        else {
            return Ok(false);
        };
        // The old file is complete: its last line, even without a newline, is a line.
        if self.partial_len > 0 {
            self.complete_line(out);
        }
        if self.current.fingerprint.len > 0 {
            self.done.push(self.current.clone());
        }
        tracing::info!(pipeline = %self.stream.losses.pipeline, old = %self.file_name, next = %path.display(),
            "file rotated; reading the next file");
        self.switch_to(file, &path, 0, 0)?;
        Ok(true)
    }

    /// Reads `file` (named `file_path`) from `offset` as a new generation.
    fn switch_to(
        &mut self,
        file: File,
        file_path: &Path,
        offset: u64,
        line: u64,
    ) -> std::io::Result<()> {
        let (file, current) = prepare(file, offset)?;
        self.generation = register(&self.stream.generations, &current, file_path, &self.done);
        self.file = file;
        self.current = current;
        self.file_name = file_path.display().to_string().into();
        self.offset = offset;
        self.line = line;
        self.partial.clear();
        self.partial_len = 0;
        self.drained = false;
        Ok(())
    }
}

/// The oldest file beside the stream's path that is not `done` nor `current`: rotated files by
/// modification time, then the file at the path. Forgets `done` files that are no longer there.
/// A file that vanishes between the listing and its opening is reported lost.
pub(super) fn next_unread(
    stream: &Stream,
    done: &mut Vec<Known>,
    current: Option<&Known>,
) -> std::io::Result<Option<(File, PathBuf)>> {
    let siblings = identity::siblings(&stream.path)?;
    done.retain(|k| siblings.iter().any(|s| s.file == k.file));
    for s in siblings {
        let is_path = s.path == stream.path;
        if current.is_some_and(|c| c.file == s.file)
            || (s.len == 0 && !is_path)
            || identity::is_known(&s, done)
        {
            continue;
        }
        let file = match s.open() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                stream.losses.lost(
                    &s.path,
                    Some(s.len),
                    "rotated file deleted before it was read",
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        // Renamed under us since the listing: the next look sees where it went.
        if FileId::of(&file.metadata()?) != s.file {
            return Ok(None);
        }
        return Ok(Some((file, s.path)));
    }
    Ok(None)
}

/// Every file beside `path` under a rotated name (not the path itself), as known files.
pub(super) fn rotated_files(path: &Path) -> Vec<Known> {
    identity::siblings(path)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.path != path)
        .filter_map(|s| {
            let f = s.open().ok()?;
            Some(Known {
                file: s.file,
                fingerprint: Fingerprint::read(&f).ok()?,
            })
        })
        .collect()
}

fn prepare(mut file: File, offset: u64) -> std::io::Result<(BufReader<File>, Known)> {
    let id = FileId::of(&file.metadata()?);
    let fingerprint = Fingerprint::read(&file)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok((
        BufReader::with_capacity(READ_BUFFER, file),
        Known {
            file: id,
            fingerprint,
        },
    ))
}

fn lock(generations: &Generations) -> std::sync::MutexGuard<'_, Vec<Generation>> {
    generations.lock().unwrap_or_else(|p| p.into_inner())
}

fn register(generations: &Generations, file: &Known, path: &Path, done: &[Known]) -> u32 {
    let mut g = lock(generations);
    g.push(Generation {
        file: file.clone(),
        path: path.to_owned(),
        done_before: Arc::new(done.to_vec()),
    });
    (g.len() - 1) as u32
}

/// Counts the lines in the first `len` bytes of `path` (for numbering when starting at the end).
pub(super) fn count_lines(path: &Path, len: u64) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut lines = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}
