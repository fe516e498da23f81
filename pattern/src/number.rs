//! Numbers: JSON number grammar and the value used to compare numbers.
//!
//! EventBridge compares numbers by value (`300` equals `3.0e2`). Like event-ruler, weir
//! compares them as IEEE-754 doubles: every number that can appear in a `numeric` operator
//! must be a finite double, and a literal that is not zero must not round to zero
//! (`1E-325`), since then the comparison would silently use a different number.

/// Length of the JSON number at the start of `b` (RFC 8259 grammar), 0 if there is none.
pub(crate) fn json_number_len(b: &[u8]) -> usize {
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        _ => return 0,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let s = i;
        while matches!(b.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        if i == s {
            return 0;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let s = i;
        while matches!(b.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        if i == s {
            return 0;
        }
    }
    i
}

/// The double a number literal denotes, if it can be compared faithfully: finite, and not a
/// non-zero literal that underflows to zero.
pub(crate) fn comparable(text: &[u8]) -> Option<f64> {
    // The literal is ASCII (validated by the scanner or parser); `parse` rounds correctly.
    let s = std::str::from_utf8(text).ok()?;
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    if v == 0.0 && !is_zero_literal(text) {
        return None;
    }
    Some(v)
}

/// A hashable key for numeric equality: the bits of the double with `-0` folded into `0`.
pub(crate) fn key(v: f64) -> u64 {
    if v == 0.0 { 0 } else { v.to_bits() }
}

fn is_zero_literal(text: &[u8]) -> bool {
    // Digits before the exponent are all zero.
    text.iter()
        .take_while(|c| !matches!(c, b'e' | b'E'))
        .all(|c| matches!(c, b'0' | b'.' | b'-' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(json_number_len(b"123,"), 3);
        assert_eq!(json_number_len(b"-0.5e+10]"), 8);
        assert_eq!(json_number_len(b"01"), 1);
        assert_eq!(json_number_len(b"1."), 0);
        assert_eq!(json_number_len(b"-"), 0);
        assert_eq!(json_number_len(b"1e"), 0);
        assert_eq!(json_number_len(b".5"), 0);
    }

    #[test]
    fn comparable_values() {
        assert_eq!(comparable(b"3.0e+2"), Some(300.0));
        assert_eq!(comparable(b"2.0e422"), None);
        assert_eq!(comparable(b"1E309"), None);
        assert_eq!(comparable(b"1E-325"), None);
        assert_eq!(comparable(b"0.0e-400"), Some(0.0));
        assert_eq!(key(-0.0), key(0.0));
    }
}
