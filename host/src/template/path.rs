//! JSONPath references as Pipes reads them: jsonpath-rust follows RFC 9535, whose dotted names
//! (`$.a.b`) hold only letters, digits (not first) and `_`; Pipes also takes dashes
//! (`$.data.detail-type`, EventBridge's own field). Such names are rewritten into the bracket
//! form (`$.data['detail-type']`) before parsing, and a parse error is reported at the byte of
//! the reference where it is, in words rather than the parser's grammar rules.

use jsonpath_rust::parser::errors::JsonPathError;
use jsonpath_rust::parser::model::JpQuery;

/// Parses a `$...` reference. On error: the byte offset in `path` and what is wrong there.
pub(super) fn parse(path: &str) -> Result<JpQuery, (usize, String)> {
    let (rewritten, origin) = bracket_dashed_names(path);
    jsonpath_rust::parser::parse_json_path(&rewritten).map_err(|e| {
        let at = match &e {
            JsonPathError::PestError(p) => match p.location {
                pest::error::InputLocation::Pos(at) => at,
                pest::error::InputLocation::Span((at, _)) => at,
            },
            _ => 0,
        };
        // Back to the byte of the path as written.
        let at = origin.get(at).copied().unwrap_or(path.len());
        let message = match (&e, path[at..].chars().next()) {
            (JsonPathError::PestError(_), Some(c)) => format!(
                "unexpected `{c}` at byte {at} of the path; a name with characters other than letters, digits, `_` and `-` goes in brackets: `$.data['odd key']`"
            ),
            (JsonPathError::PestError(_), None) => "the path ends too early".to_owned(),
            (other, _) => other.to_string(),
        };
        (at, message)
    })
}

/// Rewrites every dotted name (outside brackets) that RFC 9535 does not take unquoted but Pipes
/// does, i.e. made of letters, digits, `_` and `-` with a `-` or a leading digit, into the
/// bracket form. Also returns, for each byte of the result, the byte of `path` it comes from.
fn bracket_dashed_names(path: &str) -> (String, Vec<usize>) {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len() + 8);
    let mut origin = Vec::with_capacity(path.len() + 8);
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' && i + 1 < bytes.len() {
                push(&mut out, &mut origin, &path[i..i + 2], i);
                i += 2;
                continue;
            }
            if b == q {
                quote = None;
            }
        } else {
            match b {
                b'\'' | b'"' if depth > 0 => quote = Some(b),
                b'[' | b'(' => depth += 1,
                b']' | b')' => depth = depth.saturating_sub(1),
                b'.' if depth == 0 => {
                    let start = i + 1 + usize::from(bytes.get(i + 1) == Some(&b'.'));
                    let end = path[start..]
                        .find(['.', '[', '(', ')', ']', ' '])
                        .map_or(path.len(), |n| start + n);
                    let name = &path[start..end];
                    if needs_brackets(name) {
                        if start == i + 2 {
                            push(&mut out, &mut origin, "..", i);
                        }
                        push(&mut out, &mut origin, "['", start);
                        for (k, c) in name.char_indices() {
                            push(&mut out, &mut origin, c.encode_utf8(&mut [0; 4]), start + k);
                        }
                        push(&mut out, &mut origin, "']", end);
                        i = end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let len = path[i..].chars().next().map_or(1, char::len_utf8);
        push(&mut out, &mut origin, &path[i..i + len], i);
        i += len;
    }
    (out, origin)
}

fn push(out: &mut String, origin: &mut Vec<usize>, text: &str, from: usize) {
    out.push_str(text);
    origin.extend(std::iter::repeat_n(from, text.len()));
}

/// A name Pipes writes unquoted that RFC 9535 needs in brackets.
fn needs_brackets(name: &str) -> bool {
    let plain = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    !name.is_empty()
        && name.chars().all(plain)
        && (name.contains('-') || name.starts_with(|c: char| c.is_ascii_digit()))
}
