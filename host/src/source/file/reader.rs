//! Blocking line reader over a file that may grow, be renamed away (rotation) or be truncated.
//!
//! It runs on tokio's blocking pool, one batch at a time: plain `std::fs` reads with a large
//! buffer are faster than async file I/O, which is itself a thread pool underneath.

use super::checkpoint::FileId;
use crate::event::Position;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const READ_BUFFER: usize = 256 * 1024;

/// The file behind each `Position::partition` (a new one at each rotation or truncation), so
/// that the acker can name the file in its checkpoint.
pub type Generations = Arc<Mutex<Vec<(FileId, PathBuf)>>>;

/// One complete line, without its line ending.
pub struct RawLine {
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
pub enum ReadState {
    /// The batch is full; more may be there.
    More,
    /// No more data for now (the file may still grow).
    Idle,
}

pub struct LineReader {
    /// The configured path; after a rotation, a new file appears here.
    path: PathBuf,
    file: BufReader<File>,
    file_id: FileId,
    file_name: Arc<str>,
    generation: u32,
    generations: Generations,
    /// Bytes of the current file consumed so far (including `partial`).
    offset: u64,
    /// Lines completed so far in the current file.
    line: u64,
    /// An unfinished line: its bytes (up to `max_line`) and its full length.
    partial: Vec<u8>,
    partial_len: u64,
    max_line: usize,
    /// The configured path was seen naming a new file: read the old one to its end once more
    /// (catching lines written just before the rename) before switching.
    draining: bool,
}

impl LineReader {
    /// Opens `file_path` (the configured path, or a rotated file found beside it) at `offset`,
    /// which begins line `line + 1`.
    pub fn open(
        path: &Path,
        file_path: &Path,
        offset: u64,
        line: u64,
        max_line: usize,
        generations: Generations,
    ) -> std::io::Result<Self> {
        let (file, file_id) = open_at(file_path, offset)?;
        let generation = register(&generations, file_id, file_path);
        Ok(LineReader {
            path: path.to_owned(),
            file,
            file_id,
            file_name: file_path.display().to_string().into(),
            generation,
            generations,
            offset,
            line,
            partial: Vec::new(),
            partial_len: 0,
            max_line,
            draining: false,
        })
    }

    /// Reads up to `max` complete lines into `out`. At the end of the file it checks for rotation
    /// or truncation and moves on to the new file. When `ended` is true (the input is complete,
    /// not followed), a last line without a newline counts as a line.
    pub fn read_lines(
        &mut self,
        max: usize,
        ended: bool,
        out: &mut Vec<RawLine>,
    ) -> std::io::Result<ReadState> {
        while out.len() < max {
            let buf = self.file.fill_buf()?;
            if buf.is_empty() {
                if self.switch_if_replaced(out)? {
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
            let room = self.max_line.saturating_sub(self.partial.len());
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

    /// At the end of the current file: if the configured path now names another file (renamed
    /// away by rotation) or the file shrank (truncated), start on the new content.
    fn switch_if_replaced(&mut self, out: &mut Vec<RawLine>) -> std::io::Result<bool> {
        if self.draining {
            // The old file is complete: its last line, even without a newline, is a line.
            if self.partial_len > 0 {
                self.complete_line(out);
            }
            tracing::info!(old = %self.file_name, path = %self.path.display(), "file rotated; reading the new file");
            self.draining = false;
            self.reopen()?;
            return Ok(true);
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            // Renamed away and not recreated yet: keep waiting on the old file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if FileId::of(&meta) != self.file_id {
            self.draining = true;
            return Ok(true);
        }
        if meta.len() < self.offset {
            tracing::warn!(path = %self.path.display(), size = meta.len(), offset = self.offset,
                "file was truncated; reading it again from the start");
            self.partial.clear();
            self.partial_len = 0;
            self.reopen()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Opens the configured path from its start as a new generation.
    fn reopen(&mut self) -> std::io::Result<()> {
        let (file, file_id) = open_at(&self.path, 0)?;
        self.file = file;
        self.file_id = file_id;
        self.file_name = self.path.display().to_string().into();
        self.generation = register(&self.generations, file_id, &self.path);
        self.offset = 0;
        self.line = 0;
        Ok(())
    }
}

fn open_at(path: &Path, offset: u64) -> std::io::Result<(BufReader<File>, FileId)> {
    let mut file = File::open(path)?;
    let id = FileId::of(&file.metadata()?);
    file.seek(SeekFrom::Start(offset))?;
    Ok((BufReader::with_capacity(READ_BUFFER, file), id))
}

fn register(generations: &Generations, id: FileId, path: &Path) -> u32 {
    let mut g = generations.lock().unwrap_or_else(|p| p.into_inner());
    g.push((id, path.to_owned()));
    (g.len() - 1) as u32
}

/// Counts the lines in the first `len` bytes of `path` (for numbering when starting at the end).
pub fn count_lines(path: &Path, len: u64) -> std::io::Result<u64> {
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

/// Finds a file beside `path` with identity `id`: where a rotated file went.
pub fn find_rotated(path: &Path, id: FileId) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.as_path() != path
                && std::fs::metadata(p).is_ok_and(|m| m.is_file() && FileId::of(&m) == id)
        })
}
