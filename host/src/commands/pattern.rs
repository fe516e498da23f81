//! `weir pattern check` (a line-oriented tool for scripts and conformance suites) and
//! `weir pattern test` (for people).

use crate::exit;
use std::io::{BufWriter, Write};
use std::path::Path;
use weir_pattern::Pattern;

/// Reads `{"pattern": P, "event": E}` lines on stdin and writes one result line per input.
pub fn check() -> i32 {
    let stdin = std::io::stdin().lock();
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    match weir_pattern::check_lines(stdin, &mut stdout).and_then(|_| stdout.flush()) {
        Ok(()) => exit::OK,
        // A closed stdout (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

/// Tests one pattern against one event: exit 0 match, 1 no match, 2 invalid.
pub fn test(pattern: &str, event: &str) -> i32 {
    let (pattern, event) = match (
        text_or_file(pattern, "--pattern"),
        text_or_file(event, "--event"),
    ) {
        (Ok(p), Ok(e)) => (p, e),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let compiled = match Pattern::compile(&pattern) {
        Ok(p) => p,
        Err(e) => {
            println!("invalid pattern: {e}");
            return exit::USAGE;
        }
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&event) {
        println!("invalid event: not JSON: {e}");
        return exit::USAGE;
    }
    // Say so rather than "no match": a pipeline dead-letters such records as malformed.
    let deepest = weir_pattern::limits::MAX_EVENT_DEPTH;
    if crate::event::nests_deeper_than(&event, deepest) {
        println!(
            "invalid event: nested deeper than {deepest} levels, which no pattern can match \
             (in a pipeline, data nested deeper than {} levels is dead-lettered as malformed)",
            crate::event::MAX_DATA_DEPTH
        );
        return exit::USAGE;
    }
    match compiled.explain(event.as_bytes()) {
        None => {
            println!("match");
            exit::OK
        }
        Some(why) => {
            println!("no match: {why}");
            exit::FAILED
        }
    }
}

/// A flag's argument that is neither JSON text nor a file that can be read.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {arg}: not JSON text, and cannot read it as a file: {source}")]
struct NotTextOrFile {
    flag: &'static str,
    arg: String,
    #[source]
    source: std::io::Error,
}

/// The argument itself if it is JSON text, else the contents of the file it names.
fn text_or_file(arg: &str, flag: &'static str) -> Result<String, NotTextOrFile> {
    let trimmed = arg.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') || trimmed.starts_with('"') {
        return Ok(arg.to_owned());
    }
    std::fs::read_to_string(Path::new(arg)).map_err(|source| NotTextOrFile {
        flag,
        arg: arg.to_owned(),
        source,
    })
}
