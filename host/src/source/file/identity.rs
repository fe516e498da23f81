//! Recognising a file again, and finding where rotation put it.
//!
//! A file is the same file when it has the same device and inode AND still begins with the
//! bytes it began with (its fingerprint): inodes are reused once a file is deleted, and a file
//! truncated and written again keeps its inode but not its content. Rotated files are looked for
//! as log shippers do (Filebeat, Vector, fluent-bit): beside the path, under any name that
//! starts with the path's file name (`app.log.1`, `app.log.2`, `app.log-20261206`), compressed
//! ones excepted (their bytes are not the lines any more).

use super::checkpoint::FileId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How many first bytes a fingerprint covers (fewer while the file is shorter).
pub(super) const FINGERPRINT_BYTES: u64 = 1024;

/// The first bytes of a file: how many, and their SHA-256 (the first 8 bytes of it, in hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    pub len: u64,
    pub sha256: String,
}

impl Fingerprint {
    pub(crate) fn of(bytes: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(bytes);
        Fingerprint {
            len: bytes.len() as u64,
            sha256: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The fingerprint of `file` as it is now.
    pub(crate) fn read(file: &File) -> std::io::Result<Fingerprint> {
        Ok(Fingerprint::of(&read_prefix(file, FINGERPRINT_BYTES)?))
    }

    /// Whether `file` begins with the bytes this fingerprint covers.
    pub(crate) fn matches(&self, file: &File) -> std::io::Result<bool> {
        let prefix = read_prefix(file, self.len)?;
        Ok(prefix.len() as u64 == self.len && Fingerprint::of(&prefix) == *self)
    }

    /// Covers all it can: a file that had fewer bytes when it was taken may have grown since.
    pub(crate) fn complete(&self) -> bool {
        self.len >= FINGERPRINT_BYTES
    }
}

/// Up to `len` first bytes of `file`, read without moving its position.
fn read_prefix(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// A file recognised by identity and content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Known {
    pub file: FileId,
    pub fingerprint: Fingerprint,
}

impl Known {
    /// Whether `file` (with identity `id`) is this one.
    pub(crate) fn is(&self, id: FileId, file: &File) -> bool {
        self.file == id && self.fingerprint.matches(file).unwrap_or(false)
    }
}

/// A file beside the path, under one of its rotated names (or the path itself).
#[derive(Debug)]
pub(super) struct Sibling {
    pub path: PathBuf,
    pub file: FileId,
    pub len: u64,
    modified: SystemTime,
    /// The configured path itself: always the newest.
    current: bool,
}

impl Sibling {
    pub(super) fn open(&self) -> std::io::Result<File> {
        File::open(&self.path)
    }
}

const COMPRESSED: &[&str] = &[
    "gz", "bz2", "xz", "zst", "lz4", "zip", "z", "br", "lzma", "7z", "tgz",
];

/// The regular files beside `path` that may be its rotations, and the file at `path` itself
/// (if there), oldest first: rotated files by modification time, the file at `path` last.
pub(super) fn siblings(path: &Path) -> std::io::Result<Vec<Sibling>> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = path.file_name().map(|n| n.as_encoded_bytes().to_vec()) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let bytes = file_name.as_encoded_bytes();
        if !bytes.starts_with(&name) {
            continue;
        }
        let current = bytes.len() == name.len();
        let compressed = Path::new(&file_name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| COMPRESSED.contains(&e.to_ascii_lowercase().as_str()));
        if compressed && !current {
            continue;
        }
        let p = dir.join(&file_name);
        // Gone since the listing, or not a regular file: not a rotation.
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        found.push(Sibling {
            path: if current { path.to_owned() } else { p },
            file: FileId::of(&meta),
            len: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            current,
        });
    }
    found.sort_by_cached_key(|s| (s.current, s.modified, age_rank(&s.path, name.len())));
    Ok(found)
}

/// Orders rotated files whose modification times are equal (file times are taken from a
/// coarse clock: a few milliseconds): by a rotation counter (`app.log.2` is older than
/// `app.log.1`), else by name (`app.log-20261205` is older than `app.log-20261206`).
fn age_rank(path: &Path, prefix: usize) -> (u8, std::cmp::Reverse<u64>, Vec<u8>) {
    let name = path
        .file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default();
    let suffix = name.get(prefix..).unwrap_or_default();
    let digits = suffix.strip_prefix(b".").unwrap_or(suffix);
    let counter = (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit);
    match std::str::from_utf8(digits).ok().filter(|_| counter) {
        Some(n) => (0, std::cmp::Reverse(n.parse().unwrap_or(0)), name),
        None => (1, std::cmp::Reverse(0), name),
    }
}

/// Whether `s` is one of `known`: same inode and still the same first bytes.
pub(super) fn is_known(s: &Sibling, known: &[Known]) -> bool {
    known.iter().any(|k| k.file == s.file)
        && s.open()
            .is_ok_and(|f| known.iter().any(|k| k.is(s.file, &f)))
}

/// Where the file `known` is now, beside `path` (under its rotated names or at `path`), with
/// at least `offset` bytes: the same inode with the same first bytes, else a copy of it
/// (`copytruncate` rotation: another inode that begins with the same bytes).
pub(super) fn find(path: &Path, known: &Known, offset: u64) -> Option<(Sibling, File)> {
    let mut all = siblings(path).ok()?;
    all.retain(|s| s.len >= offset);
    // A copy is trusted only if its fingerprint covers everything read so far, or as much as a
    // fingerprint covers: files that merely begin alike are not copies.
    let fp = &known.fingerprint;
    let copies_count = fp.len > 0 && (fp.complete() || fp.len >= offset);
    let order = all
        .iter()
        .enumerate()
        .filter(|(_, s)| s.file == known.file)
        .chain(
            all.iter()
                .enumerate()
                .filter(|(_, s)| copies_count && s.file != known.file),
        )
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    for i in order {
        if let Ok(f) = all[i].open()
            && fp.matches(&f).unwrap_or(false)
            && f.metadata().is_ok_and(|m| FileId::of(&m) == all[i].file)
        {
            return Some((all.swap_remove(i), f));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_new_content_from_grown_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, "a\nb\n").unwrap();
        let fp = Fingerprint::read(&File::open(&p).unwrap()).unwrap();
        assert_eq!(fp.len, 4);
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert!(fp.matches(&File::open(&p).unwrap()).unwrap(), "grown");
        std::fs::write(&p, "x\ny\nz\n").unwrap();
        assert!(!fp.matches(&File::open(&p).unwrap()).unwrap(), "rewritten");
        std::fs::write(&p, "a\n").unwrap();
        assert!(!fp.matches(&File::open(&p).unwrap()).unwrap(), "shorter");
    }

    #[test]
    fn lists_rotated_names_oldest_first_and_the_path_last() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: &str| dir.path().join(n);
        for (name, age) in [
            ("app.log.1", 20),
            ("app.log.2", 30),
            ("app.log-20261206", 10),
            ("app.log", 40),
            ("app.log.3.gz", 50),
            ("other.log", 60),
        ] {
            std::fs::write(at(name), name).unwrap();
            let t = SystemTime::now() - std::time::Duration::from_secs(age);
            File::options()
                .write(true)
                .open(at(name))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let names: Vec<String> = siblings(&at("app.log"))
            .unwrap()
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["app.log.2", "app.log.1", "app.log-20261206", "app.log"]
        );
        // Rotated within one tick of the file clock: the names tell the order.
        let t = SystemTime::now();
        for name in ["app.log.1", "app.log.2", "app.log.10", "app.log-20261206"] {
            File::create(at(name)).unwrap().set_modified(t).unwrap();
        }
        let names: Vec<String> = siblings(&at("app.log"))
            .unwrap()
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "app.log.10",
                "app.log.2",
                "app.log.1",
                "app.log-20261206",
                "app.log"
            ]
        );
    }
}
