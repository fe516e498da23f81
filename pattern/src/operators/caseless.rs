//! `equals-ignore-case` (alone, or inside `prefix`, `suffix` and `anything-but`).
//!
//! event-ruler builds, for every character of the pattern, transitions for the character
//! itself, its lower-case and its upper-case form (full Unicode mappings, which may have a
//! different number of characters: `ΐ` upper-cases to `Ϊ́`). weir does the same, so the
//! conformance corpus' cases with length-changing mappings agree. ASCII-only patterns — the
//! common case — take a byte-wise fast path with the same result.

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CaseFold {
    text: Box<str>,
    /// Per pattern character, the byte strings it may appear as; empty when `text` is ASCII.
    alts: Vec<Vec<Box<[u8]>>>,
}

#[derive(Clone, Copy)]
enum Anchor {
    Whole,
    Prefix,
    Suffix,
}

impl CaseFold {
    pub(crate) fn new(text: &str) -> CaseFold {
        let alts = if text.is_ascii() {
            Vec::new()
        } else {
            text.chars()
                .map(|c| {
                    let mut v: Vec<Box<[u8]>> = Vec::with_capacity(3);
                    for s in [
                        c.to_string(),
                        c.to_lowercase().collect(),
                        c.to_uppercase().collect(),
                    ] {
                        let s: Box<[u8]> = s.into_bytes().into_boxed_slice();
                        if !v.contains(&s) {
                            v.push(s);
                        }
                    }
                    v
                })
                .collect()
        };
        CaseFold {
            text: text.into(),
            alts,
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn equals(&self, s: &[u8]) -> bool {
        self.run(s, Anchor::Whole)
    }
    pub(crate) fn prefix_of(&self, s: &[u8]) -> bool {
        self.run(s, Anchor::Prefix)
    }
    pub(crate) fn suffix_of(&self, s: &[u8]) -> bool {
        self.run(s, Anchor::Suffix)
    }

    fn run(&self, s: &[u8], anchor: Anchor) -> bool {
        let p = self.text.as_bytes();
        if self.alts.is_empty() {
            // ASCII pattern: every alternative is one ASCII byte, so lengths must line up.
            return match anchor {
                Anchor::Whole => s.len() == p.len() && s.eq_ignore_ascii_case(p),
                Anchor::Prefix => s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p),
                Anchor::Suffix => {
                    s.len() >= p.len() && s[s.len() - p.len()..].eq_ignore_ascii_case(p)
                }
            };
        }
        // A small NFA: the set of byte positions reachable after each pattern character.
        // Alternatives have different lengths, so more than one position can be live.
        let mut cur: Vec<usize> = vec![if matches!(anchor, Anchor::Suffix) {
            s.len()
        } else {
            0
        }];
        let mut next: Vec<usize> = Vec::new();
        let chars: Box<dyn Iterator<Item = &Vec<Box<[u8]>>>> = match anchor {
            Anchor::Suffix => Box::new(self.alts.iter().rev()),
            _ => Box::new(self.alts.iter()),
        };
        for alts in chars {
            next.clear();
            for &pos in &cur {
                for a in alts {
                    let np = match anchor {
                        Anchor::Suffix => {
                            if pos >= a.len() && s[pos - a.len()..pos] == **a {
                                pos - a.len()
                            } else {
                                continue;
                            }
                        }
                        _ => {
                            if s.len() - pos >= a.len() && s[pos..pos + a.len()] == **a {
                                pos + a.len()
                            } else {
                                continue;
                            }
                        }
                    };
                    if !next.contains(&np) {
                        next.push(np);
                    }
                }
            }
            if next.is_empty() {
                return false;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        match anchor {
            Anchor::Whole => cur.contains(&s.len()),
            Anchor::Prefix | Anchor::Suffix => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_unicode() {
        assert!(CaseFold::new("AbC").equals(b"aBc"));
        assert!(!CaseFold::new("AbC").equals(b"aBcd"));
        assert!(CaseFold::new("ab").prefix_of(b"ABcd"));
        assert!(CaseFold::new("cd").suffix_of(b"abCD"));
        assert!(CaseFold::new("12ⱥ").equals("12Ⱥ".as_bytes()));
        let p = CaseFold::new("\u{3b0}\u{240}\u{250}\u{390}\u{3b0}\u{1fc6}\u{212a}");
        let e = "\u{3a5}\u{308}\u{301}\u{2c7f}\u{2c6f}\u{399}\u{308}\u{301}\u{3a5}\u{308}\u{301}\u{1fc6}\u{6b}";
        assert!(p.equals(e.as_bytes()));
        assert!(CaseFold::new("abcȺ").suffix_of("ⱥcbaabcⱥ".as_bytes()));
        assert!(!CaseFold::new("abcȺ").suffix_of("abcⱥaa".as_bytes()));
        assert!(CaseFold::new("Ⱥcba").prefix_of("ⱥcbaabcⱥ".as_bytes()));
    }
}
