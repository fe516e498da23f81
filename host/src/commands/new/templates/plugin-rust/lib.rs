//! `%NAME%`: a weir plugin. weir calls `init` once per instance with the `[[plugin]] config`
//! table as JSON text, then `process` with batches of events; for each input, emit zero (drop),
//! one (map) or several (split) outputs naming its index, or a failure (dead-lettered with the
//! message). This one adds the configured `tag` to every JSON event as `tagged`, and fails the
//! events that are not JSON objects. The contract is wit/plugin.wit.

wit_bindgen::generate!({ world: "transform", path: "wit" });
%ALLOC_USE%
use serde_json::Value;
use std::cell::RefCell;
use weir::plugin::types::{Failure, Output};

thread_local! {
    /// `config.tag`, set by `init`.
    static TAG: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Plugin;

impl Guest for Plugin {
    fn init(config: String) -> Result<(), String> {
        let config: Value =
            serde_json::from_str(&config).map_err(|e| format!("config is not JSON: {e}"))?;
        let tag = match config.get("tag") {
            Some(Value::String(tag)) => tag.clone(),
            Some(_) => return Err("config.tag must be a string".into()),
            None => return Err("config.tag is required".into()),
        };
        TAG.with(|t| *t.borrow_mut() = tag);
        Ok(())
    }

    fn process(events: Vec<Event>) -> BatchResult {
        let mut result = BatchResult {
            outputs: Vec::with_capacity(events.len()),
            failures: Vec::new(),
        };
        TAG.with(|tag| {
            let tag = tag.borrow();
            for (i, event) in events.into_iter().enumerate() {
                let input = i as u32;
                match tagged(&event.payload, &tag) {
                    Ok(payload) => result.outputs.push(Output {
                        input,
                        payload,
                        key: None,
                    }),
                    Err(message) => result.failures.push(Failure {
                        input,
                        message,
                        retryable: false,
                    }),
                }
            }
        });
        result
    }
}

fn tagged(payload: &[u8], tag: &str) -> Result<Vec<u8>, String> {
    let mut event: Value =
        serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let Some(fields) = event.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    fields.insert("tagged".into(), Value::String(tag.to_owned()));
    serde_json::to_vec(&event).map_err(|e| e.to_string())
}

export!(Plugin);
