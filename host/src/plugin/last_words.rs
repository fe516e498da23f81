//! Why a plugin failed, in its own words: one line taken from the end of what it wrote to stdout
//! and stderr before the trap (stdio.rs), for the DLQ reason and the log.
//!
//! Each toolchain reports an uncaught error its own way; the last one in the output wins:
//! - Python (componentize-py): a traceback; its last line is the exception, its last `File`
//!   line the place: `KeyError: 'items' (app.py, line 12)`.
//! - Rust: the panic hook's `panicked at src/lib.rs:12:5:` followed by the message:
//!   `index out of bounds (lib.rs, line 12)`.
//! - JavaScript (componentize-js, SpiderMonkey): the exception's message, then `Stack:` and
//!   frames `function@file:line:column`: `can't access property "qty", item is null (enrich.js,
//!   line 40)`.
//! - Anything else: the last line that is not a stack frame.

/// Longest reason kept: a DLQ record's message, not a dump.
const MAX_CHARS: usize = 300;

/// The plugin's own account of its failure, if its output has one.
pub(crate) fn last_words(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().collect();
    let python = lines
        .iter()
        .rposition(|l| l.trim() == "Traceback (most recent call last):");
    let rust = lines.iter().rposition(|l| l.contains("panicked at "));
    let js = lines.iter().rposition(|l| l.trim_end() == "Stack:");
    // The runtimes of Python and JavaScript give up after printing the error (componentize-py's
    // with a Rust panic): their error is the plugin's, the rest only the runtime aborting.
    let words = match (python, js, rust) {
        (Some(p), _, _) => python_exception(&lines[p + 1..]),
        (None, Some(j), _) => js_exception(&lines[..j], &lines[j + 1..]),
        (None, None, Some(r)) => rust_panic(&lines[r..]),
        (None, None, None) => None,
    };
    let words = words.or_else(|| last_line(&lines))?;
    Some(clip(&words))
}

/// The exception of a traceback (the lines after its header) and where it was raised.
fn python_exception(lines: &[&str]) -> Option<String> {
    let at = lines
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))?;
    let exception = lines[at].trim();
    let place = lines[..at].iter().rev().find_map(|l| {
        let rest = l.trim_start().strip_prefix("File \"")?;
        let (file, rest) = rest.split_once('"')?;
        let line = rest.strip_prefix(", line ")?;
        let line: String = line.chars().take_while(char::is_ascii_digit).collect();
        Some(format!("{}, line {line}", base_name(file)))
    });
    Some(match place {
        Some(place) => format!("{exception} ({place})"),
        None => exception.to_owned(),
    })
}

/// The message before `Stack:`, and where the first frame after it is.
fn js_exception(before: &[&str], frames: &[&str]) -> Option<String> {
    let message = before
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())?;
    let place = frames.first().and_then(|f| {
        let (_, at) = f.trim().rsplit_once('@')?;
        let mut parts = at.rsplitn(3, ':');
        let (_col, line, file) = (parts.next()?, parts.next()?, parts.next()?);
        line.parse::<u64>().ok()?;
        Some(format!("{}, line {line}", base_name(file)))
    });
    Some(match place {
        Some(place) => format!("{message} ({place})"),
        None => message.to_owned(),
    })
}

/// `thread '…' panicked at FILE:LINE:COL:` then the message, up to the `note:` line.
fn rust_panic(lines: &[&str]) -> Option<String> {
    let (_, place) = lines.first()?.split_once("panicked at ")?;
    let place = place.trim_end().trim_end_matches(':');
    let mut parts = place.rsplitn(3, ':');
    let (_col, line, file) = (parts.next(), parts.next(), parts.next());
    let message: Vec<&str> = lines[1..]
        .iter()
        .take_while(|l| !l.starts_with("note:") && !l.trim().is_empty())
        .map(|l| l.trim())
        .collect();
    let message = match message.is_empty() {
        true => "panicked".to_owned(),
        false => message.join(" "),
    };
    Some(match (file, line) {
        (Some(file), Some(line)) if line.parse::<u64>().is_ok() => {
            format!("{message} ({}, line {line})", base_name(file))
        }
        _ => format!("{message} ({place})"),
    })
}

/// The last line that says something: not blank, not a stack frame (`at f (file:1:2)`,
/// `f@file:1:2`), not a line of only punctuation.
fn last_line(lines: &[&str]) -> Option<String> {
    lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| {
            let frame = l.starts_with("at ")
                || (l.contains('@') && l.ends_with(|c: char| c.is_ascii_digit()));
            // `[`: our own "[N earlier bytes not kept]".
            let noise = !l.chars().any(char::is_alphanumeric) || l.starts_with('[');
            !frame && !noise
        })
        .map(str::to_owned)
}

fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::last_words;

    #[test]
    fn a_python_traceback_gives_the_exception_and_where() {
        // As componentize-py 0.25 prints it.
        let out = "hello\nTraceback (most recent call last):\n  File \"/0/app.py\", line 54, in process\n  File \"/0/app.py\", line 72, in classify\nKeyError: 'items'\n\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1280:25:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            last_words(out).as_deref(),
            Some("KeyError: 'items' (app.py, line 72)")
        );
    }

    #[test]
    fn a_rust_panic_gives_its_message_and_where() {
        let out = "about to fail\n\nthread '<unnamed>' panicked at src/lib.rs:35:21:\nno `detail` in the event\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            last_words(out).as_deref(),
            Some("no `detail` in the event (lib.rs, line 35)")
        );
    }

    #[test]
    fn a_javascript_exception_gives_its_message_and_where() {
        let out = "can't access property \"qty\", item is null\nStack:\n  process/</detail.itemCount<@enrich.js:40:62\n  process@enrich.js:26:10\n  export_process@/tmp/x/initializer.js:289:15\n\nRedirecting call to abort() to mozalloc_abort\n\n";
        assert_eq!(
            last_words(out).as_deref(),
            Some("can't access property \"qty\", item is null (enrich.js, line 40)")
        );
    }

    #[test]
    fn otherwise_the_last_line_that_is_not_a_stack_frame() {
        let out =
            "TypeError: null has no properties\n  process@enrich.js:32:14\n  at run (x.js:1:2)\n";
        assert_eq!(
            last_words(out).as_deref(),
            Some("TypeError: null has no properties")
        );
        assert_eq!(last_words("\n \n"), None);
    }
}
