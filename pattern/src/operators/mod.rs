//! Value operators: what one pattern value (`"billing"`, `{"prefix": "bil"}`, ...) accepts.
//!
//! A [`Matcher`] tests one event leaf value ([`Scalar`]). Matchers are plain data that derive
//! `Hash`/`Eq` so that the set compiler can share one matcher between all patterns that use
//! it on the same field (10,000 patterns saying `"source": ["shop.orders"]` test it once).

mod anything_but;
mod caseless;
mod numeric;

pub(crate) use anything_but::AnythingBut;
pub(crate) use caseless::CaseFold;
pub(crate) use numeric::NumRange;

use crate::cidr::IpRange;
use crate::number;
use crate::wildcard::Wildcard;
use std::fmt;

/// One leaf value of an event, as the scanner found it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    /// String content with escapes already decoded.
    Str(&'a [u8]),
    /// Number literal text (validated against the JSON grammar) and its value if it is
    /// comparable (see `number::comparable`); the scanner parses each referenced number once.
    Num(&'a [u8], Option<f64>),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Matcher {
    /// Exact string.
    Str(Box<[u8]>),
    /// Exact string that is an IP address: event-ruler also accepts other spellings of the
    /// same address (`2001:db8::1` = `2001:0db8:0:0:0:0:0:1`).
    StrIp {
        text: Box<[u8]>,
        v6: bool,
        addr: u128,
    },
    /// Exact number, by value (the key of its double).
    Num(u64),
    /// Exact number too large or small for a double: compared by its literal text.
    NumText(Box<[u8]>),
    Bool(bool),
    Null,
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    EqualsIgnoreCase(CaseFold),
    PrefixIgnoreCase(CaseFold),
    SuffixIgnoreCase(CaseFold),
    Wildcard(Wildcard),
    Numeric(NumRange),
    Cidr(IpRange),
    /// `{"exists": true}`: any leaf value.
    Exists,
    AnythingBut(AnythingBut),
}

impl Matcher {
    /// An exact-value matcher for a pattern string, recognising IP addresses.
    pub(crate) fn exact_str(s: &str) -> Matcher {
        match crate::cidr::parse_ip(s.as_bytes()) {
            Some((v6, addr)) => Matcher::StrIp {
                text: s.as_bytes().into(),
                v6,
                addr,
            },
            None => Matcher::Str(s.as_bytes().into()),
        }
    }

    /// An exact-value matcher for a pattern number literal.
    pub(crate) fn exact_num(text: &str) -> Matcher {
        match number::comparable(text.as_bytes()) {
            Some(v) => Matcher::Num(number::key(v)),
            None => Matcher::NumText(text.as_bytes().into()),
        }
    }

    pub(crate) fn matches(&self, v: Scalar<'_>) -> bool {
        match (self, v) {
            (Matcher::Exists, _) => true,
            (Matcher::Str(p), Scalar::Str(s)) => **p == *s,
            (Matcher::StrIp { text, v6, addr }, Scalar::Str(s)) => {
                **text == *s || crate::cidr::parse_ip(s) == Some((*v6, *addr))
            }
            (Matcher::Num(k), Scalar::Num(_, v)) => v.is_some_and(|v| number::key(v) == *k),
            (Matcher::NumText(p), Scalar::Num(t, _)) => **p == *t,
            (Matcher::Bool(b), Scalar::Bool(x)) => *b == x,
            (Matcher::Null, Scalar::Null) => true,
            (Matcher::Prefix(p), Scalar::Str(s)) => s.starts_with(p),
            (Matcher::Suffix(p), Scalar::Str(s)) => s.ends_with(p),
            (Matcher::EqualsIgnoreCase(c), Scalar::Str(s)) => c.equals(s),
            (Matcher::PrefixIgnoreCase(c), Scalar::Str(s)) => c.prefix_of(s),
            (Matcher::SuffixIgnoreCase(c), Scalar::Str(s)) => c.suffix_of(s),
            (Matcher::Wildcard(w), Scalar::Str(s)) => w.matches(s),
            (Matcher::Numeric(r), Scalar::Num(_, v)) => v.is_some_and(|v| r.contains(v)),
            (Matcher::Cidr(r), Scalar::Str(s)) => r.contains(s),
            (Matcher::AnythingBut(a), v) => a.matches(v),
            _ => false,
        }
    }
}

/// Shows bytes that are normally UTF-8 as a JSON-ish string for messages.
pub(crate) struct Shown<'a>(pub &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 80;
        let s = String::from_utf8_lossy(self.0);
        if s.chars().count() > MAX {
            let cut: String = s.chars().take(MAX).collect();
            write!(f, "{:?}…", cut)
        } else {
            write!(f, "{:?}", s)
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Str(s) | Matcher::StrIp { text: s, .. } => write!(f, "{}", Shown(s)),
            Matcher::Num(k) => write!(f, "{}", f64::from_bits(*k)),
            Matcher::NumText(t) => write!(f, "{}", String::from_utf8_lossy(t)),
            Matcher::Bool(b) => write!(f, "{b}"),
            Matcher::Null => write!(f, "null"),
            Matcher::Prefix(p) => write!(f, "{{\"prefix\": {}}}", Shown(p)),
            Matcher::Suffix(p) => write!(f, "{{\"suffix\": {}}}", Shown(p)),
            Matcher::EqualsIgnoreCase(c) => {
                write!(
                    f,
                    "{{\"equals-ignore-case\": {}}}",
                    Shown(c.text().as_bytes())
                )
            }
            Matcher::PrefixIgnoreCase(c) => write!(
                f,
                "{{\"prefix\": {{\"equals-ignore-case\": {}}}}}",
                Shown(c.text().as_bytes())
            ),
            Matcher::SuffixIgnoreCase(c) => write!(
                f,
                "{{\"suffix\": {{\"equals-ignore-case\": {}}}}}",
                Shown(c.text().as_bytes())
            ),
            Matcher::Wildcard(_) => write!(f, "{{\"wildcard\": …}}"),
            Matcher::Numeric(r) => write!(f, "{{\"numeric\": {r}}}"),
            Matcher::Cidr(r) => write!(f, "{{\"cidr\": {r:?}}}"),
            Matcher::Exists => write!(f, "{{\"exists\": true}}"),
            Matcher::AnythingBut(a) => write!(f, "{{\"anything-but\": {a}}}"),
        }
    }
}
