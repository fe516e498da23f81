//! `redact`: replaces the values of the configured fields, at any depth, with "***".
//!
//! Config: `{ "fields": ["email", "phone"] }`. Payloads that are not JSON pass through unchanged.

wit_bindgen::generate!({ world: "transform", path: "../../wit" });

mod redact;

// Size-class free lists in front of wasi-libc's malloc: this plugin builds a JSON tree per event,
// and runs ~20% faster on it than on the default one (plugins/alloc/src/lib.rs).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOC: weir_plugin_alloc::SizeClasses = weir_plugin_alloc::SizeClasses::new();

use redact::redact;
use serde_json::Value;
use std::cell::RefCell;
use weir::plugin::types::Output;

struct Redact;

thread_local! {
    // Set by `init`, once per instance. Wasm instances are single-threaded.
    static FIELDS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

impl Guest for Redact {
    fn init(config: String) -> Result<(), String> {
        let config: Value =
            serde_json::from_str(&config).map_err(|e| format!("config is not JSON: {e}"))?;
        let fields = match config.get("fields") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|f| f.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("config.fields must be a list of strings")?,
            Some(_) => return Err("config.fields must be a list of strings".into()),
            None => {
                return Err("config.fields is required: the names of the fields to redact".into());
            }
        };
        FIELDS.with(|f| *f.borrow_mut() = fields);
        Ok(())
    }

    fn process(events: Vec<Event>) -> BatchResult {
        FIELDS.with(|fields| {
            let fields = fields.borrow();
            let outputs = events
                .into_iter()
                .enumerate()
                .map(|(i, event)| Output {
                    input: i as u32,
                    payload: redact(event.payload, &fields),
                    key: None,
                })
                .collect();
            BatchResult {
                outputs,
                failures: Vec::new(),
            }
        })
    }
}

export!(Redact);
