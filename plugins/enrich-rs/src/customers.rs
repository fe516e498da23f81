//! Step 1: the customer's tier, from a lookup table, one `get-many` for the whole batch.

use crate::CUSTOMER;
use crate::order::{Failed, Order};
use crate::weir::plugin::lookup::{LookupError, get_many};
use serde_json::Value;
use std::collections::HashMap;

pub(crate) fn add_tiers(table: &str, field: &str, orders: &mut [Result<Order, Failed>]) {
    // Each customer of the events still going once (a batch often holds a customer many times),
    // and for each event, which of them it asks for.
    let mut keys: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut asking: Vec<(usize, usize)> = Vec::new();
    for (i, slot) in orders.iter_mut().enumerate() {
        let Ok(order) = slot else { continue };
        match order.text(CUSTOMER, field) {
            Ok(key) => {
                let k = *index.entry(key).or_insert_with_key(|key| {
                    keys.push(key.clone());
                    keys.len() - 1
                });
                asking.push((i, k));
            }
            Err(failed) => *slot = Err(failed),
        }
    }
    if keys.is_empty() {
        return;
    }
    // Each answer read once: the tier, or why there is none.
    let answers: Vec<Result<Value, Failed>> = get_many(table, &keys)
        .into_iter()
        .zip(&keys)
        .map(|(answer, key)| match answer {
            Ok(row) => Ok(row
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .and_then(|row| row.get("tier").cloned())
                .unwrap_or(Value::Null)),
            Err(LookupError::Unavailable(why)) => Err(Failed::retryable(format!(
                "lookup of {key:?} in {table} unavailable: {why}"
            ))),
            Err(LookupError::Denied(why)) => Err(Failed::permanent(format!(
                "lookup of {key:?} in {table} denied: {why}"
            ))),
        })
        .collect();
    for (i, k) in asking {
        let Ok(order) = &mut orders[i] else { continue };
        match &answers[k] {
            Ok(tier) => order.add("tier", tier.clone()),
            Err(failed) => orders[i] = Err(failed.clone()),
        }
    }
}
