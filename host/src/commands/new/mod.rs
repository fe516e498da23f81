//! `weir new`: starts a pipeline file (pipeline.rs) or a plugin project (plugin.rs) from
//! templates that live as files beside this module (templates/), embedded in the binary.

mod pipeline;
mod plugin;

pub use pipeline::{PipelineArgs, pipeline};
pub use plugin::{PluginArgs, plugin};

use std::path::Path;

/// Creates `path` (and its folder) with `text`; an existing file is left as it is, and is an
/// error: `weir new` overwrites nothing.
fn write_new(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{} exists; weir new overwrites nothing", path.display())
            }
            _ => format!("cannot create {}: {e}", path.display()),
        })?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
