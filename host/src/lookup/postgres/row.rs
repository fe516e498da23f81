//! A row as a JSON object of its columns: text as strings; integers and floats as numbers (a
//! float that is NaN or infinite as the string `"NaN"`, `"Infinity"`, `"-Infinity"`); numeric as
//! a number with all its digits (its NaN and infinities as strings); bool; json and jsonb as the
//! JSON they hold; timestamptz as an RFC 3339 string in UTC (`2024-05-01T12:00:00Z`);
//! timestamp (no time zone) the same without the offset, since it has none; date and time as
//! ISO 8601 strings; uuid as its usual string; an enum as its label; NULL as null. Any other
//! type is refused when the query is prepared, with the cast to write.

use super::super::json;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use std::error::Error;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Kind, Type};

/// Whether every column can be written as JSON; the error names the first that cannot.
pub(super) fn check(columns: &[tokio_postgres::Column]) -> Result<(), String> {
    match columns.iter().find(|c| !supported(c.type_())) {
        None => Ok(()),
        Some(c) => Err(format!(
            "column {:?} is of type {}, which weir does not read: cast it in the query, e.g. \
             `{}::text` or `to_json({})`",
            c.name(),
            c.type_(),
            c.name(),
            c.name()
        )),
    }
}

fn supported(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::BOOL
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::OID
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::NUMERIC
            | Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::UNKNOWN
            | Type::JSON
            | Type::JSONB
            | Type::TIMESTAMPTZ
            | Type::TIMESTAMP
            | Type::DATE
            | Type::TIME
            | Type::UUID
    ) || <Label as FromSql>::accepts(ty)
}

/// The row as JSON text.
pub(super) fn to_json(row: &Row) -> Result<String, String> {
    let mut fields = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = value(row, i, column.type_())
            .map_err(|e| format!("column {:?}: {e}", column.name()))?;
        fields.push((column.name(), value));
    }
    Ok(json::object(fields))
}

type Read = Result<String, tokio_postgres::Error>;

fn value(row: &Row, i: usize, ty: &Type) -> Read {
    match *ty {
        Type::BOOL => get(row, i, |v: bool| v.to_string()),
        Type::INT2 => get(row, i, |v: i16| v.to_string()),
        Type::INT4 => get(row, i, |v: i32| v.to_string()),
        Type::INT8 => get(row, i, |v: i64| v.to_string()),
        Type::OID => get(row, i, |v: u32| v.to_string()),
        Type::FLOAT4 => get(row, i, |v: f32| float(f64::from(v), v.to_string())),
        Type::FLOAT8 => get(row, i, |v: f64| float(v, v.to_string())),
        Type::NUMERIC => get(row, i, |v: Numeric| v.0),
        Type::JSON | Type::JSONB => get(row, i, |v: serde_json::Value| v.to_string()),
        Type::TIMESTAMPTZ => get(row, i, |v: DateTime<Utc>| {
            json::string(&v.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }),
        Type::TIMESTAMP => get(row, i, |v: NaiveDateTime| {
            json::string(&v.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }),
        Type::DATE => get(row, i, |v: NaiveDate| json::string(&v.to_string())),
        Type::TIME => get(row, i, |v: NaiveTime| {
            json::string(&v.format("%H:%M:%S%.f").to_string())
        }),
        Type::UUID => get(row, i, |v: Uuid| json::string(&v.0)),
        // Text, and enums (whose values come as their labels).
        _ => get(row, i, |v: Label| json::string(&v.0)),
    }
}

/// Column `i` through `write`, or `null`.
fn get<'r, T: FromSql<'r>>(row: &'r Row, i: usize, write: impl Fn(T) -> String) -> Read {
    Ok(row
        .try_get::<_, Option<T>>(i)?
        .map_or_else(|| "null".to_owned(), write))
}

/// A float as JSON: finite as the shortest text that reads back the same (`text`, Rust's
/// Display), the others as strings.
fn float(v: f64, text: String) -> String {
    if v.is_finite() {
        // Display writes no exponent, so 1e300 is 301 digits: still a valid JSON number.
        text
    } else if v.is_nan() {
        json::string("NaN")
    } else if v > 0.0 {
        json::string("Infinity")
    } else {
        json::string("-Infinity")
    }
}

/// Text or an enum's label, as PostgreSQL sends them: UTF-8 bytes.
struct Label(String);

impl<'a> FromSql<'a> for Label {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Label(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty) || matches!(ty.kind(), Kind::Enum(_))
    }
}

/// A uuid in its usual form, `00112233-4455-6677-8899-aabbccddeeff`.
struct Uuid(String);

impl<'a> FromSql<'a> for Uuid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        if raw.len() != 16 {
            return Err(format!("a uuid of {} bytes", raw.len()).into());
        }
        let mut s = String::with_capacity(36);
        for (i, b) in raw.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push_str(&format!("{b:02x}"));
        }
        Ok(Uuid(s))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
}

/// A numeric as JSON: a number with every digit of it, or a string for NaN and the infinities.
struct Numeric(String);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        numeric_text(raw)
            .map(Numeric)
            .ok_or_else(|| "a malformed numeric".into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// PostgreSQL's binary numeric: digit count, weight (of the first digit, in powers of 10000),
/// sign, display scale (digits after the point), then base-10000 digits.
fn numeric_text(raw: &[u8]) -> Option<String> {
    let word =
        |at: usize| -> Option<i16> { Some(i16::from_be_bytes([*raw.get(at)?, *raw.get(at + 1)?])) };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    let dscale = usize::try_from(word(6)?).ok()?;
    let digits: Vec<i32> = (0..ndigits)
        .map(|d| word(8 + 2 * d).map(i32::from))
        .collect::<Option<_>>()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some(json::string("NaN")),
        0xD000 => return Some(json::string("Infinity")),
        0xF000 => return Some(json::string("-Infinity")),
        _ => return None,
    }
    let digit = |i: i32| -> i32 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(0).to_string());
        for i in 1..=weight {
            text.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut i = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for w in [ndigits, weight, sign as i16, dscale].iter().chain(digits) {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_keep_every_digit() {
        // 12345678.9012: digits 1234 5678 9012, weight 1, scale 4
        assert_eq!(
            numeric_text(&numeric(3, 1, 0, 4, &[1234, 5678, 9012])).as_deref(),
            Some("12345678.9012")
        );
        // -0.00001: digit 1000 at weight -2
        assert_eq!(
            numeric_text(&numeric(1, -2, 0x4000, 5, &[1000])).as_deref(),
            Some("-0.00001")
        );
        // 10000 (digit 1 at weight 1, trailing zero group left out), scale 2
        assert_eq!(
            numeric_text(&numeric(1, 1, 0, 2, &[1])).as_deref(),
            Some("10000.00")
        );
        assert_eq!(
            numeric_text(&numeric(0, 0, 0, 0, &[])).as_deref(),
            Some("0")
        );
        assert_eq!(
            numeric_text(&numeric(0, 0, 0xC000, 0, &[])).as_deref(),
            Some("\"NaN\"")
        );
        assert_eq!(numeric_text(&[0, 1]), None);
    }
}
