//! A small JSON parser for pattern text.
//!
//! Patterns are parsed by hand rather than with serde_json because the compiler needs number
//! literals exactly as written (`2.0e422` must be rejected by `numeric`, `3.0e+2` must equal
//! `300`), objects in order with duplicate keys kept (the last one wins, as in event-ruler),
//! and errors that say where the text is broken. serde_json's `arbitrary_precision` would give
//! the first, but it is a workspace-wide feature that would change the host's number handling.
//!
//! Bounded: nesting depth is limited (no stack overflow on `[[[[...`), and the text length is
//! limited by the caller.

use crate::error::PatternError;

/// Deepest nesting accepted in a pattern. Real patterns are a few levels deep; the limit only
/// exists so that hostile input cannot exhaust the stack.
pub const MAX_PATTERN_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PValue {
    Null,
    Bool(bool),
    /// The literal text of the number, validated against the JSON grammar.
    Num(String),
    Str(String),
    Arr(Vec<PValue>),
    /// Members in document order, duplicates included.
    Obj(Vec<(String, PValue)>),
}

impl PValue {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PValue::Null => "null",
            PValue::Bool(_) => "a boolean",
            PValue::Num(_) => "a number",
            PValue::Str(_) => "a string",
            PValue::Arr(_) => "an array",
            PValue::Obj(_) => "an object",
        }
    }
}

/// Parses one JSON value that must make up the whole text (surrounding whitespace allowed).
pub(crate) fn parse(text: &str) -> Result<PValue, PatternError> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    p.ws();
    if p.i >= p.b.len() {
        return Err(PatternError::whole("pattern is empty"));
    }
    let v = p.value(0)?;
    p.ws();
    if p.i < p.b.len() {
        return Err(p.err("unexpected text after the pattern"));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> PatternError {
        let found = match self.b.get(self.i) {
            None => "end of text".to_string(),
            Some(c) if c.is_ascii_graphic() => format!("'{}'", *c as char),
            Some(c) => format!("byte 0x{c:02x}"),
        };
        PatternError::whole(format!(
            "invalid JSON at byte {}: {what} (found {found})",
            self.i
        ))
    }

    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<PValue, PatternError> {
        if depth > MAX_PATTERN_DEPTH {
            return Err(PatternError::whole(format!(
                "pattern nests deeper than {MAX_PATTERN_DEPTH} levels"
            )));
        }
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.eat(b'}') {
                    return Ok(PValue::Obj(members));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(self.err("expected a string as object key"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return Err(self.err("expected ':' after object key"));
                    }
                    self.ws();
                    let v = self.value(depth + 1)?;
                    members.push((k, v));
                    self.ws();
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b'}') {
                        return Ok(PValue::Obj(members));
                    }
                    return Err(self.err("expected ',' or '}' in object"));
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat(b']') {
                    return Ok(PValue::Arr(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b']') {
                        return Ok(PValue::Arr(items));
                    }
                    return Err(self.err("expected ',' or ']' in array"));
                }
            }
            Some(b'"') => Ok(PValue::Str(self.string()?)),
            Some(b't') => self.literal(b"true", PValue::Bool(true)),
            Some(b'f') => self.literal(b"false", PValue::Bool(false)),
            Some(b'n') => self.literal(b"null", PValue::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                let len = crate::number::json_number_len(&self.b[start..]);
                if len == 0 {
                    return Err(self.err("malformed number"));
                }
                self.i += len;
                // Only ASCII was consumed, so this slice is valid UTF-8.
                Ok(PValue::Num(
                    String::from_utf8_lossy(&self.b[start..self.i]).into_owned(),
                ))
            }
            _ => Err(self.err("expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8], v: PValue) -> Result<PValue, PatternError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("expected a JSON value"))
        }
    }

    fn string(&mut self) -> Result<String, PatternError> {
        debug_assert_eq!(self.b.get(self.i), Some(&b'"'));
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    // The input is a &str and escapes decode to valid UTF-8, so this cannot
                    // fail; stay defensive anyway.
                    return String::from_utf8(out)
                        .map_err(|_| PatternError::whole("pattern string is not valid UTF-8"));
                }
                b'\\' => {
                    self.i += 1;
                    if self.i >= self.b.len() {
                        return Err(self.err("unterminated string"));
                    }
                    let at = self.i;
                    if !crate::scan::push_escape(self.b, &mut self.i, &mut out) {
                        self.i = at;
                        return Err(self.err("invalid escape in string"));
                    }
                }
                0..=0x1f => return Err(self.err("control character in string")),
                _ => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_numbers_and_duplicates() {
        let v = parse(r#" {"a": [2.0e422, -0, 3.0e+2], "a": "x\u00e9\ud83d\ude00"} "#).unwrap();
        let PValue::Obj(m) = v else { panic!() };
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].1,
            PValue::Arr(vec![
                PValue::Num("2.0e422".into()),
                PValue::Num("-0".into()),
                PValue::Num("3.0e+2".into())
            ])
        );
        assert_eq!(m[1].1, PValue::Str("xé😀".into()));
    }

    #[test]
    fn rejects_bad_text() {
        for t in [
            "",
            "{",
            "{\"a\":}",
            "[1,]",
            "01",
            "1.",
            "-",
            "{\"a\" 1}",
            "\"\\x\"",
            "[1] 2",
            "\"\\ud800\"",
            "tru",
            "{\"a\":[1 2]}",
        ] {
            assert!(parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(10_000);
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
    }
}
