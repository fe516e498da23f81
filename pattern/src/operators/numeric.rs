//! `numeric`: at most one lower and one upper bound, or a single `=`.
//!
//! Bounds are stored as double bits so that the matcher can derive `Hash`/`Eq` for sharing.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NumRange {
    /// (bits of the bound, inclusive)
    pub lo: Option<(u64, bool)>,
    pub hi: Option<(u64, bool)>,
}

impl NumRange {
    pub(crate) fn contains(&self, v: f64) -> bool {
        if let Some((b, inc)) = self.lo {
            let b = f64::from_bits(b);
            if !(v > b || (inc && v == b)) {
                return false;
            }
        }
        if let Some((b, inc)) = self.hi {
            let b = f64::from_bits(b);
            if !(v < b || (inc && v == b)) {
                return false;
            }
        }
        true
    }
}

impl fmt::Display for NumRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some((a, true)), Some((b, true))) = (self.lo, self.hi)
            && a == b
        {
            return write!(f, "[\"=\", {}]", f64::from_bits(a));
        }
        let mut parts = Vec::new();
        if let Some((b, inc)) = self.lo {
            parts.push(format!(
                "\"{}\", {}",
                if inc { ">=" } else { ">" },
                f64::from_bits(b)
            ));
        }
        if let Some((b, inc)) = self.hi {
            parts.push(format!(
                "\"{}\", {}",
                if inc { "<=" } else { "<" },
                f64::from_bits(b)
            ));
        }
        write!(f, "[{}]", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let r = NumRange {
            lo: Some((0f64.to_bits(), false)),
            hi: Some((5f64.to_bits(), true)),
        };
        assert!(!r.contains(0.0));
        assert!(r.contains(0.1));
        assert!(r.contains(5.0));
        assert!(!r.contains(5.1));
        assert_eq!(r.to_string(), "[\">\", 0, \"<=\", 5]");
    }
}
