//! `anything-but`: accepts every leaf value the inner expression does not accept.
//!
//! It tests leaf values, so it accepts `null` and values of other types, but never a
//! missing field (there is no leaf to test).

use super::{CaseFold, Scalar, Shown};
use crate::number;
use crate::wildcard::Wildcard;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum AnythingBut {
    Strings(Vec<Box<[u8]>>),
    /// Keys of the doubles (see `number::key`).
    Numbers(Vec<u64>),
    Prefixes(Vec<Box<[u8]>>),
    Suffixes(Vec<Box<[u8]>>),
    IgnoreCase(Vec<CaseFold>),
    Wildcards(Vec<Wildcard>),
}

impl AnythingBut {
    pub(crate) fn matches(&self, v: Scalar<'_>) -> bool {
        match self {
            AnythingBut::Strings(set) => match v {
                Scalar::Str(s) => !set.iter().any(|x| **x == *s),
                _ => true,
            },
            AnythingBut::Numbers(set) => match v {
                Scalar::Num(_, Some(x)) => !set.contains(&number::key(x)),
                _ => true,
            },
            AnythingBut::Prefixes(set) => match v {
                Scalar::Str(s) => !set.iter().any(|p| s.starts_with(p)),
                _ => true,
            },
            AnythingBut::Suffixes(set) => match v {
                Scalar::Str(s) => !set.iter().any(|p| s.ends_with(p)),
                _ => true,
            },
            AnythingBut::IgnoreCase(set) => match v {
                Scalar::Str(s) => !set.iter().any(|c| c.equals(s)),
                _ => true,
            },
            AnythingBut::Wildcards(set) => match v {
                Scalar::Str(s) => !set.iter().any(|w| w.matches(s)),
                _ => true,
            },
        }
    }
}

impl fmt::Display for AnythingBut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list =
            |f: &mut fmt::Formatter<'_>, items: Vec<String>| write!(f, "[{}]", items.join(", "));
        match self {
            AnythingBut::Strings(s) => list(f, s.iter().map(|x| Shown(x).to_string()).collect()),
            AnythingBut::Numbers(n) => list(
                f,
                n.iter().map(|x| f64::from_bits(*x).to_string()).collect(),
            ),
            AnythingBut::Prefixes(s) => {
                f.write_str("{\"prefix\": ")?;
                list(f, s.iter().map(|x| Shown(x).to_string()).collect())?;
                f.write_str("}")
            }
            AnythingBut::Suffixes(s) => {
                f.write_str("{\"suffix\": ")?;
                list(f, s.iter().map(|x| Shown(x).to_string()).collect())?;
                f.write_str("}")
            }
            AnythingBut::IgnoreCase(s) => {
                f.write_str("{\"equals-ignore-case\": ")?;
                list(
                    f,
                    s.iter()
                        .map(|x| Shown(x.text().as_bytes()).to_string())
                        .collect(),
                )?;
                f.write_str("}")
            }
            AnythingBut::Wildcards(_) => f.write_str("{\"wildcard\": …}"),
        }
    }
}
