//! The write-ahead log: HTTP cannot be read again, so a request is answered 2xx only once its
//! events are written and fsynced here. The log is the source's stream of positions.
//!
//! Segment files `<state_dir>/http-wal/<start>.wal`, named by the global byte offset of their
//! first record (offsets run on across segments). A record is a 12-byte header (the body's
//! length, u32 little-endian, and the first 8 bytes of its SHA-256) and a body (the request's
//! meta as JSON, preceded by its length as a u32, then the event's bytes). A torn tail (a kill
//! during a write, before its fsync, so no request was answered for it) fails its length or
//! digest and is cut off when the log opens.
//!
//! One writer thread takes every request waiting, writes them all, fsyncs once and then answers
//! them all (a group commit). The checkpoint ([`Checkpoint`]) records the finished prefix; the
//! segments entirely below it are then removed.

use sha2::{Digest, Sha256};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

const HEADER: usize = 12;
/// Requests one group commit takes at most.
const GROUP_MAX: usize = 4096;

/// What the log holds for the request an event came in: `meta` as JSON, and as a map.
#[derive(Debug)]
pub(super) struct RequestMeta {
    pub json: Vec<u8>,
    pub map: serde_json::Map<String, serde_json::Value>,
}

/// One event in the log.
#[derive(Debug)]
pub(super) struct Stored {
    /// Its record's global offset (the event id) and the offset just past it (its position).
    pub start: u64,
    pub end: u64,
    pub ordinal: u64,
    pub meta: Arc<RequestMeta>,
    pub data: Vec<u8>,
}

/// A request's events to append.
pub(super) struct Append {
    pub meta: Arc<RequestMeta>,
    pub records: Vec<Vec<u8>>,
    /// The first record's offset once durable, or why not.
    pub reply: oneshot::Sender<Result<u64, String>>,
}

/// The finished prefix, as saved at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Checkpoint {
    /// Everything before this global offset is finished.
    pub offset: u64,
    /// The ordinal of the last finished record.
    pub ordinal: u64,
}

/// The log's state shared by the writer, the server (quota) and the acker (removal).
#[derive(Debug)]
pub(super) struct Wal {
    pipeline: String,
    dir: PathBuf,
    checkpoint_path: PathBuf,
    /// Segment starts, oldest first; the last one is written to.
    segments: Mutex<Vec<u64>>,
    /// Bytes in the segments on disk.
    pub bytes: AtomicU64,
    /// Events appended (or replayed) and not finished yet.
    pub in_flight: AtomicUsize,
}

/// What is in the log past the checkpoint when it opens, read back lazily.
pub(super) struct Replay {
    /// Segments to read and the offset to read each from.
    pending: std::collections::VecDeque<(PathBuf, u64, u64)>,
    reader: Option<(BufReader<std::fs::File>, u64)>,
    next_ordinal: u64,
    /// Records left to read.
    pub left: usize,
}

/// The writer thread's state.
pub(super) struct Writer {
    wal: Arc<Wal>,
    /// The log's lock, held for as long as this writer lives ([`lock`]).
    _lock: std::fs::File,
    file: std::fs::File,
    /// The current segment's length and the global offset past the last record.
    len: u64,
    end: u64,
    next_ordinal: u64,
    segment_bytes: u64,
    /// Told why requests are refused when the log cannot be written (`/pipelines`).
    pub status: Option<Arc<crate::observe::status::Status>>,
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.wal"))
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> std::io::Error {
    move |e| std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens the log under `state_dir`: removes segments the checkpoint passed, checks what is
/// past it (cutting off a torn tail), and makes ready to append.
pub(super) fn open(
    state_dir: &Path,
    segment_bytes: u64,
    pipeline: &str,
) -> std::io::Result<(Arc<Wal>, Replay, Writer)> {
    let dir = state_dir.join("http-wal");
    std::fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    let lock = lock(&dir, pipeline)?;
    let checkpoint_path = state_dir.join("http-source.json");
    let checkpoint = load_checkpoint(&checkpoint_path)?;
    let mut starts = Vec::new();
    for entry in
        std::fs::read_dir(&dir).map_err(io_err(format!("cannot read {}", dir.display())))?
    {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(start) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            starts.push(start);
        }
    }
    starts.sort_unstable();
    let resume = checkpoint.map_or(0, |c| c.offset);
    // Segments the checkpoint passed (a kill between the checkpoint and their removal).
    while starts.len() > 1 && starts[1] <= resume {
        let path = segment_path(&dir, starts.remove(0));
        std::fs::remove_file(&path).map_err(io_err(format!("cannot remove {}", path.display())))?;
    }
    let mut pending = std::collections::VecDeque::new();
    let mut left = 0;
    let mut end = resume;
    let mut last_end = None;
    for (i, &start) in starts.iter().enumerate() {
        let path = segment_path(&dir, start);
        let last = i + 1 == starts.len();
        let len = std::fs::metadata(&path)?.len();
        let from = resume.saturating_sub(start).min(len);
        if resume < start && i == 0 {
            tracing::warn!(pipeline, log = %dir.display(), checkpoint = resume, first = start,
                "the log begins after the checkpoint; reading it from its first segment");
        }
        let (count, valid) = scan(&path, from)?;
        if valid < len {
            if !last {
                return Err(std::io::Error::other(format!(
                    "{} is corrupt at byte {valid} (a segment before the last one); move the log aside to start anew",
                    path.display()
                )));
            }
            tracing::warn!(pipeline, segment = %path.display(), at = valid, cut = len - valid,
                "cutting off a torn record at the end of the log (written, never acknowledged)");
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(valid)?;
            f.sync_all()?;
        }
        left += count;
        pending.push_back((path, start, from));
        end = start + valid;
        last_end = Some(end);
    }
    if end < resume {
        tracing::warn!(pipeline, log = %dir.display(), checkpoint = resume, end,
            "the log ends before the checkpoint (segments removed by hand?); appending after the checkpoint");
        end = resume;
    }
    // Appends go on in the last segment if it ends where the log does; else in a new one.
    if last_end != Some(end) {
        create_segment(&dir, end)?;
        starts.push(end);
    }
    let Some(&current) = starts.last() else {
        return Err(std::io::Error::other("no segment"));
    };
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(segment_path(&dir, current))?;
    let next_ordinal = checkpoint.map_or(0, |c| c.ordinal + 1);
    let first = starts.first().copied().unwrap_or(end);
    let wal = Arc::new(Wal {
        pipeline: pipeline.to_owned(),
        dir,
        checkpoint_path,
        segments: Mutex::new(starts),
        bytes: AtomicU64::new(end - first),
        in_flight: AtomicUsize::new(left),
    });
    let replay = Replay {
        pending,
        reader: None,
        next_ordinal,
        left,
    };
    let writer = Writer {
        wal: wal.clone(),
        _lock: lock,
        file,
        len: end - current,
        end,
        next_ordinal: next_ordinal + left as u64,
        segment_bytes,
        status: None,
    };
    Ok((wal, replay, writer))
}

/// How long opening the log waits for the writer of the source it replaces: that writer
/// finishes the requests under way when their source stops, and a body may take
/// `server::BODY_TIMEOUT` (60 s) to arrive.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(75);

/// Takes the log's lock (`flock` on `http-wal/LOCK`), waiting up to [`LOCK_WAIT`]. A pipeline
/// reloaded in place opens its log while the old source's writer may still be appending the
/// requests that were under way: scanning the tail then would cut a record being written as
/// torn, and both writers would append at the same offsets. The writer thread holds the lock
/// until it ends, so the new source reads the log only once the old writer is done, and replays
/// what it wrote last.
fn lock(dir: &Path, pipeline: &str) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(format!("cannot open {}", path.display())))?;
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        // SAFETY: flock on a descriptor this function owns; it only reads the descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io_err(format!("cannot lock {}", path.display()))(e));
        }
        if started.elapsed() >= LOCK_WAIT {
            return Err(std::io::Error::other(format!(
                "{} is still held by another writer after {} s (the source this one replaces, \
                 or another weir process on the same state dir)",
                path.display(),
                LOCK_WAIT.as_secs()
            )));
        }
        if !told {
            tracing::info!(pipeline, log = %dir.display(),
                "waiting for the previous writer of the log to finish the requests under way");
            told = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn load_checkpoint(path: &Path) -> std::io::Result<Option<Checkpoint>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::other(format!(
                "checkpoint {} is corrupt ({e}); remove it to replay the whole log",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("cannot read checkpoint {}", path.display()))(e)),
    }
}

fn create_segment(dir: &Path, start: u64) -> std::io::Result<std::fs::File> {
    let path = segment_path(dir, start);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(format!("cannot create {}", path.display())))?;
    crate::durable::sync_dir(&path)?;
    Ok(f)
}

/// Records in a segment from byte `from`, and the length of its valid part.
fn scan(path: &Path, from: u64) -> std::io::Result<(usize, u64)> {
    let mut f = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    f.seek(SeekFrom::Start(from))?;
    let (mut count, mut at) = (0, from);
    while let Some(n) = read_record(&mut f, &mut Vec::new())? {
        count += 1;
        at += n;
    }
    Ok((count, at))
}

/// Reads one record's body into `body`: its length on disk, or `None` at the end or at a torn
/// or corrupt record.
fn read_record(r: &mut impl Read, body: &mut Vec<u8>) -> std::io::Result<Option<u64>> {
    let mut header = [0u8; HEADER];
    if !read_full(r, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    body.clear();
    // `take`: a torn header's length may be anything; only the bytes there are read.
    r.take(len as u64).read_to_end(body)?;
    if body.len() < len || len < 4 || Sha256::digest(&body[..])[..8] != header[4..] {
        return Ok(None);
    }
    Ok(Some((HEADER + len) as u64))
}

/// Fills `buf`; false if the input ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn encode(out: &mut Vec<u8>, meta: &[u8], data: &[u8]) {
    let len = 4 + meta.len() + data.len();
    let at = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(data);
    let digest = Sha256::digest(&out[at + HEADER..]);
    out[at + 4..at + HEADER].copy_from_slice(&digest[..8]);
}

/// A record's body split into its meta and data.
fn decode(body: &[u8]) -> Option<(RequestMeta, Vec<u8>)> {
    let meta_len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let json = body.get(4..4 + meta_len)?.to_vec();
    let map = serde_json::from_slice(&json).ok()?;
    Some((RequestMeta { json, map }, body[4 + meta_len..].to_vec()))
}

impl Replay {
    /// Up to `max` records past the checkpoint; none once all are read.
    pub(super) fn next(&mut self, max: usize) -> std::io::Result<Vec<Stored>> {
        let mut out = Vec::new();
        let mut body = Vec::new();
        while out.len() < max && self.left > 0 {
            if self.reader.is_none() {
                let Some((path, start, from)) = self.pending.pop_front() else {
                    break;
                };
                let mut f = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
                f.seek(SeekFrom::Start(from))?;
                self.reader = Some((f, start + from));
            }
            let Some((f, at)) = self.reader.as_mut() else {
                break;
            };
            match read_record(f, &mut body)? {
                None => self.reader = None,
                Some(n) => {
                    let (meta, data) = decode(&body).ok_or_else(|| {
                        std::io::Error::other(format!("a record at offset {at} is malformed"))
                    })?;
                    out.push(Stored {
                        start: *at,
                        end: *at + n,
                        ordinal: self.next_ordinal,
                        meta: Arc::new(meta),
                        data,
                    });
                    *at += n;
                    self.next_ordinal += 1;
                    self.left -= 1;
                }
            }
        }
        Ok(out)
    }
}

impl Writer {
    /// Appends what `requests` brings until every sender is gone, handing the events written to
    /// `events` in log order.
    pub(super) fn run(
        mut self,
        mut requests: mpsc::Receiver<Append>,
        events: mpsc::UnboundedSender<Vec<Stored>>,
    ) {
        let mut group = Vec::new();
        let mut buf = Vec::new();
        while let Some(first) = requests.blocking_recv() {
            group.push(first);
            while group.len() < GROUP_MAX {
                match requests.try_recv() {
                    Ok(a) => group.push(a),
                    Err(_) => break,
                }
            }
            match self.append(&group, &mut buf) {
                Ok((stored, firsts)) => {
                    self.wal.in_flight.fetch_add(stored.len(), Relaxed);
                    self.wal.report_bytes();
                    let _ = events.send(stored);
                    for (a, first) in group.drain(..).zip(firsts) {
                        let _ = a.reply.send(Ok(first));
                    }
                }
                Err(e) => {
                    tracing::error!(pipeline = %self.wal.pipeline, log = %self.wal.dir.display(), error = %e,
                        "cannot write to the log; requests are refused until it can");
                    if let Some(s) = &self.status {
                        s.error("source", &format!("cannot write to the log: {e}"));
                    }
                    for a in group.drain(..) {
                        let _ = a.reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    }

    /// Writes a group and fsyncs it; on failure the segment is cut back to where it was, so the
    /// log stays whole and nothing of the group counts as written.
    fn append(
        &mut self,
        group: &[Append],
        buf: &mut Vec<u8>,
    ) -> std::io::Result<(Vec<Stored>, Vec<u64>)> {
        if self.len >= self.segment_bytes {
            self.roll()?;
        }
        buf.clear();
        let mut stored = Vec::new();
        let mut firsts = Vec::with_capacity(group.len());
        let mut at = self.end;
        let mut ordinal = self.next_ordinal;
        for a in group {
            firsts.push(at);
            for data in &a.records {
                let before = buf.len();
                encode(buf, &a.meta.json, data);
                let n = (buf.len() - before) as u64;
                stored.push(Stored {
                    start: at,
                    end: at + n,
                    ordinal,
                    meta: a.meta.clone(),
                    data: data.clone(),
                });
                at += n;
                ordinal += 1;
            }
        }
        let written = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Nothing was acknowledged: cut back what may have reached the file.
            let _ = self.file.set_len(self.len);
            let _ = self.file.sync_data();
            return Err(e);
        }
        let n = buf.len() as u64;
        self.len += n;
        self.end += n;
        self.next_ordinal = ordinal;
        self.wal.bytes.fetch_add(n, Relaxed);
        if buf.capacity() > 64 << 20 {
            *buf = Vec::new();
        }
        Ok((stored, firsts))
    }

    fn roll(&mut self) -> std::io::Result<()> {
        self.file = create_segment(&self.wal.dir, self.end)?;
        self.len = 0;
        self.wal.segments_lock().push(self.end);
        Ok(())
    }
}

impl Wal {
    fn segments_lock(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the `weir_http_log_bytes` gauge.
    pub(super) fn report_bytes(&self) {
        metrics::gauge!("weir_http_log_bytes", "pipeline" => self.pipeline.clone())
            .set(self.bytes.load(Relaxed) as f64);
    }

    /// Saves the finished prefix, then removes the segments entirely below it.
    pub(super) fn checkpoint(&self, cp: Checkpoint) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&cp).map_err(std::io::Error::other)?;
        crate::durable::replace(&self.checkpoint_path, |w| w.write_all(&bytes)).map_err(
            io_err(format!(
                "cannot save checkpoint {}",
                self.checkpoint_path.display()
            )),
        )?;
        let mut segments = self.segments_lock();
        let mut removed = false;
        while segments.len() > 1 && segments[1] <= cp.offset {
            let path = segment_path(&self.dir, segments[0]);
            std::fs::remove_file(&path)
                .map_err(io_err(format!("cannot remove {}", path.display())))?;
            self.bytes.fetch_sub(segments[1] - segments[0], Relaxed);
            segments.remove(0);
            removed = true;
        }
        drop(segments);
        if removed {
            crate::durable::sync_dir(&segment_path(&self.dir, 0))?;
            self.report_bytes();
        }
        Ok(())
    }

    /// Segment files on disk (for tests and status).
    #[cfg(test)]
    fn segment_count(&self) -> usize {
        self.segments_lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Arc<RequestMeta> {
        Arc::new(RequestMeta {
            json: b"{\"path\":\"/e\"}".to_vec(),
            map: serde_json::from_str("{\"path\":\"/e\"}").unwrap(),
        })
    }

    /// Appends `n` events through the writer thread, one request each.
    fn append(
        writer: Writer,
        n: usize,
    ) -> (Vec<Stored>, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16);
        let (etx, mut erx) = mpsc::unbounded_channel();
        let handle = std::thread::spawn(move || writer.run(rx, etx));
        for i in 0..n {
            let (reply, answer) = oneshot::channel();
            tx.blocking_send(Append {
                meta: meta(),
                records: vec![format!("{{\"n\":{i}}}").into_bytes()],
                reply,
            })
            .unwrap();
            answer.blocking_recv().unwrap().unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        while let Some(mut s) = erx.blocking_recv() {
            out.append(&mut s);
        }
        (out, handle)
    }

    #[test]
    fn replays_past_the_checkpoint_cuts_torn_tails_and_removes_finished_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, mut replay, writer) = open(dir.path(), 4096, "t").unwrap();
        assert!(replay.next(10).unwrap().is_empty());
        let (stored, h) = append(writer, 200);
        h.join().unwrap();
        assert_eq!(stored.len(), 200);
        assert!(wal.segment_count() > 1, "rolled");
        // A torn record at the end: a kill mid-write.
        let last = *wal.segments_lock().last().unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(segment_path(&wal.dir, last))
            .unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let done = &stored[149];
        wal.checkpoint(Checkpoint {
            offset: done.end,
            ordinal: done.ordinal,
        })
        .unwrap();
        let kept = wal.segment_count();
        drop(wal);
        let (wal, mut replay, writer) = open(dir.path(), 4096, "t").unwrap();
        assert_eq!(wal.segment_count(), kept);
        assert_eq!(replay.left, 50);
        let again = replay.next(1000).unwrap();
        assert_eq!(again.len(), 50);
        assert_eq!(again[0].data, b"{\"n\":150}");
        assert_eq!((again[0].start, again[0].ordinal), (done.end, 150));
        assert_eq!(again[49].end, stored[199].end, "the torn tail is cut");
        let (more, h) = append(writer, 1);
        h.join().unwrap();
        assert_eq!((more[0].start, more[0].ordinal), (stored[199].end, 200));
    }

    /// A source reloaded in place opens the log while the old writer still appends what was
    /// under way: the new one waits for it, then replays what it wrote.
    #[test]
    fn a_second_open_waits_for_the_writer_before_it_and_replays_its_appends() {
        let dir = tempfile::tempdir().unwrap();
        let (_wal, _replay, writer) = open(dir.path(), 1 << 20, "t").unwrap();
        let old = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let (stored, h) = append(writer, 3);
            h.join().unwrap();
            stored.len()
        });
        let (_wal, replay, _writer) = open(dir.path(), 1 << 20, "t").unwrap();
        assert_eq!(old.join().unwrap(), 3);
        assert_eq!(replay.left, 3, "the new source replays what the old writer wrote last");
    }
}
