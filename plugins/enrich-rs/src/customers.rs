//! Step 1: the customer's tier, from a lookup table, one `get-many` for the whole batch.

use crate::CUSTOMER;
use crate::order::{self, Failed, Order};
use crate::weir::plugin0_2_0::lookup::{LookupError, get_many};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub(crate) fn add_tiers(table: &str, field: &str, orders: &mut [Result<Order, Failed>]) {
    // Each customer of the events still going once (a batch often holds a customer many times),
    // and for each event, which of them it asks for.
    let mut keys: Vec<String> = Vec::new();
    let mut asking: Vec<(usize, usize)> = Vec::new();
    let mut failed: Vec<(usize, Failed)> = Vec::new();
    {
        // Keys borrowed from the events (owned only when the event's text has escapes).
        let mut index: HashMap<Cow<'_, str>, usize, BuildHasherDefault<Fnv>> =
            HashMap::with_capacity_and_hasher(orders.len(), Default::default());
        for (i, slot) in orders.iter().enumerate() {
            let Ok(order) = slot else { continue };
            match order.text(CUSTOMER, field) {
                Ok(key) => {
                    let k = match index.get(key.as_ref()) {
                        Some(&k) => k,
                        None => {
                            keys.push(key.as_ref().to_owned());
                            index.insert(key, keys.len() - 1);
                            keys.len() - 1
                        }
                    };
                    asking.push((i, k));
                }
                Err(why) => failed.push((i, why)),
            }
        }
    }
    for (i, why) in failed {
        orders[i] = Err(why);
    }
    if keys.is_empty() {
        return;
    }
    // Each answer read once: the tier's JSON text as the row has it, or why there is none.
    let rows = get_many(table, &keys);
    let answers: Vec<Result<&str, Failed>> = rows
        .iter()
        .zip(&keys)
        .map(|(answer, key)| match answer {
            Ok(row) => Ok(row.as_deref().map_or("null", tier)),
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
            Ok(tier) => order.add("tier", tier),
            Err(failed) => orders[i] = Err(failed.clone()),
        }
    }
}

/// The `tier` of a row (a JSON object), as JSON text; `null` if it has none.
fn tier(row: &str) -> &str {
    match order::scan(row.as_bytes(), &["tier"]) {
        Some(found) => found.read[0].clone().map_or("null", |at| &row[at]),
        None => "null",
    }
}

/// FNV-1a: the batch's customer keys are short, and SipHash (the standard map's, which resists
/// keys chosen to collide) cost more than the rest of the map. A batch is at most a few thousand
/// keys, so even keys made to collide cost little.
struct Fnv(u64);

impl Default for Fnv {
    /// FNV-1a's offset basis.
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
