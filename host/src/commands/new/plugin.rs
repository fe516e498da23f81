//! `weir new plugin NAME --lang rust|javascript|python [--dir DIR] [--weir-repo REPO]`: writes `DIR/NAME/`, a
//! plugin project that builds on its own, outside this repository: its manifest, its source, a
//! copy of the plugin contract (wit/plugin.wit), a build script, sample events and a config
//! that `weir plugin test` passes on.
//!
//! With `--weir-repo` (a checkout of weir) the Rust plugin also uses weir's allocator for
//! plugins (plugins/alloc, faster than wasi-libc's malloc) as a path dependency, and starts from
//! the Cargo.lock weir's own plugins are built with; without, it needs crates.io only.

use super::write_new;
use crate::exit;
use std::path::{Path, PathBuf};

/// The plugin contract, copied into the project so that it is self-contained.
const WIT: &str = include_str!("../../../../wit/plugin.wit");

/// Every plugin's files besides its language's: (path in the project, template).
const COMMON: &[(&str, &str)] = &[
    (
        "events.jsonl",
        include_str!("templates/plugin/events.jsonl"),
    ),
    ("config.json", include_str!("templates/plugin/config.json")),
    ("wit/plugin.wit", WIT),
];

/// A Rust plugin's own files.
const RUST: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("templates/plugin-rust/Cargo.toml"),
    ),
    ("src/lib.rs", include_str!("templates/plugin-rust/lib.rs")),
    ("build.sh", include_str!("templates/plugin-rust/build.sh")),
];

/// A JavaScript plugin's own files (componentize-js, from npm, builds it).
const JAVASCRIPT: &[(&str, &str)] = &[
    (
        "plugin.js",
        include_str!("templates/plugin-javascript/plugin.js"),
    ),
    (
        "build.mjs",
        include_str!("templates/plugin-javascript/build.mjs"),
    ),
    (
        "package.json",
        include_str!("templates/plugin-javascript/package.json"),
    ),
    (
        "build.sh",
        include_str!("templates/plugin-javascript/build.sh"),
    ),
];

/// A Python plugin's own files (componentize-py makes its bindings when it builds).
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("templates/plugin-python/app.py")),
    ("build.sh", include_str!("templates/plugin-python/build.sh")),
];

pub struct PluginArgs {
    pub name: String,
    /// `rust`, `javascript` or `python`.
    pub lang: String,
    /// Where the project's folder goes (default: the working directory).
    pub dir: PathBuf,
    /// A checkout of weir, for the Rust plugin's allocator.
    pub weir_repo: Option<PathBuf>,
}

pub fn plugin(args: &PluginArgs) -> i32 {
    match write(args) {
        Ok(project) => {
            println!("wrote {}", project.display());
            println!(
                "build it with {}/build.sh, then: weir plugin test {}/{}.wasm --input {0}/events.jsonl --config {0}/config.json",
                project.display(),
                project.display(),
                args.name
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

fn write(args: &PluginArgs) -> Result<PathBuf, String> {
    check_name(&args.name)?;
    let files = match args.lang.as_str() {
        "rust" => RUST,
        "javascript" => JAVASCRIPT,
        "python" => PYTHON,
        other => return Err(format!("--lang {other}: `rust`, `javascript` or `python`")),
    };
    let (alloc_dep, alloc_use, lock) = match (&args.weir_repo, args.lang == "rust") {
        (Some(repo), true) => allocator(repo)?,
        _ => (String::new(), String::new(), None),
    };
    let project = args.dir.join(&args.name);
    std::fs::create_dir(&project).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("{} exists; weir new overwrites nothing", project.display())
        }
        _ => format!("cannot create {}: {e}", project.display()),
    })?;
    let crate_name = args.name.replace('-', "_");
    for (path, template) in COMMON.iter().chain(files) {
        let text = template
            .replace("%ALLOC_DEP%", &alloc_dep)
            .replace("%ALLOC_USE%", &alloc_use)
            .replace("%CRATE%", &crate_name)
            .replace("%NAME%", &args.name);
        write_new(&project.join(path), &text)?;
    }
    if let Some(lock) = lock {
        write_new(&project.join("Cargo.lock"), &lock)?;
    }
    make_executable(&project.join("build.sh"))?;
    Ok(project)
}

/// The dependency on weir's allocator in `repo`, the code that installs it, and the lock file
/// weir's plugins are built with.
fn allocator(repo: &Path) -> Result<(String, String, Option<String>), String> {
    let alloc = repo.join("plugins/alloc");
    let alloc = alloc.canonicalize().map_err(|e| {
        format!(
            "--weir-repo: {} is not a weir checkout ({e})",
            alloc.display()
        )
    })?;
    let dep = format!(
        "# weir's allocator for plugins, from a checkout of weir (`weir new plugin --weir-repo`).\nweir-plugin-alloc = {{ path = {:?} }}\n",
        alloc.display().to_string()
    );
    let code = "\n#[global_allocator]\nstatic ALLOC: weir_plugin_alloc::SizeClasses = weir_plugin_alloc::SizeClasses::new();\n";
    let lock = std::fs::read_to_string(repo.join("plugins/Cargo.lock")).ok();
    Ok((dep, code.to_owned(), lock))
}

/// A Cargo package name that is also a file name: a letter, then letters, digits, `-`, `_`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "invalid plugin name {name:?}: use a letter, then up to 63 letters, digits, `-` or `_`"
        )),
    }
}

fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot make {} executable: {e}", path.display()))
}
