//! How the `weir` binary is linked.
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
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    // The probe must run where it was built: native Linux builds only.
    if target == host && target.contains("-linux-gnu") && packed_relocs_work() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
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
