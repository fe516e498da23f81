//! A request body split into records, one per event: a JSON array gives one per element, one
//! JSON value gives one, and anything else is read as lines (JSON lines, or text), blank lines
//! skipped. With `format = "json"` a record that is not JSON refuses the whole request (400),
//! so that nothing of a malformed request is written.

use crate::source::Format;
use serde_json::value::RawValue;
use std::ops::Range;

/// The byte ranges of `body` that are records, or why the body is refused.
pub(super) fn split(body: &[u8], format: Format) -> Result<Vec<Range<usize>>, String> {
    if format != Format::Text {
        let start = body.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else {
            return Err("the body is empty".into());
        };
        if body[start] == b'[' {
            if let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(body) {
                return Ok(items.iter().map(|raw| within(body, raw.get())).collect());
            }
        } else if let Ok(raw) = serde_json::from_slice::<&RawValue>(body) {
            return Ok(vec![within(body, raw.get())]);
        }
    }
    let mut records = Vec::new();
    let mut at = 0;
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        let end = at + line.len();
        let mut range = at..end;
        at = end + 1;
        if line.last() == Some(&b'\r') {
            range.end -= 1;
        }
        if body[range.clone()].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if format == Format::Json
            && let Err(e) = serde_json::from_slice::<&RawValue>(&body[range.clone()])
        {
            return Err(format!("line {}: not valid JSON: {e}", n + 1));
        }
        records.push(range);
    }
    if records.is_empty() {
        return Err("the body is empty".into());
    }
    Ok(records)
}

/// Where `part` (a slice of `body`'s text) lies in `body`.
fn within(body: &[u8], part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - body.as_ptr() as usize;
    start..start + part.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(body: &str, format: Format) -> Result<Vec<String>, String> {
        split(body.as_bytes(), format)
            .map(|rs| rs.into_iter().map(|r| body[r].to_owned()).collect())
    }

    #[test]
    fn arrays_values_and_lines() {
        assert_eq!(
            records(" [ {\"a\":1}, 2 ,\"x\"]\n", Format::Json).unwrap(),
            ["{\"a\":1}", "2", "\"x\""]
        );
        assert_eq!(
            records("{\"a\": [1]}\n", Format::Auto).unwrap(),
            ["{\"a\": [1]}"]
        );
        assert_eq!(
            records("{\"a\":1}\r\n\n{\"a\":2}\n", Format::Json).unwrap(),
            ["{\"a\":1}", "{\"a\":2}"]
        );
        assert_eq!(records("[]", Format::Json).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn text_that_is_not_json() {
        assert_eq!(
            records("hello\nworld", Format::Auto).unwrap(),
            ["hello", "world"]
        );
        let e = records("{\"a\":1}\n{oops", Format::Json).unwrap_err();
        assert!(e.starts_with("line 2: not valid JSON"), "{e}");
        assert_eq!(records("[1,2]", Format::Text).unwrap(), ["[1,2]"]);
        assert!(records(" \n", Format::Auto).is_err());
    }
}
