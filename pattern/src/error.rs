//! Error and mismatch types shown to users.
//!
//! Both carry a location so that a user can find the offending part of a pattern (a JSON
//! pointer into the pattern text) or of an event (the dotted field path the pattern names).

use std::fmt;

/// A pattern that cannot be compiled.
///
/// `pointer` is a JSON pointer (RFC 6901) into the pattern, e.g. `/detail/amount/0`; it is
/// empty when the problem concerns the whole pattern (for example invalid JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PatternError {
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A whole-pattern problem has no place to point at ("at : ..." read as a typo).
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.pointer, self.message)
        }
    }
}

impl PatternError {
    pub(crate) fn new(pointer: &Pointer<'_>, message: impl Into<String>) -> Self {
        PatternError {
            pointer: pointer.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn whole(message: impl Into<String>) -> Self {
        PatternError {
            pointer: String::new(),
            message: message.into(),
        }
    }
}

/// Why an event did not match a pattern: the first pattern field that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Dotted field path as the pattern names it, e.g. `data.detail.amount`; empty when the
    /// event itself is unusable (not a JSON object).
    pub path: String,
    pub reason: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "field `{}`: {}", self.path, self.reason)
        }
    }
}

/// A JSON pointer built as a linked list on the stack while the compiler walks the pattern,
/// so that no string is allocated unless an error is actually reported.
#[derive(Clone, Copy)]
pub(crate) enum Pointer<'a> {
    Root,
    Key(&'a Pointer<'a>, &'a str),
    Index(&'a Pointer<'a>, usize),
}

impl<'a> Pointer<'a> {
    pub(crate) fn key(&'a self, k: &'a str) -> Pointer<'a> {
        Pointer::Key(self, k)
    }
    pub(crate) fn index(&'a self, i: usize) -> Pointer<'a> {
        Pointer::Index(self, i)
    }
}

impl fmt::Display for Pointer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pointer::Root => Ok(()),
            Pointer::Key(parent, k) => {
                parent.fmt(f)?;
                // RFC 6901 escaping: `~` -> `~0`, `/` -> `~1`.
                f.write_str("/")?;
                for c in k.chars() {
                    match c {
                        '~' => f.write_str("~0")?,
                        '/' => f.write_str("~1")?,
                        c => write!(f, "{c}")?,
                    }
                }
                Ok(())
            }
            Pointer::Index(parent, i) => {
                parent.fmt(f)?;
                write!(f, "/{i}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_escapes_and_display() {
        let root = Pointer::Root;
        let a = root.key("a/b~c");
        let i = a.index(3);
        assert_eq!(i.to_string(), "/a~1b~0c/3");
        let e = PatternError::new(&i, "bad");
        assert_eq!(e.to_string(), "at /a~1b~0c/3: bad");
        assert_eq!(PatternError::whole("x").to_string(), "x");
    }
}
