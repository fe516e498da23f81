//! `split-order`: splits an order into one event per line item.
//!
//! In:  `{"detail-type": "OrderCreated", "detail": {"orderId": "o1", "customerId": "c1",
//!        "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}], ...}}`
//! Out: one event per item: `{"detail-type": "OrderLine", "detail": {"orderId": "o1",
//!       "customerId": "c1", "line": 0, "lines": 2, "sku": "A", "qty": 2}}`
//!
//! An order with an empty `items` list emits nothing (dropped); an event without an `items`
//! list is a failure (dead-lettered with the reason). Config: `{ "key_by": "sku" }` (optional)
//! sets each line's ordering key to that field of the item.
//!
//! Built against the previous contract, `weir:plugin@0.1.0` (wit/v0.1.0), on purpose: weir must
//! keep loading and running components built before @0.2.0, and this plugin is the @0.1.0
//! component its tests run. Its failures have no `retryable` flag: all are permanent.

wit_bindgen::generate!({ world: "transform", path: "../../wit/v0.1.0" });

// Size-class free lists in front of wasi-libc's malloc: faster for a plugin that builds JSON
// values per event (plugins/alloc/src/lib.rs).
#[global_allocator]
static ALLOC: weir_plugin_alloc::SizeClasses = weir_plugin_alloc::SizeClasses::new();

use serde_json::{Map, Value};
use std::cell::RefCell;
use weir::plugin::types::{Failure, Output};

struct SplitOrder;

thread_local! {
    static KEY_BY: RefCell<Option<String>> = const { RefCell::new(None) };
}

impl Guest for SplitOrder {
    fn init(config: String) -> Result<(), String> {
        let config: Value =
            serde_json::from_str(&config).map_err(|e| format!("config is not JSON: {e}"))?;
        let key_by = match config.get("key_by") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("config.key_by must be a string".into()),
        };
        KEY_BY.with(|k| *k.borrow_mut() = key_by);
        Ok(())
    }

    fn process(events: Vec<Event>) -> BatchResult {
        let key_by = KEY_BY.with(|k| k.borrow().clone());
        let mut result = BatchResult {
            outputs: Vec::new(),
            failures: Vec::new(),
        };
        for (i, event) in events.iter().enumerate() {
            let input = i as u32;
            match split(&event.payload, key_by.as_deref()) {
                Ok(lines) => result
                    .outputs
                    .extend(lines.into_iter().map(|(payload, key)| Output {
                        input,
                        payload,
                        key,
                    })),
                Err(message) => result.failures.push(Failure { input, message }),
            }
        }
        result
    }
}

fn split(payload: &[u8], key_by: Option<&str>) -> Result<Vec<(Vec<u8>, Option<String>)>, String> {
    let order: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let detail = order
        .get("detail")
        .and_then(Value::as_object)
        .ok_or("no `detail` object")?;
    let items = detail
        .get("items")
        .and_then(Value::as_array)
        .ok_or("no `detail.items` list")?;
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let mut line = Map::new();
        for k in ["orderId", "customerId"] {
            if let Some(v) = detail.get(k) {
                line.insert(k.into(), v.clone());
            }
        }
        line.insert("line".into(), n.into());
        line.insert("lines".into(), items.len().into());
        match item {
            Value::Object(fields) => line.extend(fields.clone()),
            other => {
                line.insert("item".into(), other.clone());
            }
        }
        let key = key_by.and_then(|k| item.get(k)).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let mut event = Map::new();
        event.insert("detail-type".into(), "OrderLine".into());
        event.insert("detail".into(), Value::Object(line));
        out.push((serde_json::to_vec(&event).map_err(|e| e.to_string())?, key));
    }
    Ok(out)
}

export!(SplitOrder);
