//! `weir pattern check`: evaluates (pattern, event) pairs given as JSON lines.
//!
//! Each input line is `{"pattern": P, "event": E}`. P is a pattern object, or a string that
//! holds pattern text (so that invalid JSON can be tested too). Both are taken as raw text
//! (serde_json `RawValue`), so numbers reach the compiler and matcher exactly as written.

use crate::Pattern;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::io::{BufRead, Write};

/// Reads `{"pattern": P, "event": E}` lines and writes, per line and in order,
/// `{"match": true}`, `{"match": false}` or `{"error": "..."}`. Blank lines are skipped.
pub fn check_lines<R: BufRead, W: Write>(input: R, mut output: W) -> std::io::Result<()> {
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let result = check_one(&line);
        match result {
            Ok(m) => writeln!(output, "{{\"match\": {m}}}")?,
            Err(e) => {
                let msg = serde_json::to_string(&format!("line {}: {e}", n + 1))
                    .unwrap_or_else(|_| "\"error\"".into());
                writeln!(output, "{{\"error\": {msg}}}")?
            }
        }
    }
    output.flush()
}

fn check_one(line: &str) -> Result<bool, String> {
    let obj: HashMap<String, Box<RawValue>> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object line: {e}"))?;
    let pattern = obj.get("pattern").ok_or("missing \"pattern\"")?;
    let event = obj.get("event").ok_or("missing \"event\"")?;
    let text = pattern.get();
    let pattern = if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Pattern::compile(&s)
    } else {
        Pattern::compile(text)
    }
    .map_err(|e| format!("invalid pattern: {e}"))?;
    Ok(pattern.matches(event.get().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let input = concat!(
            r#"{"pattern": {"a": [1]}, "event": {"a": 1.0}}"#,
            "\n",
            r#"{"pattern": "{\"a\": [2]}", "event": {"a": 1}}"#,
            "\n",
            "\n",
            r#"{"pattern": "{\"a\": [", "event": {"a": 1}}"#,
            "\n",
            "nope\n",
        );
        let mut out = Vec::new();
        check_lines(input.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], r#"{"match": true}"#);
        assert_eq!(lines[1], r#"{"match": false}"#);
        assert!(
            lines[2].starts_with(r#"{"error": "line 4: invalid pattern: invalid JSON"#),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with(r#"{"error": "line 5: not a JSON object"#),
            "{}",
            lines[3]
        );
        assert_eq!(lines.len(), 4);
    }
}
