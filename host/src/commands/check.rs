//! `weir check FILE|DIR...`: validate pipeline files without running them.

use super::exit;
use crate::config::load_pipelines;
use std::path::PathBuf;

pub fn check(paths: &[PathBuf]) -> i32 {
    match load_pipelines(paths) {
        Ok(pipelines) => {
            for p in &pipelines {
                println!("ok: {} ({})", p.file.display(), p.name);
            }
            exit::OK
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!("\n{n} error{} found", if n == 1 { "" } else { "s" });
            exit::FAILED
        }
    }
}
