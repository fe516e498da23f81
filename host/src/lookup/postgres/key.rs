//! The key as the query's `$1`: PostgreSQL decides `$1`'s type from the query (`WHERE id = $1`
//! makes it the type of `id`), and the key, always text in a plugin, is sent as that type: text
//! as it is, an integer or a uuid parsed from it. A key that does not parse cannot match a row.

use bytes::BytesMut;
use std::error::Error;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// A key ready to send as `$1`.
#[derive(Debug)]
pub(super) enum KeyParam<'k> {
    Text(&'k str),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Uuid([u8; 16]),
}

impl<'k> KeyParam<'k> {
    /// The key as a value of `ty`, or `None` when it cannot be one (`abc` for an `int`).
    pub(super) fn new(key: &'k str, ty: &Type) -> Option<Self> {
        Some(match *ty {
            Type::INT2 => KeyParam::Int2(key.parse().ok()?),
            Type::INT4 => KeyParam::Int4(key.parse().ok()?),
            Type::INT8 => KeyParam::Int8(key.parse().ok()?),
            Type::UUID => KeyParam::Uuid(parse_uuid(key)?),
            _ => KeyParam::Text(key),
        })
    }
}

/// Whether the key can be sent as `$1` of type `ty`; the error says how to make it so.
pub(super) fn check(ty: &Type) -> Result<(), String> {
    if matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::UUID)
        || <&str as ToSql>::accepts(ty)
    {
        return Ok(());
    }
    Err(format!(
        "the query's $1 is of type {ty}: weir sends the key as text, an integer or a uuid; \
         write `$1::text` and convert it in the query (e.g. `day = $1::text::date`)"
    ))
}

impl ToSql for KeyParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            KeyParam::Text(s) => s.to_sql(ty, out),
            KeyParam::Int2(n) => n.to_sql(ty, out),
            KeyParam::Int4(n) => n.to_sql(ty, out),
            KeyParam::Int8(n) => n.to_sql(ty, out),
            KeyParam::Uuid(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(ty: &Type) -> bool {
        check(ty).is_ok()
    }

    to_sql_checked!();
}

/// `0f2c...` with or without the hyphens of the usual 8-4-4-4-12 form.
fn parse_uuid(key: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = key.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digits = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_take_the_type_of_the_parameter() {
        assert!(matches!(
            KeyParam::new("42", &Type::INT4),
            Some(KeyParam::Int4(42))
        ));
        assert!(KeyParam::new("abc", &Type::INT8).is_none());
        assert!(KeyParam::new("99999", &Type::INT2).is_none());
        assert!(matches!(
            KeyParam::new("abc", &Type::TEXT),
            Some(KeyParam::Text("abc"))
        ));
        let Some(KeyParam::Uuid(u)) =
            KeyParam::new("00112233-4455-6677-8899-aabbccddeeff", &Type::UUID)
        else {
            panic!("a uuid");
        };
        assert_eq!(u[0], 0x00);
        assert_eq!(u[15], 0xff);
        assert!(KeyParam::new("not-a-uuid", &Type::UUID).is_none());
        assert!(check(&Type::DATE).unwrap_err().contains("$1::text"));
    }
}
