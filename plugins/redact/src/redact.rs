//! The transform itself, free of any Wasm binding: the host's plugin benchmark compiles this
//! same file natively (host/benches/plugins.rs), so "Wasm vs native" compares identical code.

use serde_json::Value;

/// Replaces the value of every field named in `fields`, at any depth, with "***". Payloads that
/// are not JSON, or hold none of the fields, come back byte for byte.
pub(crate) fn redact(payload: Vec<u8>, fields: &[String]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(&payload) else {
        return payload;
    };
    if !walk(&mut value, fields) {
        return payload; // nothing to hide: keep the bytes exactly as they came
    }
    serde_json::to_vec(&value).unwrap_or(payload)
}

/// Redacts in place; true if anything changed.
fn walk(value: &mut Value, fields: &[String]) -> bool {
    let mut changed = false;
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if fields.iter().any(|f| f == k) {
                    *v = Value::String("***".into());
                    changed = true;
                } else {
                    changed |= walk(v, fields);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                changed |= walk(v, fields);
            }
        }
        _ => {}
    }
    changed
}
