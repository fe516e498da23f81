//! Step 1: the customer's tier, from a lookup table, one `get-many` for the whole batch.

use crate::order::{Failed, Order};
use crate::weir::plugin::lookup::{LookupError, get_many};
use serde_json::Value;

pub(crate) fn add_tiers(table: &str, field: &str, orders: &mut [Result<Order, Failed>]) {
    // The keys of the events still going, and where each goes back.
    let mut keys = Vec::new();
    let mut asking = Vec::new();
    for (i, slot) in orders.iter_mut().enumerate() {
        let Ok(order) = slot else { continue };
        match order.text(field) {
            Ok(key) => {
                keys.push(key);
                asking.push(i);
            }
            Err(failed) => *slot = Err(failed),
        }
    }
    if keys.is_empty() {
        return;
    }
    let answers = get_many(table, &keys);
    for ((i, key), answer) in asking.into_iter().zip(&keys).zip(answers) {
        let Ok(order) = &mut orders[i] else { continue };
        match answer {
            Ok(row) => {
                let tier = row
                    .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                    .and_then(|row| row.get("tier").cloned())
                    .unwrap_or(Value::Null);
                order.0.insert("tier".into(), tier);
            }
            Err(LookupError::Unavailable(why)) => {
                orders[i] = Err(Failed::retryable(format!(
                    "lookup of {key:?} in {table} unavailable: {why}"
                )));
            }
            Err(LookupError::Denied(why)) => {
                orders[i] = Err(Failed::permanent(format!(
                    "lookup of {key:?} in {table} denied: {why}"
                )));
            }
        }
    }
}
