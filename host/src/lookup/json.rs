//! Rows as JSON text, the form the `lookup` import answers in: objects written field by field,
//! so that a value already in JSON form (a CSV number, a PostgreSQL numeric) goes in as it is,
//! with all its digits.

/// Writes `{"name": value, ...}` from names and values that are each already JSON text.
pub(super) fn object<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&string(name));
        out.push(':');
        out.push_str(&value);
    }
    out.push('}');
    out
}

/// `text` as a JSON string.
pub(super) fn string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Whether `text` is a number exactly as JSON writes one: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
/// `007` or `1.` are not: a zip code or an id with leading zeros stays a string.
pub(super) fn is_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_json_writes_them() {
        for yes in [
            "0",
            "-0",
            "42",
            "-3.25",
            "1e9",
            "2.5E-3",
            "123456789012345678901234567890",
        ] {
            assert!(is_number(yes), "{yes}");
        }
        for no in [
            "", "-", "007", "1.", ".5", "1e", "+1", " 1", "1 ", "0x10", "NaN", "1_000",
        ] {
            assert!(!is_number(no), "{no}");
        }
    }

    #[test]
    fn objects_take_values_as_they_are() {
        let text = object([("a\"b", "1".to_owned()), ("c", string("x\ny"))]);
        assert_eq!(text, r#"{"a\"b":1,"c":"x\ny"}"#);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["c"], "x\ny");
    }
}
