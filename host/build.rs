//! How the `weir` binary is linked, and which commit it is built from.
//!
//! The commit (`WEIR_GIT_COMMIT`, for `weir --version` and the `weir_build_info` metric) is
//! `git rev-parse --short HEAD`, with `-dirty` when tracked files had changes; `unknown` where
//! there is no git or no repository (a source tarball, a Docker build without `.git`), unless
//! the `WEIR_GIT_COMMIT` environment variable gives it. The script reruns when HEAD moves (a
//! commit, a checkout), not at every build: edits made after it ran do not add `-dirty` until
//! HEAD next moves.
//!
//! Packed relative relocations (`-z pack-relative-relocs`, DT_RELR): a position-independent
//! executable carries a table of the addresses the loader fixes up when it starts. In the usual
//! form (`.rela.dyn`) weir's table was 3 MB, read whole at every start and resident from then
//! on; packed, it is 44 KB. On the whole-pipeline benchmark that is 4 MiB less peak memory at
//! the same speed (docs/performance.md, "Memory, second pass"). It needs GNU ld 2.38+ (or lld 15+) and glibc
//! 2.36+, so the build links and runs a small probe first and leaves the option out where the
//! toolchain or the C library cannot take it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WEIR_GIT_COMMIT");
    let commit = match std::env::var("WEIR_GIT_COMMIT") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_owned(),
        _ => git_commit().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=WEIR_GIT_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    // The probe must run where it was built: native Linux builds only.
    if target == host && target.contains("-linux-gnu") && packed_relocs_work() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The short hash of HEAD (`-dirty` with uncommitted changes to tracked files), telling Cargo
/// which files say that HEAD moved.
fn git_commit() -> Option<String> {
    let hash = git(&["rev-parse", "--short", "HEAD"])?;
    // HEAD itself (a checkout), the branch it points to (a commit) and packed-refs (a ref that
    // was packed), each where git says it is: in a worktree HEAD is in the worktree's own git
    // directory and the refs in the common one.
    let mut watched = vec![git_path("HEAD")?];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let loose = git_path(&branch)?;
        // A branch only in packed-refs gets its loose file at the next commit: watch its folder.
        match std::path::Path::new(&loose).exists() {
            true => watched.push(loose),
            false => watched.extend(
                std::path::Path::new(&loose)
                    .parent()
                    .map(|p| p.display().to_string()),
            ),
        }
    }
    watched.extend(git_path("packed-refs"));
    // A path that does not exist would make Cargo rerun the script at every build.
    for path in watched.iter().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// Where git keeps `name` (`HEAD`, `refs/heads/main`), as an absolute path.
fn git_path(name: &str) -> Option<String> {
    git(&["rev-parse", "--path-format=absolute", "--git-path", name])
}

/// A git command's output, trimmed, run in this crate's folder; `None` if it fails.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned())
}

/// Links a C program with packed relocations using the linker rustc uses (`cc` unless Cargo
/// was told another), and runs it.
fn packed_relocs_work() -> bool {
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let source = out.join("relr_probe.c");
    let exe = out.join("relr_probe");
    // A pointer in initialised data makes a relative relocation for the option to pack.
    let program = "static const char *s = \"weir\"; const char **p = &s;\nint main(void) { return **p == 'w' ? 0 : 1; }\n";
    if std::fs::write(&source, program).is_err() {
        return false;
    }
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    let linked = Command::new(linker)
        .args(["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&exe)
        .arg(&source)
        .output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    linked && Command::new(&exe).status().is_ok_and(|s| s.success())
}
