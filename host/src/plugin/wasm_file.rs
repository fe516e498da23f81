//! Reading a plugin's `.wasm`: only a regular file, and only up to [`MAX_BYTES`].
//!
//! A path can name something that never ends (`/dev/zero`, a FIFO nobody writes to, which
//! would also block the open) or a file far larger than any plugin: reading either without a
//! bound fills memory or hangs the pipeline's start or its reload watcher. So the file is opened
//! without blocking, checked to be regular and small enough, and read no further than the cap
//! even if it grows meanwhile.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest plugin accepted. JavaScript and Python plugins, which embed their interpreter,
/// are 10–40 MiB; a quarter of a gigabyte is far beyond any real one.
pub(crate) const MAX_BYTES: u64 = 256 << 20;

/// Why a file cannot be a plugin: a message naming no path (the caller names it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotPlugin {
    /// What it is instead: "a directory", "a FIFO", ...
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is {} MiB; a plugin may be at most {} MiB", .0.div_ceil(1 << 20), MAX_BYTES >> 20)]
    TooLarge(u64),
}

/// Whether the file `meta` describes may be read as a plugin.
pub(crate) fn check(meta: &std::fs::Metadata) -> Result<(), NotPlugin> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    };
    if let Some(what) = what {
        return Err(NotPlugin::NotRegular(what));
    }
    if meta.len() > MAX_BYTES {
        return Err(NotPlugin::TooLarge(meta.len()));
    }
    Ok(())
}

/// The file's bytes, or why not (without the path: the caller names it).
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. It changes
    // nothing for a regular file.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    check(&meta).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file).take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(std::io::Error::other(NotPlugin::TooLarge(
            bytes.len() as u64
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file_or_too_large() {
        let e = read(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(e, "is a character device, not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert_eq!(e, "is a directory, not a regular file");
        let big = dir.path().join("big.wasm");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_BYTES + 1).unwrap(); // sparse: no disk used
        let e = read(&big).unwrap_err().to_string();
        assert_eq!(e, "is 257 MiB; a plugin may be at most 256 MiB");
        std::fs::write(dir.path().join("ok.wasm"), b"\0asm").unwrap();
        assert_eq!(read(&dir.path().join("ok.wasm")).unwrap(), b"\0asm");
    }
}
