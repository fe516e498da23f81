//! The `wildcard` operator: `*` matches any run of characters, `\*` is a literal star and
//! `\\` a literal backslash.
//!
//! A wildcard is compiled into its literal segments. Matching anchors the first and last
//! segments and finds each middle one at its leftmost position: for a glob whose only
//! metacharacter is `*` the leftmost choice is always safe, so there is no backtracking and
//! the time is linear in the event value (substring search by `memchr::memmem`). The limits
//! below bound compile work and memory; EventBridge's own complexity limit, which refuses
//! patterns its matcher would find slow, is checked in `complexity.rs`.

/// Most `*` characters one wildcard may contain.
pub const MAX_WILDCARD_STARS: usize = 32;
/// Longest wildcard text accepted, in bytes.
pub const MAX_WILDCARD_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Wildcard {
    /// Literal pieces between stars; `segments.len() == stars + 1`.
    segments: Vec<Box<[u8]>>,
}

impl Wildcard {
    /// Parses wildcard text; the error text is shown to the user.
    pub(crate) fn parse(text: &str) -> Result<Wildcard, String> {
        if text.len() > MAX_WILDCARD_LEN {
            return Err(format!("wildcard is longer than {MAX_WILDCARD_LEN} bytes"));
        }
        let b = text.as_bytes();
        let mut segments = Vec::new();
        let mut cur = Vec::new();
        let mut i = 0;
        let mut prev_star = false;
        while i < b.len() {
            match b[i] {
                b'*' => {
                    if prev_star {
                        return Err(format!(
                            "consecutive '*' characters at position {i} in wildcard {text:?}"
                        ));
                    }
                    segments.push(std::mem::take(&mut cur).into_boxed_slice());
                    prev_star = true;
                    i += 1;
                    continue;
                }
                b'\\' => match b.get(i + 1) {
                    Some(&c @ (b'*' | b'\\')) => {
                        cur.push(c);
                        i += 2;
                    }
                    Some(_) => {
                        return Err(format!(
                            "invalid escape at position {i} in wildcard {text:?}: '\\' can only be followed by '*' or '\\'"
                        ));
                    }
                    None => {
                        return Err(format!("wildcard {text:?} ends with a lone '\\'"));
                    }
                },
                c => {
                    cur.push(c);
                    i += 1;
                }
            }
            prev_star = false;
        }
        segments.push(cur.into_boxed_slice());
        if segments.len() - 1 > MAX_WILDCARD_STARS {
            return Err(format!(
                "wildcard {text:?} has more than {MAX_WILDCARD_STARS} '*' characters (complexity limit)"
            ));
        }
        Ok(Wildcard { segments })
    }

    /// The literal pieces between the stars (`segments().len()` is the number of stars + 1).
    pub(crate) fn segments(&self) -> &[Box<[u8]>] {
        &self.segments
    }

    pub(crate) fn matches(&self, s: &[u8]) -> bool {
        let n = self.segments.len();
        if n == 1 {
            return *s == *self.segments[0];
        }
        let first = &self.segments[0];
        let last = &self.segments[n - 1];
        if s.len() < first.len() + last.len() || !s.starts_with(first) || !s.ends_with(last) {
            return false;
        }
        let mut rest = &s[first.len()..s.len() - last.len()];
        for seg in &self.segments[1..n - 1] {
            if seg.is_empty() {
                continue;
            }
            match memchr::memmem::find(rest, seg) {
                Some(p) => rest = &rest[p + seg.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Wildcard::parse(p).unwrap().matches(s.as_bytes())
    }

    #[test]
    fn matching() {
        assert!(m("*", ""));
        assert!(m("a*", "a"));
        assert!(!m("a*a", "a"));
        assert!(m("a*a", "aa"));
        assert!(m("*foo*", "xfooy"));
        assert!(m("a*b*c", "abbbc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\\*", r"a\zz"));
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abcd"));
    }

    #[test]
    fn rejects() {
        for bad in ["a**b", "**", r"a\b", r"a\", &"*a".repeat(40)] {
            assert!(Wildcard::parse(bad).is_err(), "{bad}");
        }
        assert!(Wildcard::parse(r"\**").is_ok());
    }
}
